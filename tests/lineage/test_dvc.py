"""From a git repository with a DVC-tracked dataset (`dvc init; dvc add data/train.csv`),
`cairn push model/ --model m --data data/` records the commit, the dirty flag and DVC's
md5; the version is found by that digest, and a version pushed with `--parent m@1` is
found as its descendant."""

import json
import os
import subprocess
from pathlib import Path

import yaml

from infra import ROOT, cairn

DVC = os.environ.get("DVC_BIN", str(ROOT / ".venv" / "dvc" / "bin" / "dvc"))


def run(*args, cwd):
    subprocess.run(args, cwd=cwd, check=True, capture_output=True)


def test_push_records_git_and_dvc_lineage(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=Tester", "-c", "user.email=tester@example.com"]
    run(*git, "init", "-q", "-b", "main", cwd=repo)
    run(DVC, "init", "-q", cwd=repo)
    (repo / "data").mkdir()
    (repo / "data" / "train.csv").write_text("x,y\n1,0\n2,1\n3,0\n")
    run(DVC, "add", "-q", "data/train.csv", cwd=repo)
    (repo / "model").mkdir()
    (repo / "model" / "model.pkl").write_bytes(b"trained weights")
    (repo / "train.py").write_text("print('training')\n")
    run(*git, "add", ".", cwd=repo)
    run(*git, "commit", "-q", "-m", "train on data v1", cwd=repo)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()
    # A change not committed yet: the work tree is dirty.
    (repo / "train.py").write_text("print('training, tuned')\n")
    md5 = yaml.safe_load((repo / "data" / "train.csv.dvc").read_text())["outs"][0]["md5"]

    registry = str(tmp_path / "registry")
    env = {"CAIRN_REGISTRY": registry}
    cairn("push", "model/", "--model", "m", "--data", "data/", env=env, cwd=repo)
    lineage = json.loads(cairn("lineage", "m@1", "--json", env=env, cwd=repo).stdout)
    assert lineage["code"]["commit"] == commit
    assert lineage["code"]["dirty"] is True
    assert {"kind": "dvc", "path": "data/train.csv", "digest": f"md5:{md5}"}.items() <= next(
        d for d in lineage["data"] if d["kind"] == "dvc"
    ).items()
    tree = cairn("lineage", "m@1", env=env, cwd=repo).stdout
    assert f"code: {commit} (main, dirty)" in tree and f"md5:{md5}" in tree, tree

    assert cairn("versions", "--data", md5, env=env, cwd=repo).stdout.split() == ["m@1"]

    (repo / "model" / "model.pkl").write_bytes(b"fine-tuned weights")
    cairn("push", "model/", "--model", "m", "--parent", "m@1", env=env, cwd=repo)
    assert cairn("versions", "--parent", "m@1", env=env, cwd=repo).stdout.split() == ["m@2"]
    assert "parent: m@1" in cairn("lineage", "m@2", env=env, cwd=repo).stdout
