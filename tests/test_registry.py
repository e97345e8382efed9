"""Interning names and series; the two indexes point at the same series ids.

Every behaviour is checked in both layouts of the pair → series map (``LAYOUTS``): the dense
table, the sparse index (a bound of zero cells), and a registry whose bound is low enough that
it moves between the two as names and series arrive.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minutely.model import PointBatch
from minutely.registry import Names, Registry
from minutely.store.names import build_registry

#: registries that start dense, are always sparse, and switch at 4 cells a series
BOUNDS: dict[str, dict[str, int]] = {
    "dense": {},
    "sparse": {"dense_floor_cells": 0, "dense_cells_per_series": 0},
    "switching": {"dense_floor_cells": 0, "dense_cells_per_series": 4},
}
LAYOUTS: dict[str, Callable[[], Registry]] = {
    shape: (lambda bounds=bounds: Registry(**bounds)) for shape, bounds in BOUNDS.items()
}


@pytest.fixture(params=list(LAYOUTS))
def new_registry(request: pytest.FixtureRequest) -> Callable[[], Registry]:
    make: Callable[[], Registry] = LAYOUTS[request.param]
    return make


def test_interning_is_dense_stable_and_indexed_both_ways(
    new_registry: Callable[[], Registry],
) -> None:
    reg = new_registry()
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


def test_table_grows_past_initial_size(
    new_registry: Callable[[], Registry],
) -> None:
    reg = new_registry()
    servers = [f"s{i}" for i in range(40) for _ in range(50)]
    metrics = [f"m{j}" for _ in range(40) for j in range(50)]
    sids = reg.series_ids(PointBatch.from_names(servers, metrics, [0] * 2000, [0] * 2000))
    assert sorted(sids.tolist()) == list(range(2000))
    assert reg.add_series("s39", "m49") == int(sids[-1])
    assert reg.add_series("new", "m0") == 2000


def test_known_series_are_found_the_same_way_from_any_batch_names(
    new_registry: Callable[[], Registry],
) -> None:
    # a batch whose every (server, metric) pair is a series already is looked up in a table
    # of its own names; the ids must be those of the names, whatever the batch's name order
    reg = new_registry()
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


def test_a_code_past_the_batch_names_is_an_error_not_another_series(
    new_registry: Callable[[], Registry],
) -> None:
    reg = new_registry()
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


def test_the_layout_follows_names_and_series_both_ways() -> None:
    # at 4 cells a series with no floor, a 16 x 16 table needs 64 series, 32 x 16 needs 128
    reg = LAYOUTS["switching"]()
    assert reg.layout == "sparse"
    grid = [(f"s{i}", f"m{j}") for i in range(16) for j in range(4)]
    ids = reg.series_ids(PointBatch.from_names(*zip(*grid, strict=True), [0] * 64, [0] * 64))
    assert reg.layout == "dense" and sorted(ids.tolist()) == list(range(64))
    assert reg.add_series("s16", "m0") == 64  # a 17th server doubles the table: 512 > 260
    assert reg.layout == "sparse"
    more = [(f"s{i}", f"m{j}") for i in range(17) for j in range(4, 8)]
    reg.series_ids(PointBatch.from_names(*zip(*more, strict=True), [0] * 68, [0] * 68))
    assert reg.layout == "dense" and reg.n_series == 133
    for (server, metric), want in zip(grid, ids.tolist(), strict=True):
        assert reg.add_series(server, metric) == want
    s16 = reg.servers.get("s16")
    assert s16 is not None
    assert reg.by_server(s16)[0].tolist()[0] == 64
    assert reg.n_series == 133


def test_the_seed_fleet_is_dense_from_its_first_batch() -> None:
    reg = Registry()
    s, m = np.divmod(np.arange(1000 * 2000, dtype=np.int32), np.int32(2000))
    servers = np.array([f"web-{i}" for i in range(1000)], dtype=object)
    metrics = np.array([f"metric.{j}" for j in range(2000)], dtype=object)
    zeros = np.zeros(s.size)
    ids = reg.series_ids(PointBatch(servers, s, metrics, m, zeros, zeros))
    assert reg.layout == "dense" and np.array_equal(ids, np.arange(s.size))


def test_many_metrics_on_one_server_then_many_servers_stay_small() -> None:
    # one server with 200,000 metrics, then 200,000 servers with one of them each: a dense
    # table would be 2^18 x 2^18 cells (256 GiB)
    n = 200_000
    metrics = np.array([f"metric.{i}" for i in range(n)], dtype=object)
    servers = np.array([f"host-{i}" for i in range(n)], dtype=object)
    codes = np.arange(n, dtype=np.int32)
    zeros = np.zeros(n)
    reg = Registry()
    tracemalloc.start()
    try:
        first = reg.series_ids(
            PointBatch(np.array(["solo"], dtype=object), codes * 0, metrics, codes, zeros, zeros)
        )
        second = reg.series_ids(PointBatch(servers, codes, metrics, codes, zeros, zeros))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 << 20, f"{peak / 2**20:.0f} MiB"
    assert reg.layout == "sparse" and reg.n_series == 2 * n
    assert np.array_equal(first, codes) and np.array_equal(second, codes + n)
    # host-i is server i + 1; metric.i is metric i
    assert np.array_equal(reg.lookup(codes + 1, codes), codes + n)
    assert np.array_equal(reg.lookup(np.zeros(n, np.int32), codes), codes)
    assert reg.lookup([1, 0, -1, 2 * n, 5], [0, n, 0, 0, 7]).tolist() == [n, -1, -1, -1, -1]
    series, metric_ids = reg.by_server(0)
    assert np.array_equal(series, codes) and np.array_equal(metric_ids, codes)
    assert [a.tolist() for a in reg.by_server(1 + 7)] == [[n + 7], [7]]
    assert [a.tolist() for a in reg.by_metric(7)] == [[7, n + 7], [0, 8]]
    s_of, m_of = reg.series_of(np.array([3, n + 3], dtype=np.int32))
    assert s_of.tolist() == [0, 4] and m_of.tolist() == [3, 3]
    # both again: known series, through the batch's sub-table and through every point
    again = reg.series_ids(
        PointBatch(np.array(["solo"], dtype=object), codes * 0, metrics, codes, zeros, zeros)
    )
    assert np.array_equal(again, first)
    assert np.array_equal(
        reg.series_ids(PointBatch(servers, codes, metrics, codes, zeros, zeros)), second
    )
    assert reg.n_series == 2 * n


_pairs = st.lists(st.tuples(st.integers(0, 23), st.integers(0, 23)), min_size=1, max_size=60)
# every pair of some servers and metrics, each point several times: the sub-table path
_grids = st.builds(
    lambda s, m, k: [(a, b) for a in sorted(s) for b in sorted(m)] * k,
    st.sets(st.integers(0, 23), min_size=1, max_size=6),
    st.sets(st.integers(0, 23), min_size=1, max_size=6),
    st.integers(1, 3),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(_pairs, _grids), min_size=1, max_size=12), st.integers(0, 2**32 - 1))
def test_every_layout_numbers_and_indexes_series_alike(
    batches: list[list[tuple[int, int]]], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    regs = {name: make() for name, make in LAYOUTS.items()}
    server_ids: dict[str, int] = {}
    metric_ids: dict[str, int] = {}
    series: dict[tuple[int, int], int] = {}
    for pairs in batches:
        s_names = [f"s{a}" for a, _ in pairs]
        m_names = [f"m{b}" for _, b in pairs]
        batch = _shuffled_names(
            PointBatch.from_names(s_names, m_names, [0.0] * len(pairs), [0.0] * len(pairs)), rng
        )
        # the model: names numbered in the batch's name order, new pairs in id order
        for name in batch.server_names.tolist():
            server_ids.setdefault(name, len(server_ids))
        for name in batch.metric_names.tolist():
            metric_ids.setdefault(name, len(metric_ids))
        keys = [(server_ids[a], metric_ids[b]) for a, b in zip(s_names, m_names, strict=True)]
        for key in sorted(set(keys) - series.keys()):
            series[key] = len(series)
        want = [series[key] for key in keys]
        for name, reg in regs.items():
            assert reg.series_ids(batch).tolist() == want, name
    n_s, n_m = len(server_ids), len(metric_ids)
    s_grid, m_grid = np.meshgrid(np.arange(-1, n_s + 2), np.arange(-1, n_m + 2))
    want_lookup = [series.get((a, b), -1) for a, b in zip(s_grid.flat, m_grid.flat, strict=True)]
    everything = np.arange(len(series), dtype=np.int32)
    for name, reg in regs.items():
        assert reg.n_series == len(series), name
        got = reg.series_of(everything)
        assert list(zip(*(a.tolist() for a in got), strict=True)) == list(series), name
        assert reg.lookup(s_grid.ravel(), m_grid.ravel()).tolist() == want_lookup, name
        for s in range(-1, n_s + 2):
            mine = sorted((b, i) for (a, b), i in series.items() if a == s)
            ids, ms = reg.by_server(s)
            assert list(zip(ms.tolist(), ids.tolist(), strict=True)) == mine, (name, s)
        for m in range(-1, n_m + 2):
            mine = sorted((a, i) for (a, b), i in series.items() if b == m)
            ids, ss = reg.by_metric(m)
            assert list(zip(ss.tolist(), ids.tolist(), strict=True)) == mine, (name, m)


def _shuffled_names(batch: PointBatch, rng: np.random.Generator) -> PointBatch:
    """The same points with the batch's name arrays in another order."""
    s_order = rng.permutation(len(batch.server_names))
    m_order = rng.permutation(len(batch.metric_names))
    return PointBatch(
        batch.server_names[s_order],
        np.argsort(s_order).astype(np.int32)[batch.server_codes],
        batch.metric_names[m_order],
        np.argsort(m_order).astype(np.int32)[batch.metric_codes],
        batch.ts,
        batch.value,
    )


