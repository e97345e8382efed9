"""From a protocol's name and labels (tags, attributes) to minutely's (server, metric).

Every protocol decoder (remote_write, Influx, OTLP, Graphite) hands its series here, so the
rule is written once:

- **server**: the value of the first label present, in ``server_labels`` order (default
  ``instance, host, host.name, server``). Prometheus' ``instance`` is ``host:port``; with
  ``strip_instance_port`` (the default) the port is dropped, so node_exporter on :9100 and an
  application on :8000 of one machine are one server, as the seed's fleet counts servers (the
  ``job`` label stays in the metric name, which keeps their metrics apart). No such label:
  ``default_server`` if set, else the point is rejected with a reason naming the labels
  looked for.
- **metric**: the protocol's metric name followed by the remaining labels, sorted by name, in
  the Prometheus text form ``http_requests_total{code="200",method="GET"}``; a name without
  labels stays bare. Values escape ``\\``, ``"`` and newline as Prometheus does, so
  ``parse_series_name`` gives back exactly the name and labels (the form is reversible).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

#: the labels looked for, in order, when no setting says otherwise
DEFAULT_SERVER_LABELS = ("instance", "host", "host.name", "server")

_ESCAPE = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})
_LABEL = re.compile(r'([^=,{}"]+)="((?:[^"\\]|\\.)*)"(,|$)', re.DOTALL)
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class LabelMapping:
    """How labels become (server, metric); built from ``Settings`` by ``from_settings``."""

    server_labels: tuple[str, ...] = DEFAULT_SERVER_LABELS
    strip_instance_port: bool = True
    #: the server of a point with none of ``server_labels``; empty: such points are rejected
    default_server: str = ""

    @staticmethod
    def parse_list(text: str) -> tuple[str, ...]:
        """``"instance, host"`` → ``("instance", "host")``."""
        return tuple(part.strip() for part in text.split(",") if part.strip())

    def server_of(self, labels: Mapping[str, str]) -> tuple[str | None, str | None]:
        """The server, and which label gave it (None for the default or when none did)."""
        for key in self.server_labels:
            value = labels.get(key)
            if value:
                if key == "instance" and self.strip_instance_port:
                    value = strip_port(value)
                return value, key
        return (self.default_server or None), None

    def resolve(self, name: str, labels: Mapping[str, str]) -> Resolved:
        """``(server or None, metric)`` for one series."""
        server, used = self.server_of(labels)
        rest = ((k, v) for k, v in labels.items() if k != used)
        return server, series_name(name, rest)

    def missing_server(self) -> str:
        """The reason given for a point with no server label and no default."""
        looked = ", ".join(self.server_labels)
        return f"server: no label of {looked} and no default_server set"


#: a series resolved: (server, or None when no label names one; metric)
Resolved = tuple[str | None, str]


def strip_port(instance: str) -> str:
    """``"web-1:9100"`` → ``"web-1"``, ``"[::1]:9100"`` → ``"::1"``; anything else as it is."""
    if instance.startswith("["):
        end = instance.find("]")
        if end > 0 and instance[end + 1 : end + 2] in (":", ""):
            return instance[1:end]
        return instance
    host, colon, port = instance.rpartition(":")
    if colon and port.isdigit() and host and ":" not in host:
        return host
    return instance


def series_name(name: str, labels: Iterable[tuple[str, str]]) -> str:
    """``name{k="v",…}`` with labels sorted by key; empty values are dropped (Prometheus
    treats an empty label as an absent one); just ``name`` without labels."""
    pairs = sorted((k, v) for k, v in labels if v != "")
    if not pairs:
        return name
    inner = ",".join(f'{k}="{v.translate(_ESCAPE)}"' for k, v in pairs)
    return f"{name}{{{inner}}}"


def parse_series_name(text: str) -> tuple[str, dict[str, str]]:
    """The inverse of ``series_name``: ``(name, labels)``; raises ValueError if ``text`` is
    not in that form."""
    if not text.endswith("}") or "{" not in text:
        return text, {}
    name, _, inner = text[:-1].partition("{")
    labels: dict[str, str] = {}
    pos = 0
    while pos < len(inner):
        m = _LABEL.match(inner, pos)
        if m is None:
            msg = f"not a series name: {text!r}"
            raise ValueError(msg)
        labels[m.group(1)] = _UNESCAPE.sub(_unescape_one, m.group(2))
        pos = m.end()
    return name, labels


def _unescape_one(m: re.Match[str]) -> str:
    c = m.group(1)
    return "\n" if c == "n" else c
