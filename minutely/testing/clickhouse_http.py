"""A stand-in ClickHouse server for tests: the HTTP interface, answered by chDB's engine.

The store's ``http://`` DSN should be tested against a real ClickHouse server, but none can
run here: Debian's ``clickhouse-server`` (18.16) is far too old and there is no network to
fetch a newer one. So this module serves the part of the ClickHouse HTTP interface that
``clickhouse_connect.get_client(dsn="http://…")`` uses, and runs every statement in the real
ClickHouse engine that chDB embeds. SQL, formats, settings, bound parameters, errors and
insert deduplication are therefore ClickHouse's own; only the HTTP layer below is ours. It
runs in a process of its own (``python -m minutely.testing.clickhouse_http --port P --dir
D``), as chDB hosts one engine directory per process and the test process already hosts one.

It is the one double the tests allow, and only in place of a ClickHouse server: it ships in
the package so that ``minutely demo --nodes 3`` can give its nodes a shared store, and says
so (``X-ClickHouse-Server-Display-Name: chdb-http-stand-in``). Where a real ClickHouse
server can run, use that.

The subset of the protocol it implements:

- ``GET /ping`` (and ``GET /`` without a query) answers ``Ok.``.
- ``GET`` or ``POST /``: the statement is the ``query`` URL parameter followed by a newline
  and the request body, or the body alone. ``INSERT INTO t [(cols)] FORMAT F`` takes the
  rest of that text as its data (run as ``INSERT … FROM INFILE``); any other statement is
  run as it is. A plain or ``chunked`` body; no ``multipart/form-data``.
- ``param_<name>`` parameters bind ``{name:Type}`` placeholders (server-side binding).
- ``database`` sets the current database; ``default_format`` the output format of a
  statement without a ``FORMAT`` clause (``TabSeparated`` otherwise). Every other parameter
  not listed under "ignored" is a ClickHouse setting for this one request (applied with
  ``SET`` on the engine session that runs it); an unknown setting is an error, as on a server.
- Answers carry ``X-ClickHouse-Query-Id``, ``X-ClickHouse-Summary`` (rows and bytes read and
  written, elapsed time), ``X-ClickHouse-Timezone``, ``X-ClickHouse-Server-Display-Name`` and,
  for a statement that produces a result (even an empty one), ``X-ClickHouse-Format``.
- An error is HTTP 500 with ClickHouse's text (``Code: N. DB::Exception: …``) and the
  ``X-ClickHouse-Exception-Code: N`` header.

Not implemented: compression either way (``Content-Encoding`` on a request and the
``compress``/``decompress`` parameters are refused with an error; ``Accept-Encoding`` and
``enable_http_compression`` are ignored, so answers go uncompressed, which HTTP allows),
sessions (``session_id`` is ignored: every request is a session of its own, so a ``SET``,
``USE`` or temporary table does not outlive it), progress headers, the
``client_protocol_version`` parameter (Native answers carry no block info, so the client
falls back to protocol 0), authentication, external data and streaming (a whole answer is
built before it is sent, as with ``wait_end_of_query=1``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from minutely.testing.natsserver import free_port
from minutely.testing.processes import ROOT, ServerProcess

DISPLAY_NAME = "chdb-http-stand-in"

#: HTTP parameters that are not settings: consumed here, or meaningless for this stand-in
_IGNORED = frozenset(
    {
        "user",
        "password",
        "quota_key",
        "role",
        "session_id",
        "session_timeout",
        "session_check",
        "close_session",
        "buffer_size",
        "wait_end_of_query",
        "stacktrace",
        "client_protocol_version",
        "enable_http_compression",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
    }
)
_TRANSPORT = frozenset({"query", "database", "default_format", "query_id"})
_UNSUPPORTED = frozenset({"compress", "decompress"})

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CODE = re.compile(r"Code: (\d+)\.")
#: what clickhouse-connect sends to insert: the statement, then the data after one newline
_INSERT = re.compile(
    rb"\s*INSERT\s+INTO\s+(?P<target>[^\s(]+\s*(?:\([^)]*\))?)\s*FORMAT\s+(?P<fmt>\w+)[ \t]*\r?\n?",
    re.IGNORECASE,
)
_TRAILING_FORMAT = re.compile(rb"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
#: statements that change the engine session itself, which is then not reused
_SESSION_STATE = re.compile(rb"\s*(?:SET|USE|CREATE\s+TEMPORARY)\b", re.IGNORECASE)

# ClickHouse error codes used for what the stand-in refuses
_NOT_IMPLEMENTED = 48
_UNKNOWN_SETTING = 115
_STD_EXCEPTION = 1001


class QueryFailed(Exception):
    """A statement failed: HTTP 500 with ClickHouse's code and text."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text

    @classmethod
    def from_engine(cls, exc: Exception) -> QueryFailed:
        text = str(exc).strip()
        code = _CODE.search(text)
        return cls(int(code.group(1)) if code else _STD_EXCEPTION, text)


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# -- the engine ---------------------------------------------------------------------------------


