"""Issue 11, a full disk: ``minutely serve`` with its data dir on a small filesystem (a tmpfs)
that a ballast file fills while points stream in, then frees.

What must hold: the server stays up and says why writes fail (``store.last_error`` on
``/api/v1/status``); nothing is dead-lettered, since a full disk passes; at the writer's bound
ingest answers 503 with Retry-After, never 200 for points it then loses; once the ballast is
deleted the writes resume by themselves; and every point answered 200 is answered by the
four queries as numpy says (min, max and counts exactly, avg to float64 rounding), before
and after a restart, from a store with no damaged part. A SIGTERM while the disk is full ends
the process, and the next start, with room again, answers every point too; so does a start
once there is room after one on the full disk.

The filesystem: root mounts a tmpfs on the test's directory; anyone else gets one in a mount
namespace of their own (``unshare --user --map-root-user --mount``), which each server joins
(``nsenter``) and the test reaches through ``/proc/<pid>/root``.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from minutely import sim
from minutely.model import ARROW_STREAM, PointBatch
from minutely.testing.natsserver import free_port
from minutely.testing.processes import ROOT, clean_env, stop_process, wait_healthy
from tests.integration.conftest import Server
from tests.integration.truth import Points, check_series, check_summary

pytestmark = pytest.mark.slow

DAY = 86400
#: an empty store takes about 150 kB and this test's rows a few MB: the rest is ballast
DISK_SIZE = "64m"
#: 26,214 queued rows, 13 bodies of old points: the bound is reached within seconds
WRITER_MAX_BYTES = "1MB"
#: what a write refused for want of room says (the engine's reservation, or the kernel's)
NO_SPACE = re.compile(r"NOT_ENOUGH_SPACE|not enough space|No space left on device")


# -- the small filesystem ----------------------------------------------------------------------


class SmallDisk:
    """A tmpfs of ``DISK_SIZE`` at ``path``, for the servers of one test.

    ``enter`` prefixes a command so that it sees the tmpfs at ``path``; ``host`` is where
    this process reaches it (the same directory, unless the tmpfs lives in a namespace).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.enter: list[str] = []
        self.host = path
        self._holder: subprocess.Popen[bytes] | None = None
        self._mounted = False

    def mount(self) -> None:
        """Mount the tmpfs, or fail the test with one line saying why it cannot."""
        self.path.mkdir(parents=True, exist_ok=True)
        options = ["-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(self.path)]
        why = "not root"
        if os.geteuid() == 0:
            done = subprocess.run(["mount", *options], capture_output=True, text=True)
            if done.returncode == 0:
                self._mounted = True
                return
            why = done.stderr.strip() or f"mount exited with {done.returncode}"
        in_namespace = self._mount_in_namespace(options)
        if in_namespace:
            pytest.fail(
                f"cannot mount a {DISK_SIZE} tmpfs for the full-disk test: {why}; in a"
                f" namespace of its own: {in_namespace}",
                pytrace=False,
            )

    def _mount_in_namespace(self, options: list[str]) -> str:
        """Mount the tmpfs in a user and mount namespace of our own, kept by a process that
        sleeps in it; returns why not, or "" once mounted."""
        missing = [tool for tool in ("unshare", "nsenter") if shutil.which(tool) is None]
        if missing:
            return f"{' and '.join(missing)} not found"
        script = f"mount {' '.join(options)} && echo mounted && exec sleep 86400"
        holder = subprocess.Popen(
            ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert holder.stdout is not None and holder.stderr is not None
        if holder.stdout.readline().strip() != b"mounted":
            said = holder.communicate(timeout=10)[1].decode(errors="replace").strip()
            return said.splitlines()[0] if said else f"unshare exited with {holder.returncode}"
        self._holder = holder
        self.enter = ["nsenter", f"--target={holder.pid}", "--user", "--mount"]
        self.enter.append("--preserve-credentials")  # the namespace's root is this user
        self.host = Path(f"/proc/{holder.pid}/root") / self.path.relative_to("/")
        return ""

    def unmount(self) -> None:
        if self._holder is not None:  # the namespace and its tmpfs go with its last process
            stop_process(self._holder)
            for pipe in (self._holder.stdout, self._holder.stderr):
                if pipe is not None:
                    pipe.close()
            self._holder = None
        if self._mounted:
            if subprocess.run(["umount", str(self.path)], capture_output=True).returncode:
                subprocess.run(["umount", "-l", str(self.path)], check=True)
            self._mounted = False

    def fill(self, leave: int = 0) -> None:
        """Grow the ballast until the filesystem is full, then give back ``leave`` bytes."""
        fd = os.open(self.host / "ballast", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            for chunk in (b"\0" * (1 << 20), b"\0" * 4096):
                try:
                    while True:
                        os.write(fd, chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
            if leave:
                os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
        finally:
            os.close(fd)

    def free(self) -> None:
        (self.host / "ballast").unlink()

    def letters(self, box: str) -> list[str]:
        """The files in a letter box of the data dir (``dead-letters``, ``spill``)."""
        directory = self.host / box
        return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    small = SmallDisk(tmp_path / "disk")
    small.mount()
    try:
        yield small
    finally:
        small.unmount()


# -- the server ------------------------------------------------------------------------------


class NotStarted(AssertionError):
    """``minutely serve`` exited, or did not answer, at start; the message holds its output."""


class Serve:
    """``minutely serve`` with its data dir on ``disk`` and its output in ``log`` (outside
    the small disk, so that logging never fails); ``start`` repeatable, on one port."""

    def __init__(self, disk: SmallDisk, log: Path) -> None:
        self.disk = disk
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        offset = self.log.stat().st_size if self.log.exists() else 0
        command = [sys.executable, "-m", "minutely", "serve", "--port", str(self.port)]
        command += ["--data-dir", str(self.disk.path), "--hot-window", "2h"]
        with self.log.open("ab") as out:  # the child keeps its own handle
            self.proc = subprocess.Popen(
                [*self.disk.enter, *command],
                env=clean_env({"MINUTELY_WRITER_MAX_BYTES": WRITER_MAX_BYTES}),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        if not wait_healthy(self.url, self.proc, timeout=60):
            stop_process(self.proc)
            said = self.log.read_bytes()[offset:].decode(errors="replace")
            raise NotStarted(f"minutely serve did not start ({self.proc.returncode}): {said}")
        return Server(self.url, self.proc)

    def terminate(self) -> float:
        """SIGTERM, which must end the process cleanly within 60 s; returns the seconds it
        took (uvicorn re-raises the signal once it has shut down: 0 or -SIGTERM is clean)."""
        assert self.proc is not None
        proc, self.proc = self.proc, None
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"SIGTERM did not end the server: {self.tail()}") from None
        assert code in (0, -signal.SIGTERM), (code, self.tail())
        assert "Application shutdown failed" not in self.output()
        return time.monotonic() - began

    def close(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self) -> str:
        return self.output()[-4000:]


def status(url: str) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(f"{url}/api/v1/status", timeout=10).json()
    return answer


def wait_for(
    url: str, what: str, done: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any]:
    """Poll the status until ``done(status)``; returns it (fails naming ``what``)."""
    deadline = time.monotonic() + timeout
    while True:
        s = status(url)
        if done(s):
            return s
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s: {s}"
        time.sleep(0.2)


def landed(s: dict[str, Any], points: int) -> bool:
    """Has the aggregator folded ``points`` and has the writer written all it queued?"""
    store = s["store"]
    return bool(
        s["aggregator"]["points"] >= points
        and store["pending"] == 0
        and store["failing_since"] is None
    )


# -- the points --------------------------------------------------------------------------------

SERVERS = np.array([f"app-{i}" for i in range(4)], dtype=object)
METRICS = np.array(["cpu", "mem", "disk", "net", "load"], dtype=object)
#: a server first seen while the disk is full: its name cannot be saved until there is room
LATE = "app-late"


def cells(rng: np.random.Generator, servers: np.ndarray, stamps: np.ndarray) -> Points:
    """One point for each of ``servers`` x ``METRICS`` at each of ``stamps``."""
    per = servers.size * METRICS.size
    return {
        "server": np.tile(np.repeat(servers, METRICS.size), stamps.size),
        "metric": np.tile(METRICS, servers.size * stamps.size),
        "ts": np.repeat(stamps.astype(np.float64), per),
        "value": np.round(rng.normal(40, 15, per * stamps.size), 3),
    }


class Feed:
    """Points sent to one server, and those it answered 200 (the ground truth).

    ``history`` is 20,000 points over four hours a week ago; ``old`` bodies are one point
    per cell on 100 minutes each, later minutes for each body, starting five days ago (each
    point a row for the writer's queue, so a store that cannot write fills it fast);
    ``tick`` is a point per series at the clock's time (the hot ring's open minutes).
    """

    def __init__(self, seed: int) -> None:
        self.now = time.time()
        self.rng = np.random.default_rng(seed)
        self.bodies = 0
        self.first_old = (int(self.now) - 5 * DAY) // 60 * 60
        self.answered: list[Points] = []
        self.refused: list[httpx.Response] = []
        self.servers = SERVERS

    @property
    def start(self) -> int:
        return (int(self.now) - 7 * DAY) // DAY * DAY

    @property
    def end(self) -> int:
        return int(time.time()) // 60 * 60 + 120

    def history(self) -> Points:
        stamps = np.sort(self.rng.uniform(self.start + 600, self.start + 600 + 4 * 3600, 1000))
        return cells(self.rng, SERVERS, stamps)

    def old(self) -> Points:
        minutes = self.first_old + 60 * (100 * self.bodies + np.arange(100))
        self.bodies += 1
        assert minutes[-1] < self.now - 3 * 3600, "the old bodies reached the hot window"
        return cells(self.rng, self.servers, minutes + 7.5)

    def tick(self) -> Points:
        return cells(self.rng, self.servers, np.array([time.time()]))

    def send(self, url: str, pts: Points) -> int:
        """Post ``pts``; a 200 must accept every point (then they are kept as truth), any
        other answer must be a 503 with Retry-After. Returns the status code."""
        batch = PointBatch.from_names(pts["server"], pts["metric"], pts["ts"], pts["value"])
        r = httpx.post(
            f"{url}/api/v1/points",
            content=sim.encode_arrow(batch),
            headers={"content-type": ARROW_STREAM},
            timeout=30,
        )
        if r.status_code == 200:
            assert r.json() == {"accepted": len(batch), "rejected": 0, "errors": []}, r.text
            self.answered.append(pts)
        else:
            assert r.status_code == 503, r.text
            assert int(r.headers["retry-after"]) >= 1, r.headers
            self.refused.append(r)
        return r.status_code

    @property
    def points(self) -> int:
        return sum(p["ts"].size for p in self.answered)

    def truth(self) -> Points:
        keys = ("server", "metric", "ts", "value")
        return {k: np.concatenate([p[k] for p in self.answered]) for k in keys}

    def assert_counted(self, url: str, log: str) -> None:
        """Every point answered 200 is counted by Q3 over the whole range."""
        counted = 0
        for name in np.unique(self.truth()["server"]):
            r = httpx.get(
                f"{url}/api/v1/servers/{name}/summary",
                params={"start": self.start, "end": self.end},
                timeout=30,
            )
            counted += sum(row["count"] for row in r.json()["rows"])
        said = [line for line in log.splitlines() if " ERROR " in line or " WARNING " in line]
        assert counted == self.points, (
            f"{self.points - counted} of {self.points} points answered 200 are not answered;"
            f" the server said: {said[-6:]}"
        )

    def check(self, url: str) -> None:
        """The four queries over everything answered 200, against numpy: Q3 for every
        server, Q4 for every metric over the whole range (the coarse tiers), Q1 and Q2 at
        an hour and a day, and at a minute over the first old bodies (written while the disk
        filled) and the last minutes (the open minutes' rows)."""
        truth, start, end = self.truth(), self.start, self.end
        servers = np.unique(truth["server"])
        for name in servers:
            check_summary(url, truth, "server", name, start, end)
        for name in METRICS:
            check_summary(url, truth, "metric", name, start, end)
        check_series(url, truth, "server", "app-1", 3600, start, end)
        check_series(url, truth, "metric", "mem", DAY, start, end)
        first, recent = self.first_old - 60, end - 900
        for name in servers[-2:]:
            check_series(url, truth, "server", name, 60, first, first + 6 * 3600)
            check_series(url, truth, "server", name, 60, recent, end)
        check_series(url, truth, "metric", "net", 60, first, first + 6 * 3600)
        check_series(url, truth, "metric", "load", 60, recent, end)


def fill_the_queue(feed: Feed, url: str, seconds: float) -> None:
    """Send old bodies and ticks until ingest has answered 503 three times."""
    deadline = time.monotonic() + seconds
    while len(feed.refused) < 3:
        assert time.monotonic() < deadline, f"no 503 within {seconds} s: {status(url)}"
        feed.send(url, feed.old())
        feed.send(url, feed.tick())
        time.sleep(0.05)


def assert_nothing_set_aside(url: str, disk: SmallDisk) -> None:
    s = status(url)
    assert s["dead_letters"] == {"files": 0, "rows": 0}, s
    assert s["store"]["dead_letters"] == 0 and s["store"]["dead_rows"] == 0, s["store"]
    assert disk.letters("dead-letters") == []


# -- the tests ---------------------------------------------------------------------------------


def test_a_full_disk_answers_503_at_the_bound_and_recovers_by_itself(
    disk: SmallDisk, tmp_path: Path
) -> None:
    serve = Serve(disk, tmp_path / "serve.log")
    feed = Feed(seed=21)
    try:
        url = serve.start().url
        assert feed.send(url, feed.history()) == 200
        assert feed.send(url, feed.tick()) == 200
        wait_for(url, "history written", lambda s: landed(s, feed.points), 30)

        # nearly full: room for an insert's first part, not for its views' (the engine
        # reserves at least 1 MiB for each part it writes, and holds the first reservation
        # while it writes the views'): inserts fail halfway, and their retries must add each
        # part once. Then entirely full.
        disk.fill(leave=3 << 19)
        deadline = time.monotonic() + 5
        while status(url)["store"]["failing_since"] is None and time.monotonic() < deadline:
            feed.send(url, feed.old())
            feed.send(url, feed.tick())
            time.sleep(0.2)

        # a server never seen before, too: its name cannot be saved either
        disk.fill()
        feed.servers = np.append(SERVERS, LATE)
        fill_the_queue(feed, url, seconds=20)
        full = status(url)
        store = full["store"]
        assert store["failing_since"] is not None and store["errors"] > 0, store
        assert NO_SPACE.search(store["last_error"] or ""), store
        assert store["pending_bytes"] >= 1 << 20, store
        assert NO_SPACE.search(feed.refused[0].json()["error"]), feed.refused[0].text
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
        assert httpx.get(
            f"{url}/api/v1/servers/app-0/summary",
            params={"start": feed.start, "end": feed.end},
            timeout=30,
        ).json()["rows"], "the history is answered while the disk is full"
        assert_nothing_set_aside(url, disk)

        disk.free()  # the writer finds room again by itself, within its longest back-off
        wait_for(url, "the queue written after the ballast went", lambda s: landed(s, 0), 45)
        assert feed.send(url, feed.old()) == 200 and feed.send(url, feed.tick()) == 200
        wait_for(url, "everything written", lambda s: landed(s, feed.points), 30)
        assert_nothing_set_aside(url, disk)
        feed.assert_counted(url, serve.output())
        feed.check(url)

        serve.terminate()
        url = serve.start().url
        restarted = status(url)
        assert restarted["damaged_parts"] == [], restarted["damaged_parts"]
        assert restarted["store"]["recovered_rows"] == 0, restarted["store"]
        feed.assert_counted(url, serve.output())
        feed.check(url)
        assert_nothing_set_aside(url, disk)
    finally:
        serve.close()
    said = serve.output()
    assert "set aside" not in said and "store writes succeed again" in said, said[-4000:]


def test_a_sigterm_while_the_disk_is_full_loses_nothing(disk: SmallDisk, tmp_path: Path) -> None:
    serve = Serve(disk, tmp_path / "serve.log")
    feed = Feed(seed=22)
    try:
        url = serve.start().url
        assert feed.send(url, feed.history()) == 200
        wait_for(url, "history written", lambda s: landed(s, feed.points), 30)

        disk.fill()
        for _ in range(5):  # 10,000 rows: below the bound, so all answered 200
            assert feed.send(url, feed.old()) == 200
            assert feed.send(url, feed.tick()) == 200
        wait_for(url, "a write failing", lambda s: s["store"]["failing_since"] is not None, 20)
        assert serve.terminate() < 30  # the stop must not wait for room

        disk.free()
        url = serve.start().url
        restarted = status(url)
        assert restarted["damaged_parts"] == [], restarted["damaged_parts"]
        assert_nothing_set_aside(url, disk)
        feed.assert_counted(url, serve.output())
        feed.check(url)
    finally:
        serve.close()


def test_a_start_on_a_full_disk_leaves_a_store_that_starts_once_there_is_room(
    disk: SmallDisk, tmp_path: Path
) -> None:
    """A restart while the disk is full (a supervisor's, say) may serve or refuse, saying
    why; once there is room again, the next start serves everything as before."""
    serve = Serve(disk, tmp_path / "serve.log")
    feed = Feed(seed=23)
    try:
        url = serve.start().url
        assert feed.send(url, feed.history()) == 200
        assert feed.send(url, feed.tick()) == 200
        wait_for(url, "history written", lambda s: landed(s, feed.points), 30)
        serve.terminate()

        disk.fill()
        try:
            serve.start()
        except NotStarted as refused:  # refusing is fine, if it says why
            assert NO_SPACE.search(str(refused)), str(refused)[-4000:]
        else:
            serve.terminate()

        disk.free()
        url = serve.start().url
        restarted = status(url)
        assert restarted["damaged_parts"] == [], restarted["damaged_parts"]
        feed.assert_counted(url, serve.output())
        feed.check(url)
    finally:
        serve.close()
