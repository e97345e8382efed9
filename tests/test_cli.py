"""The command line as a new user meets it: the README's relative times as written, help
that explains the time forms and file formats, query output without log lines, and every
error at start in one line with what to do (the traceback only with ``--debug``)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from minutely.cli import build_parser, join_relative_times
from minutely.testing.natsserver import free_port
from minutely.testing.processes import ROOT, clean_env, launch, stop_process, wait_healthy


def parse(line: str) -> dict[str, object]:
    return vars(build_parser().parse_args(join_relative_times(line.split())))


def test_the_readme_query_parses_as_written() -> None:
    args = parse("query metric cpu.user --summary --start -2d")
    assert (args["by"], args["name"], args["summary"], args["start"]) == (
        "metric",
        "cpu.user",
        True,
        "-2d",
    )
    args = parse("query server web-001 --start -90m --end -1.5m --step 120")
    assert (args["start"], args["end"], args["step"]) == ("-90m", "-1.5m", 120)


@pytest.mark.parametrize(
    "argv",
    [
        ["query", "server", "a", "--start=-2d"],  # already joined
        ["query", "server", "a", "--start", "now"],  # no dash
        ["simulate", "--", "--start", "-2d"],  # after --: not options
        ["query", "server", "a", "--start"],  # nothing after it: argparse's own error
    ],
)
def test_only_a_dashed_value_after_start_or_end_is_joined(argv: list[str]) -> None:
    assert join_relative_times(argv) == argv


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("query", ["unix seconds", "RFC 3339", "now", "-30s", "-90m", "-2d", "-1w", "--step"]),
        ("import", [".csv", ".parquet", "Arrow IPC file or stream", "server", "ts", "value"]),
    ],
)
def test_help_explains_times_and_formats(command: str, says: list[str]) -> None:
    done = run(command, "--help")
    assert done.returncode == 0
    for words in says:
        assert words in done.stdout, words


def run(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "minutely", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(),
        cwd=ROOT,
        check=False,
    )


def assert_one_line(done: subprocess.CompletedProcess[str], says: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], done.stderr


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A ``minutely serve`` (no store, so it starts fast) with a few points; its URL and
    data dir."""
    data = tmp_path_factory.mktemp("serving")
    port = free_port()
    proc = launch("serve", port, data, "--store", "none")
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_healthy(url, proc)
        now = int(time.time())
        points = [
            {"server": "web-001", "metric": "cpu.user", "ts": ts, "value": 1.5}
            for ts in range(now - 600, now, 10)
        ]
        assert httpx.post(f"{url}/api/v1/points", json=points).json()["rejected"] == 0
        yield url, data
    finally:
        stop_process(proc)


@pytest.mark.slow
def test_the_readme_query_prints_a_table_and_no_log_lines(serving: tuple[str, Path]) -> None:
    url, _ = serving
    done = run("query", "metric", "cpu.user", "--summary", "--start", "-2d", "--url", url)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.split()[:5] == ["server", "min", "max", "avg", "count"]


@pytest.mark.slow
def test_a_second_serve_on_the_data_dir_names_the_first(serving: tuple[str, Path]) -> None:
    _, data = serving
    holder = (data / "minutely.lock").read_text().strip()
    done = run("serve", "--port", str(free_port()), "--data-dir", str(data))
    assert_one_line(done, f"data dir {data} is in use by process {holder}: stop it")


@pytest.mark.slow
def test_a_busy_port_says_pass_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run("serve", "--port", str(port), "--data-dir", str(tmp_path / "d"))
    assert_one_line(done, f"port {port} is in use: pass --port")


@pytest.mark.slow
def test_a_bad_data_dir_says_so_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    bad = str(tmp_path / "file")
    assert_one_line(run("serve", "--data-dir", bad), "is not a directory: pass --data-dir")
    done = run("serve", "--debug", "--data-dir", bad)
    assert done.returncode != 0 and "Traceback" in done.stderr


def test_compile_fills_numbas_cache_for_the_next_start() -> None:
    done = run("compile", timeout=600)
    assert done.returncode == 0, done.stderr
    assert "compiled kernels ready" in done.stdout
