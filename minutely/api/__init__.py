"""The HTTP surface: ``create_app(service)`` builds the ASGI app (see ``app.py``)."""

from minutely.api.app import create_app, create_ingest_app

__all__ = ["create_app", "create_ingest_app"]
