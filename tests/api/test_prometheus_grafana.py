"""The Grafana dashboard in ``grafana/``: every query in it, with Grafana's variables filled
in as Grafana fills them, answers through the Prometheus API; its variables' label queries too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from minutely.service import Service
from tests.api.helpers import NOW, ingest, make_points

GRAFANA = Path(__file__).resolve().parents[2] / "grafana"
END = (NOW // 60 + 1) * 60


def expressions() -> list[str]:
    dashboard = json.loads((GRAFANA / "minutely.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def fill(expr: str, interval: str) -> str:
    values = {
        "$__interval": interval,
        "$__range": "21600s",
        "$server_metric": "cpu.user",
        "$server": "web-001",
        "$metric": "mem.used",
    }
    for name, value in values.items():
        expr = expr.replace(name, value)
    return expr


@pytest.fixture
def loaded(client: TestClient, service: Service) -> dict[str, np.ndarray]:
    pts = make_points(seed=2, n=10_000)
    ingest(client, service, pts)
    return pts


@pytest.mark.parametrize("interval", ["1m", "5m", "90s"])
def test_every_panel_query_answers(
    client: TestClient, loaded: dict[str, np.ndarray], interval: str
) -> None:
    exprs = expressions()
    assert len(exprs) >= 10
    for expr in exprs:
        form: dict[str, Any] = {
            "query": fill(expr, interval),
            "start": END - 6 * 3600,
            "end": END,
            "step": 60,
        }
        r = client.post("/api/v1/query_range", data=form)
        assert r.status_code == 200, (expr, r.text)
        assert r.json()["data"]["result"], expr
        r = client.post("/api/v1/query", data={"query": form["query"], "time": END})
        assert r.status_code == 200, (expr, r.text)


def test_the_variables_label_queries_answer(
    client: TestClient, loaded: dict[str, np.ndarray]
) -> None:
    servers = client.get("/api/v1/label/instance/values").json()["data"]
    assert "web-001" in servers
    metrics = client.get(
        "/api/v1/label/__name__/values", params={"match[]": '{instance="web-001"}'}
    ).json()["data"]
    assert metrics == sorted(set(loaded["metric"].tolist()))


def test_provisioning_points_a_prometheus_data_source_at_minutely() -> None:
    # read as text: the repository has no YAML library of its own to parse it with
    source = (GRAFANA / "provisioning/datasources/minutely.yaml").read_text()
    for line in ("type: prometheus", "uid: minutely", "timeInterval: 60s", "httpMethod: POST"):
        assert line in source
    boards = (GRAFANA / "provisioning/dashboards/minutely.yaml").read_text()
    assert "type: file" in boards and "path: /var/lib/grafana/dashboards/minutely" in boards
