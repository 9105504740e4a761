"""A catalogue of hostile inputs, each with the answer it must get: through the native
API, the MLflow API and the CLI. Afterwards the server still answers, every table holds
the rows it held before (nothing stored by a refused request), `verify --all` and
`audit verify` are green, and nothing was written outside the directories Cairn owns.
(test_hostile.py walks every route with hostile values; this file says, case by case,
what the right refusal is.)"""

import hashlib
import http.client
import json
import os
import sqlite3
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests

from infra import CAIRN_BIN, CairnServer, cairn

GOOD = b"good weights"
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()
DEEP = "[" * 100_000 + "]" * 100_000


def native(method, path, body=None, *, raw=None, headers=None, status, code):
    return ("native", method, path, body, raw, headers, status, code)


def mlflow(method, path, body=None, *, raw=None, headers=None, status=400,
           code="INVALID_PARAMETER_VALUE"):
    return ("mlflow", method, path, body, raw, headers, status, code)


def manifest(*files):
    return {"files": [{"path": p, "size": s, "sha256": d} for p, s, d in files]}


BAD = "invalid_argument"
CASES = [
    # Model names.
    native("POST", "/api/v1/models", {"name": ""}, status=400, code=BAD),
    native("POST", "/api/v1/models", {"name": "a/b"}, status=400, code=BAD),
    native("POST", "/api/v1/models", {"name": "x" * 300}, status=400, code=BAD),
    native("POST", "/api/v1/models", {"name": "."}, status=400, code=BAD),
    native("POST", "/api/v1/models", {"name": "..hidden"}, status=400, code=BAD),
    native("POST", "/api/v1/models", {"name": "a\u0000b"}, status=400, code=BAD),
    native("POST", "/api/v1/models", {"name": "tab\tname"}, status=400, code=BAD),
    native("POST", "/api/v1/models", {"name": 12}, status=400, code=BAD),
    native("POST", "/api/v1/models", {"name": "ok", "surprise": 1}, status=400, code=BAD),
    native("GET", "/api/v1/models/%2e%2e", status=400, code=BAD),
    native("GET", "/api/v1/models/a%2Fb", status=400, code=BAD),
    # Malformed JSON, wrong types, duplicate keys, depth, content types, size.
    native("POST", "/api/v1/models", raw=b"{", status=400, code="malformed_json"),
    native("POST", "/api/v1/models", raw=b"[1,2]", status=400, code=BAD),
    native("POST", "/api/v1/models", raw=b'{"name":"a","name":"b"}', status=400, code=BAD),
    # (Typed bodies refuse a wrong type before any depth; MLflow's untyped ones below.)
    native("POST", "/api/v1/models", raw=DEEP.encode(), status=400, code=BAD),
    native("POST", "/api/v1/models", raw=b"\xff\xfe", status=400, code="malformed_json"),
    native("POST", "/api/v1/models", raw=b'{"name": "ok"}', headers={"content-type": "text/plain"},
           status=415, code="unsupported_media_type"),
    native("POST", "/api/v1/models", raw=b"", headers={"content-type": "application/json",
           "content-length": "999999999"}, status=413, code="payload_too_large"),
    # References and numbers.
    native("GET", "/api/v1/models/victim/versions/a@b", status=400, code=BAD),
    native("GET", "/api/v1/models/victim/versions/-1", status=400, code=BAD),
    native("GET", "/api/v1/models/victim/versions/99999999999999999999", status=400, code=BAD),
    native("DELETE", "/api/v1/models/victim/versions/latest", status=400, code=BAD),
    native("PUT", "/api/v1/models/victim/aliases/production", {"version": -1}, status=400, code=BAD),
    native("PUT", "/api/v1/models/victim/aliases/production", raw=b'{"version": 1e400}',
           status=400, code="malformed_json"),
    native("PUT", "/api/v1/models/victim/aliases/production", {"version": 2**64}, status=400, code=BAD),
    native("PUT", "/api/v1/models/victim/aliases/production", {"version": "1"}, status=400, code=BAD),
    native("PUT", "/api/v1/models/victim/aliases/bad%20alias!", {"version": 1}, status=400, code=BAD),
    # Manifests: traversal, absolute, backslashes, NUL, over-long, lies about sizes.
    *[native("POST", "/api/v1/models/victim/versions", manifest((path, len(GOOD), GOOD_SHA)),
             status=400, code=BAD)
      for path in ["../x", "a/../../x", "/etc/x", "a\\..\\x", "a\u0000b", "x" * 2000, "a//b", "./a", ""]],
    native("POST", "/api/v1/models/victim/versions", manifest(("a", 999, GOOD_SHA)),
           status=400, code="size_mismatch"),
    native("POST", "/api/v1/models/victim/versions", manifest(("a", 2**64, GOOD_SHA)),
           status=400, code=BAD),
    native("POST", "/api/v1/models/victim/versions",
           manifest(("a", len(GOOD), GOOD_SHA), ("a", len(GOOD), GOOD_SHA)), status=400, code=BAD),
    native("POST", "/api/v1/models/victim/versions", manifest(("a", 3, "cd" * 32)),
           status=400, code="missing_blobs"),
    native("POST", "/api/v1/models/victim/versions", manifest(("a", len(GOOD), "zz")),
           status=400, code=BAD),
    # Blobs.
    native("PUT", f"/api/v1/blobs/sha256/{GOOD_SHA}", raw=b"evil weights",
           headers={"content-type": "application/octet-stream"}, status=400, code="digest_mismatch"),
    native("PUT", "/api/v1/blobs/sha256/..%2f..%2fetc", raw=b"x",
           headers={"content-type": "application/octet-stream"}, status=400, code=BAD),
    native("GET", "/api/v1/blobs/sha256/" + "0" * 63, status=400, code=BAD),
    # Registry-wide queries.
    native("GET", "/api/v1/audit?since=yesterday", status=400, code=BAD),
    native("GET", "/api/v1/blobs/sha256/zz/why", status=400, code=BAD),
    # MLflow: filters are parsed, never spliced into SQL.
    mlflow("POST", "/runs/search", {"experiment_ids": ["0"], "filter": "metrics.acc > 1 OR 1=1"}),
    mlflow("POST", "/runs/search", {"experiment_ids": ["0"], "filter": "params.p = '1'; DROP TABLE runs; --"}),
    mlflow("POST", "/runs/search", {"experiment_ids": ["0"], "filter": "attributes.run_id IN (SELECT id FROM runs)"}),
    mlflow("GET", "/registered-models/search?filter=name%20%3D%20%27x%27%20UNION%20SELECT%201"),
    mlflow("GET", "/model-versions/search?filter=name%3D%27a%27%20OR%201%3D1"),
    mlflow("POST", "/logged-models/search", {"experiment_ids": ["0"], "filter": "metrics.x > 1) --"}),
    mlflow("POST", "/experiments/search", {"filter": "name = 'a' OR '1'='1'"}),
    # MLflow: names, numbers, sources, stages, aliases, sizes.
    mlflow("POST", "/experiments/create", {"name": ""}),
    mlflow("POST", "/registered-models/create", {"name": ""}),
    mlflow("GET", "/registered-models/get"),
    mlflow("POST", "/runs/create", {"experiment_id": "not-a-number"}),
    mlflow("POST", "/runs/log-metric", {"run_id": "0" * 32, "key": "m", "value": {}, "timestamp": 1}),
    # As mlflow server: a number its protobuf cannot hold passes the type check, and the
    # request goes on to find no run.
    mlflow("POST", "/runs/log-metric", {"run_id": "0" * 32, "key": "m", "value": 1, "timestamp": 2**64},
           status=404, code="RESOURCE_DOES_NOT_EXIST"),
    mlflow("POST", "/runs/log-batch", {"run_id": "0" * 32,
                                       "metrics": [{"key": "m", "value": 1, "timestamp": 1, "step": 0}] * 1001}),
    mlflow("GET", "/experiments/search?max_results=10000000000"),
    mlflow("POST", "/model-versions/create", {"name": "victim", "source": "file:///etc/passwd"}),
    mlflow("POST", "/model-versions/create", {"name": "victim", "source": "../../../etc"}),
    mlflow("POST", "/model-versions/create", {"name": "victim", "source": "models:/victim/../../x"}),
    mlflow("POST", "/model-versions/transition-stage", {"name": "victim", "version": "1", "stage": "Prod",
                                                         "archive_existing_versions": False}),
    mlflow("POST", "/registered-models/alias", {"name": "victim", "alias": "v1", "version": "1"}),
    mlflow("POST", "/registered-models/create", raw=b'{"name": "x"}', headers={"content-type": "text/plain"}),
    mlflow("POST", "/registered-models/create", raw=DEEP.encode(), headers={"content-type": "application/json"}),
    # MLflow artifacts: every spelling of a way out.
    mlflow("GET", "/artifacts/list?run_id=" + "0" * 32 + "&path=../../etc", status=404,
           code="RESOURCE_DOES_NOT_EXIST"),
]
ARTIFACT_PATHS = ["../../etc/passwd", "%2e%2e/%2e%2e/etc/passwd", "a/../../../x", "/etc/passwd", "a\\..\\..\\x"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    watched = tmp_path_factory.mktemp("inputs")
    data = watched / "data"
    sentinel = watched / "sentinel.txt"
    sentinel.write_text("untouched")
    server = CairnServer("--data", str(data))
    model = watched / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(GOOD)
    cairn("--registry", server.url, "push", str(model), "--model", "victim")
    yield {"server": server, "url": server.url, "data": data, "watched": watched}
    server.stop()


def row_counts(db):
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                  if not t.startswith("sqlite_")]
        return {t: conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}


