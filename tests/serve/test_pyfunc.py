"""Models that are not ONNX (a scikit-learn pickle, any pyfunc) are served by MLflow's
own scoring server, reading the version from Cairn: `mlflow models serve -m
models:/NAME@ALIAS --env-manager local` with Cairn as the tracking server."""

import mlflow
import numpy as np
import requests
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

from conftest import CairnServer, MlflowServe


def test_mlflow_models_serve_reads_an_alias_from_cairn(tmp_path, monkeypatch):
    server = CairnServer("--data", str(tmp_path / "registry"))
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        mlflow.set_tracking_uri(server.url)
        rng = np.random.default_rng(7)
        X = rng.normal(size=(60, 3))
        y = (X[:, 0] + X[:, 1] > 0).astype(int)
        model = LogisticRegression().fit(X, y)
        with mlflow.start_run():
            mlflow.sklearn.log_model(model, name="model", registered_model_name="churn", input_example=X[:2])
        MlflowClient().set_registered_model_alias("churn", "champion", "1")

        reference = MlflowServe("models:/churn@champion", env={"MLFLOW_TRACKING_URI": server.url})
        try:
            answer = requests.post(
                f"{reference.url}/invocations", json={"inputs": X[:5].tolist()}, timeout=60
            )
        finally:
            reference.stop()
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == model.predict(X[:5]).tolist()
    finally:
        server.stop()
