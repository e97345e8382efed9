"""The ``promtool`` the integration tests query minutely with: Prometheus 2.42's own client.

It ships in Debian's ``prometheus`` package and nowhere on PyPI. Run as a script (``make
test`` runs it) it prints the one on ``PATH``; when there is none it installs the package as
root with apt-get (without recommends), and when that cannot be done it stops with one line
naming the command to run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

APT = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "prometheus"]


def _run(cmd: list[str]) -> bool:
    print(f"ensure-promtool: {' '.join(cmd)}", flush=True)
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    try:
        return subprocess.run(cmd, env=env, check=False).returncode == 0
    except OSError:
        return False


def main() -> int:
    found = shutil.which("promtool")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        if _run(["apt-get", "update", "-q"]):
            _run(APT)
        found = shutil.which("promtool")
    if found is None:
        print(
            "ensure-promtool: no promtool; install Debian's prometheus package "
            "(sudo apt-get install prometheus) and run make test again",
            file=sys.stderr,
        )
        return 1
    print(f"ensure-promtool: {found}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
