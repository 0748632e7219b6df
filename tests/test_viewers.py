"""Viewers: a sweep as TensorBoard's HParams dashboard and as one HTML page, written from its records.

A real sweep runs once (in a subprocess, some of its jobs failing) and writes both at its
end; the tests read them back as their users' tools do: TensorBoard's own event reader and
a real ``tensorboard --logdir`` on 127.0.0.1, and the page in a real headless Chromium.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import run_sweep
from sweep.plots import figures
from sweep.results import history_of, load, runs_of, shown_columns, summarize

pytestmark = pytest.mark.slow

SWEEP_RESULTS = str(Path(sys.executable).with_name("sweep-results"))
TENSORBOARD = str(Path(sys.executable).with_name("tensorboard"))
#: 8 Keras jobs, lr x L2 x 2 folds; the 4 with ``optimizer.lr=-1`` fail and are recorded so.
GRID = ["optimizer.lr=-1,0.01", "regularizer.l2=0,0.01", "validation=kfold", "validation.n_splits=2", "validation.fold=0,1"]
VIEWERS = ["hydra.callbacks.results.tensorboard=true", "hydra.callbacks.results.html=true"]


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    sweep_dir = tmp_path_factory.mktemp("viewers") / "sweep"
    proc = run_sweep("-m", *GRID, "trainer.epochs=3", "trainer.save_model=false", *VIEWERS, f"hydra.sweep.dir={sweep_dir}", cwd=sweep_dir.parent, check=False)
    assert proc.returncode == 1 and "8 runs: 4 completed, 4 failed" in proc.stdout, proc.stdout + proc.stderr
    return sweep_dir


def read_runs(log_dir: Path) -> dict[str, dict]:
    """Each run dir under ``log_dir`` as TensorBoard's event reader sees it: its session's hparams and group, its scalars."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata
    from tensorboard.util import tensor_util

    runs = {}
    for run_dir in sorted(d for d in log_dir.iterdir() if d.is_dir()):
        events = EventAccumulator(str(run_dir), size_guidance={"tensors": 0})
        events.Reload()
        start = metadata.parse_session_start_info_plugin_data(events.PluginTagToContent("hparams")[metadata.SESSION_START_INFO_TAG])
        hparams = {name: value.number_value if value.HasField("number_value") else value.string_value for name, value in start.hparams.items()}
        scalars = {
            tag: [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in events.Tensors(tag)]
            for tag in events.Tags()["tensors"]
            if tag != metadata.SESSION_START_INFO_TAG
        }
        runs[run_dir.name] = {"hparams": hparams, "group": start.group_name, "scalars": scalars}
    return runs


