"""Partition keys, rendezvous ownership and KV-safe names (``minutely.cluster.keys``)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minutely.cluster.keys import (
    assignment,
    copy_of,
    decode_name,
    encode_name,
    owner_of,
    partition_key,
)

#: what nats-py accepts as a KV key
KV_KEY = re.compile(r"^[-/_=.a-zA-Z0-9]+$")

KEYS = [partition_key(copy, p) for copy in ("server", "metric") for p in range(32)]
NODES = ["node-a", "node-b", "node-c"]


def test_partition_keys_round_trip() -> None:
    assert partition_key("server", 7) == "s.7"
    assert partition_key("metric", 0) == "m.0"
    assert copy_of("s.7") == ("server", 7)
    assert copy_of("m.12") == ("metric", 12)
    for bad in ("x.1", "s.", "s", "s.-1", "s.1.2", "m.٣"):
        with pytest.raises(ValueError):
            copy_of(bad)
    with pytest.raises(ValueError):
        partition_key("server", -1)


def test_owner_is_one_of_the_nodes_and_ignores_their_order() -> None:
    assert owner_of("s.1", []) is None
    assert assignment(KEYS, []) == {}
    for key in KEYS:
        owner = owner_of(key, NODES)
        assert owner in NODES
        assert owner_of(key, list(reversed(NODES))) == owner


def test_owner_is_the_same_in_another_process() -> None:
    """BLAKE2b, not ``hash()``: a fresh interpreter (another hash seed) agrees."""
    here = assignment(KEYS, NODES)
    code = (
        "import json; from minutely.cluster.keys import assignment;"
        f"print(json.dumps(assignment({KEYS!r}, {NODES!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        env={"PYTHONHASHSEED": "12345"},
    ).stdout
    assert json.loads(out) == here


@pytest.mark.parametrize(
    "nodes", [NODES, ["n1", "n2", "n3"], ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"]]
)
def test_balanced(nodes: list[str]) -> None:
    counts = Counter(assignment(KEYS, nodes).values())
    assert sorted(counts) == sorted(nodes)
    assert min(counts.values()) >= 12, counts


def test_a_leaver_moves_its_own_keys_and_few_others() -> None:
    before = assignment(KEYS, [*NODES, "node-d"])
    after = assignment(KEYS, NODES)
    moved = {k for k in KEYS if before[k] != after[k]}
    own = {k for k in KEYS if before[k] == "node-d"}
    assert own and own <= moved
    assert len(moved - own) <= len(KEYS) // len(NODES) // 4, (len(own), len(moved))


def test_a_joiner_takes_its_share_and_few_others_move() -> None:
    before = assignment(KEYS, NODES)
    after = assignment(KEYS, [*NODES, "node-d"])
    moved = {k for k in KEYS if before[k] != after[k]}
    taken = {k for k in KEYS if after[k] == "node-d"}
    assert taken <= moved and 0 < len(moved) < len(KEYS) / 2
    assert len(moved - taken) <= len(KEYS) // (len(NODES) + 1) // 4, (len(taken), len(moved))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7])
def test_shares_differ_by_one_key_at_most(n: int) -> None:
    counts = Counter(assignment(KEYS, [f"node-{i}" for i in range(n)]).values())
    assert len(counts) == n and max(counts.values()) - min(counts.values()) <= 1, counts


@pytest.mark.parametrize(
    "name",
    ["cpu", "a.b.c", ".lead", "trail.", "spaces and\ttabs", "ünïcødé ☃ 指标", "", "a" * 300, "/"],
)
def test_encode_name_round_trips_to_a_valid_kv_key(name: str) -> None:
    if not name:
        with pytest.raises(ValueError):
            encode_name(name)
        return
    token = encode_name(name)
    assert KV_KEY.match(token)
    assert not token.startswith(".") and not token.endswith(".")
    assert decode_name(token) == name


@given(st.text(min_size=1))
def test_encode_name_is_reversible_and_injective(name: str) -> None:
    token = encode_name(name)
    assert KV_KEY.match(token)
    assert decode_name(token) == name
    assert encode_name(name + "x") != token
