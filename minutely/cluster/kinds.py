"""``GlobalKinds``: the metric kinds declared anywhere in the cluster, in JetStream KV.

The kinds bucket holds one key per declared metric (or family)::

    <encoded name>    ``counter`` or ``gauge``; put by the node that took the declaration

A node's ``minutely.kinds.Kinds`` uses it as its ``SharedKinds``: a declaration (a protocol's
metadata, ``POST /api/v1/kinds``) is put here, and acknowledged by JetStream, before the
points that carried it are published; every node reads what was put since its last read
once a second (``changes``); and before a node folds the first points of a metric it has not
folded before, it reads the bucket up to the last entry JetStream has (``sync``), so a
declaration made before those points were published is known when they are folded. The
argument is in ``docs/counters.md``.

The bucket's last sequence comes from a stream info request, which the stream's leader
answers; the entries come through ``kv.scan``, whose consumer may sit on a follower that
lags, so ``sync`` reads until it has reached that sequence.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping

from nats.js.kv import KeyValue

from minutely.cluster.keys import decode_name, encode_name
from minutely.cluster.kv import Remote, scan
from minutely.errors import Unavailable
from minutely.kinds import KINDS, Kind

#: how long ``sync`` waits between reads while a follower has not caught up yet
CATCH_UP_POLL = 0.02


class GlobalKinds:
    """Declared metric kinds shared by the cluster (see the module)."""

    def __init__(self, remote: Remote, kv: KeyValue, bucket: str) -> None:
        self._remote = remote
        self._kv = kv
        self._bucket = bucket
        # one reader at a time, so entries are handed out once and ``_read_to`` only grows
        self._lock = threading.Lock()
        self._read_to = 0

    @property
    def read_to(self) -> int:
        """The bucket's stream sequence this node has read up to."""
        return self._read_to

    def write(self, changed: Mapping[str, Kind]) -> None:
        """Put each declaration; returns once JetStream has stored every one."""

        async def put() -> None:
            await asyncio.gather(
                *(self._kv.put(encode_name(name), kind.encode()) for name, kind in changed.items())
            )

        if changed:
            self._remote.call(put(), f"declare the kinds of {len(changed)} metrics")

    def changes(self) -> dict[str, Kind]:
        """The declarations put since the last read (by any node), newest per name."""
        with self._lock:
            return self._read()

    def sync(self) -> dict[str, Kind]:
        """As ``changes``, read up to at least every declaration JetStream had stored when
        this was called; ``Unavailable`` if that cannot be done within the timeout. When
        this node has read that far already, it costs one request."""
        with self._lock:
            last = self._remote.call(self._last(), "read the kinds bucket's last sequence")
            got: dict[str, Kind] = {}
            deadline = time.monotonic() + self._remote.timeout
            tries = 0
            while self._read_to < last:
                if tries:  # the read before came short: its consumer is on a lagging follower
                    if time.monotonic() >= deadline:
                        msg = (
                            f"the kinds bucket was read to {self._read_to} of {last} within"
                            f" {self._remote.timeout}s"
                        )
                        raise Unavailable(msg)
                    time.sleep(CATCH_UP_POLL)
                got |= self._read()
                tries += 1
            return got

    async def _last(self) -> int:
        info = await self._remote.broker.jetstream.stream_info(f"KV_{self._bucket}")
        return int(info.state.last_seq)

    def _read(self) -> dict[str, Kind]:
        read = self._remote.call(
            scan(
                self._remote.broker.jetstream,
                self._bucket,
                after=self._read_to,
                timeout=self._remote.timeout,
            ),
            "read the kinds bucket",
        )
        got: dict[str, Kind] = {}
        for item in read.items:  # oldest first: a later entry of a name replaces an earlier
            kind = item.value.decode("ascii", "replace")
            if not item.deleted and kind in KINDS:
                got[decode_name(item.key)] = kind
        self._read_to = max(self._read_to, read.last)
        return got
