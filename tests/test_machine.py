"""The machine line the benchmarks print (issue 17): CPU model, the speed-relevant instruction sets, the load."""
from __future__ import annotations

import sys

import pytest

from abgym.machine import SPEED_FLAGS, cpu_description, load_line, usable_cores


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/cpuinfo")
def test_every_speed_flag_is_listed_once_as_present_or_absent():
    line = cpu_description()
    assert f"{usable_cores()} cores usable" in line
    has, lacks = line.split("; has ")[1].split("; lacks ")
    named = has.split() + lacks.split()
    assert sorted(flag for flag in named if flag != "-") == sorted(SPEED_FLAGS)


def test_the_load_line_names_the_cores():
    assert load_line().startswith("load average") and f"on {usable_cores()} cores" in load_line()
