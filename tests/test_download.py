"""MNIST and Fashion-MNIST downloaded by Keras' own ``get_file`` into Keras' cache, from a server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from conftest import compose_config, records_under, run_sweep
from sweep.config import SweepConfigError
from sweep.data import FASHION_MNIST_FILES, _load, load_dataset
from test_data import closed_port, write_keras_npz


@dataclass(frozen=True)
class Server:
    """A file server on 127.0.0.1: ``url`` serves the files in ``root``; ``requests`` lists the paths asked for."""

    url: str
    root: Path
    requests: list[str]


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """A real ``ThreadingHTTPServer`` on port 0 serving ``tmp_path/served``, with ``KERAS_HOME=tmp_path`` and no proxy for it."""
    root, requests = tmp_path / "served", []
    root.mkdir()

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    _load.cache_clear()  # each load below reads from disk or the server, not from an earlier test's load
    yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", root, requests)
    httpd.shutdown()
    httpd.server_close()


def load(*overrides: str):
    """``dataset=...`` loaded afresh, as a new process would (the in-process cache cleared)."""
    _load.cache_clear()
    return load_dataset(compose_config(*overrides).dataset)


def write_fashion_mnist(folder: Path, n_train: int = 60, n_test: int = 20) -> list[str]:
    """Fashion-MNIST's four gzipped idx files, tiny, as Keras' loader reads them; returns their sha256s in Keras' order."""
    rng = np.random.default_rng(1)
    parts = {"train": n_train, "t10k": n_test}
    for part, n in parts.items():
        labels, images = np.arange(n, dtype=np.uint8) % 10, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        header = np.array([0x801, n], ">i4").tobytes()
        (folder / f"{part}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(header + labels.tobytes()))
        header = np.array([0x803, n, 28, 28], ">i4").tobytes()
        (folder / f"{part}-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + images.tobytes()))
    return [hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in FASHION_MNIST_FILES]


def test_mnist_is_downloaded_into_keras_cache_once(server: Server, tmp_path: Path) -> None:
    write_keras_npz(server.root / "mnist.npz")
    origin = f"dataset.origin={server.url}/mnist.npz"
    data = load("dataset=mnist", origin)
    assert (tmp_path / "datasets" / "mnist.npz").read_bytes() == (server.root / "mnist.npz").read_bytes()
    assert data.x.shape == (120, 28, 28) and data.x_test.shape == (30, 28, 28) and server.requests == ["/mnist.npz"]
    assert len(load("dataset=mnist", origin).x) == 120 and server.requests == ["/mnist.npz"]


def test_fashion_mnist_is_downloaded_in_keras_layout_once_and_checked(server: Server, tmp_path: Path) -> None:
    (server.root / "fashion").mkdir()
    hashes = write_fashion_mnist(server.root / "fashion")
    overrides = ("dataset=fashion_mnist", f"dataset.origin={server.url}/fashion/", f"dataset.file_hash={':'.join(hashes)}")
    data = load(*overrides)
    assert sorted(p.name for p in (tmp_path / "datasets" / "fashion-mnist").iterdir()) == sorted(FASHION_MNIST_FILES)
    assert data.x.shape == (60, 28, 28) and data.x_test.shape == (20, 28, 28) and sorted(set(data.y)) == list(range(10))
    assert sorted(server.requests) == sorted(f"/fashion/{name}" for name in FASHION_MNIST_FILES)
    assert len(load(*overrides[:2]).x) == 60 and len(server.requests) == 4  # checked against the hashes, or not: from the cache


def test_a_fashion_mnist_npz_in_keras_cache_is_read_without_downloading(server: Server, tmp_path: Path) -> None:
    (tmp_path / "datasets").mkdir()
    write_keras_npz(tmp_path / "datasets" / "fashion_mnist.npz", n_train=50)
    assert len(load("dataset=fashion_mnist", f"dataset.origin={server.url}/").x) == 50 and server.requests == []


def test_a_download_with_the_wrong_hash_is_one_line_and_leaves_no_file(server: Server, tmp_path: Path) -> None:
    write_keras_npz(server.root / "mnist.npz")
    with pytest.raises(SweepConfigError) as caught:
        load("dataset=mnist", f"dataset.origin={server.url}/mnist.npz", f"dataset.file_hash={'0' * 64}")
    message = str(caught.value)
    assert message.startswith(f"dataset.file_hash: mnist.npz downloaded from {server.url}/mnist.npz does not have hash {'0' * 64}")
    assert "\n" not in message and server.requests == ["/mnist.npz"] and not (tmp_path / "datasets" / "mnist.npz").exists()


def test_fashion_mnist_hashes_are_four(server: Server) -> None:
    with pytest.raises(SweepConfigError, match=r"^dataset.file_hash: 'abc': Fashion-MNIST is 4 files") as caught:
        load("dataset=fashion_mnist", f"dataset.origin={server.url}/", "dataset.file_hash=abc")
    assert "\n" not in str(caught.value) and server.requests == []


@pytest.mark.parametrize("where", ["404", "closed port"])
def test_an_origin_that_does_not_serve_the_file_is_one_line_naming_it(server: Server, tmp_path: Path, where: str) -> None:
    origin = f"{server.url}/nothing/mnist.npz" if where == "404" else f"http://127.0.0.1:{closed_port()}/mnist.npz"
    with pytest.raises(SweepConfigError) as caught:
        load("dataset=mnist", f"dataset.origin={origin}")
    message = str(caught.value)
    assert message.startswith(f"dataset.origin: cannot download mnist.npz (URL fetch failure on {origin}")
    assert "\n" not in message and ("404" in message) == (where == "404")
    assert not (tmp_path / "datasets" / "mnist.npz").exists()


def test_a_missing_path_is_never_downloaded(server: Server, tmp_path: Path) -> None:
    write_keras_npz(server.root / "mnist.npz")
    missing = tmp_path / "absent.npz"
    with pytest.raises(SweepConfigError, match=rf"^dataset.path: no file at {missing}; put mnist.npz"):
        load("dataset=mnist", f"dataset.path={missing}", f"dataset.origin={server.url}/mnist.npz")
    assert server.requests == []


@pytest.mark.slow
def test_a_sweep_run_downloads_mnist_and_trains(server: Server, tmp_path: Path) -> None:
    write_keras_npz(server.root / "mnist.npz")
    origin = f"dataset.origin={server.url}/mnist.npz"
    overrides = ("dataset=mnist", origin, "trainer.epochs=1", "trainer.save_model=false", "hydra.run.dir=run")
    run_sweep(*overrides, cwd=tmp_path, env={"KERAS_HOME": str(tmp_path)})
    (record,) = records_under(tmp_path / "run")
    assert record["status"] == "completed" and record["dataset.name"] == "mnist" and 0 <= record["val_accuracy"] <= 1
    assert server.requests == ["/mnist.npz"] and (tmp_path / "datasets" / "mnist.npz").is_file()
