"""`cairn serve` answers every test model (scikit-learn through skl2onnx, a network
written with onnx.helper) with onnxruntime's own outputs, in every input format of
MLflow's scoring protocol — and in the shape `mlflow models serve` answers."""

import csv
import io
import math

import pytest

from conftest import MlflowServe

# The models of the acceptance list, and the variants whose signature kind changes how
# requests are read (see models.py).
MODELS = ["rf_zipmap", "rf_nozipmap", "gbr", "mlp", "pipeline", "net"]
SIGNED_VARIANTS = ["rf_nozipmap_tensor", "rf_zipmap_nosig", "net_nosig"]


def flat(value):
    """Numbers of a nested answer in order; maps by sorted key."""
    if isinstance(value, dict):
        return [x for k in sorted(value) for x in flat(value[k])]
    if isinstance(value, list):
        return [x for v in value for x in flat(v)]
    return [value]


def assert_close(got, want, what):
    got, want = flat(got), flat(want)
    assert len(got) == len(want), f"{what}: {len(got)} values, onnxruntime gives {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        assert math.isclose(g, w, rel_tol=1e-5, abs_tol=1e-5), f"{what}[{i}]: {g} != {w}"


def outputs_of(answer, names):
    """{output: per-row values} from either answer shape."""
    predictions = answer["predictions"]
    if isinstance(predictions, list):
        return {n: [record[n] for record in predictions] for n in names}
    return {n: predictions[n] for n in names}


def requests_for(desc, layout):
    """(format, kwargs for Serving.invoke) for every input format the layout takes."""
    rows = desc["X_test"]
    columns = desc["columns"] or [f"c{i}" for i in range(len(rows[0]))]
    records = [dict(zip(columns, row)) for row in rows]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    input_name = desc["inputs"][0]["name"]
    out = [
        ("dataframe_split", {"body": {"dataframe_split": {"columns": columns, "data": rows}}}),
        ("dataframe_records", {"body": {"dataframe_records": records}}),
        ("text/csv", {"csv": buffer.getvalue()}),
    ]
    if layout == "mlflow" and desc["signature"] == "columns":
        # A signature naming columns takes tensors as named columns (as MLflow does).
        out += [
            ("instances", {"body": {"instances": records}}),
            ("inputs", {"body": {"inputs": {c: [r[i] for r in rows] for i, c in enumerate(columns)}}}),
        ]
    else:
        out += [
            ("instances", {"body": {"instances": rows}}),
            ("inputs", {"body": {"inputs": rows}}),
            ("inputs by name", {"body": {"inputs": {input_name: rows}}}),
        ]
    return out


@pytest.fixture(scope="module")
def served(models, tmp_path_factory):
    """Every model pushed twice (the bare .onnx file, the MLflow directory) into one
    registry, and a `cairn serve` per version."""
    from conftest import Registry, Serving

    home = tmp_path_factory.mktemp("outputs")
    registry = Registry(home / "registry")
    processes = {}
    for name in MODELS + SIGNED_VARIANTS:
        desc = models[name]
        from pathlib import Path

        plain = registry.push(Path(desc["onnx_path"]).parent / "model.onnx", name)
        mlflow = registry.push(desc["mlflow_path"], name)
        for layout, number in (("onnx", plain), ("mlflow", mlflow)):
            if name in SIGNED_VARIANTS and layout == "onnx":
                continue
            processes[(name, layout)] = Serving(f"{name}@{number}", registry.env, cache=home / "cache")
    yield processes
    for p in processes.values():
        p.stop()


@pytest.mark.parametrize("layout", ["onnx", "mlflow"])
@pytest.mark.parametrize("name", MODELS)
def test_every_format_answers_what_onnxruntime_answers(models, served, name, layout):
    desc = models[name]
    serving = served[(name, layout)]
    names = [o["name"] for o in desc["outputs"]]
    for fmt, request in requests_for(desc, layout):
        response = serving.invoke(**request, timeout=30)
        assert response.status_code == 200, f"{name} ({layout}) {fmt}: {response.text}"
        assert response.headers["x-cairn-model-version"].startswith(f"{name}@")
        assert response.headers["x-cairn-model-digest"].startswith("sha256:")
        got = outputs_of(response.json(), names)
        for output in names:
            assert_close(got[output], desc["ort_outputs"][output], f"{name} ({layout}) {fmt} {output}")


@pytest.mark.parametrize("name", SIGNED_VARIANTS)
def test_signature_variants_answer_what_onnxruntime_answers(models, served, name):
    desc = models[name]
    names = [o["name"] for o in desc["outputs"]]
    rows = desc["X_test"]
    response = served[(name, "mlflow")].invoke({"inputs": rows}, timeout=30)
    assert response.status_code == 200, response.text
    got = outputs_of(response.json(), names)
    for output in names:
        assert_close(got[output], desc["ort_outputs"][output], f"{name} {output}")


# Where `mlflow models serve` answers 200, Cairn's answer is the same JSON: the same
# shape (records for tables under a column signature, an object of tensors otherwise)
# and the same numbers.
MLFLOW_COMPARED = ["rf_zipmap", "gbr", "pipeline", "net", "rf_nozipmap_tensor"]


@pytest.mark.parametrize("name", MLFLOW_COMPARED)
def test_answers_have_the_shape_mlflow_models_serve_gives(models, served, name):
    desc = models[name]
    reference = MlflowServe(desc["mlflow_path"])
    try:
        compared = 0
        for fmt, request in requests_for(desc, "mlflow"):
            want = _post(reference, request)
            if want.status_code != 200:
                continue
            got = served[(name, "mlflow")].invoke(**request, timeout=30)
            assert got.status_code == 200, f"{name} {fmt}: {got.text}"
            assert same_shape(got.json(), want.json()), (
                f"{name} {fmt}: cairn {got.text[:300]} mlflow {want.text[:300]}"
            )
            assert_close(got.json(), want.json(), f"{name} {fmt} against mlflow")
            compared += 1
        assert compared >= 2, f"mlflow models serve answered too few formats of {name}"
    finally:
        reference.stop()


def _post(server, request):
    import requests

    if "csv" in request:
        return requests.post(
            f"{server.url}/invocations", data=request["csv"], headers={"Content-Type": "text/csv"}, timeout=60
        )
    return requests.post(f"{server.url}/invocations", json=request["body"], timeout=60)


def same_shape(a, b):
    """Same structure: the same keys, list lengths and nesting; numbers anywhere."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_shape(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_shape(x, y) for x, y in zip(a, b))
    return isinstance(a, (int, float)) and isinstance(b, (int, float))
