"""The accept rules every decoder shares, and the shapes a decode returns.

Owns ``PointError`` and ``Decoded`` (re-exported by ``minutely.ingest``) and ``validate``,
which turns decoded columns into a ``Decoded``. A decoder's only job is to get a request into
four columns (two dictionary-encoded name columns, two float64 columns with a "present"
mask); the rules live here, once:

    accepted  iff  server and metric are names (``name_problems``: not empty, not only
                   spaces, not "." or "..", no control character, valid Unicode, at most
                   ``max_name_bytes`` UTF-8 bytes),
                   ts is a finite number with  oldest <= ts <= now + max_future,
                   value is a finite number with  |value| <= MAX_MAGNITUDE.

The masks are computed with numpy over whole columns. Reason strings are built in Python, but
only for the first ``max_errors`` rejected points: a request of a million bad points costs a
handful of vector operations and ``max_errors`` f-strings. Each rejected point gets one reason,
for the first field that fails, in the order server, metric, ts, value, and beside it one of
the short codes of ``REASONS`` (``PointError.code``), which every rejected point is also
counted by (``Decoded.reasons``, whose codes ``/metrics`` labels ``reason`` with).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from minutely.model import F64, I32, PointBatch

Mask = npt.NDArray[np.bool_]
Problems = npt.NDArray[np.int8]
#: a request body as the decoders take it: bytes, or the bytearray the server reads a body into
Body = bytes | bytearray

#: The longest name accepted by default, in UTF-8 bytes: a name rides in every answer that
#: lists it, so a long one costs every reader (``Settings.max_name_bytes`` overrides it).
MAX_NAME_BYTES = 256

#: What ``name_problems`` finds wrong with a name (0: nothing), in the order it checks.
NAME_OK, NAME_EMPTY, NAME_LONG, NAME_SURROGATE, NAME_CONTROL, NAME_BLANK, NAME_DOTS = range(7)
#: The limits a name can break, as refusals are counted (``limits.Refusals``): its length
#: (a setting) and its characters (surrogate, control, blank, "." or ".."; no setting).
NAME_LIMITS = {NAME_LONG: "max_name_bytes"} | dict.fromkeys(
    (NAME_SURROGATE, NAME_CONTROL, NAME_BLANK, NAME_DOTS), "name_characters"
)
#: Code points that are whitespace but not control characters: a name of only these is blank.
_SPACES = np.array(
    [0x20, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000], dtype=np.uint32
)

#: The largest accepted magnitude of a value: a sum of up to 2^64 of them (a multi-year
#: summary's count) stays below float64's largest number, so no sum ever overflows.
MAX_MAGNITUDE = 1e288

#: Why a point is rejected, in one word each: a fixed set (``/metrics``' ``reason`` label).
REASONS = (
    "server_missing",  # no server name; for a protocol, none of its server labels
    "metric_missing",  # no metric name
    "name_too_long",  # a name over max_name_bytes
    "name_chars",  # a control character, a lone surrogate, only spaces, "." or ".."
    "bad_time",  # ts missing, not a number or not finite
    "too_old",  # ts older than the oldest accepted (the hot window, or retention)
    "too_new",  # ts more than max_future ahead of the server's clock
    "bad_value",  # value missing, not a number (a string, a boolean...) or not finite
    "value_too_large",  # |value| over MAX_MAGNITUDE
    "unsupported",  # a kind of point minutely does not keep (histograms, summaries)
    "malformed",  # a line that does not parse (Influx, Graphite), a record with no field
)
(
    SERVER_MISSING,
    METRIC_MISSING,
    NAME_TOO_LONG,
    NAME_CHARS,
    BAD_TIME,
    TOO_OLD,
    TOO_NEW,
    BAD_VALUE,
    VALUE_TOO_LARGE,
    UNSUPPORTED,
    MALFORMED,
) = REASONS
#: each ``name_problems`` problem's code (NAME_EMPTY: the field's own ``*_missing``)
_NAME_REASONS = np.array(
    [-1, -1, REASONS.index(NAME_TOO_LONG), *[REASONS.index(NAME_CHARS)] * 4], dtype=np.int8
)

#: ``explain(field, index)``: a decoder's own reason for a point whose ``field`` is unusable
#: (not a string, not a number, not an object...), or None for the generic reason.
Explain = Callable[[str, int], str | None]


@dataclass(frozen=True, slots=True)
class PointError:
    """Why one point of a request was rejected."""

    index: int  #: position of the point in the request (0-based, across Arrow record batches)
    reason: str  #: names the field and what is wrong with it, e.g. "value: not finite (nan)"
    code: str  #: the reason in one word, one of ``REASONS``: "bad_value"


@dataclass(frozen=True, slots=True)
class Decoded:
    """The good points of a request, and why the others were rejected."""

    batch: PointBatch  #: only the accepted points
    accepted: int  #: == len(batch)
    rejected: int  #: every rejected point, listed in ``errors`` or not
    errors: list[PointError]  #: the first ``max_errors`` rejected points, in index order
    #: metric (family) name -> "counter" or "gauge", as the protocol declared it
    kinds: dict[str, str] = dataclasses.field(default_factory=dict)
    #: of ``rejected``, the points a name limit rejected, by limit (``NAME_LIMITS``)
    by_limit: dict[str, int] = dataclasses.field(default_factory=dict)
    #: every rejected point (listed or not) counted by its code (``REASONS``)
    reasons: dict[str, int] = dataclasses.field(default_factory=dict)

    def rejecting(
        self, more: list[PointError], counted: int, code: str, max_errors: int
    ) -> Decoded:
        """With ``counted`` more points rejected for ``code`` (a decoder's own: a line that
        does not parse, a histogram), ``more`` of them listed; errors kept in index order."""
        errors = sorted([*self.errors, *more], key=lambda e: e.index)[:max_errors]
        reasons = dict(self.reasons)
        reasons[code] = reasons.get(code, 0) + counted
        return dataclasses.replace(
            self, rejected=self.rejected + counted, errors=errors, reasons=reasons
        )


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
    max_name_bytes: int = MAX_NAME_BYTES,
) -> Decoded:
    """Apply the accept rules to decoded columns: keep the good points, explain the bad."""
    latest = now + max_future
    server_problems = name_problems(server.names, max_name_bytes)
    metric_problems = name_problems(metric.names, max_name_bytes)
    server_ok, server_usable = _usable(server, server_problems)
    metric_ok, metric_usable = _usable(metric, metric_problems)
    ts_ok = ts.present & np.isfinite(ts.values) & (ts.values >= oldest) & (ts.values <= latest)
    value_ok = value.present & (np.abs(value.values) <= MAX_MAGNITUDE)  # False for nan, inf
    good = server_ok & metric_ok & ts_ok & value_ok
    n = int(good.shape[0])

    if bool(good.all()):
        batch = _batch(server, server_usable, metric, metric_usable, ts, value, None)
        return Decoded(batch, n, 0, [])

    bad = np.flatnonzero(~good)
    codes = _codes(
        bad,
        server_ok,
        server,
        server_problems,
        metric_ok,
        metric,
        metric_problems,
        ts,
        value,
        oldest,
        latest,
    )
    limit = max(0, max_errors)
    errors = [
        PointError(
            int(i),
            _reason(
                int(i),
                _NameCheck(server, server_problems, server_ok, max_name_bytes),
                _NameCheck(metric, metric_problems, metric_ok, max_name_bytes),
                ts,
                value,
                oldest,
                latest,
                max_future,
                explain,
                horizon,
            ),
            REASONS[code],
        )
        for i, code in zip(bad[:limit].tolist(), codes[:limit].tolist(), strict=True)
    ]
    batch = _batch(server, server_usable, metric, metric_usable, ts, value, good)
    by_limit = _by_limit(server, server_problems, metric, metric_problems)
    counted = np.bincount(codes, minlength=len(REASONS))
    reasons = {REASONS[k]: int(n) for k, n in enumerate(counted.tolist()) if n}
    return Decoded(batch, len(batch), int(bad.shape[0]), errors, by_limit=by_limit, reasons=reasons)


def _by_limit(
    server: Names, server_problems: Problems, metric: Names, metric_problems: Problems
) -> dict[str, int]:
    """Points rejected by a name limit, by limit: a point counts once, for its server's
    problem if it has one, else its metric's (the order its reason is given in)."""
    ok = np.int8(NAME_OK)
    per_point = np.append(server_problems, ok)[server.codes]  # code -1 (missing): no limit
    of_metric = np.append(metric_problems, ok)[metric.codes]
    per_point = np.where(per_point == NAME_OK, of_metric, per_point)
    counts = np.bincount(per_point, minlength=NAME_DOTS + 1)
    out: dict[str, int] = {}
    for problem, limit in NAME_LIMITS.items():
        if counts[problem]:
            out[limit] = out.get(limit, 0) + int(counts[problem])
    return out