@pytest.mark.parametrize("shape", ["fleet", "wide then tall"])
def test_a_registry_built_from_stored_names_has_their_series(shape: str) -> None:
    if shape == "fleet":  # every server has every metric: a dense table
        n_servers, n_metrics = 40, 60
        s, m = np.divmod(np.arange(n_servers * n_metrics, dtype=np.uint32), np.uint32(n_metrics))
    else:  # 5,000 metrics on server 0, then servers 1 … 5,000 with one each: sparse
        n_servers, n_metrics = 5001, 5000
        wide = np.arange(5000, dtype=np.uint32)
        s = np.concatenate((np.zeros(5000, np.uint32), wide + 1))
        m = np.concatenate((wide, wide))
    servers = [f"s{i}" for i in range(n_servers)]
    metrics = [f"m{j}" for j in range(n_metrics)]
    reg = build_registry(servers, metrics, s, m)
    assert reg.layout == ("dense" if shape == "fleet" else "sparse")
    assert reg.servers.names() == servers and reg.metrics.names() == metrics
    ids = reg.lookup(s, m)
    assert reg.n_series == len(s) and sorted(ids.tolist()) == list(range(len(s)))
    s_of, m_of = reg.series_of(ids)
    assert np.array_equal(s_of, s) and np.array_equal(m_of, m)
    series, metric_ids = reg.by_server(0)
    assert np.array_equal(metric_ids, m[s == 0]) and np.array_equal(series, ids[s == 0])


