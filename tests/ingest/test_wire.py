"""The compiled readers every scanner shares, against Python's own: ``float`` for decimals,
``int`` for integers, the protobuf varint; and the series cache's look-ups."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from minutely.ingest import wire
from minutely.ingest.labels import LabelMapping

DECIMALS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: f"{x:.6f}"),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: f"{x:.3e}"),
    st.integers(-(10**25), 10**25).map(str),
    st.from_regex(r"\A[+-]?[0-9]{0,20}(\.[0-9]{0,20})?([eE][+-]?[0-9]{1,4})?\Z"),
    st.text(alphabet="0123456789.eE+-_ infa", max_size=12),
)


def _buf(text: bytes) -> np.ndarray:
    return np.frombuffer(text, dtype=np.uint8)


@settings(max_examples=2000, deadline=None)
@given(DECIMALS)
def test_decimal_is_pythons_float_when_it_answers(text: str) -> None:
    raw = text.encode()
    kind, value = wire.decimal(_buf(raw), 0, len(raw))
    try:
        want = float(raw)
    except ValueError:
        want = None
    if kind == wire.EXACT:
        assert want is not None
        assert np.float64(value).view("u8") == np.float64(want).view("u8"), (raw, value, want)
    elif kind == wire.HARD:  # in the grammar: Python's float is the one to round it
        assert want is not None
    else:
        assert kind == wire.NOT_DECIMAL


def test_decimal_takes_the_common_forms_itself() -> None:
    for text in (b"12.5", b"-0.001", b"97.125", b"1e3", b"+3", b".5", b"5.", b"0", b"-0.0"):
        kind, value = wire.decimal(_buf(text), 0, len(text))
        assert kind == wire.EXACT and value == float(text)
    for text in (b"0.30000000000000004", b"1e300", b"123456789012345678901"):
        assert wire.decimal(_buf(text), 0, len(text))[0] == wire.HARD
    for text in (b"", b"nan", b"inf", b"1_0", b"1e", b"e5", b".", b"--1", b"1.2.3"):
        assert wire.decimal(_buf(text), 0, len(text))[0] == wire.NOT_DECIMAL


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="0123456789-+_ ", max_size=22))
def test_integer_is_pythons_int_when_it_answers(text: str) -> None:
    raw = text.encode()
    ok, value = wire.integer(_buf(raw), 0, len(raw))
    if ok:
        assert value == int(raw)


@settings(deadline=None)
@given(st.integers(0, 2**64 - 1))
def test_varint_round_trip(n: int) -> None:
    out = bytearray()
    m = n
    while True:
        byte, m = m & 0x7F, m >> 7
        out.append(byte | (0x80 if m else 0))
        if not m:
            break
    value, end = wire.varint(_buf(bytes(out)), 0, len(out))
    assert end == len(out)
    assert value % 2**64 == n
    assert wire.varint(_buf(bytes(out[:-1])), 0, len(out) - 1)[1] == -1  # cut short


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.binary(max_size=20), st.binary(max_size=20))
def test_hash_span_depends_on_the_bytes_not_where_they_sit(
    key: bytes, before: bytes, after: bytes
) -> None:
    """The same key hashes the same at every offset of every buffer (words read across
    alignments, the tail byte by byte), and a changed byte changes the hash here."""
    alone = _buf(key)
    want = wire.hash_span(alone, wire.words_of(alone), 0, len(key))
    buf = _buf(before + key + after)
    at = len(before)
    assert wire.hash_span(buf, wire.words_of(buf), at, at + len(key)) == want
    if key:
        flipped = _buf(bytes([key[0] ^ 1]) + key[1:])
        assert wire.hash_span(flipped, wire.words_of(flipped), 0, len(key)) != want


@given(st.lists(st.integers(-1, 6), max_size=30), st.integers(7, 9))
def test_names_keep_only_the_used_names_in_code_order(codes: list[int], size: int) -> None:
    names = np.array([f"n{i}" for i in range(size)], dtype=object)
    table = wire.SeriesTable(
        np.array(codes, dtype=np.int32), np.zeros(len(codes), dtype=np.int32), names, names[:1]
    )
    server, _ = table.names(np.arange(len(codes), dtype=np.int32))
    assert server.names.tolist() == [f"n{c}" for c in sorted(set(codes) - {-1})]
    got = [None if c < 0 else server.names[c] for c in server.codes.tolist()]
    assert got == [None if c < 0 else f"n{c}" for c in codes]


def _cache(calls: list[bytes], max_series: int = 1 << 18) -> wire.SeriesCache:
    def resolve(key: bytes) -> tuple[str | None, str] | None:
        calls.append(key)
        if key.startswith(b"bad"):
            return None
        return key.decode().split("/")[0], key.decode()

    return wire.SeriesCache(LabelMapping(), resolve, max_series)


def _keys(keys: list[bytes]) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray]:
    body = b"".join(keys)
    spans = np.zeros((len(keys), 4), dtype=np.int64)
    at = 0
    for k, key in enumerate(keys):
        spans[k] = (at, at + len(key), at + len(key), at + len(key))
        at += len(key)
    hashes = np.array(
        [wire.fnv(_buf(key), 0, len(key), wire.FNV_OFFSET) for key in keys], dtype=np.uint64
    )
    return body, _buf(body), spans, hashes


def test_cache_resolves_a_key_once_and_tells_colliding_keys_apart() -> None:
    calls: list[bytes] = []
    cache = _cache(calls)
    body, buf, spans, hashes = _keys([b"a/x", b"b/y", b"a/x", b"bad", b"a/z"])
    hashes[4] = hashes[0]  # a collision: a/z must not be read as a/x
    ids, table = cache.series_of(body, buf, spans, hashes)
    assert ids[0] == ids[2] and ids[3] == -1 and ids[4] != ids[0]
    assert [table.metric(int(i)) for i in ids[[0, 1, 4]]] == ["a/x", "b/y", "a/z"]
    calls.clear()
    ids2, table2 = cache.series_of(body, buf, spans, hashes)
    assert [table2.metric(int(i)) for i in ids2[[0, 1, 2, 4]]] == ["a/x", "b/y", "a/x", "a/z"]
    assert b"a/x" not in calls and b"b/y" not in calls  # known keys cost no resolve
    server, _ = table2.names(ids2[ids2 >= 0])
    assert server.names[server.codes].tolist() == ["a", "b", "a", "a"]


def test_a_full_cache_starts_over_and_old_tables_stay_true() -> None:
    cache = _cache([], max_series=3)
    body, buf, spans, hashes = _keys([b"a/1", b"a/2"])
    ids, table = cache.series_of(body, buf, spans, hashes)
    body2, buf2, spans2, hashes2 = _keys([b"b/1", b"b/2"])
    ids2, table2 = cache.series_of(body2, buf2, spans2, hashes2)
    assert [table.metric(int(i)) for i in ids] == ["a/1", "a/2"]
    assert [table2.metric(int(i)) for i in ids2] == ["b/1", "b/2"]
    assert len(cache) == 2
