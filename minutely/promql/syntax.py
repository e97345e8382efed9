"""The expression tree the parser builds and the evaluator walks: one frozen node per construct
of the subset. Durations are in seconds."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

MatchOp = Literal["=", "!=", "=~", "!~"]


@dataclass(frozen=True, slots=True)
class Matcher:
    """``label op "value"``; a regex matches the whole value, as Prometheus anchors it."""

    label: str
    op: MatchOp
    value: str
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def matches(self, value: str) -> bool:
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        assert self.pattern is not None
        found = self.pattern.fullmatch(value) is not None
        return found if self.op == "=~" else not found


@dataclass(frozen=True, slots=True)
class NumberLiteral:
    value: float


@dataclass(frozen=True, slots=True)
class StringLiteral:
    value: str


@dataclass(frozen=True, slots=True)
class VectorSelector:
    """``name{matchers}``; the name, when written, is a ``__name__ =`` matcher in
    ``matchers``."""

    matchers: tuple[Matcher, ...]


@dataclass(frozen=True, slots=True)
class MatrixSelector:
    """``selector[range]``."""

    vector: VectorSelector
    range: float


@dataclass(frozen=True, slots=True)
class Call:
    func: str
    args: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Aggregate:
    """``op by|without (labels) ([param,] expr)``."""

    op: str
    expr: Expr
    param: Expr | None
    grouping: tuple[str, ...]
    without: bool


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    lhs: Expr
    rhs: Expr


@dataclass(frozen=True, slots=True)
class Unary:
    op: Literal["-", "+"]
    expr: Expr


Expr = (
    NumberLiteral
    | StringLiteral
    | VectorSelector
    | MatrixSelector
    | Call
    | Aggregate
    | Binary
    | Unary
)
