"""The model-registry workflow of MLflow's docs, through the real client."""

import mlflow
import pytest
from mlflow.exceptions import MlflowException

from conftest import mlflow_major


def log_model_files(tmp_path, content):
    """A run with a small 'model' directory of artifacts; returns the run id."""
    model_dir = tmp_path / f"model-{content}"
    model_dir.mkdir()
    (model_dir / "weights.bin").write_bytes(content.encode() * 100)
    (model_dir / "config.json").write_text('{"layers": 2}')
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(model_dir), artifact_path="model")
    return run.info.run_id


def test_register_alias_tag_search_rename_delete(client, unique, tmp_path):
    mlflow.set_experiment(f"registry-{unique}")
    name = f"{unique}-fraud"
    created = client.create_registered_model(name, tags={"team": "risk"}, description="fraud model")
    assert created.name == name
    assert created.description == "fraud model"
    assert created.tags == {"team": "risk"}

    versions = []
    for content in ("one", "two", "three"):
        run_id = log_model_files(tmp_path, content)
        mv = client.create_model_version(
            name, f"runs:/{run_id}/model", run_id=run_id, tags={"content": content}
        )
        versions.append(mv)
    assert [v.version for v in versions] == ["1", "2", "3"]
    assert versions[0].run_id
    assert versions[0].status == "READY"
    assert versions[1].tags == {"content": "two"}

    # Aliases.
    client.set_registered_model_alias(name, "champion", 2)
    assert client.get_model_version_by_alias(name, "champion").version == "2"
    client.set_registered_model_alias(name, "champion", 3)
    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.version == "3"
    assert "champion" in champion.aliases
    assert client.get_registered_model(name).aliases == {"champion": "3"}

    # Tags and descriptions.
    client.set_model_version_tag(name, "1", "validated", "yes")
    client.set_registered_model_tag(name, "owner", "alice")
    client.update_registered_model(name, description="better words")
    client.update_model_version(name, "1", description="first")
    rm = client.get_registered_model(name)
    assert rm.description == "better words"
    assert rm.tags == {"team": "risk", "owner": "alice"}
    v1 = client.get_model_version(name, "1")
    assert v1.tags == {"content": "one", "validated": "yes"}
    assert v1.description == "first"
    client.delete_model_version_tag(name, "1", "validated")
    client.delete_registered_model_tag(name, "owner")
    assert client.get_model_version(name, "1").tags == {"content": "one"}
    assert client.get_registered_model(name).tags == {"team": "risk"}

    # Stages, for old clients.
    client.transition_model_version_stage(name, "1", "Staging")
    client.transition_model_version_stage(name, "2", "production")
    assert client.get_model_version(name, "2").current_stage == "Production"
    staging = client.get_latest_versions(name, stages=["Staging"])
    assert [v.version for v in staging] == ["1"]
    client.transition_model_version_stage(name, "3", "Staging", archive_existing_versions=True)
    assert client.get_model_version(name, "1").current_stage == "Archived"

    # Search with filters and pagination.
    found = client.search_model_versions(f"name='{name}'")
    assert sorted(v.version for v in found) == ["1", "2", "3"]
    found = client.search_model_versions(f"name='{name}' and tags.content='two'")
    assert [v.version for v in found] == ["2"]
    client.create_registered_model(f"{unique}-other")
    page1 = client.search_registered_models(filter_string=f"name LIKE '{unique}%'", max_results=1)
    assert len(page1) == 1 and page1.token
    page2 = client.search_registered_models(
        filter_string=f"name LIKE '{unique}%'", max_results=1, page_token=page1.token
    )
    assert len(page2) == 1 and not page2.token
    assert {page1[0].name, page2[0].name} == {name, f"{unique}-other"}

    # Rename keeps versions and aliases.
    client.rename_registered_model(name, f"{unique}-renamed")
    assert client.get_registered_model(f"{unique}-renamed").name == f"{unique}-renamed"
    assert client.get_model_version_by_alias(f"{unique}-renamed", "champion").version == "3"
    with pytest.raises(MlflowException) as e:
        client.get_registered_model(name)
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"

    # Deletes.
    client.delete_registered_model_alias(f"{unique}-renamed", "champion")
    assert client.get_registered_model(f"{unique}-renamed").aliases == {}
    client.delete_model_version(f"{unique}-renamed", "2")
    remaining = client.search_model_versions(f"name='{unique}-renamed'")
    assert sorted(v.version for v in remaining) == ["1", "3"]
    client.delete_registered_model(f"{unique}-renamed")
    assert client.search_registered_models(filter_string=f"name = '{unique}-renamed'") == []


