"""``Checkpoints``: each partition key's last checkpoint, fenced, in JetStream KV and Object Store.

Per partition key (``s.<p>`` or ``m.<p>``) there are two things::

    KV <prefix>_checkpoints       key "s.<p>": the pointer, JSON
                                  {"node", "blob": object name or null, "size", "at"}
    objects <prefix>_checkpoints  "<key>/<r>/<node>/<random>": the blob the pointer names
                                  (chunked: a blob can be tens of MB, a KV value cannot),
                                  written under the claim at pointer revision r

The pointer's revision is the fencing token:
- ``claim`` rewrites the pointer naming the claiming node with ``update(last=r)``, so every
  write of an earlier holder, which still carries its own older revision, now fails;
- ``write`` stores the new blob under a fresh name, then moves the pointer to it with
  ``update(last=claim.revision)``. Only a holder whose claim is still the latest succeeds;
  any other gets ``Fenced``, deletes its new blob and must stop inserting and acking.
  After a success the previous blob is deleted: only the pointer's blob is ever read.

A blob is fetched only after the claim's compare-and-set succeeded: from then on nobody but
the claimant can move the pointer, so nobody can delete that blob under it. Blobs left by a
writer that died or was fenced between its two steps are deleted by the next ``claim`` of
their key: a blob written under revision r < R, the new claim's, can never be pointed at,
since its writer's ``update(last=r)`` must fail; blobs of later claims are left alone.

``write`` failing with ``Unavailable`` leaves its outcome unknown (the pointer may or may
not have moved): claim the key again before the next write; the new claim carries whichever
blob the pointer names.
"""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import nats.js.errors
from nats.js import api
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from minutely.cluster.kv import Remote
from minutely.errors import Unavailable

log = logging.getLogger(__name__)

#: the largest chunk a blob is cut into (fewer chunks, fewer round trips), if the server
#: takes messages that large
CHUNK = 1 << 20
#: the slowest transfer a blob's read or write waits for before NATS counts as unavailable
MIN_RATE = 1 << 20  # bytes per second


@dataclass(frozen=True, slots=True)
class Claim:
    """This node's claim on ``key``: the pointer's ``revision`` after its last claim or
    write, and the blob of the last checkpoint (``None`` if there is none yet), stored as
    object ``name``."""

    key: str
    node: str
    revision: int
    blob: bytes | None
    name: str | None = None


class Fenced(Exception):
    """``node``'s claim on ``key`` is no longer the latest: it must stop inserting and acking."""

    def __init__(self, key: str, node: str, why: str) -> None:
        super().__init__(f"node {node} is fenced off {key}: {why}")
        self.key = key
        self.node = node
        self.why = why


