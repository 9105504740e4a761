"""Hostile and malformed scoring requests each get a 4xx naming the problem, and the
serving process keeps answering; `--split` sends its share to the candidate; a missing
onnxruntime or an unservable version is one clear line and exit 1."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import requests

from conftest import CAIRN_BIN, onnxruntime_library

ROWS = [[1.457, 0.928, 1.901, 1.026], [-1.131, 2.736, 1.133, 2.43]]
COLUMNS = ["x0", "x1", "x2", "x3"]


def split(data, columns=COLUMNS):
    return {"dataframe_split": {"columns": columns, "data": data}}


# (what, content type, body, expected status, words the message must hold)
MALFORMED = [
    ("invalid JSON", "application/json", b'{"inputs": [[1, 2', 400, "not valid JSON"),
    ("a list, not an object", "application/json", b"[[1, 2, 3, 4]]", 400, "got a list"),
    ("no format field", "application/json", b'{"rows": [[1, 2, 3, 4]]}', 400, "exactly one of"),
    ("two format fields", "application/json", json.dumps({"inputs": ROWS, "instances": ROWS}).encode(), 400, "instances, inputs"),
    ("a wrong column", "application/json", json.dumps(split(ROWS, ["x0", "x1", "x2", "bogus"])).encode(), 400, "x3"),
    ("a missing column", "application/json", json.dumps({"dataframe_records": [{"x0": 1, "x1": 2, "x2": 3}]}).encode(), 400, "x3"),
    ("a string for a float", "application/json", json.dumps(split([[1, "abc", 3, 4]])).encode(), 400, '"abc" is not a float'),
    ("an object for a float", "application/json", json.dumps(split([[1, {"a": 1}, 3, 4]])).encode(), 400, "x1"),
    ("a ragged split", "application/json", json.dumps(split([[1, 2, 3, 4], [1, 2]])).encode(), 400, "row 1 has 2 values for 4 columns"),
    ("NaN, which JSON has not", "application/json", b'{"dataframe_split": {"columns": ["x0","x1","x2","x3"], "data": [[NaN, 1, 2, 3]]}}', 400, "not valid JSON"),
    ("records of lists", "application/json", b'{"dataframe_records": [[1, 2, 3, 4]]}', 400, "list of records"),
    ("rows for a model whose signature names columns", "application/json", json.dumps({"inputs": ROWS}).encode(), 400, "names its columns"),
    ("a CSV cell that is not a number", "text/csv", b"x0,x1,x2,x3\n1,2,three,4\n", 400, "x2"),
    ("a ragged CSV", "text/csv", b"x0,x1,x2,x3\n1,2,3,4\n1,2\n", 400, "CSV"),
    ("CSV without a header's columns", "text/csv", b"1.0,2.0,3.0,4.0\n", 400, "x0"),
    ("not UTF-8", "application/json", b'{"inputs": "\xff\xfe"}', 400, "UTF-8"),
    ("an unknown content type", "text/plain", b"1,2,3,4", 415, "application/json and text/csv"),
    ("a charset that is not UTF-8", "application/json; charset=latin-1", json.dumps(split(ROWS)).encode(), 415, "UTF-8"),
    ("no content type", None, json.dumps(split(ROWS)).encode(), 415, "Content-Type"),
    ("a 10 MB row", "application/json", json.dumps({"dataframe_split": {"data": [[1.0] * 2_000_000]}}).encode(), 400, "x0"),
    ("a body over the limit", "application/json", b'{"inputs": [' + b"1.0," * 9_000_000 + b"1.0]}", 413, "limit"),
]


@pytest.fixture(scope="module")
def forest(models, tmp_path_factory):
    """rf_zipmap's MLflow model (a signature naming columns x0..x3), served."""
    from conftest import Registry, Serving

    home = tmp_path_factory.mktemp("requests")
    registry = Registry(home / "registry")
    number = registry.push(models["rf_zipmap"]["mlflow_path"], "fraud")
    serving = Serving(f"fraud@{number}", registry.env, "--max-body", str(16 * 1024 * 1024), cache=home / "cache")
    yield serving
    serving.stop()