def files_under(root):
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*"))


def send(url, case):
    api, method, path, body, raw, headers, _, _ = case
    prefix = "" if api == "native" else "/api/2.0/mlflow"
    kwargs = {"headers": dict(headers or {}), "timeout": 60}
    if raw is not None:
        kwargs["data"] = raw
        kwargs["headers"].setdefault("content-type", "application/json")
    elif body is not None:
        kwargs["json"] = body
    return requests.request(method, url + prefix + path, **kwargs)


def test_every_hostile_input_gets_its_refusal_and_changes_nothing(world):
    url, db = world["url"], world["data"] / "cairn.db"
    before_rows = row_counts(db)
    before_files = files_under(world["watched"])
    assert len(CASES) + len(ARTIFACT_PATHS) * 3 >= 60
    wrong = []
    for case in CASES:
        response = send(url, case)
        status, code = case[6], case[7]
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        answer = answer if isinstance(answer, dict) else {"listed": answer}
        got = answer.get("code") or answer.get("error_code")
        if response.status_code != status or got != code:
            wrong.append(f"{case[1]} {case[2][:80]}: {response.status_code} {got} "
                         f"(want {status} {code}): {str(answer.get('message'))[:120]}")
    for path in ARTIFACT_PATHS:
        for method, prefix in [("GET", "/api/2.0/mlflow-artifacts/artifacts/"),
                               ("PUT", "/api/2.0/mlflow-artifacts/artifacts/"),
                               ("GET", "/get-artifact?run_id=" + "0" * 32 + "&path=")]:
            # Sent as written: HTTP libraries would resolve the dots before sending.
            host, port = url.removeprefix("http://").split(":")
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            conn.request(method, prefix + path, body=b"x",
                         headers={"content-type": "application/octet-stream"})
            response = conn.getresponse()
            text = response.read().decode(errors="replace")
            conn.close()
            try:
                answer = json.loads(text)
            except ValueError:
                answer = None
            if response.status not in (400, 404) or not isinstance(answer, dict) \
                    or not (answer.get("error_code") or answer.get("code")):
                wrong.append(f"{method} {prefix}{path}: {response.status} {text[:120]}")
    assert not wrong, "\n".join(wrong)
    assert requests.get(url + "/healthz", timeout=5).ok
    assert row_counts(db) == before_rows
    assert files_under(world["watched"]) == before_files
    assert (world["watched"] / "sentinel.txt").read_text() == "untouched"
    cairn("--registry", url, "verify", "--all")
    cairn("--registry", url, "audit", "verify")


