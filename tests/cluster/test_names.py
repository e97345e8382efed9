"""Global server and metric ids on a real nats-server (``minutely.cluster.names``)."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable

import pytest

from minutely.cluster.control import ControlPlane

MakePlane = Callable[..., ControlPlane]


def test_ids_are_dense_stable_and_in_the_callers_order(make_plane: MakePlane) -> None:
    a = make_plane()
    assert a.names.ids("server", []) == []
    assert a.names.ids("server", ["web-1", "web-2", "web-1"]) == [0, 1, 0]
    assert a.names.ids("server", ["db-1", "web-2"]) == [2, 1]
    assert a.names.ids("metric", ["cpu", "web-1"]) == [0, 1]  # each kind counts on its own
    assert a.names.all("server") == {"web-1": 0, "web-2": 1, "db-1": 2}
    assert a.names.all("metric") == {"cpu": 0, "web-1": 1}
    with pytest.raises(ValueError):
        a.names.ids("series", ["x"])  # type: ignore[arg-type]


def test_another_node_sees_the_same_ids(make_plane: MakePlane) -> None:
    a, b = make_plane(), make_plane()
    odd = ["ü/ñ.icode ☃", ".dots.", "a b", "x" * 200]
    assert a.names.ids("metric", odd) == [0, 1, 2, 3]
    assert b.names.all("metric") == dict(zip(odd, range(4), strict=True))
    assert b.names.ids("metric", ["new", *reversed(odd)]) == [4, 3, 2, 1, 0]
    assert a.names.ids("metric", ["new"]) == [4]


def test_concurrent_nodes_agree(make_plane: MakePlane) -> None:
    """Two nodes, two threads each, allocating overlapping name sets at the same time."""
    planes = [make_plane(), make_plane()]
    pool = [f"host-{k}" for k in range(400)]
    rng = random.Random(7)
    batches = [[rng.sample(pool, 60) for _ in range(8)] for _ in range(4)]
    results: list[list[tuple[list[str], list[int]]]] = [[] for _ in batches]
    failures: list[BaseException] = []
    start = threading.Barrier(len(batches))

    def work(k: int) -> None:
        try:
            names = planes[k % 2].names
            start.wait()
            for batch in batches[k]:
                results[k].append((batch, names.ids("server", batch)))
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures

    seen: dict[str, int] = {}
    for per_thread in results:
        for batch, ids in per_thread:
            for name, ident in zip(batch, ids, strict=True):
                assert seen.setdefault(name, ident) == ident, name
    assert len(set(seen.values())) == len(seen)  # distinct names, distinct ids
    everything = planes[0].names.all("server")
    assert everything == planes[1].names.all("server")
    assert {n: everything[n] for n in seen} == seen
    # dense but for the ids claimed by the loser of a race for the same name
    counter = int(planes[0].names.ids("server", ["after-all"])[0])
    gaps = counter - len(everything) + 1
    assert 0 <= gaps <= sum(len(b) for per_thread in batches for b in per_thread)
    print(f"\n{len(everything)} names allocated concurrently, {gaps} ids left as gaps")


#: names in ``test_many_names``; ``MINUTELY_MANY_NAMES=100000`` measures the brief's case
MANY = int(os.environ.get("MINUTELY_MANY_NAMES", "20000"))


def test_many_names(make_plane: MakePlane) -> None:
    """Many names: allocated in one call, then read by another node (the times are printed,
    not asserted: they depend on the machine)."""
    a, b = make_plane(), make_plane()
    names = [f"metric.{k:06d}" for k in range(MANY)]
    t0 = time.perf_counter()
    ids = a.names.ids("metric", names)
    t1 = time.perf_counter()
    everything = b.names.all("metric")
    t2 = time.perf_counter()
    again = b.names.all("metric")  # nothing new: nothing to read
    t3 = time.perf_counter()
    assert ids == list(range(len(names)))
    assert everything == dict(zip(names, ids, strict=True)) == again
    print(
        f"\n{MANY} names: allocate {t1 - t0:.2f} s, all() cold {t2 - t1:.2f} s,"
        f" warm {1e3 * (t3 - t2):.1f} ms"
    )
