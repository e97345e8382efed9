"""Lossless encoding of minute partials, one blob per (series, block), many blobs per arena.

A block is ``n`` consecutive minutes of one series: four columns ``min, max, sum`` (float64)
and ``count`` (uint32). Every entry with ``count > 0`` comes back bit for bit (±0,
subnormals, ±1e308, any finite float); entries with ``count == 0`` come back with
``count == 0`` and undefined other fields, as everywhere in the ring.

Blob layout (little-endian)::

    u8 format        1 = decimal (below), 2 = float (pcodec on min, max, sum as they are)
    u8 flags         bit 0: count is one constant, stored as u32 below, no count part
                     bit 1: decimal only: the sum residual D is all zero, no D part
    u8 exponent e    decimal only (0 for float)
    [u32 count]      when flag bit 0
    u16 length × (parts − 1)   the last part runs to the blob's end
    parts            each a pcodec standalone chunk

The decimal format is the cross-column transform of the research note: when every minimum and
maximum of the block is ``k / 10^e`` for integers ``k`` (and converts back bit for bit), the
parts are ``X = max·10^e`` (int64), ``G = min·10^e − X[t−1]``, ``S = round(sum·10^e) −
count·min − count·(max − min) // 2`` and ``D = bits(sum) − bits(round(sum·10^e) / 10^e)``:
min and max are strongly correlated, a sum is near ``count × midpoint``, and ``D`` (the
float accumulation's rounding) is mostly 0. Integer arithmetic wraps, identically on both
sides, so it is exact whatever the magnitudes. Any other block takes the float format.

Encoding works on a whole block of rows at once (the decimal test and the transform are
numpy over the rows); the pcodec calls are one per part per row, because a blob is what a
query decodes alone. The arena is one numpy buffer: no Python object per blob is kept.
"""

from __future__ import annotations

import struct

import numpy as np
import numpy.typing as npt
from pcodec import ChunkConfig, DeltaSpec, standalone

from minutely.model import F64, I64, U32, Partials

U8 = npt.NDArray[np.uint8]

DECIMAL = 1
FLOAT = 2
_CONST_COUNT = 1
_NO_RESIDUAL = 2
_HEAD = struct.Struct("<BBB")
_U32 = struct.Struct("<I")
_POW10 = 10.0 ** np.arange(16)
#: |min|, |max| times 10^e below this stay exact integers in float64 and int64
_EXACT = float(2**52)
#: |sum| times 10^e below this fits int64
_FITS = float(2**62)
#: for blocks that live an hour: encodes about three times faster than ``SMALL``
FAST = ChunkConfig(compression_level=4, delta_spec=DeltaSpec.try_consecutive(1))
#: for blocks that live days: pcodec's own choice of delta, at a level that costs half of
#: the default's encoding time for nearly all of its size
SMALL = ChunkConfig(compression_level=4)


def _fill_gaps(parts: Partials) -> tuple[F64, F64, F64]:
    """min and max with empty minutes copied from the nearest earlier full one (the first
    full one for leading gaps), sum 0 there: values that cost the codec nothing."""
    full = parts.count > 0
    n = full.shape[1]
    idx = np.where(full, np.arange(n), -1)
    np.maximum.accumulate(idx, axis=1, out=idx)
    lead = idx < 0
    if lead.any():
        idx = np.where(lead, full.argmax(axis=1)[:, None], idx)
    rows = np.arange(full.shape[0])[:, None]
    return parts.min[rows, idx], parts.max[rows, idx], np.where(full, parts.sum, 0.0)


def _exponents(mn: F64, mx: F64, sm: F64) -> npt.NDArray[np.int8]:
    """Per row, the smallest ``e`` in 0..15 that makes the row decimal, or -1."""
    rows = mn.shape[0]
    out = np.full(rows, -1, np.int8)
    big = np.maximum(np.abs(mn).max(axis=1), np.abs(mx).max(axis=1))
    big_sum = np.abs(sm).max(axis=1)
    todo = np.flatnonzero(np.isfinite(big) & np.isfinite(big_sum))
    for e in range(16):
        scale = _POW10[e]
        with np.errstate(over="ignore"):  # a huge value times 10^e: inf, and out of the test
            todo = todo[(big[todo] * scale < _EXACT) & (big_sum[todo] * scale < _FITS)]
        if todo.shape[0] == 0:
            break
        ok = np.ones(todo.shape[0], np.bool_)
        for col in (mn, mx):
            a = col[todo]
            back = np.round(a * scale).astype(np.int64) / scale
            ok &= (back.view(np.uint64) == a.view(np.uint64)).all(axis=1)
        out[todo[ok]] = e
        todo = todo[~ok]
    return out


