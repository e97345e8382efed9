"""For the tests of the modules that use a library's private parts: is the installed release
one that ``pyproject.toml`` allows, under an upper bound? A wider range, or an install that
skipped the lock, is then a failing test rather than a surprise in production."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def requirement(dist: str) -> Requirement:
    """``dist``'s entry in pyproject.toml's dependencies."""
    with PYPROJECT.open("rb") as f:
        listed = tomllib.load(f)["project"]["dependencies"]
    for line in listed:
        req = Requirement(line)
        if canonicalize_name(req.name) == canonicalize_name(dist):
            return req
    raise AssertionError(f"{dist} is not among pyproject.toml's dependencies")


def assert_tested_release(dist: str) -> None:
    """Fail unless ``dist`` is bounded above in pyproject.toml and installed within it."""
    req = requirement(dist)
    assert any(s.operator in ("<", "<=", "==", "~=") for s in req.specifier), (
        f"{dist} has no upper bound in pyproject.toml ({req}): its private parts are used"
    )
    installed = version(dist)
    assert req.specifier.contains(installed, prereleases=True), (
        f"{dist} {installed} is installed, outside the tested {req.specifier}: "
        "install from requirements-dev.txt (make test does)"
    )