def test_every_run_is_a_tensorboard_session_with_its_hparams_metrics_and_curves(sweep_dir):
    runs = load(sweep_dir)
    sessions = read_runs(sweep_dir / "tensorboard")
    assert sorted(sessions) == sorted(str(n) for n in runs["job_num"])
    for run in runs.to_dict("records"):
        session = sessions[str(run["job_num"])]
        assert session["hparams"] == {"optimizer.lr": run["optimizer.lr"], "regularizer.l2": run["regularizer.l2"]}
        if run["status"] != "completed":
            assert session["scalars"] == {}, "a failed run has no metrics"
            continue
        assert session["scalars"]["val_accuracy"] == [(3, pytest.approx(run["val_accuracy"], rel=1e-6))]
        assert session["scalars"]["fit_time_s"] == [(3, pytest.approx(run["fit_time_s"], rel=1e-6))]
        history = history_of(Path(run["output_dir"]))
        curve = session["scalars"]["epoch_val_accuracy"]
        assert [step for step, _ in curve] == [1, 2, 3]
        assert [value for _, value in curve] == pytest.approx(history["val_accuracy"].tolist(), rel=1e-6)
    groups = {}
    for run in runs.to_dict("records"):  # the folds of a config are one session group
        groups.setdefault((run["optimizer.lr"], run["regularizer.l2"]), set()).add(sessions[str(run["job_num"])]["group"])
    assert len(groups) == 4 and all(len(names) == 1 for names in groups.values())
    assert len({name for names in groups.values() for name in names}) == 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def test_tensorboard_serves_the_sweep_in_its_hparams_dashboard_with_fold_means(sweep_dir):
    port = free_port()
    server = subprocess.Popen([TENSORBOARD, "--logdir", str(sweep_dir / "tensorboard"), "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/data/plugin/hparams"
        deadline = time.monotonic() + 120
        while True:
            try:
                groups = post(f"{url}/session_groups", {"experimentName": "", "startIndex": 0, "sliceSize": 100,
                                                        "allowedStatuses": ["STATUS_UNKNOWN"], "aggregationType": "AGGREGATION_AVG"})  # fmt: skip
                if len(groups.get("sessionGroups", [])) == 4:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "tensorboard did not serve the sweep"
            time.sleep(1)
        experiment = post(f"{url}/experiment", {"experimentName": ""})
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert sorted(h["name"] for h in experiment["hparamInfos"]) == ["optimizer.lr", "regularizer.l2"]
    assert {"val_accuracy", "val_loss", "fit_time_s"} <= {m["name"]["tag"] for m in experiment["metricInfos"]}
    summary = summarize(load(sweep_dir))
    for group in groups["sessionGroups"]:
        config = summary[(summary["optimizer.lr"] == group["hparams"]["optimizer.lr"]) & (summary["regularizer.l2"] == group["hparams"]["regularizer.l2"])]
        shown = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
        assert len(group["sessions"]) == 2
        if config["n_failed"].iloc[0]:
            assert "val_accuracy" not in shown
        else:
            assert shown["val_accuracy"] == pytest.approx(config["mean_val_accuracy"].iloc[0], rel=1e-6)


def test_sweep_results_rewrites_the_dashboard_without_doubling_any_session(sweep_dir, tmp_path):
    for _ in range(2):
        proc = subprocess.run([SWEEP_RESULTS, str(sweep_dir), "--tensorboard", str(tmp_path / "tb")], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    assert read_runs(tmp_path / "tb") == read_runs(sweep_dir / "tensorboard")
    log_dirs = [tmp_path / "tb", *(d for d in (tmp_path / "tb").iterdir() if d.is_dir())]  # the experiment, 8 runs
    assert [len(list(d.glob("events.out.tfevents.*"))) for d in log_dirs] == [1] * 9


def test_in_process_folds_give_each_fold_its_own_curves(tmp_path):
    sweep_dir = tmp_path / "sweep"
    run_sweep("-m", "optimizer.lr=0.01,0.001", "validation=kfold", "validation.n_splits=2", "validation.fold=null", "trainer.epochs=2",
              "trainer.save_model=false", "hydra.callbacks.results.tensorboard=true", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)  # fmt: skip
    for run in load(sweep_dir).to_dict("records"):
        scalars = read_runs(sweep_dir / "tensorboard")[str(run["job_num"])]["scalars"]
        history = history_of(Path(run["output_dir"]))
        for fold in (0, 1):
            curve = [value for _, value in scalars[f"fold{fold}/epoch_val_loss"]]
            assert curve == pytest.approx(history[history["fold"] == fold]["val_loss"].tolist(), rel=1e-6)
        assert scalars["val_accuracy"] == [(2, pytest.approx(run["val_accuracy"], rel=1e-6))]


# --------------------------------------------------------------------------- an Optuna study


def test_every_config_is_a_trial_of_an_optuna_study_that_optuna_dashboard_serves(sweep_dir, tmp_path):
    optuna = pytest.importorskip("optuna", reason="the optuna extra")
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = tmp_path / "sweep.journal"
    for _ in range(2):  # written again, the study is replaced, not doubled
        proc = subprocess.run([SWEEP_RESULTS, str(sweep_dir), "--optuna-journal", str(journal)], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0 and "Warning" not in proc.stderr, proc.stderr
    study = optuna.load_study(study_name="sweep", storage=JournalStorage(JournalFileBackend(str(journal))))
    runs, summary = load(sweep_dir), summarize(load(sweep_dir))
    assert len(study.trials) == len(summary) == 4 and study.direction == optuna.study.StudyDirection.MAXIMIZE
    for trial, (_, config) in zip(study.trials, summary.iterrows()):
        assert trial.params == {"optimizer.lr": config["optimizer.lr"], "regularizer.l2": config["regularizer.l2"]}
        if config["n_failed"]:
            assert trial.state == optuna.trial.TrialState.FAIL and trial.intermediate_values == {}
            continue
        assert trial.value == config["mean_val_accuracy"]
        folds = [history_of(Path(d)) for d in runs_of(runs, config)["output_dir"]]
        assert trial.intermediate_values == {e: pytest.approx(sum(h["val_accuracy"][e - 1] for h in folds) / 2) for e in (1, 2, 3)}
    assert study.best_trial.params["optimizer.lr"] == summary["optimizer.lr"].iloc[0]

    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).with_name("optuna-dashboard")), str(journal), "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        studies = _get_when_up(f"http://127.0.0.1:{port}/api/studies", server)["study_summaries"]
        assert [s["study_name"] for s in studies] == ["sweep"]
        served = _get_when_up(f"http://127.0.0.1:{port}/api/studies/{studies[0]['study_id']}?after=0", server)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert served["name"] == "sweep" and len(served["trials"]) == 4
    assert sorted(t["state"] for t in served["trials"]) == ["Complete", "Complete", "Fail", "Fail"]


def _get_when_up(url: str, server: subprocess.Popen) -> dict:
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                return json.load(response)
        except OSError:
            assert time.monotonic() < deadline and server.poll() is None, f"nothing served at {url}"
            time.sleep(0.5)


# ------------------------------------------------------------------------------------- the page


def chromium():
    """A headless Chromium driven through its chromedriver (both from the system's packages: ``make browser``)."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the test extra")
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        pytest.skip("no chromium and chromedriver on PATH: `make browser` installs them (root and apt-get); .ci/run does")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))


def test_the_html_report_renders_the_ranked_table_and_every_figure_in_chromium(sweep_dir):
    runs, summary = load(sweep_dir), summarize(load(sweep_dir))
    browser = chromium()
    try:
        browser.get((sweep_dir / "report.html").as_uri())
        ranked = browser.execute_script(
            "return Array.from(document.querySelectorAll('#ranked tbody tr')).map(r => Array.from(r.cells).map(c => c.textContent))"
        )
        header = browser.execute_script("return Array.from(document.querySelectorAll('#ranked thead th')).map(c => c.textContent)")
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().width])"
        )
        failures = browser.execute_script("return document.querySelectorAll('#failures tbody tr').length")
        requests = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    finally:
        browser.quit()
    assert header == shown_columns(summary) and header[0] == "rank_val_accuracy"
    assert [int(row[0]) for row in ranked] == summary["rank_val_accuracy"].tolist()
    best = dict(zip(header, ranked[0]))
    assert float(best["optimizer.lr"]) == summary["optimizer.lr"].iloc[0] == 0.01
    assert float(best["mean_val_accuracy"]) == pytest.approx(summary["mean_val_accuracy"].iloc[0], abs=5e-4)
    assert sorted(alt for alt, *_ in images) == sorted(figures(runs, summary))
    assert all(complete and width > 200 and height > 200 and shown > 0 for _, complete, width, height, shown in images), images
    assert failures == 4
    assert requests == [], "the page loads nothing from elsewhere"


def test_sweep_results_writes_the_report_anywhere_with_its_figures_inside(sweep_dir, tmp_path):
    out = tmp_path / "reports" / "sweep.html"
    proc = subprocess.run([SWEEP_RESULTS, str(sweep_dir), "--html", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    runs = load(sweep_dir)
    assert out.read_text().count("src='data:image/png;base64,") == len(figures(runs, summarize(runs))) == 2