def test_the_cli_refuses_hostile_arguments_with_the_right_exit(world, tmp_path):
    url = world["url"]
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "w.bin").write_bytes(b"w")
    os.symlink(outside, linked / "escape")
    cases = [
        (["show", "bad name/"], 2),
        (["show", "victim@-1"], 2),
        (["show", "victim@1@2"], 1),  # a name may hold "@": model "victim@1" is not there
        (["push", str(linked), "--model", ""], 2),
        (["push", str(linked), "--model", "victim"], 1),  # a link out of the directory
        (["pull", "victim@999", "-o", str(tmp_path / "o")], 1),
        (["alias", "set", "victim", "bad alias!", "1"], 2),
        (["token", "create", "--user", "x", "--models", "a\\b"], 2),
        (["audit", "verify", "--head", "1:zz"], 2),
        (["gc", "--grace", "-1s"], 2),
    ]
    for args, code in cases:
        done = cairn("--registry", url, *args, check=False)
        assert done.returncode == code, (args, done.returncode, done.stderr)
        assert done.stderr.strip().count("\n") == 0 and done.stderr.startswith("error: "), (args, done.stderr)
    # A closed output pipe ends the CLI quietly.
    pipe = subprocess.run(f"'{CAIRN_BIN}' --registry {url} audit log | head -c 1", shell=True,
                          capture_output=True, text=True)
    assert pipe.stderr == "", pipe.stderr
