"""Your own table: ``dataset=csv`` or ``dataset=parquet`` with ``dataset.target``, or a loader returning a DataFrame.

Numeric columns are scaled onto [0, 1] and string columns one-hot encoded by a scikit-learn
``ColumnTransformer`` fitted on the non-test rows alone; a missing value is refused naming its
column unless ``dataset.impute`` fills it; string labels become class indices, the mapping kept
in the record and, with the fitted preprocessor, beside the saved model.
"""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from conftest import compose_config, records_under, run_sweep
from sweep.config import SweepConfigError
from sweep.data import Arrays, load_dataset

N_ROWS = 200


def table(n: int = N_ROWS, seed: int = 0) -> pd.DataFrame:
    """A learnable table: two numeric columns, a string column, string labels."""
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue"], n)
    size = rng.normal(size=n)
    weight = rng.uniform(0, 100, n)
    label = np.where(size + (colour == "red") > 0.3, "keep", "drop")
    return pd.DataFrame({"size": size, "weight": weight, "colour": colour, "label": label})


def with_holes(frame: pd.DataFrame) -> pd.DataFrame:
    holed = frame.copy()
    holed.loc[[3, 10, 11], "weight"] = np.nan
    holed.loc[5, "colour"] = None
    return holed


def loaded(*overrides: str):
    return load_dataset(compose_config(*overrides).dataset)


# A loader shipping its own test split, so the test rows are known: an outlier and a colour only they have.
TRAIN = table(120)
TEST = pd.DataFrame({"size": [1000.0, 0.0], "weight": [50.0, 50.0], "colour": ["purple", "red"], "label": ["keep", "drop"]})


def with_own_test_split() -> Arrays:
    features = ["size", "weight", "colour"]
    return Arrays(TRAIN[features], TRAIN["label"].to_numpy(), TEST[features], TEST["label"].to_numpy(), source="own split")


def with_own_test_split_and_holes() -> Arrays:
    train = with_holes(TRAIN)
    features = ["size", "weight", "colour"]
    return Arrays(train[features], train["label"].to_numpy(), TEST[features], TEST["label"].to_numpy(), source="own split")


def a_dataframe() -> pd.DataFrame:
    return table()


def a_tuple_of_frame_and_labels():
    frame = table()
    return frame.drop(columns="label"), frame["label"]


# ------------------------------------------------------------------------------ reading


def test_a_csv_becomes_scaled_numbers_and_one_hot_categories(tmp_path: Path) -> None:
    table().to_csv(tmp_path / "data.csv", index=False)
    data = loaded("dataset=csv", f"dataset.path={tmp_path / 'data.csv'}", "dataset.target=label")
    assert data.x.shape == (160, 5) and data.x_test.shape == (40, 5) and data.x.dtype == np.float32
    names = list(data.preprocessor.get_feature_names_out())
    assert names == ["size", "weight", "colour_blue", "colour_green", "colour_red"]
    assert (data.x.min(axis=0) == 0).all() and (data.x.max(axis=0) == 1).all()
    assert set(np.unique(data.x[:, 2:])) == {0.0, 1.0} and (data.x[:, 2:].sum(axis=1) == 1).all()
    assert data.classes == ("drop", "keep") and set(data.y) == {0, 1}


def test_parquet_keeps_pandas_categories_and_reads_the_same_table(tmp_path: Path) -> None:
    table().astype({"colour": "category"}).to_parquet(tmp_path / "data.parquet")
    table().to_csv(tmp_path / "data.csv", index=False)
    from_parquet = loaded("dataset=parquet", f"dataset.path={tmp_path / 'data.parquet'}", "dataset.target=label")
    from_csv = loaded("dataset=csv", f"dataset.path={tmp_path / 'data.csv'}", "dataset.target=label")
    np.testing.assert_allclose(from_parquet.x, from_csv.x, atol=1e-6)
    assert np.array_equal(from_parquet.y, from_csv.y)


def test_dataset_features_picks_the_columns(tmp_path: Path) -> None:
    table().to_csv(tmp_path / "data.csv", index=False)
    data = loaded("dataset=csv", f"dataset.path={tmp_path / 'data.csv'}", "dataset.target=label", "dataset.features=[colour,size]")
    assert list(data.preprocessor.get_feature_names_out()) == ["size", "colour_blue", "colour_green", "colour_red"]


