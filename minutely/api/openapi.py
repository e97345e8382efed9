"""The OpenAPI 3.1 document of the HTTP API, served at ``GET /openapi.json``.

Every operation any node may serve is described once, in ``OPERATIONS``; ``route`` builds the
document of one app from the routes it really has (a cluster node's ``/api/v1/local`` routes
appear only on a cluster node), and refuses to build one for a route that is not described, so
the document cannot fall behind the app (``tests/api/test_openapi.py`` checks it both ways).
Parameters carry their types and ranges as the app checks them (``params.py``), so a client
generator, or a fuzzer (``tests/api/test_fuzz_schemathesis.py``), knows what is valid.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from minutely import __version__
from minutely.api import render
from minutely.api.params import LATEST, MAX_STEP
from minutely.ingest.validate import REASONS

PATH = "/openapi.json"

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _query(name: str, schema: Schema, description: str, required: bool = False) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": description,
    }


def _header(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "schema": schema,
        "description": description,
    }


_TIME = {
    "type": "string",
    "minLength": 1,
    "examples": ["-1h", "now", "1764000000", "2025-11-24T16:00:00Z"],
}
_TIME_DOC = (
    "unix seconds, RFC 3339, or relative to the end of the current minute (now, -30s, -90m,"
    f" -2h, -2d, -1w); floored to the minute; 0 .. {LATEST}"
)
START = _query("start", _TIME, f"first time (default -2d): {_TIME_DOC}")
END = _query("end", _TIME, f"time after the last, after start (default now): {_TIME_DOC}")
STEP = _query(
    "step",
    {"type": "integer", "minimum": 60, "maximum": MAX_STEP, "multipleOf": 60, "default": 60},
    "seconds per bucket, a positive multiple of 60",
)
FORMAT = _query(
    "format",
    {"type": "string", "enum": ["json", "csv", "arrow"]},
    "the answer's format (else the Accept header; JSON by default)",
)
FIELDS = _query(
    "fields",
    {
        "type": "string",
        "pattern": r"^\s*(min|max|avg|sum|count)(\s*,\s*(min|max|avg|sum|count))*\s*$",
    },
    "the arrays each series carries, comma-separated (default min,max,avg,count)",
)
FN = _query(
    "fn",
    {"type": "string", "enum": ["rate"]},
    "rate: a counter's series (or row) carries its rate per second and count instead",
)
NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1},
    "description": "a server's or a metric's name (it may hold '/')",
}


def _filter(other: str) -> Schema:
    return {
        "name": other,
        "in": "query",
        "required": False,
        "style": "form",
        "explode": True,
        "schema": {"type": "array", "items": {"type": "string"}},
        "description": f"only these {other}s (repeat the parameter)",
    }


_ERRORS = {
    "400": _json(_ref("Error"), "a bad parameter, named"),
    "401": _json(_ref("Error"), "no token, or an unknown one (once a token exists)"),
    "403": _json(_ref("Error"), "a token whose scope does not grant the route"),
    "421": _json(_ref("Error"), "a Host that is not an allowed name"),
}
_RETRY = {"Retry-After": {"schema": {"type": "integer", "minimum": 1}, "description": "seconds"}}
_BUSY = {
    "429": {**_json(_ref("Error"), "the bus is full: retry"), "headers": _RETRY},
    "503": {**_json(_ref("Error"), "not ready, closed, or the store is behind"), "headers": _RETRY},
}
_ANSWER_MEDIA = {
    "application/json": None,
    "text/csv": {"type": "string"},
    "application/vnd.apache.arrow.stream": {"type": "string", "format": "binary"},
}


def _answer(schema: str, description: str) -> Schema:
    content = {
        media: {"schema": _ref(schema) if s is None else s} for media, s in _ANSWER_MEDIA.items()
    }
    return {
        "description": description,
        "headers": {
            "Server-Timing": {"schema": {"type": "string"}, "description": "app;dur=<ms>"},
            "X-Minutely-Partial": {
                "schema": {"type": "string", "enum": ["true"]},
                "description": "a cluster answer given from the store alone",
            },
        },
        "content": content,
    }


def _question(by: str, kind: str) -> Schema:
    other = "metric" if by == "server" else "server"
    series = kind != "summary"
    parameters = [
        NAME,
        START,
        END,
        *([STEP, FIELDS] if series else []),
        FN,
        FORMAT,
        _filter(other),
    ]
    what = {
        ("server", "series"): "Q1: one server, every metric, per step",
        ("metric", "series"): "Q2: one metric, every server, per step",
        ("server", "summary"): "Q3: one server, every metric, min/max/avg/count over the range",
        ("metric", "summary"): "Q4: one metric, every server, min/max/avg/count over the range",
        ("metric", "fleet"): "one metric merged over every server, per step",
    }[(by, kind)]
    schema = {"series": "SeriesAnswer", "summary": "SummaryAnswer", "fleet": "FleetAnswer"}[kind]
    return {
        "get": {
            "summary": what,
            "tags": ["questions"],
            "parameters": parameters,
            "responses": {
                "200": _answer(schema, what),
                **_ERRORS,
                "404": _json(_ref("Error"), f"no such {by}"),
                "503": {**_json(_ref("Error"), "not ready"), "headers": _RETRY},
            },
        }
    }


def _local(by: str, kind: str) -> Schema:
    other = "metric" if by == "server" else "server"
    parameters = [NAME, START, END, *([STEP] if kind == "series" else []), _filter(other)]
    return {
        "get": {
            "summary": f"a cluster node: a {kind} question routed to it, as exact partials",
            "tags": ["cluster"],
            "parameters": parameters,
            "responses": {
                "200": {
                    "description": "the partials (partials.py)",
                    "content": {
                        "application/vnd.minutely.partials": {
                            "schema": {"type": "string", "format": "binary"}
                        }
                    },
                },
                **_ERRORS,
                "404": _json(_ref("Error"), f"no such {by}"),
            },
        }
    }


def _simple(summary: str, schema: Schema, tag: str, open_route: bool = False) -> Schema:
    op: Schema = {
        "summary": summary,
        "tags": [tag],
        "responses": {"200": _json(schema, summary), **_ERRORS},
    }
    if open_route:
        op["security"] = []
        op["responses"] = {"200": op["responses"]["200"], "421": _ERRORS["421"]}
    return op


_BINARY = {"type": "string", "format": "binary"}
_CODING = _header(
    "Content-Encoding",
    {"type": "string", "enum": ["gzip", "zstd"]},
    "the body is compressed (the decompressed size counts against max_body_bytes)",
)
_INGEST_REFUSALS = {
    **_ERRORS,
    "413": _json(_ref("Error"), "the body is over max_body_bytes (decompressed too)"),
    "415": _json(_ref("Error"), "a Content-Encoding or Content-Type that is not taken"),
    **_BUSY,
}


def _points() -> Schema:
    return {
        "post": {
            "summary": "ingest points: JSON or Arrow IPC",
            "tags": ["ingest"],
            "parameters": [
                _CODING,
                _header(
                    "Idempotency-Key",
                    {"type": "string", "minLength": 1},
                    "makes a retry of the same body safe (422 if reused for another)",
                ),
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"type": "array", "items": _ref("Point")}},
                    "application/vnd.apache.arrow.stream": {"schema": _BINARY},
                },
            },
            "responses": {
                "200": _json(_ref("IngestResult"), "what was accepted and what rejected, why"),
                **_INGEST_REFUSALS,
                "422": _json(_ref("Error"), "an Idempotency-Key reused for another body"),
            },
        }
    }


def _influx(v2: bool) -> Schema:
    params = [
        _query(
            "precision",
            {"type": "string", "enum": ["ns", "us", "u", "ms", "s", "m", "h"]},
            "timestamp unit (default ns)",
        ),
        _CODING,
    ]
    if v2:
        params += [
            _query("org", {"type": "string"}, "ignored: accepted for InfluxDB 2 clients"),
            _query("bucket", {"type": "string"}, "ignored: accepted for InfluxDB 2 clients"),
        ]
    else:
        params.append(_query("db", {"type": "string"}, "ignored: accepted for InfluxDB 1 clients"))
    return {
        "post": {
            "summary": f"InfluxDB {'2' if v2 else '1'}.x line protocol",
            "tags": ["protocols"],
            "parameters": params,
            "requestBody": {
                "required": True,
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            "responses": {
                "204": {"description": "every line taken"},
                **_INGEST_REFUSALS,
                "400": _json(
                    _ref("InfluxError"), "bad lines, named by line number (the others are kept)"
                ),
            },
        }
    }


def _prometheus(summary: str, params: Sequence[Schema], post: bool, data: Schema) -> Schema:
    responses = {
        "200": _json(
            {
                "type": "object",
                "required": ["status", "data"],
                "properties": {
                    "status": {"const": "success"},
                    "data": data,
                    "warnings": {"type": "array", "items": {"type": "string"}},
                },
            },
            summary,
        ),
        "400": _json(_ref("PrometheusError"), "bad_data: a bad parameter or query"),
        "401": _ERRORS["401"],
        "403": _ERRORS["403"],
        "421": _ERRORS["421"],
        "422": _json(_ref("PrometheusError"), "execution: over the limits"),
        "503": _json(_ref("PrometheusError"), "unavailable"),
    }
    get = {
        "summary": summary,
        "tags": ["prometheus"],
        "parameters": list(params),
        "responses": responses,
    }
    item: Schema = {"get": get}
    if post:
        form = {
            "type": "object",
            "properties": {p["name"]: p["schema"] for p in params if p["in"] == "query"},
            "required": [p["name"] for p in params if p["in"] == "query" and p["required"]],
        }
        item["post"] = {
            "summary": summary + " (parameters as a form)",
            "tags": ["prometheus"],
            "parameters": [p for p in params if p["in"] == "path"],
            "requestBody": {
                "required": True,
                "content": {"application/x-www-form-urlencoded": {"schema": form}},
            },
            "responses": responses,
        }
    return item


_PROM_TIME = {"type": "string", "minLength": 1, "examples": ["1764000000", "2025-11-24T16:00:00Z"]}
_PROM_STEP = {"type": "string", "minLength": 1, "examples": ["60", "5m"]}
_MATCH = {
    "name": "match[]",
    "in": "query",
    "style": "form",
    "explode": True,
    "schema": {"type": "array", "items": {"type": "string"}},
    "description": "series selectors",
}
_PROMQL = _query("query", {"type": "string", "minLength": 1}, "a PromQL expression", required=True)


def _prometheus_paths() -> dict[str, Schema]:
    labels_list = {"type": "array", "items": {"type": "string"}}
    start = _query("start", _PROM_TIME, "unix seconds or RFC 3339")
    end = _query("end", _PROM_TIME, "unix seconds or RFC 3339")
    return {
        "/api/v1/query": _prometheus(
            "PromQL at an instant",
            [_PROMQL, _query("time", _PROM_TIME, "unix seconds or RFC 3339 (default now)")],
            True,
            _ref("PrometheusData"),
        ),
        "/api/v1/query_range": _prometheus(
            "PromQL over a range",
            [
                _PROMQL,
                _query("start", _PROM_TIME, "unix seconds or RFC 3339", required=True),
                _query("end", _PROM_TIME, "unix seconds or RFC 3339", required=True),
                _query("step", _PROM_STEP, "seconds or a duration (5m)", required=True),
            ],
            True,
            _ref("PrometheusData"),
        ),
        "/api/v1/series": _prometheus(
            "the series matching the selectors",
            [{**_MATCH, "required": True}, start, end],
            True,
            {
                "type": "array",
                "items": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        ),
        "/api/v1/labels": _prometheus(
            "label names", [{**_MATCH, "required": False}, start, end], True, labels_list
        ),
        "/api/v1/label/{name}/values": _prometheus(
            "a label's values",
            [
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                {**_MATCH, "required": False},
                start,
                end,
            ],
            False,
            labels_list,
        ),
        "/api/v1/metadata": _prometheus(
            "every metric, as type unknown",
            [
                _query("metric", {"type": "string"}, "only this metric"),
                _query("limit", {"type": "integer"}, "at most this many metrics (-1: all)"),
            ],
            False,
            {"type": "object"},
        ),
        "/api/v1/status/buildinfo": _prometheus(
            "a Prometheus 2.42 build, so Grafana enables its features",
            [],
            False,
            {"type": "object"},
        ),
        "/api/v1/query_exemplars": _prometheus(
            "always empty: minutely keeps no exemplars",
            [_query("query", {"type": "string"}, "ignored"), start, end],
            True,
            {"type": "array", "maxItems": 0},
        ),
    }


def _operations() -> dict[str, Schema]:
    names = {"type": "array", "items": {"type": "string"}}
    ops: dict[str, Schema] = {
        "/healthz": {"get": _simple("liveness", _ref("Health"), "operations", open_route=True)},
        PATH: {"get": _simple("this document", {"type": "object"}, "operations")},
        "/metrics": {
            "get": {
                "summary": "minutely's own metrics, for Prometheus to scrape",
                "tags": ["operations"],
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_ERRORS,
                },
            }
        },
        "/api/v1/status": {
            "get": _simple(
                "ring, aggregator, store-writer and bus figures", {"type": "object"}, "operations"
            )
        },
        "/api/v1/points": _points(),
        "/api/v1/servers": {
            "get": _simple(
                "server names, sorted",
                {"type": "object", "properties": {"servers": names}},
                "names",
            )
        },
        "/api/v1/metrics": {
            "get": _simple(
                "metric names, sorted, and each one's kind",
                {
                    "type": "object",
                    "properties": {
                        "metrics": names,
                        "kinds": {
                            "type": "array",
                            "items": {"type": "string", "enum": ["gauge", "counter"]},
                        },
                    },
                },
                "names",
            )
        },
        "/api/v1/kinds": {
            "post": {
                "summary": "declare metrics counters or gauges (kinds.py)",
                "tags": ["names"],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("Kinds")}},
                },
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "declared": {"type": "integer", "minimum": 0},
                                "changed": {"type": "integer", "minimum": 0},
                            },
                        },
                        "how many names were declared, and how many changed kind",
                    ),
                    **_ERRORS,
                    "503": {
                        **_json(_ref("Error"), "a cluster's kinds bucket did not answer"),
                        "headers": _RETRY,
                    },
                },
            }
        },
        "/api/v1/dead-letters": {
            "get": _simple("the dead letters", {"type": "object"}, "operations")
        },
        "/api/v1/dead-letters/replay": {
            "post": _simple("send every dead letter on", {"type": "object"}, "operations")
        },
        "/api/v1/servers/{name}/series": _question("server", "series"),
        "/api/v1/metrics/{name}/series": _question("metric", "series"),
        "/api/v1/servers/{name}/summary": _question("server", "summary"),
        "/api/v1/metrics/{name}/summary": _question("metric", "summary"),
        "/api/v1/metrics/{name}/fleet": _question("metric", "fleet"),
        "/api/v1/cluster": {
            "get": _simple("a cluster node: nodes, leases, shards", {"type": "object"}, "cluster")
        },
        "/api/v1/local/servers/{name}/series": _local("server", "series"),
        "/api/v1/local/servers/{name}/summary": _local("server", "summary"),
        "/api/v1/local/metrics/{name}/series": _local("metric", "series"),
        "/api/v1/local/metrics/{name}/summary": _local("metric", "summary"),
        "/api/v1/write": {
            "post": {
                "summary": "Prometheus remote_write 1.0 (snappy protobuf)",
                "tags": ["protocols"],
                "parameters": [
                    _header(
                        "Content-Encoding",
                        {"type": "string", "enum": ["snappy"]},
                        "snappy (the default)",
                    ),
                    _header("X-Prometheus-Remote-Write-Version", {"type": "string"}, "0.1.0"),
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/x-protobuf": {"schema": _BINARY}},
                },
                "responses": {
                    "204": {"description": "every sample taken"},
                    **_INGEST_REFUSALS,
                    "400": {
                        "description": "the rejected samples, listed",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                },
            }
        },
        "/write": _influx(v2=False),
        "/api/v2/write": _influx(v2=True),
        "/v1/metrics": {
            "post": {
                "summary": "OTLP/HTTP metrics",
                "tags": ["protocols"],
                "parameters": [_CODING],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/x-protobuf": {"schema": _BINARY},
                        "application/json": {"schema": {"type": "object"}},
                    },
                },
                "responses": {
                    "200": {
                        "description": "an ExportMetricsServiceResponse"
                        " (partial_success counts rejected points)",
                        "content": {
                            "application/json": {"schema": {"type": "object"}},
                            "application/x-protobuf": {"schema": _BINARY},
                        },
                    },
                    **{
                        code: {
                            **r,
                            "content": {"application/json": {"schema": _ref("RpcStatus")}},
                        }
                        for code, r in _INGEST_REFUSALS.items()
                        if code not in ("401", "403", "421")
                    },
                    "401": _ERRORS["401"],
                    "403": _ERRORS["403"],
                    "421": _ERRORS["421"],
                },
            }
        },
        "/ping": {
            "get": {
                "summary": "InfluxDB clients' liveness probe",
                "tags": ["protocols"],
                "security": [],
                "responses": {"204": {"description": "alive"}, "421": _ERRORS["421"]},
            }
        },
        "/api/v1/ingest/protocols": {
            "get": _simple(
                "per protocol: requests, points accepted, rejected and dropped",
                {"type": "object"},
                "protocols",
            )
        },
        **_prometheus_paths(),
    }
    return ops


_NUM = {"type": ["number", "null"]}
_NUMS = {"type": "array", "items": _NUM}
_COMPONENTS: Schema = {
    "securitySchemes": {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "a token (minutely token add NAME --scope write|read|admin); "
            "'Authorization: Token <t>' is taken too. Needed once a token exists",
        },
        "basic": {
            "type": "http",
            "scheme": "basic",
            "description": "any user, the token as the password (remote_write, Grafana)",
        },
    },
    "schemas": {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string", "minLength": 1}},
        },
        "PrometheusError": {
            "type": "object",
            "required": ["status", "errorType", "error"],
            "properties": {
                "status": {"const": "error"},
                "errorType": {"type": "string", "enum": ["bad_data", "execution", "unavailable"]},
                "error": {"type": "string", "minLength": 1},
            },
        },
        "InfluxError": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        },
        "RpcStatus": {
            "type": "object",
            "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
        },
        "Health": {"type": "object", "properties": {"status": {"const": "ok"}}},
        "Kinds": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                kind: {"type": "array", "items": {"type": "string", "minLength": 1}}
                for kind in ("counter", "gauge")
            },
        },
        "Point": {
            "type": "object",
            "required": ["server", "metric", "ts", "value"],
            "properties": {
                "server": {"type": "string", "minLength": 1},
                "metric": {"type": "string", "minLength": 1},
                "ts": {"type": "number", "description": "unix seconds"},
                "value": {"type": "number"},
            },
        },
        "IngestResult": {
            "type": "object",
            "required": ["accepted", "rejected", "errors"],
            "properties": {
                "accepted": {"type": "integer", "minimum": 0},
                "rejected": {"type": "integer", "minimum": 0},
                "errors": {
                    "type": "array",
                    "description": "the first max_errors rejected points, with their reasons",
                    "items": {
                        "type": "object",
                        "properties": {
                            "index": {"type": "integer"},
                            "reason": {"type": "string"},
                            "code": {"type": "string", "enum": list(REASONS)},
                        },
                    },
                },
            },
        },
        "SeriesAnswer": {
            "type": "object",
            "required": ["start", "end", "step", "timestamps", "series"],
            "properties": {
                "server": {"type": "string"},
                "metric": {"type": "string"},
                "start": {"type": "integer"},
                "end": {"type": "integer"},
                "step": {"type": "integer"},
                "timestamps": {"type": "array", "items": {"type": "integer"}},
                "series": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "kind": {"const": "counter"},
                            "min": _NUMS,
                            "max": _NUMS,
                            "avg": _NUMS,
                            "sum": _NUMS,
                            "rate": _NUMS,
                            "count": {"type": "array", "items": {"type": "integer"}},
                        },
                    },
                },
                "partial": {"const": True},
            },
        },
        "FleetAnswer": {
            "type": "object",
            "required": ["metric", "start", "end", "step", "servers", "timestamps"],
            "properties": {
                "metric": {"type": "string"},
                "start": {"type": "integer"},
                "end": {"type": "integer"},
                "step": {"type": "integer"},
                "servers": {"type": "integer"},
                "kind": {"const": "counter"},
                "timestamps": {"type": "array", "items": {"type": "integer"}},
                "rate": _NUMS,
                "min": _NUMS,
                "max": _NUMS,
                "avg": _NUMS,
                "sum": _NUMS,
                "count": {"type": "array", "items": {"type": "integer"}},
                "partial": {"const": True},
            },
        },
        "SummaryAnswer": {
            "type": "object",
            "required": ["start", "end", "rows"],
            "properties": {
                "server": {"type": "string"},
                "metric": {"type": "string"},
                "start": {"type": "integer"},
                "end": {"type": "integer"},
                "rows": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "kind": {"const": "counter"},
                            "min": _NUM,
                            "max": _NUM,
                            "avg": _NUM,
                            "rate": _NUM,
                            "count": {"type": "integer"},
                        },
                    },
                },
                "partial": {"const": True},
            },
        },
        "PrometheusData": {
            "type": "object",
            "required": ["resultType", "result"],
            "properties": {
                "resultType": {"type": "string", "enum": ["vector", "matrix", "scalar", "string"]},
                "result": {},
            },
        },
    },
}

#: every operation a node may serve, by OpenAPI path
OPERATIONS = _operations()


def openapi_path(path: str) -> str:
    """A Starlette route's path as OpenAPI writes it: ``{name:path}`` is ``{name}``."""
    return re.sub(r"\{(\w+)(?::\w+)?\}", r"{\1}", path)


