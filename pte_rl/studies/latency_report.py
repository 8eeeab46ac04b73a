"""The latency study end to end (shapes -> calibration -> replay per level -> correlations) and its report.

:func:`run_study` returns one JSON-ready dict; :func:`write_report` writes ``latency_study.json``,
``table.md`` (the paper's Table 10 on this hardware, plus the calibrated gamma and delta per level)
and one scatter plot per metric (a panel per concurrency level) plus ``delta_vs_concurrency.png``.
The calibration is fitted on its own grid of turn shapes, never on the study's trajectories.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from pte_rl.studies.calibrate import CostFit, calibrate, datasheet_gamma, load_calibration
from pte_rl.studies.latency import (
    METRIC_LABELS,
    ShapeRanges,
    prompt_lengths_from_envs,
    study_level,
    synthesise_trajectories,
)
from pte_rl.studies.replay import Engine

HEADLINE = "pte_calibrated"
RIVALS = ("generated_tokens", "price_1:1.5", "price_1:3", "price_1:4")


def _shapes(
    engine: Engine, model: str, envs: Sequence[str], n: int, seed: int, tokenizer: str | None, ranges: ShapeRanges
):
    limit = getattr(engine, "max_positions", None)
    if limit:
        ranges = replace(ranges, max_context=min(ranges.max_context, int(limit) - 1))
    if envs:
        from transformers import AutoTokenizer

        source = tokenizer or model
        try:
            tok = AutoTokenizer.from_pretrained(source)
        except (OSError, ValueError) as exc:
            raise ValueError(f"--tokenizer {source}: cannot load a tokenizer to count the prompts ({exc}); "
                             "pass --tokenizer DIR or --env none") from None
        if getattr(tok, "chat_template", None) is None:
            raise ValueError(f"--tokenizer {source}: the tokenizer has no chat template to render the prompts with; "
                             "pass --tokenizer DIR or --env none")
        lengths = prompt_lengths_from_envs(envs, tok)
    else:
        rng = np.random.default_rng(seed + 7)
        low, high = ranges.synthetic_prompt
        lengths = {"synthetic": [int(v) for v in rng.integers(low, high, size=200, endpoint=True)]}
    return synthesise_trajectories(n, lengths, seed=seed, ranges=ranges), lengths


def run_study(
    engine: Engine, *, model: str, envs: Sequence[str], n: int, concurrency: Sequence[int], repeats: int = 3,
    statistic: str = "median", seed: int = 0, profile: str | None = None, hardware: str = "h100-pcie",
    tokenizer: str | None = None, contexts: Sequence[int] = (64, 384, 1024, 1792), decodes: Sequence[int] = (4, 24, 96),
    ranges: ShapeRanges | None = None, log: Callable[[str], None] | None = None,
) -> dict:
    """Shapes, calibration (or ``profile``), replay at every level, correlations; see the module docstring."""
    say = log or (lambda _m: None)
    started = time.perf_counter()
    levels = sorted(set(concurrency))
    trajectories, lengths = _shapes(engine, model, envs, n, seed, tokenizer, ranges or ShapeRanges())
    say(f"{len(trajectories)} trajectories, {sum(len(t.turns) for t in trajectories)} turns")
    if profile:
        record = load_calibration(profile)
        fits: dict[int, CostFit] = record["fits"]
        calibration = {"source": record["path"], "grid": record.get("grid"), "date": record.get("date")}
        missing = [b for b in levels if b not in fits]
        if missing:
            raise ValueError(f"{record['path']}: no fit at concurrency {missing}; it has {sorted(fits)}")
    else:
        say(f"calibrating on {len(contexts)}x{len(decodes)} grid at concurrency {levels}")
        cal = calibrate(engine, model=model, contexts=list(contexts), decodes=list(decodes), concurrency=levels,
                        repeats=repeats, statistic=statistic, seed=seed + 1000, log=log)
        fits = cal.fits
        calibration = {"source": "this run", "grid": {"contexts": list(contexts), "decodes": list(decodes)},
                       "points": [asdict(p) for p in cal.points]}
    calibrated_s = time.perf_counter() - started
    sheet = datasheet_gamma(model, hardware)
    per_level = {}
    for level in levels:
        say(f"replaying at concurrency {level}")
        per_level[str(level)] = study_level(engine, trajectories, level, fits[level], sheet["gamma"], repeats=repeats,
                                            statistic=statistic, seed=seed + level, log=log)
    grid_spec = calibration.get("grid") or {"contexts": [], "decodes": []}
    grid = {(c, d) for c in grid_spec["contexts"] for d in grid_spec["decodes"]}
    return {
        "model": model, "engine": engine.name, "device": engine.device, "clock": engine.clock,
        "statistic": statistic, "repeats": repeats, "seed": seed, "concurrency": levels,
        "n_trajectories": len(trajectories), "n_turns": sum(len(t.turns) for t in trajectories),
        "environments": {k: {"prompts": len(v), "mean_prompt_tokens": float(np.mean(v))} for k, v in lengths.items()},
        "datasheet": sheet,
        "fits": {str(b): asdict(fits[b]) for b in levels},
        "calibration": calibration,
        "calibration_turns_in_study": sum((t.context_tokens, t.decode_tokens) in grid
                                          for traj in trajectories for t in traj.turns),
        "levels": per_level,
        "trajectories": [{"id": t.id, "shape": t.metadata["shape"], "env": t.metadata["env"],
                          "turns": [[u.context_tokens, u.decode_tokens, len(u.tool_calls), u.tool_tokens]
                                    for u in t.turns]} for t in trajectories],
        "summary": summarise(per_level, fits, sheet),
        "elapsed_s": {"calibration": calibrated_s, "total": time.perf_counter() - started},
    }


def summarise(per_level: dict, fits: dict[int, CostFit], sheet: dict) -> dict:
    """Headline figures: every level's correlations, and the acceptance check at the highest level."""
    top = str(max(int(b) for b in per_level))
    corr = per_level[top]["correlations"]
    best_rival = max(RIVALS, key=lambda k: corr[k]["pearson"])
    return {
        "pearson": {b: {k: v["pearson"] for k, v in lv["correlations"].items()} for b, lv in per_level.items()},
        "spearman": {b: {k: v["spearman"] for k, v in lv["correlations"].items()} for b, lv in per_level.items()},
        "gamma_measured": {str(b): f.gamma for b, f in sorted(fits.items()) if str(b) in per_level},
        "delta": {str(b): f.delta for b, f in sorted(fits.items()) if str(b) in per_level},
        "gamma_datasheet": sheet["gamma"],
        "top_concurrency": int(top),
        "top_pearson_calibrated": corr[HEADLINE]["pearson"],
        "top_best_rival": best_rival,
        "top_best_rival_pearson": corr[best_rival]["pearson"],
        "acceptance_r_ge_0.95": corr[HEADLINE]["pearson"] >= 0.95,
        "acceptance_beats_rivals": all(corr[HEADLINE]["pearson"] > corr[k]["pearson"] for k in RIVALS),
    }


