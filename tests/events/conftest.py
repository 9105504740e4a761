"""Registry events: the SSE stream and `cairn events`, against real servers."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "support"))
