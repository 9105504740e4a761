"""`cairn serve NAME@ALIAS` follows the alias: a promotion and a rollback made by
another process reach live traffic within 2 s, with no failed request; a version that
cannot be loaded is never swapped in."""

import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import CairnServer, Registry, Serving


class SteadyLoad:
    """`rate` requests per second from a loopback client (a few keep-alive threads),
    recording each answer's status and serving version with its time."""

    def __init__(self, url, body, rate=200, threads=4):
        self.url, self.body = url, body
        self.interval = threads / rate
        self.answers = []  # (time, status, version)
        self.errors = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, offset):
        session = requests.Session()
        next_at = time.monotonic() + offset * self.interval / len(self._threads)
        while not self._stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            next_at += self.interval
            try:
                r = session.post(f"{self.url}/invocations", json=self.body, timeout=10)
                record = (time.monotonic(), r.status_code, r.headers.get("x-cairn-model-version"))
            except requests.RequestException as e:
                record = (time.monotonic(), None, repr(e))
            with self._lock:
                self.answers.append(record)

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=15)

    def first_served_by(self, version, since):
        with self._lock:
            return next((t for t, status, v in self.answers if t >= since and v == version), None)

    def failures(self):
        with self._lock:
            return [a for a in self.answers if a[1] != 200]


def wait_for_version(load, version, since, limit=2.0):
    deadline = since + limit + 1.0
    while time.monotonic() < deadline:
        seen = load.first_served_by(version, since)
        if seen is not None:
            return seen - since
        time.sleep(0.02)
    return None


@pytest.fixture(params=["embedded", "remote"])
def mode(request, tmp_path):
    """The registry as the serving process sees it: the data directory itself, or a
    `cairn server` on it (changes learnt by long-poll)."""
    registry = Registry(tmp_path / "registry")
    if request.param == "embedded":
        yield registry, registry.env
        return
    server = CairnServer("--data", registry.home)
    try:
        yield registry, {"CAIRN_REGISTRY": server.url}
    finally:
        server.stop()


def test_promotion_and_rollback_reach_traffic_within_two_seconds(models, mode, serve, tmp_path):
    registry, serve_env = mode
    forest = models["rf_zipmap"]
    one = registry.push(Path(forest["onnx_path"]), "fraud")
    two = registry.push(models["rf_nozipmap"]["onnx_path"], "fraud")
    registry.cli("alias", "set", "fraud", "production", str(one))
    serving = Serving("fraud@production", serve_env, cache=tmp_path / "cache")
    try:
        body = {"inputs": forest["X_test"][:1]}
        with SteadyLoad(serving.url, body, rate=200) as load:
            time.sleep(2)
            started = time.monotonic()
            registry.cli("promote", f"fraud@{two}", "--to", "production")
            promoted_in = wait_for_version(load, f"fraud@{two}", started)
            time.sleep(2)
            started = time.monotonic()
            registry.cli("rollback", "fraud", "production")
            rolled_back_in = wait_for_version(load, f"fraud@{one}", started)
            time.sleep(2)
        assert promoted_in is not None and promoted_in <= 2.0, f"promotion seen after {promoted_in}"
        assert rolled_back_in is not None and rolled_back_in <= 2.0, f"rollback seen after {rolled_back_in}"
        assert load.failures() == [], f"{len(load.failures())} failed requests: {load.failures()[:5]}"
        assert len(load.answers) >= 6 * 200 * 0.8, f"only {len(load.answers)} requests were sent"
    finally:
        serving.stop()


