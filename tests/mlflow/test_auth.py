"""The real `mlflow` client against `cairn server --auth`, with what it sends unchanged:
MLFLOW_TRACKING_TOKEN (Bearer) and MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD
(Basic, the password being one of the user's tokens)."""

import json
import tempfile
import time

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

import infra


@pytest.fixture(scope="module")
def secured():
    data = tempfile.mkdtemp(prefix="cairn-auth-")
    admin = infra.cairn("--registry", data, "token", "create", "--user", "ada", "--role", "admin").stdout.strip()
    server = infra.CairnServer("--auth", "--host", "0.0.0.0", "--data", data)
    url = server.url.replace("0.0.0.0", "127.0.0.1")

    def token(user, role, *extra):
        done = infra.cairn("--registry", url, "token", "create", "--user", user, "--role", role, *extra,
                           env={"CAIRN_TOKEN": admin})
        return done.stdout.strip()

    yield {
        "url": url,
        "admin": admin,
        "reader": token("rita", "reader"),
        "writer": token("wendy", "writer"),
        "fraud": token("fred", "writer", "--models", "fraud-*"),
    }
    server.stop()


class Identity:
    """An MlflowClient whose calls run with one identity's credentials in the
    environment, where the mlflow client reads them on every request."""

    VARS = ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")

    def __init__(self, client, monkeypatch, token, user):
        self.client = client
        self.monkeypatch, self.token, self.user = monkeypatch, token, user

    def __getattr__(self, name):
        method = getattr(self.client, name)

        def call(*args, **kwargs):
            for var in self.VARS:
                self.monkeypatch.delenv(var, raising=False)
            if self.user:
                self.monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", self.user)
                self.monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", self.token)
            elif self.token:
                self.monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", self.token)
            return method(*args, **kwargs)

        return call


@pytest.fixture
def as_(secured, monkeypatch):
    """A client that authenticates as the mlflow client would, from its environment."""
    url = secured["url"]
    return lambda token=None, user=None: Identity(MlflowClient(tracking_uri=url, registry_uri=url),
                                                  monkeypatch, token, user)


def refused(call, code):
    with pytest.raises(MlflowException) as e:
        call()
    assert e.value.error_code == code, str(e.value)
    return str(e.value)


def test_each_identity_does_what_its_role_allows(secured, as_, unique):
    anonymous = as_()
    refused(anonymous.search_registered_models, "UNAUTHENTICATED")
    refused(lambda: anonymous.search_experiments(), "UNAUTHENTICATED")
    refused(as_("cairn_000000000000_" + "0" * 64).search_registered_models, "UNAUTHENTICATED")

    writer = as_(secured["writer"])
    name = f"{unique}-churn"
    writer.create_registered_model(name)
    run = writer.create_run(writer.create_experiment(unique))
    writer.log_metric(run.info.run_id, "auc", 0.9)
    writer.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    writer.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    writer.set_registered_model_alias(name, "candidate", "1")

    reader = as_(secured["reader"])
    assert reader.get_registered_model(name).name == name
    message = refused(lambda: reader.create_registered_model(f"{unique}-other"), "PERMISSION_DENIED")
    assert "writer role" in message
    refused(lambda: reader.log_metric(run.info.run_id, "auc", 0.1), "PERMISSION_DENIED")

    # A token limited to fraud-* neither reads nor lists other models.
    fraud = as_(secured["fraud"])
    refused(lambda: fraud.get_registered_model(name), "PERMISSION_DENIED")
    fraud.create_registered_model(f"fraud-{unique}")
    listed = [m.name for m in fraud.search_registered_models()]
    assert f"fraud-{unique}" in listed and name not in listed

    # production is protected: a writer cannot move it by alias or by stage; the admin
    # can, with a token or with Basic (user + token as the password).
    infra.cairn("--registry", secured["url"], "alias", "protect", name, "production",
                env={"CAIRN_TOKEN": secured["admin"]})
    message = refused(lambda: writer.set_registered_model_alias(name, "production", "1"), "PERMISSION_DENIED")
    assert "admin role" in message
    refused(lambda: writer.transition_model_version_stage(name, "1", "Production"), "PERMISSION_DENIED")
    as_(secured["admin"]).set_registered_model_alias(name, "production", "1")
    basic = as_(secured["admin"], user="ada")
    basic.set_registered_model_alias(name, "production", "2")
    assert basic.get_model_version_by_alias(name, "production").version == "2"
    # Basic auth with another user's name is no authentication at all.
    refused(as_(secured["admin"], user="mallory").search_registered_models, "UNAUTHENTICATED")

    log = json.loads(infra.cairn("--registry", secured["url"], "audit", "log", "--json",
                                 env={"CAIRN_TOKEN": secured["admin"]}).stdout)
    mine = [(e["actor"], e["action"]) for e in log if e["model"] == name]
    assert ("wendy", "model.create") in mine and ("wendy", "version.create") in mine
    assert mine[-1] == ("ada", "alias.set") and mine[-3] == ("ada", "alias.protect")


