"""The limits that name themselves: each refusal counted under its setting's name, the
cardinality guard that refuses a request's new series before its points are accepted, and the
budget of body bytes that the requests in flight may hold.

    setting                     answer                       checked in
    max_name_bytes              the point rejected, reason   ingest/validate.py (counted a
    name_characters             the point rejected, reason   point at a time, once taken)
    max_body_bytes              413                          api/protocols.py, api/encoding.py
    max_inflight_body_bytes     429, Retry-After             BodyBudget (api/inflight.py)
    max_slow_json_bytes         413                          ingest/json.py (off the fast path)
    max_points_per_request      413                          service.py, after decode
    max_series                  429, Retry-After             CardinalityGuard
    max_new_series_per_minute   429, Retry-After (minute)    CardinalityGuard
    idempotency_key_bytes       400                          ingest/idempotency.py
    idempotency_keys            429, Retry-After             ingest/idempotency.py
    max_query_cells, buckets    400, smallest step           query.py
    max_header_bytes            431                          api/connections.py
    header_timeout              408 (or closed)              api/connections.py
    max_connections             503, Retry-After             api/connections.py

``Refusals.counts`` is a plain dict (limit → refusals) that ``/api/v1/status`` shows under
``limits`` and ``/metrics`` exports as ``minutely_limit_refusals_total{limit=…}``.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable

from minutely.errors import BodyBytesLimit, SeriesLimit
from minutely.model import PointBatch
from minutely.registry import Registry

#: how long a request's admitted new series count as pending before the registry is taken to
#: hold them: the bus delivers and the aggregator interns well within it
PENDING_SECONDS = 10.0
#: what a refusal for the total series says to wait: the limit holds until an operator acts
TOTAL_RETRY_AFTER = 60.0
#: ``max_inflight_body_bytes`` by default: two bodies as large as ``max_body_bytes`` allows
MAX_INFLIGHT_BODY_BYTES = 1 << 30
#: what a refusal for the bodies in flight says to wait: bodies are read in well under this
BODY_RETRY_AFTER = 1.0


class Refusals:
    """Refusals per limit, counted from any thread where the refusal is answered."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, limit: str, n: int = 1) -> None:
        with self._lock:
            self.counts[limit] = self.counts.get(limit, 0) + n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self.counts.items()))

    def note(self, error: BaseException) -> None:
        """Count ``error`` if it is a refusal that names its limit (``limit`` attribute)."""
        limit = getattr(error, "limit", None)
        if isinstance(limit, str):
            self.add(limit)


class CardinalityGuard:
    """Refuses a batch whose new series would pass ``max_series`` in all or
    ``max_new_per_minute`` in the current clock minute (0 turns a limit off).

    New series are counted against the registry before publish; the aggregator interns them
    later, so an admission counts as pending until the registry has grown by its new series
    since it was admitted (or ``PENDING_SECONDS`` have passed, for a bus that lags). Near a
    limit the count errs towards refusing (429, retried): a series in two requests in flight
    at once counts twice until they are folded.
    """

    def __init__(
        self,
        registry: Registry,
        max_series: int,
        max_new_per_minute: int,
        clock: Callable[[], float],
    ) -> None:
        self.registry = registry
        self.max_series = max_series
        self.max_new_per_minute = max_new_per_minute
        self.clock = clock
        #: admitted and not yet seen in the registry: (when, new series, registry size then)
        self._pending: deque[tuple[float, int, int]] = deque()
        self._minute = -1
        self._this_minute = 0
        self._lock = threading.Lock()

    def admit(self, batch: PointBatch) -> int:
        """Count ``batch``'s new series in, or raise ``SeriesLimit`` naming the limit passed
        (nothing counted then). Returns how many it adds."""
        if not self.max_series and not self.max_new_per_minute:
            return 0
        new = self.registry.count_new(batch)
        if new == 0:
            return 0
        with self._lock:
            now = self.clock()
            n_series = self.registry.n_series
            self._pending = deque(
                (when, n, before)
                for when, n, before in self._pending
                if when >= now - PENDING_SECONDS and n_series < before + n
            )
            minute = math.floor(now / 60)
            if minute != self._minute:
                self._minute, self._this_minute = minute, 0
            held = n_series + sum(n for _, n, _ in self._pending)
            if self.max_series and held + new > self.max_series:
                msg = (
                    f"{new} new series would make {held + new}, over the limit of"
                    f" {self.max_series} series (max_series); nothing of the request was taken"
                )
                raise SeriesLimit(msg, "max_series", TOTAL_RETRY_AFTER)
            if self.max_new_per_minute and self._this_minute + new > self.max_new_per_minute:
                msg = (
                    f"{new} new series would make {self._this_minute + new} this minute, over"
                    f" the limit of {self.max_new_per_minute} new series per minute"
                    " (max_new_series_per_minute); nothing of the request was taken"
                )
                if new > self.max_new_per_minute:
                    msg += "; send its series in smaller requests"
                wait = max(1.0, (minute + 1) * 60 - now)
                raise SeriesLimit(msg, "max_new_series_per_minute", wait)
            self._pending.append((now, new, n_series))
            self._this_minute += new
            return new


class BodyBudget:
    """The request body bytes that the requests in flight hold, against ``max_bytes`` (the
    setting ``max_inflight_body_bytes``): each body is bounded by ``max_body_bytes``, and
    this bounds their sum. Taken before a body is read, given back once its answer is sent;
    used from the event loop only.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        #: bytes taken and not yet given back, and the most ever taken at once
        self.held = 0
        self.peak = 0

    def take(self, n: int) -> None:
        """Count ``n`` more bytes in, or raise ``BodyBytesLimit`` (nothing counted then)."""
        if self.held + n > self.max_bytes:
            msg = (
                f"the request bodies in flight hold {self.held} bytes, and this one's {n} would"
                f" pass the limit max_inflight_body_bytes of {self.max_bytes} bytes; none of"
                " it was read"
            )
            raise BodyBytesLimit(msg, BODY_RETRY_AFTER)
        self.held += n
        self.peak = max(self.peak, self.held)

    def give(self, n: int) -> None:
        self.held -= n
