"""Training logs: per-batch PTE metrics, W&B (offline by itself without a key), metrics.jsonl and plots.

One interface, whatever is switched on. The training recipe calls

    init_wandb_env(training_args.report_to, output_dir)       # before the trainer exists
    save_resolved_config(output_dir, resolved)                # -> output_dir/config.yaml
    callback = LocalMetricsCallback(output_dir, cost_model=cost_model)
    GRPOTrainer(..., rollout_func=callback.observe(rollout_func), callbacks=[callback])
    callback.log_eval(summary)                                # held-out results -> W&B summary

and everything below is a no-op where it does not apply: no ``if wandb:`` branches in the recipe.

The callback is the one producer of ``pte/*``, ``tokens/*``, ``tools/*``, ``turns/*``, ``patterns/*``,
``efficiency/*`` and ``accuracy`` (:func:`produced_here`), priced with the one cost model it is given: per rollout
batch, :func:`pte_rl.training.metrics.batch_metrics` of the whole batch (gathered from every
process). With the trainer at hand (``observe``, or :meth:`LocalMetricsCallback.on_rollout_batch`
given it) the metrics go through TRL's ``log_metric`` channel, claimed for these keys
(:func:`pte_rl.rollout.trl_adapter.claim_metrics` drops them when a reward function logs them too):
averaged over the generation batches of a logging step, then logged with TRL's own metrics
(``reward``, ``rewards/<func>/mean``, ``kl``, ...) to every ``report_to`` backend (W&B prefixes them
with ``train/``) and to ``metrics.jsonl``. Reward functions log only ``reward/<name>_*``. In TRL's own
tool loop (``GRPOTrainer(tools=...)``, no pte_rl rollout to observe) the PTE reward is the one producer of
``pte/*`` instead, with the same summary function (:func:`pte_rl.pricing.summary.pte_summary`); see
docs/trl_native.md.
"""

from __future__ import annotations

import json
import logging
import math
import netrc
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from transformers import TrainerCallback

from pte_rl.pricing.cost import CostModel
from pte_rl.pricing.jsonl import read_jsonl, write_atomic
from pte_rl.pricing.trajectory import Trajectory
from pte_rl.rewards.distributed import gather_batch
from pte_rl.rollout import trl_adapter
from pte_rl.training.metrics import TABLE_COLUMNS, batch_metrics, sample_table, table_rows

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
SAMPLES_FILE = "samples.jsonl"
PLOTS_DIR = "plots"
CONFIG_FILE = "config.yaml"
PRODUCED_PREFIXES = ("pte/", "tokens/", "tools/", "turns/", "patterns/", "efficiency/")
PRODUCED_KEYS = ("accuracy",)
_OWNER = "pte_rl.training.tracking.LocalMetricsCallback"

__all__ = [
    "LocalMetricsCallback", "ObservedRollout", "active_wandb_run", "batch_metrics",
    "has_wandb_credentials", "init_wandb_env", "produced_here", "sample_table", "save_resolved_config",
    "truncate_after", "wants_wandb",
]


def produced_here(key: str) -> bool:
    """True for the keys :class:`LocalMetricsCallback` alone produces (``pte/mean`` yes, ``reward/x`` no).

    >>> [produced_here(k) for k in ("pte/mean", "accuracy", "tools/calls/python", "reward/pte_penalty_mean")]
    [True, True, True, False]
    """
    return key in PRODUCED_KEYS or key.startswith(PRODUCED_PREFIXES)


# --- Weights & Biases ---------------------------------------------------------------------------------


def wants_wandb(report_to: str | Iterable[str] | None) -> bool:
    """True when TrainingArguments.report_to asks for W&B ("wandb", or "all"); "none" wins."""
    if report_to is None:
        return False
    items = [report_to] if isinstance(report_to, str) else list(report_to)
    items = [str(item).strip().lower() for item in items]
    return "none" not in items and ("wandb" in items or "all" in items)


