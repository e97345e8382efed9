"""PromQL text → the expression tree of ``syntax``, for the subset minutely evaluates.

A lexer (one compiled regex) and a precedence-climbing parser, following Prometheus 2.42's
grammar (``promql/parser/generated_parser.y``): binary precedence from low to high is ``or``;
``and unless``; comparisons; ``+ -``; ``* / % atan2``; ``^`` (right-associative), and a unary
sign binds below ``^`` (``-2^2`` is ``-4``). Everything Prometheus parses but minutely does not
evaluate (other functions and aggregations, comparisons, set operators, ``offset``, ``@``,
subqueries, vector matching) is a ``NotSupported`` naming the construct; everything Prometheus
rejects is a ``ParseError`` with the character position.

One extension: a metric name may contain dots (``cpu.user``), which minutely's names do and
Prometheus's do not; ``{"cpu.user"}`` (Prometheus 3's quoted name) and
``{__name__="cpu.user"}`` are accepted too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NoReturn

from minutely.promql.errors import NotSupported, ParseError
from minutely.promql.syntax import (
    Aggregate,
    Binary,
    Call,
    Expr,
    Matcher,
    MatchOp,
    MatrixSelector,
    NumberLiteral,
    StringLiteral,
    Unary,
    VectorSelector,
)

#: the functions evaluated, each over one range vector
RANGE_FUNCTIONS = frozenset(
    {
        "min_over_time",
        "max_over_time",
        "avg_over_time",
        "sum_over_time",
        "count_over_time",
        "rate",
        "increase",
    }
)
#: Prometheus 2.42's other functions: known, so named as not supported rather than unknown
OTHER_FUNCTIONS = (
    frozenset(
        """
    abs absent absent_over_time acos acosh asin asinh atan atanh ceil changes clamp
    clamp_max clamp_min cos cosh day_of_month day_of_week day_of_year days_in_month deg
    delta deriv exp floor histogram_count histogram_fraction histogram_quantile
    histogram_sum holt_winters hour idelta increase irate label_join label_replace
    last_over_time ln log10 log2 minute month pi predict_linear present_over_time
    quantile_over_time rad resets round scalar sgn sin sinh sort sort_desc sqrt
    stddev_over_time stdvar_over_time tan tanh time timestamp vector year
    """.split()  # noqa: SIM905
    )
    - RANGE_FUNCTIONS
)
AGGREGATIONS = frozenset({"sum", "min", "max", "avg", "count", "topk", "bottomk"})
OTHER_AGGREGATIONS = frozenset({"stddev", "stdvar", "count_values", "quantile", "group"})
ARITHMETIC = frozenset({"+", "-", "*", "/", "%", "^"})

_PRECEDENCE = {
    "or": 1,
    "and": 2,
    "unless": 2,
    "==": 3,
    "!=": 3,
    "<=": 3,
    "<": 3,
    ">=": 3,
    ">": 3,
    "+": 4,
    "-": 4,
    "*": 5,
    "/": 5,
    "%": 5,
    "atan2": 5,
    "^": 6,
}
_POWER = _PRECEDENCE["^"]

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_TOKEN = re.compile(
    r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<duration>(?:\d+(?:ms|s|m|h|d|w|y))+(?![\w.]))
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[a-zA-Z_][a-zA-Z0-9_:.]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`[^`]*`)
  | (?P<op>=~|!~|==|!=|<=|>=|[-+*/%^<>=(){}\[\],:@])
    """,
    re.VERBOSE,
)
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|[abfnrtv\\'\"])")
_SIMPLE_ESCAPES = {
    "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
    "\\": "\\", "'": "'", '"': '"',
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # duration, number, ident, string, op, eof
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            msg = f"parse error at char {pos + 1}: unexpected character {text[pos]!r}"
            raise ParseError(msg)
        kind = m.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append(Token(kind, m.group(), pos))
        pos = m.end()
    tokens.append(Token("eof", "", len(text)))
    return tokens


def parse_duration(text: str) -> float:
    """``1h30m`` → 5400.0 seconds."""
    return float(sum(int(n) * _UNITS[u] for n, u in _DURATION_PART.findall(text)))


def _unquote(token: Token) -> str:
    body = token.text[1:-1]
    if token.text[0] == "`":
        return body

    def one(m: re.Match[str]) -> str:
        esc = m.group(1)
        if esc[0] in "xuU":
            return chr(int(esc[1:], 16))
        if esc[0].isdigit():
            return chr(int(esc, 8))
        return _SIMPLE_ESCAPES[esc]

    unescaped = _ESCAPE.sub(one, body)
    if "\\" in _ESCAPE.sub("", body):
        msg = f"parse error at char {token.pos + 1}: invalid escape in {token.text}"
        raise ParseError(msg)
    return unescaped


def _number(text: str) -> float:
    low = text.lower()
    return float(int(low, 16)) if low.startswith("0x") else float(text)


def make_matcher(label: str, op: MatchOp, value: str) -> Matcher:
    """A matcher, its regex compiled (anchored: it must match the whole value)."""
    pattern = None
    if op in ("=~", "!~"):
        try:
            pattern = re.compile(value)
        except re.error as e:
            msg = f"invalid regular expression {value!r}: {e}"
            raise ParseError(msg) from None
    return Matcher(label, op, value, pattern)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        tok = self.tok
        self.i += 1
        return tok

    def fail(self, problem: str, tok: Token | None = None) -> NoReturn:
        tok = tok or self.tok
        msg = f"parse error at char {tok.pos + 1}: {problem}"
        raise ParseError(msg)

    def unexpected(self, context: str) -> NoReturn:
        what = "end of input" if self.tok.kind == "eof" else repr(self.tok.text)
        self.fail(f"unexpected {what} {context}")

    def expect(self, text: str, context: str) -> Token:
        if self.tok.text != text or self.tok.kind not in ("op", "ident"):
            self.unexpected(f"{context}: expected {text!r}")
        return self.advance()

    def is_op(self, text: str) -> bool:
        return self.tok.kind == "op" and self.tok.text == text

    # expressions

    def parse(self) -> Expr:
        if self.tok.kind == "eof":
            self.fail("no expression found in input")
        expr = self.expression(1)
        if self.tok.kind != "eof":
            self.unexpected("after the expression")
        return expr

    def binary_op(self) -> str | None:
        tok = self.tok
        if tok.kind == "op" and tok.text in _PRECEDENCE:
            return tok.text
        if tok.kind == "ident" and tok.text.lower() in ("and", "or", "unless", "atan2"):
            return tok.text.lower()
        return None

    def expression(self, min_prec: int) -> Expr:
        lhs = self.unary()
        while (op := self.binary_op()) is not None and _PRECEDENCE[op] >= min_prec:
            self.advance()
            for modifier in ("bool", "on", "ignoring", "group_left", "group_right"):
                if self.tok.kind == "ident" and self.tok.text == modifier:
                    msg = f"the {modifier!r} modifier"
                    raise NotSupported(msg)
            prec = _PRECEDENCE[op]
            rhs = self.expression(prec if op == "^" else prec + 1)
            if op not in ARITHMETIC:
                kind = "set operator" if op in ("and", "or", "unless") else "operator"
                msg = f"the {kind} {op!r}"
                raise NotSupported(msg, "arithmetic supported: + - * / % ^")
            lhs = Binary(op, lhs, rhs)
        return lhs

    def unary(self) -> Expr:
        if self.is_op("-") or self.is_op("+"):
            sign = self.advance().text
            operand = self.expression(_POWER)
            if isinstance(operand, NumberLiteral):  # a signed literal is a literal
                return NumberLiteral(-operand.value if sign == "-" else operand.value)
            return Unary("-" if sign == "-" else "+", operand)
        return self.postfix(self.primary())

    def postfix(self, expr: Expr) -> Expr:
        while True:
            if self.is_op("["):
                open_tok = self.advance()
                if self.tok.kind != "duration":
                    self.unexpected("in a range: expected a duration such as 5m")
                rng = parse_duration(self.advance().text)
                if self.is_op(":"):
                    msg = "a subquery"
                    raise NotSupported(msg)
                self.expect("]", "after the range")
                if not isinstance(expr, VectorSelector):
                    self.fail("ranges only allowed for vector selectors", open_tok)
                if rng <= 0:
                    self.fail("a range must be positive", open_tok)
                expr = MatrixSelector(expr, rng)
            elif self.tok.kind == "ident" and self.tok.text == "offset":
                msg = "the 'offset' modifier"
                raise NotSupported(msg)
            elif self.is_op("@"):
                msg = "the '@' modifier"
                raise NotSupported(msg)
            else:
                return expr

    def primary(self) -> Expr:
        tok = self.tok
        if tok.kind == "number":
            self.advance()
            return NumberLiteral(_number(tok.text))
        if tok.kind == "duration":
            self.fail(f"unexpected duration {tok.text!r}")
        if tok.kind == "string":
            self.advance()
            return StringLiteral(_unquote(tok))
        if self.is_op("("):
            self.advance()
            inner = self.expression(1)
            self.expect(")", "in the parenthesised expression")
            return inner
        if self.is_op("{"):
            return self.selector(None)
        if tok.kind == "ident":
            name = tok.text
            nxt = self.peek()
            lower = name.lower()
            if lower in ("inf", "nan") and not (nxt.kind == "op" and nxt.text in "({"):
                self.advance()
                return NumberLiteral(float(lower))
            is_agg_syntax = nxt.text in ("(", "by", "without")
            if name in AGGREGATIONS | OTHER_AGGREGATIONS and is_agg_syntax:
                return self.aggregate()
            if nxt.kind == "op" and nxt.text == "(":
                return self.call()
            self.advance()
            return self.selector(name)
        self.unexpected("where an expression was expected")

    def call(self) -> Expr:
        name_tok = self.advance()
        name = name_tok.text
        if name in OTHER_FUNCTIONS:
            msg = f"the function {name!r}"
            raise NotSupported(msg, f"supported: {', '.join(sorted(RANGE_FUNCTIONS))}")
        if name not in RANGE_FUNCTIONS:
            self.fail(f"unknown function with name {name!r}", name_tok)
        self.expect("(", "after the function name")
        args: list[Expr] = []
        if not self.is_op(")"):
            args.append(self.expression(1))
            while self.is_op(","):
                self.advance()
                args.append(self.expression(1))
        self.expect(")", f"in the call to {name}")
        if len(args) != 1:
            self.fail(f"expected 1 argument in call to {name!r}, got {len(args)}", name_tok)
        if not isinstance(args[0], MatrixSelector):
            got = "instant vector or scalar"
            self.fail(f"expected type range vector in call to function {name!r}, got {got}")
        return Call(name, tuple(args))

    def grouping(self) -> tuple[bool, tuple[str, ...]]:
        without = self.advance().text == "without"
        self.expect("(", "in the grouping")
        labels: list[str] = []
        while not self.is_op(")"):
            if self.tok.kind != "ident":
                self.unexpected("in the grouping: expected a label name")
            labels.append(self.advance().text)
            if not self.is_op(")"):
                self.expect(",", "in the grouping")
        self.advance()
        return without, tuple(labels)

    def aggregate(self) -> Expr:
        op_tok = self.advance()
        op = op_tok.text
        if op in OTHER_AGGREGATIONS:
            msg = f"the aggregation {op!r}"
            raise NotSupported(msg, f"supported: {', '.join(sorted(AGGREGATIONS))}")
        without = False
        labels: tuple[str, ...] = ()
        grouped = False
        if self.tok.text in ("by", "without"):
            without, labels = self.grouping()
            grouped = True
        self.expect("(", f"after {op}")
        args = [self.expression(1)]
        while self.is_op(","):
            self.advance()
            args.append(self.expression(1))
        self.expect(")", f"in the aggregation {op}")
        if self.tok.kind == "ident" and self.tok.text in ("by", "without"):
            if grouped:
                self.unexpected("after the aggregation: it is grouped already")
            without, labels = self.grouping()
        wanted = 2 if op in ("topk", "bottomk") else 1
        if len(args) != wanted:
            self.fail(
                "wrong number of arguments for aggregate expression provided, "
                f"expected {wanted}, got {len(args)}",
                op_tok,
            )
        expr = args[-1]
        if isinstance(expr, MatrixSelector | NumberLiteral | StringLiteral):
            self.fail(f"expected type instant vector in aggregation expression {op!r}", op_tok)
        return Aggregate(op, expr, args[0] if wanted == 2 else None, labels, without)

    def selector(self, name: str | None) -> VectorSelector:
        matchers: list[Matcher] = []
        start = self.tok
        if name is not None:
            matchers.append(make_matcher("__name__", "=", name))
        if self.is_op("{"):
            self.advance()
            while not self.is_op("}"):
                matchers.append(
                    self.matcher(name is not None or any(m.label == "__name__" for m in matchers))
                )
                if not self.is_op("}"):
                    self.expect(",", "in the label matchers")
            self.advance()
        if not matchers:
            self.fail("vector selector must contain at least one non-empty matcher", start)
        if all(m.matches("") for m in matchers):
            self.fail("vector selector must contain at least one non-empty matcher", start)
        return VectorSelector(tuple(matchers))

    def matcher(self, named: bool) -> Matcher:
        if self.tok.kind == "string" and self.peek().text in (",", "}"):
            if named:
                self.fail("metric name must not be set twice")
            return make_matcher("__name__", "=", _unquote(self.advance()))
        if self.tok.kind == "string":
            label = _unquote(self.advance())
        elif self.tok.kind == "ident":
            label = self.advance().text
        else:
            self.unexpected("in the label matchers: expected a label name")
        op = self.tok.text
        if self.tok.kind != "op" or op not in ("=", "!=", "=~", "!~"):
            self.unexpected(f"after the label {label!r}: expected =, !=, =~ or !~")
        self.advance()
        if self.tok.kind != "string":
            self.unexpected(f"in the matcher of {label!r}: expected a quoted string")
        value = _unquote(self.advance())
        return make_matcher(label, op, value)  # type: ignore[arg-type]


def parse(text: str) -> Expr:
    """The expression tree of ``text``; raises ``ParseError`` or ``NotSupported``."""
    return _Parser(text).parse()
