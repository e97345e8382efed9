"""The public surface is listed once (``__all__``; ruff's RUF022 keeps it sorted), and every
listed name exists."""

from __future__ import annotations

import minutely
import minutely.bus
import minutely.ingest
import minutely.store


def test_every_exported_name_exists_once() -> None:
    for module in (minutely, minutely.bus, minutely.ingest, minutely.store):
        names = list(module.__all__)
        assert len(names) == len(set(names)), module.__name__
        missing = [n for n in names if not hasattr(module, n)]
        assert not missing, f"{module.__name__} exports missing names {missing}"