def _codes(
    bad: npt.NDArray[np.intp],
    server_ok: Mask,
    server: Names,
    server_problems: Problems,
    metric_ok: Mask,
    metric: Names,
    metric_problems: Problems,
    ts: Numbers,
    value: Numbers,
    oldest: float,
    latest: float,
) -> npt.NDArray[np.int8]:
    """The code (an index of ``REASONS``) of each of the ``bad`` points, for its first failing
    field as ``_reason`` says it: the rules in reverse order over whole columns, each
    overwriting the ones after it."""
    v, t = value.values[bad], ts.values[bad]
    out = np.full(bad.shape[0], REASONS.index(VALUE_TOO_LARGE), dtype=np.int8)
    with np.errstate(invalid="ignore"):
        out[~value.present[bad] | ~np.isfinite(v)] = REASONS.index(BAD_VALUE)
        out[t > latest] = REASONS.index(TOO_NEW)
        out[t < oldest] = REASONS.index(TOO_OLD)
    out[~ts.present[bad] | ~np.isfinite(t)] = REASONS.index(BAD_TIME)
    for ok, column, problems, missing in (
        (metric_ok, metric, metric_problems, METRIC_MISSING),
        (server_ok, server, server_problems, SERVER_MISSING),
    ):
        broken = ~ok[bad]
        if broken.any():
            # a missing name (code -1) reads the appended NAME_EMPTY
            problem = np.append(problems, NAME_EMPTY)[column.codes[bad[broken]]]
            code = _NAME_REASONS[problem]
            out[broken] = np.where(code < 0, REASONS.index(missing), code)
    # a record with none of the fields (a JSON element that is not an object, say)
    nothing = (server.codes[bad] < 0) & (metric.codes[bad] < 0)
    nothing &= ~ts.present[bad] & ~value.present[bad]
    out[nothing] = REASONS.index(MALFORMED)
    return out


