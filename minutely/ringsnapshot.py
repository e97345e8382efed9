"""The hot ring on disk across a clean restart.

A start-up rebuilds the ring from the store: every minute of the window read, loaded and
sealed again, which takes hours at the seed's size. A clean stop, once the store holds every
point folded, writes the ring's state (``HotRing.state``: its compressed blocks, hour
summaries, open slots and sealing marks) into ``<data_dir>/ring-snapshot``; the next start
reads it back instead, and reads nothing from the store.

Layout::

    ring-snapshot/manifest.json   the checks below, the ring's marks, each block's scalars,
                                  and each array's dtype, shape, offset and CRC-32
    ring-snapshot/arrays.bin      the arrays back to back, in the manifest's order

The snapshot is used only when it is what the store holds, else the start rebuilds from the
store as before (docs/hot-ring.md, "Restarts"):

- it is written only by a stop that wrote everything (``Service.stop``);
- the store's change marker (``Store.change_marker``) at the start equals the one at the stop:
  a write between them (an import, another process, the recovery of a spill) refuses it;
- the ring has the same shape, the registry numbers the same series the same way, and every
  array's CRC-32 matches.

``take`` removes the directory once it is read or refused, before anything new is folded, so a
later crash cannot find a snapshot that the store has moved past.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from minutely import blocks, hot, model, ringcodec
from minutely.blocks import Block
from minutely.hot import HotRing, RingState
from minutely.model import Partials
from minutely.registry import Registry

#: the snapshot's directory in the data dir
DIRECTORY = "ring-snapshot"
#: the layout's version: a snapshot of another is refused
FORMAT = 3
MANIFEST = "manifest.json"
ARRAYS = "arrays.bin"
#: bytes read or written per call: large enough to stream, small enough for one buffer
CHUNK = 64 << 20
#: disk left free after a snapshot is written, or it is not written
SPARE_BYTES = 256 << 20


class Refused(Exception):
    """The snapshot cannot stand for the store: the start rebuilds from the store."""


def shape(ring: HotRing) -> dict[str, int]:
    """What a snapshot's ring must share with the ring it is put into (its open slots and
    hour summary slots follow from these)."""
    return {
        "minutes": ring.minutes,
        "live_minutes": ring.live_minutes,
        "block": ring.block,
        "block_minutes": ring.block_minutes,
        "grace_minutes": ring.grace_minutes,
        "compact_minutes": ring.compact_minutes,
        "summary_minutes": ring.summary_minutes,
    }


def save(directory: Path, ring: HotRing, registry: Registry, marker: str) -> int:
    """Write ``ring``'s state to ``directory`` (replaced whole, atomically); returns the bytes
    written, 0 when the ring seals nothing or holds nothing. The ring's live minutes must be
    handed on, and nothing may fold into it meanwhile. Raises ``OSError`` (nothing left
    behind) when the disk cannot take it, or would keep less than ``SPARE_BYTES`` free
    after it."""
    state = ring.state()
    discard(directory)
    if state is None:
        return 0
    partial = _partial(directory)
    discard(partial)
    need = _size(state)
    free = shutil.disk_usage(directory.parent).free
    if need + SPARE_BYTES > free:
        msg = f"the snapshot needs {need >> 20} MB and {free >> 20} MB are free"
        raise OSError(errno.ENOSPC, msg)
    try:
        partial.mkdir(parents=True)
        servers, metrics = registry.series_of(np.arange(state.used, dtype=np.int32))
        with (partial / ARRAYS).open("wb") as f:
            out = _Writer(f)
            manifest: dict[str, Any] = {
                "format": FORMAT,
                "layout": layout(),
                "marker": marker,
                "shape": shape(ring),
                "head": int(state.head),
                "since": int(state.since),
                "used": int(state.used),
                "sealed_to": out.put(state.sealed_to),
                "compacted_to": out.put(state.compacted_to),
                "hour_start": out.put(state.hour_start),
                "slot_minute": out.put(state.slot_minute),
                "servers": out.put(servers),
                "metrics": out.put(metrics),
                "hours": [[out.put(f) for f in h.fields()] for h in state.hours],
                "slots": [[out.put(f) for f in s.fields()] for s in state.slots],
                "blocks": [[_put_block(out, b) for b in held] for held in state.blocks],
                "arrays": out.entries,
            }
            f.flush()
            os.fsync(f.fileno())
        body = json.dumps(manifest, sort_keys=True)
        (partial / MANIFEST).write_text(json.dumps({"crc": zlib.crc32(body.encode()), **manifest}))
        _fsync(partial / MANIFEST)
        partial.rename(directory)
        _fsync(directory.parent)
    except BaseException:
        discard(partial)
        raise
    return out.offset


def discard_partial(directory: Path) -> None:
    """Remove what a stop that died while it wrote ``directory`` left."""
    discard(_partial(directory))


def exists(directory: Path) -> bool:
    """Whether ``directory`` holds a whole snapshot (a half-written one is not)."""
    return (directory / MANIFEST).exists()


def take(
    directory: Path, ring: HotRing, registry: Registry, marker: Callable[[], str]
) -> int | None:
    """Put the snapshot in ``directory`` into ``ring`` (fresh) and remove it; returns the
    bytes read, None when there is none. ``marker`` gives the store's change marker now
    (asked only when there is a snapshot). Raises ``Refused`` (naming why) when it does not
    match the store, the build, the ring or the registry, or is damaged or unreadable: the
    ring is then untouched and the snapshot gone."""
    discard_partial(directory)
    if not exists(directory):
        discard(directory)
        return None
    try:
        state, nbytes = _read(directory, ring, registry, marker)
    except Refused:
        raise
    except Exception as exc:
        msg = f"unreadable: {type(exc).__name__}: {exc}"
        raise Refused(msg) from exc
    finally:
        discard(directory)
    try:
        ring.restore(state)
    except ValueError as exc:  # checked before the ring is touched
        raise Refused(str(exc)) from exc
    return nbytes


def layout() -> str:
    """A digest of the code that lays out what a snapshot holds (the codec, the blocks, the
    ring, this module): a snapshot written by another build is refused, not decoded as if
    its bytes meant what they mean here."""
    digest = hashlib.sha256()
    for module in (ringcodec, blocks, hot, model, sys.modules[__name__]):
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()[:16]


def discard(directory: Path) -> None:
    """Remove a snapshot (or a half-written one)."""
    shutil.rmtree(directory, ignore_errors=True)


# -- internals ------------------------------------------------------------------------------


class _Writer:
    """Arrays appended to one file, each listed as ``[dtype, shape, offset, crc32]``."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.offset = 0
        self.entries: list[list[Any]] = []

    def put(self, a: npt.NDArray[Any]) -> int:
        a = np.ascontiguousarray(a)
        raw = a.reshape(-1).view(np.uint8).data
        crc = 0
        for i in range(0, raw.nbytes, CHUNK):
            piece = raw[i : i + CHUNK]
            crc = zlib.crc32(piece, crc)
            self.f.write(piece)
        self.entries.append([a.dtype.str, list(a.shape), self.offset, crc])
        self.offset += raw.nbytes
        return len(self.entries) - 1


