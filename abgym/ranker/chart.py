"""One PNG per experiment: the signed attribute contributions to the predicted gap between its best and worst arm.

Bars are gamma_j (s_best,j - s_worst,j) for the attributes with the largest |contribution|; the rest are summed
into one bar, and the part of the ranker's own gap that the attribute model does not explain gets its own bar, so
the chart never claims more than the attributes account for. Those two remainder bars sit in a panel of their own,
on their own scale: summed over dozens of attributes they are often larger than any named one and would otherwise
shrink the named bars to slivers.
"""
from __future__ import annotations

import io
import textwrap
from pathlib import Path

import numpy as np

from abgym.paths import atomic_write


POSITIVE, NEGATIVE, REMAINDER, UNEXPLAINED = "#2a9d8f", "#e76f51", "#8ab4d6", "#b0b0b0"


def chart_bars(insights, top: int = 10, ranker_gap: float | None = None):
    """The chart's content: (named [(label, value)], remainder [(label, value)]). Named bars are the ``top``
    attributes by |contribution|; the remainder is the sum over the other attributes and the part of the ranker's
    gap the attribute model does not explain, drawn apart on their own scale."""
    contributions = np.asarray(insights.contributions, float)
    names = list(insights.attribute_names)
    order = [int(j) for j in np.argsort(-np.abs(contributions), kind="stable") if contributions[j] != 0][:top]
    named = [(names[j].replace("_", " "), float(contributions[j])) for j in order]
    rest = float(contributions.sum() - sum(v for _, v in named))
    if ranker_gap is None:
        ranker_gap = insights.predicted[insights.best_arm] - insights.predicted[insights.worst_arm]
    others = int(np.count_nonzero(contributions)) - len(named)   # attributes outside the named bars that contribute
    remainder = [(f"other attributes ({others})", rest),
                 ("not explained by attributes", float(ranker_gap - contributions.sum()))]
    return named, remainder


def contribution_chart(insights, path: str | Path, top: int = 10, ranker_gap: float | None = None) -> Path:
    """Write the chart of an :class:`~abgym.ranker.insights.ExperimentInsights` to ``path`` (PNG).

    Two panels: the named attributes on top (green pushes towards the best arm, orange towards the worst), and
    below, on their own x scale so that they never squash the named bars, the summed other attributes and the
    unexplained part; a legend says which colour is which."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    named, remainder = chart_bars(insights, top, ranker_gap)
    height = 2.6 + 0.36 * (len(named) + len(remainder))
    figure, (axis, lower) = plt.subplots(2, 1, figsize=(8.5, height), dpi=110,
                                         gridspec_kw={"height_ratios": [max(len(named), 1), len(remainder)]})
    if named:
        positions = np.arange(len(named))[::-1]
        axis.barh(positions, [v for _, v in named], color=[POSITIVE if v > 0 else NEGATIVE for _, v in named])
        axis.set_yticks(positions, [label for label, _ in named])
    else:
        axis.text(0.5, 0.5, "no attribute contributes", ha="center", va="center", transform=axis.transAxes)
        axis.set_yticks([])
    axis.axvline(0, color="black", linewidth=0.8)
    axis.set_xlabel("named attributes: contribution to the predicted score gap (best minus worst arm)", fontsize=8)
    positions = np.arange(len(remainder))[::-1]
    lower.barh(positions, [v for _, v in remainder], color=[REMAINDER, UNEXPLAINED], hatch="//", edgecolor="white")
    lower.set_yticks(positions, [label for label, _ in remainder])
    lower.axvline(0, color="black", linewidth=0.8)
    lower.set_xlabel("remainder, on its own scale", fontsize=8)
    best = textwrap.shorten(insights.texts[insights.best_arm], 70)
    worst = textwrap.shorten(insights.texts[insights.worst_arm], 70)
    axis.set_title(f"Experiment {insights.test_id} ({insights.contrast} best vs worst)\n"
                   f"best:  {best}\nworst: {worst}", fontsize=8.5, loc="left")
    legend = [Patch(color=POSITIVE, label="towards the best arm"), Patch(color=NEGATIVE, label="towards the worst arm"),
              Patch(facecolor=REMAINDER, hatch="//", edgecolor="white", label="sum of the other attributes"),
              Patch(facecolor=UNEXPLAINED, hatch="//", edgecolor="white", label="not explained by attributes")]
    figure.legend(handles=legend, loc="lower center", ncol=4, fontsize=7, frameon=False)
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    path = Path(path)
    with atomic_write(path) as handle:
        handle.write(buffer.getvalue())
    return path
