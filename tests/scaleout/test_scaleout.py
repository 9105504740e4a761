"""Many servers, one registry: PostgreSQL metadata and S3 artifacts shared by stateless
`cairn server` processes."""

import hashlib
import json
import os
import random
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import requests

import infra
from infra import cairn


def versions_of(registry_args, model, env):
    out = cairn(*registry_args, "versions", model, "--json", env=env).stdout
    return sorted(v["version"] for v in json.loads(out))


def test_two_servers_number_versions_and_move_aliases_as_one(team_registry, tmp_path):
    """8 clients — CLI pushes and MLflow create_model_version calls — spread over two
    servers create 200 versions of one model: exactly 1..200, no failed request, every
    manifest verifies. Then promote/rollback race on one alias from both servers and
    the history stays a chain."""
    from mlflow import MlflowClient

    a = team_registry["start_server"]()
    b = team_registry["start_server"]()
    servers = [a.url, b.url]
    env = team_registry["env"]

    # An MLflow run whose logged model the MLflow clients register, again and again.
    client_a = MlflowClient(tracking_uri=a.url)
    exp = client_a.create_experiment(f"scaleout-{os.getpid()}-{time.time_ns()}")
    run = client_a.create_run(exp)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "MLmodel").write_text("flavors: {}\n")
    (model_dir / "weights.bin").write_bytes(os.urandom(4096))
    client_a.log_artifacts(run.info.run_id, str(model_dir), artifact_path="model")
    MlflowClient(tracking_uri=b.url).create_registered_model("shared")
    # Server a keeps this answer while nothing changes; b's writes must void it.
    assert client_a.search_model_versions("name='shared'") == []

    def cli_pusher(worker):
        for i in range(25):
            src = tmp_path / f"push-{worker}-{i}"
            src.mkdir()
            (src / "model.bin").write_bytes(f"worker {worker} version {i}".encode() * 100)
            cairn("--registry", servers[(worker + i) % 2], "push", str(src), "--model", "shared", env=env)

    def mlflow_registrar(worker):
        for i in range(25):
            client = MlflowClient(tracking_uri=servers[(worker + i) % 2])
            client.create_model_version(
                "shared", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
            )

    with ThreadPoolExecutor(8) as pool:
        jobs = [pool.submit(cli_pusher, w) for w in range(4)]
        jobs += [pool.submit(mlflow_registrar, w) for w in range(4)]
        for job in jobs:
            job.result()  # re-raises any failed request

    assert versions_of(["--registry", a.url], "shared", env) == list(range(1, 201))
    searched = client_a.search_model_versions("name='shared'", max_results=1000)
    assert sorted(int(v.version) for v in searched) == list(range(1, 201))
    assert versions_of(team_registry["embedded"], "shared", env) == list(range(1, 201))
    verified = cairn("--registry", b.url, "verify", "--all", env=env)
    assert verified.stderr.startswith("ok: "), verified.stderr

    # Promote and roll back one alias from both servers at once.
    cairn("--registry", a.url, "promote", "shared@1", "--to", "production", env=env)
    assert client_a.get_model_version_by_alias("shared", "production").version == "1"

    def alias_mover(worker):
        rng = random.Random(worker)
        for i in range(10):
            server = servers[(worker + i) % 2]
            if rng.random() < 0.3:
                done = cairn("--registry", server, "rollback", "shared", "production", env=env, check=False)
                # A rollback may find no earlier version to return to; nothing else may fail.
                assert done.returncode == 0 or "no earlier version" in done.stderr, done.stderr
            else:
                target = rng.randint(1, 200)
                cairn("--registry", server, "promote", f"shared@{target}", "--to", "production", env=env)

    with ThreadPoolExecutor(8) as pool:
        for job in [pool.submit(alias_mover, w) for w in range(8)]:
            job.result()

    history = json.loads(
        cairn("--registry", b.url, "history", "shared", "production", "--json", env=env).stdout
    )
    assert len(history) > 40
    assert history[0]["from"] is None
    for previous, move in zip(history, history[1:]):
        assert move["from"] == previous["to"], (previous, move)
    current = requests.get(f"{a.url}/api/v1/models/shared/versions/production").json()
    assert current["version"] == history[-1]["to"]
    # Server a answered this before the race; the moves through b must void that answer.
    assert client_a.get_model_version_by_alias("shared", "production").version == str(history[-1]["to"])


