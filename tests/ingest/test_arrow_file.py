"""The Arrow IPC *file* form on the Arrow content type: read like the stream (same columns,
same answers), told apart by its ARROW1 magic, and named when it is broken."""

from __future__ import annotations

import pyarrow as pa
import pytest

from minutely.errors import DecodeError
from tests.ingest.helpers import reasons, rows
from tests.ingest.test_arrow import decode_arrow, good, stream


def ipc_file(*batches: pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, batches[0].schema) as w:
        for b in batches:
            w.write_batch(b)
    return bytes(sink.getvalue().to_pybytes())


def test_a_file_decodes_as_its_stream_does() -> None:
    batches = [good(3), good(2, value=pa.array([float("nan"), 4.0]))]
    from_file = decode_arrow(ipc_file(*batches))
    from_stream = decode_arrow(stream(*batches))
    assert from_file.accepted == from_stream.accepted == 4
    assert rows(from_file) == rows(from_stream)
    assert reasons(from_file) == reasons(from_stream)


def test_an_empty_file_accepts_nothing() -> None:
    empty = ipc_file(good(0))
    assert decode_arrow(empty).accepted == 0


def test_a_broken_file_is_named_as_a_file() -> None:
    body = ipc_file(good(100))
    with pytest.raises(DecodeError, match="not a valid Arrow IPC file"):
        decode_arrow(body[: len(body) // 2])


def test_a_broken_stream_names_the_file_form_too() -> None:
    with pytest.raises(DecodeError, match=r"stream \(nor an IPC file, which begins with ARROW1"):
        decode_arrow(b"not arrow at all")
