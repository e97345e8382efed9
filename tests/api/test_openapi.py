"""``/openapi.json`` describes every route each app has, and nothing it lacks."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from minutely.api import create_app, create_ingest_app
from minutely.api.openapi import OPERATIONS, document, openapi_path
from minutely.api.params import MAX_STEP
from minutely.testing.access import TESTSERVER
from tests.api.test_app_without_service import FakeAnswers, FakeNode


class FakeClusterNode(FakeNode):
    """A node that is a cluster member too, so the app has the cluster's routes."""

    @property
    def local_answers(self) -> FakeAnswers:
        return self.fake_answers

    def cluster_status(self) -> dict[str, Any]:
        return {"nodes": []}


def served(app: Starlette) -> set[tuple[str, str]]:
    """(OpenAPI path, method) of every plain route of ``app``, HEAD aside."""
    out = set()
    for r in app.routes:
        if isinstance(r, Route):
            for m in r.methods or {"GET"}:
                if m != "HEAD":
                    out.add((openapi_path(r.path), m.lower()))
    return out


def described(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(p, m) for p, item in doc["paths"].items() for m in item}


@pytest.mark.parametrize(
    "app",
    [
        create_app(FakeNode(), manage_lifecycle=False, access=TESTSERVER),
        create_app(FakeClusterNode(), manage_lifecycle=False, access=TESTSERVER),
        create_ingest_app(FakeNode(), manage_lifecycle=False, access=TESTSERVER),
    ],
    ids=["node", "cluster-node", "ingest-node"],
)
def test_the_served_document_is_every_route_of_the_app(app: Starlette) -> None:
    with TestClient(app) as c:
        resp = c.get("/openapi.json")
    assert resp.status_code == 200
    doc = resp.json()
    schemathesis.openapi.from_dict(doc).validate()  # against the OpenAPI 3.1 schema
    assert described(doc) == served(app)
    assert ("/openapi.json", "get") in described(doc)


def test_the_cluster_routes_are_only_in_a_cluster_nodes_document() -> None:
    alone = TestClient(create_app(FakeNode(), manage_lifecycle=False, access=TESTSERVER))
    member = TestClient(create_app(FakeClusterNode(), manage_lifecycle=False, access=TESTSERVER))
    assert "/api/v1/cluster" not in alone.get("/openapi.json").json()["paths"]
    paths = member.get("/openapi.json").json()["paths"]
    assert "/api/v1/cluster" in paths
    assert "/api/v1/local/servers/{name}/series" in paths


def test_a_route_not_described_stops_the_app_from_being_built() -> None:
    async def nothing(request: Any) -> Any: ...

    with pytest.raises(LookupError, match=r"/api/v1/new \(GET\) is not described"):
        document([Route("/api/v1/new", nothing)])


def test_parameters_carry_the_ranges_the_app_checks() -> None:
    q1 = OPERATIONS["/api/v1/servers/{name}/series"]["get"]
    params = {p["name"]: p for p in q1["parameters"]}
    assert params["step"]["schema"] == {
        "type": "integer",
        "minimum": 60,
        "maximum": MAX_STEP,
        "multipleOf": 60,
        "default": 60,
    }
    assert params["format"]["schema"]["enum"] == ["json", "csv", "arrow"]
    assert params["metric"]["schema"]["type"] == "array"
    doc = document([])
    assert set(doc["components"]["securitySchemes"]) == {"bearer", "basic"}
    assert doc["paths"]["/openapi.json"]["get"]["responses"]["200"]
