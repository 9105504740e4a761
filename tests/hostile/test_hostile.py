"""Hostile input against a real `cairn server` on the embedded default.

One server, one data directory inside a scratch directory the test watches. Every
route of the server (read from its router's source, so a new route is walked without
editing this file) gets non-ASCII, empty, overlong and boundary values in its path,
query and body; then the integrity checklist runs: traversal, digest and size lies,
cut uploads, injection, numbers past 2^63, oversized bodies, a corrupt blob served.
The server must answer each with a status and a JSON body (never a dropped connection
or a 5xx for input), and at the end `verify --all` and `audit verify` are green and
nothing was written outside the directories the processes own.
"""

import hashlib
import json
import os
import re
import socket
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from infra import CairnServer, ROOT, cairn, fetch

SOURCES = ROOT / "crates" / "cairn-server" / "src"
# Where each router function's routes are mounted (one mount each is enough: the others
# serve the same handlers).
MOUNTS = {
    (SOURCES / "api_v1.rs", "routes"): "/api/v1",
    (SOURCES / "api_access.rs", "routes"): "/api/v1",
    (SOURCES / "api_policies.rs", "routes"): "/api/v1",
    (SOURCES / "api_webhooks.rs", "routes"): "/api/v1",
    (SOURCES / "api_diff.rs", "routes"): "/api/v1",
    (SOURCES / "ui" / "mod.rs", "routes"): "",
    (SOURCES / "mlflow" / "mod.rs", "api"): "/api/2.0/mlflow",
    (SOURCES / "mlflow" / "mod.rs", "artifact_api"): "/api/2.0/mlflow-artifacts",
    (SOURCES / "mlflow" / "mod.rs", "routes"): "",
    (SOURCES / "mlflow" / "mod.rs", "ui_only"): "/ajax-api/2.0/mlflow",
    (SOURCES / "mlflow" / "mod.rs", "permissions"): "/api/3.0/mlflow",
    (SOURCES / "lib.rs", "router"): "",
}

HOSTILE = [
    "ü", "", "x" * 5000, "9223372036854775808", "18446744073709551616", "-1", "0",
    "../../etc/passwd", "/abs", "a\u0000b", "NaN", "名前", "'; DROP TABLE models; --",
]
HOSTILE_JSON = HOSTILE + [2**63, 2**64, -(2**63) - 1, 1e308, None, [], {}, True, [None] * 3]
# Numbers at the edges of 64-bit arithmetic (2^63 / 1000 overflows milliseconds), and a
# few others, each sent alone in a field.
BOUNDARY = [2**63 - 1, 2**63, 2**64 - 1, 9223372036854776, -(2**63), -1, 0, 1e308, "ü", None]
# Every field name a Cairn or MLflow request reads, so each endpoint meets its own: read
# from the handlers (`f.str("name")`…) and the native API's request types, plus a few.
FIELDS = sorted(
    set(re.findall(r'\bf\.[a-z_0-9]+\("([a-zA-Z_]+)"', "".join(
        p.read_text() for p in (SOURCES / "mlflow").glob("*.rs"))))
    | set(re.findall(r"^\s+(?:pub )?([a-z_]+): ", "".join(
        p.read_text() for p in [ROOT / "crates/cairn-core/src/api.rs",
                                ROOT / "crates/cairn-core/src/lineage.rs", SOURCES / "api_v1.rs"]), re.M))
    | {"filter_string", "metrics", "inputs", "models", "dataset", "model_ids", "parts", "grace"}
)


def routes():
    """(method, path template) of every route, read from the router functions."""
    found = set()
    for (source, function), prefix in MOUNTS.items():
        text = source.read_text()
        start = re.search(rf"fn {function}\(", text).start()
        ends = [i for i in (text.find("\nfn ", start + 1), text.find("\npub fn ", start + 1)) if i > 0]
        body = text[start:min(ends, default=len(text))]
        for chunk in body.split(".route(")[1:]:
            path = re.match(r'\s*"([^"]+)"', chunk)
            if not path:
                continue
            methods = set(re.findall(r"\b(get|post|put|delete|patch)\(", chunk))
            for method in methods or {"get"}:
                found.add((method.upper(), prefix + path.group(1)))
    return sorted(found)


def fill(template, value):
    return re.sub(r"\{\*?[a-z_]+\}", quote(value, safe="") or "%20", template)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("hostile")
    watched = scratch / "watched"
    (watched / "data").mkdir(parents=True)
    (watched / "cwd").mkdir()
    sentinel = watched / "sentinel.txt"
    sentinel.write_text("untouched")
    server = CairnServer("--data", str(watched / "data"), env={"HOME": str(watched / "cwd")})
    model = watched / "cwd" / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    (model / "MLmodel").write_text("flavors: {}\n")
    cairn("--registry", server.url, "push", str(model), "--model", "victim", cwd=watched / "cwd")
    yield {"server": server, "url": server.url, "watched": watched, "model": model}
    server.stop()


