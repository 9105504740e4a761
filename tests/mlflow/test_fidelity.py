"""What an MLflow user meets first, through the real client and Cairn's own tools: model
names as MLflow allows them, versions registered from sources Cairn does not hold, the
answer to an endpoint Cairn does not have."""

import json
import tempfile
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from mlflow.exceptions import MlflowException


def logged_run(client, unique, files):
    """A run with `files` ({relative path: bytes}) logged under its artifacts."""
    exp = client.create_experiment(f"fid-{unique}")
    run = client.create_run(exp)
    with tempfile.TemporaryDirectory() as d:
        for path, data in files.items():
            target = Path(d, path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        client.log_artifacts(run.info.run_id, d)
    return run


def test_a_name_with_spaces_round_trips(client, cairn, tracking_uri, unique):
    name = f"Fraud Model v2 {unique}"
    run = logged_run(client, unique, {"model/MLmodel": b"flavors: {}\n", "model/w.bin": b"\x01" * 100})
    client.create_registered_model(name)
    v = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    assert v.name == name and v.version == "1"
    client.set_registered_model_alias(name, "champion", "1")
    assert client.get_model_version_by_alias(name, "champion").version == "1"

    # The mlflow client downloads it by name.
    import mlflow

    with tempfile.TemporaryDirectory() as d:
        local = mlflow.artifacts.download_artifacts(f"models:/{name}/1", dst_path=d)
        assert Path(local, "w.bin").read_bytes() == b"\x01" * 100

    # Cairn's CLI: show, pull (the REF follows the last '@'), and the native API.
    shown = json.loads(cairn("show", f"{name}@champion", "--json").stdout)
    assert shown["model"] == name and shown["version"] == 1 and shown["digest"]
    with tempfile.TemporaryDirectory() as d:
        cairn("pull", f"{name}@1", "--output", d)
        assert Path(d, "w.bin").read_bytes() == b"\x01" * 100
    r = requests.get(f"{tracking_uri}/api/v1/models/{quote(name, safe='')}/versions/1")
    assert r.status_code == 200 and r.json()["model"] == name


def test_an_external_version_is_listed_but_never_verified(client, cairn, unique):
    name = f"ext-{unique}"
    client.create_registered_model(name)
    source = f"s3://bucket/{unique}/model"
    v = client.create_model_version(name, source)
    assert v.source == source
    # Listed, searchable, aliasable, and downloaded from where it is.
    assert [m.version for m in client.search_model_versions(f"name='{name}'")] == ["1"]
    client.set_registered_model_alias(name, "candidate", "1")
    assert client.get_model_version_download_uri(name, "1") == source

    shown = json.loads(cairn("show", f"{name}@candidate", "--json").stdout)
    assert shown["digest"] is None and shown["external_source"] == source
    text = cairn("show", f"{name}@1").stdout
    assert "external" in text and source in text and "sha256:" not in text

    with tempfile.TemporaryDirectory() as d:
        pulled = cairn("pull", f"{name}@1", "--output", str(Path(d, "out")), check=False)
        assert pulled.returncode == 1
        assert source in pulled.stderr and "external" in pulled.stderr
        assert not Path(d, "out").exists()
    verified = cairn("verify", f"{name}@1", check=False)
    assert verified.returncode == 1 and "external" in verified.stderr
    assert "ok" not in verified.stderr.split(":")[0]


def test_a_run_path_with_nothing_logged_registers_as_external(client, cairn, unique):
    name = f"empty-{unique}"
    run = logged_run(client, unique, {"other/file.txt": b"x"})
    client.create_registered_model(name)
    v = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    assert v.run_id == run.info.run_id
    shown = json.loads(cairn("show", f"{name}@1", "--json").stdout)
    assert shown["digest"] is None
    # Whatever is logged there later does not change what was registered.
    report = cairn("verify", "--all", check=False)
    assert "external version(s) skipped" in report.stderr


def test_an_unknown_endpoint_answers_endpoint_not_found(tracking_uri):
    for prefix in ["api/2.0/mlflow", "ajax-api/2.0/mlflow", "api/3.0/mlflow"]:
        r = requests.post(f"{tracking_uri}/{prefix}/no-such-endpoint", json={})
        assert r.status_code == 404
        assert r.json()["error_code"] == "ENDPOINT_NOT_FOUND"


def test_names_mlflow_refuses_are_refused(client):
    for bad in ["a/b", "a:b"]:
        with pytest.raises(MlflowException) as e:
            client.create_registered_model(bad)
        assert e.value.error_code == "INVALID_PARAMETER_VALUE"
        assert "cannot contain '/' or ':'" in e.value.message