@pytest.mark.parametrize("broken", ["corrupt onnx", "not a model"])
def test_a_version_that_cannot_load_is_not_swapped_in(models, registry, serve, tmp_path, broken):
    forest = models["rf_zipmap"]
    good = registry.push(Path(forest["onnx_path"]), "fraud")
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    if broken == "corrupt onnx":
        # The real model's bytes, cut in half: a file onnxruntime cannot parse.
        data = Path(forest["onnx_path"]).read_bytes()
        (bad_dir / "model.onnx").write_bytes(data[: len(data) // 2])
    else:
        (bad_dir / "model.pkl").write_bytes(b"\x80\x04not an onnx model")
    bad = registry.push(bad_dir, "fraud")
    registry.cli("alias", "set", "fraud", "production", str(good))
    serving = serve("fraud@production", registry)
    body = {"inputs": forest["X_test"][:1]}
    with SteadyLoad(serving.url, body, rate=100) as load:
        time.sleep(0.5)
        registry.cli("promote", f"fraud@{bad}", "--to", "production")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and serving.health()["status"] == "ok":
            time.sleep(0.05)
        time.sleep(0.5)
    health = serving.health()
    assert health["status"] == "degraded", health
    route = health["routes"][0]
    assert route["serving"]["version"] == f"fraud@{good}"
    assert route["failure"]["version"] == f"fraud@{bad}"
    named = "onnxruntime" if broken == "corrupt onnx" else "model.pkl"
    assert named in route["failure"]["error"], route["failure"]
    assert load.failures() == []
    assert {v for _, _, v in load.answers} == {f"fraud@{good}"}
    metrics = requests.get(f"{serving.url}/metrics", timeout=5).text
    assert 'cairn_serve_model_load_failures_total{reference="fraud@production"} 1' in metrics


def test_a_fixed_version_is_served_as_it_is(models, registry, serve):
    one = registry.push(models["rf_zipmap"]["onnx_path"], "fraud")
    two = registry.push(models["rf_nozipmap"]["onnx_path"], "fraud")
    registry.cli("alias", "set", "fraud", "production", str(two))
    serving = serve(f"fraud@{one}", registry)
    registry.cli("alias", "set", "fraud", "production", str(one))
    time.sleep(0.5)
    assert serving.served_version() == f"fraud@{one}"


def test_switching_versions_downloads_only_the_difference(models, registry, serve, tmp_path):
    """Two versions sharing every file but one: the second load fetches one blob."""
    shared = tmp_path / "v"
    shared.mkdir()
    (shared / "model.onnx").write_bytes(Path(models["rf_zipmap"]["onnx_path"]).read_bytes())
    (shared / "weights-notes.bin").write_bytes(b"x" * 300_000)
    one = registry.push(shared, "fraud")
    (shared / "model.onnx").write_bytes(Path(models["rf_nozipmap"]["onnx_path"]).read_bytes())
    two = registry.push(shared, "fraud")
    registry.cli("alias", "set", "fraud", "production", str(one))
    serving = serve("fraud@production", registry)
    registry.cli("promote", f"fraud@{two}", "--to", "production")
    deadline = time.monotonic() + 5
    while serving.served_version() != f"fraud@{two}" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert serving.served_version() == f"fraud@{two}"
    loads = [line for line in serving.log if "downloaded_bytes" in line]
    assert len(loads) == 2, serving.log
    onnx_two = Path(models["rf_nozipmap"]["onnx_path"]).stat().st_size
    assert f"downloaded_bytes={onnx_two}" in loads[1], loads[1]


def test_a_reader_token_of_one_model_follows_it_through_a_secured_server(models, tmp_path):
    """With authentication on, serving needs only a reader of its model: it resolves
    the alias, downloads the blobs and long-polls the model's changes with that token,
    and a token for another model is refused up front."""
    from conftest import cairn

    data = str(tmp_path / "registry")
    admin = cairn("--registry", data, "token", "create", "--user", "ada", "--role", "admin").stdout.strip()
    server = CairnServer("--auth", "--data", data)
    try:
        as_admin = {"CAIRN_REGISTRY": server.url, "CAIRN_TOKEN": admin}
        for source in (models["rf_zipmap"]["onnx_path"], models["rf_nozipmap"]["onnx_path"]):
            cairn("push", source, "--model", "fraud", env=as_admin)
        cairn("alias", "set", "fraud", "production", "1", env=as_admin)

        def token(pattern):
            return cairn("token", "create", "--user", "svc", "--role", "reader", "--models", pattern,
                         env=as_admin).stdout.strip()

        with pytest.raises(RuntimeError, match="cannot serve fraud@production"):
            Serving("fraud@production", {"CAIRN_REGISTRY": server.url, "CAIRN_TOKEN": token("churn")},
                    cache=tmp_path / "cache")
        serving = Serving("fraud@production", {"CAIRN_REGISTRY": server.url, "CAIRN_TOKEN": token("fraud")},
                          cache=tmp_path / "cache")
        try:
            assert serving.served_version() == "fraud@1"
            cairn("promote", "fraud@2", "--to", "production", env=as_admin)
            deadline = time.monotonic() + 3
            while serving.served_version() != "fraud@2" and time.monotonic() < deadline:
                time.sleep(0.05)
            assert serving.served_version() == "fraud@2"
        finally:
            serving.stop()
    finally:
        server.stop()
