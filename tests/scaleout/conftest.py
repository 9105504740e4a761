"""Scale-out suite: several `cairn server` processes on one PostgreSQL database and one
S3 bucket (moto on loopback), driven by the `cairn` CLI and the real `mlflow` client."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "support"))
import infra  # noqa: E402


@pytest.fixture(scope="module")
def s3():
    server = infra.S3Server()
    yield server
    server.stop()


@pytest.fixture
def database():
    db = infra.Database()
    yield db
    db.drop()


@pytest.fixture
def team_registry(s3, database, tmp_path):
    """The team setup: a database, a bucket, and how to start servers on them."""
    bucket = s3.create_bucket()
    artifacts = f"s3://{bucket}/registry"
    servers = []

    def start_server():
        data = tmp_path / f"server-{len(servers)}"
        server = infra.CairnServer(
            "--data", str(data), "--db", database.url, "--artifacts", artifacts, env=s3.env()
        )
        servers.append(server)
        return server

    yield {
        "db": database.url,
        "artifacts": artifacts,
        "env": s3.env(),
        "start_server": start_server,
        # The CLI opening the stores itself (embedded mode on the team stores).
        "embedded": ["--registry", database.url, "--artifacts", artifacts],
    }
    for server in servers:
        server.stop()
