"""Error paths: MLflow's codes and statuses, which clients branch on."""

import mlflow
import pytest
import requests
from mlflow.exceptions import MlflowException


def code_of(call):
    with pytest.raises(MlflowException) as e:
        call()
    return e.value.error_code


def test_client_error_codes(client, unique, tracking_uri):
    assert client.get_experiment_by_name(f"missing-{unique}") is None
    assert code_of(lambda: client.get_run("0" * 32)) == "RESOURCE_DOES_NOT_EXIST"
    assert code_of(lambda: client.get_experiment("987654")) == "RESOURCE_DOES_NOT_EXIST"
    assert code_of(lambda: client.get_registered_model(f"{unique}-nope")) == "RESOURCE_DOES_NOT_EXIST"

    name = f"{unique}-dup"
    client.create_registered_model(name)
    assert code_of(lambda: client.create_registered_model(name)) == "RESOURCE_ALREADY_EXISTS"
    assert code_of(lambda: client.get_model_version_by_alias(name, "nope")) == "INVALID_PARAMETER_VALUE"
    assert code_of(lambda: client.get_model_version(name, "7")) == "RESOURCE_DOES_NOT_EXIST"

    exp = client.create_experiment(f"err-{unique}")
    assert code_of(lambda: client.create_experiment(f"err-{unique}")) == "RESOURCE_ALREADY_EXISTS"
    run = client.create_run(exp)
    client.log_param(run.info.run_id, "p", "1")
    assert code_of(lambda: client.log_param(run.info.run_id, "p", "2")) == "INVALID_PARAMETER_VALUE"
    client.delete_run(run.info.run_id)
    assert client.get_run(run.info.run_id).info.lifecycle_stage == "deleted"
    assert code_of(lambda: client.log_metric(run.info.run_id, "m", 1.0)) == "INVALID_PARAMETER_VALUE"
    client.restore_run(run.info.run_id)
    client.log_metric(run.info.run_id, "m", 1.0)

    # A version's source must be consistent with its run, and name nothing the registry
    # must not read (tests/mlflow/test_shapes.py compares each refusal with mlflow server's).
    other = client.create_run(exp)
    for source, run_id in [
        ("/etc/passwd", None),
        ("http://example.com/model", None),
        (f"runs:/{run.info.run_id}/model", other.info.run_id),
        ("mlflow-artifacts:/1/../../etc", run.info.run_id),
        (f"mlflow-artifacts:/{exp}/{run.info.run_id}/artifacts/model", other.info.run_id),
    ]:
        assert code_of(lambda: client.create_model_version(name, source, run_id=run_id)) == "INVALID_PARAMETER_VALUE", source


def test_http_statuses(tracking_uri, unique):
    api = f"{tracking_uri}/api/2.0/mlflow"
    r = requests.get(f"{api}/experiments/get-by-name", params={"experiment_name": f"none-{unique}"})
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert r.json()["message"] == f"Could not find experiment with name 'none-{unique}'"
    # MLflow's own words for what is missing (Cairn's native API words them its way).
    r = requests.get(f"{api}/runs/get", params={"run_id": "0" * 32})
    assert r.status_code == 404 and r.json()["message"] == f"Run with id={'0' * 32} not found"
    r = requests.post(f"{api}/registered-models/create", json={})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "name" in r.json()["message"]
    r = requests.get(f"{api}/experiments/get", params={"experiment_id": "not-a-number"})
    assert r.status_code == 400
    r = requests.post(f"{api}/registered-models/create", json={"name": f"{unique}-x"})
    assert r.status_code == 200
    r = requests.post(f"{api}/registered-models/create", json={"name": f"{unique}-x"})
    assert r.status_code == 400 and r.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"
    r = requests.get(f"{api}/registered-models/alias", params={"name": f"{unique}-x", "alias": "gone"})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    r = requests.post(f"{api}/runs/search", json={"experiment_ids": ["0"], "filter": "metrics.a > 1 OR metrics.b < 2"})
    assert r.status_code == 400
    r = requests.post(f"{api}/runs/search", json={"experiment_ids": ["0"], "page_token": "%%%"})
    assert r.status_code == 400
    r = requests.put(f"{tracking_uri}/api/2.0/mlflow-artifacts/artifacts/0/../../escape", data=b"x")
    assert r.status_code in (400, 404)
    r = requests.post(f"{api}/runs/create", data="{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    # The server keeps serving.
    assert requests.get(f"{tracking_uri}/healthz").ok


def test_hostile_values_answer_as_mlflow_does(tracking_uri, unique):
    """Compared with `mlflow server` 3.17.2 on the same requests. Where MLflow answers
    500 for input (a version number past 2^63: "Python int too large to convert to
    SQLite INTEGER"), Cairn answers what the input means: no such version."""
    api = f"{tracking_uri}/api/2.0/mlflow"
    name = f"{unique}-hostile"
    requests.post(f"{api}/registered-models/create", json={"name": name}).raise_for_status()
    run = requests.post(f"{api}/runs/create", json={"experiment_id": "0"}).json()["run"]["info"]
    root = run["artifact_uri"].split("mlflow-artifacts:/", 1)[1]
    artifacts = f"{tracking_uri}/api/2.0/mlflow-artifacts/artifacts/{root}"
    requests.put(f"{artifacts}/model/MLmodel", data=b"flavors: {}\n").raise_for_status()
    requests.post(f"{api}/model-versions/create", json={
        "name": name, "source": f"runs:/{run['run_id']}/model", "run_id": run["run_id"]}).raise_for_status()

    # Unicode word characters are an alias, as MLflow's `^[\w\-]*$` has it.
    for alias in ["ü", "prüfung-2"]:
        r = requests.post(f"{api}/registered-models/alias", json={"name": name, "alias": alias, "version": "1"})
        assert r.status_code == 200, r.text
    r = requests.get(f"{api}/registered-models/alias", params={"name": name, "alias": "ü"})
    assert r.status_code == 200 and r.json()["model_version"]["version"] == "1"
    r = requests.post(f"{api}/registered-models/alias", json={"name": name, "alias": "ü ü", "version": "1"})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert r.json()["message"] == (
        "Invalid alias name: 'ü ü'. Names may only contain alphanumerics, underscores (_), and dashes (-).")

    for version in ["9223372036854775808", "18446744073709551615"]:
        r = requests.post(f"{api}/registered-models/alias", json={"name": name, "alias": "p", "version": version})
        assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST", r.text
        assert r.json()["message"] == f"Model Version (name={name}, version={version}) not found"

    r = requests.post(f"{api}/runs/search", json={
        "experiment_ids": ["0"], "filter": " AND ".join(["metrics.a > 1"] * 20000)})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"

    r = requests.put(f"{artifacts}/dir/", data=b"x")
    assert r.status_code == 400
    assert "Artifact path must include a filename (cannot end with '/')" in r.text
