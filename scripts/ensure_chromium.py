"""The Chromium the browser tests drive: found, or installed where this machine allows.

``find_chromium()`` is the one place that says which browser that is: Debian's ``chromium``
on ``PATH`` (or ``/usr/bin/chromium``), else the build Playwright's own installer put in its
cache. Run as a script (``make test`` runs it before anything else) it prints the one found;
when there is none it installs one (as root with apt-get, which Debian packages it for;
otherwise, or if that fails, with ``python -m playwright install chromium``), and when that
cannot be done it stops with one line naming the command to run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

APT = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]
PLAYWRIGHT = [sys.executable, "-m", "playwright", "install", "chromium"]


def find_chromium() -> str | None:
    """The path of a Chromium to launch, or None when this machine has none."""
    found = shutil.which("chromium")
    if found:
        return found
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    return _playwright_chromium()


def _playwright_chromium() -> str | None:
    """Playwright's own Chromium, if its installer has put it here."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    with sync_playwright() as pw:
        path = pw.chromium.executable_path
    return path if Path(path).is_file() else None


def _run(cmd: list[str]) -> bool:
    print(f"ensure-chromium: {' '.join(cmd)}", flush=True)
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    try:
        return subprocess.run(cmd, env=env, check=False).returncode == 0
    except OSError:
        return False


def _install() -> None:
    """Install a Chromium the best way this machine allows; errors show in the output."""
    as_root = os.geteuid() == 0 and shutil.which("apt-get") is not None
    if as_root and _run(["apt-get", "update", "-q"]) and _run(APT) and find_chromium():
        return
    _run(PLAYWRIGHT)


def main() -> int:
    found = find_chromium()
    if found is None:
        _install()
        found = find_chromium()
    if found is None:
        print(
            "ensure-chromium: no Chromium for the browser tests; run `sudo apt-get install "
            f"chromium` or `{sys.executable} -m playwright install chromium`, then make test",
            file=sys.stderr,
        )
        return 1
    print(f"ensure-chromium: {found}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
