"""The Debian tools the integration tests run as real clients, found or installed.

    promtool, prometheus   Debian's ``prometheus`` (2.42): queries minutely, scrapes its
                           ``/metrics`` and remote-writes into it
    collectd               Debian's ``collectd-core``: ``write_graphite`` into the Graphite port

None is on PyPI. Run as a script (``make test`` runs it) it prints where each one is; when
some are missing it installs their packages as root with apt-get (without recommends), and
when that cannot be done it stops with one line naming the command to run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

#: each tool, and the package that ships it
TOOLS = {"promtool": "prometheus", "prometheus": "prometheus", "collectd": "collectd-core"}
#: collectd lives in sbin, which a user's PATH may leave out
SEARCH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def _run(cmd: list[str]) -> bool:
    print(f"ensure-debian-tools: {' '.join(cmd)}", flush=True)
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    try:
        return subprocess.run(cmd, env=env, check=False).returncode == 0
    except OSError:
        return False


def _missing() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool, path=SEARCH) is None]


def main() -> int:
    missing = _missing()
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        packages = sorted({TOOLS[tool] for tool in missing})
        if _run(["apt-get", "update", "-q"]):
            _run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages])
        missing = _missing()
    if missing:
        packages = " ".join(sorted({TOOLS[tool] for tool in missing}))
        print(
            f"ensure-debian-tools: no {', '.join(missing)}; install Debian's {packages}"
            f" (sudo apt-get install {packages}) and run make test again",
            file=sys.stderr,
        )
        return 1
    for tool in TOOLS:
        print(f"ensure-debian-tools: {shutil.which(tool, path=SEARCH)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
