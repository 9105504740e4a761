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
