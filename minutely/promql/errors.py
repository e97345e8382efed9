"""The errors of the PromQL subset, with the Prometheus ``errorType`` each is answered with.

PromQLError                  base; ``error_type`` is what the HTTP API reports
├── ParseError               the text is not PromQL (``bad_data``, HTTP 400)
├── NotSupported             valid PromQL that minutely does not evaluate (``bad_data``,
│                            HTTP 400); the message names the construct
└── ExecutionError           a query that cannot be answered as asked: too many points or
                             cells, duplicate label sets (``execution``, HTTP 422)
"""

from __future__ import annotations


class PromQLError(ValueError):
    """Base class: a query that has no answer; the message says why."""

    error_type = "bad_data"


class ParseError(PromQLError):
    """The text is not PromQL; the message gives the character position."""


class NotSupported(PromQLError):
    """A construct of PromQL outside minutely's subset."""

    def __init__(self, what: str, hint: str = "") -> None:
        super().__init__(f"{what} is not supported by minutely" + (f"; {hint}" if hint else ""))


class ExecutionError(PromQLError):
    """A query that parses but whose answer cannot be given (too large, ambiguous); ``limit``
    names the setting that refused it, when one did (``limits.Refusals`` counts it by it)."""

    error_type = "execution"

    def __init__(self, message: str, limit: str | None = None) -> None:
        super().__init__(message)
        self.limit = limit
