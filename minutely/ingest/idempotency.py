"""Idempotency keys on ingest: which body each recent key named, and which import blocks
are already stored.

Owns ``IdempotencyKeys``. The buses drop a publish whose key they saw within their duplicate
window (the memory bus's ``_seen``, JetStream's ``Nats-Msg-Id``), so a retry counts once; but
they compare keys only, and would answer a key reused for another body ``200`` and drop it.
``check`` runs before publish and compares a digest of the raw body:

    key                                           answer
    ────────────────────────────────────────────  ──────────────────────────────────────────
    new, or seen within the window, same body     publish (the bus drops a repeat): counts once
    seen within the window, another body          IdempotencyConflict (422), nothing applied
    empty, a line break, or over 256 bytes        BadParameter (400)
    ``max_keys`` keys already within the window   Backpressure (429) until the oldest expires
    ``max_bytes`` of keys already within it       the same: the keys' memory is bounded too

A key is remembered from its first ``check``, even if that publish then fails, so a retry of
the same body is published again and a reuse for another body is refused either way.

Import keys (``import:...``, sent by ``minutely import`` for each block of a file) are
remembered past the window, in a ledger: ``published`` adds a key once its publish
succeeded, and ``check`` then answers it ``stored``, so the caller answers without publishing
again, minutes or restarts later. With a ``ledger`` path the ledger is also a file, read at
the first import key's ``check`` and appended to (and fsynced) by ``published``; one line per
block::

    <64 hex digits: sha256 of the body> <key>\\n

A torn last line (a crash mid-append) is skipped when read. A crash between a publish and
its line leaves that block unlisted: a re-run after the bus's window publishes it again.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from minutely.errors import Backpressure, BadParameter, IdempotencyConflict
from minutely.ingest.validate import Body

#: The buses' duplicate window (seconds): how long an ordinary key names its body.
DUPLICATE_WINDOW = 120.0
#: A key longer than this (in UTF-8 bytes) is refused.
MAX_KEY_BYTES = 256
#: Keys with this prefix name import blocks: remembered in the ledger, past the window.
IMPORT_PREFIX = "import:"
#: The ledger file's name in the data dir.
LEDGER_NAME = "imports.log"

_DIGEST_BYTES = 32  # sha256
_ENTRY_BYTES = 200  # a dict slot, a tuple, a float and the objects' headers, about
#: The most the keys of the window may hold (``_cost`` each): 16 MB, about 33,000 keys of
#: the longest kind, so many long keys are refused before they are many megabytes.
MAX_REMEMBERED_BYTES = 16 << 20
_HEADER = "Idempotency-Key"
#: what a refusal for too many keys at once is counted as (``limits.Refusals``)
LIMIT_NAME = "idempotency_keys"


class Claim(NamedTuple):
    """What ``check`` found for one request: its key, its body's digest, and whether the body
    is an import block already stored (answer it, publish nothing)."""

    key: str
    digest: bytes
    stored: bool


def body_digest(body: Body) -> bytes:
    """The digest a key is compared by (hashlib releases the GIL on large bodies)."""
    return hashlib.sha256(body).digest()


class IdempotencyKeys:
    """The keys of the last ``window`` seconds (at most ``max_keys``) and the import ledger.

    Safe from several threads. ``check`` hashes the body and reads the ledger file at its
    first import key: call it off the event loop.
    """

    def __init__(
        self,
        ledger: Path | None = None,
        *,
        window: float = DUPLICATE_WINDOW,
        max_keys: int = 100_000,
        max_bytes: int = MAX_REMEMBERED_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._path = ledger
        self._window = window
        self._max_keys = max_keys
        self._max_bytes = max_bytes
        self._bytes = 0  # what the keys within the window hold (``_cost`` each)
        self._clock = clock
        self._lock = threading.Lock()
        self._recent: dict[str, tuple[bytes, float]] = {}  # key -> (digest, first seen), in order
        self._stored: dict[str, bytes] | None = None  # import key -> digest; None until read
        self._torn = False  # the ledger file does not end with a line break

    def check(self, key: str, body: Body) -> Claim:
        """Remember ``key`` for ``body``; raise if it named another body (see the module)."""
        _check_key(key)
        digest = body_digest(body)
        with self._lock:
            stored = self._ledger().get(key) if key.startswith(IMPORT_PREFIX) else None
            if stored is not None:
                if stored != digest:
                    msg = f"{_HEADER} {key!r} was used for a different body (an import block)"
                    raise IdempotencyConflict(msg)
                return Claim(key, digest, stored=True)
            now = self._clock()
            self._forget_before(now - self._window)
            seen = self._recent.get(key)
            if seen is None:
                cost = _cost(key)
                full = len(self._recent) >= self._max_keys
                if full or self._bytes + cost > self._max_bytes:
                    oldest = next(iter(self._recent.values()))[1]
                    held, most = (
                        (f"{len(self._recent)} {_HEADER}s", f"{self._max_keys} keys")
                        if full
                        else (f"{self._bytes} bytes of {_HEADER}s", f"{self._max_bytes} bytes")
                    )
                    msg = (
                        f"{held} seen within the last {_span(self._window)}, the most"
                        f" remembered at once (the limit idempotency_keys is {most})"
                    )
                    wait = max(1.0, oldest + self._window - now)
                    raise Backpressure(msg, retry_after=wait, limit=LIMIT_NAME)
                self._recent[key] = (digest, now)
                self._bytes += cost
            elif seen[0] != digest:
                msg = (
                    f"{_HEADER} {key!r} was used within the last {_span(self._window)}"
                    " for a different body"
                )
                raise IdempotencyConflict(msg)
            return Claim(key, digest, stored=False)

    def published(self, claim: Claim) -> None:
        """``claim``'s body is on the bus: an import key joins the ledger (and its file).

        Call it right after the publish, with no await between: a request cancelled there
        would leave a published block out of the ledger. Only an import key writes (one
        line, fsynced), once per import block."""
        if claim.stored or not claim.key.startswith(IMPORT_PREFIX):
            return
        with self._lock:
            ledger = self._ledger()
            if claim.key in ledger:
                return  # a concurrent retry of the same block got here first
            ledger[claim.key] = claim.digest
            if self._path is not None:
                self._append(f"{claim.digest.hex()} {claim.key}\n")

    def __len__(self) -> int:
        """Keys remembered within the window (the ledger not counted)."""
        with self._lock:
            return len(self._recent)

    def _forget_before(self, horizon: float) -> None:
        # Insertion order is first-seen order, so the expired keys are a prefix.
        while self._recent:
            key, (_, seen) = next(iter(self._recent.items()))
            if seen > horizon:
                return
            del self._recent[key]
            self._bytes -= _cost(key)

    def _ledger(self) -> dict[str, bytes]:
        """The import ledger, read from its file at the first call."""
        if self._stored is None:
            self._stored = {}
            if self._path is not None and self._path.exists():
                data = self._path.read_bytes()
                self._torn = bool(data) and not data.endswith(b"\n")
                for line in data.decode("utf-8", "replace").splitlines():
                    digest, _, key = line.partition(" ")
                    if len(digest) == 2 * _DIGEST_BYTES and key.startswith(IMPORT_PREFIX):
                        try:
                            self._stored[key] = bytes.fromhex(digest)
                        except ValueError:
                            continue  # a torn or damaged line names no block
        return self._stored

    def _append(self, line: str) -> None:
        assert self._path is not None
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._path.open("a", encoding="utf-8") as f:
            f.write("\n" + line if self._torn else line)
            f.flush()
            os.fsync(f.fileno())
        self._torn = False


def _cost(key: str) -> int:
    """What remembering ``key`` holds: its text, its digest and their dict entry."""
    return len(key) + _DIGEST_BYTES + _ENTRY_BYTES


def _check_key(key: str) -> None:
    size = len(key.encode("utf-8", "surrogatepass"))
    if size == 0 or size > MAX_KEY_BYTES:
        problem = f"is {size} bytes; it must be 1 to {MAX_KEY_BYTES} bytes"
        raise BadParameter(param=_HEADER, problem=problem, limit="idempotency_key_bytes")
    if "\n" in key or "\r" in key:
        raise BadParameter(param=_HEADER, problem="cannot contain a line break")


def _span(seconds: float) -> str:
    """``120`` -> ``"2 minutes"``, ``90`` -> ``"90 seconds"``."""
    if seconds % 60 == 0:
        minutes = int(seconds // 60)
        return "1 minute" if minutes == 1 else f"{minutes} minutes"
    return f"{seconds:g} seconds"