def test_models_uri_by_alias_and_latest(client, unique, tmp_path):
    mlflow.set_experiment(f"uris-{unique}")
    name = f"{unique}-uri"
    client.create_registered_model(name)
    for content in ("a", "b"):
        run_id = log_model_files(tmp_path, content)
        client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id)
    client.set_registered_model_alias(name, "prod", 1)
    by_alias = mlflow.artifacts.download_artifacts(f"models:/{name}@prod", dst_path=str(tmp_path / "alias"))
    assert (tmp_path / "alias" / "weights.bin").read_bytes() == b"a" * 100 or \
        open(f"{by_alias}/weights.bin", "rb").read() == b"a" * 100
    latest = mlflow.artifacts.download_artifacts(f"models:/{name}/latest", dst_path=str(tmp_path / "latest"))
    assert open(f"{latest}/weights.bin", "rb").read() == b"b" * 100


def test_repeated_registry_reads_see_every_change(client, unique, tmp_path):
    """The same reads, asked again after each change, answer the new state: Cairn
    serves a repeated registry read (searches, get, get-by-alias, latest versions) from
    memory only while nothing in the registry changed."""
    mlflow.set_experiment(f"registry-{unique}")
    name = f"{unique}-watched"
    client.create_registered_model(name)
    run_id = log_model_files(tmp_path, "watched")

    def attempt(read):
        try:
            return read()
        except MlflowException as e:
            return e.error_code

    def version(v):
        return (v.version, v.current_stage, sorted(v.aliases), v.tags, v.description)

    def state():
        versions = sorted(version(v) for v in client.search_model_versions(f"name='{name}'"))
        models = [
            (m.name, m.description, m.tags, m.aliases, [v.version for v in m.latest_versions])
            for m in client.search_registered_models(filter_string=f"name LIKE '{name}%'")
        ]
        model = attempt(lambda: client.get_registered_model(name))
        model = model if isinstance(model, str) else (model.description, model.tags, model.aliases)
        first = attempt(lambda: version(client.get_model_version(name, "1")))
        champion = attempt(lambda: version(client.get_model_version_by_alias(name, "champion")))
        staging = attempt(lambda: [version(v) for v in client.get_latest_versions(name, stages=["Staging"])])
        return versions, models, model, first, champion, staging

    changes = [
        lambda: client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id),
        lambda: client.set_model_version_tag(name, "1", "reviewed", "yes"),
        lambda: client.set_registered_model_alias(name, "champion", 1),
        lambda: client.update_model_version(name, "1", description="first"),
        lambda: client.transition_model_version_stage(name, "1", "Staging"),
        lambda: client.set_registered_model_tag(name, "team", "risk"),
        lambda: client.update_registered_model(name, description="watched model"),
        lambda: client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id),
        lambda: client.set_registered_model_alias(name, "champion", 2),
        lambda: client.delete_registered_model_alias(name, "champion"),
        lambda: client.delete_model_version(name, "1"),
        lambda: client.rename_registered_model(name, f"{name}-renamed"),
    ]
    seen = state()
    assert state() == seen
    for i, change in enumerate(changes):
        change()
        now = state()
        assert now != seen, f"change {i} does not show in the repeated reads"
        seen = now
    assert seen[1][0][0] == f"{name}-renamed"
    assert seen[2] == "RESOURCE_DOES_NOT_EXIST"


@pytest.mark.skipif(mlflow_major() < 3, reason="logged models are MLflow 3's")
def test_concurrent_registrations_from_one_logged_model_are_all_listed(client, unique, tracking_uri):
    """The logged model's `mlflow.modelVersions` tag names every version registered from
    it, even when 16 registrations race (MLflow's client appends to the tag with a read
    and a write of its own after each registration)."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    import requests

    exp = client.create_experiment(f"logged-{unique}")
    run = client.create_run(exp)
    api = f"{tracking_uri}/api/2.0/mlflow"
    model = requests.post(f"{api}/logged-models", json={
        "experiment_id": exp, "name": "m", "source_run_id": run.info.run_id}).json()["model"]["info"]
    location = model["artifact_uri"].split("mlflow-artifacts:/", 1)[1]
    requests.put(f"{tracking_uri}/api/2.0/mlflow-artifacts/artifacts/{location}/MLmodel",
                 data=b"flavors: {}\n").raise_for_status()

    names = [f"{unique}-from-logged-{i % 4}" for i in range(16)]
    with ThreadPoolExecutor(16) as pool:
        versions = list(pool.map(lambda n: mlflow.register_model(f"models:/{model['model_id']}", n), names))
    registered = sorted((v.name, int(v.version)) for v in versions)
    assert registered == sorted((f"{unique}-from-logged-{m}", n) for m in range(4) for n in range(1, 5))

    listed = json.loads(client.get_logged_model(model["model_id"]).tags["mlflow.modelVersions"])
    assert sorted((e["name"], int(e["version"])) for e in listed) == registered
