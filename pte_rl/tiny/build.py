"""The embedded tiny policy: a tokenizer, a small Qwen2 model and a warm start, built offline.

``build_tiny_policy(TinyConfig())`` returns a directory that ``AutoModelForCausalLM.from_pretrained``
and ``AutoTokenizer.from_pretrained`` load, built deterministically from ``TinyConfig.seed``:

1. scripted chats from the environment module's ``scripted_trajectories(seed, n, mix=...)`` (for
   ``arith``: direct answers, one well-chosen call, confirmatory calls, repeated calls, verbose tool
   output, mostly wasteful), rendered with TRL's exact ``qwen2_5_chat_template`` and the tool schemas
   the rollout loop renders (:meth:`pte_rl.rollout.env.Environment.tool_schemas`);
2. a byte-level BPE tokenizer trained on that text with Qwen2's pre-tokenizer, so every digit is
   its own token (arithmetic stays learnable), and the chat/tool special tokens;
3. a ``Qwen2ForCausalLM`` of ~0.25M parameters with tied embeddings;
4. a copy drill (:func:`copy_drill`): a synthetic task whose only loss is copying a number or an
   expression across filler tokens, which forms the attention pattern every path of a chat needs;
5. a supervised warm start on the chats (:func:`supervised_warm_start`): next-token cross-entropy on
   every token except the contents of user and tool messages (``loss="predictable"``), or on every
   token (``"all"``), or on the assistant turns (``"assistant"``); AdamW with linear warm-up then
   cosine decay to 10%.

The steps live in :mod:`pte_rl.tiny.config` (settings, cache key), :mod:`pte_rl.tiny.data` (1),
:mod:`pte_rl.tiny.model` (2, 3) and :mod:`pte_rl.tiny.train` (4, 5); this module runs them in order.
Builds are cached under ``$PTE_RL_CACHE`` (default ``~/.cache/pte_rl``) as ``tiny-<hash>``, where the
hash covers every setting, the environment file's text and :data:`BUILD_VERSION`; a build is written
to a temporary directory and renamed into place, so a cache entry is complete or absent.

The build of the default settings ships in the package (``pte_rl/tiny/default/``,
:mod:`pte_rl.tiny.shipped`): with those settings the first call copies it instead of building.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pte_rl.pricing.trajectory import renderable
from pte_rl.tiny.config import (
    BUILD_INFO,
    BUILD_VERSION,
    CACHE_VARIABLE,
    LOSS_MODES,
    QWEN2_SPLIT,
    SPECIAL_TOKENS,
    TOOL_TOKENS,
    TinyConfig,
    cache_root,
    is_built,
    settings_hash,
    settings_record,
    tiny_policy_path,
)
from pte_rl.tiny.data import encode, environment_module, harness_skins, parameter_names, scripted_texts
from pte_rl.tiny.model import make_model, template_renderer, train_tokenizer
from pte_rl.tiny.shipped import FILES_KEY, file_hashes, install_shipped
from pte_rl.tiny.train import (
    batches_by_tokens,
    common_prefix_length,
    copy_drill,
    copy_drill_batch,
    supervised_warm_start,
    token_losses,
)

__all__ = [  # the names callers imported from here before the split, kept importable
    "BUILD_INFO", "BUILD_VERSION", "CACHE_VARIABLE", "LOSS_MODES", "QWEN2_SPLIT", "SPECIAL_TOKENS", "TOOL_TOKENS",
    "TinyConfig", "batches_by_tokens", "build_tiny_policy", "build_tokenizer", "cache_root", "common_prefix_length",
    "copy_drill", "copy_drill_batch", "encode", "environment_module", "is_built", "make_model", "renderable",
    "scripted_texts", "settings_hash", "supervised_warm_start", "tiny_policy_path", "token_losses", "train_tokenizer",
]


def build_tiny_policy(
    config: TinyConfig | None = None,
    out: str | os.PathLike | None = None,
    *,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """Build (or reuse) the tiny policy and return its directory.

    ``out`` defaults to :func:`tiny_policy_path`. An existing complete build there is reused unless
    ``force``; with ``out`` given, it is reused only when its recorded settings hash matches.
    Otherwise, when the settings are those of a shipped copy (``TinyConfig()``, the default, or
    ``tiny_config("facts")``), the shipped copy is checked and copied
    (:func:`pte_rl.tiny.shipped.install_shipped`; seconds); any other settings, or ``force``, build
    from the seed. A build runs on ``config.threads`` torch
    threads (another count builds another policy, under another cache key).
    """
    config = config or TinyConfig()
    key = settings_hash(config)
    target = Path(out) if out is not None else cache_root() / f"tiny-{key}"
    if is_built(target) and not force:
        recorded = json.loads((target / BUILD_INFO).read_text()).get("settings_hash")
        if recorded == key:
            log(f"tiny policy: reusing {target}")
            return target
        raise FileExistsError(f"{target}: holds a tiny policy built with other settings ({recorded}); pass force")
    if force:
        log(f"tiny policy: building {key} from seed {config.seed} (force: no cached build or shipped copy is used)")
    elif install_shipped(key, target, log, env=config.env) is not None:
        return target
    import torch

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _build(config, key, target, log)
    finally:
        torch.set_num_threads(previous_threads)


def build_tokenizer(config: TinyConfig, env: Any = None) -> Any:
    """The tokenizer a build of ``config`` trains, before any weight: a function of the settings alone,
    so a check of token counts (what a shipped config's completion budget must hold) needs no build.
    ``env``: the environment the build loads (loaded from ``config`` when omitted)."""
    env = _environment(config) if env is None else env
    # A template-only tokenizer renders text before the real one exists.
    corpus = scripted_texts(config, config.tokenizer_examples, config.seed + 1, env.tool_schemas(),
                            template_renderer(), skins=harness_skins(config, env))
    return train_tokenizer([c["text"] for c in corpus], config.vocab_size)


def _environment(config: TinyConfig) -> Any:
    """The environment a build loads: ``config.env`` with the options its ``load_environment`` takes."""
    from pte_rl.rollout.env import load_environment

    return load_environment(config.env, **{k: v for k, v in config.env_options.items()
                                           if k in parameter_names(environment_module(config.env).load_environment)})


def _build(config: TinyConfig, key: str, target: Path, log: Callable[[str], None]) -> Path:
    import torch

    started = time.perf_counter()
    cpu_started = time.process_time()
    env = _environment(config)
    schemas, skins = env.tool_schemas(), harness_skins(config, env)
    tokenizer = build_tokenizer(config, env)
    examples = scripted_texts(config, config.sft_examples, config.seed, schemas, tokenizer,
                              spans=config.loss != "all", skins=skins)
    data = encode(examples, tokenizer, config.loss)
    log(f"tiny policy: {len(tokenizer)} tokens, {len(data)} chats, "
        f"{sum(len(ids) for ids, _ in data) / len(data):.0f} tokens per chat ({time.perf_counter() - started:.0f} s)")
    torch.manual_seed(config.seed)
    model = make_model(config, tokenizer)
    parameters = sum(p.numel() for p in model.parameters())
    log(f"tiny policy: Qwen2ForCausalLM with {parameters:,} parameters")
    copy_accuracy = copy_drill(model, tokenizer, config, log)
    losses = supervised_warm_start(model, data, config, log)

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        info = {
            "settings_hash": key, "build_version": BUILD_VERSION, "config": settings_record(config),
            "parameters": parameters, "vocab_size": len(tokenizer), "sft_loss": losses,
            "copy_drill_accuracy": copy_accuracy,
            "build_seconds": round(time.perf_counter() - started, 1),
            "build_cpu_seconds": round(time.process_time() - cpu_started, 1),
            "torch_threads": torch.get_num_threads(),
        }
        info[FILES_KEY] = file_hashes(staging)  # checked when the build is shipped (pte-rl tiny ship)
        (staging / BUILD_INFO).write_text(json.dumps(info, indent=2, default=str))
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log(f"tiny policy: built {target} in {info['build_seconds']} s (final loss {losses[-1]:.4f})")
    return target
