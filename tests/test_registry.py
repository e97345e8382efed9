"""Interning names and series; the two indexes point at the same series ids."""

from __future__ import annotations

import numpy as np
import pytest

from minutely.model import PointBatch
from minutely.registry import Registry


def test_interning_is_dense_stable_and_indexed_both_ways() -> None:
    reg = Registry()
    b = PointBatch.from_names(
        ["web-1", "web-2", "web-1", "web-1"], ["cpu", "cpu", "mem", "cpu"], [0] * 4, [0] * 4
    )
    sids = reg.series_ids(b)
    assert sids[0] == sids[3] and len(set(sids.tolist())) == 3 and reg.n_series == 3
    again = reg.series_ids(b)
    assert np.array_equal(sids, again)
    web1 = reg.servers.get("web-1")
    cpu = reg.metrics.get("cpu")
    assert web1 is not None and cpu is not None
    by_server, metric_ids = reg.by_server(web1)
    assert sorted(reg.metrics.name(i) for i in metric_ids.tolist()) == ["cpu", "mem"]
    by_metric, server_ids = reg.by_metric(cpu)
    assert sorted(reg.servers.name(i) for i in server_ids.tolist()) == ["web-1", "web-2"]
    shared = set(by_server.tolist()) & set(by_metric.tolist())
    assert shared == {int(sids[0])}
    s_of, m_of = reg.series_of(sids)
    assert [reg.servers.name(i) for i in s_of.tolist()] == ["web-1", "web-2", "web-1", "web-1"]
    assert [reg.metrics.name(i) for i in m_of.tolist()] == ["cpu", "cpu", "mem", "cpu"]


def test_table_grows_past_initial_size() -> None:
    reg = Registry()
    servers = [f"s{i}" for i in range(40) for _ in range(50)]
    metrics = [f"m{j}" for _ in range(40) for j in range(50)]
    sids = reg.series_ids(PointBatch.from_names(servers, metrics, [0] * 2000, [0] * 2000))
    assert sorted(sids.tolist()) == list(range(2000))
    assert reg.add_series("s39", "m49") == int(sids[-1])
    assert reg.add_series("new", "m0") == 2000


def test_known_series_are_found_the_same_way_from_any_batch_names() -> None:
    # a batch whose every (server, metric) pair is a series already is looked up in a table
    # of its own names; the ids must be those of the names, whatever the batch's name order
    reg = Registry()
    rng = np.random.default_rng(4)
    servers = np.array([f"s{i}" for i in range(30)], dtype=object)
    metrics = np.array([f"m{j}" for j in range(70)], dtype=object)
    s, m = np.divmod(rng.permutation(30 * 70), 70)
    first = reg.series_ids(
        PointBatch.from_names(servers[s], metrics[m], [0.0] * s.size, [0.0] * s.size)
    )
    want = {(servers[a], metrics[b]): int(i) for a, b, i in zip(s, m, first, strict=True)}
    for _ in range(5):
        n = 3000  # more points than the batch's names make pairs: the table path
        ps, pm = rng.integers(0, 30, n), rng.integers(0, 70, n)
        s_order, m_order = rng.permutation(30), rng.permutation(70)
        batch = PointBatch(
            servers[s_order],
            np.argsort(s_order)[ps].astype(np.int32),
            metrics[m_order],
            np.argsort(m_order)[pm].astype(np.int32),
            np.zeros(n),
            np.zeros(n),
        )
        got = reg.series_ids(batch)
        assert got.tolist() == [want[(servers[a], metrics[b])] for a, b in zip(ps, pm, strict=True)]
    assert reg.n_series == 30 * 70
    # a pair never seen makes a new series, from either path
    extra = PointBatch.from_names(
        ["s0", "s99"] * 2000, ["m99", "m0"] * 2000, [0.0] * 4000, [0.0] * 4000
    )
    ids = reg.series_ids(extra)
    assert reg.n_series == 30 * 70 + 2 and len(set(ids.tolist())) == 2
    assert np.array_equal(reg.series_ids(extra), ids)


def test_a_code_past_the_batch_names_is_an_error_not_another_series() -> None:
    reg = Registry()
    servers = np.array(["s0", "s1"], dtype=object)
    metrics = np.array(["m0", "m1"], dtype=object)
    ok = PointBatch(
        servers,
        np.array([0, 0, 1, 1], np.int32),
        metrics,
        np.array([0, 1, 0, 1], np.int32),
        np.zeros(4),
        np.zeros(4),
    )
    reg.series_ids(ok)
    bad = PointBatch(
        servers,
        np.array([0, 0, 0, 0, 1], np.int32),
        metrics,
        np.array([0, 1, 0, 2, 0], np.int32),
        np.zeros(5),
        np.zeros(5),
    )
    with pytest.raises(IndexError):
        reg.series_ids(bad)
