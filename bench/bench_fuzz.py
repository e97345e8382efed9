"""The long schemathesis pass: requests generated from ``/openapi.json``, valid and not, against
the app over a real ``Service`` (memory bus, no store), in several processes, until ``cases``
have been sent in all; prints cases/s, the answers by status, and every problem (a 5xx, a
hang, a 4xx without its reason: ``minutely.testing.fuzz``). Exits 1 on any problem.

    flock /tmp/minutely-cpu.lock python bench/bench_fuzz.py [cases] [processes]

Defaults: 1,000,000 cases, 2 processes. Each process runs rounds of ``ROUND`` cases per
operation and mode with its own random seed (about 800 cases a round) until its share is sent.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import tempfile
import time
from collections import Counter
from typing import Any

ROUND = 10


def _worker(share: int, out: Any) -> None:
    from minutely.api import create_app
    from minutely.config import Settings
    from minutely.service import Service
    from minutely.testing.access import TESTSERVER
    from minutely.testing.fuzz import fuzz

    with tempfile.TemporaryDirectory() as data_dir:
        node = Service(Settings(store="none", hot_window=6 * 3600, data_dir=data_dir)).open()
        app = create_app(node, access=TESTSERVER)
        cases, statuses, problems = 0, Counter[int](), []
        while cases < share:
            run = fuzz(app, ROUND)
            cases += run.cases
            statuses.update(run.statuses)
            problems += run.problems
            out.put(("progress", run.cases, len(run.problems)))
    out.put(("done", cases, dict(statuses), problems))


def main() -> int:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    processes = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(total // processes, out)) for _ in range(processes)]
    began = time.perf_counter()
    for p in procs:
        p.start()
    done, sent, statuses, problems = 0, 0, Counter[int](), []
    while done < processes:
        message = out.get()
        if message[0] == "progress":
            sent += message[1]
            took = time.perf_counter() - began
            print(
                f"{sent:,} cases, {sent / took:,.0f}/s, {message[2]} problems this round",
                flush=True,
            )
            continue
        done += 1
        statuses.update({int(k): v for k, v in message[2].items()})
        problems += message[3]
    for p in procs:
        p.join()
    took = time.perf_counter() - began
    cases = sum(statuses.values())
    print(
        f"\n{cases:,} answers in {took:,.0f} s: {cases / took:,.0f} cases/s"
        f" over {processes} processes"
    )
    print("by status:", dict(sorted(statuses.items())))
    print(f"problems: {len(problems)}")
    for p in problems[:50]:
        print("\n" + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