def test_a_revoked_token_stops_working_within_a_second(secured, as_, unique):
    token = infra.cairn("--registry", secured["url"], "token", "create", "--user", "temp", "--role", "reader",
                        env={"CAIRN_TOKEN": secured["admin"]}).stdout.strip()
    client = as_(token)
    client.search_registered_models()
    tokens = json.loads(infra.cairn("--registry", secured["url"], "token", "list", "--json",
                                    env={"CAIRN_TOKEN": secured["admin"]}).stdout)
    token_id = next(t["id"] for t in tokens if t["user"] == "temp")
    infra.cairn("--registry", secured["url"], "token", "revoke", token_id, env={"CAIRN_TOKEN": secured["admin"]})
    time.sleep(1.1)
    refused(client.search_registered_models, "UNAUTHENTICATED")


def test_basic_auth_with_a_user_password(secured, as_, unique):
    admin = {"CAIRN_TOKEN": secured["admin"]}
    infra.cairn("--registry", secured["url"], "user", "password", "paula", input="a long password\n", env=admin)
    infra.cairn("--registry", secured["url"], "user", "grant", "paula", "--role", "writer",
                "--models", f"{unique}-*", env=admin)
    paula = as_("a long password", user="paula")
    paula.create_registered_model(f"{unique}-mine")
    refused(lambda: paula.create_registered_model(f"other-{unique}"), "PERMISSION_DENIED")
    refused(as_("a wrong password", user="paula").search_registered_models, "UNAUTHENTICATED")
    log = json.loads(infra.cairn("--registry", secured["url"], "audit", "log", "--json", env=admin).stdout)
    created = [e for e in log if e["action"] == "model.create" and e["target"] == f"{unique}-mine"]
    assert created[0]["actor"] == "paula" and "token" not in created[0]


def test_mlflow_user_and_permission_endpoints(secured, as_, monkeypatch, unique):
    """MLflow's AuthServiceClient, unchanged, against Cairn's users."""
    from mlflow.server.auth.client import AuthServiceClient

    if not hasattr(AuthServiceClient, "grant_user_permission"):
        pytest.skip("this mlflow client predates per-user permissions (MLflow 3)")
    auth = Identity(AuthServiceClient(secured["url"]), monkeypatch, secured["admin"], None)
    user = auth.create_user(f"mia-{unique}", "first password")
    assert user.username == f"mia-{unique}" and not user.is_admin and isinstance(user.id, int)
    with pytest.raises(MlflowException) as taken:
        auth.create_user(f"mia-{unique}", "another password")
    assert taken.value.error_code == "RESOURCE_ALREADY_EXISTS"

    model = f"{unique}-shared"
    as_(secured["admin"]).create_registered_model(model)
    mia = as_("first password", user=f"mia-{unique}")
    refused(lambda: mia.set_registered_model_tag(model, "k", "v"), "PERMISSION_DENIED")
    auth.grant_user_permission(f"mia-{unique}", "registered_model", model, "EDIT")
    time.sleep(1.1)  # a verified login is remembered, with its grants, for a second
    mia.set_registered_model_tag(model, "k", "v")
    assert auth.get_user_permission(f"mia-{unique}", "registered_model", model).permission == "EDIT"
    refused(lambda: mia.delete_registered_model(model), "PERMISSION_DENIED")  # MANAGE deletes
    with pytest.raises(MlflowException) as unsupported:
        auth.grant_user_permission(f"mia-{unique}", "gateway_secret", "x", "READ")
    assert "gateway_secret" in str(unsupported.value)
    auth.revoke_user_permission(f"mia-{unique}", "registered_model", model)
    time.sleep(1.1)
    refused(lambda: mia.set_registered_model_tag(model, "k", "w"), "PERMISSION_DENIED")

    auth.update_user_admin(f"mia-{unique}", True)
    assert auth.get_user(f"mia-{unique}").is_admin
    time.sleep(1.1)
    mia.delete_registered_model(model)

    # Changing one's own password takes the current one.
    herself = Identity(AuthServiceClient(secured["url"]), monkeypatch, "first password", f"mia-{unique}")
    with pytest.raises(MlflowException):
        herself.update_user_password(f"mia-{unique}", "second password")
    herself.update_user_password(f"mia-{unique}", "second password", current_password="first password")
    time.sleep(1.1)  # the first password's verification is remembered for a second
    refused(mia.search_registered_models, "UNAUTHENTICATED")
    assert as_("second password", user=f"mia-{unique}").search_registered_models() is not None

    auth.delete_user(f"mia-{unique}")
    time.sleep(1.1)
    refused(as_("second password", user=f"mia-{unique}").search_registered_models, "UNAUTHENTICATED")