def table_markdown(result: dict) -> str:
    """Table 10 on this hardware: Pearson r / Spearman rho of latency with each metric, per level."""
    levels = [str(b) for b in result["concurrency"]]
    head = "| Metric | " + " | ".join(f"B={b} r | B={b} rho" for b in levels) + " |"
    rule = "|---|" + "---:|---:|" * len(levels)
    keys = [k for k in METRIC_LABELS if k in result["levels"][levels[0]]["correlations"]]
    rows = []
    for key in keys:
        cells = []
        for b in levels:
            c = result["levels"][b]["correlations"][key]
            cells += [f"{c['pearson']:.3f}", f"{c['spearman']:.3f}"]
        rows.append(f"| {METRIC_LABELS[key]} | " + " | ".join(cells) + " |")
    fits = result["fits"]
    fit_rows = ["| Concurrency | gamma_measured | delta | per-turn epsilon | fit R2 |", "|---:|---:|---:|---:|---:|"]
    for b in levels:
        f = fits[b]
        eps = "-" if f["epsilon"] is None else f"{f['epsilon']:.3g} ± {f['epsilon_se']:.2g}"
        fit_rows.append(f"| {b} | {f['gamma']:.4g} ± {f['gamma_se']:.2g} | {f['delta']:.4g} ± {f['delta_se']:.2g} "
                        f"| {eps} | {f['r2']:.4f} |")
    sheet = result["datasheet"]
    return "\n".join([
        (f"Latency vs cost metrics: {result['n_trajectories']} trajectories ({result['n_turns']} turns), "
         f"{result['engine']} on {result['device']}, clock: {result['clock']}, {result['statistic']} of "
         f"{result['repeats']} repeats per turn."), "", head, rule, *rows, "",
        (f"Calibrated on a separate grid ({result['calibration']['source']}); datasheet gamma "
         f"{sheet['gamma']:.4g} ({sheet['hardware']})."), "", *fit_rows, "",
    ])


def _slug(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", key)


def write_plots(result: dict, out: Path) -> list[Path]:
    """One scatter per metric (a panel per level) and delta against concurrency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = [str(b) for b in result["concurrency"]]
    paths = []
    for key in result["levels"][levels[0]]["metrics"]:
        fig, axes = plt.subplots(1, len(levels), figsize=(4 * len(levels), 3.6), squeeze=False)
        for ax, b in zip(axes[0], levels, strict=True):
            level = result["levels"][b]
            x, y = np.asarray(level["metrics"][key]), np.asarray(level["latency_s"]) * 1e3
            c = level["correlations"][key]
            ax.scatter(x, y, s=10, alpha=0.7)
            ax.set_title(f"B={b}: r={c['pearson']:.3f}, rho={c['spearman']:.3f}", fontsize=9)
            ax.set_xlabel(METRIC_LABELS.get(key, key), fontsize=8)
            ax.set_ylabel("latency per sequence (ms)", fontsize=8)
        fig.tight_layout()
        path = out / f"scatter_{_slug(key)}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    fits = result["fits"]
    fig, ax = plt.subplots(figsize=(4.5, 3.4))
    xs = [int(b) for b in levels]
    ax.errorbar(xs, [fits[b]["delta"] for b in levels], yerr=[fits[b]["delta_se"] for b in levels], marker="o")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrency (sequences per batch)")
    ax.set_ylabel("delta (prefill tokens per decoded token)")
    ax.set_title("delta shrinks as the decode step is shared", fontsize=9)
    fig.tight_layout()
    path = out / "delta_vs_concurrency.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [*paths, path]


def write_report(result: dict, out: Path, *, plots: bool = True) -> dict:
    """Write ``latency_study.json``, ``table.md`` and the plots under ``out``; returns their paths."""
    from pte_rl.pricing.jsonl import write_atomic

    out.mkdir(parents=True, exist_ok=True)
    paths: dict = {"json": out / "latency_study.json", "table": out / "table.md"}
    write_atomic(paths["json"], [json.dumps(result, indent=1) + "\n"])
    write_atomic(paths["table"], [table_markdown(result)])
    if plots:
        paths["plots"] = write_plots(result, out)
    return paths