def has_wandb_credentials() -> bool:
    """A W&B key is configured: WANDB_API_KEY, WANDB_IDENTITY_TOKEN_FILE, or a netrc entry for the host.

    The host is WANDB_BASE_URL's (default api.wandb.ai); the netrc file is $NETRC or ~/.netrc, where
    `wandb login` stores the key.
    """
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlsplit(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").netloc
    path = Path(os.environ.get("NETRC") or Path.home() / (".netrc" if os.name != "nt" else "_netrc"))
    try:
        entry = netrc.netrc(str(path)).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(entry and entry[2])


def init_wandb_env(report_to: str | Iterable[str] | None, output_dir: str | os.PathLike) -> str:
    """Prepare W&B's environment before TRL's WandbCallback starts a run; returns the mode it will use.

    Off ("off") unless ``report_to`` asks for W&B. Otherwise WANDB_DIR defaults to ``output_dir`` (the
    run lands in ``output_dir/wandb/``) and WANDB_PROJECT to "pte_rl"; a WANDB_MODE the user set is
    kept; with no key configured (see :func:`has_wandb_credentials`) WANDB_MODE becomes "offline", so
    a run without a key logs locally (`wandb sync` uploads it later) instead of failing at its start.
    """
    if not wants_wandb(report_to):
        return "off"
    directory = Path(output_dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WANDB_DIR", str(directory))
    os.environ.setdefault("WANDB_PROJECT", "pte_rl")
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if has_wandb_credentials():
        return "online"
    os.environ["WANDB_MODE"] = "offline"
    logger.info("no W&B key found: logging offline to %s/wandb (upload later with `wandb sync`)", directory)
    return "offline"


def active_wandb_run() -> Any:
    """The W&B run in progress, or None; never imports wandb when nothing else has."""
    wandb = sys.modules.get("wandb")
    return getattr(wandb, "run", None) if wandb is not None else None


# --- the run directory ----------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A YAML/JSON-safe copy: tuples to lists, enums to their values, NaN to None, the rest to str."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return _plain(value.item())
    if hasattr(value, "value") and isinstance(value.value, str | int):  # enums
        return value.value
    return str(value)


def save_resolved_config(output_dir: str | os.PathLike, config: dict) -> Path:
    """Write the resolved run configuration to ``output_dir/config.yaml`` (atomically)."""
    import yaml

    path = Path(output_dir) / CONFIG_FILE
    write_atomic(path, [yaml.safe_dump(_plain(config), sort_keys=False, allow_unicode=True)])
    return path


def _read_lenient(path: Path) -> tuple[list[dict], list[int]]:
    """The objects of a step-stamped JSONL file and the numbers of its unreadable lines (a line cut by a
    kill); a missing file reads as empty."""
    if not path.exists():
        return [], []
    lines = read_jsonl(path, strict=False)
    records = [record for _, record in lines]
    return records, lines.skipped


def _mean_of(dicts: Sequence[dict[str, float]]) -> dict[str, float]:
    """Key-wise mean over the dicts that hold the key."""
    keys = sorted({k for d in dicts for k in d})
    return {k: sum(d[k] for d in dicts if k in d) / sum(1 for d in dicts if k in d) for k in keys}


def _append_line(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        handle.flush()


def truncate_after(path: Path, step: int) -> int:
    """Keep the lines of a step-stamped JSONL file with ``step <= step``; returns how many were dropped.

    A run resumed from checkpoint-N repeats the steps after N, so their old lines go; a line a kill cut
    in half goes too.
    """
    records, skipped = _read_lenient(path)
    kept = [r for r in records if _number(r.get("step")) is not None and r["step"] <= step]
    dropped = len(records) - len(kept) + len(skipped)
    if dropped:
        write_atomic(path, [json.dumps(r, ensure_ascii=False) + "\n" for r in kept])
        logger.info("%s: dropped %d line(s) after step %d (resumed run)", path, dropped, step)
    for line in skipped:
        logger.warning("%s:%d: not a JSON object (a line cut by a kill?); dropped", path, line)
    return dropped


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


class LocalMetricsCallback(TrainerCallback):
    """A ``transformers.TrainerCallback``: the run's training metrics, local record and W&B extras.

    Files in ``output_dir``: ``metrics.jsonl`` (every logged dict plus its ``step``, one line per log,
    flushed), ``samples.jsonl`` (sample trajectories with their per-turn PTE breakdown, plus ``step``)
    and ``plots/*.png`` (redrawn at every checkpoint and at the end). With a W&B run active, the sample
    tables go to W&B too (key ``samples``), the resolved config.yaml joins the run's config under
    ``pte_rl``, and :meth:`log_eval` writes held-out results to the run summary. Only the main process
    writes; the others compute and pass their metrics through TRL.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        *,
        cost_model: CostModel,
        toolsets: Any = None,
        patterns: Any = None,
        samples_per_log: int = 4,
        plots: bool = True,
    ):
        self.output_dir = Path(output_dir)
        self.metrics_path = self.output_dir / METRICS_FILE
        self.samples_path = self.output_dir / SAMPLES_FILE
        self.plots_dir = self.output_dir / PLOTS_DIR
        self.cost_model = cost_model
        self.toolsets = toolsets
        self.patterns = patterns  # a pte_rl.patterns.PatternConfig, or None for the defaults
        self.samples_per_log = samples_per_log
        self.plots = plots
        self.is_main_process = True  # set from the trainer's state at on_train_begin
        self._pending_metrics: list[dict[str, float]] = []
        self._pending_samples: list[dict] = []

    # -- fed by the rollout ---------------------------------------------------------------------------

    def on_rollout_batch(
        self, trajectories: Sequence[Trajectory | dict], trainer: Any = None
    ) -> dict[str, float]:
        """Price one rollout batch and queue its metrics and a few samples for the next log.

        The batch is first gathered from every process (:func:`pte_rl.rewards.distributed.gather_batch`,
        once per batch: the reward functions given the same records reuse it), so each metric is that
        of the whole batch; every process must call this for every batch (the gather is collective). With a TRL trainer
        the metrics go through TRL's ``log_metric`` channel, claimed for the keys of
        :func:`produced_here`. Without one they are averaged over the batches since the last log and
        added to its metrics.jsonl line (and W&B). Returns the batch's metrics.
        """
        merged, _ = gather_batch(list(trajectories))  # the reward functions of this batch reuse this gather
        trajs = [t if isinstance(t, Trajectory) else Trajectory.from_dict(t) for t in merged]
        metrics = batch_metrics(trajs, self.cost_model, toolsets=self.toolsets, patterns=self.patterns)
        channel = None if trainer is None else trl_adapter.claim_metrics(trainer, produced_here, _OWNER)
        if channel is not None:
            for key, value in metrics.items():
                channel(key, value)
        else:
            self._pending_metrics.append(metrics)
        if self.samples_per_log > 0:
            self._pending_samples = sample_table(trajs, self.cost_model, self.samples_per_log)
        return metrics

    def observe(self, rollout_func: Any) -> ObservedRollout:
        """Wrap TRL's ``rollout_func(prompts, trainer)`` so that every batch it returns (its
        ``trajectory`` column) is fed to :meth:`on_rollout_batch`."""
        return ObservedRollout(rollout_func, self)

    def add_samples(self, step: int, rows: Sequence[dict]) -> None:
        """Append sample rows (from :func:`sample_table`) to samples.jsonl and, if active, a W&B table."""
        if not self.is_main_process or not rows:
            return
        with open(self._ensure(self.samples_path), "a", encoding="utf-8") as handle:
            handle.writelines(
                json.dumps(_plain({"step": step, **row}), ensure_ascii=False) + "\n" for row in rows
            )
        run = active_wandb_run()
        if run is not None:
            wandb = sys.modules["wandb"]
            table = wandb.Table(columns=list(TABLE_COLUMNS), data=table_rows(step, rows))
            run.log({"samples": table, "train/global_step": step})

    def log_eval(self, summary: dict, prefix: str = "eval") -> None:
        """Put a held-out evaluation summary into the W&B run summary as ``<prefix>/<key>``."""
        run = active_wandb_run()
        if run is not None and self.is_main_process:
            for key, value in summary.items():
                if _number(value) is not None:
                    run.summary[f"{prefix}/{key}"] = value

    def write_plots(self) -> list[Path]:
        """Redraw plots/*.png from metrics.jsonl; a plotting failure is reported, never fatal to training."""
        if not self.plots or not self.is_main_process:
            return []
        from pte_rl.training.plots import training_plots

        records, _ = _read_lenient(self.metrics_path)
        try:
            return training_plots(records, self.plots_dir)
        except Exception:  # plots are derived from metrics.jsonl and can be redrawn; training goes on
            logger.exception("drawing the training plots in %s failed", self.plots_dir)
            return []

    def _ensure(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    # -- transformers.TrainerCallback hooks ------------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.is_main_process = bool(state.is_world_process_zero)
        if not self.is_main_process:
            return
        truncate_after(self.metrics_path, state.global_step)
        truncate_after(self.samples_path, state.global_step)
        run = active_wandb_run()
        config_path = self.output_dir / CONFIG_FILE
        if run is not None and config_path.exists():
            import yaml

            run.config.update({"pte_rl": yaml.safe_load(config_path.read_text(encoding="utf-8"))},
                              allow_val_change=True)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        pending, self._pending_metrics = self._pending_metrics, []
        samples, self._pending_samples = self._pending_samples, []
        if not state.is_world_process_zero:
            return
        step = int(state.global_step)
        record = {"step": step, **_plain(dict(logs or {}))}
        extra = {k: v for k, v in _mean_of(pending).items() if k not in record}
        record.update(extra)
        _append_line(self.metrics_path, record)
        run = active_wandb_run()
        if run is not None and extra:
            run.log({**{f"train/{k}": v for k, v in extra.items()}, "train/global_step": step})
        self.add_samples(step, samples)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.write_plots()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.write_plots()


class ObservedRollout:
    """``rollout_func`` plus a recorder: returns the rollout's output unchanged (picklable)."""

    def __init__(self, rollout_func: Any, recorder: LocalMetricsCallback):
        self.rollout_func, self.recorder = rollout_func, recorder

    def __call__(self, prompts: list, trainer: Any) -> dict:
        output = self.rollout_func(prompts, trainer)
        if "trajectory" not in output:
            raise KeyError("rollout_func returned no 'trajectory' column (pte_rl's rollout returns one)")
        self.recorder.on_rollout_batch(output["trajectory"], trainer)
        return output

