"""One PNG per experiment: the signed attribute contributions to the predicted gap between its best and worst arm.

Bars are gamma_j (s_best,j - s_worst,j) for the attributes with the largest |contribution|; the rest are summed
into one bar, and the part of the ranker's own gap that the attribute model does not explain gets its own bar, so
the chart never claims more than the attributes account for.
"""
from __future__ import annotations

import io
import textwrap
from pathlib import Path

import numpy as np

from abgym.paths import atomic_write


def contribution_chart(insights, path: str | Path, top: int = 10, ranker_gap: float | None = None) -> Path:
    """Write the chart of an :class:`~abgym.ranker.insights.ExperimentInsights` to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    contributions = np.asarray(insights.contributions, float)
    names = list(insights.attribute_names)
    order = [int(j) for j in np.argsort(-np.abs(contributions), kind="stable") if contributions[j] != 0][:top]
    labels = [names[j].replace("_", " ") for j in order]
    values = [float(contributions[j]) for j in order]
    rest = float(contributions.sum() - sum(values))
    if abs(rest) > 0:
        labels.append("other attributes")
        values.append(rest)
    if ranker_gap is None:
        ranker_gap = insights.predicted[insights.best_arm] - insights.predicted[insights.worst_arm]
    unexplained = float(ranker_gap - contributions.sum())
    labels.append("not explained by attributes")
    values.append(unexplained)

    height = 1.6 + 0.38 * len(values)
    figure, axis = plt.subplots(figsize=(8.5, height), dpi=110)
    colours = ["#2a9d8f" if v > 0 else "#e76f51" for v in values[:-1]] + ["#b0b0b0"]
    positions = np.arange(len(values))[::-1]
    axis.barh(positions, values, color=colours)
    axis.set_yticks(positions, labels)
    axis.axvline(0, color="black", linewidth=0.8)
    axis.set_xlabel("contribution to the predicted score gap (best minus worst arm)")
    best = textwrap.shorten(insights.texts[insights.best_arm], 70)
    worst = textwrap.shorten(insights.texts[insights.worst_arm], 70)
    axis.set_title(f"Experiment {insights.test_id} ({insights.contrast} best vs worst)\n"
                   f"best:  {best}\nworst: {worst}", fontsize=8.5, loc="left")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    path = Path(path)
    with atomic_write(path) as handle:
        handle.write(buffer.getvalue())
    return path