def test_a_server_killed_mid_upload_leaves_nothing_and_the_retry_succeeds(team_registry, tmp_path):
    """SIGKILL one server while a 1 GiB push streams through it: no blob and no version
    become visible; the same push through the other server then succeeds and verifies."""
    doomed = team_registry["start_server"]()
    survivor = team_registry["start_server"]()
    env = team_registry["env"]
    src = tmp_path / "big"
    src.mkdir()
    big = src / "weights.bin"
    with open(big, "wb") as f:
        block = os.urandom(1024 * 1024)
        for i in range(1024):
            f.write(block[:-8] + i.to_bytes(8, "little"))
    h = hashlib.sha256()
    with open(big, "rb") as f:
        while chunk := f.read(8 * 1024 * 1024):
            h.update(chunk)
    digest = h.hexdigest()

    push = subprocess.Popen(
        [infra.CAIRN_BIN, "--registry", doomed.url, "push", str(src), "--model", "big"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    # Kill the server once the upload is well under way (some parts are in the bucket).
    time.sleep(4)
    assert push.poll() is None, "the upload finished before the server could be killed"
    doomed.kill()
    _, err = push.communicate(timeout=60)
    assert push.returncode == 1, err

    missing = requests.post(f"{survivor.url}/api/v1/blobs/missing", json={"digests": [digest]})
    assert missing.json()["missing"] == [digest]
    assert requests.get(f"{survivor.url}/api/v1/models/big").status_code == 404

    cairn("--registry", survivor.url, "push", str(src), "--model", "big", env=env, timeout=600)
    assert versions_of(["--registry", survivor.url], "big", env) == [1]
    cairn("--registry", survivor.url, "verify", "big@1", env=env)


def test_copy_from_embedded_to_postgres_and_s3(team_registry, tmp_path):
    """50 versions with aliases and history move from SQLite + local disk to
    PostgreSQL + S3; the target verifies; a second copy copies nothing."""
    env = team_registry["env"]
    local = tmp_path / "laptop"
    for i in range(50):
        src = tmp_path / f"v{i}"
        src.mkdir()
        (src / "model.bin").write_bytes(f"weights {i}".encode() * 1000)
        (src / "config.json").write_text('{"layers": 3}')  # shared by every version
        cairn("--registry", str(local), "push", str(src), "--model", f"model-{i % 5}", env=env)
    for n in (1, 3, 5):
        cairn("--registry", str(local), "promote", f"model-0@{n}", "--to", "production", env=env)
    cairn("--registry", str(local), "rollback", "model-0", "production", env=env)

    target = ["--to", team_registry["db"], "--to-artifacts", team_registry["artifacts"]]
    first = cairn("copy", "--from", str(local), *target, "--json", env=env)
    report = json.loads(first.stdout)
    assert report["blobs"] == 51 and report["rows"]["versions"] == 50, report

    team = team_registry["embedded"]
    verified = cairn(*team, "verify", "--all", env=env)
    assert verified.stderr.startswith("ok: 50 version(s), 51 blob(s)"), verified.stderr
    for m in range(5):
        assert versions_of(team, f"model-{m}", env) == versions_of(["--registry", str(local)], f"model-{m}", env)
    history = lambda *reg: json.loads(cairn(*reg, "history", "model-0", "production", "--json", env=env).stdout)
    assert history(*team) == history("--registry", str(local))

    again = cairn("copy", "--from", str(local), *target, env=env)
    assert "nothing to copy" in again.stdout, again.stdout

    # A server on the copy serves it.
    server = team_registry["start_server"]()
    shown = requests.get(f"{server.url}/api/v1/models/model-0/versions/production").json()
    assert shown["version"] == 3


def test_readyz_fails_when_a_store_is_unreachable(tmp_path):
    """/readyz answers 503 once the artifact store or the database stops answering."""
    s3 = infra.S3Server()
    db = infra.Database()
    try:
        bucket = s3.create_bucket()
        server = infra.CairnServer(
            "--data", str(tmp_path), "--db", db.url, "--artifacts", f"s3://{bucket}/r", env=s3.env()
        )
        try:
            assert requests.get(f"{server.url}/readyz").status_code == 200
            s3.stop()
            answer = requests.get(f"{server.url}/readyz", timeout=60)
            assert answer.status_code == 503, answer.text
            assert answer.json()["code"] == "not_ready"
        finally:
            server.stop()

        server = infra.CairnServer("--data", str(tmp_path / "2"), "--db", db.url)
        try:
            assert requests.get(f"{server.url}/readyz").status_code == 200
            db.drop()
            answer = requests.get(f"{server.url}/readyz", timeout=60)
            assert answer.status_code == 503, answer.text
        finally:
            server.stop()
    finally:
        db.drop()
        if s3.proc.poll() is None:
            s3.stop()