def _size(state: RingState) -> int:
    """Bytes ``save`` writes for ``state``, about."""
    n = sum(f.nbytes for h in (*state.hours, *state.slots) for f in h.fields())
    for b in (b for bs in state.blocks for b in bs):
        n += b.used + b.offset.nbytes + b.length.nbytes + b.fmt.nbytes
        n += 0 if b.summary is None else sum(f.nbytes for f in b.summary.fields())
        n += 0 if b.subs is None else sum(f.nbytes for f in b.subs.fields())
    n += state.hour_start.nbytes + state.slot_minute.nbytes
    return n + 8 * state.used + 3 * state.sealed_to.nbytes


def _put_block(out: _Writer, b: Block) -> dict[str, Any]:
    return {
        "start": int(b.start),
        "minutes": int(b.minutes),
        "used": int(b.used),
        "dead": int(b.dead),
        "sub_minutes": int(b.sub_minutes),
        "compacted": b.compacted,
        "arena": out.put(b.arena[: b.used]),
        "offset": out.put(b.offset),
        "length": out.put(b.length),
        "fmt": out.put(b.fmt),
        "summary": None if b.summary is None else [out.put(f) for f in b.summary.fields()],
        "subs": None if b.subs is None else [out.put(f) for f in b.subs.fields()],
    }


