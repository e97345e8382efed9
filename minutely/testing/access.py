"""The ``Access`` of apps under Starlette's ``TestClient``, which sends ``Host: testserver``:
loopback names and that one, no tokens (a test that wants tokens builds its own)."""

from __future__ import annotations

from minutely.api.auth import Access

TESTSERVER = Access(Access.hosts(["testserver"]))
