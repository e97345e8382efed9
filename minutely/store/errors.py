"""What the store raises (both are ``MinutelyError``s; the lead may fold them into
``minutely.errors``)::

    MinutelyError
    ├── StoreError      the store failed: unreachable, or the engine refused a statement
    └── StoreCorrupt    the registry tables on disk are inconsistent (never renumbered silently)
"""

from __future__ import annotations

from minutely.errors import MinutelyError


class StoreError(MinutelyError):
    """The store failed: unreachable, or the engine refused a statement (the cause says why)."""


class StoreCorrupt(MinutelyError):
    """The registry tables on disk do not describe a consistent registry."""