@dataclass
class _Session:
    """One chDB connection and what this server has changed on it (``SET``, ``USE``)."""

    conn: Any
    settings: dict[str, str] = field(default_factory=dict)
    database: str = "default"
    #: a statement changed the session behind ``prepare``'s back: close it after the request
    spoiled: bool = False

    def run(self, sql: str | bytes, fmt: str, params: dict[str, str] | None = None) -> Any:
        try:
            return self.conn.query(sql, fmt, params=params or {})
        except Exception as exc:  # chDB raises ChdbError (a RuntimeError) with ClickHouse's text
            raise QueryFailed.from_engine(exc) from exc

    def prepare(self, database: str, settings: dict[str, str]) -> None:
        """Bring the connection to exactly these settings and this database."""
        for name in [n for n in self.settings if n not in settings]:
            self.run(f"SET {name} = DEFAULT", "TabSeparated")
            del self.settings[name]
        for name, value in settings.items():
            if self.settings.get(name) != value:
                if not _NAME.match(name):
                    msg = f"Code: 115. DB::Exception: Unknown setting {name!r}. (UNKNOWN_SETTING)"
                    raise QueryFailed(_UNKNOWN_SETTING, msg)
                self.run(f"SET {name} = {_quote(value)}", "TabSeparated")
                self.settings[name] = value
        if database != self.database:
            self.run(f"USE `{database.replace('`', '``')}`", "TabSeparated")
            self.database = database


class Engine:
    """The chDB engine of this process and a pool of sessions on it, one per running request."""

    def __init__(self, path: Path) -> None:
        import chdb  # here, not at the top: the test process imports this module too

        connect: Callable[[str], Any] = chdb.connect  # chDB has no type hints
        self._connect: Callable[[], Any] = lambda: connect(str(path))
        self._idle = [_Session(self._connect())]
        self._lock = threading.Lock()
        tz = self._idle[0].run("SELECT timezone()", "TabSeparated")
        self.timezone = tz.bytes().decode().strip()

    @contextmanager
    def session(self) -> Iterator[_Session]:
        with self._lock:
            session = self._idle.pop() if self._idle else None
        if session is None:
            session = _Session(self._connect())
        try:
            yield session
        finally:
            if session.spoiled:
                session.conn.close()
            else:
                with self._lock:
                    self._idle.append(session)

    def close(self) -> None:
        with self._lock:
            for session in self._idle:
                session.conn.close()
            self._idle = []


@dataclass
class Answer:
    """What one statement gave back: the answer's body and what its headers say."""

    body: bytes
    summary: dict[str, str]
    result_format: str | None  # None: the statement produces no result set


def _summary(result: Any) -> dict[str, str]:
    return {
        "read_rows": str(result.rows_read()),
        "read_bytes": str(result.bytes_read()),
        "written_rows": str(result.rows_written()),
        "written_bytes": str(result.bytes_written()),
        "elapsed_ns": str(int(result.elapsed() * 1e9)),
    }


def execute(session: _Session, text: bytes, params: dict[str, str], default_format: str) -> Answer:
    """Run one statement (with an insert's data after it) on a prepared session."""
    session.spoiled = _SESSION_STATE.match(text) is not None
    insert = _INSERT.match(text)
    if insert is not None:
        target, fmt = insert.group("target").decode(), insert.group("fmt").decode()
        with tempfile.NamedTemporaryFile(prefix="insert-", suffix=f".{fmt}", delete=False) as f:
            f.write(text[insert.end() :])
        try:
            sql = f"INSERT INTO {target} FROM INFILE {_quote(f.name)} FORMAT {fmt}"
            result = session.run(sql, "TabSeparated", params)
        finally:
            os.unlink(f.name)
        return Answer(b"", _summary(result), None)
    explicit = _TRAILING_FORMAT.search(text)
    if explicit is not None:
        result = session.run(text, default_format, params)
        return Answer(result.bytes() or b"", _summary(result), explicit.group(1).decode())
    if default_format not in ("TabSeparated", "TSV"):
        result = session.run(text, default_format, params)
        return Answer(result.bytes() or b"", _summary(result), default_format)
    # A server names the format of any result set, even an empty one; a statement without
    # a result (DDL, SET) writes nothing, not even the names line, so ask for the names.
    result = session.run(text, "TabSeparatedWithNames", params)
    body = result.bytes() or b""
    if not body:
        return Answer(b"", _summary(result), None)
    return Answer(body[body.index(b"\n") + 1 :], _summary(result), "TabSeparated")


