"""Promotion policies, tried as a new user would: a promotion that breaks the alias's
policy is refused with every unmet rule — by `cairn promote` and by the real mlflow
client's alias and stage calls alike — approvals come from others than the author, a
rollback skips the rules, and each step is in the audit log."""

import os
import subprocess

import pytest
from mlflow.exceptions import MlflowException

import infra


def as_(actor, url, *args, check=True):
    done = subprocess.run(
        [infra.CAIRN_BIN, "--registry", url, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "CAIRN_ACTOR": actor},
    )
    if check and done.returncode != 0:
        raise AssertionError(f"cairn {' '.join(args)} as {actor}: {done.stderr}")
    return done


def push(url, tmp_path, name, content, *metrics):
    model = tmp_path / content
    model.mkdir()
    (model / "model.onnx").write_text(content)
    args = ["push", str(model), "--model", name]
    for m in metrics:
        args += ["--metric", m]
    out = as_("ada", url, *args).stdout
    return int(out.split()[0].split("@")[1])


def test_a_policy_refuses_until_every_rule_is_met(client, unique, tmp_path, tracking_uri):
    url, name = tracking_uri, f"{unique}-fraud"
    one = push(url, tmp_path, name, "one", "auc=0.95")
    as_("ada", url, "promote", f"{name}@{one}", "--to", "production")
    bare = push(url, tmp_path, name, "bare")  # no metric, no tag, no approval
    good = push(url, tmp_path, name, "good", "auc=0.93")
    as_("root", url, "policy", "set", name, "production", "--require-tag", "validated=true",
        "--require-metric", "auc>=0.9", "--approvals", "2")
    shown = as_("root", url, "policy", "show", name).stdout
    assert "tag validated=true, metric auc>=0.9, 2 approval(s)" in shown

    # Every unmet rule, in one refusal, on one line.
    refused = as_("ada", url, "promote", f"{name}@{bare}", "--to", "production", check=False)
    assert refused.returncode == 1
    line = refused.stderr.strip()
    assert len(line.splitlines()) == 1, line
    for rule in ["tag validated=true is missing", "metric auc>=0.9 is not met (auc is missing)",
                 "2 approval(s) needed from someone other than its author, 0 given"]:
        assert rule in line, line
    dry = as_("ada", url, "promote", f"{name}@{bare}", "--to", "production", "--dry-run", check=False)
    assert dry.returncode == 1 and dry.stdout.count("\n  - ") == 3, dry.stdout

    # The mlflow client's doors refuse with an MLflow error code and the same words.
    with pytest.raises(MlflowException) as alias_call:
        client.set_registered_model_alias(name, "production", str(good))
    assert alias_call.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "tag validated=true is missing" in alias_call.value.message
    assert "2 approval(s) needed" in alias_call.value.message
    with pytest.raises(MlflowException) as stage_call:
        client.transition_model_version_stage(name, str(good), "Production")
    assert "tag validated=true is missing" in stage_call.value.message
    assert client.get_model_version_by_alias(name, "production").version == str(one)

    # The tag, then approvals: the author's is refused, two others' count.
    client.set_model_version_tag(name, str(good), "validated", "true")
    own = as_("ada", url, "approve", f"{name}@{good}", "--for", "production", check=False)
    assert own.returncode == 1 and "author" in own.stderr
    as_("bob", url, "approve", f"{name}@{good}", "--for", "production", "--reason", "read the eval")
    still = as_("ada", url, "promote", f"{name}@{good}", "--to", "production", check=False)
    assert "1 given" in still.stderr
    as_("cy", url, "approve", f"{name}@{good}", "--for", "production")
    assert "every rule met" in as_("ada", url, "show", f"{name}@{good}").stdout
    as_("ada", url, "promote", f"{name}@{good}", "--to", "production")
    assert client.get_model_version_by_alias(name, "production").version == str(good)

    # The escape hatch: back to version one, no approvals asked.
    as_("ada", url, "rollback", name, "production")
    assert client.get_model_version_by_alias(name, "production").version == str(one)

    log = as_("root", url, "audit", "log", "--model", name).stdout
    for action in ["policy.set", "version.approve", "alias.set", "alias.rollback"]:
        assert action in log, log
    assert log.count("version.approve") == 2
