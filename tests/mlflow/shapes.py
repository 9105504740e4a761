#!/usr/bin/env python3
"""JSON shapes of MLflow REST answers, for comparing Cairn with the real server.

A fixed script of raw REST calls (the ones the client makes) runs against a server; each
answer is reduced to its shape: the set of `path:type` leaves (`run.info.start_time:int`,
`run.data.metrics[].value:float`). test_shapes.py runs the script against Cairn and
compares with the snapshot taken from the real `mlflow server`:

    python shapes.py --start-mlflow > snapshots/mlflow-3.17.2.json
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import requests


def shape(value, prefix=""):
    if isinstance(value, dict):
        out = set()
        for k, v in value.items():
            out |= shape(v, f"{prefix}.{k}" if prefix else k)
        return out
    if isinstance(value, list):
        out = {f"{prefix}[]"} if not value else set()
        for v in value:
            out |= shape(v, f"{prefix}[]")
        return out
    kind = {bool: "bool", int: "int", float: "float", str: "str", type(None): "null"}[type(value)]
    # Doubles that happen to be whole numbers are still doubles.
    return {f"{prefix}:{'float' if kind == 'int' and prefix.endswith('.value') else kind}"}


def script(url):
    """Runs the calls; returns {label: sorted shape}."""
    api = f"{url}/api/2.0/mlflow"
    s = requests.Session()
    shapes = {}
    tag = uuid.uuid4().hex[:8]

    def call(label, method, path, **kw):
        r = s.request(method, f"{api}/{path}", **kw)
        assert r.ok, f"{label}: {r.status_code} {r.text}"
        body = r.json() if r.content else {}
        shapes[label] = sorted(shape(body))
        return body

    exp = call("experiments/create", "POST", "experiments/create", json={"name": f"shapes-{tag}"})["experiment_id"]
    call("experiments/get", "GET", "experiments/get", params={"experiment_id": exp})
    call("experiments/get-by-name", "GET", "experiments/get-by-name", params={"experiment_name": f"shapes-{tag}"})
    call("experiments/search", "POST", "experiments/search", json={"max_results": 10, "filter": f"name = 'shapes-{tag}'"})
    now = int(time.time() * 1000)
    run = call("runs/create", "POST", "runs/create", json={
        "experiment_id": exp, "start_time": now, "user_id": "u",
        "tags": [{"key": "mlflow.user", "value": "u"}]})["run"]["info"]
    rid = run["run_id"]
    call("runs/log-metric", "POST", "runs/log-metric", json={"run_id": rid, "key": "acc", "value": 0.5, "timestamp": now, "step": 0})
    s.post(f"{api}/runs/log-metric", json={"run_id": rid, "key": "acc", "value": 0.75, "timestamp": now + 1, "step": 1})
    call("runs/log-parameter", "POST", "runs/log-parameter", json={"run_id": rid, "key": "lr", "value": "0.1"})
    call("runs/set-tag", "POST", "runs/set-tag", json={"run_id": rid, "key": "team", "value": "x"})
    call("runs/get", "GET", "runs/get", params={"run_id": rid})
    call("runs/search", "POST", "runs/search", json={"experiment_ids": [exp], "filter": "metrics.acc > 0.1", "max_results": 10})
    call("metrics/get-history", "GET", "metrics/get-history", params={"run_id": rid, "metric_key": "acc"})
    root = run["artifact_uri"].split("mlflow-artifacts:/", 1)[1]
    art = f"{url}/api/2.0/mlflow-artifacts/artifacts"
    s.put(f"{art}/{root}/model/MLmodel", data=b"flavors: {}\n").raise_for_status()
    s.put(f"{art}/{root}/model/weights.bin", data=b"\0" * 64).raise_for_status()
    shapes["mlflow-artifacts list"] = sorted(shape(s.get(art, params={"path": f"{root}/model"}).json()))
    call("artifacts/list", "GET", "artifacts/list", params={"run_id": rid, "path": "model"})
    lm = call("logged-models create", "POST", "logged-models", json={"experiment_id": exp, "name": "m", "source_run_id": rid})["model"]["info"]["model_id"]
    call("logged-models get", "GET", f"logged-models/{lm}")
    call("logged-models finalize", "PATCH", f"logged-models/{lm}", json={"model_id": lm, "status": "LOGGED_MODEL_READY"})
    call("logged-models/search", "POST", "logged-models/search", json={"experiment_ids": [exp]})
    name = f"shapes-{tag}"
    call("registered-models/create", "POST", "registered-models/create", json={"name": name, "description": "d", "tags": [{"key": "k", "value": "v"}]})
    call("model-versions/create", "POST", "model-versions/create", json={"name": name, "source": f"runs:/{rid}/model", "run_id": rid, "tags": [{"key": "k", "value": "v"}]})
    call("registered-models/alias set", "POST", "registered-models/alias", json={"name": name, "alias": "champion", "version": "1"})
    call("registered-models/alias get", "GET", "registered-models/alias", params={"name": name, "alias": "champion"})
    call("model-versions/get", "GET", "model-versions/get", params={"name": name, "version": "1"})
    call("model-versions/transition-stage", "POST", "model-versions/transition-stage", json={"name": name, "version": "1", "stage": "Staging", "archive_existing_versions": False})
    call("registered-models/get", "GET", "registered-models/get", params={"name": name})
    call("registered-models/get-latest-versions", "POST", "registered-models/get-latest-versions", json={"name": name})
    call("model-versions/search", "GET", "model-versions/search", params={"filter": f"name='{name}'"})
    call("registered-models/search", "GET", "registered-models/search", params={"filter": f"name='{name}'", "max_results": 10})
    call("model-versions/update", "PATCH", "model-versions/update", json={"name": name, "version": "1", "description": "v1"})
    call("registered-models/update", "PATCH", "registered-models/update", json={"name": name, "description": "new"})
    call("model-versions/get-download-uri", "GET", "model-versions/get-download-uri", params={"name": name, "version": "1"})
    call("registered-models/rename", "POST", "registered-models/rename", json={"name": name, "new_name": f"{name}-2"})
    call("runs/update", "POST", "runs/update", json={"run_id": rid, "status": "FINISHED", "end_time": now + 5})
    return shapes


def answers(url):
    """Runs calls whose *answers* must be MLflow's: refusals (status, the error code the
    client sees, the message) and the types artifact downloads are served as. Ids and
    names that differ between servers are replaced by placeholders in messages."""
    api = f"{url}/api/2.0/mlflow"
    art = f"{url}/api/2.0/mlflow-artifacts/artifacts"
    s = requests.Session()
    tag = uuid.uuid4().hex[:8]
    out = {}
    placeholders = {}

    def normalized(text):
        for value, name in sorted(placeholders.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(value, name)
        return text

    def answer(label, method, path, base=api, typed=False, keep=None, **kw):
        from mlflow.exceptions import get_error_code
        from mlflow.protos.databricks_pb2 import ErrorCode

        r = s.request(method, f"{base}/{path}", **kw)
        try:
            body = r.json()
        except ValueError:
            body = None
        entry = {"status": r.status_code}
        if typed:
            entry["content_type"] = r.headers.get("Content-Type", "").split(";")[0]
        if keep and r.ok:
            entry["kept"] = json.loads(normalized(json.dumps(keep(body))))
        if not r.ok:
            # What the client reports: the body's code, or one derived from the status
            # when the body is not MLflow's error JSON.
            if isinstance(body, dict) and "error_code" in body:
                entry["error_code"] = body["error_code"]
                entry["message"] = normalized(body.get("message", ""))
            else:
                entry["error_code"] = ErrorCode.Name(get_error_code(r.status_code))
        out[label] = entry
        return body

    def ok(method, path, **kw):
        r = s.request(method, f"{api}/{path}", **kw)
        assert r.ok, f"{path}: {r.status_code} {r.text}"
        return r.json()

    exp = ok("POST", "experiments/create", json={"name": f"answers-{tag}"})["experiment_id"]
    run = ok("POST", "runs/create", json={"experiment_id": exp, "start_time": 1})["run"]["info"]
    other = ok("POST", "runs/create", json={"experiment_id": exp, "start_time": 1})["run"]["info"]
    rid, oid = run["run_id"], other["run_id"]
    placeholders.update({rid: "<run>", oid: "<other-run>", tag: "<tag>"})
    placeholders[f"/{exp}/"] = "/<exp>/"
    placeholders[f"'{exp}/"] = "'<exp>/"
    root = run["artifact_uri"].split("mlflow-artifacts:/", 1)[1]
    for path, data in [("model/MLmodel", b"flavors: {}\n"), ("report.pdf", b"%PDF-1.4\n"), ("MLproject", b"name: p\n"),
                       ("plot.png", b"\x89PNG"), ("page.html", b"<p>x</p>"), ("weights.bin", b"\0")]:
        s.put(f"{art}/{root}/{path}", data=data).raise_for_status()
    for name in ["report.pdf", "MLproject", "plot.png", "page.html", "weights.bin"]:
        r = s.get(f"{art}/{root}/{name}")
        out[f"download {name}"] = {"status": r.status_code, "content_type": r.headers.get("Content-Type", "").split(";")[0]}

    spaced = f"Fraud Model {tag}"
    answer("registered-models/create, a name with spaces", "POST", "registered-models/create", json={"name": spaced})
    answer("registered-models/create, a name with '/'", "POST", "registered-models/create", json={"name": f"a/{tag}"})
    answer("registered-models/create, a name with ':'", "POST", "registered-models/create", json={"name": f"a:{tag}"})
    answer("registered-models/create, a blank name", "POST", "registered-models/create", json={"name": "   "})
    sources = [
        ("an s3 location", {"source": f"s3://bucket/{tag}/model"}),
        ("a run path with nothing logged", {"source": f"runs:/{rid}/nothing-here", "run_id": rid}),
        ("a run path of files", {"source": f"runs:/{rid}/model", "run_id": rid}),
        ("a run path without run_id", {"source": f"runs:/{rid}/model"}),
        ("a run path of another run_id", {"source": f"runs:/{rid}/model", "run_id": oid}),
        ("an http location", {"source": "http://example.com/model"}),
        ("an mlflow-artifacts location with a host", {"source": f"mlflow-artifacts://example.com/{root}/model", "run_id": rid}),
        ("a local path", {"source": "/etc/passwd"}),
        ("a file: URI", {"source": "file:///etc/passwd", "run_id": rid}),
        ("a relative reference", {"source": f"mlflow-artifacts:/{root}/../../etc", "run_id": rid}),
        ("an encoded relative reference", {"source": f"s3://bucket/%2e%2e/{tag}"}),
        ("an artifact path of another run", {"source": f"mlflow-artifacts:/{root}/model", "run_id": oid}),
        ("an artifact path without run_id", {"source": f"mlflow-artifacts:/{root}/model"}),
        ("an artifact path of its run", {"source": f"mlflow-artifacts:/{root}/model", "run_id": rid}),
        ("an artifact path with nothing there", {"source": f"mlflow-artifacts:/{root}/empty", "run_id": rid}),
        ("a registered version", {"source": f"models:/{spaced}/1"}),
        ("a registered version with another run_id", {"source": f"models:/{spaced}/1", "run_id": oid}),
        ("a version of another registry", {"source": f"models://other/{spaced}/1"}),
        ("a version that does not exist", {"source": f"models:/{spaced}/99"}),
    ]
    for label, fields in sources:
        answer(f"model-versions/create, {label}", "POST", "model-versions/create", json={"name": spaced, **fields})
    answer("model-versions/get-download-uri, an s3 version", "GET", "model-versions/get-download-uri",
           params={"name": spaced, "version": "1"})
    answer("get-artifact (the UI's file viewer)", "GET", "get-artifact", base=url, typed=True,
           params={"run_uuid": rid, "path": "report.pdf"})
    # Fields of the wrong type, or missing: checked against the request's schema first.
    now = 1_700_000_000_000
    invalid = [
        ("experiments/create, a number for name", "POST", "experiments/create", {"json": {"name": 123}}),
        ("experiments/create, a float artifact_location", "POST", "experiments/create",
         {"json": {"name": f"typed-{tag}", "artifact_location": 9.0}}),
        ("experiments/create, no name", "POST", "experiments/create", {"json": {}}),
        ("experiments/get, no id", "GET", "experiments/get", {}),
        ("runs/log-metric, a number for key", "POST", "runs/log-metric",
         {"json": {"run_id": rid, "key": 31, "value": 1.0, "timestamp": now}}),
        ("runs/log-metric, no timestamp", "POST", "runs/log-metric", {"json": {"run_id": rid, "key": "k", "value": 1.0}}),
        ("runs/log-metric, no run_id", "POST", "runs/log-metric", {"json": {"key": "k", "value": 1.0, "timestamp": now}}),
        ("runs/log-metric, a word for value", "POST", "runs/log-metric",
         {"json": {"run_id": rid, "key": "k", "value": "high", "timestamp": now}}),
        ("runs/set-tag, a number for value", "POST", "runs/set-tag", {"json": {"run_id": rid, "key": "k", "value": 41}}),
        ("runs/get, a number for run_id", "GET", "runs/get", {"params": {"run_id": 123}}),
        ("runs/update, a number for run_id", "POST", "runs/update", {"json": {"run_id": 123, "status": "FINISHED"}}),
        ("runs/log-batch, tags as a string", "POST", "runs/log-batch", {"json": {"run_id": rid, "tags": "x"}}),
        ("runs/log-batch, a metric without timestamp", "POST", "runs/log-batch",
         {"json": {"run_id": rid, "metrics": [{"key": "k", "value": 1.0}]}}),
        ("runs/log-batch, a param without key", "POST", "runs/log-batch", {"json": {"run_id": rid, "params": [{"value": "1"}]}}),
        ("runs/search, max_results over the limit", "POST", "runs/search",
         {"json": {"experiment_ids": [exp], "max_results": 60000}}),
        ("registered-models/search, max_results over the limit", "GET", "registered-models/search",
         {"params": {"max_results": 2000}}),
        ("model-versions/transition-stage, a number for version", "POST", "model-versions/transition-stage",
         {"json": {"name": spaced, "version": 1, "stage": "Staging"}}),
        ("registered-models/alias, no alias", "POST", "registered-models/alias", {"json": {"name": spaced, "version": "1"}}),
    ]
    for label, method, path, kw in invalid:
        answer(label, method, path, **kw)
    # A body that does not say it is JSON (what a cross-site form or text/plain POST sends).
    answer("registered-models/create, a text/plain body", "POST", "registered-models/create",
           data=json.dumps({"name": f"csrf-{tag}"}), headers={"Content-Type": "text/plain"})
    answer("registered-models/create, no Content-Type", "POST", "registered-models/create",
           data=json.dumps({"name": f"csrf-{tag}"}))
    answer("registered-models/get after them", "GET", "registered-models/get", params={"name": f"csrf-{tag}"})
    # The UI's endpoints.
    ajax = f"{url}/ajax-api/2.0/mlflow"
    for step in range(10):
        ok("POST", "runs/log-metric", json={"run_id": rid, "key": "curve", "value": step / 10, "timestamp": now + step, "step": step})
    steps = lambda body: [(m["run_id"], m["step"]) for m in body.get("metrics", [])]
    interval = "metrics/get-history-bulk-interval"
    answer("get-history-bulk-interval, sampled to 4", "GET", interval, keep=steps,
           params={"run_ids": [rid, oid], "metric_key": "curve", "max_results": 4})
    answer("get-history-bulk-interval, sampled to 3 within steps 2 to 8", "GET", interval, keep=steps,
           params={"run_ids": rid, "metric_key": "curve", "max_results": 3, "start_step": 2, "end_step": 8})
    answer("get-history-bulk-interval, no run_ids", "GET", interval, params={"metric_key": "curve"})
    answer("get-history-bulk-interval, 101 run_ids", "GET", interval,
           params={"run_ids": [rid] * 101, "metric_key": "curve"})
    answer("get-history-bulk-interval, max_results 0", "GET", interval,
           params={"run_ids": rid, "metric_key": "curve", "max_results": 0})
    answer("get-history-bulk-interval, a start without an end", "GET", interval,
           params={"run_ids": rid, "metric_key": "curve", "start_step": 2})
    answer("get-history-bulk-interval, a start after the end", "GET", interval,
           params={"run_ids": rid, "metric_key": "curve", "start_step": 5, "end_step": 2})
    bulk = "metrics/get-history-bulk"
    answer("get-history-bulk", "GET", bulk, base=ajax, keep=steps,
           params={"run_id": [rid, oid], "metric_key": "curve", "max_results": 5})
    answer("get-history-bulk, no run_id", "GET", bulk, base=ajax, params={"metric_key": "curve"})
    answer("get-history-bulk, no metric_key", "GET", bulk, base=ajax, params={"run_id": rid})
    ok("POST", "runs/log-inputs", json={"run_id": rid, "datasets": [{
        "tags": [{"key": "mlflow.data.context", "value": "train"}],
        "dataset": {"name": "iris", "digest": "d1", "source_type": "local", "source": "{}"}}]})
    answer("experiments/search-datasets", "POST", "experiments/search-datasets", base=ajax,
           keep=lambda body: [{**d, "experiment_id": "<exp>" if d["experiment_id"] == exp else d["experiment_id"]}
                              for d in body.get("dataset_summaries", [])],
           json={"experiment_ids": [exp]})
    answer("experiments/search-datasets, no ids", "POST", "experiments/search-datasets", base=ajax,
           json={"experiment_ids": []})
    answer("experiments/search-datasets, 21 ids", "POST", "experiments/search-datasets", base=ajax,
           json={"experiment_ids": [exp] * 21})
    up = "upload-artifact"
    answer("upload-artifact", "POST", up, base=ajax, params={"run_uuid": rid, "path": "ui/notes.txt"}, data=b"hello")
    answer("upload-artifact, no run_uuid", "POST", up, base=ajax, params={"path": "x.txt"}, data=b"x")
    answer("upload-artifact, no path", "POST", up, base=ajax, params={"run_uuid": rid}, data=b"x")
    answer("upload-artifact, a path with ..", "POST", up, base=ajax, params={"run_uuid": rid, "path": "../x.txt"}, data=b"x")
    answer("upload-artifact, no data", "POST", up, base=ajax, params={"run_uuid": rid, "path": "x.txt"}, data=b"")
    answer("upload-artifact, an unknown run", "POST", up, base=ajax, params={"run_uuid": "0" * 32, "path": "x.txt"}, data=b"x")
    answer("download of a file uploaded by the UI", "GET", f"{root}/ui/notes.txt", base=art, typed=True)
    lm = ok("POST", "logged-models", json={"experiment_id": exp, "name": "lm", "source_run_id": "0" * 32})["model"]["info"]
    placeholders[lm["model_id"]] = "<model>"
    model_root = lm["artifact_uri"].split("mlflow-artifacts:/", 1)[1]
    s.put(f"{art}/{model_root}/MLmodel", data=b"flavors: {}\n").raise_for_status()
    s.put(f"{art}/{model_root}/data/w.bin", data=b"\0\1").raise_for_status()
    mid = lm["model_id"]
    answer("logged-models/params", "POST", f"logged-models/{mid}/params",
           json={"model_id": mid, "params": [{"key": "alpha", "value": "0.5"}]})
    answer("logged-models/params, no model_id in the body", "POST", f"logged-models/{mid}/params",
           json={"params": [{"key": "beta", "value": "1"}]})
    answer("logged-models/get after params", "GET", f"logged-models/{mid}",
           keep=lambda body: body["model"]["data"].get("params"))
    ok("POST", "runs/log-inputs", json={"run_id": rid, "models": [{"model_id": mid}], "datasets": [{
        "tags": [{"key": "mlflow.data.context", "value": "eval"}, {"key": "split", "value": "holdout"}],
        "dataset": {"name": "wine", "digest": "d2", "source_type": "local", "source": "{}"}}]})
    # Logged again: what was recorded first stays.
    ok("POST", "runs/log-inputs", json={"run_id": rid, "datasets": [{
        "tags": [{"key": "mlflow.data.context", "value": "test"}],
        "dataset": {"name": "wine", "digest": "d2", "source_type": "local", "source": "{}"}}]})
    answer("runs/get, inputs", "GET", "runs/get", params={"run_id": rid}, keep=lambda body: {
        "datasets": sorted((i["dataset"]["name"], sorted((t["key"], t["value"]) for t in i.get("tags", [])))
                           for i in body["run"]["inputs"].get("dataset_inputs", [])),
        "models": body["run"]["inputs"].get("model_inputs", [])})
    answer("logged-models/tags delete, no such tag", "DELETE", f"logged-models/{mid}/tags/nokey")
    listed = lambda body: sorted((f["path"], f["is_dir"], f.get("file_size")) for f in body.get("files", []))
    answer("logged-models artifacts/directories", "GET", f"logged-models/{mid}/artifacts/directories", keep=listed)
    answer("logged-models artifacts/directories, data", "GET", f"logged-models/{mid}/artifacts/directories",
           keep=listed, params={"artifact_directory_path": "data"})
    files = f"logged-models/{mid}/artifacts/files"
    answer("logged-models artifacts/files", "GET", files, base=ajax, typed=True, params={"artifact_file_path": "MLmodel"})
    answer("logged-models artifacts/files, no path", "GET", files, base=ajax)
    answer("logged-models artifacts/files, no such file", "GET", files, base=ajax, params={"artifact_file_path": "nope"})
    # Metrics of logged models: linked by log-metric and log-batch, searched and ordered.
    exp2 = ok("POST", "experiments/create", json={"name": f"answers-models-{tag}"})["experiment_id"]
    placeholders[f"'{exp2}'"] = "'<exp2>'"
    runm = ok("POST", "runs/create", json={"experiment_id": exp2, "start_time": 1})["run"]["info"]["run_id"]
    placeholders[runm] = "<model-run>"
    models = {}
    for name in ["ma", "mb", "mc"]:
        info = ok("POST", "logged-models", json={"experiment_id": exp2, "name": name})["model"]["info"]
        models[name] = info["model_id"]
        placeholders[info["model_id"]] = f"<{name}>"
    for i, value in enumerate([0.4, 0.9, 0.3]):
        answer(f"runs/log-metric with a model_id ({i})", "POST", "runs/log-metric", json={
            "run_id": runm, "key": "acc", "value": value, "timestamp": now + i, "step": i,
            "model_id": models["ma"], "dataset_name": "ds1", "dataset_digest": "g1"})
    answer("runs/log-batch with model_ids", "POST", "runs/log-batch", json={"run_id": runm, "metrics": [
        {"key": "acc", "value": 0.7, "timestamp": now, "step": 0, "model_id": models["mb"], "dataset_name": "ds2", "dataset_digest": "g2"},
        {"key": "loss", "value": 0.2, "timestamp": now, "step": 0, "model_id": models["mb"]}]})
    answer("runs/log-metric, a dataset name without its digest", "POST", "runs/log-metric", json={
        "run_id": runm, "key": "acc", "value": 1.0, "timestamp": now, "model_id": models["mc"], "dataset_name": "ds1"})
    answer("logged-models/get, metrics", "GET", f"logged-models/{models['ma']}", keep=lambda body: sorted(
        (m["key"], m["value"], m["step"], m.get("dataset_name"), m.get("dataset_digest"), m["run_id"])
        for m in body["model"]["data"].get("metrics", [])))
    names = lambda body: [m["info"]["name"] for m in body.get("models", [])]
    search = lambda label, **fields: answer(f"logged-models/search, {label}", "POST", "logged-models/search",
                                            keep=names, json={"experiment_ids": [exp2], **fields})
    search("a metric once above 0.5", filter="metrics.acc > 0.5")
    search("a metric once below 0.35", filter="metrics.acc < 0.35")
    search("a metric in a dataset", filter="metrics.acc > 0.5", datasets=[{"dataset_name": "ds2", "dataset_digest": "g2"}])
    search("a dataset with its digest", datasets=[{"dataset_name": "ds1", "dataset_digest": "g1"}])
    search("a dataset without its digest", datasets=[{"dataset_name": "ds1"}])
    search("ordered by a metric", order_by=[{"field_name": "metrics.acc", "ascending": True}])
    search("ordered by a metric, descending", order_by=[{"field_name": "metrics.acc", "ascending": False}])
    search("ordered by a metric in a dataset",
           order_by=[{"field_name": "metrics.acc", "ascending": False, "dataset_name": "ds1"}])
    search("ordered by name", order_by=[{"field_name": "name", "ascending": False}])
    search("ordered by a param", order_by=[{"field_name": "params.p"}])
    search("ordered by an unknown field", order_by=[{"field_name": "foo"}])
    search("a dataset without a name", datasets=[{"dataset_digest": "g1"}])
    answer("an unknown endpoint", "POST", "no-such-endpoint", json={})
    answer("an unknown endpoint (ajax)", "GET", "no-such-endpoint", base=f"{url}/ajax-api/2.0/mlflow")
    return out


def start_mlflow():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    work = tempfile.mkdtemp()
    proc = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{work}/mlflow.db", "--artifacts-destination", f"{work}/artifacts"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if requests.get(f"{url}/health").ok:
                return proc, url
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError("mlflow server did not start")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--url")
    ap.add_argument("--start-mlflow", action="store_true")
    args = ap.parse_args()
    proc = None
    if args.start_mlflow:
        proc, url = start_mlflow()
    else:
        url = args.url
    try:
        import mlflow

        snapshot = {"mlflow": mlflow.__version__, "shapes": script(url), "answers": answers(url)}
        print(json.dumps(snapshot, indent=1, sort_keys=True))
    finally:
        if proc:
            proc.terminate()
