"""The Graphite listener over a real socket, with a fake node behind it: a limit that refuses
a chunk never holds the connection (no reply channel to retry on), and every dropped point
is counted by its limit."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import numpy.typing as npt
import pytest

from minutely.errors import Backpressure, PayloadTooLarge, SeriesLimit
from minutely.graphite_server import MAX_LINE, GraphiteListener
from minutely.ingest import Decoded
from minutely.ingest.labels import LabelMapping
from minutely.ingest.series import Decoder, Limits
from minutely.limits import Refusals
from minutely.model import PointBatch


class FakeNode:
    """Takes what ``refuse`` lets through; every series whose server is ``new-`` is new."""

    def __init__(self, refuse: list[BaseException | None]) -> None:
        self.refuse = refuse
        self.refusals = Refusals()
        self.taken: list[PointBatch] = []
        self.offers = 0

    @property
    def label_mapping(self) -> LabelMapping:
        return LabelMapping()

    def new_points(self, batch: PointBatch) -> npt.NDArray[np.bool_] | None:
        servers = batch.server_names[batch.server_codes].astype(str)
        new = np.char.startswith(servers, "new-")
        return new if new.any() else None

    async def ingest_with(
        self, decoder: Decoder, body: bytes = b"", idempotency_key: str | None = None
    ) -> Decoded:
        self.offers += 1
        decoded = decoder(Limits(1e10, 0.0, 1e10, 100, "the hot window", 256))
        error = self.refuse.pop(0) if self.refuse else None
        if error is not None:
            raise error
        self.taken.append(decoded.batch)
        return decoded


def serve(node: FakeNode, payload: bytes) -> GraphiteListener:
    """Send ``payload`` on one connection, close it, and wait until each of its points is
    taken or counted as dropped."""

    async def main() -> GraphiteListener:
        # bound and listening already: the connection waits for the task that serves it
        listener = GraphiteListener(node, "127.0.0.1", 0, server_node=0).listen()
        _, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(payload)
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        counts = listener.counts
        for _ in range(1000):
            if counts.accepted + sum(counts.refused.values()) >= payload.count(b"\n"):
                break
            await asyncio.sleep(0.01)
        await listener.close()
        return listener

    return asyncio.run(main())


LINES = b"".join(
    f"{server}.cpu {value} 1700000000\n".encode()
    for server, value in [("web-1", 1.5), ("new-1", 2.5), ("web-1", 3.5), ("new-2", 4.5)]
)


def limit(name: str) -> SeriesLimit:
    message = f"over the limit of 3 series ({name}); nothing of the request was taken"
    return SeriesLimit(message, name, 60.0)


def test_a_series_limit_drops_the_new_series_lines_and_takes_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    node = FakeNode([limit("max_series"), None])
    with caplog.at_level(logging.WARNING, "minutely.graphite_server"):
        listener = serve(node, LINES)
    assert node.offers == 2
    (taken,) = node.taken
    assert taken.server_names.tolist() == ["web-1"]  # no name of a dropped point
    assert taken.value.tolist() == [1.5, 3.5]
    assert listener.counts.accepted == 2
    assert listener.counts.refused == {"max_series": 2}
    assert node.refusals.snapshot() == {"max_series": 1}
    (logged,) = [r.getMessage() for r in caplog.records if "graphite: dropped" in r.getMessage()]
    assert "dropped 2 points by max_series (over the limit of 3 series" in logged
    assert "nothing of the request was taken" not in logged


def test_a_chunk_refused_twice_is_dropped_and_never_offered_again() -> None:
    node = FakeNode([limit("max_new_series_per_minute")] * 2)
    listener = serve(node, LINES)
    assert node.offers == 2 and node.taken == []
    assert listener.counts.refused == {"max_new_series_per_minute": 4}
    assert listener.counts.accepted == 0


def test_a_chunk_over_max_points_per_request_is_dropped_whole() -> None:
    node = FakeNode([PayloadTooLarge("4 points is over ...", "max_points_per_request")])
    listener = serve(node, LINES)
    assert node.offers == 1 and node.taken == []
    assert listener.counts.refused == {"max_points_per_request": 4}
    assert node.refusals.snapshot() == {"max_points_per_request": 1}


def test_a_full_bus_is_waited_for_and_nothing_dropped() -> None:
    node = FakeNode([Backpressure("full", 0.01), Backpressure("full", 0.01), None])
    listener = serve(node, LINES)
    assert node.offers == 3 and len(node.taken) == 1
    assert listener.counts.accepted == 4 and listener.counts.refused == {}
    assert listener.counts.waits == 2


def test_a_line_past_max_line_is_refused_whole_and_its_tail_never_read_as_a_line() -> None:
    node = FakeNode([])
    tail = b"web-1.cpu 7 1700000000"  # a good line on its own, were the long one cut here

    async def main() -> GraphiteListener:
        listener = GraphiteListener(node, "127.0.0.1", 0, server_node=0).listen()
        _, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        for lines, data in enumerate((b"web-1.cpu 1 1700000000\n", b"x" * (MAX_LINE + 10)), 1):
            writer.write(data)
            await writer.drain()
            for _ in range(500):  # until the listener has read this piece on its own
                if listener.counts.accepted + listener.counts.rejected >= lines:
                    break
                await asyncio.sleep(0.01)
        writer.write(tail + b"\n" + tail.replace(b"7", b"8") + b"\n")
        writer.close()
        await writer.wait_closed()
        for _ in range(1000):
            if listener.counts.accepted >= 2:
                break
            await asyncio.sleep(0.01)
        await listener.close()
        return listener

    listener = asyncio.run(main())
    assert [v for batch in node.taken for v in batch.value.tolist()] == [1.0, 8.0]
    assert (listener.counts.accepted, listener.counts.rejected) == (2, 1)
    assert listener.counts.reasons == {"malformed": 1}
