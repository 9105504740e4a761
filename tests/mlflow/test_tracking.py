"""Tracking through the real client: metric history, log_batch, search_runs, artifacts."""

import math
import time

import mlflow
from mlflow.entities import Metric, Param, RunTag


def test_metric_history_and_log_batch(client, unique):
    exp = client.create_experiment(f"track-{unique}")
    run = client.create_run(exp)
    rid = run.info.run_id
    for step, value in enumerate([0.5, 0.4, 0.3, 0.25]):
        client.log_metric(rid, "loss", value, step=step)
    now = int(time.time() * 1000)
    client.log_batch(
        rid,
        metrics=[Metric("acc", 0.9, now, 0), Metric("acc", 0.95, now + 1, 1)],
        params=[Param("lr", "0.01"), Param("depth", "8")],
        tags=[RunTag("team", "vision")],
    )
    client.log_param(rid, "lr", "0.01")  # same value again is fine
    history = client.get_metric_history(rid, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 0.5), (1, 0.4), (2, 0.3), (3, 0.25)]
    got = client.get_run(rid)
    assert got.data.metrics == {"loss": 0.25, "acc": 0.95}
    assert got.data.params == {"lr": "0.01", "depth": "8"}
    assert got.data.tags["team"] == "vision"
    client.set_terminated(rid)
    assert client.get_run(rid).info.status == "FINISHED"


def test_a_retried_log_batch_keeps_each_value_once(client, unique):
    """A value is its run, key, timestamp, step and value, as MLflow stores it: sending
    the same batch again (a client retrying after a timeout) adds nothing."""
    run = client.create_run(client.create_experiment(f"retry-{unique}"))
    rid = run.info.run_id
    now = int(time.time() * 1000)
    batch = [Metric("loss", 0.5, now, 0), Metric("loss", 0.4, now + 1, 1)]
    client.log_batch(rid, metrics=batch)
    client.log_batch(rid, metrics=batch, tags=[RunTag("attempt", "2")])
    client.log_metric(rid, "loss", 0.4, timestamp=now + 1, step=1)
    client.log_metric(rid, "loss", 0.45, timestamp=now + 1, step=1)  # another value: kept
    history = client.get_metric_history(rid, "loss")
    assert sorted((m.step, m.value) for m in history) == [(0, 0.5), (1, 0.4), (1, 0.45)]


def test_non_finite_metric_values_come_back(client, unique):
    """NaN and the infinities travel as the strings MLflow writes for them, in a run, a
    search answer and a metric history alike. (MLflow's SQL store keeps an infinity as
    the largest double, ±1.797e308, because some SQL engines cannot hold one; both of
    Cairn's can, so it gives back what was logged.)"""
    exp = client.create_experiment(f"non-finite-{unique}")
    rid = client.create_run(exp).info.run_id
    values = {"nan": float("nan"), "inf": float("inf"), "neg_inf": float("-inf"), "finite": 0.25}
    for key, value in values.items():
        client.log_metric(rid, key, value, step=1)

    def check(metrics):
        assert math.isnan(metrics["nan"])
        assert (metrics["inf"], metrics["neg_inf"], metrics["finite"]) == (math.inf, -math.inf, 0.25)

    check(client.get_run(rid).data.metrics)
    [found] = client.search_runs([exp])
    check(found.data.metrics)
    [nan] = client.get_metric_history(rid, "nan")
    assert math.isnan(nan.value) and nan.step == 1


def test_search_runs_filters_order_and_pages(client, unique):
    exp = client.create_experiment(f"search-{unique}")
    for i, acc in enumerate([0.2, 0.9, 0.6, 0.75]):
        run = client.create_run(exp, tags={"kind": "even" if i % 2 == 0 else "odd"})
        client.log_metric(run.info.run_id, "acc", acc)
        client.log_param(run.info.run_id, "idx", str(i))

    runs = client.search_runs([exp], "metrics.acc > 0.5", order_by=["metrics.acc DESC"])
    assert [r.data.metrics["acc"] for r in runs] == [0.9, 0.75, 0.6]
    runs = client.search_runs([exp], "params.idx = '2' and tags.kind = 'even'")
    assert [r.data.params["idx"] for r in runs] == ["2"]
    runs = client.search_runs([exp], "tags.kind LIKE 'ev%'", order_by=["params.idx ASC"])
    assert [r.data.params["idx"] for r in runs] == ["0", "2"]

    first = client.search_runs([exp], "", order_by=["metrics.acc ASC"], max_results=3)
    assert len(first) == 3 and first.token
    rest = client.search_runs([exp], "", order_by=["metrics.acc ASC"], max_results=3, page_token=first.token)
    assert len(rest) == 1 and not rest.token
    assert [r.data.metrics["acc"] for r in list(first) + list(rest)] == [0.2, 0.6, 0.75, 0.9]

    df = mlflow.search_runs([exp], filter_string="metrics.acc >= 0.75")
    assert len(df) == 2


