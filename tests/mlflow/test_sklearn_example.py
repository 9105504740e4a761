"""The example users copy from the model-versioning guides, verbatim in spirit."""

import mlflow
import mlflow.sklearn
import numpy as np
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

from conftest import mlflow_major


def test_log_register_load_predict(cairn, unique):
    X, y = load_iris(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    name = f"RandomForestClassifier{unique}"
    mlflow.set_experiment(f"sklearn-{unique}")
    with mlflow.start_run():
        model = RandomForestClassifier(random_state=0).fit(X_train, y_train)
        if mlflow_major() >= 3:
            # MLflow 3 serializes sklearn models with skops and refuses the tree type
            # unless trusted: the same argument the real mlflow server needs.
            info = mlflow.sklearn.log_model(
                model,
                name="random_forest_model",
                registered_model_name=name,
                skops_trusted_types=["sklearn.tree._tree.Tree"],
            )
        else:
            info = mlflow.sklearn.log_model(
                model, artifact_path="random_forest_model", registered_model_name=name
            )
    assert int(info.registered_model_version) == 1

    loaded = mlflow.pyfunc.load_model(f"models:/{name}/1")
    np.testing.assert_array_equal(loaded.predict(X_test), model.predict(X_test))

    # One domain: the MLflow-registered version is a normal Cairn version.
    shown = cairn("show", f"{name}@1", "--json")
    import json

    version = json.loads(shown.stdout)
    paths = {f["path"] for f in version["files"]}
    assert "MLmodel" in paths
    assert all(len(f["sha256"]) == 64 for f in version["files"])
    assert cairn("verify", f"{name}@1").returncode == 0
