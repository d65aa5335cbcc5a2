"""The regret_drift-*.png layout of the marketing comparison: no squashed panel, no blank gap, no clipped label."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from abgym.studies import marketing_comparison as mc  # noqa: E402


@pytest.fixture
def figures(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    kept = []
    monkeypatch.setattr(plt, "close", lambda figure=None: kept.append(figure))
    config = mc.ComparisonConfig(agents=["linucb", "ppo"], seeds=[100, 101, 102], arrivals=300, drift=["off", "on"],
                                 out=tmp_path)
    rng = np.random.default_rng(0)
    curves = {f"{d}/{a}/{s}": np.cumsum(rng.random(300)) for d in config.drift for a in config.agents
              for s in config.seeds}
    shifts = {f"on/{a}/{s}": sorted(rng.choice(300, 2, replace=False).tolist()) for a in config.agents
              for s in config.seeds}
    summary = [{"agent": a, "drift": d, "revenue": 1.0, "revenue_ci95": 0.1} for d in config.drift
               for a in config.agents]
    mc.plot(tmp_path, config, summary, curves, shifts)
    return tmp_path, kept


def test_regret_figures_are_written_with_a_readable_layout(figures):
    out, kept = figures
    assert (out / "regret_drift-off.png").stat().st_size > 0 and (out / "regret_drift-on.png").stat().st_size > 0
    regret_figures = [f for f in kept if f is not None and "Cumulative regret" in f.axes[0].get_title()]
    assert len(regret_figures) == 2
    for figure in regret_figures:
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        top = figure.axes[0]
        box = top.get_position()
        assert box.height > 0.35  # the main panel is not squashed
        below = figure.axes[1].get_position()
        assert box.y0 - below.y1 < 0.12  # and no blank gap under it
        width, height = figure.bbox.width, figure.bbox.height
        for axis in figure.axes:
            label = axis.yaxis.label.get_window_extent(renderer)
            assert label.x0 >= 0 and label.y0 >= 0 and label.y1 <= height  # y-labels inside the figure
        legend = top.get_legend().get_window_extent(renderer)
        assert legend.x1 <= width + 1  # the legend beside the panels is not cut off


def test_drift_on_has_a_rug_of_shifts_per_seed(figures):
    _, kept = figures
    on = [f for f in kept if f is not None and "drift on" in f.axes[0].get_title()][0]
    assert len(on.axes) == 3 and on.axes[1].get_title(loc="left") == "regime shifts per seed"
    assert [t.get_text() for t in on.axes[1].get_yticklabels()] == ["100", "101", "102"]
    off = [f for f in kept if f is not None and "drift off" in f.axes[0].get_title()][0]
    assert len(off.axes) == 2  # no shifts, no rug