def name_problems(names: npt.NDArray[np.object_], max_bytes: int) -> Problems:
    """Per distinct name, what is wrong with it (``NAME_OK`` for a good one): every protocol's
    names pass here, so every accepted name can be read back through every route.

    Vectorised over the names' code points: the names are joined once and encoded as ASCII
    (the common case) or UTF-32, and each rule is a numpy pass with per-name sums taken from
    a cumulative sum at the names' boundaries."""
    n = int(names.shape[0])
    out = np.zeros(n, dtype=np.int8)
    if n == 0:
        return out
    lengths = np.fromiter(map(len, names), dtype=np.int64, count=n)
    joined = "".join(names.tolist())
    if joined.isascii():
        points = np.frombuffer(joined.encode("ascii"), dtype=np.uint8).astype(np.uint32)
        nbytes = lengths
    else:
        points = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        width = 1 + (points >= 0x80) + (points >= 0x800) + (points >= 0x10000)
        nbytes = _per_name(width, lengths)
    control = (points < 0x20) | ((points >= 0x7F) & (points < 0xA0))
    control |= (points == 0x2028) | (points == 0x2029)  # line and paragraph separators
    surrogate = (points >= 0xD800) & (points < 0xE000)
    spaces = np.isin(points, _SPACES)
    dots = (names == ".") | (names == "..")
    # later rules first, so each name keeps the first rule it breaks
    out[dots] = NAME_DOTS
    out[(_per_name(spaces, lengths) == lengths) & (lengths > 0)] = NAME_BLANK
    out[_per_name(control, lengths) > 0] = NAME_CONTROL
    out[_per_name(surrogate, lengths) > 0] = NAME_SURROGATE
    out[nbytes > max_bytes] = NAME_LONG
    out[lengths == 0] = NAME_EMPTY
    return out