def test_read_options_go_to_pandas_and_a_one_column_table_suggests_the_separator(tmp_path: Path) -> None:
    table().to_csv(tmp_path / "data.csv", index=False, sep=";")
    data = loaded("dataset=csv", f"dataset.path={tmp_path / 'data.csv'}", "dataset.target=label", "+dataset.read_options.sep=';'")
    assert data.x.shape == (160, 5)
    with pytest.raises(SweepConfigError, match=r"does the file separate them by ';'\? \+dataset.read_options.sep=';'$"):
        loaded("dataset=csv", f"dataset.path={tmp_path / 'data.csv'}", "dataset.target=label")


# --------------------------------------------------------------- nothing fitted on test rows


def test_the_scaler_and_encoder_are_fitted_on_the_non_test_rows_alone() -> None:
    data = loaded("dataset._target_=test_tables.with_own_test_split")
    names = list(data.preprocessor.get_feature_names_out())
    assert "colour_purple" not in names  # a category only test rows have encodes as all zeros
    purple, red = data.x_test
    assert purple[names.index("size")] > 1 and (purple[names.index("colour_red") :] == 0).all()  # the outlier moved no scale
    assert red[names.index("colour_red")] == 1


def test_imputed_values_come_from_the_non_test_rows() -> None:
    data = loaded("dataset._target_=test_tables.with_own_test_split_and_holes", "+dataset.impute=mean")
    imputer = data.preprocessor.named_transformers_["numeric"][0]
    assert imputer.statistics_[1] == pytest.approx(with_holes(TRAIN)["weight"].mean())
    assert np.isfinite(data.x).all()


# ------------------------------------------------------------------ missing and wrong input


def test_a_missing_value_is_refused_naming_the_column(tmp_path: Path) -> None:
    with_holes(table()).to_csv(tmp_path / "holes.csv", index=False)
    with pytest.raises(SweepConfigError) as caught:
        loaded("dataset=csv", f"dataset.path={tmp_path / 'holes.csv'}", "dataset.target=label")
    assert str(caught.value) == (
        f"dataset: {tmp_path / 'holes.csv'}: column 'weight' has 3 missing value(s); "
        "fill them or set dataset.impute=mean|median (fitted on the non-test rows)"
    )


@pytest.mark.parametrize("impute", ["mean", "median"])
def test_dataset_impute_fills_numbers_and_categories(tmp_path: Path, impute: str) -> None:
    with_holes(table()).to_parquet(tmp_path / "holes.parquet")
    data = loaded("dataset=parquet", f"dataset.path={tmp_path / 'holes.parquet'}", "dataset.target=label", f"dataset.impute={impute}")
    assert data.x.shape == (160, 5) and np.isfinite(data.x).all() and np.isfinite(data.x_test).all()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["dataset.target=lable"], "dataset.target: no column 'lable' in {file} (its columns: size, weight, colour, label); did you mean label?"),
        (["dataset.target=label", "dataset.features=[colour,wieght]"], "dataset.features: no column 'wieght' in {file} (its columns: size, weight, colour); did you mean weight?"),
    ],
)  # fmt: skip
def test_a_column_the_table_lacks_is_refused_with_the_closest_name(tmp_path: Path, overrides: list[str], message: str) -> None:
    table().to_csv(tmp_path / "data.csv", index=False)
    with pytest.raises(SweepConfigError) as caught:
        loaded("dataset=csv", f"dataset.path={tmp_path / 'data.csv'}", *overrides)
    assert str(caught.value) == message.format(file=tmp_path / "data.csv")


def test_missing_labels_are_refused_naming_the_target(tmp_path: Path) -> None:
    frame = table()
    frame.loc[7, "label"] = None
    frame.to_csv(tmp_path / "data.csv", index=False)
    with pytest.raises(SweepConfigError, match=r"^dataset.target: column 'label' of .*data.csv has 1 missing label\(s\)$"):
        loaded("dataset=csv", f"dataset.path={tmp_path / 'data.csv'}", "dataset.target=label")


