"""Hostile input against a real `cairn server`: every route, every scenario of the
integrity checklist."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "support"))
