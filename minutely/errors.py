"""The errors minutely raises, and the few a caller acts on.

    MinutelyError                 base of everything below
    ├── ConfigError               a setting is missing or malformed (names the setting)
    ├── DecodeError               a request body cannot be decoded at all (HTTP 400)
    ├── PayloadTooLarge           a request body is over the size limit (HTTP 413)
    ├── BadParameter              a query parameter or header is malformed (HTTP 400, names it)
    ├── IdempotencyConflict       an Idempotency-Key reused for another body (HTTP 422)
    ├── NotFound                  an unknown server or metric (HTTP 404)
    ├── Backpressure              the bus is full: retry later (HTTP 429 with Retry-After)
    │   ├── SeriesLimit           the request would pass a cardinality limit (HTTP 429,
    │   │                         naming it; ``minutely.limits``)
    │   ├── BodyBytesLimit        the bodies in flight would pass max_inflight_body_bytes
    │   │                         (HTTP 429, naming it; ``minutely.limits``)
    │   └── Unavailable           the bus is closed or unreachable, the store behind or folds
    │                             failing (HTTP 503 with Retry-After)
    ├── StoreError                the store failed: unreachable, or the engine refused a
    │                             statement (``minutely.store.errors``)
    └── StoreCorrupt              what is on disk cannot be used as it is: inconsistent names,
                                  damaged parts, a checkpoint or store of a newer minutely
                                  (``minutely.store.errors``; ``serve`` stops, naming it)

Per-point problems are not exceptions: decoders return them as ``PointError`` rows
(index and reason) next to the good points, so one bad point never sinks a batch.
"""

from __future__ import annotations


class MinutelyError(Exception):
    """Base class for minutely's errors."""


class ConfigError(MinutelyError, ValueError):
    """A setting is missing or malformed."""


class DecodeError(MinutelyError, ValueError):
    """A request body cannot be decoded at all."""


class PayloadTooLarge(MinutelyError, ValueError):
    """A request body is larger than the configured limit; ``limit`` names the setting."""

    def __init__(self, message: str, limit: str = "max_body_bytes") -> None:
        super().__init__(message)
        self.limit = limit


class BadParameter(MinutelyError, ValueError):
    """A query parameter or a header is malformed; ``param`` names it."""

    def __init__(self, param: str, problem: str, limit: str | None = None) -> None:
        super().__init__(f"parameter {param!r}: {problem}")
        self.param = param
        self.problem = problem
        #: the setting whose limit the parameter passed, if that is what is wrong
        self.limit = limit


class IdempotencyConflict(MinutelyError, ValueError):
    """An ``Idempotency-Key`` already names another request body; nothing was applied."""


class NotFound(MinutelyError, LookupError):
    """An unknown server or metric."""


#: what Retry-After says by default: long enough for an aggregator pass to commit
RETRY_AFTER_SECONDS = 1.0


class Backpressure(MinutelyError):
    """The bus cannot take the batch now; nothing of it was enqueued. Retry after a while."""

    def __init__(
        self, message: str, retry_after: float = RETRY_AFTER_SECONDS, limit: str | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        #: the limit that refused it, when one did (``limits.Refusals`` counts it by name)
        self.limit = limit


class SeriesLimit(Backpressure):
    """The request's new series would pass ``limit`` (a setting); nothing was enqueued."""

    limit: str

    def __init__(self, message: str, limit: str, retry_after: float) -> None:
        super().__init__(message, retry_after, limit)


class BodyBytesLimit(Backpressure):
    """The request's body would take the bodies being read past ``max_inflight_body_bytes``;
    none of it was read."""

    def __init__(self, message: str, retry_after: float = RETRY_AFTER_SECONDS) -> None:
        super().__init__(message, retry_after, "max_inflight_body_bytes")


class Unavailable(Backpressure):
    """The bus is closed (shutting down) or unreachable; nothing was enqueued. Retry later."""
