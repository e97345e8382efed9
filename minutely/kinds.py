"""Each metric's kind: a gauge (a level, folded as sent) or a counter (a running total, folded
as its increases; ``counters.py``).

A kind comes from, first match wins:

1. a declaration: what a protocol said about the metric (Prometheus remote_write metadata of
   type ``COUNTER``/``GAUGE``, an OTLP sum that is monotonic or a gauge), or what a client
   sent to ``POST /api/v1/kinds`` (the simulator declares its counters there);
2. the ``counters`` setting: comma-separated glob patterns (``fnmatch``) of metric names;
3. Prometheus' naming convention: a name ending in ``_total`` is a counter;
4. otherwise a gauge.

Names are matched both whole and by their family, the part before ``{`` of a labelled name
(``http_requests_total{code="200"}`` is of family ``http_requests_total``): a declaration or a
pattern for the family covers each of its series. Declarations are few (one per family whose
kind differs from what 2–4 say) and are kept by the ``save`` callback the owner gives
(``<data_dir>/kinds.json`` on a node), before the points that taught them are published, so a
restart and a replay fold those points with the kind they were folded with.

In a cluster they are also written to a ``SharedKinds`` (``cluster/kinds.py``, a JetStream
KV bucket) before those points are published; each node reads the others' declarations from
it (``refresh``), and an aggregator calls ``learn`` with a batch's metric names before it
folds the batch, which reads everything stored there the first time a name is seen, so the
first points of a counter are folded as a counter on every node (``docs/counters.md``).
"""

from __future__ import annotations

import fnmatch
import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

Kind = Literal["gauge", "counter"]
KINDS: tuple[Kind, ...] = ("gauge", "counter")

#: Prometheus' suffix of a counter's name
COUNTER_SUFFIX = "_total"


def family(metric: str) -> str:
    """The metric's name without the labels a protocol folded into it."""
    return metric.split("{", 1)[0] if metric.endswith("}") else metric


class SharedKinds(Protocol):
    """Declarations shared by the nodes of a cluster (``cluster/kinds.py``)."""

    def write(self, changed: Mapping[str, Kind]) -> None:
        """Store ``changed`` for every node; return once it is stored."""
        ...

    def changes(self) -> dict[str, Kind]:
        """The declarations stored (by any node) since the last read."""
        ...

    def sync(self) -> dict[str, Kind]:
        """As ``changes``, covering at least every declaration stored before the call."""
        ...


class Kinds:
    """Metric name → kind; thread-safe (ingest declares while the aggregator reads)."""

    def __init__(
        self,
        patterns: Iterable[str] = (),
        declared: Mapping[str, Kind] | None = None,
        save: Callable[[dict[str, Kind]], None] | None = None,
        shared: SharedKinds | None = None,
    ) -> None:
        self.patterns = tuple(p for p in patterns if p)
        self.declared: dict[str, Kind] = dict(declared or {})
        self.save = save
        self.shared = shared
        self._lock = threading.Lock()
        #: held from a read of ``shared`` until what it read is adopted: ``shared`` hands each
        #: entry out once, so no reader may conclude it is up to date before then
        self._reading = threading.Lock()
        self._cache: dict[str, bool] = {}
        #: metric names an aggregator was cleared to fold (``learn``)
        self._learnt: set[str] = set()
        #: grows with every declaration that changed a kind (readers refresh on a change)
        self.version = 0

    def adopt(self, declared: Mapping[str, Kind]) -> None:
        """Take declarations kept earlier (at start-up) or made on other nodes, without
        saving them again."""
        with self._lock:
            self.declared = self.declared | dict(declared)
            self._cache = {}
            self.version += 1

    def _undeclared(self, name: str) -> Kind:
        base = family(name)
        for pattern in self.patterns:
            if fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(base, pattern):
                return "counter"
        return "counter" if base.endswith(COUNTER_SUFFIX) else "gauge"

    def of(self, name: str) -> Kind:
        """The kind of metric ``name``."""
        return "counter" if self.is_counter(name) else "gauge"

    def is_counter(self, name: str) -> bool:
        found = self._cache.get(name)
        if found is not None:
            return found
        kind = self.declared.get(name) or self.declared.get(family(name))
        found = (kind or self._undeclared(name)) == "counter"
        self._cache[name] = found
        return found

    def counter_mask(self, names: npt.NDArray[np.object_]) -> npt.NDArray[np.bool_]:
        """Per name of ``names`` (a batch's distinct metric names): is it a counter."""
        return np.fromiter((self.is_counter(n) for n in names.tolist()), np.bool_, len(names))

    def refresh(self) -> int:
        """Take what other nodes declared since the last look (``shared``); how many."""
        if self.shared is None:
            return 0
        with self._reading:
            got = self.shared.changes()
            if got:
                self.adopt(got)
        return len(got)

    def learn(self, names: Iterable[str]) -> None:
        """Before a batch of metrics ``names`` is folded: the first time a name comes, read
        every declaration ``shared`` holds, so one stored before its points were published
        is known when they are folded. Raises what ``shared.sync`` raises (fold nothing)."""
        if self.shared is None:
            return
        new = [name for name in names if name not in self._learnt]
        if not new:
            return
        with self._reading:
            got = self.shared.sync()
            if got:
                self.adopt(got)
        self._learnt.update(new)

    def declare(self, kinds: Mapping[str, str]) -> int:
        """Take what a protocol or client said; keeps (``shared``, ``save``) the declarations
        that change a kind before returning. Returns how many changed."""
        with self._lock:
            changed: dict[str, Kind] = {
                name: kind
                for name, kind in kinds.items()
                if kind in KINDS and self.of(name) != kind
            }
            if not changed:
                return 0
            declared = self.declared | changed
            if self.shared is not None:
                self.shared.write(changed)
            if self.save is not None:
                self.save(declared)
            self.declared = declared
            self._cache = {}
            self.version += 1
            return len(changed)


class KindsFile:
    """The declarations on one node's disk, replaced atomically."""

    NAME = "kinds.json"

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / self.NAME

    def read(self) -> dict[str, Kind]:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        return {str(k): v for k, v in raw.items() if v in KINDS}

    def write(self, declared: dict[str, Kind]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.NAME + ".tmp")
        with open(tmp, "w") as f:
            json.dump(declared, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
