#!/usr/bin/env python3
"""ONNX models that the `cairn serve` tests serve, built deterministically.

`build_all(outdir)` trains a few small scikit-learn models (fixed random_state), converts
them with skl2onnx, writes one hand-made onnx.helper network, and lays each out as

    OUTDIR/NAME/model.onnx     the plain ONNX file (all weights inline)
    OUTDIR/NAME/mlflow/        an MLflow model directory from mlflow.onnx.save_model

It returns a JSON-serialisable description of every model (see `build_all`), including a
fixed 10-row test set and what onnxruntime, run directly on model.onnx, answers for it.
Run it as a script to build the models and print that description:

    python models.py OUTDIR          # writes OUTDIR/models.json too

The models (ONNX input "X" float [None, n_features] unless said otherwise)
----------
rf_zipmap           RandomForestClassifier(10 trees), 4 features, 2 classes; skl2onnx's
                    default ZipMap: output_label int64 [N], output_probability
                    seq(map(int64, float)). Signature: named columns x0..x3, float.
rf_nozipmap         the same forest with zipmap=False: label int64 [N], probabilities
                    float [N, 2]. Signature: named columns, float.
rf_nozipmap_tensor  rf_nozipmap's ONNX file, signature: tensor float32 (-1, 4).
rf_zipmap_nosig     rf_zipmap's ONNX file, no signature.
rf_nozipmap_nosig   rf_nozipmap's ONNX file, no signature.
gbr                 GradientBoostingRegressor, 5 features: variable float [N, 1].
                    Signature: named columns f0..f4, float.
mlp                 MLPClassifier on iris (3 classes), zipmap=False: label int64 [N],
                    probabilities float [N, 3]. Signature: named columns with iris's own
                    names ("sepal length (cm)", ... - spaces and parentheses), float.
pipeline            StandardScaler + LogisticRegression, 6 features, ZipMap on (default):
                    output_label, output_probability. Signature: named columns
                    feature_0..feature_5, *double*.
net                 onnx.helper graph Gemm(64) -> Relu -> Gemm(3) -> Softmax; input "x"
                    float ["batch", 4], output "probs" float ["batch", 3].
                    Signature: tensor float32 (-1, 4).
net_nosig           net's ONNX file, no signature.

Signatures. What users realistically get is `infer_signature(X, y)` on whatever X they
trained on: tabular scikit-learn users hold a pandas DataFrame with named columns, which
gives a *column-based* signature (one named ColSpec per feature; `float` for a float32
frame, `double` for the float64 frame pandas usually hands out - `pipeline` covers that);
tensor users (the `net`) hold a numpy array, which gives an unnamed *tensor* signature
(float32, shape (-1, 4)). `rf_nozipmap_tensor` is the forest with the tensor signature,
because the signature kind decides how MLflow feeds the model and shapes the answer.
The `*_nosig` models are saved with no signature at all (users who skip infer_signature):
MLflow then enforces nothing and hands the parsed request straight to the ONNX wrapper.
Each MLflow directory with a signature also carries an input example (the first two test
rows); the unsigned ones carry none (users who skip the one usually skip the other).

External data. `mlflow.onnx.save_model` saves with `save_as_external_data=True` (onnx's
default threshold: raw tensors of >= 1 KiB), so the MLflow directory of `net` (whose first
weight matrix is 4x64 float32 = 1 KiB) holds `model.onnx` plus a separate, uuid-named
weights file next to it. The plain OUTDIR/net/model.onnx keeps every weight inline.

Test rows are plain Python floats with few decimals (what a client sends); onnxruntime
is fed them as float32, which is also what MLflow ends up feeding after its casts.

What `mlflow models serve` (3.17.2) makes of these, in short: with a column signature
every accepted request becomes a DataFrame and the answer is a list of records, one
column per ONNX output, each output flattened with reshape(-1). Outputs of unequal
flattened length (label [N] + probabilities [N, k], i.e. rf_nozipmap and mlp) make pandas
fail, so MLflow answers 400 for *every* well-formed request to them. With a tensor
signature (or none, for `inputs`/`instances` rows) the answer is {output name: tensor}.
"""

