"""PNG plots: training curves of one run (from its metrics.jsonl) and the ablation report's figures.

matplotlib's object API with the Agg canvas (no pyplot state, no display needed). Every file is
drawn to a temporary name beside its target and renamed into place: a plot is complete or absent.
"""

from __future__ import annotations

import fnmatch
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# One figure per file; each panel plots every metric key matching one of its patterns against the step.
TRAINING_FIGURES: tuple[tuple[str, str, tuple[tuple[str, tuple[str, ...]], ...]], ...] = (
    ("reward.png", "Reward", (("reward", ("reward", "rewards/*/mean")), ("components", ("reward/*",)))),
    ("pte.png", "PTE per rollout", (("PTE", ("pte/mean", "pte/median", "pte/p90")),
                                    ("PTE by outcome", ("pte/correct_mean", "pte/incorrect_mean")))),
    ("pte_share.png", "Prefill vs decode share of PTE",
     (("share", ("pte/prefill_share", "pte/decode_share")),)),
    ("accuracy.png", "Accuracy of the rollouts", (("accuracy", ("accuracy",)),)),
    ("tokens.png", "Tokens per rollout", (("generated", ("tokens/generated_mean",)),
                                          ("context + generated", ("tokens/total_mean",)))),
    ("tools.png", "Tool calls and turns per rollout",
     (("calls", ("tools/calls_per_trajectory", "tools/calls/*")), ("turns", ("turns/mean",)))),
    ("patterns.png", "Inefficiency patterns", (("rate", ("patterns/*_rate",)),
                                               ("cost multiplier", ("patterns/*_cost_multiplier",)))),
)


def _figure(panels: int, width: float = 7.0, height: float = 3.2) -> tuple[Any, list[Any]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height * panels), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(panels, 1, i + 1) for i in range(panels)]
    return fig, axes


def save_png(fig: Any, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save ``fig`` as PNG at ``path``: drawn to a temporary name, then renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format="png", dpi=dpi)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _series(records: Sequence[dict], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of ``key`` over the records that hold a finite number for it."""
    steps, values = [], []
    for record in records:
        value, step = _number(record.get(key)), _number(record.get("step"))
        if value is not None and step is not None:
            steps.append(step)
            values.append(value)
    return steps, values


def _matching(keys: Sequence[str], patterns: Sequence[str]) -> list[str]:
    found: list[str] = []
    for pattern in patterns:
        found += [k for k in sorted(keys) if fnmatch.fnmatchcase(k, pattern) and k not in found]
    return found


def training_plots(records: Sequence[dict], plots_dir: str | os.PathLike) -> list[Path]:
    """One PNG per figure of :data:`TRAINING_FIGURES` that has data; returns the files written.

    ``records`` are metrics.jsonl lines ({"step": ..., key: value}); evaluation keys (``eval_*``) and
    non-numeric values are left out.
    """
    keys = sorted({k for r in records for k, v in r.items()
                   if _number(v) is not None and not k.startswith("eval_")})
    written = []
    for filename, title, panels in TRAINING_FIGURES:
        filled = [(label, _matching(keys, patterns)) for label, patterns in panels]
        filled = [(label, found) for label, found in filled if found]
        if not filled:
            continue
        fig, axes = _figure(len(filled))
        for ax, (label, found) in zip(axes, filled, strict=True):
            for key in found:
                steps, values = _series(records, key)
                ax.plot(steps, values, marker="o", markersize=2.5, linewidth=1.2, label=key)
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="best")
        axes[0].set_title(title)
        axes[-1].set_xlabel("step")
        written.append(save_png(fig, Path(plots_dir) / filename))
    return written


def _std(values: Any) -> float:
    """Sample standard deviation (ddof 1); 0 for a single value."""
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def pareto_plot(
    groups: Sequence[dict], path: str | os.PathLike, *, starts: Sequence[tuple[float, float]] = ()
) -> Path:
    """Accuracy against mean PTE: each group's per-seed points, its mean (± std bars), and start evals.

    ``groups``: [{"label", "pte": [per seed], "accuracy": [per seed]}]; ``starts``: (pte, accuracy)
    of the start-of-training evaluations, drawn as grey crosses.
    """
    import numpy as np

    fig, (ax,) = _figure(1, width=7.0, height=5.0)
    colors = [f"C{i % 10}" for i in range(len(groups))]
    for color, group in zip(colors, groups, strict=True):
        costs, accs = np.asarray(group["pte"], float), np.asarray(group["accuracy"], float)
        ax.scatter(costs, accs, color=color, alpha=0.45, s=22)
        ax.errorbar(costs.mean(), accs.mean(), xerr=_std(costs), yerr=_std(accs), fmt="o", color=color,
                    markersize=9, capsize=3, label=group["label"])
    if starts:
        ax.scatter([s[0] for s in starts], [s[1] for s in starts], marker="x", color="grey", s=40,
                   label="start of training")
    ax.set_xlabel("mean PTE per trajectory (held-out)")
    ax.set_ylabel("accuracy (held-out)")
    ax.set_title("Accuracy against inference cost (up and left is better)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return save_png(fig, path)


def step_curves(curves: Sequence[dict], path: str | os.PathLike, *, ylabel: str, title: str) -> Path:
    """Per-group curves over training steps: the mean over seeds and a ± std band.

    ``curves``: [{"label", "steps": [...], "mean": [...], "std": [...]}].
    """
    import numpy as np

    fig, (ax,) = _figure(1, width=7.0, height=4.2)
    for i, curve in enumerate(curves):
        steps, mean, std = (np.asarray(curve[k], float) for k in ("steps", "mean", "std"))
        ax.plot(steps, mean, color=f"C{i % 10}", linewidth=1.4, label=curve["label"])
        ax.fill_between(steps, mean - std, mean + std, color=f"C{i % 10}", alpha=0.2, linewidth=0)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return save_png(fig, path)


def grouped_bars(
    categories: Sequence[str], groups: Sequence[dict], path: str | os.PathLike, *, ylabel: str, title: str
) -> Path:
    """One cluster of bars per category, one bar per group (height = mean, error bar = std).

    ``groups``: [{"label", "mean": [per category], "std": [per category]}]; NaN bars are left empty.
    """
    import numpy as np

    fig, (ax,) = _figure(1, width=max(7.0, 1.3 * len(categories) + 2), height=4.2)
    width = 0.8 / max(1, len(groups))
    x = np.arange(len(categories))
    for i, group in enumerate(groups):
        ax.bar(x + (i - (len(groups) - 1) / 2) * width, np.asarray(group["mean"], float), width,
               yerr=np.nan_to_num(np.asarray(group["std"], float)), capsize=2, color=f"C{i % 10}",
               label=group["label"])
    ax.set_xticks(x, list(categories), rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, loc="best")
    return save_png(fig, path)
