"""The parser: each construct of the subset, and each error, with the message it gives."""

from __future__ import annotations

import pytest

from minutely.promql import NotSupported, ParseError, parse
from minutely.promql.syntax import (
    Aggregate,
    Binary,
    Call,
    MatrixSelector,
    NumberLiteral,
    Unary,
    VectorSelector,
)


def matchers(expr: object) -> list[tuple[str, str, str]]:
    assert isinstance(expr, VectorSelector)
    return [(m.label, m.op, m.value) for m in expr.matchers]


def test_number_literals_and_arithmetic() -> None:
    assert parse("1+1") == Binary("+", NumberLiteral(1.0), NumberLiteral(1.0))
    assert parse("0x10") == NumberLiteral(16.0)
    assert parse("1.5e3") == NumberLiteral(1500.0)
    assert parse("-2") == NumberLiteral(-2.0)
    inf = parse("Inf")
    assert isinstance(inf, NumberLiteral) and inf.value == float("inf")
    # * binds tighter than +, ^ tighter than a sign and right-associative
    assert parse("1 + 2 * 3") == Binary(
        "+", NumberLiteral(1), Binary("*", NumberLiteral(2), NumberLiteral(3))
    )
    assert parse("-2 ^ 2") == Unary("-", Binary("^", NumberLiteral(2), NumberLiteral(2)))
    assert parse("2 ^ 3 ^ 2") == Binary(
        "^", NumberLiteral(2), Binary("^", NumberLiteral(3), NumberLiteral(2))
    )
    assert parse("(1 + 2) * 3") == Binary(
        "*", Binary("+", NumberLiteral(1), NumberLiteral(2)), NumberLiteral(3)
    )


def test_selectors_with_each_matcher() -> None:
    assert matchers(parse("up")) == [("__name__", "=", "up")]
    assert matchers(parse('cpu.user{instance="a", instance!="b"}')) == [
        ("__name__", "=", "cpu.user"),
        ("instance", "=", "a"),
        ("instance", "!=", "b"),
    ]
    assert matchers(parse("{__name__=~'cpu\\\\..*', instance!~`web-0[12]`}")) == [
        ("__name__", "=~", "cpu\\..*"),
        ("instance", "!~", "web-0[12]"),
    ]
    assert matchers(parse('{"cpu.user", instance="a"}')) == [
        ("__name__", "=", "cpu.user"),
        ("instance", "=", "a"),
    ]


def test_regex_matchers_are_anchored() -> None:
    sel = parse('{instance=~"web"}')
    assert isinstance(sel, VectorSelector)
    assert sel.matchers[0].matches("web") and not sel.matchers[0].matches("web-1")


def test_range_functions_and_durations() -> None:
    expr = parse("rate(x[1h30m])")
    assert isinstance(expr, Call) and expr.func == "rate"
    assert isinstance(expr.args[0], MatrixSelector) and expr.args[0].range == 5400.0
    for func in ("min_over_time", "max_over_time", "avg_over_time", "sum_over_time"):
        assert isinstance(parse(f"{func}(x[5m])"), Call)
    assert isinstance(parse("count_over_time(x[1d])"), Call)


@pytest.mark.parametrize(
    ("text", "without", "grouping"),
    [
        ("sum(x)", False, ()),
        ("sum by (instance) (x)", False, ("instance",)),
        ("avg(x) without (instance, job)", True, ("instance", "job")),
        ("max without () (x)", True, ()),
    ],
)
def test_aggregations(text: str, without: bool, grouping: tuple[str, ...]) -> None:
    expr = parse(text)
    assert isinstance(expr, Aggregate)
    assert (expr.without, expr.grouping) == (without, grouping)


def test_topk_takes_a_parameter() -> None:
    expr = parse("topk(3, max_over_time(x[5m]))")
    assert isinstance(expr, Aggregate) and expr.param == NumberLiteral(3.0)
    assert isinstance(parse("bottomk by (instance) (1, x)"), Aggregate)


def test_a_metric_named_like_an_aggregation_is_a_selector() -> None:
    assert matchers(parse("sum")) == [("__name__", "=", "sum")]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("abs(x)", "the function 'abs'"),
        ("x > 1", "the operator '>'"),
        ("x and y", "the set operator 'and'"),
        ("x + on(a) y", "the 'on' modifier"),
        ("x[5m:1m]", "a subquery"),
        ("x offset 5m", "the 'offset' modifier"),
        ("x @ 100", "the '@' modifier"),
        ("quantile(0.9, x)", "the aggregation 'quantile'"),
        ("histogram_quantile(0.9, x)", "the function 'histogram_quantile'"),
    ],
)
def test_unsupported_constructs_are_named(text: str, named: str) -> None:
    with pytest.raises(NotSupported, match="not supported by minutely") as e:
        parse(text)
    assert str(e.value).startswith(named)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "no expression found"),
        ("1 +", "unexpected end of input"),
        ('x{a="b"', "expected ','"),
        ("{}", "at least one non-empty matcher"),
        ('{a=~".*"}', "at least one non-empty matcher"),
        ("foo(x)", "unknown function with name 'foo'"),
        ("rate(x)", "expected type range vector"),
        ("rate(x[5m], y[5m])", "expected 1 argument"),
        ("sum(x[5m])", "expected type instant vector"),
        ("topk(x)", "wrong number of arguments"),
        ('x{a=~"("}', "invalid regular expression"),
        ("x[5]", "expected a duration"),
        ("(1+1)[5m]", "ranges only allowed for vector selectors"),
        ("x $ 1", "unexpected character '$'"),
        ("sum by (a) (x) by (b)", "grouped already"),
    ],
)
def test_errors_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ParseError) as e:
        parse(text)
    assert problem in str(e.value)
