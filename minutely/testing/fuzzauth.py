"""The auth pass: the seeded requests of ``fuzzcases`` (every operation of ``/openapi.json``,
a cluster node's ``/api/v1/local/…`` routes among them, and every ingest format) sent in
process to an app whose tokens file holds a token of each scope, each request with a drawn
``Host`` and ``Authorization``.

``Authorization`` carries a token of some scope, a revoked or unknown one, or none, in a form
that is valid (``Bearer``, ``Token``, basic auth with the token as the password, any letter
case and spacing HTTP allows) or not (cut, extended, wrong scheme, a tab for the space, bad
base64, no password, bytes that are not text, 100 KB, two headers). The answer must be what
the scope table says (``api.auth.required_scope``): ``421`` for a foreign ``Host``, ``400``
for two, ``401`` with a ``Bearer`` challenge for no valid token, ``403`` for too small a
scope, and otherwise the route's own answer; and it must keep ``fuzz.problem``'s rules. A
form the pass cannot call valid or not may be refused, but never let through with a token
whose scope does not grant the route.
"""

from __future__ import annotations

import asyncio
import base64
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from minutely import auth
from minutely.api.auth import Access, required_scope
from minutely.auth import Scope, TokenFile
from minutely.service import Service
from minutely.testing.access import TESTSERVER
from minutely.testing.asgi import Hang, call
from minutely.testing.fuzz import BLOCK, HANG, FastRun, problem
from minutely.testing.fuzzcases import Case, Cases
from minutely.testing.fuzzwire import ALLOWED_HOSTS, FOREIGN_HOSTS

#: who a request claims to be: a token of each scope, a revoked one, an unknown one, nobody
WHO = ("write", "read", "admin", "revoked", "unknown", "none")


class LocalService(Service):
    """A single node as a cluster member that holds every partition: the app then has a
    cluster node's ``/api/v1/local/…`` routes, answered from this node's ring."""

    @property
    def local_answers(self) -> Any:
        return self.answers

    def cluster_status(self) -> dict[str, Any]:
        return {"nodes": [], "partitions": [], "shards": []}


def add_tokens(data_dir: Path) -> dict[str, str]:
    """A token of each scope in ``data_dir``'s tokens file, and one revoked: their secrets."""
    path = auth.tokens_path(data_dir)
    secrets = {scope.value: auth.add_token(path, scope.value, scope) for scope in Scope}
    secrets["revoked"] = auth.add_token(path, "revoked", Scope.ADMIN)
    auth.revoke_token(path, "revoked")
    secrets["unknown"] = auth.new_secret()
    return secrets


def access(data_dir: Path) -> Access:
    """The in-process app's access: ``TestClient``'s host names, and ``data_dir``'s tokens."""
    return Access(TESTSERVER.allowed_hosts, TokenFile(auth.tokens_path(data_dir)).open())