def test_log_artifacts_list_download(client, unique, tmp_path):
    src = tmp_path / "outputs"
    (src / "plots").mkdir(parents=True)
    (src / "report.txt").write_text("all good\n")
    (src / "plots" / "loss.csv").write_text("step,loss\n0,0.5\n")
    mlflow.set_experiment(f"artifacts-{unique}")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(src), artifact_path="outputs")
        mlflow.log_artifact(str(src / "report.txt"))
    rid = run.info.run_id
    top = {a.path: a.is_dir for a in client.list_artifacts(rid)}
    assert top == {"outputs": True, "report.txt": False}
    inner = {a.path: a.file_size for a in client.list_artifacts(rid, "outputs")}
    assert inner == {"outputs/plots": None, "outputs/report.txt": 9}
    dst = mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="outputs", dst_path=str(tmp_path / "dl"))
    assert open(f"{dst}/report.txt").read() == "all good\n"
    assert open(f"{dst}/plots/loss.csv").read() == "step,loss\n0,0.5\n"


def test_multipart_artifact_upload(client, unique, tmp_path, monkeypatch, cairn_server):
    """Large artifacts go up in parts when the client enables proxied multipart upload."""
    import os

    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", "true")
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE", str(1024 * 1024))
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE", str(5 * 1024 * 1024))
    big = tmp_path / "big.bin"
    content = os.urandom(12 * 1024 * 1024 + 7)
    big.write_bytes(content)
    mlflow.set_experiment(f"mpu-{unique}")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(big), artifact_path="weights")
    dst = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="weights/big.bin", dst_path=str(tmp_path / "dl"))
    assert open(dst, "rb").read() == content
    # It went up in 5 MiB parts (each stored as a blob), not in one PUT.
    import requests

    part = content[: 5 * 1024 * 1024]
    import hashlib

    digest = hashlib.sha256(part).hexdigest()
    answer = requests.post(f"{cairn_server['url']}/api/v1/blobs/missing", json={"digests": [digest]})
    assert answer.ok and answer.json()["missing"] == [], answer.text


def test_logged_models_search_and_order(tracking_uri, unique):
    """MLflow 3 logged models: create, finalize, search with filter and structured order_by."""
    import pytest
    import requests

    from conftest import mlflow_major

    if mlflow_major() < 3:
        pytest.skip("the 2.x client has no logged models")
    api = f"{tracking_uri}/api/2.0/mlflow"
    exp = requests.post(f"{api}/experiments/create", json={"name": f"lm-{unique}"}).json()["experiment_id"]
    ids = []
    for name in ("beta", "alpha", "gamma"):
        m = requests.post(f"{api}/logged-models", json={"experiment_id": exp, "name": name}).json()["model"]["info"]
        ids.append(m["model_id"])
        assert m["status"] == "LOGGED_MODEL_PENDING"
    r = requests.patch(f"{api}/logged-models/{ids[0]}", json={"model_id": ids[0], "status": "LOGGED_MODEL_READY"})
    assert r.json()["model"]["info"]["status"] == "LOGGED_MODEL_READY"
    found = requests.post(f"{api}/logged-models/search", json={
        "experiment_ids": [exp], "order_by": [{"field_name": "name", "ascending": True}]}).json()["models"]
    assert [m["info"]["name"] for m in found] == ["alpha", "beta", "gamma"]
    found = requests.post(f"{api}/logged-models/search", json={
        "experiment_ids": [exp], "filter": "name = 'gamma'"}).json()["models"]
    assert [m["info"]["model_id"] for m in found] == [ids[2]]
    from mlflow import MlflowClient

    assert MlflowClient().get_logged_model(ids[1]).name == "alpha"
    r = requests.post(f"{api}/logged-models/search", json={
        "experiment_ids": [exp], "order_by": [{"field_name": "bogus"}]})
    assert r.status_code == 400
