"""What the Python suites start for real: `cairn server` processes, an S3-protocol
server (moto, from the project's own venv) and fresh PostgreSQL databases.

Environment:
  CAIRN_BIN              the cairn binary (default: target/debug/cairn)
  CAIRN_TEST_POSTGRES    a PostgreSQL URL whose server the tests create databases on
                         (default postgres://postgres@127.0.0.1:5432/test)
  MOTO_SERVER            the moto_server executable (default: .venv/stores/bin/moto_server)
  AZURITE_BLOB           Azurite's blob server (default: .venv/azurite/node_modules/.bin/azurite-blob)
  STORES_PYTHON          a Python with azure-storage-blob (default: .venv/stores/bin/python)
"""

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

ROOT = Path(__file__).resolve().parents[2]
CAIRN_BIN = os.environ.get("CAIRN_BIN", str(ROOT / "target" / "debug" / "cairn"))
POSTGRES = os.environ.get("CAIRN_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")
MOTO_SERVER = os.environ.get("MOTO_SERVER", str(ROOT / ".venv" / "stores" / "bin" / "moto_server"))
AZURITE_BLOB = os.environ.get(
    "AZURITE_BLOB", str(ROOT / ".venv" / "azurite" / "node_modules" / ".bin" / "azurite-blob")
)
STORES_PYTHON = os.environ.get("STORES_PYTHON", str(ROOT / ".venv" / "stores" / "bin" / "python"))

# Test credentials for the loopback S3 server; explicit, so no cloud metadata endpoint
# is ever asked for credentials.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "cairn-test",
    "AWS_SECRET_ACCESS_KEY": "cairn-test-secret",
    "AWS_REGION": "us-east-1",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


class S3Server:
    """moto_server on a free loopback port."""

    def __init__(self):
        port = free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: requests.get(self.endpoint, timeout=1).ok, "moto_server")

    def create_bucket(self, name=None):
        name = name or f"cairn-{uuid.uuid4().hex[:12]}"
        requests.put(f"{self.endpoint}/{name}", timeout=10).raise_for_status()
        return name

    def env(self):
        return {**S3_ENV, "AWS_ENDPOINT_URL": self.endpoint}

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


class AzureBlobServer:
    """Azurite's blob service on a free loopback port, with its well-known dev account."""

    ACCOUNT = "devstoreaccount1"
    KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

    def __init__(self, workdir):
        port = free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [AZURITE_BLOB, "--blobHost", "127.0.0.1", "--blobPort", str(port),
             "--location", str(workdir), "--silent", "--skipApiVersionCheck"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: requests.get(self.endpoint, timeout=1).status_code < 500, "azurite")

    def create_container(self, name=None):
        name = name or f"cairn-{uuid.uuid4().hex[:12]}"
        connection = (
            f"DefaultEndpointsProtocol=http;AccountName={self.ACCOUNT};AccountKey={self.KEY};"
            f"BlobEndpoint={self.endpoint}/{self.ACCOUNT};"
        )
        subprocess.run(
            [STORES_PYTHON, "-c",
             "import sys; from azure.storage.blob import BlobServiceClient;"
             "BlobServiceClient.from_connection_string(sys.argv[1]).create_container(sys.argv[2])",
             connection, name],
            check=True,
            capture_output=True,
        )
        return name

    def env(self):
        # object_store's Azure backend talks to the emulator with its dev account.
        return {"AZURE_STORAGE_USE_EMULATOR": "true", "AZURITE_BLOB_STORAGE_URL": self.endpoint}

    def stop(self):
        self.proc.terminate()
        try:
            # Azurite may take its time over SIGTERM; its data is throwaway.
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _psql(sql):
    subprocess.run(
        ["psql", POSTGRES, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql],
        check=True,
        capture_output=True,
    )


class Database:
    """A fresh PostgreSQL database, dropped by `drop`."""

    def __init__(self):
        self.name = f"cairn_test_{uuid.uuid4().hex[:12]}"
        _psql(f"CREATE DATABASE {self.name}")
        parts = urlsplit(POSTGRES)
        self.url = urlunsplit(parts._replace(path=f"/{self.name}"))

    def drop(self):
        _psql(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


class ThrowawayPostgres:
    """A PostgreSQL cluster of its own, made with PostgreSQL's own tools (Debian keeps
    them in /usr/lib/postgresql/<major>/bin; PG_BIN overrides), on a free loopback
    port: one a test may kill. The tools refuse to run as root, so as root they run as
    the `postgres` user."""

    def __init__(self):
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
        self.bin = Path(os.environ.get("PG_BIN") or (bins[-1] if bins else ""))
        if not (self.bin / "pg_ctl").exists():
            raise RuntimeError("PostgreSQL's server tools (pg_ctl, initdb) are not installed")
        import tempfile

        self.home = Path(tempfile.mkdtemp(prefix="cairn-pg-"))
        self.data = self.home / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            import shutil

            shutil.chown(self.home, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        self.start()

    def _run(self, tool, *args, check=True):
        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True)

    def start(self):
        """Starts the cluster (again); after a kill its old backends may take a moment
        to go, and until then the new postmaster refuses to start."""
        options = f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1"
        deadline = time.monotonic() + 30
        while True:
            done = self._run(
                "pg_ctl", "-D", str(self.data), "-l", str(self.home / "log"), "-w",
                "-o", options, "start", check=False,
            )
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start: {done.stdout}{done.stderr}")
            time.sleep(0.2)

    def create_database(self, name):
        self._run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-q",
                  "-c", f'CREATE DATABASE "{name}"')

    def url_of(self, database):
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def kill(self):
        """SIGKILL of the postmaster, as when its machine dies."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)

    def stop(self):
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop", check=False)
        import shutil

        shutil.rmtree(self.home, ignore_errors=True)


class CairnServer:
    """`cairn server --port 0` with the given store arguments."""

    def __init__(self, *store_args, env=None):
        self.proc = subprocess.Popen(
            [CAIRN_BIN, "server", "--port", "0", *store_args],
            stdout=subprocess.PIPE,
            stderr=sys.stderr,
            text=True,
            env={**os.environ, "RUST_LOG": "warn", **(env or {})},
        )
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"cairn server {' '.join(store_args)} did not start")
        self.url = next(w for w in line.split() if w.startswith("http://"))
        wait_until(lambda: requests.get(f"{self.url}/readyz", timeout=1).ok, "cairn server")

    def kill(self):
        """SIGKILL: no graceful shutdown, as when a machine dies."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def cairn(*args, env=None, check=True, **kwargs):
    """Runs the cairn CLI; returns the CompletedProcess."""
    done = subprocess.run(
        [CAIRN_BIN, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        **kwargs,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"cairn {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done


def fetch(session, method, url, **kwargs):
    """A request whose body is read whole — except a live event stream
    (`text/event-stream`, which never ends), whose status and headers are the answer."""
    response = session.request(method, url, stream=True, **kwargs)
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        response.close()
    else:
        response.content  # noqa: B018 (reads the body)
    return response

