"""Named crash points, for the fault-injection tests: the process kills itself with SIGKILL
the ``n``-th time it passes a point it was told to stop at.

The setting ``failpoints`` (``MINUTELY_FAILPOINTS``) arms them as ``name=n[,name=n…]``, e.g.
``checkpoint.renamed=3``. Unarmed (the default, and always outside tests), ``hit`` is one
truth test of an empty dict. The points, in the order a point's life passes them:

- ``ingest.published``: a request's points are in the bus, its answer not yet sent;
- ``aggregate.folded``: a message is folded into the ring, the next checkpoint not yet taken;
- ``checkpoint.written``: the new checkpoint file is written, not yet renamed into place;
- ``checkpoint.renamed``: the checkpoint is in place, its rows not yet in the store;
- ``checkpoint.chunk``: one chunk of the checkpoint's insert is in the store, maybe not all;
- ``checkpoint.inserted``: the store has the checkpoint's rows, the bus has no acks yet.
"""

from __future__ import annotations

import os
import signal

from minutely.errors import ConfigError

NAMES = (
    "ingest.published",
    "aggregate.folded",
    "checkpoint.written",
    "checkpoint.renamed",
    "checkpoint.chunk",
    "checkpoint.inserted",
)

_armed: dict[str, int] = {}


def arm(spec: str) -> None:
    """Arm the points in ``spec`` (``name=n,…``); an empty spec disarms every point."""
    plan: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, count = item.partition("=")
        if name not in NAMES:
            msg = f"failpoints: unknown point {name!r} (known: {', '.join(NAMES)})"
            raise ConfigError(msg)
        if not count.isdigit() or int(count) < 1:
            msg = f"failpoints: {item!r} needs a pass count of at least 1, e.g. {name}=3"
            raise ConfigError(msg)
        plan[name] = int(count)
    _armed.clear()
    _armed.update(plan)


def hit(name: str) -> None:
    """Pass the point ``name``: die here if this is the pass it was armed for."""
    if not _armed or name not in _armed:
        return
    _armed[name] -= 1
    if _armed[name] == 0:
        os.kill(os.getpid(), signal.SIGKILL)