def encode(parts: Partials, config: ChunkConfig = SMALL) -> tuple[U8, I64, U32]:
    """Encode each row of a ``(rows, n)`` block: ``(arena, offset, length)`` per row; a row
    without data has length 0 and no bytes. ``config``: pcodec's settings (``FAST`` or
    ``SMALL``); any reads back, so a block may be re-encoded with another."""
    rows, n = parts.count.shape
    if n > 4096:
        msg = f"blocks of {n} minutes are longer than the 4,096 the blob's lengths allow"
        raise ValueError(msg)
    offset = np.zeros(rows, np.int64)
    length = np.zeros(rows, np.uint32)
    have = np.flatnonzero((parts.count > 0).any(axis=1))
    if have.shape[0] == 0:
        return np.zeros(0, np.uint8), offset, length
    p = parts.take(have)
    mn, mx, sm = _fill_gaps(p)
    ct = np.ascontiguousarray(p.count)
    const = (ct == ct[:, :1]).all(axis=1)
    exps = _exponents(mn, mx, sm)
    dec = np.flatnonzero(exps >= 0)
    columns: dict[int, tuple[npt.NDArray[np.generic], ...]] = {}
    residual_zero = np.zeros(have.shape[0], np.bool_)
    if dec.shape[0]:
        scale = _POW10[exps[dec]][:, None]
        mi = np.round(mn[dec] * scale).astype(np.int64)
        xi = np.round(mx[dec] * scale).astype(np.int64)
        si = np.round(sm[dec] * scale).astype(np.int64)
        d = (sm[dec].view(np.uint64) - (si / scale).view(np.uint64)).view(np.int64)
        g = mi.copy()
        g[:, 1:] -= xi[:, :-1]
        ci = ct[dec].astype(np.int64)
        s = si - ci * mi - (ci * (xi - mi)) // 2
        residual_zero[dec] = ~d.any(axis=1)
        for j, r in enumerate(dec.tolist()):
            columns[r] = (xi[j], g[j], s[j], d[j])
    blobs: list[bytes] = []
    for r in range(have.shape[0]):  # one pcodec call per part: a blob decodes alone
        flags = _CONST_COUNT if const[r] else 0
        if r in columns:
            cols = columns[r]
            if residual_zero[r]:
                flags |= _NO_RESIDUAL
                cols = cols[:3]
            head = _HEAD.pack(DECIMAL, flags, int(exps[r]))
        else:
            cols = (mn[r], mx[r], sm[r])
            head = _HEAD.pack(FLOAT, flags, 0)
        chunks = [standalone.simple_compress(c, config) for c in cols]
        if const[r]:
            head += _U32.pack(int(ct[r, 0]))
        else:
            chunks.append(standalone.simple_compress(ct[r], config))
        lengths = struct.pack(f"<{len(chunks) - 1}H", *(len(c) for c in chunks[:-1]))
        blobs.append(b"".join((head, lengths, *chunks)))
    sizes = np.fromiter((len(b) for b in blobs), np.int64, len(blobs))
    length[have] = sizes
    offset[have] = np.cumsum(sizes) - sizes
    return np.frombuffer(b"".join(blobs), np.uint8).copy(), offset, length


def decode_into(blob: bytes, out: Partials, row: int, scratch: I64) -> None:
    """Decode one blob into row ``row`` of the ``(rows, n)`` block ``out`` (its fields
    C-contiguous, ``n`` the blob's minutes). ``scratch``: ``(4, n)`` int64."""
    fmt, flags, e = _HEAD.unpack_from(blob, 0)
    at = 3
    count = out.count[row]
    if flags & _CONST_COUNT:
        count[:] = _U32.unpack_from(blob, at)[0]
        at += 4
    if fmt == DECIMAL:
        k = 3 if flags & _NO_RESIDUAL else 4
        dsts: list[npt.NDArray[np.generic]] = [scratch[0], scratch[1], scratch[2], scratch[3]][:k]
    elif fmt == FLOAT:
        k = 3
        dsts = [out.min[row], out.max[row], out.sum[row]]
    else:
        msg = f"block format {fmt} is not one this version reads"
        raise ValueError(msg)
    if not flags & _CONST_COUNT:
        dsts.append(count)
    lengths = struct.unpack_from(f"<{len(dsts) - 1}H", blob, at)
    at += 2 * len(lengths)
    for j, dst in enumerate(dsts):
        end = at + lengths[j] if j < len(lengths) else len(blob)
        standalone.simple_decompress_into(blob[at:end], dst)
        at = end
    if fmt == DECIMAL:
        _undo_decimal(scratch, k, e, out, row)


def _undo_decimal(scratch: I64, k: int, e: int, out: Partials, row: int) -> None:
    xi, g, s = scratch[0], scratch[1], scratch[2]
    scale = _POW10[e]
    mi = g.copy()
    mi[1:] += xi[:-1]
    ci = out.count[row].astype(np.int64)
    si = s + ci * mi + (ci * (xi - mi)) // 2
    np.divide(mi, scale, out=out.min[row])
    np.divide(xi, scale, out=out.max[row])
    if k == 4:
        v = (si / scale).view(np.uint64) + scratch[3].view(np.uint64)
        out.sum[row] = v.view(np.float64)
    else:
        np.divide(si, scale, out=out.sum[row])


def decode_rows(arena: U8, offset: I64, length: U32, n: int, out: Partials) -> None:
    """Decode blob ``i`` (``arena[offset[i] : offset[i] + length[i]]``) into row ``i`` of
    ``out`` (``(len(offset), n)``, C-contiguous); a row of length 0 is left as it is."""
    scratch = np.empty((4, n), np.int64)
    for i, (o, m) in enumerate(zip(offset.tolist(), length.tolist(), strict=True)):
        if m:
            decode_into(arena[o : o + m].tobytes(), out, i, scratch)
