"""Webhooks tried as a user would: `cairn webhooks` against real servers, a receiver on
loopback verifying every signature; 500 changes delivered exactly once each; a receiver
down for 30 s catching up in order; a server killed mid-delivery losing nothing; two
servers on one PostgreSQL delivering each event once; changes made without a server
delivered by the next one; MLflow's webhook API through the real `mlflow` client."""

import json
import os
import time
from collections import defaultdict

import pytest
import requests

from conftest import Receiver, verify
from infra import CairnServer, Database, cairn

SECRET = "a-shared-secret-for-tests"
ALLOW = ("--webhook-allow-private",)


def mlflow(url, path, body):
    r = requests.post(f"{url}/api/2.0/mlflow/{path}", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def head(url):
    return requests.get(f"{url}/api/v1/audit/head", timeout=10).json()["seq"]


def create_hook(registry, receiver, *extra):
    out = cairn(
        "--registry", registry, "webhooks", "create", "--url", receiver.url,
        "--events", "*", "--secret", SECRET, "--json", *extra,
    )
    return json.loads(out.stdout)


def in_order_per_model(events):
    by_model = defaultdict(list)
    for _, e in events:
        by_model[e.get("model")].append(e["seq"])
    for model, seqs in by_model.items():
        assert seqs == sorted(seqs), f"{model}: delivered out of order: {seqs}"


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    if r.server is not None:
        r.stop()


def test_every_change_is_delivered_once_signed_and_logged(tmp_path, receiver):
    server = CairnServer("--data", str(tmp_path / "reg"), *ALLOW)
    try:
        hook = create_hook(server.url, receiver)
        since = head(server.url)
        for m in range(5):
            mlflow(server.url, "registered-models/create", {"name": f"model-{m}"})
        for i in range(100):
            for m in range(5):
                mlflow(server.url, "registered-models/set-tag",
                       {"name": f"model-{m}", "key": f"k{i}", "value": str(i)})
        last = head(server.url)
        expected = list(range(since + 1, last + 1))
        assert len(expected) == 505
        receiver.wait_for(len(expected))
        events = receiver.events(SECRET)
        ids = [i for i, _ in events]
        assert len(ids) == len(set(ids)), "a delivery was sent twice"
        assert sorted(e["seq"] for _, e in events) == expected, "an event was missed or repeated"
        assert all(e["schema"] == "cairn.event.v1" for _, e in events)
        in_order_per_model(events)

        # Each delivery is logged with its status code and latency.
        log = json.loads(cairn("--registry", server.url, "webhooks", "deliveries", hook["id"],
                               "--limit", "1000", "--json").stdout)
        assert len(log) == 505
        assert all(d["state"] == "delivered" and d["status_code"] == 200 and d["attempts"] == 1
                   and d["latency_ms"] is not None for d in log)
        # The secret is never shown.
        listed = cairn("--registry", server.url, "webhooks", "list", "--json").stdout
        assert SECRET not in listed and json.loads(listed)[0]["signed"] is True
        # A test delivery: signed, answered.
        tested = json.loads(cairn("--registry", server.url, "webhooks", "test", hook["id"], "--json").stdout)
        assert tested["success"] and tested["status_code"] == 200
        headers, body = receiver.deliveries()[-1]
        h = {k.lower(): v for k, v in headers.items()}
        assert json.loads(body)["type"] == "webhook.test"
        assert verify(SECRET, h["webhook-id"], h["webhook-timestamp"], body, h["webhook-signature"])
    finally:
        server.stop()


def test_a_receiver_down_for_30s_gets_every_event_in_order_once_back(tmp_path, receiver):
    server = CairnServer("--data", str(tmp_path / "reg"), *ALLOW)
    try:
        create_hook(server.url, receiver)
        since = head(server.url)
        receiver.stop()
        down_at = time.monotonic()
        for m in range(3):
            mlflow(server.url, "registered-models/create", {"name": f"m{m}"})
        for i in range(20):
            for m in range(3):
                mlflow(server.url, "registered-models/set-tag", {"name": f"m{m}", "key": "k", "value": str(i)})
        expected = list(range(since + 1, head(server.url) + 1))
        time.sleep(max(0.0, 30 - (time.monotonic() - down_at)))
        assert receiver.deliveries() == []
        receiver.start()
        receiver.wait_for(len(expected), timeout=120)
        events = receiver.events(SECRET)
        assert sorted(e["seq"] for _, e in events) == expected
        assert len({i for i, _ in events}) == len(events), "a delivery arrived twice"
        in_order_per_model(events)
    finally:
        server.stop()


def test_a_server_killed_mid_delivery_loses_nothing(tmp_path, receiver):
    data = str(tmp_path / "reg")
    server = CairnServer("--data", data, *ALLOW)
    create_hook(server.url, receiver)
    since = head(server.url)
    receiver.hold.set()  # deliveries arrive but are not answered
    mlflow(server.url, "registered-models/create", {"name": "fraud"})
    for i in range(5):
        mlflow(server.url, "registered-models/set-tag", {"name": "fraud", "key": "k", "value": str(i)})
    time.sleep(1)  # the first delivery is in flight
    server.kill()
    receiver.hold.clear()
    # Changes made with no server running (embedded mode) are delivered by the next.
    (tmp_path / "model.onnx").write_bytes(b"weights")
    cairn("--registry", data, "push", str(tmp_path / "model.onnx"), "--model", "churn")
    server = CairnServer("--data", data, *ALLOW)
    expected = list(range(since + 1, head(server.url) + 1))
    assert len(expected) >= 7
    try:
        receiver.wait_for(len(expected), timeout=90)
        events = receiver.events(SECRET)
        seqs = sorted({e["seq"] for _, e in events})
        assert seqs == expected, "an event was lost across the kill"
        in_order_per_model(events)
    finally:
        server.stop()


def test_two_servers_on_one_postgres_deliver_each_event_once(tmp_path, receiver):
    db = Database()
    key = {"CAIRN_WEBHOOK_SECRET_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}
    servers = [
        CairnServer("--db", db.url, "--data", str(tmp_path / f"s{i}"), *ALLOW, env=key) for i in range(2)
    ]
    try:
        create_hook(servers[0].url, receiver)
        since = head(servers[0].url)
        for m in range(4):
            mlflow(servers[m % 2].url, "registered-models/create", {"name": f"m{m}"})
        for i in range(200):
            mlflow(servers[i % 2].url, "registered-models/set-tag",
                   {"name": f"m{i % 4}", "key": "k", "value": str(i)})
        expected = list(range(since + 1, head(servers[0].url) + 1))
        receiver.wait_for(len(expected))
        events = receiver.events(SECRET)
        assert sorted(e["seq"] for _, e in events) == expected, "an event was lost or sent twice"
        assert len({i for i, _ in events}) == len(events)
        in_order_per_model(events)
    finally:
        for s in servers:
            s.stop()
        db.drop()


def test_urls_are_checked_against_request_forgery(tmp_path):
    data = str(tmp_path / "reg")
    for url, why in [
        ("http://hooks.example.com/x", "scheme"),
        ("https://127.0.0.1/x", "non-public"),
        ("https://[::ffff:169.254.169.254]/x", "non-public"),
        ("https://10.0.0.7:8443/x", "non-public"),
    ]:
        done = cairn("--registry", data, "webhooks", "create", "--url", url, "--events", "*",
                     "--secret", SECRET, check=False, env={"CAIRN_WEBHOOK_ALLOW_PRIVATE": ""})
        assert done.returncode == 1 and why in done.stderr, (url, done.stderr)
    # A secret is needed, of some length; events must exist.
    done = cairn("--registry", data, "webhooks", "create", "--url", "https://1.1.1.1/x",
                 "--events", "nonsense", "--secret", SECRET, check=False)
    assert done.returncode == 1 and "unknown webhook event" in done.stderr
    done = cairn("--registry", data, "webhooks", "create", "--url", "https://1.1.1.1/x",
                 "--events", "*", "--secret", "short", check=False)
    assert done.returncode == 1 and "secret" in done.stderr
    # Stored encrypted: the key file is private, the database holds no clear secret.
    cairn("--registry", data, "webhooks", "create", "--url", "https://1.1.1.1/x", "--events", "*",
          "--secret", SECRET)
    assert os.stat(tmp_path / "reg" / "webhook-secret.key").st_mode & 0o777 == 0o600
    assert SECRET.encode() not in (tmp_path / "reg" / "cairn.db").read_bytes()