def _served(routes: Iterable[BaseRoute]) -> dict[str, set[str]]:
    """OpenAPI path -> the methods (lower case, without HEAD) of ``routes``' plain routes."""
    served: dict[str, set[str]] = {}
    for r in routes:
        if isinstance(r, Route):
            methods = {m.lower() for m in (r.methods or {"GET"})} - {"head"}
            served.setdefault(openapi_path(r.path), set()).update(methods)
    return served


def document(routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """The document of an app with ``routes`` (its own route included)."""
    served = _served(routes)
    served.setdefault(PATH, set()).add("get")
    paths: dict[str, Schema] = {}
    for path, methods in sorted(served.items()):
        described = OPERATIONS.get(path, {})
        missing = sorted(m for m in methods if m not in described)
        if missing:
            msg = f"{path} ({', '.join(m.upper() for m in missing)}) is not described in openapi.py"
            raise LookupError(msg)
        paths[path] = {m: described[m] for m in sorted(methods)}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "minutely",
            "version": __version__,
            "description": "Per-minute metrics: ingest, the four questions, the Prometheus "
            "query API and the ecosystem's write protocols. Errors say what was wrong.",
        },
        "security": [{"bearer": []}, {"basic": []}, {}],
        "paths": paths,
        "components": _COMPONENTS,
    }


def route(routes: Iterable[BaseRoute]) -> Route:
    """``GET /openapi.json`` for an app with ``routes``, the document built once, here."""
    body = render.dumps(document(routes))

    async def openapi(request: Request) -> Response:
        return Response(body, media_type="application/json")

    return Route(PATH, openapi, methods=["GET"])
