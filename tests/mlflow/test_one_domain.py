"""One domain, two views: what the Cairn CLI registers MLflow sees, and back."""

import json

import mlflow


def test_cairn_push_is_an_mlflow_version(client, cairn, unique, tmp_path):
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "weights.bin").write_bytes(b"\x00\x01" * 1000)
    (model / "sub" / "vocab.txt").write_text("a\nb\n")
    name = f"{unique}-pushed"
    out = cairn("push", str(model), "--model", name, "--description", "from the CLI").stdout
    assert out.startswith(f"{name}@1 sha256:")

    mv = client.get_model_version(name, "1")
    assert mv.description == "from the CLI"
    dst = mlflow.artifacts.download_artifacts(f"models:/{name}/1", dst_path=str(tmp_path / "dl"))
    assert open(f"{dst}/weights.bin", "rb").read() == b"\x00\x01" * 1000
    assert open(f"{dst}/sub/vocab.txt").read() == "a\nb\n"


def test_aliases_are_shared_and_recorded(client, cairn, unique, tmp_path):
    name = f"{unique}-shared"
    for content in ("v1", "v2"):
        (tmp_path / "m.bin").write_text(content)
        cairn("push", str(tmp_path / "m.bin"), "--model", name)
    cairn("promote", f"{name}@1", "--to", "production")
    assert client.get_model_version_by_alias(name, "production").version == "1"
    client.set_registered_model_alias(name, "production", 2)
    shown = json.loads(cairn("show", f"{name}@production", "--json").stdout)
    assert shown["version"] == 2
    history = json.loads(cairn("history", name, "production", "--json").stdout)
    assert [(m["from"], m["to"]) for m in history] == [(None, 1), (1, 2)]
    assert history[1]["actor"] == "mlflow"
    cairn("rollback", name, "production")
    assert client.get_model_version_by_alias(name, "production").version == "1"
