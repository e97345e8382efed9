"""A short run of the auth pass (``minutely.testing.fuzzauth``): every operation, a cluster
node's local routes among them, with drawn tokens, ``Authorization`` forms and ``Host``."""

from __future__ import annotations

import asyncio
from pathlib import Path

from minutely.api import create_app
from minutely.config import Settings
from minutely.testing.clock import FakeClock
from minutely.testing.fuzzauth import LocalService, access, add_tokens, fuzz_auth

#: about ten seconds on a loaded machine
CASES = 2000


def test_a_short_auth_pass_finds_no_problem_and_reaches_every_outcome(tmp_path: Path) -> None:
    clock = FakeClock(1_764_000_000.0 + 3 * 3600 + 25)
    settings = Settings(store="none", hot_window=6 * 3600, data_dir=str(tmp_path))
    node = LocalService(settings, clock=clock).open()
    secrets = add_tokens(tmp_path)
    app = create_app(node, manage_lifecycle=False, access=access(tmp_path))
    run = asyncio.run(fuzz_auth(app, node, secrets, range(CASES), advance=clock.advance))
    assert not run.problems, f"{len(run.problems)} problems:\n\n" + "\n\n".join(run.problems[:10])
    assert run.cases == CASES
    local = {label for label in run.labels if "/api/v1/local/" in label}
    assert len(local) == 4
    by_status = {status for (_, status) in run.statuses}
    assert {200, 204, 400, 401, 403, 421} <= by_status
