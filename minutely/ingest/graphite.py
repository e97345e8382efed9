"""Graphite's plaintext protocol: ``<path> <value> [<timestamp>]`` a line, points out.

    servers.web-1.cpu.user 12.5 1764000000
    cpu.user;host=web-1;core=0 12.5 1764000000          (Graphite 1.1's tagged form)

The server is the path's node number ``server_node`` (0-based; collectd's
``collectd.<host>.…`` is node 1) when that is set, taken out of the path; else it comes from
the tags through ``labels.py`` (``;host=web-1``). The metric is the rest of the path with the
remaining tags as labels. A timestamp of ``-1`` or none takes the server's clock, as carbon
does. A line that cannot be parsed rejects its point, named by line number.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from minutely.ingest.labels import LabelMapping
from minutely.ingest.series import Limits, SeriesIndex
from minutely.ingest.validate import Decoded, PointError


def decode_graphite(
    body: bytes, mapping: LabelMapping, server_node: int, limits: Limits, first_line: int = 1
) -> Decoded:
    """Decode plaintext lines (``first_line`` numbers the first, for a stream's reasons)."""
    index = SeriesIndex(mapping)
    numbers: dict[bytes, int] = {}
    series: list[int] = []
    values: list[float] = []
    stamps: list[float] = []
    lines: list[int] = []
    broken: list[tuple[int, str]] = []
    for number, line in enumerate(body.split(b"\n"), first_line):
        parts = line.split()
        if not parts:
            continue
        try:
            if len(parts) not in (2, 3):
                raise ValueError
            value = float(parts[1])
            stamp = float(parts[2]) if len(parts) == 3 else -1.0
            n = numbers.get(parts[0])
            if n is None:
                server, metric = _series(parts[0].decode(), mapping, server_node)
                n = numbers[parts[0]] = index.add_resolved(server, metric)
        except _PathError as e:
            broken.append((number, str(e)))
            continue
        except ValueError:  # a bad number, a path that is not UTF-8
            broken.append((number, f"expected '<path> <number> [<timestamp>]': {line[:80]!r}"))
            continue
        series.append(n)
        values.append(value)
        stamps.append(limits.now if stamp == -1 else stamp)
        lines.append(number)

    def where(i: int) -> str:
        return f"line {lines[i]}"

    decoded = index.validate(
        np.array(series, dtype=np.int32),
        np.array(stamps, dtype=np.float64),
        np.array(values, dtype=np.float64),
        limits,
        where,
    )
    if not broken:
        return decoded
    first = len(values)  # broken lines are numbered after the parsed points
    errors = list(decoded.errors)
    errors += [PointError(first + k, f"line {n}: {why}") for k, (n, why) in enumerate(broken)]
    return replace(
        decoded, rejected=decoded.rejected + len(broken), errors=errors[: limits.max_errors]
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