def snapshot(root, skip):
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*")
        if not any(p == s or s in p.parents for s in skip)
    )


# The web UI's paths (server::ui::is_ui_route).
UI_PREFIXES = ("/models/", "/compare", "/audit", "/experiments", "/runs/", "/ui/")


def assert_answers(response, what):
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
    # 414 and 431 (URI, headers too long) come from the HTTP layer before any route.
    if response.status_code >= 400 and response.status_code not in (414, 431):
        path = what.split(" ", 1)[-1].split("?")[0]
        if path == "/" or path.startswith(UI_PREFIXES):
            # The web UI's refusals are pages that say what went wrong.
            assert response.headers["content-type"].startswith("text/html"), what
            assert '<p class="error">' in response.text and "Traceback" not in response.text, what
            return
        try:
            body = response.json()  # a JSON error body, whatever the door
        except ValueError:
            pytest.fail(f"{what}: {response.status_code} without a JSON body: {response.text[:200]!r}")
        assert ("code" in body or "error_code" in body) and body.get("message"), f"{what}: {body}"


def test_every_route_answers_hostile_values(world):
    url = world["url"]
    walked = routes()
    assert len(walked) > 60, walked  # the parser found the routers
    session = requests.Session()

    def send(method, path, what, **kw):
        # One keep-alive session throughout: a refusal that leaves its body unread must
        # drain it or say `Connection: close`, never drop the connection under a client
        # that reuses it.
        try:
            response = fetch(session, method, url + path, timeout=30, **kw)
        except requests.ConnectionError as e:
            pytest.fail(f"{what}: the server dropped the connection ({e})")
        assert_answers(response, what)

    for method, template in walked:
        for value in HOSTILE:
            path = fill(template, value)
            params = {field: value for field in FIELDS} if method == "GET" else None
            send(method, path, f"{method} {path[:120]}", params=params)
        if method == "GET":
            continue
        # Bodies: every field one hostile value, then every field a different one, then
        # each field alone with each boundary value (so no earlier field's refusal hides
        # a later field's handling). The path names nothing that exists ("nobody"), so
        # nothing real is deleted.
        path = fill(template, "nobody")
        for i, value in enumerate(HOSTILE_JSON):
            send(method, path, f"{method} {template} all={value!r:.60}",
                 json={field: value for field in FIELDS})
            rotated = {f: HOSTILE_JSON[(i + k) % len(HOSTILE_JSON)] for k, f in enumerate(FIELDS)}
            send(method, path, f"{method} {template} rotated {i}", json=rotated)
        for field in FIELDS:
            for value in BOUNDARY:
                send(method, path, f"{method} {template} {field}={value!r:.60}",
                     json={field: value, "dry_run": True})
        for raw in [b"{", b"[1,2]", b"\xff\xfe", b"null", b'{"name": "\\ud800"}']:
            send(method, path, f"{method} {template} body {raw!r}", data=raw,
                 headers={"content-type": "application/json"})


def put_blob(url, digest, data, **kw):
    return requests.put(f"{url}/api/v1/blobs/sha256/{digest}", data=data, timeout=30, **kw)


