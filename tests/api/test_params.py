"""Time and step parsing: every accepted form, and errors that name the parameter."""

from __future__ import annotations

import pytest

from minutely.api.params import MAX_STEP, parse_range, parse_step, parse_time
from minutely.errors import BadParameter

NOW = 1_764_000_030.5  # 30.5 s into minute 29_400_000


def test_forms() -> None:
    edge = 1_764_000_060  # end of the current minute
    assert parse_time("end", "now", NOW) == edge
    assert parse_time("start", "-2d", NOW) == edge - 172800
    assert parse_time("start", "-90m", NOW) == edge - 5400
    assert parse_time("start", "-30s", NOW) == edge - 60
    assert parse_time("start", "1764000059.9", NOW) == 1_764_000_000
    assert parse_time("start", "2025-11-24T16:00:30Z", NOW) == 1_764_000_000
    assert parse_time("start", "2025-11-24T17:00:30+01:00", NOW) == 1_764_000_000
    assert parse_time("start", "2025-11-24T16:00:00", NOW) == 1_764_000_000
    assert parse_range({}, NOW) == (edge - 172800, edge)


@pytest.mark.parametrize("text", ["yesterday", "", "-2x", "nan", "2025-13-01T00:00:00Z"])
def test_bad_time_names_parameter(text: str) -> None:
    with pytest.raises(BadParameter) as e:
        parse_time("start", text, NOW)
    assert e.value.param == "start"


def test_step() -> None:
    assert parse_step(None) == 60 and parse_step("300") == 300
    for bad in ["0", "-60", "90", "1m"]:
        with pytest.raises(BadParameter, match="step"):
            parse_step(bad)


def test_end_before_start() -> None:
    with pytest.raises(BadParameter, match="end"):
        parse_range({"start": "-1h", "end": "-2h"}, NOW)


@pytest.mark.parametrize("text", ["1e20", "-1e20", "-1", "253402300800", "99999999999999999999"])
def test_a_time_beyond_the_years_a_question_can_name_is_a_bad_parameter(text: str) -> None:
    with pytest.raises(BadParameter, match="outside 1970-01-01"):
        parse_time("end", text, now=1_764_000_000)


def test_a_huge_step_is_a_bad_parameter_not_an_overflow() -> None:
    with pytest.raises(BadParameter, match="over the limit"):
        parse_step("600000000000000000000")
    assert parse_step(str(MAX_STEP // 60 * 60)) == MAX_STEP // 60 * 60
