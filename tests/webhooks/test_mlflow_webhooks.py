"""MLflow 3's webhook API on Cairn: the real `mlflow` client's calls work unchanged, a
delivery verifies with MLflow's documented signature check, and every answer matches a
real `mlflow server`'s on the same request (status, error code, message, body shape)."""

import json
import os
import signal
import subprocess
import sys
import tempfile

import pytest
import requests

from conftest import Receiver, verify
from infra import CairnServer, free_port, wait_until

mlflow = pytest.importorskip("mlflow")
if not hasattr(mlflow.MlflowClient, "create_webhook"):
    pytest.skip("this mlflow client has no webhook API", allow_module_level=True)

SECRET = "mlflow-webhook-secret"


@pytest.fixture
def server(tmp_path):
    s = CairnServer("--data", str(tmp_path / "reg"), "--webhook-allow-private")
    yield s
    s.stop()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def mlflow_headers(headers):
    h = {k.lower(): v for k, v in headers.items()}
    return h["x-mlflow-delivery-id"], h["x-mlflow-timestamp"], h.get("x-mlflow-signature")


def test_the_mlflow_client_manages_webhooks_and_deliveries_verify(server, receiver):
    from mlflow import MlflowClient
    from mlflow.entities.webhook import WebhookEvent, WebhookStatus

    client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    hook = client.create_webhook(
        name="ci-hook",
        url=receiver.url,
        events=["model_version.created", "model_version_alias.created"],
        description="tells CI",
        secret=SECRET,
    )
    assert hook.name == "ci-hook" and hook.status == WebhookStatus.ACTIVE
    assert {str(e) for e in hook.events} == {"model_version.created", "model_version_alias.created"}
    assert [w.webhook_id for w in client.list_webhooks()] == [hook.webhook_id]
    assert client.get_webhook(hook.webhook_id).description == "tells CI"

    updated = client.update_webhook(hook.webhook_id, description="tells CI and CD",
                                    events=["model_version.created", "model_version_alias.created",
                                            "registered_model.created"])
    assert updated.description == "tells CI and CD" and len(updated.events) == 3

    result = client.test_webhook(hook.webhook_id, event=WebhookEvent("registered_model", "created"))
    assert result.success and result.response_status == 200
    delivery_id, timestamp, signature = mlflow_headers(receiver.deliveries()[-1][0])
    body = receiver.deliveries()[-1][1]
    assert verify(SECRET, delivery_id, timestamp, body, signature)
    assert json.loads(body)["data"]["name"] == "example_model"

    # Real changes: the payloads MLflow sends for them, signed as MLflow signs.
    client.create_registered_model("fraud", description="fraud model")
    version = client.create_model_version("fraud", "s3://bucket/model", tags={"team": "risk"})
    client.set_registered_model_alias("fraud", "champion", version.version)
    deliveries = receiver.wait_for(4)[1:]
    payloads = []
    for headers, body in deliveries:
        delivery_id, timestamp, signature = mlflow_headers(headers)
        assert verify(SECRET, delivery_id, timestamp, body, signature), "MLflow's check fails"
        payloads.append(json.loads(body))
    assert [(p["entity"], p["action"]) for p in payloads] == [
        ("registered_model", "created"),
        ("model_version", "created"),
        ("model_version_alias", "created"),
    ]
    assert payloads[0]["data"] == {"name": "fraud", "tags": {}, "description": "fraud model"}
    assert payloads[1]["data"] == {
        "name": "fraud", "version": "1", "source": "s3://bucket/model", "run_id": None,
        "tags": {"team": "risk"}, "description": None,
    }
    assert payloads[2]["data"] == {"name": "fraud", "alias": "champion", "version": "1"}

    client.update_webhook(hook.webhook_id, status=WebhookStatus.DISABLED)
    assert client.get_webhook(hook.webhook_id).status == WebhookStatus.DISABLED
    client.delete_webhook(hook.webhook_id)
    assert list(client.list_webhooks()) == []


