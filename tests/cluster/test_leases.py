"""Leases and membership on a real nats-server (``minutely.cluster.leases``)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from minutely.cluster.control import ControlConfig, ControlPlane
from minutely.cluster.leases import Lease, LeaseLost, NodeInfo
from minutely.errors import ConfigError, Unavailable
from minutely.testing.natsserver import NatsServer, free_port

MakePlane = Callable[..., ControlPlane]

A = NodeInfo("node-a", "http://127.0.0.1:9001", pid=11, started=1.0)
B = NodeInfo("node-b", "http://127.0.0.1:9002", pid=12, started=2.0)

#: short enough to wait out in a test, long enough for a loaded machine to renew within
TTL = 1.5


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def test_only_one_node_acquires_a_key(make_plane: MakePlane) -> None:
    a, b = make_plane(), make_plane()
    lease = a.leases.acquire("s.1", A)
    assert lease is not None and lease.node == "node-a" and lease.revision > 0
    assert b.leases.acquire("s.1", B) is None
    assert a.leases.acquire("s.1", A) is None  # not re-entrant either
    assert b.leases.acquire("s.2", B) is not None


def test_renew_moves_the_revision_on(make_plane: MakePlane) -> None:
    a = make_plane()
    lease = a.leases.acquire("m.0", A)
    assert lease is not None
    renewed = a.leases.renew(lease)
    assert renewed.revision > lease.revision
    assert renewed.since == lease.since
    assert renewed.valid_until >= lease.valid_until
    assert a.leases.renew(renewed).revision > renewed.revision
    with pytest.raises(LeaseLost, match=r"m\.0"):
        a.leases.renew(lease)  # a stale revision is a lost lease


def test_an_expired_lease_goes_to_another_node_and_the_old_holder_cannot_renew(
    make_plane: MakePlane,
) -> None:
    a, b = make_plane(lease_ttl=TTL), make_plane(lease_ttl=TTL)
    lease = a.leases.acquire("s.3", A)
    assert lease is not None
    assert b.leases.acquire("s.3", B) is None
    taken = None

    def b_takes_it() -> bool:
        nonlocal taken
        taken = b.leases.acquire("s.3", B)
        return taken is not None

    wait_until(b_takes_it)  # nobody renewed: the bucket's TTL removed the key
    assert taken is not None and taken.revision > lease.revision
    with pytest.raises(LeaseLost) as lost:
        a.leases.renew(lease)  # a paused holder cannot come back
    assert lost.value.key == "s.3" and lost.value.node == "node-a"
    assert b.leases.holders()["s.3"].node == "node-b"


def test_a_renewed_lease_outlives_the_ttl(make_plane: MakePlane) -> None:
    a, b = make_plane(lease_ttl=TTL), make_plane(lease_ttl=TTL)
    lease = a.leases.acquire("s.4", A)
    assert lease is not None
    deadline = time.monotonic() + 2 * TTL
    while time.monotonic() < deadline:
        time.sleep(TTL / 3)
        lease = a.leases.renew(lease)
        assert b.leases.acquire("s.4", B) is None


def test_release_lets_another_node_acquire_at_once(make_plane: MakePlane) -> None:
    a, b = make_plane(), make_plane()
    lease = a.leases.acquire("s.5", A)
    assert lease is not None
    a.leases.release(lease)
    assert "s.5" not in a.leases.holders()
    taken = b.leases.acquire("s.5", B)
    assert taken is not None
    a.leases.release(lease)  # lost already: logged, not raised, and b keeps the key
    assert b.leases.holders()["s.5"].node == "node-b"
    assert b.leases.renew(taken).revision > taken.revision


def test_holders_list_node_url_since_and_renewed(make_plane: MakePlane) -> None:
    a = make_plane()
    assert a.leases.holders() == {}
    before = time.time()
    s0 = a.leases.acquire("s.0", A)
    m1 = a.leases.acquire("m.1", B)
    assert s0 is not None and m1 is not None
    time.sleep(0.05)
    s0 = a.leases.renew(s0)
    held = a.leases.holders()
    assert list(held) == ["m.1", "s.0"]
    h = held["s.0"]
    assert (h.key, h.node, h.url, h.revision) == ("s.0", "node-a", A.url, s0.revision)
    assert before <= h.since < h.renewed <= time.time()
    assert held["m.1"].node == "node-b" and held["m.1"].renewed == held["m.1"].since


def test_membership_announce_expire_withdraw(make_plane: MakePlane) -> None:
    a, b = make_plane(lease_ttl=TTL), make_plane(lease_ttl=TTL)
    assert a.membership.nodes() == []
    b.membership.announce(B)
    a.membership.announce(A)
    assert a.membership.nodes() == [A, B]
    a.membership.withdraw("node-a")
    assert b.membership.nodes() == [B]
    wait_until(lambda: a.membership.nodes() == [])  # b stopped announcing: it expired
    odd = NodeInfo("node ü/1.", "http://[::1]:9")
    a.membership.announce(odd)
    assert b.membership.nodes() == [odd]


def test_a_bucket_with_another_ttl_is_a_config_error(make_plane: MakePlane) -> None:
    make_plane(lease_ttl=TTL)
    with pytest.raises(ConfigError, match="ttl"):
        make_plane(lease_ttl=2 * TTL)


def test_no_server_is_unavailable(tmp_path: object) -> None:
    config = ControlConfig(f"nats://127.0.0.1:{free_port()}", timeout=1.0)
    with pytest.raises(Unavailable):
        ControlPlane(config).open()


def test_after_close_calls_are_unavailable(make_plane: MakePlane) -> None:
    a = make_plane()
    a.close()
    with pytest.raises(Unavailable, match="closed"):
        a.leases.acquire("s.9", A)


def test_a_lost_server_is_unavailable(tmp_path_factory: pytest.TempPathFactory) -> None:
    with NatsServer(tmp_path_factory.mktemp("gone")) as server:
        plane = ControlPlane(ControlConfig(server.url, timeout=1.0)).open()
        try:
            assert plane.leases.acquire("s.1", A) is not None
            server.stop()
            with pytest.raises(Unavailable, match=r"s\.1"):
                plane.leases.acquire("s.1", B)
            server.start()  # back on the same port and store: the client reconnects

            def answers() -> bool:
                try:
                    return plane.leases.holders().keys() == {"s.1"}
                except Unavailable:
                    return False

            wait_until(answers)
        finally:
            plane.close()


def test_renew_all_renews_in_one_round_trip_and_names_the_lost(make_plane: MakePlane) -> None:
    """Every held lease renewed at once; one taken over meanwhile comes back as LeaseLost."""
    a, b = make_plane(), make_plane()
    held = [a.leases.acquire(f"s.{p}", A) for p in range(6)]
    leases = [x for x in held if x is not None]
    assert len(leases) == 6
    a.leases.release(leases[2])
    assert b.leases.acquire("s.2", B) is not None
    got = a.leases.renew_all(leases)
    assert isinstance(got[2], LeaseLost)
    for i in (0, 1, 3, 4, 5):
        renewed = got[i]
        assert isinstance(renewed, Lease) and renewed.revision > leases[i].revision
    assert a.leases.renew_all([]) == []
