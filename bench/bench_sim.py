"""The simulator's generation rate (``minutely.sim.Fleet``), against another checkout in the
same run.

Two shapes, each timed over ``--reps`` calls in a fresh process (the fleet built first, not
timed): time-major ``batch`` of 100 servers × 500 metrics, 60 s per call (3 M points, as the
pipeline benchmarks send it), and series-major ``batch_by_series`` of one server × 2,000
metrics, an hour per call (7.2 M points, as ``bench/codec_data.py`` folds it), in CPU time
of the process (wall time on the shared machine spread by 7× between runs). Each
measurement runs in its own process, this checkout's and ``--baseline``'s alternating,
``--runs`` times; the table gives medians of M points per CPU second and their ratio.

    flock /tmp/minutely-cpu.lock python bench/bench_sim.py --baseline /tmp/base [--runs 5]

``--baseline TREE`` is another source tree (``git archive COMMIT | tar -x -C TREE``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
#: name: (servers, metrics, seconds per call, series-major)
SHAPES = {
    "batch, 100 x 500, 60 s": (100, 500, 60, False),
    "batch_by_series, 1 x 2000, 3600 s": (1, 2000, 3600, True),
}
T0 = 1_750_000_000


def child(reps: int) -> dict[str, float]:
    """M points per CPU second per shape: the median of ``reps`` timed calls."""
    from minutely.sim import Fleet

    out = {}
    for name, (servers, metrics, seconds, series_major) in SHAPES.items():
        fleet = Fleet(servers, metrics, seed=1)
        make = fleet.batch_by_series if series_major else fleet.batch
        make(T0, seconds)  # warm: first-touch of the output and scratch pages
        rates = []
        for i in range(reps):
            t = time.process_time()
            make(T0 + (i + 1) * seconds, seconds)
            rates.append(servers * metrics * seconds / (time.process_time() - t) / 1e6)
        out[name] = statistics.median(rates)
    return out


def run_child(tree: Path, reps: int) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(tree)}
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--reps", str(reps)]
    done = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", type=Path, help="another source tree to measure in the same run")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--reps", type=int, default=5, help="timed calls per shape per process")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.reps)))
        return
    trees = {"this": HERE}
    if args.baseline is not None:
        trees["baseline"] = args.baseline.resolve()
    got: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for i in range(args.runs):
        for name, tree in trees.items():
            got[name].append(run_child(tree, args.reps))
            print(f"# run {i + 1} {name}: {json.dumps(got[name][-1])}", flush=True)
    names = list(trees)
    runs = f"{args.runs} runs (each a fresh process, {args.reps} calls)"
    print(f"\nM points per CPU second, medians of {runs}\n")
    print("| shape | " + " | ".join(names) + (" | this / baseline |" if len(names) > 1 else " |"))
    print("|---|" + "---|" * (len(names) + (len(names) > 1)))
    for shape in SHAPES:
        values = [statistics.median(r[shape] for r in got[n]) for n in names]
        tail = f" {values[0] / values[1]:.2f}x |" if len(values) > 1 else ""
        print(f"| {shape} | " + " | ".join(f"{v:.1f}" for v in values) + " |" + tail)


if __name__ == "__main__":
    main()
