"""A version registered through MLflow carries its run's lineage in Cairn: the run, the
git commit MLflow tagged, and the datasets logged with log_input."""

import mlflow
import pandas as pd
import requests

from test_registry import log_model_files


def test_mlflow_run_git_tags_and_datasets_become_lineage(client, unique, tmp_path, tracking_uri):
    mlflow.set_experiment(f"lineage-{unique}")
    with mlflow.start_run() as run:
        mlflow.set_tags({
            "mlflow.source.git.commit": "4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70",
            "mlflow.source.git.branch": "main",
            "mlflow.source.git.repoURL": "https://example.com/team/fraud.git",
        })
        frame = pd.DataFrame({"x": [1, 2, 3], "y": [0, 1, 0]})
        dataset = mlflow.data.from_pandas(frame, name="train-2026-11")
        mlflow.log_input(dataset, context="training")
        model_dir = tmp_path / "model"
        model_dir.mkdir()
        (model_dir / "weights.bin").write_bytes(b"w" * 64)
        mlflow.log_artifacts(str(model_dir), artifact_path="model")
    name = f"{unique}-lineage"
    client.create_registered_model(name)
    client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)

    lineage = requests.get(f"{tracking_uri}/api/v1/models/{name}/versions/1/lineage").json()
    assert lineage["run_id"] == run.info.run_id
    assert lineage["code"]["commit"] == "4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70"
    assert lineage["code"]["branch"] == "main"
    assert lineage["data"] == [
        {"kind": "mlflow", "path": "train-2026-11", "digest": dataset.digest}
    ]
    found = requests.get(f"{tracking_uri}/api/v1/lineage/versions", params={"data": dataset.digest}).json()
    assert found == [{"model": name, "version": 1}]
