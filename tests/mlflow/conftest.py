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
sys.path.insert(0, str(ROOT / "tests" / "support"))
import infra  # noqa: E402

CAIRN_BIN = infra.CAIRN_BIN


@pytest.fixture(scope="session")
def cairn_server():
    """One server for the session: on the embedded default (SQLite + a directory), or,
    with CAIRN_TEST_BACKEND=postgres-s3, on a fresh PostgreSQL database and an S3 bucket
    served by moto on loopback — the same suite proves both behave the same."""
    backend = os.environ.get("CAIRN_TEST_BACKEND", "sqlite")
    data = tempfile.mkdtemp(prefix="cairn-mlflow-")
    cleanups = []
    if backend == "sqlite":
        server = infra.CairnServer("--data", data)
    elif backend == "postgres-s3":
        s3 = infra.S3Server()
        cleanups.append(s3.stop)
        db = infra.Database()
        cleanups.append(db.drop)
        bucket = s3.create_bucket()
        server = infra.CairnServer(
            "--data", data, "--db", db.url, "--artifacts", f"s3://{bucket}/registry", env=s3.env()
        )
    else:
        raise ValueError(f"unknown CAIRN_TEST_BACKEND {backend!r}")
    cleanups.append(server.stop)
    yield {"url": server.url, "data": data}
    for cleanup in reversed(cleanups):
        cleanup()


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