def test_the_integrity_checklist(world):
    url, watched = world["url"], world["watched"]
    # Digest mismatch, then a cut upload: neither stores anything.
    good = b"good bytes"
    digest = hashlib.sha256(good).hexdigest()
    assert put_blob(url, digest, b"evil bytes").status_code == 400
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall(f"PUT /api/v1/blobs/sha256/{digest} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                  "Content-Length: 1000000\r\n\r\n".encode() + b"x" * 1000)
    missing = requests.post(f"{url}/api/v1/blobs/missing", json={"digests": [digest]}).json()
    assert missing["missing"] == [digest]

    # Manifest lies: traversal, absolute paths, wrong sizes, sizes past 2^63.
    assert put_blob(url, digest, good).status_code == 201
    for files in [
        [{"path": "../x", "size": 10, "sha256": digest}],
        [{"path": "/etc/x", "size": 10, "sha256": digest}],
        [{"path": "a", "size": 999, "sha256": digest}],
        [{"path": "a", "size": 2**63, "sha256": digest}],
        [{"path": "a", "size": 2**63 - 1, "sha256": digest}, {"path": "b", "size": 10, "sha256": digest}],
    ]:
        r = requests.post(f"{url}/api/v1/models/liar/versions", json={"files": files})
        assert r.status_code == 400, (files, r.text)
    assert requests.get(f"{url}/api/v1/models/liar").status_code == 404

    # Artifact traversal and directory-named files.
    run = requests.post(f"{url}/api/2.0/mlflow/runs/create", json={"experiment_id": "0"}).json()
    run_id = run["run"]["info"]["run_id"]
    base = f"{url}/api/2.0/mlflow-artifacts/artifacts/0/{run_id}/artifacts"
    for path in ["..%2F..%2Fescape", "dir/", "a/%2E%2E/%2E%2E/b"]:
        assert_answers(requests.put(f"{base}/{path}", data=b"x"), path)
    r = requests.post(f"{url}/api/2.0/mlflow-artifacts/mpu/create/0/{run_id}/artifacts/m",
                      json={"path": "local/dir/", "num_parts": 1})
    assert r.status_code == 400, r.text

    # Injection in filters, numbers past 2^63, Unicode aliases, enormous filters and bodies.
    for filter_ in ["name = 'x' OR 1=1 --", "name = 'x''; DROP TABLE models; --'",
                    "tags.`a'; DROP TABLE models;--` = 'x'", "metrics.`\u0000` > 1"]:
        r = requests.get(f"{url}/api/2.0/mlflow/registered-models/search", params={"filter": filter_})
        assert_answers(r, filter_)
    for n in ["9223372036854775808", "18446744073709551615"]:
        r = requests.post(f"{url}/api/2.0/mlflow/registered-models/alias",
                          json={"name": "victim", "alias": "prod", "version": n})
        assert r.status_code == 404 and "-" not in r.json()["message"], r.text
    r = requests.post(f"{url}/api/2.0/mlflow/registered-models/alias",
                      json={"name": "victim", "alias": "ü", "version": "1"})
    assert r.status_code == 200, r.text
    r = requests.post(f"{url}/api/2.0/mlflow/runs/search",
                      json={"experiment_ids": ["0"], "filter": " AND ".join(["metrics.a > 1"] * 20000)})
    assert r.status_code == 400, r.text[:200]
    r = requests.post(f"{url}/api/2.0/mlflow/runs/search", data=b"",
                      headers={"content-type": "application/json", "content-length": "300000000"})
    assert r.status_code == 413 and r.json()["error_code"], r.text

    # A corrupt blob is never served whole, then put back.
    weights = (world["model"] / "weights.bin").read_bytes()
    hexd = hashlib.sha256(weights).hexdigest()
    stored = watched / "data" / "blobs" / "sha256" / hexd[:2] / hexd
    damaged = bytearray(weights)
    damaged[-1] ^= 1
    stored.write_bytes(bytes(damaged))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(f"{url}/api/v1/blobs/sha256/{hexd}", timeout=30).content
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(f"{url}/api/2.0/mlflow-artifacts/artifacts/_cairn/versions/victim/1/weights.bin",
                     timeout=30).content
    pulled = watched / "cwd" / "pulled"
    refused = cairn("--registry", url, "pull", "victim@1", "-o", str(pulled), check=False)
    assert refused.returncode == 1 and not pulled.exists(), refused.stderr
    stored.write_bytes(weights)


def test_afterwards_everything_verifies_and_nothing_leaked(world):
    url, watched = world["url"], world["watched"]
    pulled = watched / "cwd" / "pulled"
    cairn("--registry", url, "pull", "victim@1", "-o", str(pulled))
    assert (pulled / "weights.bin").read_bytes() == (world["model"] / "weights.bin").read_bytes()
    cairn("--registry", url, "verify", "--all")
    cairn("--registry", url, "audit", "verify")
    assert (watched / "sentinel.txt").read_text() == "untouched"
    outside = snapshot(watched, skip={watched / "data", watched / "cwd"})
    assert outside == ["sentinel.txt"], outside
    leaked = [p for p in snapshot(watched / "cwd", skip=set()) if not p.startswith(("model", "pulled"))]
    assert leaked == [], leaked
    assert not Path("/etc/x").exists() and not Path("/abs").exists()
    json.dumps(routes())  # the walked routes, for the record


def test_a_staged_upload_cut_by_kill_9_is_swept_by_gc(tmp_path):
    """A server killed mid-upload leaves its staging file; a restart keeps it (it may be
    another server's upload in progress), `gc --grace 0s` removes it."""
    data = tmp_path / "data"
    server = CairnServer("--data", str(data))
    declared = 200 * 1024 * 1024
    digest = "ab" * 32
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall(f"PUT /api/v1/blobs/sha256/{digest} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                  f"Content-Length: {declared}\r\n\r\n".encode())
        chunk = os.urandom(1024 * 1024)
        for _ in range(24):  # past the first 8 MiB part: a multipart upload is staged
            s.sendall(chunk)
        staging = data / "blobs" / "tmp"
        deadline = time.monotonic() + 10
        while not (staging.exists() and any(staging.iterdir())):
            assert time.monotonic() < deadline, "no staging file appeared"
            time.sleep(0.05)
        server.kill()
    staged = list(staging.iterdir())
    assert staged, "the cut upload left its staging file"

    restarted = CairnServer("--data", str(data))
    try:
        assert list(staging.iterdir()) == staged, "a young staging file survives a restart"
        report = json.loads(cairn("--registry", restarted.url, "gc", "--grace", "0s", "--json").stdout)
        assert report["stale_uploads"] == len(staged), report
        assert not any(staging.iterdir())
        cairn("--registry", restarted.url, "verify", "--all")
        cairn("--registry", restarted.url, "audit", "verify")
    finally:
        restarted.stop()
