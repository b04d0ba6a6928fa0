"""A server process tunes the cyclic garbage collector once it has started (app/asgi.py tune_gc_for_serving). Checked
in a child interpreter: freezing is for the server's own process, never for the test run's."""

from __future__ import annotations

import json
import subprocess
import sys

from app.asgi import GC_YOUNG_THRESHOLD
from app.config import PROJECT_ROOT

PROBE = """
import gc, json
from app.asgi import tune_gc_for_serving
before = gc.get_threshold()
tune_gc_for_serving()
print(json.dumps({"frozen": gc.get_freeze_count(), "before": before, "after": gc.get_threshold()}))
"""


def test_start_up_objects_are_frozen_and_the_young_generation_collected_less_often() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    probe = json.loads(result.stdout)
    # Everything the imports created is out of the collector's view (thousands of objects).
    assert probe["frozen"] > 10_000
    # Only the youngest generation's threshold changes.
    assert probe["after"] == [GC_YOUNG_THRESHOLD, *probe["before"][1:]]
