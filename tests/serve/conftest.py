"""`cairn serve` with the real onnxruntime (the `onnxruntime` wheel of this venv),
real scikit-learn models converted by skl2onnx, and MLflow's own `mlflow models serve`
as the reference for answers."""

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "support"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from infra import CAIRN_BIN, CairnServer, cairn, free_port, wait_until  # noqa: E402,F401
import models as model_fixtures  # noqa: E402

VENV_BIN = str(Path(sys.executable).parent)


def onnxruntime_library():
    """The shared library inside this venv's onnxruntime wheel."""
    import onnxruntime

    capi = Path(onnxruntime.__file__).parent / "capi"
    return str(next(p for p in sorted(capi.iterdir()) if p.name.startswith("libonnxruntime.so")))


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """Every test model, built once: {name: description} (see models.py)."""
    return model_fixtures.build_all(tmp_path_factory.mktemp("models"))


class Registry:
    """An embedded registry (a data directory) the CLI and `cairn serve` share."""

    def __init__(self, home):
        self.home = str(home)
        self.env = {"CAIRN_HOME": self.home, "CAIRN_REGISTRY": self.home}

    def cli(self, *args, check=True):
        return cairn(*args, env=self.env, check=check)

    def push(self, path, model):
        self.cli("push", str(path), "--model", model)
        versions = self.cli("versions", model, "--json").stdout
        import json

        return max(v["version"] for v in json.loads(versions))


@pytest.fixture
def registry(tmp_path):
    return Registry(tmp_path / "registry")


class Serving:
    """A `cairn serve` process on a free port; its stderr is kept for the test."""

    def __init__(self, reference, env, *extra, cache=None, library=True):
        self.log = []
        args = [CAIRN_BIN, "serve", reference, "--port", "0", *extra]
        if cache:
            args += ["--cache-dir", str(cache)]
        full_env = {**os.environ, "RUST_LOG": "info", **env}
        if library:
            full_env["ORT_DYLIB_PATH"] = onnxruntime_library()
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env
        )
        line = self.proc.stdout.readline()
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()
        if not line.startswith("serving "):
            self.proc.wait(timeout=10)
            self._drain.join(timeout=10)  # every line it wrote, before saying why
            raise RuntimeError(f"cairn serve {reference} did not start: {''.join(self.log)}")
        self.url = line.split(" on ")[1].strip()
        self.session = requests.Session()

    def _read_stderr(self):
        for line in self.proc.stderr:
            self.log.append(line)

    def invoke(self, body=None, csv=None, **kwargs):
        if csv is not None:
            return self.session.post(
                f"{self.url}/invocations", data=csv, headers={"Content-Type": "text/csv"}, **kwargs
            )
        return self.session.post(f"{self.url}/invocations", json=body, **kwargs)

    def served_version(self):
        return requests.get(f"{self.url}/ping", timeout=5).headers["x-cairn-model-version"]

    def health(self):
        return requests.get(f"{self.url}/health", timeout=5).json()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def serve(tmp_path):
    started = []

    def start(reference, registry, *extra, **kwargs):
        s = Serving(reference, registry.env, *extra, cache=tmp_path / "cache", **kwargs)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


class MlflowServe:
    """`mlflow models serve` on an MLflow model (a directory, or a `models:/` URI with
    `env` naming the tracking server), as users run it."""

    def __init__(self, model_dir, env=None):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                str(Path(VENV_BIN) / "mlflow"), "models", "serve", "-m", str(model_dir),
                "--env-manager", "local", "-h", "127.0.0.1", "-p", str(self.port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # It starts uvicorn by name: this venv's, on PATH.
            env={**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}", **(env or {})},
        )
        self.url = f"http://127.0.0.1:{self.port}"

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow models serve {model_dir} exited {self.proc.returncode}")
            return requests.get(f"{self.url}/ping", timeout=1).ok

        wait_until(up, "mlflow models serve", timeout=120)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
