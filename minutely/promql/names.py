"""A minutely series as Prometheus labels: ``__name__`` and ``instance``, plus any labels the
metric name carries.

minutely's series is ``(server, metric)``. The server is the ``instance`` label. A metric name
is either plain (``cpu.user``) or, when an ingest protocol folded extra labels into it, the
canonical ``name{k="v",...}`` form; the second is split back into ``__name__`` and its labels
by ingest's own ``parse_series_name`` (the one parser of the form that ``series_name`` writes),
so selectors can match on them.
"""

from __future__ import annotations

from minutely.ingest.labels import parse_series_name

Labels = tuple[tuple[str, str], ...]


def metric_labels(metric: str) -> dict[str, str]:
    """``{"__name__": …, **labels}`` of a metric name; a name that is not in the canonical
    form (or is malformed) is all ``__name__``."""
    try:
        name, labels = parse_series_name(metric)
    except ValueError:
        return {"__name__": metric}
    return {"__name__": name, **labels}


def series_labels(server: str, metric: str) -> Labels:
    """The sorted label pairs of the series ``(server, metric)``."""
    labels = metric_labels(metric)
    labels["instance"] = server
    return tuple(sorted(labels.items()))
