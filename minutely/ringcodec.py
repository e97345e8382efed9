"""Bit-exact compression of closed blocks of minute partials, many series per call.

A block is ``n`` consecutive minutes of one series: ``min``, ``max``, ``sum`` (float64) and
``count`` (uint32). Every entry with ``count > 0`` comes back bit for bit (±0, subnormals,
±1e308, inf, NaN, full-precision values); an entry with ``count == 0`` comes back with
``count == 0`` (its other fields are undefined, as everywhere in the ring). ``encode`` takes
a ``(series, n)`` block and writes one blob per series into one byte buffer; ``decode``
takes any set of blobs (series × blocks) and merges them straight into the caller's bucket
arrays (``decode_blocks`` at step 1 may overwrite them instead, so they need no zeroing).
Both are compiled loops (numba, ``nogil``): no Python runs per blob, and a caller may split a
decode over threads.

Each blob has a format (kept beside it by the caller, one byte per blob)::

    EMPTY          no entry has data; no bytes
    DECIMAL        u8 e, u8 variant, [varint], streams X, M, Q, D, C
    DECIMAL_MINMAX u8 e, u8 variant, [varint], streams X, M, B(sum), C
    BITS           u8 0, u8 variant, streams B(max), M, B(sum), C

- ``e`` is the smallest number of decimals (0..``MAX_DECIMALS``) at which every minimum and
  maximum ``v`` of the blob is ``x / 10^e`` bit for bit, for ``x = rint(v · 10^e)``. Then
  ``X = max · 10^e`` and ``N = min · 10^e`` are integers and the minimum is stored relative
  to the maximum: ``M = X − N`` (variant bit 0 clear) or ``M = N[t] − X[t−1]`` (set; a
  counter's minute starts where the last one ended).
- A sum of decimals is rarely itself a decimal in float64, so it is predicted, not tested:
  ``S = rint(sum · 10^e)``, ``Q = S − (count · N + (count · (X − N)) >> 1)`` (a sum is near
  count × midpoint) and ``D = bits(sum) − bits(S / 10^e)``, the float accumulation's last-bit
  error, mostly 0. With variant bit ``SUM_AS_IS`` the stream holds ``S`` itself (an empty
  entry repeats the last full one's): a noisy gauge's sum is nearer its neighbours' than
  its minute's midpoint, and the stream's differences take it from there. A sum too large
  for int64 at ``10^e`` takes ``B(sum)``.
- With ``AROUND_MEAN`` (and ``SUM_AS_IS``), the max and min streams hold ``X − mean`` and
  ``N − mean``, the mean being ``S / count`` truncated (``S / 60`` for an empty entry): a
  noisy gauge's extremes sit around its mean, which its sum gives.
- Counters (variant bit ``MIN_AT_RATE``, decimal formats, with ``MIN_AFTER_MAX``): the
  minimum as ``N[t] − X[t−1] − (X[t] − X[t−1]) · 17 >> 10`` (a 60th of the max's climb: the
  second between minutes at 1 Hz). ``N[0] − X[0]`` goes as a varint after the variant byte
  and the stream's entry 0 repeats entry 1.
- ``B(v)`` is the raw 64-bit pattern as int64; ``BITS`` blobs keep the minimum as
  ``B(min)`` (variant bit 0 clear) or ``B(max) − B(min)`` (set).
- Empty entries repeat the previous entry's min and max (the first full one's when
  leading), with sum 0 in ``Q`` and the previous sum in ``B(sum)``: values that cost nothing.

A stream is ``n`` int64 values ``y``, stored as their differences of order ``k`` (0 to
``MAX_ORDER``: a counter's max climbs at a rate that itself follows waves), byte-aligned::

    u8 mode        bits 0..6: width w (0..64), or 65 + w (w ≤ 62) when a factor follows;
                   bit 7: a flags byte follows
    [u8 flags]     bits 0..1: k; bit 2: exceptions
    varint base    zigzag LEB128: the least value stored
    [varint g]     the factor: every value minus base is a multiple of g (memory in pages)
    [varints]      k of them: the first entry of the differences of each order below k,
                   which the decoder's running sums start from
    [varint e, u8 h]  exceptions only: how many, and their high bits' width
    packed         the ``n − k`` values' u = (v − base) / g, low w bits each, LSB first
    [exceptions]   each value with u ≥ 2^w: its index (as wide as n − k − 1 needs), then
                   each one's u >> w, h bits each

Exceptions are patched frame of reference: one outlier minute (a spike) no longer widens
the whole stream. The encoder takes, per stream, the order and width that make it
smallest. Integer arithmetic wraps, identically on both sides, so every transform is exact
whatever the magnitudes; a block picks its variant per blob, whichever is smaller. ``BITS``
is always valid, so every block encodes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numba
import numpy as np
import numpy.typing as npt
from llvmlite import ir  # type: ignore[import-untyped]
from numba.extending import intrinsic

from minutely.buckets import pointer_intrinsic
from minutely.model import F64, I64, U32, Partials

U8 = npt.NDArray[np.uint8]

EMPTY = 0
DECIMAL = 1
DECIMAL_MINMAX = 2
BITS = 3
#: variant bits: the min stored as ``N[t] − X[t−1]`` rather than ``X − N``
MIN_AFTER_MAX = 1
#: with ``MIN_AFTER_MAX``, less ``(X[t] − X[t−1]) · 17 >> 10``, about a 60th: the second
#: between two minutes of a counter sampled at 1 Hz (decimal formats)
MIN_AT_RATE = 4
#: the sum stored as ``S`` itself rather than ``Q`` (``DECIMAL``): a noisy gauge's sum is
#: nearer its neighbours' than its own minute's midpoint
SUM_AS_IS = 8
#: with ``SUM_AS_IS``, the max and the min stored less the minute's mean, ``S / count``
#: (truncated; ``S / 60`` for an empty entry): a noisy gauge's extremes sit around it
AROUND_MEAN = 16
#: decimals tried per blob; beyond about 12, float64 rarely holds a decimal exactly
MAX_DECIMALS = 12
#: bytes the decoder may read past a blob's end (it loads 9 bytes at a time)
PAD = 16

_POW10 = 10.0 ** np.arange(MAX_DECIMALS + 1)
#: ``1 / 10^e`` rounded to nearest, what ``_divide`` multiplies by
_INV10 = 1.0 / _POW10
#: ``|v · 10^e|`` below this converts to int64 without overflow
_FITS = float(2**62)


# -- bit and byte primitives (compiled inline into the kernels) ----------------------------


@numba.njit(inline="always", nogil=True, cache=True)
def _bits(v: float) -> np.int64:
    return np.float64(v).view(np.int64)


@numba.njit(inline="always", nogil=True, cache=True)
def _float(b: np.int64) -> float:
    return np.int64(b).view(np.float64)


def _fma_intrinsic(typingctx: Any, a: Any, b: Any, c: Any) -> Any:
    """``a · b + c`` rounded once (LLVM's fma, which vectorises)."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.fma(*args)

    f8 = numba.types.float64
    return f8(f8, f8, f8), codegen


_fma: Callable[..., float] = intrinsic(_fma_intrinsic)


@numba.njit(inline="always", nogil=True, cache=True)
def _divide(a: float, p: float, y: float) -> float:
    """``a / p`` rounded to nearest, bit for bit, for ``p = 10^e`` (1 ≤ ``e`` ≤ 20), ``y``
    the float64 nearest ``1 / p`` and ``a`` a whole number (not −0) below 2^63 in magnitude: a
    multiply and two fused multiply-adds, which vectorise at several times a division's rate.

    Why it is exact: ``q = a·y`` is within 2 ulps of ``a / p``, so ``q + r·y``, with the
    residual ``r = a − q·p``, is within 2^-50 ulp of it. No rounding boundary is that close
    to ``a / p``: a midpoint ``m = O·2^j`` between two float64 (``O`` odd, 54 bits) makes
    ``a − p·m`` a non-zero multiple of ``2^(e + j)`` (``p·m``'s odd part ``5^e·O`` is over
    53 bits, and ``a ≈ p·m`` is a multiple of ``2^(j + 3e)``), so ``|a / p − m|`` is at least
    ``2^j / 5^e``, over 2^-48 ulp. The last fused multiply-add's one rounding therefore lands
    where the exact quotient's does."""
    q = a * y
    r = _fma(-q, p, a)
    return _fma(r, y, q)


@numba.njit(nogil=True, cache=True)
def divide_pow10(a: F64, e: int) -> F64:
    """``a / 10^e`` for each whole number ``a`` (below 2^63 in magnitude) as the decoder
    rebuilds decimals (1 ≤ ``e`` ≤ ``MAX_DECIMALS``): bit for bit what ``a / 10.0**e`` gives."""
    p = _POW10[e]
    y = _INV10[e]
    out = np.empty_like(a)
    for k in range(a.shape[0]):
        out[k] = _divide(a[k], p, y)
    return out


@numba.njit(inline="always", nogil=True, cache=True)
def _width(span: np.uint64) -> int:
    w = 0
    while span != 0:
        span >>= np.uint64(1)
        w += 1
    return w


@numba.njit(inline="always", nogil=True, cache=True)
def _varint_size(v: np.int64) -> int:
    z = np.uint64((v << np.int64(1)) ^ (v >> np.int64(63)))
    size = 1
    while z >= np.uint64(128):
        z >>= np.uint64(7)
        size += 1
    return size


@numba.njit(inline="always", nogil=True, cache=True)
def _put_varint(buf: U8, pos: int, v: np.int64) -> int:
    z = np.uint64((v << np.int64(1)) ^ (v >> np.int64(63)))
    while z >= np.uint64(128):
        buf[pos] = np.uint8((z & np.uint64(127)) | np.uint64(128))
        z >>= np.uint64(7)
        pos += 1
    buf[pos] = np.uint8(z)
    return pos + 1


@numba.njit(inline="always", nogil=True, cache=True)
def _get_varint(buf: U8, pos: int) -> tuple[np.int64, int]:
    z = np.uint64(0)
    shift = np.uint64(0)
    while True:
        b = np.uint64(buf[pos])
        pos += 1
        z |= (b & np.uint64(127)) << shift
        if b < np.uint64(128):
            break
        shift += np.uint64(7)
    v = np.int64(z >> np.uint64(1)) ^ -np.int64(z & np.uint64(1))
    return v, pos


@numba.njit(inline="always", nogil=True, cache=True)
def _get_bits(buf: U8, bit: int, w: int) -> np.uint64:
    """``w`` bits at bit offset ``bit`` (the buffer has ``PAD`` bytes after any blob)."""
    p = bit >> 3
    s = np.uint64(bit & 7)
    word = (
        np.uint64(buf[p])
        | (np.uint64(buf[p + 1]) << np.uint64(8))
        | (np.uint64(buf[p + 2]) << np.uint64(16))
        | (np.uint64(buf[p + 3]) << np.uint64(24))
        | (np.uint64(buf[p + 4]) << np.uint64(32))
        | (np.uint64(buf[p + 5]) << np.uint64(40))
        | (np.uint64(buf[p + 6]) << np.uint64(48))
        | (np.uint64(buf[p + 7]) << np.uint64(56))
    )
    v = word >> s
    if s != np.uint64(0) and w + (bit & 7) > 64:
        v |= np.uint64(buf[p + 8]) << (np.uint64(64) - s)
    if w < 64:
        v &= (np.uint64(1) << np.uint64(w)) - np.uint64(1)
    return v


# -- streams -------------------------------------------------------------------------------


#: highest order of differences a stream may be stored as
MAX_ORDER = 3
#: flags byte (after a mode byte with bit 7 set): bits 0..1 the order, bit 2 exceptions
_EXCEPTIONS = 4


@numba.njit(inline="always", nogil=True, cache=True)
def _fast_width(v: np.uint64) -> int:
    """``_width`` in six steps instead of one a bit."""
    w = 0
    for s in (32, 16, 8, 4, 2, 1):
        if v >> np.uint64(s):
            v >>= np.uint64(s)
            w += s
    return w + (1 if v else 0)


@numba.njit(inline="always", nogil=True, cache=True)
def _differences(z: I64, m: int) -> None:
    """``z[:m - 1]`` made the differences of ``z[:m]``, in place, in wrapping arithmetic,
    which the decoder's running sum undoes exactly."""
    for t in range(m - 1):
        z[t] = z[t + 1] - z[t]


@numba.njit(inline="always", nogil=True, cache=True)
def _factor(z: I64, m: int, base: np.int64, span: np.uint64) -> np.uint64:
    """The greatest common divisor of ``z[:m]`` minus ``base`` (1 when it does not narrow
    the width enough to leave the mode byte room: see ``_put_stream``)."""
    g = np.uint64(0)
    for t in range(m):
        a = np.uint64(z[t] - base)
        while a != np.uint64(0):
            g, a = a, g % a
        if g == np.uint64(1):
            return g
    if g < np.uint64(2) or _width(span // g) > 62:
        return np.uint64(1)
    return g


@numba.njit(inline="always", nogil=True, cache=True)
def _plan(y: I64, n: int, z: I64) -> tuple[int, np.int64, int, int, np.uint64, int, int]:
    """How to store ``y[:n]``: ``(order, base, width, bytes, factor, exceptions, full
    width)``, the smallest over the orders of differences (0 to ``MAX_ORDER``) and the
    widths at which the values that do not fit are patched in as exceptions. ``z`` is
    scratch of ``n`` entries."""
    best = (0, np.int64(0), 0, 1 << 62, np.uint64(1), 0, 0)
    counts = np.zeros(65, np.int64)
    z[:n] = y[:n]
    firsts = 0  # bytes of the varints that start the running sums
    for k in range(min(MAX_ORDER, n - 1) + 1):
        m = n - k
        if k > 0:
            firsts += _varint_size(z[0])
            _differences(z, m + 1)
        lo = z[0]
        hi = z[0]
        for t in range(1, m):
            lo = min(lo, z[t])
            hi = max(hi, z[t])
        span = np.uint64(hi) - np.uint64(lo)
        g = _factor(z, m, lo, span)
        full = _width(span // g)
        head = 1 + _varint_size(lo) + firsts + (1 if k > 0 else 0)
        if g > np.uint64(1):
            head += _varint_size(np.int64(g))
        size = head + (m * full + 7) // 8
        if size < best[3]:
            best = (k, lo, full, size, g, 0, full)
        if full == 0:
            continue
        # at width w, the values wider than w are exceptions: a position and the high bits
        counts[:] = 0
        if g == np.uint64(1):  # no division per value: the usual case
            for t in range(m):
                counts[_fast_width(np.uint64(z[t] - lo))] += 1
        else:
            for t in range(m):
                counts[_fast_width(np.uint64(z[t] - lo) // g)] += 1
        pw = _width(np.uint64(m - 1))
        wider = 0
        for w in range(full - 1, -1, -1):
            wider += counts[w + 1]
            size = head + 1 + (0 if k > 0 else 1) + _varint_size(np.int64(wider))
            size += (m * w + wider * (pw + full - w) + 7) // 8
            if size < best[3]:
                best = (k, lo, w, size, g, wider, full)
    return best


@numba.njit(inline="always", nogil=True, cache=True)
def _put_bits(buf: U8, bit: int, v: np.uint64, w: int) -> int:
    """Or ``v``'s low ``w`` bits into ``buf`` at bit offset ``bit`` (zeroed there)."""
    left = w
    while left > 0:
        p = bit >> 3
        s = bit & 7
        take = min(8 - s, left)
        buf[p] |= np.uint8((v & np.uint64((1 << take) - 1)) << np.uint64(s))
        v >>= np.uint64(take)
        bit += take
        left -= take
    return bit


@numba.njit(inline="always", nogil=True, cache=True)
def _put_stream(buf: U8, pos: int, y: I64, n: int, z: I64) -> int:
    """Write ``y[:n]`` as a stream at ``pos`` (``buf`` zeroed there); returns the end.
    ``z`` is scratch of ``n`` entries.

    The mode byte holds the width (0..64), or 65 + the width (0..62) when a factor follows
    the base; bit 7: a flags byte follows (the order of differences, exceptions)."""
    k, base, w, _, g, wider, full = _plan(y, n, z)
    code = w if g == np.uint64(1) else 65 + w
    flagged = k > 0 or wider > 0
    buf[pos] = np.uint8(code | (128 if flagged else 0))
    pos += 1
    if flagged:
        buf[pos] = np.uint8(k | (_EXCEPTIONS if wider else 0))
        pos += 1
    pos = _put_varint(buf, pos, base)
    if g != np.uint64(1):
        pos = _put_varint(buf, pos, np.int64(g))
    z[:n] = y[:n]
    for j in range(k):
        pos = _put_varint(buf, pos, z[0])
        _differences(z, n - j)
    m = n - k
    if wider:
        pos = _put_varint(buf, pos, np.int64(wider))
        buf[pos] = np.uint8(full - w)
        pos += 1
    if w == 0 and wider == 0:
        return pos
    bit = pos * 8
    if g != np.uint64(1):
        for t in range(m):
            z[t] = np.int64(np.uint64(z[t] - base) // g) + base
    for t in range(m):
        bit = _put_bits(buf, bit, np.uint64(z[t] - base), w)
    if wider:
        pw = _width(np.uint64(m - 1))
        for t in range(m):
            if np.uint64(z[t] - base) >> np.uint64(w) != np.uint64(0):
                bit = _put_bits(buf, bit, np.uint64(t), pw)
        for t in range(m):
            high = np.uint64(z[t] - base) >> np.uint64(w)
            if high != np.uint64(0):
                bit = _put_bits(buf, bit, high, full - w)
    return (bit + 7) >> 3


@numba.njit(inline="always", nogil=True, cache=True)
def _stream_size(y: I64, n: int, z: I64) -> int:
    return _plan(y, n, z)[3]


# -- encode --------------------------------------------------------------------------------


@numba.njit(inline="always", nogil=True, cache=True)
def _decimals(mn: F64, mx: F64, ct: U32, n: int) -> int:
    """The smallest ``e`` at which every full entry's min and max is a decimal, or -1."""
    e = 0
    t = 0
    while t < n:
        if ct[t] == 0:
            t += 1
            continue
        ok = True
        for v in (mn[t], mx[t]):
            if not np.isfinite(v):
                return -1
            while True:
                p = _POW10[e]
                a = v * p
                if abs(a) < _FITS:
                    x = np.int64(np.rint(a))
                    back = np.float64(x) / p
                    if back == v and np.signbit(back) == np.signbit(v):
                        break
                if e == MAX_DECIMALS:
                    return -1
                e += 1
                ok = False
        if ok:
            t += 1
        else:
            t = 0  # a larger e: every earlier entry again
    return e


@numba.njit(inline="always", nogil=True, cache=True)
def _mean(s: np.int64, c: np.int64) -> np.int64:
    """``AROUND_MEAN``'s mean: ``s / c`` truncated (``c`` 0: 60), by a float division, which
    vectorises where an integer one does not, and rounds the same on both sides."""
    return np.int64(np.float64(s) / np.float64(c if c != 0 else 60))


@numba.njit(nogil=True, cache=True)
def _encode_one(
    mn: F64, mx: F64, sm: F64, ct: U32, buf: U8, pos: int,
    X: I64, M: I64, M2: I64, Q: I64, D: I64, C: I64, DX: I64, M3: I64, Z: I64, S: I64, NM: I64,
) -> tuple[int, int, float, float, float, int]:  # fmt: skip
    """Encode one series' block at ``pos``: ``(format, end, min, max, sum, count)``."""
    n = mn.shape[0]
    first = -1
    for t in range(n):
        if ct[t] != 0:
            first = t
            break
    if first < 0:
        return EMPTY, pos, np.inf, -np.inf, 0.0, 0
    low, high, total, count = np.inf, -np.inf, 0.0, 0
    for t in range(n):
        if ct[t] != 0:
            low = min(low, mn[t])
            high = max(high, mx[t])
            total += sm[t]
            count += ct[t]
    e = _decimals(mn, mx, ct, n)
    fmt = BITS
    sum_decimal = False
    p = 1.0
    if e >= 0:
        fmt = DECIMAL_MINMAX
        p = _POW10[e]
        sum_decimal = True
        for t in range(n):
            if ct[t] != 0 and not abs(sm[t] * p) < _FITS:
                sum_decimal = False
                break
        if sum_decimal:
            fmt = DECIMAL
    # the integer columns, empty entries filled as the module docstring says
    px = mx[first]
    pn = mn[first]
    ps = sm[first]
    for t in range(n):
        if ct[t] != 0:
            px = mx[t]
            pn = mn[t]
            ps = sm[t]
        C[t] = ct[t]
        if fmt == BITS:
            X[t] = _bits(px)
            nb = _bits(pn)
            M[t] = nb
            M2[t] = X[t] - nb
        else:
            xi = np.int64(np.rint(px * p))
            ni = np.int64(np.rint(pn * p))
            X[t] = xi
            M[t] = xi - ni
            M2[t] = ni - (X[t - 1] if t > 0 else xi)
        if fmt == DECIMAL:
            s = sm[t] if ct[t] != 0 else 0.0
            si = np.int64(np.rint(s * p))
            ni = X[t] - M[t]
            c = np.int64(ct[t])
            Q[t] = si - (c * ni + ((c * M[t]) >> np.int64(1)))
            S[t] = np.int64(np.rint(ps * p))  # an empty entry repeats the last full sum
            D[t] = _bits(s) - _bits(np.float64(si) / p)
        else:
            Q[t] = _bits(ps)
    variant = 0
    best = _stream_size(M, n, Z)
    after = _stream_size(M2, n, Z)
    if after < best:
        variant = MIN_AFTER_MAX
        best = after
    xs = X
    if fmt != BITS and n >= 2:
        # a counter's minute starts about a 60th of its max's climb after the last one
        # ended (a multiply and shift, not a division: decoding stays a vectorised pass);
        # the first entry goes ahead as a varint and its stream entry repeats the second,
        # so that no outlier widens the stream
        for t in range(1, n):
            DX[t] = X[t] - X[t - 1]
            M3[t] = M2[t] - ((DX[t] * np.int64(17)) >> np.int64(10))
        DX[0] = DX[1]
        M3[0] = M3[1]
        rated = _stream_size(M3, n, Z) + _varint_size(M2[0])
        if rated < best:
            variant = MIN_AFTER_MAX | MIN_AT_RATE
            best = rated
    if fmt == DECIMAL:
        as_is = _stream_size(S, n, Z)
        residual = _stream_size(Q, n, Z)
        if as_is < residual:
            variant |= SUM_AS_IS
        # the extremes around the mean instead (DX is free now: it holds X less the mean)
        for t in range(n):
            mean = _mean(S[t], C[t])
            DX[t] = X[t] - mean
            NM[t] = X[t] - M[t] - mean
        around = _stream_size(DX, n, Z) + _stream_size(NM, n, Z) + as_is
        plain = _stream_size(X, n, Z) + best
        plain += min(as_is, residual)
        if around < plain:
            variant = SUM_AS_IS | AROUND_MEAN
            xs = DX
            M = NM
    buf[pos] = np.uint8(e if e >= 0 else 0)
    buf[pos + 1] = np.uint8(variant)
    pos += 2
    if variant & MIN_AT_RATE:
        pos = _put_varint(buf, pos, M2[0])
        M2 = M3
    pos = _put_stream(buf, pos, xs, n, Z)
    pos = _put_stream(buf, pos, M2 if variant & MIN_AFTER_MAX else M, n, Z)
    pos = _put_stream(buf, pos, S if variant & SUM_AS_IS else Q, n, Z)
    if fmt == DECIMAL:
        pos = _put_stream(buf, pos, D, n, Z)
    pos = _put_stream(buf, pos, C, n, Z)
    return fmt, pos, low, high, total, count


def worst_bytes(n: int) -> int:
    """The most bytes one series' blob of ``n`` minutes can take (``BITS``, every stream
    at full width)."""
    return 2 + 2 * 10 + 5 * 21 + 5 * 8 * n


@numba.njit(nogil=True, cache=True)
def _encode(
    mn: F64, mx: F64, sm: F64, ct: U32, stride: int, scratch: U8,
    fmt: U8, length: U32, s_mn: F64, s_mx: F64, s_sm: F64, s_ct: U32,
) -> None:  # fmt: skip
    """Encode each row ``i`` at ``scratch[i * stride]`` (zeroed), with its summary."""
    rows, n = ct.shape
    X = np.empty(n, np.int64)
    M = np.empty(n, np.int64)
    M2 = np.empty(n, np.int64)
    Q = np.empty(n, np.int64)
    D = np.empty(n, np.int64)
    C = np.empty(n, np.int64)
    DX = np.empty(n, np.int64)
    M3 = np.empty(n, np.int64)
    Z = np.empty(n, np.int64)
    S = np.empty(n, np.int64)
    NM = np.empty(n, np.int64)
    for i in range(rows):
        at = i * stride
        f, end, lo, hi, total, count = _encode_one(
            mn[i], mx[i], sm[i], ct[i], scratch, at, X, M, M2, Q, D, C, DX, M3, Z, S, NM
        )
        fmt[i] = f
        length[i] = end - at
        s_mn[i] = lo
        s_mx[i] = hi
        s_sm[i] = total
        s_ct[i] = count


def _copy_blobs(src: U8, src_offset: I64, length: U32, dst: U8, dst_offset: I64) -> None:
    """Copy blob ``i`` from ``src[src_offset[i]:]`` to ``dst[dst_offset[i]:]``."""
    for i in range(length.shape[0]):
        a = src_offset[i]
        b = dst_offset[i]
        for k in range(length[i]):
            dst[b + k] = src[a + k]


copy_blobs: Callable[..., Any] = numba.njit(nogil=True, cache=True)(_copy_blobs)

#: bytes of encoding scratch per call: rows are encoded this many worst-case blobs at a time
SCRATCH = 1 << 26


class Encoded(NamedTuple):
    """``encode``'s answer: blob ``i`` is ``data[offset[i] : offset[i] + length[i]]`` with
    format ``fmt[i]``; ``summary`` merges each row over the block (sums in minute order)."""

    data: U8
    offset: I64
    length: U32
    fmt: U8
    summary: Partials


def encode(parts: Partials) -> Encoded:
    """Encode each row of a ``(series, n)`` block of partials as one blob."""
    rows, n = parts.count.shape
    stride = worst_bytes(n)
    chunk = max(1, SCRATCH // stride)
    fmt = np.zeros(rows, np.uint8)
    length = np.zeros(rows, np.uint32)
    summary = Partials.empty(rows)
    pieces = []
    for a in range(0, rows, chunk):
        b = min(rows, a + chunk)
        part = parts.take(np.s_[a:b])
        ct = np.ascontiguousarray(part.count, dtype=np.uint32)
        mn, mx, sm = (np.ascontiguousarray(f, dtype=np.float64) for f in part.fields()[:3])
        scratch = np.zeros((b - a) * stride + PAD, np.uint8)
        cut = summary.take(np.s_[a:b])  # views: the kernel fills them
        _encode(mn, mx, sm, ct, stride, scratch, fmt[a:b], length[a:b], *cut.fields())
        offset = np.zeros(b - a, np.int64)
        np.cumsum(length[a : b - 1], out=offset[1:])
        piece = np.empty(int(length[a:b].sum(dtype=np.int64)), np.uint8)
        copy_blobs(scratch, np.arange(b - a, dtype=np.int64) * stride, length[a:b], piece, offset)
        pieces.append(piece)
    offset = np.zeros(rows, np.int64)
    np.cumsum(length[:-1], out=offset[1:])
    data = np.concatenate(pieces) if pieces else np.zeros(0, np.uint8)
    return Encoded(data, offset, length, fmt, summary)


# -- decode --------------------------------------------------------------------------------


@numba.njit(inline="always", nogil=True, cache=True)
def _load_u64(buf: U8, p: np.uint64) -> np.uint64:
    """The 8 bytes at ``buf[p:]``, little-endian (LLVM makes this one unaligned load)."""
    one = np.uint64(1)
    return (
        np.uint64(buf[p])
        | (np.uint64(buf[p + one]) << np.uint64(8))
        | (np.uint64(buf[p + np.uint64(2)]) << np.uint64(16))
        | (np.uint64(buf[p + np.uint64(3)]) << np.uint64(24))
        | (np.uint64(buf[p + np.uint64(4)]) << np.uint64(32))
        | (np.uint64(buf[p + np.uint64(5)]) << np.uint64(40))
        | (np.uint64(buf[p + np.uint64(6)]) << np.uint64(48))
        | (np.uint64(buf[p + np.uint64(7)]) << np.uint64(56))
    )


#: streams this narrow or narrower unpack in a loop of their own width (most of a gauge's
#: or a counter's streams are 1 to 16 bits wide)
FIXED_WIDTHS = 16


def _fixed_width(w: int) -> Callable[..., None]:
    """``_unpack``'s loop for width ``w`` alone: eight values fill ``w`` bytes, so each one's
    byte and shift in them are constants that the compiler folds into its load and shift."""
    mask = np.uint64((1 << w) - 1)

    def unpack(data: U8, pos: int, base: np.int64, g: np.int64, dst: I64) -> None:
        groups = dst.shape[0] // 8
        if g == 1:
            for i in range(groups):
                at = np.uint64(pos + i * w)
                for j in range(8):
                    v = _load_u64(data, at + np.uint64((j * w) >> 3)) >> np.uint64((j * w) & 7)
                    dst[i * 8 + j] = base + np.int64(v & mask)
        else:
            for i in range(groups):
                at = np.uint64(pos + i * w)
                for j in range(8):
                    v = _load_u64(data, at + np.uint64((j * w) >> 3)) >> np.uint64((j * w) & 7)
                    dst[i * 8 + j] = base + np.int64(v & mask) * g
        bit = np.uint64((pos + groups * w) * 8)
        for k in range(groups * 8, dst.shape[0]):
            v = _load_u64(data, bit >> np.uint64(3)) >> (bit & np.uint64(7))
            dst[k] = base + np.int64(v & mask) * g
            bit += np.uint64(w)

    return numba.njit(nogil=True, cache=True)(unpack)


(_w1, _w2, _w3, _w4, _w5, _w6, _w7, _w8, _w9, _w10, _w11, _w12, _w13, _w14, _w15, _w16) = (
    _fixed_width(w) for w in range(1, FIXED_WIDTHS + 1)
)


@numba.njit(nogil=True, cache=True)
def _unpack_fixed(data: U8, pos: int, w: int, base: np.int64, g: np.int64, dst: I64) -> None:
    """``dst``'s values of the ``w``-bit stream packed from byte ``pos`` (1 ≤ ``w`` ≤
    ``FIXED_WIDTHS``), by its width's own loop."""
    if w <= 8:
        if w == 1:
            _w1(data, pos, base, g, dst)
        elif w == 2:
            _w2(data, pos, base, g, dst)
        elif w == 3:
            _w3(data, pos, base, g, dst)
        elif w == 4:
            _w4(data, pos, base, g, dst)
        elif w == 5:
            _w5(data, pos, base, g, dst)
        elif w == 6:
            _w6(data, pos, base, g, dst)
        elif w == 7:
            _w7(data, pos, base, g, dst)
        else:
            _w8(data, pos, base, g, dst)
    elif w == 9:
        _w9(data, pos, base, g, dst)
    elif w == 10:
        _w10(data, pos, base, g, dst)
    elif w == 11:
        _w11(data, pos, base, g, dst)
    elif w == 12:
        _w12(data, pos, base, g, dst)
    elif w == 13:
        _w13(data, pos, base, g, dst)
    elif w == 14:
        _w14(data, pos, base, g, dst)
    elif w == 15:
        _w15(data, pos, base, g, dst)
    else:
        _w16(data, pos, base, g, dst)


@numba.njit(inline="always", nogil=True, cache=True)
def _unpack(data: U8, words: npt.NDArray[np.uint64], pos: int, n: int, upto: int, out: I64) -> int:
    """Read values ``[0, upto)`` of the ``n``-value stream at byte ``pos`` into ``out``;
    returns the stream's end.

    Value ``k``'s bit offset is computed from ``k``, not carried from ``k − 1``, so the
    iterations are independent: two aligned word loads, shifts and a mask per value, no
    branch. Exceptions are patched in after, then the differences summed back, one running
    sum per order."""
    mode = int(data[pos])
    w = mode & 127
    pos += 1
    order = 0
    flags = 0
    if mode >= 128:
        flags = int(data[pos])
        order = flags & 3
        pos += 1
    base, pos = _get_varint(data, pos)
    g = np.int64(1)
    if w > 64:
        w -= 65
        g, pos = _get_varint(data, pos)
    for j in range(order):
        out[j], pos = _get_varint(data, pos)
    wider = 0
    hw = 0
    if flags & _EXCEPTIONS:
        ex, pos = _get_varint(data, pos)
        wider = int(ex)
        hw = int(data[pos])
        pos += 1
    m = n - order
    dst = out[order:upto]  # indices from 0: numba's negative-index fix-up folds away
    bit0 = np.uint64(pos * 8)
    uw = np.uint64(w)
    if w == 0:
        for k in range(dst.shape[0]):
            dst[k] = base
    elif w <= FIXED_WIDTHS:
        _unpack_fixed(data, pos, w, base, g, dst)
    elif w <= 57:  # the value lies in the 8 bytes from its first: one unaligned load
        mask = np.uint64(0xFFFFFFFFFFFFFFFF) >> np.uint64(64 - w)
        for k in range(dst.shape[0]):
            bit = bit0 + np.uint64(k) * uw
            v = _load_u64(data, bit >> np.uint64(3)) >> (bit & np.uint64(7))
            dst[k] = base + np.int64(v & mask) * g
    else:
        mask = np.uint64(0xFFFFFFFFFFFFFFFF) >> np.uint64(64 - w)
        for k in range(dst.shape[0]):
            bit = bit0 + np.uint64(k) * uw
            i = bit >> np.uint64(6)
            s = bit & np.uint64(63)
            v = (words[i] >> s) | ((words[i + np.uint64(1)] << np.uint64(1)) << (np.uint64(63) - s))
            dst[k] = base + np.int64(v & mask) * g
    end = pos * 8 + m * w
    if wider:
        pw = _width(np.uint64(m - 1))
        at = end
        highs = end + wider * pw
        for r in range(wider):
            index = int(_get_bits(data, at + r * pw, pw))
            if index < dst.shape[0]:
                high = _get_bits(data, highs + r * hw, hw)
                dst[index] += np.int64(high << uw) * g
        end = highs + wider * hw
    _sum_back(out, order, upto)
    return (end + 7) >> 3


@numba.njit(inline="always", nogil=True, cache=True)
def _sum_back(out: I64, order: int, upto: int) -> None:
    """Undo ``order`` differences in ``out[:upto]`` (``out[j]`` holding the first entry of
    the differences of order ``j``, the rest those of ``order``): the running sums of each
    order at once, each carried in a register rather than through memory."""
    if order == 0 or upto < 2:
        return
    y = out[0]
    if order == 1:
        for t in range(1, upto):
            y += out[t]
            out[t] = y
        return
    d1 = out[1]
    y += d1
    out[1] = y
    if order == 2:
        for t in range(2, upto):
            d1 += out[t]
            y += d1
            out[t] = y
        return
    if upto < 3:
        return
    d2 = out[2]
    d1 += d2
    y += d1
    out[2] = y
    for t in range(3, upto):
        d2 += out[t]
        d1 += d2
        y += d1
        out[t] = y


@numba.njit(inline="always", nogil=True, cache=True)
def _merge_minutes(
    hf: F64, lf: F64, sf: F64, cs: I64, row: int, b0: int, r0: int, step: int,
    out_mn: F64, out_mx: F64, out_sm: F64, out_ct: U32, overwrite: bool,
) -> None:  # fmt: skip
    """Merge minute ``k`` of ``hf`` … ``cs`` (``cs[k] == 0``: none) into
    ``out[row, b0 + (r0 + k) // step]``; at step 1 with ``overwrite``, store it there
    instead, as merging into a zeroed cell would leave it, without reading the cell."""
    omn = out_mn[row, b0:]
    omx = out_mx[row, b0:]
    osm = out_sm[row, b0:]
    oct_ = out_ct[row, b0:]
    if step == 1 and overwrite:
        # an empty minute leaves what a zeroed cell held: zeros in every field
        for k in range(cs.shape[0]):
            c = cs[k]
            empty = c == 0
            omn[k] = 0.0 if empty else lf[k]
            omx[k] = 0.0 if empty else hf[k]
            osm[k] = 0.0 if empty else sf[k]
            oct_[k] = np.uint32(c)
        return
    if step == 1:
        # one minute per bucket: no cell is written twice, so the merge is one loop of
        # branch-free selects that vectorises (an empty minute stores back what was there),
        # reading each cell's count once for all four fields
        for k in range(cs.shape[0]):
            c = cs[k]
            o = oct_[k]
            fresh = o == 0
            a, v = omn[k], lf[k]
            m = v if fresh else min(a, v)
            omn[k] = a if c == 0 else m
            a, v = omx[k], hf[k]
            m = v if fresh else max(a, v)
            omx[k] = a if c == 0 else m
            a, v = osm[k], sf[k]
            m = v if fresh else a + v
            osm[k] = a if c == 0 else m
            oct_[k] = o + np.uint32(c)
        return
    b = 0  # the bucket advances by counting: no division per minute
    r = r0
    for k in range(cs.shape[0]):
        cv = cs[k]
        if cv != 0:
            if oct_[b] == 0:
                omn[b] = lf[k]
                omx[b] = hf[k]
                osm[b] = sf[k]
                oct_[b] = np.uint32(cv)
            else:
                omn[b] = min(omn[b], lf[k])
                omx[b] = max(omx[b], hf[k])
                osm[b] += sf[k]
                oct_[b] += np.uint32(cv)
        r += 1
        if r == step:
            r = 0
            b += 1


def _prefetch_write_intrinsic(typingctx: Any, row: Any, i: Any) -> Any:
    """Ask the CPU to bring ``row[i]``'s cache line in for writing (LLVM's prefetch)."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        i8p = ir.IntType(8).as_pointer()
        ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), i8p)
        i32 = ir.IntType(32)
        name = "llvm.prefetch.p0"
        fn = builder.module.globals.get(name) or ir.Function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), name
        )
        builder.call(fn, [ptr, i32(1), i32(3), i32(1)])  # write, keep in all caches, data
        return context.get_dummy_value()

    return numba.types.void(row, i), codegen


_prefetch_write: Callable[..., None] = intrinsic(_prefetch_write_intrinsic)


@numba.njit(inline="always", nogil=True, cache=True)
def _prefetch_job(
    lo: int, hi: int, row: int, col0: int, step: int,
    out_mn: F64, out_mx: F64, out_sm: F64, out_ct: U32,
) -> None:  # fmt: skip
    """Prefetch the buckets a job will merge into: a read's jobs jump from row to row,
    which the hardware's own prefetcher does not follow."""
    a = (col0 + lo) // step
    z = (col0 + hi - 1) // step  # the last bucket
    omn = out_mn[row]
    omx = out_mx[row]
    osm = out_sm[row]
    oct_ = out_ct[row]
    for c in range(a, z + 8, 8):  # a 64-byte line holds 8 float64 or 16 uint32
        k = min(c, z)
        _prefetch_write(omn, k)
        _prefetch_write(omx, k)
        _prefetch_write(osm, k)
    for c in range(a, z + 16, 16):
        _prefetch_write(oct_, min(c, z))


@numba.njit(nogil=True, cache=True)
def _decode_one(
    data: U8, words: npt.NDArray[np.uint64], pos: int, fmt: int, n: int, lo: int, hi: int,
    row: int, col0: int, step: int, xs: I64, ms: I64, qs: I64, ds: I64, cs: I64,
    hf: F64, lf: F64, sf: F64, out_mn: F64, out_mx: F64, out_sm: F64, out_ct: U32,
    overwrite: bool,
) -> None:  # fmt: skip
    """Merge minutes ``[lo, hi)`` of the blob at ``pos`` into ``out[row, (col0 + t) // step]``
    (at step 1 with ``overwrite``, store them: ``_merge_minutes``); ``xs`` … ``sf`` are
    scratch of at least ``n`` entries.

    Each pass over the scratch is a loop without branches, so it vectorises: unpack each
    stream, rebuild the floats (the divisions by ``10^e`` many at a time), then merge."""
    if fmt == EMPTY:
        return
    e = int(data[pos])
    variant = int(data[pos + 1])
    p = _POW10[e]
    pos += 2
    m0 = np.int64(0)
    if variant & MIN_AT_RATE:
        m0, pos = _get_varint(data, pos)
    pos = _unpack(data, words, pos, n, hi, xs)
    pos = _unpack(data, words, pos, n, hi, ms)
    pos = _unpack(data, words, pos, n, hi, qs)
    if fmt == DECIMAL:
        pos = _unpack(data, words, pos, n, hi, ds)
    _unpack(data, words, pos, n, hi, cs)
    b0 = (col0 + lo) // step
    r0 = (col0 + lo) % step
    # the window, indexed from 0
    x = xs[lo:hi]
    mi = ms[lo:hi]
    c = cs[lo:hi]
    if fmt == BITS:
        if variant:
            for k in range(x.shape[0]):
                mi[k] = x[k] - mi[k]
        _merge_minutes(x.view(np.float64), mi.view(np.float64), qs[lo:hi].view(np.float64), c,
                       row, b0, r0, step, out_mn, out_mx, out_sm, out_ct, overwrite)  # fmt: skip
        return
    # the minimum's own column, N
    if variant & AROUND_MEAN:  # both extremes less the mean of the sum kept as it is
        s_as_is = qs[lo:hi]
        for k in range(x.shape[0]):
            mean = _mean(s_as_is[k], c[k])
            x[k] += mean
            mi[k] += mean
    elif variant & MIN_AT_RATE:
        for t in range(max(lo, 1), hi):
            d = xs[t] - xs[t - 1]
            ms[t] += xs[t - 1] + ((d * np.int64(17)) >> np.int64(10))
        if lo == 0:
            ms[0] = m0 + xs[0]
    elif variant & MIN_AFTER_MAX:
        for t in range(hi - 1, max(lo, 1) - 1, -1):
            ms[t] += xs[t - 1]
        if lo == 0:
            ms[0] += xs[0]
    else:
        for k in range(x.shape[0]):
            mi[k] = x[k] - mi[k]
    h = hf[: x.shape[0]]
    lw = lf[: x.shape[0]]
    s = sf[: x.shape[0]]
    q = qs[lo:hi]
    d = ds[lo:hi]
    if fmt == DECIMAL_MINMAX:
        s = q.view(np.float64)
    elif not variant & SUM_AS_IS:  # S from Q and the minute's own min and max
        for k in range(x.shape[0]):
            cv = c[k]
            ni = mi[k]
            q[k] += cv * ni + ((cv * (x[k] - ni)) >> np.int64(1))
    if e == 0:  # integers: x / 1 is x
        for k in range(x.shape[0]):
            h[k] = np.float64(x[k])
            lw[k] = np.float64(mi[k])
        if fmt == DECIMAL:
            for k in range(x.shape[0]):
                s[k] = _float(_bits(np.float64(q[k])) + d[k])
    else:
        y = _INV10[e]
        for k in range(x.shape[0]):
            h[k] = _divide(np.float64(x[k]), p, y)
            lw[k] = _divide(np.float64(mi[k]), p, y)
        if fmt == DECIMAL:
            for k in range(x.shape[0]):
                s[k] = _float(_bits(_divide(np.float64(q[k]), p, y)) + d[k])
    _merge_minutes(h, lw, s, c, row, b0, r0, step, out_mn, out_mx, out_sm, out_ct, overwrite)


def _decode_jobs(
    data: U8, offset: I64, fmt: U8, n: I64, lo: I64, hi: I64, row: I64, col0: I64, step: int,
    out_mn: F64, out_mx: F64, out_sm: F64, out_ct: U32,
) -> None:  # fmt: skip
    """Decode job ``j``: the blob at ``offset[j]`` (format ``fmt[j]``, ``n[j]`` minutes),
    its minutes ``[lo[j], hi[j])`` merged into row ``row[j]``, minute ``t`` into bucket
    ``(col0[j] + t) // step``. Jobs are merged in the order given. ``data`` holds ``PAD``
    bytes after its last blob and starts on an 8-byte boundary."""
    if offset.shape[0] == 0:
        return
    words = data[: data.shape[0] // 8 * 8].view(np.uint64)
    longest = 0
    for j in range(n.shape[0]):
        longest = max(longest, n[j])
    xs = np.empty(longest, np.int64)
    ms = np.empty(longest, np.int64)
    qs = np.empty(longest, np.int64)
    ds = np.empty(longest, np.int64)
    cs = np.empty(longest, np.int64)
    hf = np.empty(longest, np.float64)
    lf = np.empty(longest, np.float64)
    sf = np.empty(longest, np.float64)
    for j in range(offset.shape[0]):
        if j + 1 < offset.shape[0] and fmt[j + 1] != EMPTY:
            _prefetch_job(lo[j + 1], hi[j + 1], row[j + 1], col0[j + 1], step,
                          out_mn, out_mx, out_sm, out_ct)  # fmt: skip
        _decode_one(
            data, words, offset[j], fmt[j], n[j], lo[j], hi[j], row[j], col0[j], step,
            xs, ms, qs, ds, cs, hf, lf, sf, out_mn, out_mx, out_sm, out_ct, False,
        )  # fmt: skip


decode_jobs: Callable[..., Any] = numba.njit(nogil=True, cache=True)(_decode_jobs)


def padded(data: U8) -> U8:
    """``data`` followed by ``PAD`` zero bytes, on an 8-byte boundary: what ``decode``
    reads."""
    out = np.zeros(data.shape[0] + PAD, np.uint8)
    out[: data.shape[0]] = data
    return out


def decode(data: U8, offset: I64, fmt: U8, n: int, out: Partials, rows: I64 | None = None) -> None:
    """Merge whole blobs of ``n`` minutes into ``out`` at step 1 minute: blob ``i`` into row
    ``rows[i]`` (``i`` when None), minute ``t`` into column ``t``. ``data`` is as
    ``padded`` makes it."""
    k = int(offset.shape[0])
    at = np.arange(k, dtype=np.int64) if rows is None else rows
    decode_jobs(
        data, offset, fmt, np.full(k, n, np.int64), np.zeros(k, np.int64),
        np.full(k, n, np.int64), at, np.zeros(k, np.int64), 1, *out.fields(),
    )  # fmt: skip


__all__ = [
    "BITS",
    "DECIMAL",
    "DECIMAL_MINMAX",
    "EMPTY",
    "MAX_DECIMALS",
    "PAD",
    "SCRATCH",
    "Encoded",
    "copy_blobs",
    "decode",
    "decode_jobs",
    "divide_pow10",
    "encode",
    "padded",
    "worst_bytes",
]


# -- decode over many arenas ---------------------------------------------------------------


_carray = numba.carray  # type: ignore[attr-defined]
_u8_at = pointer_intrinsic(numba.types.uint8)
_i64_at = pointer_intrinsic(numba.types.int64)

#: columns of a ``decode_blocks`` table, one row per block piece
(T_ARENA, T_BYTES, T_OFFSET, T_FMT, T_ROWS, T_N, T_LO, T_HI, T_COL0) = range(9)
TABLE_COLUMNS = 9


@numba.njit(inline="always", nogil=True, cache=True)
def _zero_cells(
    row: int, c0: int, c1: int, out_mn: F64, out_mx: F64, out_sm: F64, out_ct: U32
) -> None:
    """Cells ``out[row, c0:c1]`` made empty, as a zeroed block holds them."""
    for c in range(c0, c1):
        out_mn[row, c] = 0.0
        out_mx[row, c] = 0.0
        out_sm[row, c] = 0.0
        out_ct[row, c] = 0


def _decode_blocks(
    table: I64, groups: I64, series: I64, rows: I64, i0: int, i1: int, step: int,
    out_mn: F64, out_mx: F64, out_sm: F64, out_ct: U32, overwrite: bool,
) -> None:  # fmt: skip
    """Decode many blocks, each in its own arena, in one call. Group ``g`` is
    ``groups[g] = (s0, s1, k0, k1, ...)``: series ``series[s0:s1]`` (into out rows
    ``rows[s0:s1]``) of the blocks in table rows ``[k0, k1)``. Table row ``k`` gives the
    addresses of a block's arena (``T_BYTES`` long, ``PAD`` included, 8-byte aligned),
    offsets and formats, the series it holds, its minutes, the window ``[lo, hi)`` to merge
    and ``col0`` as ``decode_jobs`` takes them. Only series positions ``[i0, i1)`` decode, so
    threads may split a call by rows; each series' blocks decode one after another, so its
    buckets are written row by row. The caller keeps the arrays alive during the call.

    With ``overwrite`` (step 1 only), group ``g`` has two more columns, ``(c0, c1)``, and
    each of its rows' cells ``[c0, c1)`` is written, whatever it held: the decoded minutes
    stored (``_merge_minutes``), every other cell (no block, an ``EMPTY`` blob, a series the
    block does not hold) zeroed. Then the rows end as merging into zeros leaves them, and no
    cell is read; the group's blocks must be in time order, their windows inside
    ``[c0, c1)``."""
    over = overwrite and step == 1
    longest = 1
    for k in range(table.shape[0]):
        longest = max(longest, table[k, T_N])
    xs = np.empty(longest, np.int64)
    ms = np.empty(longest, np.int64)
    qs = np.empty(longest, np.int64)
    ds = np.empty(longest, np.int64)
    cs = np.empty(longest, np.int64)
    hf = np.empty(longest, np.float64)
    lf = np.empty(longest, np.float64)
    sf = np.empty(longest, np.float64)
    for g in range(groups.shape[0]):
        s0 = max(groups[g, 0], i0)
        s1 = min(groups[g, 1], i1)
        k0 = groups[g, 2]
        k1 = groups[g, 3]
        for i in range(s0, s1):
            sid = series[i]
            row = rows[i]
            done = groups[g, 4] if over else 0  # cells before this are written
            for k in range(k0, k1):
                if sid >= table[k, T_ROWS]:
                    continue
                fmt = int(_carray(_u8_at(table[k, T_FMT]), table[k, T_ROWS])[sid])
                if fmt == EMPTY:
                    continue
                if over:
                    _zero_cells(row, done, table[k, T_COL0] + table[k, T_LO],
                                out_mn, out_mx, out_sm, out_ct)  # fmt: skip
                    done = table[k, T_COL0] + table[k, T_HI]
                pos = _carray(_i64_at(table[k, T_OFFSET]), table[k, T_ROWS])[sid]
                data = _carray(_u8_at(table[k, T_ARENA]), table[k, T_BYTES])
                words = data[: data.shape[0] // 8 * 8].view(np.uint64)
                _decode_one(
                    data, words, pos, fmt, table[k, T_N], table[k, T_LO], table[k, T_HI], row,
                    table[k, T_COL0], step, xs, ms, qs, ds, cs, hf, lf, sf,
                    out_mn, out_mx, out_sm, out_ct, over,
                )  # fmt: skip
            if over:
                _zero_cells(row, done, groups[g, 5], out_mn, out_mx, out_sm, out_ct)


decode_blocks: Callable[..., Any] = numba.njit(nogil=True, cache=True)(_decode_blocks)