import copy
import json
import sys
import warnings
from pathlib import Path

import numpy as np

SEED = 0
N_TEST = 10
# Pinned so the files do not change when skl2onnx/onnx move their defaults, and old enough
# for any recent onnxruntime.
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
NET_OPSET = 17
NET_IR_VERSION = 8
NET_HIDDEN = 64
# Explicit requirements skip MLflow's slow requirement inference (a subprocess that reloads
# the model); serving with --env-manager local ignores them anyway.
PIP_REQUIREMENTS = ["mlflow", "onnx", "onnxruntime"]

MODEL_NAMES = [
    "rf_zipmap",
    "rf_nozipmap",
    "rf_nozipmap_tensor",
    "rf_zipmap_nosig",
    "rf_nozipmap_nosig",
    "gbr",
    "mlp",
    "pipeline",
    "net",
    "net_nosig",
]


# ---------------------------------------------------------------------------------------
# Data


def _split(X, y):
    """Last N_TEST rows are the test set; the rest train."""
    return X[:-N_TEST], X[-N_TEST:], y[:-N_TEST], y[-N_TEST:]


def _classification_data(n_features, n_classes=2):
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=200,
        n_features=n_features,
        n_informative=min(n_features, 3),
        n_redundant=0,
        n_classes=n_classes,
        random_state=SEED,
    )
    return np.round(X, 3), y


def _regression_data(n_features):
    from sklearn.datasets import make_regression

    X, y = make_regression(n_samples=200, n_features=n_features, noise=0.1, random_state=SEED)
    return np.round(X, 3), y


def _iris():
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    # Shuffle deterministically so the test rows cover the three classes.
    order = np.random.RandomState(SEED).permutation(len(iris.frame))
    X = iris.data.to_numpy()[order]
    y = iris.target.to_numpy()[order]
    return X, y, list(iris.feature_names)


# ---------------------------------------------------------------------------------------
# ONNX conversion


def _skl_to_onnx(estimator, n_features, zipmap=True):
    """zipmap only matters for classifiers: True keeps skl2onnx's default ZipMap."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    options = None if zipmap else {id(estimator): {"zipmap": False}}
    return to_onnx(
        estimator,
        initial_types=[("X", FloatTensorType([None, n_features]))],
        options=options,
        target_opset=TARGET_OPSET,
    )


def _net_onnx():
    """x[batch,4] -> Gemm(64) -> Relu -> Gemm(3) -> Softmax -> probs[batch,3]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.RandomState(SEED)
    w1 = rng.normal(0.0, 0.5, size=(4, NET_HIDDEN)).astype(np.float32)
    b1 = rng.normal(0.0, 0.1, size=(NET_HIDDEN,)).astype(np.float32)
    w2 = rng.normal(0.0, 0.5, size=(NET_HIDDEN, 3)).astype(np.float32)
    b2 = rng.normal(0.0, 0.1, size=(3,)).astype(np.float32)
    # numpy_helper stores raw_data, which is what onnx moves to external data files.
    inits = [
        numpy_helper.from_array(w1, "w1"),
        numpy_helper.from_array(b1, "b1"),
        numpy_helper.from_array(w2, "w2"),
        numpy_helper.from_array(b2, "b2"),
    ]
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="gemm1"),
        helper.make_node("Relu", ["h"], ["hr"], name="relu"),
        helper.make_node("Gemm", ["hr", "w2", "b2"], ["logits"], name="gemm2"),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "cairn_test_net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 3])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", NET_OPSET)],
        producer_name="cairn-tests",
    )
    model.ir_version = NET_IR_VERSION
    onnx.checker.check_model(model)
    return model


# ---------------------------------------------------------------------------------------
# Model specs: {name: dict(onnx, estimator, columns, X_train, X_test, signature, dtype)}


