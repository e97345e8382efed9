"""API tokens: their scopes, the file that keeps their hashes, and how a presented secret is
checked.

A token is a name, a scope and a secret. The secret is 256 random bits, shown once by
``minutely token add`` and never stored: ``<data_dir>/tokens.json`` (mode 0600, replaced
atomically) keeps only its SHA-256, which is enough because a secret that random cannot be
guessed from its hash, so no slow password hash is needed::

    {"version": 1,
     "tokens": [{"name": "grafana", "scope": "read", "sha256": "<64 hex>",
                 "created": "2026-12-02T08:41:40Z"}, ...]}

Scopes nest: ``admin`` grants ``read`` and ``write`` too. With no token in the file, auth is
off. A running server sees tokens added or revoked by rereading the file when its stat
changes, looked at no more than once a second (``TokenFile.refresh``).
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from minutely.errors import ConfigError, MinutelyError

TOKENS_FILE = "tokens.json"
#: secrets begin with this, so secret scanners and people can tell what one is
SECRET_PREFIX = "mt_"
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: how often a running server looks at the tokens file, at most (seconds)
REFRESH_EVERY = 1.0


class TokenError(MinutelyError, ValueError):
    """A token cannot be added or revoked, or the tokens file cannot be read."""


class Scope(enum.Enum):
    """What a token may do; ``admin`` grants the others."""

    WRITE = "write"
    READ = "read"
    ADMIN = "admin"

    def grants(self, needed: Scope) -> bool:
        return self is needed or self is Scope.ADMIN


@dataclass(frozen=True, slots=True)
class Token:
    """A token as stored: never its secret."""

    name: str
    scope: Scope
    sha256: bytes
    created: str


def digest(secret: str) -> bytes:
    """What is stored of ``secret`` and what a presented one is compared on."""
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def match(tokens: tuple[Token, ...], secret: str) -> Token | None:
    """The token whose hash is ``secret``'s, comparing with every one in constant time."""
    presented = digest(secret)
    found = None
    for token in tokens:
        if hmac.compare_digest(token.sha256, presented):
            found = token
    return found


def tokens_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / TOKENS_FILE


def read_tokens(path: Path) -> tuple[Token, ...]:
    """The tokens in ``path``; none if it does not exist; ``TokenError`` if it is not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ()
    except OSError as e:
        msg = f"tokens file {path} cannot be read ({e.strerror})"
        raise TokenError(msg) from None
    try:
        doc = json.loads(text)
        return tuple(
            Token(t["name"], Scope(t["scope"]), bytes.fromhex(t["sha256"]), t["created"])
            for t in doc["tokens"]
        )
    except (ValueError, KeyError, TypeError) as e:
        msg = f"tokens file {path} is malformed ({e}): fix or remove it"
        raise TokenError(msg) from None


def _write_tokens(path: Path, tokens: tuple[Token, ...]) -> None:
    doc = {
        "version": 1,
        "tokens": [
            {"name": t.name, "scope": t.scope.value, "sha256": t.sha256.hex(), "created": t.created}
            for t in tokens
        ],
    }
    fd, tmp = tempfile.mkstemp(prefix=".tokens.", dir=path.parent)  # mkstemp makes it 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Two ``token`` commands at once must not lose each other's change."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def add_token(path: Path, name: str, scope: Scope) -> str:
    """Store a new token's hash in ``path`` and return its secret, which is kept nowhere."""
    if not _NAME.match(name):
        msg = f"token name {name!r} may hold only 1 to 64 letters, digits, '.', '-' and '_'"
        raise TokenError(msg)
    with _locked(path):
        tokens = read_tokens(path)
        if any(t.name == name for t in tokens):
            msg = f"a token named {name!r} exists: revoke it first, or choose another name"
            raise TokenError(msg)
        secret = new_secret()
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        _write_tokens(path, (*tokens, Token(name, scope, digest(secret), now)))
    return secret


def revoke_token(path: Path, name: str) -> None:
    with _locked(path):
        tokens = read_tokens(path)
        kept = tuple(t for t in tokens if t.name != name)
        if len(kept) == len(tokens):
            msg = f"no token named {name!r} in {path}"
            raise TokenError(msg)
        _write_tokens(path, kept)


class TokenFile:
    """The tokens a running server accepts, reread from ``path`` when the file changes.

    ``open`` reads it (raising ``TokenError`` if it is malformed); ``refresh`` looks at it
    again once ``REFRESH_EVERY`` has passed. A file that turns malformed while serving
    closes the door (no token matches) rather than keeping tokens that may have been revoked.
    """

    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.clock = clock
        self.tokens: tuple[Token, ...] = ()
        #: why no token can match, when the file could not be read
        self.broken: str | None = None
        self._stat: tuple[int, int, int] | None = None
        self._checked = 0.0

    def open(self) -> TokenFile:
        self._checked = self.clock()
        self._load()
        if self.broken is not None:
            raise TokenError(self.broken)
        return self

    @property
    def enabled(self) -> bool:
        """Auth is on: a token exists, or the file is there but unreadable."""
        return bool(self.tokens) or self.broken is not None

    def refresh(self) -> None:
        now = self.clock()
        if now - self._checked < REFRESH_EVERY:
            return
        self._checked = now
        self._load()

    def _load(self) -> None:
        try:
            st = os.stat(self.path)
            stat = (st.st_mtime_ns, st.st_ino, st.st_size)
        except FileNotFoundError:
            stat = None
        except OSError as e:
            self.tokens = ()
            self.broken = f"tokens file {self.path} cannot be read ({e.strerror})"
            return
        if stat == self._stat and self.broken is None:
            return
        self._stat = stat
        try:
            self.tokens = read_tokens(self.path)
            self.broken = None
        except TokenError as e:
            self.tokens = ()
            self.broken = str(e)


def parse_scope(text: str) -> Scope:
    try:
        return Scope(text)
    except ValueError:
        msg = f"scope {text!r} is not one of {', '.join(s.value for s in Scope)}"
        raise ConfigError(msg) from None
