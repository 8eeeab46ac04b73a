"""The summaries and output of :mod:`pte_rl.studies.policy_latency`: per-arm statistics and correlations,
its JSON, its Markdown table, its plot, and the section `pte-rl report --latency FILE` adds.

``policy_latency.json`` holds everything (the model, the datasheet gamma, every level's calibrated fit,
the runs and how many trajectories each gave, every replayed trajectory with its shape, costs and
per-turn times, the summary); ``table.md`` the table `pte-rl latency` prints; ``latency_vs_pte.png``
per-trajectory latency against PTE. The formulas of the summary are in :mod:`pte_rl.studies.policy_latency`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pte_rl.errors import InputError
from pte_rl.studies.latency import pearson, spearman
from pte_rl.studies.seed_stats import interval, stats, t975

RESULT_FILE = "policy_latency.json"
PLOT_FILE = "latency_vs_pte.png"
COSTS = {"pte_run": "PTE (run's own pricing)", "pte_datasheet": "PTE (datasheet gamma)",
         "pte_calibrated": "PTE (calibrated gamma + delta)", "generated_tokens": "Generated tokens"}


def finite(value: Any) -> Any:
    """NaN (and infinities) to None, recursively: JSON has no NaN."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [finite(v) for v in value]
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    return value


# ------------------------------------------------------------------------------------------- summaries


def _correlations(records: Sequence[dict], level: str) -> dict[str, dict[str, float | None]]:
    latency = [r["latency_s"][level] for r in records]
    out = {}
    for key in COSTS:
        cost = [r[key][level] if isinstance(r[key], dict) else r[key] for r in records]
        pair = (pearson(cost, latency), spearman(cost, latency)) if len(records) >= 2 else (math.nan, math.nan)
        out[key] = finite({"pearson": pair[0], "spearman": pair[1]})
    return out


def change_over_seeds(arm: dict[int, float], base: dict[int, float]) -> dict[str, Any]:
    """Change (%) of an arm's mean latency against the baseline's, from per-seed means (module docstring).

    >>> c = change_over_seeds({0: 1.1, 1: 1.3}, {0: 1.0, 1: 1.0})   # +10% and +30%, t(1) = 12.706
    >>> round(c["mean"], 6), round(c["low"], 3), round(c["high"], 3), c["paired"]
    (20.0, -107.06, 147.06, True)
    """
    shared = sorted(set(arm) & set(base))
    if len(shared) >= 2:
        result = interval([100.0 * (arm[s] / base[s] - 1.0) for s in shared])
        return {**result, "paired": True, "seeds": shared}
    a, b = stats(list(arm.values())), stats(list(base.values()))
    if a["mean"] is None or not b["mean"]:
        return {"mean": None, "low": None, "high": None, "n": 0, "paired": False, "seeds": []}
    ratio = a["mean"] / b["mean"]
    change, low, high = 100.0 * (ratio - 1.0), None, None
    if a["std"] is not None and b["std"] is not None:
        se = math.sqrt(a["std"] ** 2 / a["n"] + ratio**2 * b["std"] ** 2 / b["n"]) / b["mean"]
        half = 100.0 * t975(min(a["n"], b["n"]) - 1) * se
        low, high = change - half, change + half
    return {"mean": change, "low": low, "high": high, "n": min(a["n"], b["n"]), "paired": False,
            "seeds": sorted(set(arm) | set(base))}


def _per_seed(records: Sequence[dict], level: str) -> dict[int, float]:
    seeds: dict[int, list[float]] = {}
    for r in records:
        seeds.setdefault(r["seed"], []).append(r["latency_s"][level])
    return {s: float(np.mean(v)) for s, v in seeds.items()}


def _shares(records: Sequence[dict], level: str) -> dict[str, float | None]:
    """Prefill's share of the latency, and the first turn's; mean prefill and decode seconds per trajectory."""
    turns = np.array([t for r in records for t in r["turn_s"][level]], dtype=np.float64)
    first = sum(r["turn_s"][level][0][0] for r in records)
    total = float(turns[:, 0].sum())
    prefill = float(turns[:, 1].sum()) if not np.isnan(turns[:, 1]).any() else math.nan
    decode = float(turns[:, 2].sum()) if not np.isnan(turns[:, 2]).any() else math.nan
    return finite({"prefill_share": prefill / total, "first_turn_share": first / total,
                    "prefill_s_mean": prefill / len(records), "decode_s_mean": decode / len(records)})


