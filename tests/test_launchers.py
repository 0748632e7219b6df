"""Launchers and the Optuna sweeper: thread limits, presets, and the same tables from every launcher.

The slow tests run the real plugins: joblib (loky processes), a local Ray instance bound to
loopback, submitit's local executor (SLURM's code path) and Optuna's TPE sampler.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from sweep.config import SweepConfigError, config_dir
from sweep.scaling import resolve_threads
from sweep.search import L2_RANGE, refuse_data_sweeps

from conftest import records_under, run_sweep

#: The 4-run sweep every launcher runs: 2 learning rates x 2 folds, fixed seeds.
FOUR_RUNS = [
    "trainer.epochs=1",
    "trainer.save_model=false",
    "optimizer.lr=1e-3,1e-2",
    "validation=kfold",
    "validation.fold=0,1",
]

#: Columns that differ between launchers by nature (times, paths, dates, the run that wrote them, how they trained).
VOLATILE = ("time", "elapsed", "output_dir", "sweep_dir", "sweep_run", "started_at", "job_num", "versions", "trained_by", "population_size")


def compose_with_hydra(*overrides: str) -> DictConfig:
    """The config with its ``hydra`` node, as a job of ``sweep -m <overrides>`` sees it."""
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


# ----------------------------------------------------------------------------- threads


@pytest.mark.parametrize(
    ("overrides", "n_cores", "expected"),
    [
        ([], 8, None),  # basic launcher: one job at a time, every core
        (["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], 8, 4),
        (["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], 2, 1),
        (["hydra/launcher=joblib", "hydra.launcher.n_jobs=4"], 2, 1),  # oversubscribed: never 0
        (["hydra/launcher=joblib"], 8, 1),  # the plugin's n_jobs=-1: a worker per core
        (["hydra/launcher=joblib", "hydra.launcher.n_jobs=-3"], 8, 1),  # 6 workers on 8 cores
        (["hydra/launcher=ray_local"], 8, 1),
        (["hydra/launcher=ray_local", "hydra.launcher.ray.remote.num_cpus=2"], 8, 2),
        (["hydra/launcher=ray"], 8, 1),  # the plugin's own config: Ray's default of 1 CPU a task
        (["hydra/launcher=slurm"], 64, 4),
        (["hydra/launcher=submitit_local"], 8, 1),  # every job at once
        (["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "threads=3"], 8, 3),
        (["threads=null"], 8, None),
    ],
)
def test_threads_follow_the_launcher_so_workers_times_threads_fit_the_cores(overrides, n_cores, expected):
    cfg = compose_with_hydra(*overrides)
    threads, why = resolve_threads(cfg.threads, cfg.hydra.launcher, n_cores)
    assert threads == expected, why
    n_jobs = cfg.hydra.launcher.get("n_jobs")
    if n_jobs is not None and 0 < n_jobs <= n_cores and "threads=" not in " ".join(overrides):
        assert n_jobs * threads <= n_cores


@pytest.mark.parametrize("bad", ["threads=0", "threads=-1", "threads=many"])
def test_a_bad_threads_value_names_the_key(bad):
    cfg = compose_with_hydra(bad)
    with pytest.raises(SweepConfigError, match="threads="):
        resolve_threads(cfg.threads, cfg.hydra.launcher, 4)


def test_threads_do_not_change_a_runs_fingerprint():
    from conftest import compose_config

    from sweep.config import fingerprint, flatten

    one, auto = flatten(compose_config("threads=1")), flatten(compose_config("threads=auto"))
    assert one["threads"] == 1 and auto["threads"] == "auto"
    assert fingerprint(one) == fingerprint(auto)


@pytest.mark.slow
def test_limit_threads_caps_tensorflow_and_blas_in_a_fresh_process():
    code = (
        "from sweep.scaling import limit_threads; limit_threads(1)\n"
        "from sweep.backend import keras; keras()\n"
        "import numpy, json, tensorflow as tf\n"
        "from threadpoolctl import threadpool_info\n"
        "print(json.dumps({'intra': tf.config.threading.get_intra_op_parallelism_threads(),\n"
        "  'inter': tf.config.threading.get_inter_op_parallelism_threads(),\n"
        "  'pools': [p['num_threads'] for p in threadpool_info()]}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["intra"] == 1 and seen["inter"] == 1
    assert seen["pools"] and all(n == 1 for n in seen["pools"]), seen


# ----------------------------------------------------------------------------- presets


def test_slurm_preset_sets_partition_time_cpus_and_memory():
    launcher = compose_with_hydra("hydra/launcher=slurm").hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert {"partition", "timeout_min", "cpus_per_task", "mem_gb"} <= set(launcher)
    assert launcher.cpus_per_task >= 1 and launcher.mem_gb >= 1 and launcher.timeout_min >= 1
    over = compose_with_hydra("hydra/launcher=slurm", "hydra.launcher.partition=cpu").hydra.launcher
    assert over.partition == "cpu"


def test_joblib_preset_is_sweeps_launcher_with_every_field_of_the_plugin():
    from dataclasses import fields

    from hydra_plugins.hydra_joblib_launcher.config import JobLibLauncherConf

    launcher = compose_with_hydra("hydra/launcher=joblib", "hydra.launcher.n_jobs=2").hydra.launcher
    assert launcher._target_ == "hydra_plugins.sweep_joblib.JoblibLauncher"
    plugin = {f.name: f.default for f in fields(JobLibLauncherConf) if f.name != "_target_"}
    assert {key: launcher[key] for key in plugin} == plugin | {"n_jobs": 2}


def test_ray_local_preset_stays_on_loopback():
    launcher = compose_with_hydra("hydra/launcher=ray_local").hydra.launcher
    assert launcher._target_ == "hydra_plugins.sweep_ray.LocalRayLauncher"
    init = launcher.ray.init
    assert init.address is None and init._node_ip_address == "127.0.0.1" and init.include_dashboard is False


def test_optuna_preset_searches_lr_l2_dropout_on_the_mean_over_folds():
    cfg = compose_with_hydra("hparams_search=optuna")
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.sweep_optuna.optuna_sweeper.OptunaSweeper"
    assert sweeper.direction is None and sweeper.objectives is None  # task.metric, in its own direction
    assert sweeper.n_trials >= 1 and sweeper.sampler.seed == 0
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert set(sweeper.params) == {"optimizer.lr", "regularizer.dropout"}
    assert "log" in sweeper.params["optimizer.lr"]
    assert sweeper.custom_search_space == "sweep.search.l2_or_none"
    assert cfg.validation.name == "kfold" and cfg.validation.fold is None


@pytest.mark.parametrize("sweep_arg", ["validation.fold=0,1,2", "validation.fold=range(5)", "validation.fold=choice(0,1)"])
def test_optuna_refuses_folds_as_a_hyperparameter(sweep_arg):
    with pytest.raises(SweepConfigError, match="not a hyperparameter"):
        refuse_data_sweeps(["optimizer.lr=tag(log, interval(1e-4, 1e-1))", sweep_arg])


def test_optuna_accepts_fixed_values_and_real_hyperparameters():
    refuse_data_sweeps(["optimizer.lr=tag(log, interval(1e-4, 1e-1))", "validation.fold=0", "seed=0"])


# ----------------------------------------------------------------------------- real sweeps


def _comparable(table: pd.DataFrame) -> pd.DataFrame:
    keep = [c for c in table.columns if not any(v in c for v in VOLATILE)]
    table = table[keep]
    keys = [c for c in keep if c in ("optimizer.lr", "validation.fold")]
    return table.sort_values(keys).reset_index(drop=True)


def _assert_same_table(a: pd.DataFrame, b: pd.DataFrame, label: str) -> None:
    a, b = _comparable(a), _comparable(b)
    assert list(a.columns) == list(b.columns), label
    assert len(a) == len(b) == 4 or len(a) == len(b) == 2, label
    for column in a.columns:
        x, y = a[column], b[column]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            assert np.allclose(x.to_numpy(float), y.to_numpy(float), rtol=1e-5, atol=1e-6, equal_nan=True), (label, column)
        else:
            assert x.astype(str).tolist() == y.astype(str).tolist(), (label, column)


def _sweep(tmp: Path, name: str, *launcher: str) -> Path:
    sweep_dir = tmp / name
    run_sweep("-m", *FOUR_RUNS, *launcher, f"hydra.sweep.dir={sweep_dir}", cwd=tmp, timeout=300)
    return sweep_dir


@pytest.fixture(scope="module")
def basic_sweep(tmp_path_factory) -> Path:
    return _sweep(tmp_path_factory.mktemp("basic"), "basic")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "launcher", "threads_line"),
    [
        ("joblib", ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], "threads: 1 (joblib: 2 workers"),
        ("ray", ["hydra/launcher=ray_local"], "threads: 1 (ray: 1 CPU(s) reserved per task)"),
        ("submitit_local", ["hydra/launcher=submitit_local"], "threads: 1 (submitit"),
    ],
)
def test_every_launcher_gives_the_same_records_and_tables(basic_sweep, tmp_path, name, launcher, threads_line):
    from sweep.results import load

    started = time.time()
    sweep_dir = _sweep(tmp_path, name, *launcher)

    records = records_under(sweep_dir)
    assert len(records) == 4 and all(r["status"] == "completed" for r in records), [r["error"] for r in records]
    assert all(Path(r["output_dir"]).parent == sweep_dir for r in records), "records must land in the sweep dir"
    reference = {(r["optimizer.lr"], r["validation.fold"]): r for r in records_under(basic_sweep)}
    for record in records:
        expected = reference[(record["optimizer.lr"], record["validation.fold"])]
        for metric in ("val_accuracy", "val_loss", "train_loss", "train_accuracy"):
            assert math.isclose(record[metric], expected[metric], rel_tol=1e-5, abs_tol=1e-6), (name, metric)

    # The end-of-sweep tables are read from disk in the sweep's process: the same under every launcher.
    for table in ("results.csv", "summary.csv"):
        assert (sweep_dir / table).is_file(), table
        _assert_same_table(pd.read_csv(basic_sweep / table), pd.read_csv(sweep_dir / table), f"{name} {table}")
    _assert_same_table(load(basic_sweep), load(sweep_dir), f"{name} load()")

    # Each job ran with the thread limit of its launcher (2 cores or more: 1 thread per worker here).
    logs = "".join(p.read_text() for p in sweep_dir.glob("*/*.log"))
    if psutil.cpu_count() <= 2 or name != "joblib":
        assert logs.count(threads_line) == 4, logs

    if name == "ray":
        # The local Ray instance ran on loopback only, and stopped with the sweep.
        ray_tmp = Path(os.environ.get("RAY_TMPDIR", tempfile.gettempdir())) / "ray"
        sessions = [d for d in ray_tmp.glob("session_2*") if d.stat().st_mtime >= started]
        raylet_logs = "".join(p.read_text(errors="replace") for d in sessions for p in d.glob("logs/raylet.out"))
        addresses = re.findall(r"node_manager address: ([^:\s]+):", raylet_logs)
        assert addresses and set(addresses) == {"127.0.0.1"}, addresses
        left = [p for p in psutil.process_iter() if p.name() in ("raylet", "gcs_server") and p.create_time() >= started]
        _, alive = psutil.wait_procs(left, timeout=20)  # Ray's own processes end on their own once the driver has gone
        assert not alive, [p.name() for p in alive]


@pytest.mark.slow
def test_optuna_trials_are_ordinary_records_and_write_optimization_results(tmp_path):
    sweep_dir = tmp_path / "optuna"
    run_sweep(
        "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=3", "trainer.epochs=1", "trainer.save_model=false",
        "validation.n_splits=2", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path, timeout=300,
    )  # fmt: skip
    records = records_under(sweep_dir)
    assert len(records) == 3 and all(r["status"] == "completed" for r in records), [r["error"] for r in records]
    for r in records:
        # The objective is the mean over every fold, and the fold is not a trial parameter.
        assert r["validation.fold"] is None and len(r["fold_metrics"]) == 2
        assert math.isclose(r["val_accuracy"], np.mean([f["val_accuracy"] for f in r["fold_metrics"]]), rel_tol=1e-9)
        assert not any(o.startswith("validation.fold") for o in r["overrides"])
        assert 1e-4 <= r["optimizer.lr"] <= 1e-1 and 0.0 <= r["regularizer.dropout"] <= 0.6
        if r["regularizer.name"] == "none":
            assert r["regularizer.l2"] == 0
        else:
            assert L2_RANGE[0] <= r["regularizer.l2"] <= L2_RANGE[1]
    assert len({r["optimizer.lr"] for r in records}) == 3  # a search, not one config thrice

    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert best["name"] == "optuna"
    top = max(records, key=lambda r: r["val_accuracy"])
    assert math.isclose(best["best_value"], top["val_accuracy"], rel_tol=1e-9)
    assert math.isclose(best["best_params"]["optimizer.lr"], top["optimizer.lr"], rel_tol=1e-12)

    table = pd.read_csv(sweep_dir / "results.csv")
    assert len(table) == 3 and sorted(table["val_accuracy"]) == pytest.approx(sorted(r["val_accuracy"] for r in records))


@pytest.mark.slow
def test_optuna_tells_failed_runs_as_failed_trials_and_goes_on(tmp_path):
    sweep_dir = tmp_path / "optuna_failures"
    # validation.n_splits=1 fails validation: those trials are recorded as failed, and the study goes on.
    proc = run_sweep(
        "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=4", "trainer.epochs=1", "trainer.save_model=false",
        "validation.n_splits=1,2", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path, timeout=300, check=False,
    )  # fmt: skip
    records = records_under(sweep_dir)
    assert len(records) == 4, proc.stderr
    failed = [r for r in records if r["validation.n_splits"] == 1]
    done = [r for r in records if r["validation.n_splits"] == 2]
    assert failed and done, "sampler seed 0 should draw both values in 4 trials"
    assert all(r["status"] == "failed" and "n_splits" in r["error"] for r in failed)
    assert all(r["status"] == "completed" for r in done)
    assert f"trial {failed[0]['job_num']} failed: SweepConfigError" in proc.stdout + proc.stderr
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert best["best_params"]["validation.n_splits"] == 2
    assert math.isclose(best["best_value"], max(r["val_accuracy"] for r in done), rel_tol=1e-9)


# ----------------------------------------------------------------------------- no cluster


def _last_stderr_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


@pytest.mark.slow
def test_slurm_without_sbatch_ends_in_one_line_naming_the_launcher(tmp_path):
    only_the_venv = {"PATH": str(Path(sys.executable).parent)}  # no sbatch, whatever this machine has
    proc = run_sweep(
        "-m", "trainer.epochs=1", "optimizer.lr=1e-3,1e-2", "hydra/launcher=slurm", f"hydra.sweep.dir={tmp_path / 'slurm'}",
        cwd=tmp_path, check=False, timeout=120, env=only_the_venv,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert _last_stderr_line(proc) == (
        "sweep: hydra/launcher=slurm: sbatch not found: no SLURM here; use hydra/launcher=submitit_local or joblib"
    )
    assert "Traceback" not in proc.stderr + proc.stdout
    assert records_under(tmp_path) == []


@pytest.mark.slow
def test_ray_with_no_cluster_at_the_address_ends_in_one_line_naming_the_launcher(tmp_path):
    if any(p.name() == "gcs_server" for p in psutil.process_iter()):
        pytest.skip("a Ray cluster runs on this machine: address=auto would join it")
    no_cluster_known = {"RAY_ADDRESS": "", "RAY_TMPDIR": str(tmp_path), "TMPDIR": str(tmp_path)}
    proc = run_sweep(
        "-m", "trainer.epochs=1", "optimizer.lr=1e-3,1e-2", "hydra/launcher=ray", "hydra.launcher.ray.init.address=auto",
        f"hydra.sweep.dir={tmp_path / 'ray'}", cwd=tmp_path, check=False, timeout=120, env=no_cluster_known,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    line = _last_stderr_line(proc)
    assert line.startswith("sweep: hydra/launcher=ray: no Ray cluster at hydra.launcher.ray.init.address=auto"), line
    assert "ray start --head" in line and "hydra/launcher=ray_local" in line
    assert "Traceback" not in proc.stderr + proc.stdout
    assert records_under(tmp_path) == []


def test_the_ray_preset_is_sweeps_launcher_with_the_plugins_fields():
    launcher = compose_with_hydra("hydra/launcher=ray", "hydra.launcher.ray.init.address=auto").hydra.launcher
    assert launcher._target_ == "hydra_plugins.sweep_ray.RayLauncher"
    assert launcher.ray.init.address == "auto" and dict(launcher.ray.remote) == {}
    assert compose_with_hydra("hydra/launcher=slurm").hydra.launcher._target_ == "hydra_plugins.sweep_slurm.SlurmLauncher"


#: Runs the ``sweep`` command as if hydra-ray-launcher (the ``ray`` extra) were not installed.
WITHOUT_RAY_EXTRA = """
import sys
sys.modules["hydra_plugins.hydra_ray_launcher"] = None  # every import of it fails, and Hydra's plugin scan skips it
sys.argv[0] = "sweep"
from sweep.app import main
main()
"""


@pytest.mark.slow
@pytest.mark.parametrize("choice", ["ray", "ray_local"])
def test_a_ray_launcher_without_the_ray_extra_says_how_to_install_it(tmp_path, choice):
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_RAY_EXTRA, "-m", "optimizer.lr=1e-3,1e-2", f"hydra/launcher={choice}",
         f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert _last_stderr_line(proc) == f"sweep: hydra/launcher={choice} needs the ray extra: pip install 'sweep[ray]' (-e '.[ray]' in a checkout)"
    assert "Traceback" not in proc.stderr
    assert records_under(tmp_path) == []