# -- HTTP ---------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    def __init__(self, port: int, engine: Engine) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.engine = engine


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clickhouse-connect pools its connections
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        body = self._body()
        query_id = params.get("query_id") or str(uuid.uuid4())
        headers = {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Server-Display-Name": DISPLAY_NAME,
        }
        if url.path.rstrip("/") == "/ping" or (url.path == "/" and not body and not params):
            self._send(200, b"Ok.\n", headers, "text/plain; charset=UTF-8")
            return
        try:
            answer = self._query(params, body)
        except Exception as exc:
            if isinstance(exc, QueryFailed):
                failed = exc
            else:  # a bug here: logged, and answered like a server's internal error
                traceback.print_exc()
                failed = QueryFailed(_STD_EXCEPTION, f"Code: 1001. DB::Exception: {exc!r}")
            headers["X-ClickHouse-Exception-Code"] = str(failed.code)
            self._send(500, failed.text.encode() + b"\n", headers, "text/plain; charset=UTF-8")
            return
        headers["X-ClickHouse-Summary"] = json.dumps(answer.summary)
        engine_tz = self.server.engine.timezone
        headers["X-ClickHouse-Timezone"] = params.get("session_timezone") or engine_tz
        if answer.result_format is not None:
            headers["X-ClickHouse-Format"] = answer.result_format
        self._send(200, answer.body, headers, "application/octet-stream")

    def _query(self, params: dict[str, str], body: bytes) -> Answer:
        refused = _UNSUPPORTED & params.keys()
        encoding = self.headers.get("Content-Encoding", "identity")
        content_type = self.headers.get("Content-Type", "")
        if refused or encoding != "identity" or content_type.startswith("multipart/"):
            what = ", ".join(sorted(refused)) or encoding
            if content_type.startswith("multipart/"):
                what = "multipart/form-data"
            msg = f"Code: 48. DB::Exception: {what} is not implemented by {DISPLAY_NAME}"
            raise QueryFailed(_NOT_IMPLEMENTED, msg)
        text = params.get("query", "").encode()
        if text and body:
            text += b"\n"
        text += body
        bound = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        settings = {
            k: v
            for k, v in params.items()
            if not k.startswith("param_") and k not in _TRANSPORT and k not in _IGNORED
        }
        with self.server.engine.session() as session:
            session.prepare(params.get("database") or "default", settings)
            return execute(session, text, bound, params.get("default_format") or "TabSeparated")

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes, headers: dict[str, str], content_type: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve(port: int, directory: Path) -> None:
    """Serve until SIGTERM or SIGINT, then close the engine."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    engine = Engine(directory)
    server = _Server(port, engine)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        engine.close()


# -- the fixture --------------------------------------------------------------------------------


class ClickHouseHttpServer(ServerProcess):
    """The stand-in server in a child process, on a free port; ``start``/``stop`` repeatable.

    ``directory`` holds the engine (``engine/``) and the server's stderr (``server.log``).
    """

    label = "the ClickHouse stand-in"

    def __init__(self, directory: Path, port: int | None = None) -> None:
        super().__init__(free_port() if port is None else port)
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.log = directory / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _launch(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as log:
            return self._popen(
                [
                    sys.executable,
                    "-m",
                    "minutely.testing.clickhouse_http",
                    "--port",
                    str(self.port),
                    "--dir",
                    str(self.directory / "engine"),
                ],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def _answers(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1.0)
        try:
            conn.request("GET", "/ping")
            response = conn.getresponse()
            return response.status == 200 and response.read() == b"Ok.\n"
        except OSError:
            return False
        finally:
            conn.close()

    def _exit_detail(self) -> str:
        return ": " + self.log.read_text(errors="replace")[-2000:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True, help="the chDB engine directory")
    args = parser.parse_args()
    serve(args.port, args.dir)


if __name__ == "__main__":
    main()
