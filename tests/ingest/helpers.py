"""What the ingest tests read back from a ``Decoded``: the points as rows, the errors as pairs."""

from __future__ import annotations

from minutely.ingest import Decoded


def rows(d: Decoded) -> list[tuple[str, str, float, float]]:
    """The accepted points as ``(server, metric, ts, value)`` tuples, in order."""
    b = d.batch
    return list(
        zip(
            b.server_names[b.server_codes].tolist(),
            b.metric_names[b.metric_codes].tolist(),
            b.ts.tolist(),
            b.value.tolist(),
            strict=True,
        )
    )


def reasons(d: Decoded) -> list[tuple[int, str]]:
    return [(e.index, e.reason) for e in d.errors]


def assert_same_decoded(got: Decoded, want: Decoded) -> None:
    """The same points (names, and times and values bit for bit) and the same reasons."""
    assert (got.accepted, got.rejected) == (want.accepted, want.rejected)
    assert got.errors == want.errors
    a, b = got.batch, want.batch
    assert a.server_names[a.server_codes].tolist() == b.server_names[b.server_codes].tolist()
    assert a.metric_names[a.metric_codes].tolist() == b.metric_names[b.metric_codes].tolist()
    assert a.ts.view("u8").tolist() == b.ts.view("u8").tolist()
    assert a.value.view("u8").tolist() == b.value.view("u8").tolist()
