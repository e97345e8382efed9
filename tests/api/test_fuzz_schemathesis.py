"""A short schemathesis pass over ``/openapi.json``: requests generated from the document, valid
and not, against the app over a real ``Service`` (memory bus, no store): no 5xx, no hang, and
every 4xx names its reason (``minutely.testing.fuzz``). ``bench/bench_fuzz.py`` is the long
pass; this one is derandomized, so it sends the same cases each run."""

from __future__ import annotations

from pathlib import Path

from minutely.api import create_app
from minutely.config import Settings
from minutely.service import Service
from minutely.testing.access import TESTSERVER
from minutely.testing.fuzz import fuzz, problem

#: cases per operation and mode: about 40 operations, in well under two minutes
EXAMPLES = 25


def test_no_5xx_no_hang_and_every_refusal_names_its_reason(tmp_path: Path) -> None:
    node = Service(Settings(store="none", hot_window=6 * 3600, data_dir=str(tmp_path))).open()
    run = fuzz(create_app(node, access=TESTSERVER), EXAMPLES, derandomize=True)
    assert run.cases > 1000
    assert not run.problems, f"{len(run.problems)} problems:\n\n" + "\n\n".join(run.problems[:20])
    assert sum(n for status, n in run.statuses.items() if status == 200) > 100


def test_the_judge_flags_5xx_and_refusals_without_a_reason() -> None:
    json = {"content-type": "application/json"}
    assert problem(500, {"content-type": "text/plain"}, b"Internal Server Error")
    assert problem(503, json, b'{"error": "closed"}')  # no Retry-After
    assert problem(503, {**json, "retry-after": "1"}, b'{"error": "closed"}') is None
    assert problem(400, json, b'{"error": ""}')
    assert problem(400, json, b"not json")
    assert problem(400, json, b'{"error": "step: 61 is not a multiple of 60"}') is None
    assert problem(400, json, b'{"status": "error", "errorType": "bad_data", "error": "x"}') is None
    proto = {"content-type": "application/x-protobuf"}
    assert problem(400, proto, b"\x08\x03\x12\x03bad") is None
    assert problem(400, proto, b"\x08\x03")
    assert problem(415, {}, b"")