def shape(value, prefix=""):
    if isinstance(value, dict):
        return set().union(*(shape(v, f"{prefix}.{k}") for k, v in value.items())) if value else {prefix + ":{}"}
    if isinstance(value, list):
        return set().union(*(shape(v, prefix + "[]") for v in value)) if value else {prefix + ":[]"}
    return {f"{prefix}:{type(value).__name__}"}


def calls(url, hook_url):
    """The same requests against a server; each answer as (status, error_code, message,
    body shape), with the webhook id replaced."""
    api = f"{url}/api/2.0/mlflow"
    out = []
    ids = {}

    def call(method, path, body=None, params=None):
        target = path
        for real, placeholder in ids.items():
            target = target.replace(placeholder, real)
        r = requests.request(method, f"{api}/{target}", json=body, params=params, timeout=30)
        answer = r.json()
        text = json.dumps(answer)
        for real, placeholder in ids.items():
            text = text.replace(real, placeholder)
        answer = json.loads(text)
        if r.ok:
            out.append((method, path, r.status_code, sorted(shape(answer))))
        else:
            out.append((method, path, r.status_code, answer.get("error_code"), answer.get("message")))
        return answer

    event = [{"entity": "MODEL_VERSION", "action": "CREATED"}]
    made = call("POST", "webhooks", {"name": "hook-1", "url": hook_url, "events": event, "secret": "s",
                                     "description": "d"})
    ids[made["webhook"]["webhook_id"]] = "<id>"
    call("POST", "webhooks", {"name": "bad name", "url": hook_url, "events": event})
    call("POST", "webhooks", {"url": hook_url, "events": event})
    call("POST", "webhooks", {"name": "h", "url": hook_url, "events": []})
    call("POST", "webhooks", {"name": "h", "url": hook_url, "events": [{"entity": "MODEL_VERSION", "action": "SET"}]})
    call("POST", "webhooks", {"name": "h", "url": "ftp://127.0.0.1/x", "events": event})
    call("POST", "webhooks", {"name": "h6", "url": hook_url, "events": event, "status": "DISABLED"})
    call("GET", "webhooks")
    call("GET", "webhooks", params={"max_results": 1})
    call("GET", "webhooks", params={"max_results": 5000})
    call("GET", "webhooks/<id>")
    call("PATCH", "webhooks/<id>", {"description": "new", "status": "DISABLED"})
    call("PATCH", "webhooks/<id>", {"events": [{"entity": "MODEL_VERSION_ALIAS", "action": "CREATED"}], "name": "renamed"})
    call("POST", "webhooks/<id>/test", {})
    call("DELETE", "webhooks/<id>")
    call("GET", "webhooks/<id>")
    call("DELETE", "webhooks/<id>")
    call("PATCH", "webhooks/nope", {"description": "x"})
    call("POST", "webhooks/nope/test", {})
    return out


def test_answers_match_a_real_mlflow_server(server, receiver):
    port = free_port()
    work = tempfile.mkdtemp()
    env = {**os.environ, "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true", "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https"}
    proc = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "mlflow"), "server", "--host", "127.0.0.1",
         "--port", str(port), "--backend-store-uri", f"sqlite:///{work}/mlflow.db", "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        reference = f"http://127.0.0.1:{port}"
        def up():
            try:
                return requests.get(f"{reference}/health", timeout=5).ok
            except requests.Timeout:
                return False

        wait_until(up, "mlflow server", timeout=120)
        theirs = calls(reference, receiver.url)
        ours = calls(server.url, receiver.url)
    finally:
        # mlflow server starts helper processes (its job consumers): end the group.
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert len(theirs) == len(ours)
    problems = [f"\n  mlflow: {t}\n  cairn:  {o}" for o, t in zip(ours, theirs) if o != t]
    assert not problems, "".join(problems)
