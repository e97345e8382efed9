"""Request bodies sent compressed: ``Content-Encoding`` undone before ingest decodes them,
never past the body limit.

    identity        the body as sent (so is a missing header)
    gzip, x-gzip    one or more gzip members (zlib)
    zstd            one or more Zstandard frames (pyarrow's codec, already a dependency)

A list (``gzip, zstd``) is undone last coding first, as HTTP applies them in order. Output
stops as soon as it passes ``limit``, so a small body that would decompress to gigabytes
costs at most ``limit`` bytes before it is refused.

    PayloadTooLarge (413)       decompressed, the body is over ``limit``
    DecodeError (400)           the body is not valid in the coding it names
    UnsupportedEncoding (415)   a coding not listed above
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import pyarrow as pa

from minutely.errors import DecodeError, PayloadTooLarge
from minutely.ingest.validate import Body

GZIP = "gzip"
ZSTD = "zstd"
#: what the zstd reader is asked for at a time
CHUNK = 1 << 20


class UnsupportedEncoding(ValueError):
    """A ``Content-Encoding`` this server does not undo."""


def decompress(body: Body, content_encoding: str, limit: int) -> Body:
    """``body`` with ``content_encoding`` undone, at most ``limit`` bytes."""
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    for coding in reversed(codings):
        if coding == "identity":
            continue
        undo = _DECODERS.get(coding)
        if undo is None:
            msg = f"Content-Encoding {coding!r} is not supported: send gzip, zstd or identity"
            raise UnsupportedEncoding(msg)
        body = undo(body, limit)
    return body


def _too_large(coding: str, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"body is over the limit of {limit} bytes once {coding}-decompressed")


def _invalid(coding: str, problem: object) -> DecodeError:
    return DecodeError(f"body is not valid {coding} (Content-Encoding: {coding}): {problem}")


def _gunzip(body: Body, limit: int) -> bytearray:
    out = bytearray()
    rest = body
    while True:  # one gzip member per pass; concatenated members are one body
        member = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += member.decompress(rest, limit + 1 - len(out))
        except zlib.error as e:
            raise _invalid(GZIP, e) from None
        if len(out) > limit:
            raise _too_large(GZIP, limit)
        if not member.eof:
            msg = "it ends before its last member does"
            raise _invalid(GZIP, msg)
        rest = member.unused_data
        if not rest:
            return out  # not copied to bytes: the decoders take a bytearray


def _unzstd(body: Body, limit: int) -> bytearray:
    reader = pa.input_stream(pa.py_buffer(body), compression="zstd")
    out = bytearray()  # grown, not joined from chunks: the body is never held twice
    try:
        while chunk := reader.read(min(CHUNK, limit + 1 - len(out))):
            out += chunk
            if len(out) > limit:
                raise _too_large(ZSTD, limit)
    except (OSError, pa.ArrowException) as e:
        raise _invalid(ZSTD, e) from None
    return out


_DECODERS: dict[str, Callable[[Body, int], Body]] = {
    GZIP: _gunzip,
    "x-gzip": _gunzip,
    ZSTD: _unzstd,
}