def test_names_from_an_allocator_keep_its_ids_and_are_shared() -> None:
    """A cluster node's shards share one ``Names`` whose ids come from the cluster: gaps
    hold no name, an id seen first elsewhere is found through ``known``."""
    given = {"web-1": 5, "db-1": 2}
    cluster: dict[str, int] = dict(given)

    def allocate(new: list[str]) -> list[int]:
        out = []
        for name in new:
            cluster.setdefault(name, max(cluster.values()) + 1)
            out.append(cluster[name])
        return out

    servers = Names(allocate=allocate, known=lambda: dict(cluster))
    a = Registry(servers=servers)
    b = Registry(servers=servers)
    batch = PointBatch.from_names(["web-1", "new-1"], ["cpu", "cpu"], [0.0, 0.0], [1.0, 2.0])
    a.series_ids(batch)
    assert servers.get("web-1") == 5 and servers.get("new-1") == 6
    assert len(servers) == 7 and servers.names() == ["web-1", "new-1"]
    cluster["elsewhere"] = 9  # allocated by another node
    assert servers.name(9) == "elsewhere"
    # the second registry numbers its own series over the same names
    sids = b.ensure_series(np.array([2, 9]), np.array([0, 0]))
    assert sids.tolist() == [0, 1] and b.n_series == 2
    assert b.ensure_series(np.array([9]), np.array([0])).tolist() == [1]
    with pytest.raises(KeyError):
        servers.name(3)


@pytest.mark.parametrize("shape", list(BOUNDS))
def test_series_numbered_before_their_names_are_learnt_are_indexed(shape: str) -> None:
    """A shard that takes a partition over numbers its series from the ids in a checkpoint
    or the store, before this node has learnt those names: both indexes still list every
    one, and the names are learnt when asked for (a node that had folded no point of the
    partition once answered nothing for its servers)."""
    servers_of = {f"web-{i:02d}": i for i in range(8)}
    metrics_of = {f"cpu.{i}": i for i in range(40)}
    servers = Names(known=lambda: dict(servers_of))
    metrics = Names(known=lambda: dict(metrics_of))
    reg = Registry(servers=servers, metrics=metrics, **BOUNDS[shape])
    s = np.repeat([0, 3], 40)
    m = np.tile(np.arange(40), 2)
    ids = reg.ensure_series(s, m)
    assert len(metrics) == 0  # nothing learnt yet
    got, metric_ids = reg.by_server(servers.get("web-03"))  # type: ignore[arg-type]
    assert np.array_equal(metric_ids, np.arange(40)) and np.array_equal(got, ids[s == 3])
    got, server_ids = reg.by_metric(39)
    assert server_ids.tolist() == [0, 3] and got.tolist() == ids[m == 39].tolist()
    assert metrics.name(39) == "cpu.39"


def test_the_index_of_17k_servers_by_17k_names_follows_its_34k_series() -> None:
    """Two metrics a server, each name on two servers: a dense table would be 2^15 × 2^15
    cells (4 GiB); the registry's arrays hold tens of bytes a series."""
    n = 17_000
    servers = np.array([f"host-{i}" for i in range(n)], dtype=object)
    metrics = np.array([f"app.metric.{i}" for i in range(n)], dtype=object)
    s_codes = np.repeat(np.arange(n, dtype=np.int32), 2)
    m_codes = (s_codes + np.tile(np.arange(2, dtype=np.int32), n)) % n
    zeros = np.zeros(2 * n)
    reg = Registry()
    ids = reg.series_ids(PointBatch(servers, s_codes, metrics, m_codes, zeros, zeros))
    assert reg.layout == "sparse" and reg.n_series == 2 * n
    assert np.array_equal(np.sort(ids), np.arange(2 * n))
    assert reg.nbytes < 100 * 2 * n, reg.nbytes