def test_a_column_of_dates_is_refused_naming_it(tmp_path: Path) -> None:
    frame = table().assign(when=pd.date_range("2026-01-01", periods=N_ROWS))
    frame.to_parquet(tmp_path / "dated.parquet")
    with pytest.raises(SweepConfigError, match=r"column 'when' \(datetime64\[.*\]\) is neither numbers nor strings"):
        loaded("dataset=parquet", f"dataset.path={tmp_path / 'dated.parquet'}", "dataset.target=label")


@pytest.mark.parametrize(("preset", "content"), [("csv", "a,b\n1,2\n3,4,5,6\n"), ("parquet", "not parquet at all")])
def test_a_malformed_file_is_one_line_naming_dataset_path(tmp_path: Path, preset: str, content: str) -> None:
    file = tmp_path / f"bad.{preset}"
    file.write_text(content)
    with pytest.raises(SweepConfigError) as caught:
        loaded(f"dataset={preset}", f"dataset.path={file}", "dataset.target=b")
    assert str(caught.value).startswith(f"dataset.path: cannot read {file} as ") and "\n" not in str(caught.value)


def test_a_missing_file_names_dataset_path(tmp_path: Path) -> None:
    with pytest.raises(SweepConfigError, match=rf"^dataset.path: no file at {tmp_path / 'absent.csv'}$"):
        loaded("dataset=csv", f"dataset.path={tmp_path / 'absent.csv'}", "dataset.target=label")


# --------------------------------------------------------------------------- users' loaders


def test_a_loader_may_return_a_dataframe_with_dataset_target() -> None:
    data = loaded("dataset._target_=test_tables.a_dataframe", "+dataset.target=label")
    assert data.x.shape == (160, 5) and data.classes == ("drop", "keep")


def test_a_loader_may_return_a_tuple_of_a_frame_and_labels() -> None:
    data = loaded("dataset._target_=test_tables.a_tuple_of_frame_and_labels")
    assert data.x.shape == (160, 5)


def test_a_dataframe_without_dataset_target_says_how_to_name_the_label_column() -> None:
    with pytest.raises(SweepConfigError) as caught:
        loaded("dataset._target_=test_tables.a_dataframe")
    assert str(caught.value) == (
        "dataset._target_=test_tables.a_dataframe returned a DataFrame; name its label column with "
        "dataset.target=<column> (its columns: size, weight, colour, label)"
    )


# ------------------------------------------------------------------------------ a real sweep


def test_a_kfold_sweep_on_a_csv_with_holes_records_the_labels_and_saves_what_the_model_needs(tmp_path: Path) -> None:
    with_holes(table(300)).to_csv(tmp_path / "holes.csv", index=False)
    run_sweep(
        "-m", "dataset=csv", "dataset.path=holes.csv", "dataset.target=label", "dataset.impute=median",
        "validation=kfold", "validation.n_splits=3", "validation.fold=0,1,2", "optimizer.lr=1e-2", "trainer.epochs=5",
        cwd=tmp_path,
    )  # fmt: skip
    records = records_under(tmp_path / "outputs")
    assert [r["status"] for r in records] == ["completed"] * 3 and all(r["classes"] == ["drop", "keep"] for r in records)
    assert all(r["trained_by"] == "graph" and r["population_size"] == 3 for r in records)
    assert np.mean([r["val_accuracy"] for r in records]) > 0.8  # the label is learnable from size and colour
    job = Path(records[0]["output_dir"])
    assert json.loads((job / "classes.json").read_text()) == ["drop", "keep"]
    preprocessor = joblib.load(job / "preprocessor.joblib")
    inputs = preprocessor.transform(with_holes(table(300)).drop(columns="label"))
    assert inputs.shape == (300, 5) and np.isfinite(inputs).all()
    assert {"classes.json", "preprocessor.joblib", "model.keras"} <= set(records[0]["artifacts"])


def test_an_unknown_impute_strategy_is_refused_before_any_work() -> None:
    import sweep

    with pytest.raises(SweepConfigError) as caught:
        sweep.compose("dataset=csv", "dataset.path=data.csv", "dataset.target=label", "dataset.impute=zero")
    assert str(caught.value) == "dataset.impute='zero': must be null (missing values refused), mean or median"
