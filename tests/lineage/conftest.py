"""Lineage with the real tools: git and DVC (installed into .venv/dvc by the test
command) around `cairn push`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "support"))
