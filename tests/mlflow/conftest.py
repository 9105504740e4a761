"""The MLflow compatibility suite: the real `mlflow` client against `cairn server`.

Each test session starts one `cairn server --port 0` on a fresh data directory and
points MLFLOW_TRACKING_URI at it. CAIRN_BIN names the binary (default: the debug build).
"""

import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
CAIRN_BIN = os.environ.get("CAIRN_BIN", str(ROOT / "target" / "debug" / "cairn"))


@pytest.fixture(scope="session")
def cairn_server():
    data = tempfile.mkdtemp(prefix="cairn-mlflow-")
    proc = subprocess.Popen(
        [CAIRN_BIN, "server", "--port", "0", "--data", data],
        stdout=subprocess.PIPE,
        stderr=sys.stderr,
        text=True,
        env={**os.environ, "RUST_LOG": "warn"},
    )
    line = proc.stdout.readline()
    url = next(w for w in line.split() if w.startswith("http://"))
    for _ in range(100):
        try:
            if requests.get(f"{url}/readyz", timeout=1).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.05)
    yield {"url": url, "data": data}
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session", autouse=True)
def tracking_uri(cairn_server):
    import mlflow

    os.environ["MLFLOW_TRACKING_URI"] = cairn_server["url"]
    # Fail fast instead of retrying with backoff on an error answer.
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    mlflow.set_tracking_uri(cairn_server["url"])
    return cairn_server["url"]


@pytest.fixture
def client():
    from mlflow import MlflowClient

    return MlflowClient()


@pytest.fixture
def unique():
    """A fresh name prefix per test, so tests share one server without colliding."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def cairn(cairn_server):
    """Runs the cairn CLI against the same server; returns the CompletedProcess."""

    def run(*args, check=True):
        result = subprocess.run(
            [CAIRN_BIN, "--registry", cairn_server["url"], *args],
            capture_output=True,
            text=True,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"cairn {args} failed: {result.stderr}")
        return result

    return run


def mlflow_major():
    import mlflow

    return int(mlflow.__version__.split(".")[0])