def _specs():
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    specs = {}

    X, y = _classification_data(4)
    Xtr, Xte, ytr, _ = _split(X, y)
    rf = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=SEED)
    rf.fit(Xtr.astype(np.float32), ytr)
    rf_cols = [f"x{i}" for i in range(4)]
    specs["rf_zipmap"] = dict(
        onnx=_skl_to_onnx(rf, 4, zipmap=True), estimator=rf, columns=rf_cols,
        X_train=Xtr, X_test=Xte, signature="columns", dtype=np.float32,
    )
    rf_nozip = _skl_to_onnx(rf, 4, zipmap=False)
    specs["rf_nozipmap"] = dict(
        onnx=rf_nozip, estimator=rf, columns=rf_cols,
        X_train=Xtr, X_test=Xte, signature="columns", dtype=np.float32,
    )
    specs["rf_nozipmap_tensor"] = dict(
        onnx=copy.deepcopy(rf_nozip), estimator=rf, columns=rf_cols,
        X_train=Xtr, X_test=Xte, signature="tensor", dtype=np.float32,
    )
    specs["rf_zipmap_nosig"] = dict(
        specs["rf_zipmap"], onnx=copy.deepcopy(specs["rf_zipmap"]["onnx"]), signature="none"
    )
    specs["rf_nozipmap_nosig"] = dict(
        specs["rf_nozipmap"], onnx=copy.deepcopy(rf_nozip), signature="none"
    )

    X, y = _regression_data(5)
    Xtr, Xte, ytr, _ = _split(X, y)
    gbr = GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=SEED)
    gbr.fit(Xtr.astype(np.float32), ytr)
    specs["gbr"] = dict(
        onnx=_skl_to_onnx(gbr, 5), estimator=gbr,
        columns=[f"f{i}" for i in range(5)],
        X_train=Xtr, X_test=Xte, signature="columns", dtype=np.float32,
    )

    X, y, names = _iris()
    Xtr, Xte, ytr, _ = _split(X, y)
    mlp = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2000, random_state=SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlp.fit(Xtr.astype(np.float32), ytr)
    specs["mlp"] = dict(
        onnx=_skl_to_onnx(mlp, 4, zipmap=False), estimator=mlp, columns=names,
        X_train=Xtr, X_test=Xte, signature="columns", dtype=np.float32,
    )

    X, y = _classification_data(6)
    Xtr, Xte, ytr, _ = _split(X, y)
    pipe = Pipeline([
        ("scale", StandardScaler()),
        ("logreg", LogisticRegression(random_state=SEED)),
    ])
    pipe.fit(Xtr, ytr)
    specs["pipeline"] = dict(
        onnx=_skl_to_onnx(pipe, 6, zipmap=True), estimator=pipe,
        columns=[f"feature_{i}" for i in range(6)],
        X_train=Xtr, X_test=Xte, signature="columns", dtype=np.float64,
    )

    rng = np.random.RandomState(SEED + 1)
    X = np.round(rng.normal(0.0, 1.0, size=(40, 4)), 2)
    specs["net"] = dict(
        onnx=_net_onnx(), estimator=None, columns=None,
        X_train=X[:-N_TEST], X_test=X[-N_TEST:], signature="tensor", dtype=np.float32,
    )
    specs["net_nosig"] = dict(specs["net"], onnx=_net_onnx(), signature="none")
    return specs


# ---------------------------------------------------------------------------------------
# Running onnxruntime and describing models


def _jsonable(value):
    """onnxruntime results -> JSON-able lists. ZipMap maps keep int keys as strings,
    which is also what json.dumps (and so MLflow) writes."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def run_onnx(model_path, rows):
    """Runs model.onnx on rows (fed as float32 to its single input); returns
    {output name: JSON-able value}."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    names = [o.name for o in sess.get_outputs()]
    outs = sess.run(names, {name: np.asarray(rows, dtype=np.float32)})
    return {n: _jsonable(v) for n, v in zip(names, outs)}


