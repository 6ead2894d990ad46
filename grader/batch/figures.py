"""The item-analysis figure: per exercise a score histogram, then a bar per test (share of students who passed it).

Read at a glance: red bars are tests most students fail, orange bars tests that even the weakest submissions
pass (suspiciously easy), hatched bars hidden tests; within an exercise the hardest test is on top.
"""

from __future__ import annotations

import math
from pathlib import Path

COLORS = {"most fail": "#d62728", "passes weak submissions": "#ff7f0e", "": "#4c72b0"}
BAR_INCHES = 0.27  # height of one test's bar


def item_figure(path: Path, rows: list[dict], hist: dict[str, dict[float, int]], points: dict, *,
                students: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    exercises = [ex for ex in points if ex in hist]
    by_ex = {ex: sorted((r for r in rows if r["exercise"] == ex), key=lambda r: (float(r["pass_rate"]), r["test"]))
             for ex in exercises}
    cols = 2
    bar_rows = math.ceil(len(exercises) / cols)
    tallest = [max((len(by_ex[ex]) for ex in exercises[r * cols:(r + 1) * cols]), default=1) for r in range(bar_rows)]
    heights = [2.6] + [0.6 + BAR_INCHES * n for n in tallest]
    height = sum(heights) + 1.0
    fig = plt.figure(figsize=(16, height))
    # margins in inches, not in shares of a figure whose height grows with the number of tests
    grid = fig.add_gridspec(1 + bar_rows, 1, height_ratios=heights, hspace=0.3, top=1 - 1.4 / height,
                            bottom=0.45 / height)
    top = grid[0].subgridspec(1, max(len(exercises), 1), wspace=0.25)
    for i, ex in enumerate(exercises):
        _histogram(fig.add_subplot(top[0, i]), ex, points[ex], hist[ex])
    for r in range(bar_rows):
        cells = grid[1 + r].subgridspec(1, cols, wspace=0.75)
        for c, ex in enumerate(exercises[r * cols:(r + 1) * cols]):
            _bars(fig.add_subplot(cells[0, c]), ex, points[ex], by_ex[ex])
    legend = [Patch(color=COLORS["most fail"], label="most students fail it (pass rate <= 25%)"),
              Patch(color=COLORS["passes weak submissions"], label="passed by the weakest submissions too"),
              Patch(facecolor="white", edgecolor="black", hatch="///", label="hidden test")]
    fig.legend(handles=legend, loc="upper right", ncol=3, frameon=False, fontsize=9)
    fig.suptitle(f"Item analysis: {students} graded submission{'s' if students != 1 else ''}", x=0.01, ha="left",
                 fontsize=14, fontweight="bold")
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def _histogram(ax, ex: str, meta: dict, counts: dict[float, int]) -> None:
    top = float(meta.get("visible", 0) + meta.get("hidden", 0))
    scores = sorted(counts)
    ax.bar(scores, [counts[s] for s in scores], width=max(top / 40, 0.4), color="#4c72b0")
    n = sum(counts.values())
    values = sorted(s for s, k in counts.items() for _ in range(k))
    median = values[len(values) // 2] if values else 0
    ax.set_title(f"{ex} {meta.get('title', '')}\n{n} students, median {median:g} / {top:g}", fontsize=10)
    ax.set_xlim(-0.5, top + 0.5)
    ax.set_xlabel("score")
    ax.set_ylabel("students")
    ax.yaxis.get_major_locator().set_params(integer=True)


def _bars(ax, ex: str, meta: dict, rows: list[dict]) -> None:
    rows = list(reversed(rows))  # barh draws bottom-up: the hardest test ends on top
    rates = [100 * float(r["pass_rate"]) for r in rows]
    labels = [r["test"].removeprefix("test_") + ("  (hidden)" if r["hidden"] == "yes" else "") for r in rows]
    bars = ax.barh(range(len(rows)), rates, color=[COLORS.get(r["flag"], COLORS[""]) for r in rows],
                   hatch=None, edgecolor="black", linewidth=0.3)
    for bar, row, rate in zip(bars, rows, rates):
        if row["hidden"] == "yes":
            bar.set_hatch("///")
        ax.text(min(rate, 100) + 1, bar.get_y() + bar.get_height() / 2, f"{rate:.0f}%", va="center", fontsize=7)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.set_xlim(0, 110)
    ax.set_ylim(-0.6, max(len(rows), 1) - 0.4)
    ax.axvline(25, color="#d62728", linestyle="--", linewidth=0.8)
    ax.set_xlabel("students who passed the test (%)")
    ax.set_title(f"{ex} {meta.get('title', '')}: tests, hardest first", fontsize=10, loc="left")
