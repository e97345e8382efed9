"""A minutely series as Prometheus labels: ``__name__`` and ``instance``, plus any labels the
metric name carries.

minutely's series is ``(server, metric)``. The server is the ``instance`` label. A metric name
is either plain (``cpu.user``) or, when an ingest protocol folded extra labels into it, the
canonical ``name{k="v",...}`` form (labels in Prometheus's quoting); the second is split back
into ``__name__`` and its labels here, so selectors can match on them.
"""

from __future__ import annotations

import re

Labels = tuple[tuple[str, str], ...]

_PAIR = re.compile(r'\s*([^=,{}"\s]+)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_UNESCAPE = re.compile(r"\\(.)")
_ESCAPES = {"n": "\n", "\\": "\\", '"': '"'}


def metric_labels(metric: str) -> dict[str, str]:
    """``{"__name__": …, **labels}`` of a metric name; a name that is not in the canonical
    form (or is malformed) is all ``__name__``."""
    if not metric.endswith("}") or "{" not in metric:
        return {"__name__": metric}
    base, _, inner = metric[:-1].partition("{")
    labels = {"__name__": base}
    pos = 0
    inner = inner.strip()
    while pos < len(inner):
        m = _PAIR.match(inner, pos)
        if m is None or m.end() == pos:
            return {"__name__": metric}
        labels[m.group(1)] = _UNESCAPE.sub(
            lambda e: _ESCAPES.get(e.group(1), e.group(1)), m.group(2)
        )
        pos = m.end()
    return labels


def series_labels(server: str, metric: str) -> Labels:
    """The sorted label pairs of the series ``(server, metric)``."""
    labels = metric_labels(metric)
    labels["instance"] = server
    return tuple(sorted(labels.items()))
