"""Graphite's plaintext protocol: ``<path> <value> [<timestamp>]`` a line, points out.

    servers.web-1.cpu.user 12.5 1764000000
    cpu.user;host=web-1;core=0 12.5 1764000000          (Graphite 1.1's tagged form)

The server is the path's node number ``server_node`` (0-based; collectd's
``collectd.<host>.…`` is node 1) when that is set, taken out of the path; else it comes from
the tags through ``labels.py`` (``;host=web-1``). The metric is the rest of the path with the
remaining tags as labels. A timestamp of ``-1`` or none takes the server's clock, as carbon
does. A line that cannot be parsed rejects its point, named by line number.

A compiled scanner (``_scan``) reads the lines whose parts are a path and plain decimals,
and a path's series is resolved once per process (``wire.SeriesCache``); any other line (a
bad number, ``nan``, a path that does not resolve) is read by the reference loop
(``_read_lines``), which is what says why a line is bad.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from minutely.ingest import wire
from minutely.ingest.labels import LabelMapping, Resolved
from minutely.ingest.series import Limits
from minutely.ingest.validate import MALFORMED, Decoded, PointError
from minutely.ingest.wire import SeriesCache


def series_cache(mapping: LabelMapping, server_node: int) -> SeriesCache:
    """A cache of Graphite paths (raw bytes → server, metric) for ``mapping``, ``server_node``."""

    def resolve(path: bytes) -> Resolved | None:
        try:
            return _series(path.decode(), mapping, server_node)
        except ValueError:  # a bad tag or node, or not UTF-8: the line's reason says which
            return None

    return SeriesCache((mapping, server_node), resolve)


def decode_graphite(
    body: bytes,
    mapping: LabelMapping,
    server_node: int,
    limits: Limits,
    first_line: int = 1,
    cache: SeriesCache | None = None,
) -> Decoded:
    """Decode plaintext lines (``first_line`` numbers the first, for a stream's reasons);
    ``cache`` keeps paths resolved across calls (None: this call's own)."""
    if cache is None or cache.context != (mapping, server_node):
        cache = series_cache(mapping, server_node)
    buf = np.frombuffer(body, dtype=np.uint8)
    lines, spans, numbers, hashes, value, stamp, hard, slow = _scan(buf, limits.now)
    ids, table = cache.series_of(body, buf, spans, hashes)
    if hard.any():  # decimals the scanner cannot round exactly: Python's float does
        for k in np.flatnonzero(hard & 1).tolist():
            value[k] = float(body[int(numbers[k, 0]) : int(numbers[k, 1])])
        for k in np.flatnonzero(hard & 2).tolist():
            t = float(body[int(numbers[k, 2]) : int(numbers[k, 3])])
            stamp[k] = limits.now if t == -1 else t
    refused = ids < 0
    if refused.any():  # paths that do not resolve: the reference loop says why
        slow = np.sort(np.concatenate([slow, lines[refused]]))
        keep = ~refused
        lines, ids, value, stamp = lines[keep], ids[keep], value[keep], stamp[keep]
    broken: list[tuple[int, str]] = []
    if slow.shape[0]:
        starts = wire.line_starts(buf)
        parts = [(int(k), body[int(starts[k]) : int(starts[k + 1]) - 1]) for k in slow.tolist()]
        more, broken = _read_lines(parts, mapping, server_node, limits, cache)
        if more.lines.shape[0]:
            table = cache.table()
            order = np.argsort(np.concatenate([lines, more.lines]), kind="stable")
            lines = np.concatenate([lines, more.lines])[order]
            ids = np.concatenate([ids, more.ids])[order]
            value = np.concatenate([value, more.value])[order]
            stamp = np.concatenate([stamp, more.stamp])[order]

    def where(i: int) -> str:
        return f"line {int(lines[i]) + first_line}"

    decoded = wire.validate_points(table, ids, stamp, value, limits, mapping, where)
    if not broken:
        return decoded
    first = int(value.shape[0])  # broken lines are numbered after the parsed points
    return _with_broken(decoded, broken, first, first_line, limits.max_errors)


def decode_graphite_reference(
    body: bytes, mapping: LabelMapping, server_node: int, limits: Limits, first_line: int = 1
) -> Decoded:
    """``decode_graphite`` a line at a time in Python: the reference the scanner is tested
    against."""
    cache = series_cache(mapping, server_node)
    parts = list(enumerate(body.split(b"\n")))
    points, broken = _read_lines(parts, mapping, server_node, limits, cache)

    def where(i: int) -> str:
        return f"line {int(points.lines[i]) + first_line}"

    decoded = wire.validate_points(
        cache.table(), points.ids, points.stamp, points.value, limits, mapping, where
    )
    if not broken:
        return decoded
    first = int(points.value.shape[0])
    return _with_broken(decoded, broken, first, first_line, limits.max_errors)


def _with_broken(
    decoded: Decoded, broken: list[tuple[int, str]], first: int, first_line: int, max_errors: int
) -> Decoded:
    """``decoded`` with the lines that did not parse rejected too, numbered from ``first``."""
    errors = [
        PointError(first + k, f"line {n + first_line}: {why}", MALFORMED)
        for k, (n, why) in enumerate(broken[:max_errors])
    ]
    return decoded.rejecting(errors, len(broken), MALFORMED, max_errors)


@dataclass(frozen=True, slots=True)
class _Points:
    lines: npt.NDArray[np.int64]  #: 0-based line of each point
    ids: npt.NDArray[np.int32]
    value: npt.NDArray[np.float64]
    stamp: npt.NDArray[np.float64]


def _read_lines(
    parts: list[tuple[int, bytes]],
    mapping: LabelMapping,
    server_node: int,
    limits: Limits,
    cache: SeriesCache,
) -> tuple[_Points, list[tuple[int, str]]]:
    """The points of ``(line index, line)`` pairs, read one by one, and the broken lines."""
    numbers: dict[bytes, int] = {}
    ids: list[int] = []
    values: list[float] = []
    stamps: list[float] = []
    lines: list[int] = []
    broken: list[tuple[int, str]] = []
    for number, line in parts:
        fields = line.split()
        if not fields:
            continue
        try:
            if len(fields) not in (2, 3):
                raise ValueError
            value = float(fields[1])
            stamp = float(fields[2]) if len(fields) == 3 else -1.0
            n = numbers.get(fields[0])
            if n is None:
                n = numbers[fields[0]] = cache.add(
                    _series(fields[0].decode(), mapping, server_node)
                )
        except _PathError as e:
            broken.append((number, str(e)))
            continue
        except ValueError:  # a bad number, a path that is not UTF-8
            broken.append((number, f"expected '<path> <number> [<timestamp>]': {line[:80]!r}"))
            continue
        ids.append(n)
        values.append(value)
        stamps.append(limits.now if stamp == -1 else stamp)
        lines.append(number)
    points = _Points(
        np.array(lines, dtype=np.int64),
        np.array(ids, dtype=np.int32),
        np.array(values, dtype=np.float64),
        np.array(stamps, dtype=np.float64),
    )
    return points, broken


@numba.njit(nogil=True, cache=True)
def _scan(buf: Any, now: float) -> Any:
    """Per point of a plain line: its line (0-based), its path's span (as ``wire`` keys are:
    start, end, end, end), its numbers' spans (value start, end, time start, end), the
    path's hash, value, time, and which of them Python must round (bit 1 value, bit 2
    time); and the lines left to the reference loop."""
    n = buf.shape[0]
    cap = 1
    for i in range(n):
        if buf[i] == 10:
            cap += 1
    lines = np.empty(cap, np.int64)
    spans = np.empty((cap, 4), np.int64)
    numbers = np.empty((cap, 4), np.int64)
    hashes = np.empty(cap, np.uint64)
    value = np.empty(cap, np.float64)
    stamp = np.empty(cap, np.float64)
    hard = np.zeros(cap, np.int8)
    slow = np.empty(cap, np.int64)
    starts = np.empty(4, np.int64)
    ends = np.empty(4, np.int64)
    points = 0
    slows = 0
    line = 0
    i = 0
    while i <= n:
        end = i
        while end < n and buf[end] != 10:
            end += 1
        tokens = 0
        j = i
        while j < end and tokens < 4:
            while j < end and wire.space(buf[j]):
                j += 1
            if j == end:
                break
            starts[tokens] = j
            while j < end and not wire.space(buf[j]):
                j += 1
            ends[tokens] = j
            tokens += 1
        if tokens == 2 or tokens == 3:
            kind, v = wire.decimal(buf, starts[1], ends[1])
            t = now
            t_kind = wire.EXACT
            if tokens == 3:
                t_kind, t = wire.decimal(buf, starts[2], ends[2])
                if t == -1.0:
                    t = now
            if kind == wire.NOT_DECIMAL or t_kind == wire.NOT_DECIMAL:
                slow[slows] = line
                slows += 1
            else:
                lines[points] = line
                spans[points, 0] = starts[0]
                spans[points, 1] = ends[0]
                spans[points, 2] = ends[0]
                spans[points, 3] = ends[0]
                numbers[points, 0] = starts[1]
                numbers[points, 1] = ends[1]
                numbers[points, 2] = starts[2]
                numbers[points, 3] = ends[2]
                hashes[points] = wire.fnv(buf, starts[0], ends[0], wire.FNV_OFFSET)
                value[points] = v
                stamp[points] = t
                hard[points] = (1 if kind == wire.HARD else 0) + (2 if t_kind == wire.HARD else 0)
                points += 1
        elif tokens != 0:
            slow[slows] = line
            slows += 1
        line += 1
        i = end + 1
    return (
        lines[:points],
        spans[:points],
        numbers[:points],
        hashes[:points],
        value[:points],
        stamp[:points],
        hard[:points],
        slow[:slows],
    )


class _PathError(ValueError):
    pass


def _series(path: str, mapping: LabelMapping, server_node: int) -> tuple[str | None, str]:
    name, *tag_parts = path.split(";")
    tags: dict[str, str] = {}
    for part in tag_parts:
        key, eq, value = part.partition("=")
        if not eq or not key:
            msg = f"tag {part!r} is not key=value"
            raise _PathError(msg)
        tags[key] = value
    if server_node < 0:
        return mapping.resolve(name, tags)
    nodes = name.split(".")
    if server_node >= len(nodes) - 1:
        msg = f"path {name!r} has no node {server_node} before its metric (graphite_server_node)"
        raise _PathError(msg)
    server = nodes.pop(server_node)
    _, metric = LabelMapping(server_labels=(), default_server=server).resolve(".".join(nodes), tags)
    return server, metric
