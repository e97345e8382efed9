"""What the HTTP app needs of the node behind it, as narrow interfaces.

The app depends on these, never on the composition root, so it is built and tested without a
``Service`` (a fake that has these methods will do) and another node — an ingest-only node
today, a cluster's routing node later — serves the same routes by offering the same methods::

    PointSink        every node that takes points: the body limit, ingest, status
    ProtocolSink     a PointSink that also runs a protocol's own decoder (remote_write,
                     Influx, OTLP, Graphite) and says how labels map to (server, metric)
    Refusing         a node that counts refusals per limit (``limits.Refusals``)
    Lifecycle        what the app starts and stops when it manages the node's life
    Answers          the four questions and the fleet view (``query.Query`` is one)
    QueryNode        a node that answers too: a PointSink with Answers, the names it
                     knows, its clock and its dead letters
    ClusterMember    a cluster node: also answers from what it alone holds (for the
                     questions other nodes route to it) and shows the cluster
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from minutely.ingest import Decoded
from minutely.ingest.labels import LabelMapping
from minutely.ingest.series import Decoder
from minutely.ingest.validate import Body
from minutely.limits import Refusals
from minutely.query import By, SeriesAnswer, SummaryAnswer


class PointSink(Protocol):
    """A node that takes points."""

    @property
    def max_body_bytes(self) -> int:
        """The largest request body taken (413 beyond), decompressed."""
        ...

    async def ingest(
        self, body: Body, content_type: str, idempotency_key: str | None = None
    ) -> Decoded:
        """Decode, validate and accept a body; raises the errors the app maps to HTTP."""
        ...

    def status(self) -> dict[str, Any]:
        """What ``/api/v1/status`` shows."""
        ...


@runtime_checkable
class ProtocolSink(PointSink, Protocol):
    """A node that takes the ecosystem's protocols too."""

    @property
    def label_mapping(self) -> LabelMapping: ...

    async def ingest_with(
        self, decoder: Decoder, body: Body = b"", idempotency_key: str | None = None
    ) -> Decoded:
        """As ``ingest``, decoding with ``decoder`` (given the node's limits)."""
        ...


@runtime_checkable
class Refusing(Protocol):
    """A node that counts the requests refused by a limit (``minutely.limits``)."""

    @property
    def refusals(self) -> Refusals: ...


class Lifecycle(Protocol):
    def start(self) -> None: ...

    async def stop(self) -> None: ...


class Answers(Protocol):
    """The questions, as ``query.Query`` answers them (times in unix seconds)."""

    @property
    def max_cells(self) -> int:
        """The cells (series × buckets) one series answer may hold: ``max_query_cells``."""
        ...

    def series(
        self,
        by: By,
        name: str,
        start: int,
        end: int,
        step: int = 60,
        only: list[str] | None = None,
    ) -> SeriesAnswer: ...

    def summary(
        self, by: By, name: str, start: int, end: int, only: list[str] | None = None
    ) -> SummaryAnswer: ...

    def fleet(
        self, metric: str, start: int, end: int, step: int = 60, only: list[str] | None = None
    ) -> SeriesAnswer: ...

    def touches_store(self, start: int) -> bool:
        """Does an answer from ``start`` read the store (the app then answers on a thread)?"""
        ...

    def series_count(self, by: By, name: str) -> int | None:
        """How many series a question about ``name`` reads, known without reading them (0
        for an unknown name; None if not known here): the app answers a small question on
        the event loop."""
        ...


class QueryNode(PointSink, Lifecycle, Protocol):
    """A node that takes points and answers queries."""

    @property
    def answers(self) -> Answers: ...

    @property
    def clock(self) -> Callable[[], float]: ...

    def server_names(self) -> list[str]: ...

    def metric_names(self) -> list[str]: ...

    def metric_kind(self, metric: str) -> str:
        """``"counter"`` or ``"gauge"`` (``kinds.py``)."""
        ...

    def declare_kinds(self, kinds: dict[str, str]) -> int:
        """Take declared kinds (metric -> kind); returns how many changed."""
        ...

    def dead_letter_list(self) -> dict[str, Any]:
        """``{"directory": …, "letters": [{"file", "kind", "rows", "reason", …}]}``"""
        ...

    async def replay_dead_letters(self) -> dict[str, int]: ...


@runtime_checkable
class ClusterMember(Protocol):
    """A node of a cluster (``cluster.node.ClusterNode``)."""

    @property
    def local_answers(self) -> Answers:
        """Answers from the partitions this node owns (and the store), never routed on."""
        ...

    def cluster_status(self) -> dict[str, Any]:
        """Nodes, who holds which partition of which copy, and this node's shards."""
        ...