@pytest.mark.parametrize("what,content_type,body,status,words", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_requests_get_a_4xx_naming_the_problem(forest, what, content_type, body, status, words):
    headers = {"Content-Type": content_type} if content_type else {}
    response = requests.post(f"{forest.url}/invocations", data=body, headers=headers, timeout=60)
    assert response.status_code == status, f"{what}: {response.status_code} {response.text[:300]}"
    answer = response.json()
    assert answer["error_code"] in ("BAD_REQUEST", "INVALID_PARAMETER_VALUE", "REQUEST_LIMIT_EXCEEDED")
    assert words in answer["message"], f"{what}: {answer['message'][:300]}"
    # Still serving, after every one of them.
    assert requests.post(f"{forest.url}/invocations", json=split(ROWS), timeout=10).status_code == 200


def test_an_integer_input_refuses_missing_values(models, registry, serve, tmp_path):
    """null is NaN for a float input (as pandas reads it) but never an integer."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["n"], ["out"])],
        "ints",
        [helper.make_tensor_value_info("n", TensorProto.INT64, ["batch", 2])],
        [helper.make_tensor_value_info("out", TensorProto.INT64, ["batch", 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "ints.onnx"
    onnx.save_model(model, str(path))
    number = registry.push(path, "ints")
    serving = serve(f"ints@{number}", registry)
    ok = serving.invoke({"inputs": [[1, 2], [3, 4]]}, timeout=10)
    assert ok.status_code == 200 and ok.json() == {"predictions": {"out": [[1, 2], [3, 4]]}}
    for body, words in [
        ({"inputs": [[1, None]]}, "null"),
        ({"inputs": [[1, 2.5]]}, "2.5 is not an int64"),
        ({"inputs": [[1, 2, 3]]}, "shape [N, 2]"),
        ({"inputs": {"m": [[1, 2]]}}, 'no input "m"'),
    ]:
        r = serving.invoke(body, timeout=10)
        assert r.status_code == 400 and words in r.json()["message"], (body, r.text)


def test_split_sends_its_share_to_the_candidate(models, registry, serve):
    one = registry.push(models["rf_zipmap"]["onnx_path"], "fraud")
    two = registry.push(models["rf_nozipmap"]["onnx_path"], "fraud")
    registry.cli("alias", "set", "fraud", "production", str(one))
    registry.cli("alias", "set", "fraud", "candidate", str(two))
    serving = serve("fraud@production", registry, "--split", "fraud@candidate=10")
    counts = {}
    for _ in range(2000):
        r = serving.invoke({"inputs": ROWS[:1]}, timeout=10)
        assert r.status_code == 200
        counts[r.headers["x-cairn-model-version"]] = counts.get(r.headers["x-cairn-model-version"], 0) + 1
    share = counts.get(f"fraud@{two}", 0) / 2000
    assert 0.07 <= share <= 0.13, counts
    health = serving.health()
    assert [r["serving"]["version"] for r in health["routes"]] == [f"fraud@{one}", f"fraud@{two}"]


def test_without_onnxruntime_serve_says_how_to_get_it(models, registry):
    number = registry.push(models["rf_zipmap"]["onnx_path"], "fraud")
    env = {k: v for k, v in os.environ.items() if k != "ORT_DYLIB_PATH"}
    # A PATH whose python3 has no onnxruntime package.
    env.update(registry.env, PATH="/usr/bin:/bin")
    done = subprocess.run(
        [CAIRN_BIN, "serve", f"fraud@{number}", "--port", "0"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 1, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "onnxruntime was not found" in lines[0] and "pip install onnxruntime" in lines[0]
    assert done.stdout == ""


def test_onnxruntime_is_found_in_the_python_package_on_path(models, registry, tmp_path):
    from conftest import VENV_BIN, Serving

    number = registry.push(models["rf_zipmap"]["onnx_path"], "fraud")
    env = {**registry.env, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    os_env = os.environ.pop("ORT_DYLIB_PATH", None)
    try:
        serving = Serving(f"fraud@{number}", env, cache=tmp_path / "cache", library=False)
    finally:
        if os_env is not None:
            os.environ["ORT_DYLIB_PATH"] = os_env
    try:
        assert serving.invoke({"inputs": ROWS}, timeout=10).status_code == 200
    finally:
        serving.stop()


def test_a_version_that_is_not_onnx_is_refused_naming_what_it_holds(registry, tmp_path):
    model = tmp_path / "sk"
    model.mkdir()
    (model / "MLmodel").write_text("flavors:\n  sklearn:\n    pickled_model: model.pkl\n  python_function:\n    loader_module: mlflow.sklearn\n")
    (model / "model.pkl").write_bytes(b"\x80\x04pickle")
    number = registry.push(model, "sk")
    done = subprocess.run(
        [CAIRN_BIN, "serve", f"sk@{number}", "--port", "0"],
        capture_output=True,
        text=True,
        env={**os.environ, **registry.env, "ORT_DYLIB_PATH": onnxruntime_library()},
        timeout=60,
    )
    assert done.returncode == 1, done
    last = done.stderr.strip().splitlines()[-1]
    assert "no onnx flavor (flavors: python_function, sklearn)" in last, done.stderr
    assert "mlflow models serve" in last
