"""The long fuzz pass: ``cases`` seeded requests (``minutely.testing.fuzzcases``) sent in
process to the app over a real ``Service`` (memory bus, no store, a clock that moves a second
a block), to every operation of its ``/openapi.json`` and every ingest format, plus Graphite,
Influx and remote_write bodies through their decoders against the references
(``minutely.testing.fuzz.fuzz_fast``). Prints cases/s, the cases and answers per operation and
decoder, and every problem (a 5xx, a hang, a 4xx without its reason, a mixed batch whose good
points were not all kept, a scanner that disagrees with its reference). Exits 1 on any problem.

    nice -n 19 python bench/bench_fuzz.py [cases] [processes] [first seed]
    nice -n 19 python bench/bench_fuzz.py auth|wire|graphite [cases] [processes] [first seed]
    flock /tmp/minutely-cpu.lock python bench/bench_fuzz.py compare [rounds]

Defaults: 1,000,000 cases, 1 process, seed 0. ``auth``, ``wire`` and ``graphite`` run the
passes below the app's routes instead: the same requests with drawn tokens and ``Host``
against an app with tokens and a cluster node's local routes (``fuzzauth``), raw bytes to the
real HTTP server over sockets and Graphite streams cut anywhere (``fuzzwire``). Process
``i`` of ``n`` sends the seeds ``first + i·cases/n`` onwards, so a run is the same cases
whatever its speed, and a problem's seed (in its curl line, or ``seed`` in its lines) is sent
again alone with ``cases=1`` and ``first seed`` = that seed.

``compare`` measures the speed: in one process, rounds of the schemathesis pass
(``minutely.testing.fuzz.fuzz``, ``SCHEMATHESIS_EXAMPLES`` per operation and mode: the pass
this one replaced, as the baseline) and of ``FAST_CASES`` cases of this one, taking turns;
prints each round's cases per second of wall and of CPU time, and the medians.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import sys
import tempfile
import time
from collections import Counter
from typing import Any

#: progress lines: one per this many cases a process sends
REPORT = 20_000
#: the compare rounds' sizes: each about 15 s on a quiet machine
SCHEMATHESIS_EXAMPLES = 5
FAST_CASES = 5000
#: seconds without a progress line after which a worker counts as hung (its event loop
#: blocked, where a case's own timeout cannot fire)
STALLED = 900
#: series a fuzzed body may make before new ones get 429 (a fuzz run's memory stays bounded)
MAX_SERIES = 20_000


def _worker(seeds: range, out: Any) -> None:
    from minutely.api import create_app
    from minutely.config import Settings
    from minutely.service import Service
    from minutely.testing.access import TESTSERVER
    from minutely.testing.clock import FakeClock
    from minutely.testing.fuzz import FastRun, fuzz_fast

    clock = FakeClock(1_764_000_000.0 + 3 * 3600 + 25)
    reported, shown, parent = [0], [0], os.getppid()

    def progress(run: FastRun) -> None:
        if os.getppid() != parent:  # the bench was stopped: a spawned worker would go on
            raise SystemExit(1)
        if run.cases - reported[0] >= REPORT or len(run.problems) > shown[0]:
            out.put(("progress", run.cases - reported[0], run.problems[shown[0] :]))
            reported[0], shown[0] = run.cases, len(run.problems)

    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(
            store="none", hot_window=6 * 3600, data_dir=data_dir, max_series=MAX_SERIES
        )
        node = Service(settings, clock=clock).open()
        app = create_app(node, manage_lifecycle=False, access=TESTSERVER)
        run = asyncio.run(fuzz_fast(app, node, seeds, advance=clock.advance, progress=progress))
    out.put(("progress", run.cases - reported[0], run.problems[shown[0] :]))
    out.put(("done", run))


def _edge_worker(target: str, seeds: range, out: Any) -> None:
    """A worker of the ``auth``, ``wire`` or ``graphite`` pass."""
    import logging
    from pathlib import Path

    from minutely.api import create_app
    from minutely.config import Settings
    from minutely.service import Service
    from minutely.testing import fuzzauth, fuzzwire
    from minutely.testing.clock import FakeClock
    from minutely.testing.fuzz import FastRun

    # each bad line and unreadable request is logged by design: a pass makes millions
    logging.getLogger("minutely.graphite_server").setLevel(logging.ERROR)
    reported, shown, parent = [0], [0], os.getppid()

    def progress(run: FastRun) -> None:
        if os.getppid() != parent:
            raise SystemExit(1)
        if run.cases - reported[0] >= REPORT or len(run.problems) > shown[0]:
            out.put(("progress", run.cases - reported[0], run.problems[shown[0] :]))
            reported[0], shown[0] = run.cases, len(run.problems)

    with tempfile.TemporaryDirectory() as data_dir:
        if target == "graphite":
            run = asyncio.run(fuzzwire.fuzz_graphite(seeds, progress=progress))
        elif target == "wire":
            body = fuzzwire.WIRE_BODY_BYTES
            settings = Settings(
                store="none",
                hot_window=6 * 3600,
                data_dir=data_dir,
                max_series=MAX_SERIES,
                max_body_bytes=body,
                max_inflight_body_bytes=body,
            )
            node = Service(settings).open()
            server = fuzzwire.WireServer(create_app(node, max_inflight_body_bytes=body)).start()
            try:
                run = asyncio.run(fuzzwire.fuzz_wire(server.port, seeds, progress=progress))
            finally:
                server.stop()
        else:
            clock = FakeClock(1_764_000_000.0 + 3 * 3600 + 25)
            settings = Settings(
                store="none", hot_window=6 * 3600, data_dir=data_dir, max_series=MAX_SERIES
            )
            local = fuzzauth.LocalService(settings, clock=clock).open()
            secrets = fuzzauth.add_tokens(Path(data_dir))
            app = create_app(local, manage_lifecycle=False, access=fuzzauth.access(Path(data_dir)))
            run = asyncio.run(
                fuzzauth.fuzz_auth(
                    app, local, secrets, seeds, advance=clock.advance, progress=progress
                )
            )
    out.put(("progress", run.cases - reported[0], run.problems[shown[0] :]))
    out.put(("done", run))


def compare(rounds: int) -> int:
    from statistics import median

    from minutely.api import create_app
    from minutely.config import Settings
    from minutely.service import Service
    from minutely.testing.access import TESTSERVER
    from minutely.testing.clock import FakeClock
    from minutely.testing.fuzz import fuzz, fuzz_fast

    rates: dict[str, list[tuple[float, float]]] = {"schemathesis": [], "fast": []}
    problems = 0
    with tempfile.TemporaryDirectory() as data_dir:
        clock = FakeClock(1_764_000_000.0 + 3 * 3600 + 25)
        settings = Settings(
            store="none", hot_window=6 * 3600, data_dir=data_dir, max_series=MAX_SERIES
        )
        node = Service(settings, clock=clock).open()
        app = create_app(node, manage_lifecycle=False, access=TESTSERVER)
        fuzz(app, 1)  # schemathesis reads the document and builds its strategies once
        for r in range(rounds):
            wall, cpu = time.perf_counter(), time.process_time()
            slow = fuzz(app, SCHEMATHESIS_EXAMPLES)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            rates["schemathesis"].append((slow.cases / wall, slow.cases / cpu))
            seeds = range(r * FAST_CASES, (r + 1) * FAST_CASES)
            wall, cpu = time.perf_counter(), time.process_time()
            fast = asyncio.run(fuzz_fast(app, node, seeds, advance=clock.advance))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            rates["fast"].append((fast.cases / wall, fast.cases / cpu))
            problems += len(slow.problems) + len(fast.problems)
            (sw, sc), (fw, fc) = rates["schemathesis"][-1], rates["fast"][-1]
            print(
                f"round {r + 1}: schemathesis {slow.cases:,} cases, {sw:,.0f}/s wall,"
                f" {sc:,.0f}/s CPU; fast {fast.cases:,} cases, {fw:,.0f}/s wall, {fc:,.0f}/s CPU",
                flush=True,
            )
    walls = {k: median(w for w, _ in v) for k, v in rates.items()}
    cpus = {k: median(c for _, c in v) for k, v in rates.items()}
    print(
        f"\nmedians of {rounds}: schemathesis {walls['schemathesis']:,.0f}/s wall,"
        f" {cpus['schemathesis']:,.0f}/s CPU; fast {walls['fast']:,.0f}/s wall,"
        f" {cpus['fast']:,.0f}/s CPU: {walls['fast'] / walls['schemathesis']:.1f}x wall,"
        f" {cpus['fast'] / cpus['schemathesis']:.1f}x CPU; 10^6 cases take"
        f" {1e6 / cpus['fast'] / 60:,.0f} min of one core; problems: {problems}"
    )
    return 1 if problems else 0


def main() -> int:
    from minutely.testing.fuzz import FastRun

    if sys.argv[1:2] == ["compare"]:
        return compare(int(sys.argv[2]) if len(sys.argv) > 2 else 3)

    args = sys.argv[1:]
    target = args.pop(0) if args[:1] and args[0] in ("auth", "wire", "graphite") else "app"
    total = int(args[0]) if len(args) > 0 else 1_000_000
    processes = int(args[1]) if len(args) > 1 else 1
    first = int(args[2]) if len(args) > 2 else 0
    share = -(-total // processes)
    ranges = [
        range(first + i * share, first + min(total, (i + 1) * share)) for i in range(processes)
    ]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(r, out))
        if target == "app"
        else ctx.Process(target=_edge_worker, args=(target, r, out))
        for r in ranges
    ]
    began = time.perf_counter()
    for p in procs:
        p.start()
    done, sent, found, run = 0, 0, 0, FastRun()
    heard = time.perf_counter()
    while done < processes:
        try:
            message = out.get(timeout=5)
        except Exception:  # nothing yet: a worker may have died, or hang on a blocked loop
            if any(p.exitcode not in (None, 0) for p in procs):
                print("a worker died: see its traceback above", flush=True)
                return 1
            if time.perf_counter() - heard > STALLED:
                print(f"no progress for {STALLED} s: a worker hangs", flush=True)
                for p in procs:
                    p.terminate()
                return 1
            continue
        heard = time.perf_counter()
        if message[0] == "progress":  # new problems are shown as they are found
            sent += message[1]
            found += len(message[2])
            took = time.perf_counter() - began
            print(f"{sent:,} cases, {sent / took:,.0f}/s, {found} problems", flush=True)
            for p in message[2]:
                print("\n" + p + "\n", flush=True)
            continue
        done += 1
        run.merge(message[1])
    for p in procs:
        p.join()
    took = time.perf_counter() - began
    print(
        f"\n{target} pass: {run.cases:,} cases in {took:,.0f} s: {run.cases / took:,.0f} cases/s"
        f" over {processes} processes; {run.batches:,} mixed batches checked against the"
        " folded points"
    )
    statuses: dict[str, Counter[int]] = {}
    for (label, status), n in run.statuses.items():
        statuses.setdefault(label, Counter())[status] += n
    print(f"\n{'operation or decoder':<50} {'cases':>8}  answers by status")
    for label, n in sorted(run.labels.items()):
        shown = ", ".join(f"{s}: {k:,}" for s, k in sorted(statuses.get(label, Counter()).items()))
        print(f"{label:<50} {n:>8,}  {shown}")
    print(f"\nproblems: {len(run.problems)} (each shown above as it was found)")
    return 1 if run.problems else 0


if __name__ == "__main__":
    sys.exit(main())
