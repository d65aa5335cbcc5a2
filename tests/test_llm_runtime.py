"""Torch's thread count follows the cores other processes leave free (issue 17: no cliff under contention)."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from abgym.llm import _runtime
from abgym.llm._runtime import _FreeCoreMeter, available_cores, limit_torch_threads, thread_override


class FakeMeter(_FreeCoreMeter):
    """Counter readings given by the test: (wall time, busy CPU-s of our cores, our own CPU-s)."""

    def __init__(self, readings):
        super().__init__()
        self.readings = list(readings)

    def _reading(self):
        return self.readings.pop(0)


def test_the_meter_counts_only_other_processes_cpu():
    meter = FakeMeter([(0.0, 0.0, 0.0), (1.0, 1.5, 1.0), (2.0, 3.4, 2.0), (2.001, 3.4, 2.0)])
    meter._last = meter._reading()
    assert meter.busy_elsewhere() == pytest.approx(0.5)  # 1.5 busy, 1.0 of it ours
    assert meter.busy_elsewhere() == pytest.approx(0.9)
    assert meter.busy_elsewhere() is None  # a 1 ms window is noise: keep the previous choice


@pytest.mark.parametrize("others, expected", [(0.0, 2), (0.1, 2), (0.5, 1), (1.0, 1), (7.0, 1)])
def test_threads_are_the_cores_left_free(monkeypatch, others, expected):
    monkeypatch.setattr(_runtime, "available_cores", lambda: 2)
    monkeypatch.setattr(_runtime._METER, "busy_elsewhere", lambda: others)
    assert _runtime.free_core_threads() == expected
    monkeypatch.setattr(_runtime._METER, "busy_elsewhere", lambda: None)  # too short a window to tell
    assert _runtime.free_core_threads() == expected


@pytest.mark.parametrize("raw, expected", [("", None), ("0", None), (" 3 ", 3), ("1", 1)])
def test_thread_override_parses(monkeypatch, raw, expected):
    monkeypatch.setenv("ABGYM_TORCH_THREADS", raw)
    assert thread_override() == expected


@pytest.mark.parametrize("raw", ["two", "1.5", "-1"])
def test_a_bad_thread_override_names_the_variable(monkeypatch, raw):
    monkeypatch.setenv("ABGYM_TORCH_THREADS", raw)
    with pytest.raises(ValueError, match="ABGYM_TORCH_THREADS"):
        thread_override()


@pytest.mark.skipif(available_cores() < 2, reason="needs a second core for the busy process beside us")
def test_a_busy_core_beside_us_drops_torch_by_a_thread_and_the_override_wins(monkeypatch):
    import torch

    monkeypatch.delenv("ABGYM_TORCH_THREADS", raising=False)
    before = torch.get_num_threads()
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        limit_torch_threads()  # starts the window
        time.sleep(0.5)
        assert _runtime._METER.busy_elsewhere() >= 0.7  # the spinner (and whatever else runs) is counted
        time.sleep(0.5)
        threads = limit_torch_threads()  # on the project's 2-core machines: 1
        assert 1 <= threads <= available_cores() - 1 and torch.get_num_threads() == threads
        monkeypatch.setenv("ABGYM_TORCH_THREADS", "2")
        assert limit_torch_threads() == 2 and torch.get_num_threads() == 2
    finally:
        spinner.kill()
        spinner.wait()
        torch.set_num_threads(before)
