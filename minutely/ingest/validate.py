"""The accept rules every decoder shares, and the shapes a decode returns.

Owns ``PointError`` and ``Decoded`` (re-exported by ``minutely.ingest``) and ``validate``,
which turns decoded columns into a ``Decoded``. A decoder's only job is to get a request into
four columns (two dictionary-encoded name columns, two float64 columns with a "present"
mask); the rules live here, once:

    accepted  iff  server and metric are non-empty strings,
                   ts is a finite number with  oldest <= ts <= now + max_future,
                   value is a finite number with  |value| <= MAX_MAGNITUDE.

The masks are computed with numpy over whole columns. Reason strings are built in Python, but
only for the first ``max_errors`` rejected points: a request of a million bad points costs a
handful of vector operations and ``max_errors`` f-strings. Each rejected point gets one reason,
for the first field that fails, in the order server, metric, ts, value.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from minutely.model import F64, I32, PointBatch

Mask = npt.NDArray[np.bool_]

#: The largest accepted magnitude of a value: a sum of up to 2^64 of them (a multi-year
#: summary's count) stays below float64's largest number, so no sum ever overflows.
MAX_MAGNITUDE = 1e288

#: ``explain(field, index)``: a decoder's own reason for a point whose ``field`` is unusable
#: (not a string, not a number, not an object...), or None for the generic reason.
Explain = Callable[[str, int], str | None]


@dataclass(frozen=True, slots=True)
class PointError:
    """Why one point of a request was rejected."""

    index: int  #: position of the point in the request (0-based, across Arrow record batches)
    reason: str  #: names the field and what is wrong with it, e.g. "value: not finite (nan)"


@dataclass(frozen=True, slots=True)
class Decoded:
    """The good points of a request, and why the others were rejected."""

    batch: PointBatch  #: only the accepted points
    accepted: int  #: == len(batch)
    rejected: int  #: every rejected point, listed in ``errors`` or not
    errors: list[PointError]  #: the first ``max_errors`` rejected points, in index order


@dataclass(frozen=True, slots=True)
class Names:
    """A dictionary-encoded name column.

    ``names`` holds distinct ``str`` values; ``codes`` has one entry per point, -1 where the
    name is missing (null, absent, not a string). Empty strings may be in ``names``: they are
    rejected here, not by the decoder.
    """

    names: npt.NDArray[np.object_]
    codes: I32


@dataclass(frozen=True, slots=True)
class Numbers:
    """A numeric column as float64; ``present`` is False where it is missing or not a number
    (``values`` there is ignored)."""

    values: F64
    present: Mask


def validate(
    server: Names,
    metric: Names,
    ts: Numbers,
    value: Numbers,
    *,
    now: float,
    oldest: float,
    max_future: float,
    max_errors: int,
    explain: Explain | None = None,
    horizon: str = "the hot window",
) -> Decoded:
    """Apply the accept rules to decoded columns: keep the good points, explain the bad."""
    latest = now + max_future
    server_ok, server_usable = _usable(server)
    metric_ok, metric_usable = _usable(metric)
    ts_ok = ts.present & np.isfinite(ts.values) & (ts.values >= oldest) & (ts.values <= latest)
    value_ok = value.present & (np.abs(value.values) <= MAX_MAGNITUDE)  # False for nan, inf
    good = server_ok & metric_ok & ts_ok & value_ok
    n = int(good.shape[0])

    if bool(good.all()):
        batch = _batch(server, server_usable, metric, metric_usable, ts, value, None)
        return Decoded(batch, n, 0, [])

    bad = np.flatnonzero(~good)
    errors = [
        PointError(
            int(i),
            _reason(
                int(i),
                server_ok,
                metric_ok,
                ts,
                value,
                oldest,
                latest,
                max_future,
                explain,
                horizon,
            ),
        )
        for i in bad[: max(0, max_errors)]
    ]
    batch = _batch(server, server_usable, metric, metric_usable, ts, value, good)
    return Decoded(batch, len(batch), int(bad.shape[0]), errors)


def _usable(column: Names) -> tuple[Mask, Mask]:
    """Per point: is the name usable; per distinct name: is it usable (non-empty)."""
    usable: Mask = np.asarray(column.names != "", dtype=np.bool_).reshape(-1)
    if bool(usable.all()) and (column.codes.size == 0 or int(column.codes.min()) >= 0):
        return np.ones(column.codes.shape[0], dtype=np.bool_), usable  # the common case
    # A trailing False makes code -1 (missing) index a "not usable" slot: one gather, no branch.
    per_point: Mask = np.append(usable, False)[column.codes]
    return per_point, usable


def _batch(
    server: Names,
    server_usable: Mask,
    metric: Names,
    metric_usable: Mask,
    ts: Numbers,
    value: Numbers,
    keep: Mask | None,
) -> PointBatch:
    s_names, s_codes = _compact(server, server_usable, keep)
    m_names, m_codes = _compact(metric, metric_usable, keep)
    if keep is None:
        return PointBatch(s_names, s_codes, m_names, m_codes, ts.values, value.values)
    return PointBatch(s_names, s_codes, m_names, m_codes, ts.values[keep], value.values[keep])


def _compact(column: Names, usable: Mask, keep: Mask | None) -> tuple[npt.NDArray[np.object_], I32]:
    """The kept points' codes, with unusable names (``""``) dropped from the name array so
    nothing downstream interns them. Kept points never reference an unusable name."""
    codes = column.codes if keep is None else column.codes[keep]
    if bool(usable.all()):
        return column.names, codes
    new_code = (np.cumsum(usable, dtype=np.int32) - 1).astype(np.int32)
    return column.names[usable], new_code[codes]


def _reason(
    i: int,
    server_ok: Mask,
    metric_ok: Mask,
    ts: Numbers,
    value: Numbers,
    oldest: float,
    latest: float,
    max_future: float,
    explain: Explain | None,
    horizon: str,
) -> str:
    """The reason for the first failing field of point ``i`` (which is known to be bad)."""

    def why(field: str, default: str) -> str:
        own = explain(field, i) if explain is not None else None
        return own if own is not None else f"{field}: {default}"

    if not server_ok[i]:
        return why("server", "missing or empty")
    if not metric_ok[i]:
        return why("metric", "missing or empty")
    if not ts.present[i]:
        return why("ts", "missing")
    t = float(ts.values[i])
    if not math.isfinite(t):
        return f"ts: not finite ({format_number(t)})"
    if t < oldest:
        return (
            f"ts: {format_number(t)} is older than {horizon} "
            f"(oldest accepted {format_number(oldest)})"
        )
    if t > latest:
        ahead = format_number(max_future)
        return f"ts: {format_number(t)} is more than {ahead}s ahead of the server clock"
    if not value.present[i]:
        return why("value", "missing")
    v = float(value.values[i])
    if not math.isfinite(v):
        return f"value: not finite ({format_number(v)})"
    bound = format_number(MAX_MAGNITUDE)
    return f"value: magnitude {format_number(v)} exceeds {bound} (sums would overflow)"


def format_number(x: float) -> str:
    """``1764000000`` for integral floats, ``repr`` otherwise (``12.5``, ``nan``, ``-inf``)."""
    x = float(x)  # callers may pass an int despite the annotation
    if math.isfinite(x) and x.is_integer() and abs(x) < 1e16:
        return str(int(x))
    return repr(x)