class Checkpoints:
    """Fenced checkpoints per partition key (see the module)."""

    def __init__(
        self, remote: Remote, pointers: KeyValue, blobs: ObjectStore, max_payload: int
    ) -> None:
        self._remote = remote
        self._pointers = pointers
        self._blobs = blobs
        self._chunk = min(CHUNK, max_payload)

    def claim(self, key: str, node: str) -> Claim:
        """Make ``node`` the only node that can write ``key``'s checkpoint, fencing every
        earlier holder; returns the last checkpoint's blob."""

        async def claim() -> tuple[int, dict[str, Any]]:
            while True:
                revision, pointer = await self._pointer(key)
                value = _pointer(node, pointer.get("blob"), pointer.get("size", 0))
                try:
                    if revision:
                        return await self._pointers.update(key, value, last=revision), pointer
                    return await self._pointers.create(key, value), pointer
                except nats.js.errors.KeyWrongLastSequenceError:
                    continue  # someone else claimed or wrote since the read: read again

        revision, pointer = self._remote.call(claim(), f"claim the checkpoint of {key}")
        name = pointer.get("blob")
        blob = None if name is None else self._get(name, int(pointer.get("size", 0)))
        if name is not None and blob is None:
            msg = f"{key} points at checkpoint blob {name}, which is missing"
            raise RuntimeError(msg)
        self._sweep(key, keep=name, below=revision)
        return Claim(key, node, revision, blob, name)

    def write(self, claim: Claim, blob: bytes) -> Claim:
        """Store ``blob`` as ``claim.key``'s checkpoint; ``Fenced`` if another node claimed
        the key since ``claim``. Returns the claim to write with next."""
        key, node = claim.key, claim.node
        name = f"{key}/{claim.revision}/{node}/{uuid.uuid4().hex}"
        meta = api.ObjectMeta(name=name, options=api.ObjectMetaOptions(max_chunk_size=self._chunk))
        self._remote.call(
            self._blobs.put(name, blob, meta), f"store the checkpoint of {key}", self._wait(blob)
        )

        async def point() -> int | None:
            value = _pointer(node, name, len(blob))
            try:
                return await self._pointers.update(key, value, last=claim.revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                return None

        revision = self._remote.call(point(), f"point {key} at its new checkpoint")
        if revision is None:
            self._delete(name)
            why = f"the pointer moved past revision {claim.revision} (another node claimed it)"
            raise Fenced(key, node, why)
        if claim.name is not None:
            self._delete(claim.name)
        return Claim(key, node, revision, blob, name)

    def read(self, key: str) -> bytes | None:
        """The blob ``key``'s pointer names now (``None`` if none); for tools and tests."""
        while True:
            _, pointer = self._remote.call(self._pointer(key), f"read the pointer of {key}")
            name = pointer.get("blob")
            if name is None:
                return None
            blob = self._get(name, int(pointer.get("size", 0)))
            if blob is not None:
                return blob
            # A newer checkpoint replaced it meanwhile: follow the pointer again.

    # -- internals ------------------------------------------------------------------------

    async def _pointer(self, key: str) -> tuple[int, dict[str, Any]]:
        """The pointer's revision and value; ``(0, {})`` if the key has none."""
        try:
            entry = await self._pointers.get(key)
        except nats.js.errors.KeyNotFoundError:
            return 0, {}
        return entry.revision or 0, json.loads(entry.value or b"{}")

    def _get(self, name: str, size: int) -> bytes | None:
        """Blob ``name``; ``None`` if it is gone."""

        async def get() -> bytes | None:
            sink = io.BytesIO()  # nats-py joins chunks by repeated concatenation otherwise
            try:
                await self._blobs.get(name, writeinto=sink)
            except nats.js.errors.ObjectNotFoundError:
                return None
            return sink.getvalue()

        return self._remote.call(get(), f"read checkpoint blob {name}", self._wait(size))

    def _delete(self, name: str) -> None:
        """Delete blob ``name``; a failure only leaves it for the next claim's sweep."""
        try:
            self._remote.call(self._blobs.delete(name), f"delete checkpoint blob {name}")
        except Unavailable:
            log.warning("could not delete checkpoint blob %s", name, exc_info=True)

    def _sweep(self, key: str, keep: str | None, below: int) -> None:
        """Delete the blobs of ``key`` written under a claim older than revision ``below``
        that the pointer does not name (``keep``): they can never be pointed at."""

        async def names() -> list[str]:
            try:
                listed = await self._blobs.list(ignore_deletes=True)
            except nats.js.errors.NotFoundError:
                return []
            return [info.name for info in listed if info.name.startswith(f"{key}/")]

        def dead(name: str) -> bool:
            written_under = name.split("/")[1]
            return name != keep and written_under.isdigit() and int(written_under) < below

        try:
            stale = [n for n in self._remote.call(names(), "list checkpoint blobs") if dead(n)]
        except Unavailable:
            log.warning("could not list the checkpoint blobs of %s", key, exc_info=True)
            return
        for name in stale:
            self._delete(name)

    def _wait(self, size: int | bytes) -> float:
        n = size if isinstance(size, int) else len(size)
        return self._remote.timeout + n / MIN_RATE


def _pointer(node: str, blob: str | None, size: int) -> bytes:
    return json.dumps({"node": node, "blob": blob, "size": size, "at": time.time()}).encode()
