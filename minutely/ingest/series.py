"""What the protocol decoders share: the validation limits they are called with, and the
distinct series of one request turned into ``validate``'s columns.

A protocol names a series once (labels, tags, attributes) and gives it many points; so a
decoder resolves each distinct series to (server, metric) once, through ``labels``, and
gives every point only a series number. ``SeriesIndex.validate`` then gathers the name
columns with one numpy take and runs the shared accept rules:

    series number per point ──take──► server code, metric code per point ──► validate()
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import numpy.typing as npt

from minutely.ingest.labels import LabelMapping
from minutely.ingest.validate import (
    MAX_NAME_BYTES,
    Decoded,
    Names,
    Numbers,
    validate,
)
from minutely.model import F64


@dataclass(frozen=True, slots=True)
class Limits:
    """What a node tells a decoder: its clock and the accept window (``validate``'s rules)."""

    now: float
    oldest: float
    max_future: float
    max_errors: int = 100
    horizon: str = "the hot window"
    max_name_bytes: int = MAX_NAME_BYTES


class Decoder(Protocol):
    """One request's decode: called by the node with its limits, on a worker thread."""

    def __call__(self, limits: Limits) -> Decoded: ...


class SeriesIndex:
    """The distinct series of one request, each resolved to (server, metric) once."""

    def __init__(self, mapping: LabelMapping) -> None:
        self.mapping = mapping
        self._servers: dict[str, int] = {}
        self._metrics: dict[str, int] = {}
        self._server_of: list[int] = []  # per series: server code, -1 for none
        self._metric_of: list[int] = []
        self.names: list[str] = []  # per series: its metric name, for reasons

    def __len__(self) -> int:
        return len(self._metric_of)

    def add(self, name: str, labels: Mapping[str, str]) -> int:
        """A new series (the caller dedupes); returns its number."""
        server, metric = self.mapping.resolve(name, labels)
        return self.add_resolved(server, metric)

    def add_resolved(self, server: str | None, metric: str) -> int:
        s = -1 if server is None else self._servers.setdefault(server, len(self._servers))
        m = self._metrics.setdefault(metric, len(self._metrics))
        self._server_of.append(s)
        self._metric_of.append(m)
        self.names.append(metric)
        return len(self._metric_of) - 1

    def validate(
        self,
        series: npt.NDArray[np.integer],
        ts: F64,
        value: F64,
        limits: Limits,
        where: Callable[[int], str] | None = None,
        present: npt.NDArray[np.bool_] | None = None,
        explain_value: Callable[[int], str | None] | None = None,
    ) -> Decoded:
        """Validate points given by series number, time (seconds) and value.

        ``where(i)`` says where point ``i`` was in the request (``"line 3"``), prefixed to its
        reason; ``present`` False marks a value the decoder could not use, which
        ``explain_value(i)`` explains (a string field, a histogram...)."""
        server_of = np.asarray(self._server_of, dtype=np.int32)
        metric_of = np.asarray(self._metric_of, dtype=np.int32)
        server = Names(_names(self._servers), server_of[series] if len(series) else _none())
        metric = Names(_names(self._metrics), metric_of[series] if len(series) else _none())
        return validate_named(
            server, metric, ts, value, limits, self.mapping, where, present, explain_value
        )


def _names(table: dict[str, int]) -> npt.NDArray[np.object_]:
    names = np.empty(len(table), dtype=object)
    names[:] = list(table)
    return names


def _none() -> npt.NDArray[np.int32]:
    return np.zeros(0, dtype=np.int32)


def validate_named(
    server: Names,
    metric: Names,
    ts: F64,
    value: F64,
    limits: Limits,
    mapping: LabelMapping,
    where: Callable[[int], str] | None = None,
    present: npt.NDArray[np.bool_] | None = None,
    explain_value: Callable[[int], str | None] | None = None,
) -> Decoded:
    """Validate points whose server and metric names are given, as every protocol does:
    ``where(i)`` prefixes point ``i``'s reason, ``present`` False marks a value the decoder
    could not use, which ``explain_value(i)`` explains."""
    n = len(ts)
    ok = np.ones(n, dtype=np.bool_) if present is None else present
    missing = mapping.missing_server()

    def explain(field: str, i: int) -> str | None:
        if field == "server":
            return missing
        if field == "value" and explain_value is not None:
            return explain_value(i)
        return None

    decoded = validate(
        server,
        metric,
        Numbers(ts, np.ones(n, dtype=np.bool_)),
        Numbers(value, ok),
        now=limits.now,
        oldest=limits.oldest,
        max_future=limits.max_future,
        max_errors=limits.max_errors,
        explain=explain,
        horizon=limits.horizon,
        max_name_bytes=limits.max_name_bytes,
    )
    if where is None or not decoded.errors:
        return decoded
    errors = [replace(e, reason=f"{where(e.index)}: {e.reason}") for e in decoded.errors]
    return replace(decoded, errors=errors)
