"""Every route of `cairn server --auth`, read from the routers' source (so a new route is
walked without editing this file), refuses those without the role it needs: anonymous
callers (401), a token whose grant covers other models only, a reader of everything
(403 for every change), a writer of everything (403 for every deletion of a model,
version, experiment or run, for protecting aliases and for registry-wide operations)."""

import tempfile

import pytest
import requests

from infra import CairnServer, cairn, fetch
from test_hostile import fill, routes

PUBLIC = {"/healthz", "/readyz", "/health", "/api/v1/openapi.json", "/ui/assets/{file}"}
# Routes open to a grant on some model: listings (filtered entry by entry) and blob
# uploads (a blob belongs to no model until a version names it).
SOME_MODEL = {
    ("GET", "/api/v1/models"),
    ("GET", "/api/2.0/mlflow/registered-models/search"),
    ("GET", "/api/2.0/mlflow/model-versions/search"),
    ("POST", "/api/v1/blobs/missing"),
    ("PUT", "/api/v1/blobs/sha256/{digest}"),
    # Listings filtered entry by entry (tests/events checks the events' filter).
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/policies"),
    # The web UI's models list, and compare (which checks each version it is asked for).
    ("GET", "/"),
    ("GET", "/compare"),
    ("GET", "/api/v1/diff"),
}
# Requests that read, though not sent as GET.
READS = {
    ("POST", "/api/2.0/mlflow/experiments/search"),
    ("POST", "/api/2.0/mlflow/runs/search"),
    ("POST", "/api/2.0/mlflow/logged-models/search"),
    ("POST", "/ajax-api/2.0/mlflow/experiments/search-datasets"),
    ("POST", "/api/2.0/mlflow/registered-models/get-latest-versions"),
    ("POST", "/api/v1/models/{name}/versions/{reference}/verify"),
}
# Reads of what only admins of everything see (a user's own record excepted: the walk
# asks for another's).
ADMIN_READS = {"/api/v1/audit/denied", "/api/v1/tokens", "/api/v1/users", "/api/2.0/mlflow/users/get",
               "/api/2.0/mlflow/users/list", "/api/3.0/mlflow/users/permissions/get",
               # Permissions are managed (and read) by the admins of what they are on.
               "/api/2.0/mlflow/registered-models/permissions/get",
               "/api/2.0/mlflow/experiments/permissions/get"}
# Webhooks (native and MLflow's) see every model's events and call out: admins of
# everything, reads included.


def is_webhook(template):
    return "/webhook" in template


# Open to whoever is authenticated.
ANY_CALLER = {"/api/2.0/mlflow/users/current"}
# Deletions that are edits (MLflow's EDIT): tags and aliases.
EDITS = ("tag", "alias", "/aliases/")
BODY = {"name": "victim", "new_name": "victim-2", "alias": "a", "version": "1", "key": "k",
        "experiment_id": "0", "run_id": "0" * 32, "digests": [], "dry_run": True}


@pytest.fixture(scope="module")
def server():
    data = tempfile.mkdtemp(prefix="cairn-walk-")
    admin = cairn("--registry", data, "token", "create", "--user", "ada", "--role", "admin").stdout.strip()

    def token(*args):
        return cairn("--registry", data, "token", "create", "--user", *args).stdout.strip()

    tokens = {
        "other": token("olga", "--role", "admin", "--models", "nomatch-*"),
        "reader": token("rita", "--role", "reader"),
        "writer": token("wendy", "--role", "writer"),
    }
    running = CairnServer("--auth", "--data", data)
    model = tempfile.mkdtemp()
    with open(f"{model}/w.bin", "wb") as f:
        f.write(b"weights")
    cairn("--registry", running.url, "push", model, "--model", "victim", env={"CAIRN_TOKEN": admin})
    yield running.url, tokens
    running.stop()


def walk(url, token):
    """(method, template, status) for every route, as `token` (None: anonymous)."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    answers = []
    for method, template in routes():
        # (Mounted under the MLflow 3 prefixes only; the source reader sees it bare.)
        template = template.replace("/server-info", "/api/3.0/mlflow/server-info")
        path = fill(template, "victim")
        kwargs = {"params": {"name": "victim"}} if method == "GET" else {"json": BODY}
        response = fetch(requests, method, url + path, headers=headers, timeout=30, **kwargs)
        answers.append((method, template, response.status_code))
    return answers


def test_anonymous_callers_reach_nothing_but_health(server):
    url, _ = server
    walked = walk(url, None)
    assert len(walked) > 60
    for method, template, status in walked:
        if template in PUBLIC:
            # Answered (an asset the walk names does not exist: 404), never refused.
            assert status in (200, 404) and (status == 200) != template.startswith("/ui/"), (
                f"{method} {template}: {status}")
        else:
            assert status == 401, f"{method} {template}: {status}"


def test_a_grant_on_other_models_reaches_no_model_and_nothing_registry_wide(server):
    url, tokens = server
    for method, template, status in walk(url, tokens["other"]):
        if template in PUBLIC or (method, template) in SOME_MODEL or template in ANY_CALLER:
            assert status not in (401, 403), f"{method} {template}: {status}"
        else:
            assert status == 403, f"{method} {template}: {status}"


def test_readers_change_nothing(server):
    url, tokens = server
    for method, template, status in walk(url, tokens["reader"]):
        writes = method not in ("GET", "HEAD") and (method, template) not in READS
        if (writes or template in ADMIN_READS or is_webhook(template)) and template not in PUBLIC:
            assert status == 403, f"{method} {template}: {status}"
        else:
            assert status not in (401, 403), f"{method} {template}: {status}"


def test_writers_delete_no_model_version_experiment_or_run(server):
    url, tokens = server
    for method, template, status in walk(url, tokens["writer"]):
        registry_wide = template in ("/api/v1/gc", "/api/v1/verify", "/api/v1/audit/verify",
                                     *ADMIN_READS) or template.startswith(("/api/v1/tokens", "/api/v1/users")) \
            or "/mlflow/users/" in template and template not in ANY_CALLER \
            or "/permissions/" in template or is_webhook(template)
        deletes = method == "DELETE" and not any(e in template for e in EDITS) and "mpu" not in template
        deletes |= template.endswith(("/experiments/delete", "/experiments/restore", "/runs/delete",
                                      "/runs/restore"))
        # Protecting an alias or lifting it, and setting or deleting its promotion
        # policy, are for admins of the model.
        protects = template.endswith("/protected-aliases/{alias}") or template == "/api/v1/policies/{models}/{alias}"
        if registry_wide or deletes or protects:
            assert status == 403, f"{method} {template}: {status}"
        elif template not in PUBLIC:
            assert status not in (401, 403), f"{method} {template}: {status}"