def _basic(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


def credentials(rng: random.Random, secret: str) -> tuple[list[bytes], bool | None]:
    """``Authorization`` values carrying ``secret``, and whether they carry it validly (None:
    the pass does not say; a refusal is then right, and so is a pass if the scope grants)."""
    t = secret.encode()
    pick = rng.random()
    if pick < 0.5:
        form = rng.choice(
            (
                b"Bearer " + t,
                b"bearer " + t,
                b"BEARER   " + t + b"  ",
                b"Token " + t,
                b"token " + t,
                _basic(rng.choice(("", "any", "prometheus", "é")), secret),
                _basic(secret, secret),
            )
        )
        return [form], True
    if pick < 0.9:
        b64 = base64.b64encode(t).decode()
        form = rng.choice(
            (
                b"Bearer",
                b"Bearer ",
                b"Bearer " + t[:-1],
                b"Bearer " + t + b"x",
                b"Bearer " + t.upper(),
                b"Bearer\t" + t,
                b"Bearer " + t + b" " + t,
                b"Digest " + t,
                t,
                b"Basic " + b64.encode(),
                b"Basic " + _basic("u", secret)[6:-2],
                _basic(secret, ""),
                b"Bearer " + t + b"\xff",
                b"Bearer " + t + b"\x00",
                b"Bearer " + b"A" * 100_000,
            )
        )
        return [form], False
    odd = rng.choice(
        (
            [b"Bearer " + t, b"Bearer nothing"],
            [b"Bearer nothing", b"Bearer " + t],
            [b"Basic " + base64.b64encode(b"u:" + t) + b"="],
            [b"Basic " + base64.urlsafe_b64encode(b"\xfb\xff:" + t)],
            [b"Bearer  " + t],
        )
    )
    return odd, None


@dataclass(frozen=True)
class AuthCase:
    """A request and the answers it may get: ``allowed`` statuses (None: any the route may
    give, but no 401, 403 or 421)."""

    case: Case
    host: bytes
    allowed: frozenset[int] | None
    challenge: bool  #: a 401 must carry ``WWW-Authenticate: Bearer``

    def shown(self) -> str:
        return f"Host: {self.host!r}\n{self.case.curl()}"


def auth_case(cases: Cases, secrets: dict[str, str], seed: int) -> AuthCase:
    """The auth case of ``seed``: ``cases.make(seed)`` with a drawn ``Host`` and token."""
    base = cases.make(seed)
    rng = random.Random(seed ^ 0xA17)
    headers = [(k, v) for k, v in base.headers if k != b"authorization"]
    host = rng.choice(("testserver", *ALLOWED_HOSTS)).encode()
    pick = rng.random()
    who = rng.choice(WHO)
    valid: bool | None = False
    if who != "none":
        values, valid = credentials(rng, secrets[who])
        headers += [(b"authorization", v) for v in values]
    needed = required_scope(unquote(base.path, errors="replace"))
    granted = who in ("write", "read", "admin") and (needed is None or Scope(who).grants(needed))
    allowed: frozenset[int] | None
    if pick < 0.08:
        host = rng.choice(FOREIGN_HOSTS).encode()
        allowed = frozenset({421})
    elif pick < 0.12:
        headers.append((b"host", rng.choice(("localhost", *FOREIGN_HOSTS)).encode()))
        allowed = frozenset({400})
    elif needed is None:
        allowed = None
    elif valid is None:  # refused, or let in with a scope that grants the route
        allowed = frozenset({401, 403}) if not granted else frozenset(range(100, 600)) - {403}
    elif not valid or who in ("revoked", "unknown", "none"):
        allowed = frozenset({401})
    else:
        allowed = None if granted else frozenset({403})
    case = Case(seed, base.label, base.method, base.path, base.query, headers, base.body)
    return AuthCase(case, host, allowed, allowed == frozenset({401}))


def judge_auth(case: AuthCase, answer: Any, run: FastRun) -> None:
    label = case.case.label
    run.cases += 1
    run.labels[label] += 1
    if isinstance(answer, Exception):
        run.statuses[label, 0] += 1
        run.problems.append(f"{type(answer).__name__}: {answer}\n{case.shown()}")
        return
    run.statuses[label, answer.status] += 1
    found = problem(answer.status, answer.headers, answer.body)
    if found is None and case.allowed is None and answer.status in (401, 403, 421):
        found = f"answered {answer.status}, though the request may pass: {answer.body[:300]!r}"
    elif found is None and case.allowed is not None and answer.status not in case.allowed:
        found = f"answered {answer.status}, not one of {sorted(case.allowed)[:5]}"
    elif (
        found is None
        and answer.status == 401
        and case.challenge
        and not answer.headers.get("www-authenticate", "").startswith("Bearer")
    ):
        found = "a 401 without its Bearer challenge"
    if found is not None:
        run.problems.append(f"{label}: {found}\n{case.shown()}")


async def fuzz_auth(
    app: Any,
    node: Service,
    secrets: dict[str, str],
    seeds: range,
    *,
    advance: Any = None,
    timeout: float = HANG,
    progress: Any = None,
) -> FastRun:
    """Send the auth case of each seed to ``app`` over ``node`` (not started: its aggregator
    is drained here), a block of ``BLOCK`` at a time, judging each answer."""
    import json

    admin = [(b"authorization", b"Bearer " + secrets["admin"].encode())]
    document = json.loads((await call(app, "GET", "/openapi.json", headers=admin)).body)
    cases = Cases(document, node.clock)
    run = FastRun()
    began = time.perf_counter()

    async def one(case: AuthCase) -> tuple[AuthCase, Any]:
        c = case.case
        try:
            answer = await call(
                app, c.method, c.path, c.query, c.headers, c.body, host=case.host, timeout=timeout
            )
        except (Hang, Exception) as e:  # a raise is what a client sees as a 500
            return case, e
        return case, answer

    for start in range(seeds.start, seeds.stop, BLOCK):
        block = [auth_case(cases, secrets, s) for s in range(start, min(start + BLOCK, seeds.stop))]
        for case, answer in await asyncio.gather(*map(one, block)):
            judge_auth(case, answer, run)
        while node.aggregator.drain(timeout=0):
            pass
        if advance is not None:
            advance(1.0)
        if progress is not None:
            progress(run)
    run.seconds = time.perf_counter() - began
    return run