def _per_name(
    flags: npt.NDArray[np.integer] | Mask, lengths: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """The sum of ``flags`` over each name's code points (names laid end to end)."""
    total = np.zeros(flags.shape[0] + 1, dtype=np.int64)
    np.cumsum(flags, out=total[1:])
    ends = np.cumsum(lengths)
    sums: npt.NDArray[np.int64] = total[ends] - total[ends - lengths]
    return sums


def name_reason(name: str, problem: int, max_bytes: int) -> str:
    """Why ``name`` is refused, for a ``problem`` of ``name_problems`` other than ``NAME_OK``."""
    if problem == NAME_EMPTY:
        return "missing or empty"
    if problem == NAME_LONG:
        size = len(name.encode("utf-8", "surrogatepass"))
        return f"name of {size} bytes is over the limit of {max_bytes} bytes (max_name_bytes)"
    if problem == NAME_SURROGATE:
        return "name is not valid Unicode (it holds a lone surrogate)"
    if problem == NAME_CONTROL:
        at, char = next((k, c) for k, c in enumerate(name) if _is_control(c))
        return f"name holds control character U+{ord(char):04X} at character {at}"
    if problem == NAME_BLANK:
        return "name is only spaces"
    return f"{name!r} is not a name (it would be a path segment of its own)"


def _is_control(c: str) -> bool:
    o = ord(c)
    return o < 0x20 or 0x7F <= o < 0xA0 or o in (0x2028, 0x2029)


@dataclass(frozen=True, slots=True)
class _NameCheck:
    """One name column with what was found wrong with its names, for reasons."""

    column: Names
    problems: Problems
    ok: Mask
    max_bytes: int

    def reason(self, i: int) -> str | None:
        """The rule point ``i``'s name breaks; None when it is missing (the decoder's to say)."""
        code = int(self.column.codes[i])
        if code < 0 or self.problems[code] == NAME_EMPTY:
            return None
        return name_reason(self.column.names[code], int(self.problems[code]), self.max_bytes)


def _usable(column: Names, problems: Problems) -> tuple[Mask, Mask]:
    """Per point: is the name usable; per distinct name: is it usable (``NAME_OK``)."""
    usable: Mask = np.asarray(problems == NAME_OK, dtype=np.bool_).reshape(-1)
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
    """The kept points' codes, with unusable names dropped from the name array so
    nothing downstream interns them. Kept points never reference an unusable name."""
    codes = column.codes if keep is None else column.codes[keep]
    if bool(usable.all()):
        return column.names, codes
    new_code = (np.cumsum(usable, dtype=np.int32) - 1).astype(np.int32)
    return column.names[usable], new_code[codes]


def _reason(
    i: int,
    server: _NameCheck,
    metric: _NameCheck,
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

    for field, names in (("server", server), ("metric", metric)):
        if not names.ok[i]:
            broken = names.reason(i)
            return why(field, "missing or empty") if broken is None else f"{field}: {broken}"
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
