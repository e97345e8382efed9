"""A short run of the long fuzz pass (``minutely.testing.fuzz.fuzz_fast``, which
``bench/bench_fuzz.py`` runs to 10⁶ cases): seeded requests to every operation of
``/openapi.json`` and every ingest format, and decoder cases against the references, judged as
the long pass judges them. The seeds are fixed, so each run sends the same cases."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from minutely.api import create_app
from minutely.config import Settings
from minutely.service import Service
from minutely.testing.access import TESTSERVER
from minutely.testing.asgi import call
from minutely.testing.clock import FakeClock
from minutely.testing.fuzz import counted, fuzz_fast
from minutely.testing.fuzzcases import Cases, Expect

#: about ten seconds on a loaded machine
CASES = 3000


def test_a_short_run_finds_no_problem_and_reaches_every_route(tmp_path: Path) -> None:
    clock = FakeClock(1_764_000_000.0 + 3 * 3600 + 25)
    settings = Settings(store="none", hot_window=6 * 3600, data_dir=str(tmp_path))
    node = Service(settings, clock=clock).open()
    app = create_app(node, manage_lifecycle=False, access=TESTSERVER)
    run = asyncio.run(fuzz_fast(app, node, range(CASES), advance=clock.advance))
    assert not run.problems, f"{len(run.problems)} problems:\n\n" + "\n\n".join(run.problems[:20])
    assert run.cases >= CASES
    labels = set(run.labels)
    paths = {label.split(" ")[1] for label in labels}
    for path in ("/api/v1/points", "/api/v1/write", "/write", "/api/v2/write", "/v1/metrics"):
        assert path in paths
    assert {"decoder graphite", "decoder influx", "decoder remote_write"} <= labels
    ok = {label for (label, status), n in run.statuses.items() if 200 <= status < 300}
    assert len(ok) >= len(labels) - 1, sorted(labels - ok)
    assert run.batches > 200


def _cases(tmp_path: Path) -> tuple[dict[str, Any], Cases]:
    node = Service(Settings(store="none", data_dir=str(tmp_path)), clock=FakeClock()).open()
    app = create_app(node, manage_lifecycle=False, access=TESTSERVER)
    document = json.loads(asyncio.run(call(app, "GET", "/openapi.json")).body)
    return document, Cases(document, node.clock)


def test_every_operation_of_the_document_has_cases(tmp_path: Path) -> None:
    document, cases = _cases(tmp_path)
    made = {" ".join(cases.make(seed).label.split(" ")[:2]) for seed in range(3000)}
    for path, methods in document["paths"].items():
        for method in methods:
            assert f"{method.upper()} {path}" in made


def test_a_seed_makes_the_same_case_every_time(tmp_path: Path) -> None:
    _, cases = _cases(tmp_path)
    _, again = _cases(tmp_path / "again")
    assert [cases.make(seed) for seed in range(200)] == [again.make(seed) for seed in range(200)]
    assert len({cases.make(seed).curl() for seed in range(200)}) > 150


def test_the_judge_flags_a_batch_whose_counts_are_wrong() -> None:
    ok = b'{"accepted": 3, "rejected": 1, "errors": [{"index": 2, "reason": "ts: missing"}]}'
    assert counted(Expect("points", 3, 1), 200, {}, ok) is None
    assert counted(Expect("points", 4, 0), 200, {}, ok)
    assert counted(Expect("points", 3, 1), 429, {"retry-after": "1"}, b"") is None
    said = b'{"code": "invalid", "message": "accepted 2 points, rejected 1; line 3: ..."}'
    assert counted(Expect("influx-v2", 2, 1), 400, {}, said) is None
    assert counted(Expect("influx-v2", 3, 0), 400, {}, said)
    assert counted(Expect("influx-v2", 3, 0), 204, {}, b"") is None
    assert counted(Expect("remote_write", 2, 1), 204, {}, b"")
