"""``GlobalNames``: dense server and metric ids, the same on every node, in JetStream KV.

The names bucket holds, per kind (``server`` or ``metric``)::

    next.<kind>              the next id never handed out, in decimal (a counter)
    <kind>.<encoded name>    the name's id, in decimal; written once, never changed

Allocating ids for new names takes two compare-and-set steps:
1. claim a range: read ``next.<kind>`` (revision r, value f), write ``f + n`` with
   ``update(last=r)`` (``create`` the first time), retrying on a race, so every claim gets
   ids nobody else got;
2. ``create`` each name's key with its id from the range. ``create`` succeeds for exactly one
   node, so a name has one id forever. A node that loses this race takes the winner's id.

Ids are dense except for **gaps**: the id a node claimed for a name that another node
registered first at the same moment is never used, and neither are the ids a node claimed
before it died between the two steps. Readers must not assume ``max id + 1 == count``.

A node keeps every name it has seen (ids never change), and learns the others' by reading
only the bucket entries written since its last read, so known names cost no request.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import nats.js.errors
from nats.js.kv import KeyValue

from minutely.cluster.keys import Copy, decode_name, encode_name
from minutely.cluster.kv import Remote, scan

Kind = Copy
KINDS: tuple[Kind, ...] = ("server", "metric")

#: names registered by one round of concurrent ``create`` requests
CREATE_ROUND = 1024
#: entries one read of the bucket brings in
READ_ROUND = 32768
#: how long a loser of a race waits between reads of the winner's id (a follower may lag)
WINNER_POLL = 0.05


class GlobalNames:
    """Server and metric names ↔ dense ids shared by the cluster (see the module)."""

    def __init__(self, remote: Remote, kv: KeyValue, bucket: str) -> None:
        self._remote = remote
        self._kv = kv
        self._bucket = bucket
        # One allocation at a time per node, so a node never races itself into gaps.
        self._lock = threading.Lock()
        self._known: dict[Kind, dict[str, int]] = {kind: {} for kind in KINDS}
        self._read_to: dict[Kind, int] = dict.fromkeys(KINDS, 0)

    def ids(self, kind: Kind, names: Sequence[str]) -> list[int]:
        """The ids of ``names``, in their order, allocating those the cluster has not seen."""
        _check(kind)
        with self._lock:
            known = self._known[kind]
            if any(name not in known for name in names):
                self._read(kind)
                new = list(dict.fromkeys(name for name in names if name not in known))
                if new:
                    self._allocate(kind, new)
            return [known[name] for name in names]

    def all(self, kind: Kind) -> dict[str, int]:
        """Every name of ``kind`` the cluster has, with its id."""
        _check(kind)
        with self._lock:
            self._read(kind)
            return dict(self._known[kind])

    # -- internals ------------------------------------------------------------------------

    def _read(self, kind: Kind) -> None:
        """Learn the names written since the last read."""
        known = self._known[kind]
        prefix = len(kind) + 1
        while True:
            read = self._remote.call(
                scan(
                    self._remote.broker.jetstream,
                    self._bucket,
                    f"{kind}.>",
                    after=self._read_to[kind],
                    limit=READ_ROUND,
                    timeout=self._remote.timeout,
                ),
                f"read the {kind} names",
            )
            for item in read.items:
                if not item.deleted:
                    known[decode_name(item.key[prefix:])] = int(item.value)
            self._read_to[kind] = read.last
            if read.complete:
                return

    def _allocate(self, kind: Kind, new: list[str]) -> None:
        first = self._remote.call(self._claim(kind, len(new)), f"claim {len(new)} {kind} ids")
        known = self._known[kind]
        for start in range(0, len(new), CREATE_ROUND):
            chunk = new[start : start + CREATE_ROUND]
            got = self._remote.call(
                self._register(kind, chunk, first + start), f"register {len(chunk)} {kind} names"
            )
            known.update(zip(chunk, got, strict=True))

    async def _claim(self, kind: Kind, n: int) -> int:
        """The first of ``n`` ids nobody else has, claimed by compare-and-set."""
        counter = f"next.{kind}"
        while True:
            try:
                entry = await self._kv.get(counter)
                first, revision = int(entry.value or b"0"), entry.revision or 0
            except nats.js.errors.KeyNotFoundError:
                first, revision = 0, 0
            value = str(first + n).encode()
            try:
                if revision:
                    await self._kv.update(counter, value, last=revision)
                else:
                    await self._kv.create(counter, value)
                return first
            except nats.js.errors.KeyWrongLastSequenceError:
                continue  # another node claimed first (or the read lagged): read again

    async def _register(self, kind: Kind, names: list[str], first: int) -> list[int]:
        """Register ``names`` with ids ``first, first + 1, ...``; a name another node
        registered first keeps that node's id."""

        async def register(name: str, ident: int) -> int:
            key = f"{kind}.{encode_name(name)}"
            try:
                await self._kv.create(key, str(ident).encode())
                return ident
            except nats.js.errors.KeyWrongLastSequenceError:
                pass
            while True:  # bounded by the caller's timeout
                try:
                    entry = await self._kv.get(key)
                    return int(entry.value or b"")
                except nats.js.errors.KeyNotFoundError:
                    await asyncio.sleep(WINNER_POLL)

        return list(
            await asyncio.gather(*(register(name, first + k) for k, name in enumerate(names)))
        )


def _check(kind: str) -> None:
    if kind not in KINDS:
        msg = f"kind must be 'server' or 'metric', not {kind!r}"
        raise ValueError(msg)
