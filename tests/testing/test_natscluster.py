"""``NatsCluster``: three real ``nats-server`` processes form one JetStream cluster; an R=3
stream keeps every acknowledged message through a SIGKILL of its leader, and the killed
server comes back on its ports and store and catches up."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import nats
import pytest
from nats.errors import NoRespondersError, TimeoutError
from nats.js.errors import NoStreamResponseError

from minutely.testing.natscluster import NatsCluster

pytestmark = pytest.mark.slow

STREAM = "KILLME"


async def _publish(js: nats.js.JetStreamContext, i: int, deadline: float) -> None:
    """Publish message ``i`` until JetStream acks it (with a message id, so a retry of one
    that was stored but not acked is not stored twice)."""
    while True:
        try:
            await js.publish(f"k.{i}", str(i).encode(), headers={"Nats-Msg-Id": f"m{i}"}, timeout=1)
            return
        except (TimeoutError, NoRespondersError, NoStreamResponseError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def test_an_r3_stream_keeps_what_was_acked_through_a_kill_of_its_leader(tmp_path: Path) -> None:
    with NatsCluster(tmp_path) as cluster:
        assert len(cluster.urls.split(",")) == 3
        assert len({cluster.pid(i) for i in range(3)}) == 3

        async def before() -> None:
            nc = await nats.connect(cluster.urls.split(","))
            js = nc.jetstream()
            await js.add_stream(name=STREAM, subjects=["k.>"], num_replicas=3)
            for i in range(50):
                await _publish(js, i, time.monotonic() + 5)
            await nc.close()

        asyncio.run(before())
        leader = cluster.stream_leader(STREAM)
        killed_pid = cluster.pid(leader)
        cluster.kill(leader)
        assert cluster.pid(leader) is None and killed_pid is not None

        async def after() -> tuple[int, set[bytes]]:
            urls = [u for i, u in enumerate(cluster.urls.split(",")) if i != leader]
            nc = await nats.connect(urls)
            js = nc.jetstream()
            start = time.monotonic()
            for i in range(50, 100):
                await _publish(js, i, start + 10)
            assert time.monotonic() - start < 10
            info = await js.stream_info(STREAM)
            got = set()
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                got.add((await js.get_msg(STREAM, seq)).data or b"")
            await nc.close()
            return info.state.messages, got

        count, got = asyncio.run(after())
        assert count == 100  # every acked message, none twice
        assert got == {str(i).encode() for i in range(100)}
        assert cluster.stream_leader(STREAM) != leader

        cluster.start(leader)  # same ports, same store: it rejoins and catches up
        assert cluster.pid(leader) not in (None, killed_pid)
        deadline = time.monotonic() + 15
        while _messages(cluster, leader) != 100:
            assert time.monotonic() < deadline, "the restarted server did not catch up"
            time.sleep(0.1)


def _messages(cluster: NatsCluster, i: int) -> int | None:
    """How many messages server ``i``'s replica of the stream holds."""
    jsz = cluster.servers[i].jsz(streams="true") or {}
    for account in jsz.get("account_details") or []:
        for detail in account.get("stream_detail") or []:
            if detail.get("name") == STREAM:
                return int(detail["state"]["messages"])
    return None
