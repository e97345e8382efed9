"""A PromQL subset over minutely's minute partials: ``parse`` text into a tree, then
``Evaluator(source).evaluate(tree, times)``; pure and columnar (no I/O but the ``Source``).

What is evaluated and how each function maps onto partials: ``evaluator``'s docstring.
"""

from minutely.promql.errors import ExecutionError, NotSupported, ParseError, PromQLError
from minutely.promql.evaluator import MAX_CELLS, Evaluator, Scalar, Source, Vector
from minutely.promql.parser import parse

__all__ = [
    "MAX_CELLS",
    "Evaluator",
    "ExecutionError",
    "NotSupported",
    "ParseError",
    "PromQLError",
    "Scalar",
    "Source",
    "Vector",
    "parse",
]
