"""Interning names and series; the two indexes point at the same series ids."""

from __future__ import annotations

import numpy as np

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