def test_mlflow_2_model_permission_endpoints(secured, as_, monkeypatch, unique):
    """MLflow 2's AuthServiceClient: a model's admin manages its users' permissions."""
    from mlflow.server.auth.client import AuthServiceClient

    if not hasattr(AuthServiceClient, "create_registered_model_permission"):
        pytest.skip("this mlflow client manages permissions per user (MLflow 3)")
    auth = Identity(AuthServiceClient(secured["url"]), monkeypatch, secured["admin"], None)
    auth.create_user(f"max-{unique}", "max password")
    model = f"{unique}-held"
    as_(secured["admin"]).create_registered_model(model)
    granted = auth.create_registered_model_permission(model, f"max-{unique}", "EDIT")
    assert granted.permission == "EDIT"
    time.sleep(1.1)
    as_("max password", user=f"max-{unique}").set_registered_model_tag(model, "k", "v")
    auth.update_registered_model_permission(model, f"max-{unique}", "READ")
    assert auth.get_registered_model_permission(model, f"max-{unique}").permission == "READ"
    auth.delete_registered_model_permission(model, f"max-{unique}")


def test_a_grant_on_one_experiment(secured, as_, monkeypatch, unique, tmp_path):
    """A user granted EDIT on one experiment works in it, through every kind of call
    (runs, metrics, artifacts, searches), and sees and touches no other."""
    from mlflow.server.auth.client import AuthServiceClient

    auth = Identity(AuthServiceClient(secured["url"]), monkeypatch, secured["admin"], None)
    admin = as_(secured["admin"])
    mine, theirs = admin.create_experiment(f"{unique}-mine"), admin.create_experiment(f"{unique}-theirs")
    their_run = admin.create_run(theirs).info.run_id
    auth.create_user(f"eve-{unique}", "eve password")
    if hasattr(AuthServiceClient, "grant_user_permission"):
        auth.grant_user_permission(f"eve-{unique}", "experiment", mine, "EDIT")
        assert auth.get_user_permission(f"eve-{unique}", "experiment", mine).permission == "EDIT"
    else:
        auth.create_experiment_permission(mine, f"eve-{unique}", "EDIT")
        assert auth.get_experiment_permission(mine, f"eve-{unique}").permission == "EDIT"
    eve = as_("eve password", user=f"eve-{unique}")

    run = eve.create_run(mine).info.run_id
    eve.log_metric(run, "auc", 0.9)
    eve.log_param(run, "depth", "3")
    artifact = tmp_path / "notes.txt"
    artifact.write_text("eve's notes")
    eve.log_artifact(run, str(artifact))
    assert [a.path for a in eve.list_artifacts(run)] == ["notes.txt"]
    assert eve.get_run(run).data.metrics == {"auc": 0.9}
    assert [r.info.run_id for r in eve.search_runs([mine])] == [run]
    assert [e.name for e in eve.search_experiments()] == [f"{unique}-mine"]
    assert eve.get_experiment_by_name(f"{unique}-mine").experiment_id == mine

    refused(lambda: eve.get_run(their_run), "PERMISSION_DENIED")
    refused(lambda: eve.create_run(theirs), "PERMISSION_DENIED")
    refused(lambda: eve.search_runs([mine, theirs]), "PERMISSION_DENIED")
    refused(lambda: eve.get_experiment_by_name(f"{unique}-theirs"), "PERMISSION_DENIED")
    refused(lambda: eve.create_experiment(f"{unique}-new"), "PERMISSION_DENIED")
    refused(lambda: eve.delete_run(run), "PERMISSION_DENIED")  # deleting is MANAGE
