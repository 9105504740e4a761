"""What one client can take from `cairn server`, bounded (with short limits so the test
is quick): idle and slow-header connections are closed, a JSON body over the limit is
refused while it streams, a stalled upload is cut and leaves nothing, uploads past the
slots wait their turn, and a token writing too fast gets 429 with Retry-After. The
figures under heavy load are bench/resource_limits.py's (docs/BENCHMARKS.md)."""

import hashlib
import json
import socket
import tempfile
import threading
import time

import pytest
import requests

from infra import CairnServer, cairn


@pytest.fixture(scope="module")
def server():
    data = tempfile.mkdtemp(prefix="cairn-limits-")
    running = CairnServer("--data", data, "--header-timeout", "1s", "--body-stall-timeout", "1s",
                          "--max-json-body", "1000000", "--max-uploads", "1")
    host, port = running.url.removeprefix("http://").split(":")
    yield {"url": running.url, "addr": (host, int(port)), "data": data}
    running.stop()


def closed_within(s, seconds):
    """Whether the server closes `s` within `seconds`."""
    s.settimeout(seconds)
    try:
        while True:
            if not s.recv(4096):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_idle_and_slow_header_connections_are_closed(server):
    idle = socket.create_connection(server["addr"])
    slow = socket.create_connection(server["addr"])
    slow.sendall(b"GET /api/v1/models HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
    # Kept alive after one request, then idle.
    kept = socket.create_connection(server["addr"])
    kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert kept.recv(4096).startswith(b"HTTP/1.1 200")
    assert closed_within(idle, 5) and closed_within(slow, 5) and closed_within(kept, 5)
    assert requests.get(server["url"] + "/healthz", timeout=5).ok


def test_a_json_body_over_the_limit_is_refused_while_it_streams(server):
    def chunks():
        yield b'{"name": "'
        for _ in range(100):
            yield b"x" * 100_000
        yield b'"}'

    for path in ["/api/v1/models", "/api/2.0/mlflow/registered-models/create"]:
        response = requests.post(server["url"] + path, data=chunks(),
                                 headers={"content-type": "application/json"}, timeout=30)
        assert response.status_code == 413, (path, response.text[:200])
    assert requests.get(server["url"] + "/api/v1/models", timeout=5).json() == []


def test_a_stalled_upload_is_cut_and_the_next_one_gets_its_slot(server):
    data = b"y" * 5_000_000
    digest = hashlib.sha256(data).hexdigest()
    stalled = socket.create_connection(server["addr"])
    stalled.sendall((f"PUT /api/v1/blobs/sha256/{'ab' * 32} HTTP/1.1\r\nHost: localhost\r\n"
                     f"Content-Length: {len(data)}\r\n\r\n").encode() + data[:1000])
    time.sleep(0.2)  # it holds the only upload slot now
    started = time.monotonic()
    response = requests.put(f"{server['url']}/api/v1/blobs/sha256/{digest}", data=data,
                            headers={"content-type": "application/octet-stream"}, timeout=30)
    assert response.status_code == 201, response.text
    # It waited for the stalled one to be cut (1 s without a byte), not forever.
    assert 0.5 < time.monotonic() - started < 10
    assert closed_within(stalled, 5)
    cairn("--registry", server["url"], "verify", "--all")


def test_a_token_writing_too_fast_gets_429(tmp_path):
    admin = cairn("--registry", str(tmp_path), "token", "create", "--user", "ada", "--role", "admin").stdout.strip()
    running = CairnServer("--data", str(tmp_path), "--auth", "--writes-per-second", "2")
    try:
        headers = {"authorization": f"Bearer {admin}"}
        statuses = []
        for i in range(8):
            response = requests.post(running.url + "/api/v1/models", json={"name": f"m{i}"},
                                     headers=headers, timeout=5)
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert int(response.headers["retry-after"]) >= 1
                assert response.json()["code"] == "rate_limited"
        assert statuses[:4] == [201] * 4 and 429 in statuses, statuses
        # Reads are not counted.
        assert requests.get(running.url + "/api/v1/models", headers=headers, timeout=5).ok
    finally:
        running.stop()


def test_health_answers_while_many_connections_idle(server):
    held = [socket.create_connection(server["addr"]) for _ in range(300)]
    threading.Event().wait(0.2)
    try:
        assert requests.get(server["url"] + "/healthz", timeout=5).ok
    finally:
        for s in held:
            s.close()


def test_a_flood_of_refused_writes_moves_no_chain_and_is_logged_at_a_bounded_rate(tmp_path):
    admin = cairn("--registry", str(tmp_path), "token", "create", "--user", "ada", "--role", "admin").stdout.strip()
    running = CairnServer("--data", str(tmp_path), "--auth")
    try:
        env = {"CAIRN_TOKEN": admin}
        head = cairn("--registry", running.url, "audit", "head", env=env).stdout
        session = requests.Session()
        for i in range(400):
            response = session.post(running.url + "/api/v1/models", json={"name": f"m{i}"}, timeout=5)
            assert response.status_code == 401
        time.sleep(1.5)
        denied = json.loads(cairn("--registry", running.url, "audit", "denied", "--limit", "10000",
                                  "--json", env=env).stdout)
        # A burst of 100, 10 a second after it, and one row counting the rest.
        assert 100 <= len(denied) <= 130, len(denied)
        assert any("not recorded" in d["reason"] for d in denied), denied[-3:]
        assert all(d["status"] in (0, 401) for d in denied)
        assert cairn("--registry", running.url, "audit", "head", env=env).stdout == head
    finally:
        running.stop()
