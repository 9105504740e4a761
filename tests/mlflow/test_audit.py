"""Every registry change made through the MLflow client leaves exactly one entry in
Cairn's audit log, by actor `mlflow`, and the chain verifies."""

import mlflow
import requests

from test_registry import log_model_files


def audit(url):
    answer = requests.get(f"{url}/api/v1/audit")
    answer.raise_for_status()
    return answer.json()


def test_each_mlflow_registry_change_is_one_audit_entry(client, unique, tmp_path, tracking_uri):
    mlflow.set_experiment(f"audit-{unique}")
    run_id = log_model_files(tmp_path, "audited")
    name = f"{unique}-audited"
    before = len(audit(tracking_uri))

    steps = [
        ("model.create", lambda: client.create_registered_model(name, description="v0")),
        ("version.create", lambda: client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id)),
        ("alias.set", lambda: client.set_registered_model_alias(name, "champion", 1)),
        ("model.tag.set", lambda: client.set_registered_model_tag(name, "team", "risk")),
        ("version.tag.set", lambda: client.set_model_version_tag(name, "1", "reviewed", "yes")),
        ("model.description", lambda: client.update_registered_model(name, description="v1")),
        ("version.description", lambda: client.update_model_version(name, "1", description="first")),
        ("version.stage", lambda: client.transition_model_version_stage(name, "1", "Staging")),
        ("alias.delete", lambda: client.delete_registered_model_alias(name, "champion")),
        ("version.tag.delete", lambda: client.delete_model_version_tag(name, "1", "reviewed")),
        ("model.tag.delete", lambda: client.delete_registered_model_tag(name, "team")),
        ("model.rename", lambda: client.rename_registered_model(name, f"{name}-2")),
        ("version.delete", lambda: client.delete_model_version(f"{name}-2", "1")),
        ("model.delete", lambda: client.delete_registered_model(f"{name}-2")),
    ]
    for expected, change in steps:
        change()
        log = audit(tracking_uri)
        new = log[before:]
        assert [e["action"] for e in new] == [expected], f"after {expected}: {new}"
        assert new[0]["actor"] == "mlflow"
        before = len(log)

    report = requests.post(f"{tracking_uri}/api/v1/audit/verify").json()
    assert report["broken"] is None, report
    assert report["entries"] == before
