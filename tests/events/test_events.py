"""Every change is an event numbered as the audit log numbers it: the SSE stream
(`GET /api/v1/events`) resumes with `Last-Event-ID` with nothing missed or repeated,
shows a caller only what it may read, and `cairn events --follow` prints a promotion
as it commits."""

import json
import os
import select
import subprocess
import time

import pytest
import requests

from infra import CAIRN_BIN, CairnServer, cairn


def sse(url, headers=None, **params):
    """(id, type, data) of each event of a stream, until it ends or the caller stops."""
    with requests.get(f"{url}/api/v1/events", params=params, headers=headers or {}, stream=True, timeout=30) as r:
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/event-stream")
        fields = {}
        for line in r.iter_lines(decode_unicode=True):
            if line == "":
                if "data" in fields:
                    yield int(fields["id"]), fields["event"], json.loads(fields["data"])
                fields = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(":")
                fields[key] = value[1:] if value.startswith(" ") else value


@pytest.fixture
def server(tmp_path):
    s = CairnServer("--data", str(tmp_path / "registry"))
    yield s
    s.stop()


def mlflow(url, path, body):
    r = requests.post(f"{url}/api/2.0/mlflow/{path}", json=body, timeout=10)
    assert r.status_code == 200, r.text


def test_a_stream_resumes_after_the_last_event_id_with_nothing_missed_or_repeated(server):
    mlflow(server.url, "registered-models/create", {"name": "fraud"})
    for i in range(150):
        mlflow(server.url, "registered-models/set-tag", {"name": "fraud", "key": f"k{i}", "value": str(i)})

    first = []
    for seq, kind, event in sse(server.url, since=0, follow="false"):
        first.append(seq)
        assert event["schema"] == "cairn.event.v1" and event["seq"] == seq and event["type"] == kind
        if seq == 100:
            break  # the client goes away after event 100
    rest = [seq for seq, _, _ in sse(server.url, headers={"Last-Event-ID": "100"}, follow="false")]
    seen = first + rest
    head = requests.get(f"{server.url}/api/v1/audit/head", timeout=10).json()["seq"]
    assert seen == list(range(1, head + 1)), "an event was missed or repeated across the reconnect"
    assert head == 151

    # Types filter, by name or prefix; the event is the audit entry.
    tags = list(sse(server.url, since=0, follow="false", type="model.tag.*"))
    assert len(tags) == 150 and {k for _, k, _ in tags} == {"model.tag.set"}
    audit = requests.get(f"{server.url}/api/v1/audit", timeout=10).json()
    assert [e["hash"] for _, _, e in sse(server.url, since=0, follow="false")] == [e["hash"] for e in audit]


def test_a_caller_sees_only_the_events_it_may_read(tmp_path):
    data = str(tmp_path / "registry")
    admin = cairn("--registry", data, "token", "create", "--user", "ada", "--role", "admin").stdout.strip()
    server = CairnServer("--auth", "--data", data)
    try:
        as_admin = {"Authorization": f"Bearer {admin}"}
        for name in ("fraud", "churn"):
            r = requests.post(f"{server.url}/api/v1/models", json={"name": name}, headers=as_admin, timeout=10)
            assert r.status_code == 201, r.text
        reader = cairn("--registry", server.url, "token", "create", "--user", "rita", "--role", "reader",
                       "--models", "fraud", env={"CAIRN_TOKEN": admin}).stdout.strip()
        as_reader = {"Authorization": f"Bearer {reader}"}
        everything = list(sse(server.url, headers=as_admin, since=0, follow="false"))
        assert {e.get("model") for _, _, e in everything} >= {"fraud", "churn", None}
        visible = list(sse(server.url, headers=as_reader, since=0, follow="false"))
        assert [e["model"] for _, _, e in visible] == ["fraud"]
        refused = requests.get(f"{server.url}/api/v1/events", params={"model": "churn"}, headers=as_reader, timeout=10)
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
        assert requests.get(f"{server.url}/api/v1/events", timeout=10).status_code == 401
    finally:
        server.stop()


@pytest.mark.parametrize("mode", ["embedded", "remote"])
def test_cairn_events_follow_prints_a_promotion_within_a_second(tmp_path, mode):
    home = str(tmp_path / "registry")
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"w" * 1000)
    server = CairnServer("--data", home) if mode == "remote" else None
    env = {"CAIRN_REGISTRY": server.url if server else home}
    try:
        cairn("push", str(model), "--model", "fraud", env=env)
        follower = subprocess.Popen(
            [CAIRN_BIN, "events", "--follow", "--model", "fraud", "--json"],
            stdout=subprocess.PIPE, text=True, env={**os.environ, **env},
        )
        try:
            time.sleep(0.5)  # it has read everything so far and waits
            promoted = time.monotonic()
            cairn("promote", "fraud@1", "--to", "production", env=env)
            ready, _, _ = select.select([follower.stdout], [], [], 3)
            assert ready, "no event printed"
            event = json.loads(follower.stdout.readline())
            took = time.monotonic() - promoted
            assert event["type"] == "alias.set" and event["target"] == "fraud@production"
            assert event["after"]["version"] == 1, event
            assert took <= 1.0 + 0.5, f"printed {took:.2f} s after the promotion"  # the CLI's own start-up included
        finally:
            follower.terminate()
            follower.wait(timeout=10)
        # Without --follow: every event so far, then it ends.
        lines = cairn("events", env=env).stdout.strip().splitlines()
        assert len(lines) == 2 and "version.create" in lines[0] and "alias.set" in lines[-1]
    finally:
        if server:
            server.stop()