def summarise(records: Sequence[dict], levels: Sequence[int], baseline: str) -> dict[str, Any]:
    """Per arm and level: latency statistics, shares, change against ``baseline``, correlations; pooled too."""
    arms = sorted({r["arm"] for r in records}, key=lambda a: (a != baseline, a))
    per_arm: dict[str, dict] = {}
    for arm in arms:
        members = [r for r in records if r["arm"] == arm]
        per_arm[arm] = {"n": len(members), "seeds": sorted({r["seed"] for r in members}), "levels": {}}
        for level in map(str, levels):
            latency = np.array([r["latency_s"][level] for r in members])
            base = _per_seed([r for r in records if r["arm"] == baseline], level)
            per_arm[arm]["levels"][level] = {
                "mean_s": float(latency.mean()), "median_s": float(np.median(latency)),
                "p90_s": float(np.percentile(latency, 90)), "per_seed_mean_s": _per_seed(members, level),
                "change_pct": change_over_seeds(_per_seed(members, level), base), **_shares(members, level),
                "correlations": _correlations(members, level),
            }
    pooled = {str(b): _correlations(records, str(b)) for b in levels}
    return {"arms": per_arm, "pooled": pooled}


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{1e3 * value:.1f}"


def _r(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def table_markdown(result: dict[str, Any]) -> list[str]:
    """Per arm and concurrency: latency (ms per sequence), change against the baseline, Pearson r of
    PTE (datasheet, calibrated) and generated tokens with latency; then the pooled correlations."""
    from pte_rl.studies.anchors import ci

    summary, baseline = result["summary"], result["baseline"]
    lines = ["| arm | B | n | mean ms | median ms | p90 ms | mean vs " + baseline + " (95% CI) | prefill share "
             "| r PTE datasheet | r PTE calibrated | r generated tokens |", "|---|---:|" + "---:|" * 9]
    for arm, entry in summary["arms"].items():
        for level, cell in entry["levels"].items():
            corr = cell["correlations"]
            change = "–" if arm == baseline else ci(cell["change_pct"], "%")
            share = "–" if cell["prefill_share"] is None else f"{cell['prefill_share']:.2f}"
            lines.append(f"| {arm} | {level} | {entry['n']} | {_ms(cell['mean_s'])} | {_ms(cell['median_s'])} | "
                         f"{_ms(cell['p90_s'])} | {change} | {share} | {_r(corr['pte_datasheet']['pearson'])} | "
                         f"{_r(corr['pte_calibrated']['pearson'])} | {_r(corr['generated_tokens']['pearson'])} |")
    levels = list(summary["pooled"])
    lines += ["", "All arms pooled: Pearson r / Spearman rho of latency with each cost.", "",
              "| cost | " + " | ".join(f"B={b} r | B={b} rho" for b in levels) + " |",
              "|---|" + "---:|---:|" * len(levels)]
    for key, label in COSTS.items():
        cells = [f"{_r(summary['pooled'][b][key]['pearson'])} | {_r(summary['pooled'][b][key]['spearman'])}"
                 for b in levels]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def describe(result: dict[str, Any]) -> str:
    """One line: what was replayed on what, and how it was calibrated."""
    model, sheet = result["model"], result["datasheet"]
    size = f" {model['parameters'] / 1e6:.1f}M parameters," if model.get("parameters") else ""
    threads = f", {model['threads']} thread(s)" if model.get("threads") else ""
    count = result.get("n_trajectories", len(result.get("trajectories", [])))
    return (f"{count} held-out trajectories (up to {result['per_arm']} per arm) replayed on "
            f"{model['model']} ({model['engine']} on {model['device']},{size} clock {model['clock']}{threads}), "
            "KV cache dropped each turn; latency = sum of per-sequence turn times; "
            f"datasheet gamma {sheet['gamma']:.4g} ({sheet['hardware']}); calibration: "
            f"{result['calibration']['source']}.")


def latency_plot(result: dict[str, Any], path: str | os.PathLike) -> Path:
    """Per-trajectory latency against datasheet PTE, one colour per arm, arm means as large markers, a
    panel per concurrency (titles: pooled Pearson r of datasheet and calibrated PTE)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from pte_rl.training.plots import save_png

    levels = [str(b) for b in result["concurrency"]]
    fig = Figure(figsize=(4.6 * len(levels), 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    arms = list(result["summary"]["arms"])
    for index, level in enumerate(levels):
        ax = fig.add_subplot(1, len(levels), index + 1)
        for colour, arm in enumerate(arms):
            rows = [r for r in result["trajectories"] if r["arm"] == arm]
            x = np.array([r["pte_datasheet"] for r in rows])
            y = 1e3 * np.array([r["latency_s"][level] for r in rows])
            ax.scatter(x, y, s=9, alpha=0.5, color=f"C{colour}", label=arm)
            ax.scatter([x.mean()], [y.mean()], s=140, marker="X", color=f"C{colour}", edgecolor="black")
        pooled = result["summary"]["pooled"][level]
        ax.set_title(f"B={level}: r datasheet {_r(pooled['pte_datasheet']['pearson'])}, "
                     f"calibrated {_r(pooled['pte_calibrated']['pearson'])}", fontsize=9)
        ax.set_xlabel(f"PTE (datasheet gamma, {result['datasheet']['hardware']})", fontsize=8)
        ax.set_ylabel("latency per sequence (ms)", fontsize=8)
        ax.legend(fontsize=7, title="arm (X: mean)", title_fontsize=7)
    return save_png(fig, path)


def write_result(result: dict[str, Any], out: str | os.PathLike, *, plot: bool = True) -> dict[str, Path]:
    """``policy_latency.json`` (atomic), ``table.md`` and the plot under ``out``; returns their paths."""
    from pte_rl.pricing.jsonl import write_atomic

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / RESULT_FILE, "table": out / "table.md"}
    write_atomic(paths["json"], [json.dumps(finite(result), indent=1) + "\n"])
    write_atomic(paths["table"], ["\n".join([describe(result), "", *table_markdown(result)]) + "\n"])
    if plot:
        paths["plot"] = latency_plot(result, out / PLOT_FILE)
    return paths


def load_result(path: str | os.PathLike) -> dict[str, Any]:
    """A ``policy_latency.json`` (or the directory holding one), checked for what the report reads."""
    file = Path(path)
    file = file / RESULT_FILE if file.is_dir() else file
    try:
        result = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{file}: cannot read a latency result ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{file}:{exc.lineno}: expected the JSON `pte-rl latency` writes ({exc.msg})") from None
    for key in ("summary", "trajectories", "concurrency", "baseline", "datasheet", "model", "calibration"):
        if not isinstance(result, dict) or key not in result:
            raise InputError(f"{file}: field '{key}': missing; expected the JSON `pte-rl latency` writes")
    return result


def report_entry(result: dict[str, Any], source: str | os.PathLike) -> dict[str, Any]:
    """What `pte-rl report --latency` keeps of a result in report.json: everything but the per-trajectory
    records and the calibration's grid points."""
    keep = ("model", "datasheet", "concurrency", "baseline", "per_arm", "seed", "repeats", "statistic", "fits",
            "runs", "summary", "elapsed_s")
    calibration = {k: v for k, v in result["calibration"].items() if k != "points"}
    return {"source": str(source), "n_trajectories": len(result["trajectories"]), "calibration": calibration,
            **{k: result[k] for k in keep if k in result}}


def report_section(entry: dict[str, Any]) -> list[str]:
    """The report's "Measured latency" section, from :func:`report_entry`."""
    return ["", "## Measured latency", "",
            f"From {entry['source']}: {describe(entry)} Latency in ms per sequence; the change of the mean against "
            f"`{entry['baseline']}` is over seeds (paired where seeds are shared), with its 95% interval; r is "
            "Pearson's over the arm's trajectories.", "", *table_markdown(entry)]


def add_to_report(summary: dict[str, Any], latency: str | os.PathLike, out: str | os.PathLike) -> str:
    """`pte-rl report --latency FILE`: the result's :func:`report_entry` goes into ``summary["latency"]``
    and its plot to ``out/plots``; returns the plot's path relative to ``out``."""
    result = load_result(latency)
    summary["latency"] = report_entry(result, latency)
    return str(latency_plot(result, Path(out) / "plots" / PLOT_FILE).relative_to(out))
