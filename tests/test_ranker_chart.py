"""The contribution chart: named bars apart from the remainder, which adds up to the ranker's gap."""
import numpy as np
import pytest

from abgym.ranker.chart import chart_bars, contribution_chart
from abgym.ranker.insights import ExperimentInsights


def insights(contributions):
    n = len(contributions)
    return ExperimentInsights("t1", ["best headline", "worst headline"], [0.02, 0.01], [0.5, -0.5], 0, 1,
                              "observed", list(contributions), [f"attr_{j}" for j in range(n)])


def test_chart_bars_separate_named_attributes_from_the_remainder():
    contributions = np.r_[0.3, -0.2, np.full(40, 0.01), np.zeros(5)]   # five inactive attributes are not counted
    named, remainder = chart_bars(insights(contributions), top=2)
    assert [label for label, _ in named] == ["attr 0", "attr 1"]
    assert remainder[0][0] == "other attributes (40)" and remainder[0][1] == pytest.approx(0.4)
    # named + other attributes + unexplained = the ranker's own predicted gap (1.0)
    assert sum(v for _, v in named) + sum(v for _, v in remainder) == pytest.approx(1.0)


def test_contribution_chart_writes_a_png(tmp_path):
    path = contribution_chart(insights(np.r_[0.3, -0.2, np.full(40, 0.01)]), tmp_path / "c.png", top=2)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert contribution_chart(insights(np.zeros(3)), tmp_path / "empty.png").is_file()   # nothing named: still drawn
