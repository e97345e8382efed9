"""Metric kinds shared through a real nats-server (``minutely.cluster.kinds``): what one node
declares, another folds with, the first time it sees the metric and without waiting for its
periodic read."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

import numpy as np

from minutely.cluster.control import ControlPlane
from minutely.kinds import Kind, Kinds

MakePlane = Callable[..., ControlPlane]


class Counted:
    """A ``SharedKinds`` that counts its synchronous reads."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.syncs = 0

    def write(self, changed: Mapping[str, Kind]) -> None:
        self.plane.kinds.write(changed)

    def changes(self) -> dict[str, Kind]:
        return self.plane.kinds.changes()

    def sync(self) -> dict[str, Kind]:
        self.syncs += 1
        return self.plane.kinds.sync()


def test_a_declaration_is_known_to_another_nodes_first_fold(make_plane: MakePlane) -> None:
    a, b = make_plane(), make_plane()
    here = Kinds(shared=a.kinds)
    there_shared = Counted(b)
    there = Kinds(shared=there_shared)
    there.learn(["cpu"])  # b folded a metric before anything was declared
    assert there_shared.syncs == 1 and there.of("cpu") == "gauge"

    odd = 'ü/ñ.icode ☃{code="200"}'
    assert here.declare({"jobs": "counter", "cpu": "gauge", odd: "counter"}) == 2
    # the first batch of jobs on b: read before it is folded, no refresh needed
    there.learn(["cpu", "jobs"])
    assert there_shared.syncs == 2
    names = np.array(["jobs", "cpu", odd], dtype=object)
    assert there.counter_mask(names).tolist() == [True, False, True]
    there.learn(["jobs", "cpu"])  # names seen before cost no request
    assert there_shared.syncs == 2


def test_later_declarations_arrive_by_refresh(make_plane: MakePlane) -> None:
    a, b = make_plane(), make_plane()
    here, there = Kinds(shared=a.kinds), Kinds(shared=b.kinds)
    there.learn(["requests_total"])
    assert there.of("requests_total") == "counter"  # the _total convention
    assert here.declare({"requests_total": "gauge", "jobs": "counter"}) == 2
    assert there.refresh() == 2
    assert there.of("requests_total") == "gauge" and there.of("jobs") == "counter"
    assert there.refresh() == 0  # read once
    assert here.declare({"jobs": "counter"}) == 0  # unchanged: nothing written
    assert b.kinds.changes() == {}
    assert here.declare({"jobs": "gauge"}) == 1  # a change of mind is the newest entry
    assert there.refresh() == 1 and there.of("jobs") == "gauge"
    fresh = Kinds(shared=make_plane().kinds)  # a node that starts later reads everything
    assert fresh.refresh() == 2 and fresh.declared == {"requests_total": "gauge", "jobs": "gauge"}


def test_many_declarations_are_read_whole(make_plane: MakePlane) -> None:
    a, b = make_plane(), make_plane()
    names = {f"app.{k}": "counter" for k in range(3000)}
    assert Kinds(shared=a.kinds).declare(names) == 3000
    there = Kinds(shared=b.kinds)
    there.learn(["app.2999"])
    assert there.declared == names and b.kinds.read_to > 0


class HandedOnce:
    """A ``SharedKinds`` whose ``changes`` hands an entry out, then waits to be let go, as a
    read that took the entry and has not returned yet; ``sync`` finds nothing left."""

    def __init__(self) -> None:
        self.pending: dict[str, Kind] = {"jobs": "counter"}
        self.taken = threading.Event()
        self.release = threading.Event()

    def write(self, changed: Mapping[str, Kind]) -> None:
        self.pending |= dict(changed)

    def changes(self) -> dict[str, Kind]:
        got, self.pending = self.pending, {}
        self.taken.set()
        self.release.wait(30)
        return got

    def sync(self) -> dict[str, Kind]:
        got, self.pending = self.pending, {}
        return got


def test_a_first_fold_waits_for_a_read_in_flight() -> None:
    """The periodic read has taken the declaration but not adopted it yet: a first fold
    must not conclude it is up to date and fold the counter as a gauge meanwhile."""
    shared = HandedOnce()
    kinds = Kinds(shared=shared)
    seen: list[str] = []
    reader = threading.Thread(target=kinds.refresh)
    reader.start()
    assert shared.taken.wait(30)

    def fold() -> None:
        kinds.learn(["jobs"])
        seen.append(kinds.of("jobs"))

    folder = threading.Thread(target=fold)
    folder.start()
    folder.join(0.5)  # without the wait, the fold is done by now, with what it saw
    shared.release.set()
    reader.join(30)
    folder.join(30)
    assert seen == ["counter"]