def _io_description(model_path):
    """[{name, type, shape}] for inputs and outputs; dims are ints, symbolic names or None."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])

    def describe(args):
        return [{"name": a.name, "type": a.type, "shape": list(a.shape)} for a in args]

    return describe(sess.get_inputs()), describe(sess.get_outputs())


# ---------------------------------------------------------------------------------------
# MLflow model directories


def _save_mlflow(spec, onnx_model, path, ort_test):
    import mlflow.onnx
    import pandas as pd
    from mlflow.models import infer_signature

    if spec["signature"] == "none":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlflow.onnx.save_model(onnx_model, str(path), pip_requirements=PIP_REQUIREMENTS)
        return None
    X_train = spec["X_train"].astype(spec["dtype"])
    example_rows = spec["X_test"][:2].astype(spec["dtype"])
    if spec["signature"] == "columns":
        X_sig = pd.DataFrame(X_train, columns=spec["columns"])
        example = pd.DataFrame(example_rows, columns=spec["columns"])
    else:
        X_sig = X_train
        example = example_rows
    # The output side of the signature is informational only (MLflow never enforces it):
    # the estimator's own predictions, or the network's probabilities.
    if spec["estimator"] is not None:
        y_sig = spec["estimator"].predict(X_train)
    else:
        y_sig = np.asarray(ort_test["probs"], dtype=np.float32)
    signature = infer_signature(X_sig, y_sig)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.onnx.save_model(
            onnx_model,
            str(path),
            signature=signature,
            input_example=example,
            pip_requirements=PIP_REQUIREMENTS,
        )
    return signature


def build_all(outdir):
    """Builds every model under outdir; returns {name: description}.

    Each description holds:
      onnx_path, mlflow_path   absolute paths (str)
      inputs, outputs          [{name, type, shape}] as onnxruntime reports them
                               (symbolic/unknown dims are strings/None)
      columns                  feature column names, in signature order (None for the nets)
      signature                "columns", "tensor" or "none"; signature_inputs is the
                               signature's inputs as MLflow writes them (None if unsigned)
      input_dtype              the dtype of the signature's inputs ("float32"/"float64")
      X_test                   N_TEST rows of Python floats
      ort_outputs              {output name: value} from onnxruntime on model.onnx (float32
                               values widened to Python floats; ZipMap maps with str keys)
    """
    import shutil

    import onnx

    outdir = Path(outdir).resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    described = {}
    for name, spec in _specs().items():
        mdir = outdir / name
        mdir.mkdir(parents=True, exist_ok=True)
        onnx_path = mdir / "model.onnx"
        # Save the plain file first: save_model(save_as_external_data=True) rewrites the
        # proto's tensors in place, so MLflow gets its own copy.
        onnx.save_model(spec["onnx"], str(onnx_path))
        X_test = [[float(v) for v in row] for row in spec["X_test"]]
        ort_test = run_onnx(onnx_path, X_test)
        mlflow_path = mdir / "mlflow"
        if mlflow_path.exists():
            shutil.rmtree(mlflow_path)
        signature = _save_mlflow(spec, copy.deepcopy(spec["onnx"]), mlflow_path, ort_test)
        inputs, outputs = _io_description(onnx_path)
        described[name] = {
            "onnx_path": str(onnx_path),
            "mlflow_path": str(mlflow_path),
            "inputs": inputs,
            "outputs": outputs,
            "columns": spec["columns"],
            "signature": spec["signature"],
            "signature_inputs": json.loads(signature.inputs.to_json()) if signature else None,
            "input_dtype": np.dtype(spec["dtype"]).name,
            "X_test": X_test,
            "ort_outputs": ort_test,
        }
    return described


def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} OUTDIR", file=sys.stderr)
        return 2
    described = build_all(Path(argv[1]))
    text = json.dumps(described, indent=1)
    (Path(argv[1]) / "models.json").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