class _Reader:
    """The arrays of ``arrays.bin`` by their manifest index, each checked against its CRC."""

    def __init__(self, f: io.BufferedReader, entries: list[list[Any]]) -> None:
        self.f = f
        self.entries = entries
        self.nbytes = 0

    def get(self, index: int, pad: int = 0) -> npt.NDArray[Any]:
        """Entry ``index``; ``pad`` zero bytes after it (a 1-D uint8 arena's ``PAD``)."""
        dtype, shape_, offset, crc = self.entries[index]
        n = int(np.prod(shape_, dtype=np.int64))
        out = np.zeros(n * np.dtype(dtype).itemsize + pad, np.uint8)
        raw = out.data[: out.shape[0] - pad]
        self.f.seek(offset)
        got, check = 0, 0
        while got < raw.nbytes:
            k = self.f.readinto(raw[got : got + CHUNK])
            if not k:
                msg = f"array {index} is cut short at byte {got} of {raw.nbytes}"
                raise ValueError(msg)
            check = zlib.crc32(raw[got : got + k], check)
            got += k
        if check != crc:
            msg = f"array {index} fails its CRC-32"
            raise ValueError(msg)
        self.nbytes += raw.nbytes
        if pad:
            return out
        got_array: npt.NDArray[Any] = out.view(dtype).reshape(shape_)
        return got_array


def _read(
    directory: Path, ring: HotRing, registry: Registry, marker: Callable[[], str]
) -> tuple[RingState, int]:
    manifest = json.loads((directory / MANIFEST).read_text())
    crc = manifest.pop("crc", None)
    if crc != zlib.crc32(json.dumps(manifest, sort_keys=True).encode()):
        msg = "its manifest fails its CRC-32"
        raise Refused(msg)
    if manifest.get("format") != FORMAT:
        msg = f"format {manifest.get('format')}, not {FORMAT}"
        raise Refused(msg)
    if manifest["layout"] != layout():
        msg = "another build of minutely's ring wrote it"
        raise Refused(msg)
    try:
        now = marker()
    except Exception as exc:
        msg = f"the store's change marker cannot be read: {exc}"
        raise Refused(msg) from exc
    if manifest["marker"] != now:
        msg = f"the store changed since the stop ({manifest['marker']} → {now})"
        raise Refused(msg)
    if manifest["shape"] != shape(ring):
        msg = f"a ring of {manifest['shape']}, not {shape(ring)}"
        raise Refused(msg)
    used = int(manifest["used"])
    if used > registry.n_series:
        msg = f"{used} series in the ring, {registry.n_series} in the store's registry"
        raise Refused(msg)
    with (directory / ARRAYS).open("rb") as f:
        arrays = _Reader(f, manifest["arrays"])
        servers, metrics = registry.series_of(np.arange(used, dtype=np.int32))
        if not (
            np.array_equal(arrays.get(manifest["servers"]), servers)
            and np.array_equal(arrays.get(manifest["metrics"]), metrics)
        ):
            msg = "the registry numbers the series otherwise"
            raise Refused(msg)
        state = RingState(
            head=int(manifest["head"]),
            since=int(manifest["since"]),
            used=used,
            sealed_to=arrays.get(manifest["sealed_to"]),
            compacted_to=arrays.get(manifest["compacted_to"]),
            hour_start=arrays.get(manifest["hour_start"]),
            slot_minute=arrays.get(manifest["slot_minute"]),
            hours=[Partials(*(arrays.get(i) for i in h)) for h in manifest["hours"]],
            slots=[Partials(*(arrays.get(i) for i in h)) for h in manifest["slots"]],
            blocks=[[_get_block(arrays, b) for b in held] for held in manifest["blocks"]],
        )
    return state, arrays.nbytes


def _get_block(arrays: _Reader, b: dict[str, Any]) -> Block:
    summary, subs = b["summary"], b["subs"]
    return Block(
        start=int(b["start"]),
        minutes=int(b["minutes"]),
        arena=arrays.get(b["arena"], pad=ringcodec.PAD),
        used=int(b["used"]),
        dead=int(b["dead"]),
        offset=arrays.get(b["offset"]),
        length=arrays.get(b["length"]),
        fmt=arrays.get(b["fmt"]),
        summary=None if summary is None else Partials(*(arrays.get(i) for i in summary)),
        subs=None if subs is None else Partials(*(arrays.get(i) for i in subs)),
        sub_minutes=int(b["sub_minutes"]),
        compacted=bool(b["compacted"]),
    )


def _partial(directory: Path) -> Path:
    return directory.with_name(directory.name + ".partial")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
