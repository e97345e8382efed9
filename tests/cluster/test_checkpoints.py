"""Fenced checkpoints on a real nats-server (``minutely.cluster.checkpoints``)."""

from __future__ import annotations

import os
from collections.abc import Callable

import nats.js.errors
import pytest

from minutely.cluster.checkpoints import Fenced
from minutely.cluster.control import ControlPlane

MakePlane = Callable[..., ControlPlane]


def test_claim_write_read_round_trip_a_large_blob(make_plane: MakePlane) -> None:
    a = make_plane()
    claim = a.checkpoints.claim("s.0", "node-a")
    assert claim.blob is None and claim.name is None and claim.revision > 0
    assert a.checkpoints.read("s.0") is None
    blob = os.urandom(6 << 20) + b"end"  # several chunks and a short last one
    after = a.checkpoints.write(claim, blob)
    assert after.revision > claim.revision and after.blob == blob
    assert a.checkpoints.read("s.0") == blob
    again = make_plane().checkpoints.claim("s.0", "node-b")
    assert again.blob == blob and again.name == after.name


def test_a_later_claim_fences_the_earlier_holder(make_plane: MakePlane) -> None:
    a, b = make_plane(), make_plane()
    first = a.checkpoints.write(a.checkpoints.claim("m.2", "node-a"), b"from a, 1")
    taken = b.checkpoints.claim("m.2", "node-b")
    assert taken.blob == b"from a, 1"
    with pytest.raises(Fenced) as fenced:
        a.checkpoints.write(first, b"from a, 2 (a zombie)")
    assert fenced.value.key == "m.2" and fenced.value.node == "node-a"
    assert a.checkpoints.read("m.2") == b"from a, 1"
    mine = b.checkpoints.write(taken, b"from b, 1")
    assert b.checkpoints.read("m.2") == b"from b, 1"
    with pytest.raises(Fenced):
        a.checkpoints.write(first, b"from a, 3")
    assert a.checkpoints.read("m.2") == b"from b, 1"
    assert b.checkpoints.write(mine, b"from b, 2").blob == b"from b, 2"


def test_a_claim_that_loses_a_race_retries(make_plane: MakePlane) -> None:
    a, b = make_plane(), make_plane()
    ca = a.checkpoints.claim("s.7", "node-a")
    cb = b.checkpoints.claim("s.7", "node-b")  # moved the pointer since a's claim
    assert cb.revision > ca.revision
    again = a.checkpoints.claim("s.7", "node-a")  # a read-then-CAS that now succeeds
    assert again.revision > cb.revision
    with pytest.raises(Fenced):
        b.checkpoints.write(cb, b"b was fenced by a's second claim")


def test_old_and_fenced_blobs_are_deleted(make_plane: MakePlane) -> None:
    a, b = make_plane(), make_plane()
    claim = a.checkpoints.claim("s.1", "node-a")
    for k in range(3):
        claim = a.checkpoints.write(claim, f"checkpoint {k}".encode())
    assert _blobs(a, "s.1") == {claim.name}  # each write deleted its predecessor
    taken = b.checkpoints.claim("s.1", "node-b")
    with pytest.raises(Fenced):
        a.checkpoints.write(claim, b"fenced: its blob is deleted again")
    assert _blobs(a, "s.1") == {claim.name}
    b.checkpoints.write(taken, b"b's")
    assert _blobs(a, "s.1") != {claim.name} and len(_blobs(a, "s.1")) == 1


def test_a_claim_sweeps_blobs_a_dead_writer_left(make_plane: MakePlane) -> None:
    a = make_plane()
    claim = a.checkpoints.write(a.checkpoints.claim("m.5", "node-a"), b"kept")
    # a writer that stored its blob and died before moving the pointer
    orphan = f"m.5/{claim.revision}/node-a/orphan"
    _put(a, orphan, b"never pointed at")
    assert orphan in _blobs(a, "m.5")
    later = f"m.5/{claim.revision + 1000}/node-z/later"  # a later claim's: left alone
    _put(a, later, b"x")
    taken = a.checkpoints.claim("m.5", "node-b")
    assert taken.blob == b"kept"
    assert _blobs(a, "m.5") == {claim.name, later}


def _blobs(plane: ControlPlane, key: str) -> set[str]:
    """The names of ``key``'s blobs in the object store, as the server lists them."""

    async def names() -> set[str]:
        store = await plane.broker.jetstream.object_store(plane.config.checkpoints_bucket)
        try:
            listed = await store.list(ignore_deletes=True)
        except nats.js.errors.NotFoundError:
            return set()
        return {i.name for i in listed if i.name.startswith(f"{key}/")}

    return plane.broker.call(names(), 10.0)


def _put(plane: ControlPlane, name: str, data: bytes) -> None:
    async def put() -> None:
        store = await plane.broker.jetstream.object_store(plane.config.checkpoints_bucket)
        await store.put(name, data)

    plane.broker.call(put(), 10.0)
