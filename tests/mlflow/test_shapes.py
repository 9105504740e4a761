"""Cairn's answers have the JSON shapes of the real MLflow server's (snapshot taken with
`python shapes.py --start-mlflow`): the same fields with the same types."""

import json
from pathlib import Path

from shapes import script

SNAPSHOT = Path(__file__).parent / "snapshots" / "mlflow-3.17.2.json"

# Fields the real server sends that Cairn does not; none at the moment.
NOT_SENT: dict[str, set[str]] = {}


def test_shapes_match_the_real_server(tracking_uri):
    expected = json.loads(SNAPSHOT.read_text())["shapes"]
    actual = script(tracking_uri)
    assert sorted(actual) == sorted(expected)
    problems = []
    for label, want in expected.items():
        got = set(actual[label])
        want = set(want) - NOT_SENT.get(label, set())
        if got != want:
            problems.append(f"{label}: missing {sorted(want - got)}, extra {sorted(got - want)}")
    assert not problems, "\n".join(problems)


# Answers whose message Cairn words differently from `mlflow server`, and why. Status and
# error code still match.
MESSAGE_DIFFERS = {
    "model-versions/create, a file: URI": "mlflow server names the path it resolved the URI to; Cairn quotes the source as sent",
    "model-versions/create, an http location": "Cairn has no setting that allows host-addressed sources, so it does not point at one",
    "model-versions/create, an mlflow-artifacts location with a host": "the same: no setting to point at",
    "an unknown endpoint": "mlflow server answers an HTML page, from whose status the client derives "
    "ENDPOINT_NOT_FOUND; Cairn sends that code, with a message, in MLflow's JSON error body",
    "an unknown endpoint (ajax)": "the same",
}


def test_answers_match_the_real_server(tracking_uri):
    """Refusals (status, the error code the client sees, the message) and the types of
    artifact downloads, call for call against the snapshot of the real server."""
    from shapes import answers

    expected = json.loads(SNAPSHOT.read_text())["answers"]
    actual = answers(tracking_uri)
    assert sorted(actual) == sorted(expected)
    problems = []
    for label, want in expected.items():
        got = dict(actual[label])
        want = dict(want)
        if label in MESSAGE_DIFFERS:
            assert got.pop("message", None), f"{label}: no message"
            want.pop("message", None)
        if got != want:
            problems.append(f"{label}:\n  mlflow: {want}\n  cairn:  {got}")
    assert not problems, "\n".join(problems)
