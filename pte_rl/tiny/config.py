"""What determines a tiny-policy build (:class:`TinyConfig`) and where builds are cached.

Builds are cached under ``$PTE_RL_CACHE`` (default ``~/.cache/pte_rl``) as ``tiny-<hash>``; the hash
(:func:`settings_hash`) covers every setting, the environment file's text and :data:`BUILD_VERSION`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BUILD_VERSION = 6
CACHE_VARIABLE = "PTE_RL_CACHE"
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
TOOL_TOKENS = ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>")
# Qwen2's pre-tokenizer split: \p{N} alone, so each digit is one token.
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
BUILD_INFO = "tiny_build.json"
LOSS_MODES = ("predictable", "all", "assistant")


@dataclass(frozen=True)
class TinyConfig:
    """Everything that determines a tiny-policy build (all of it goes into the cache key)."""

    env: str = "arith"
    """Environment name or path; its module must define ``scripted_trajectories``."""
    env_options: dict = field(default_factory=dict)
    """Keyword options for the environment's ``load_environment`` and ``scripted_trajectories``."""
    seed: int = 0
    """Seeds the scripted data, the initial weights and the batch order."""
    mix: dict | None = None
    """Behaviour mixture of the scripted chats (None: the environment's default)."""
    vocab_size: int = 1024
    """BPE vocabulary including the 256 byte symbols and the special tokens."""
    tokenizer_examples: int = 300
    """Scripted chats the tokenizer is trained on."""
    hidden_size: int = 64
    num_layers: int = 3
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 256
    max_position_embeddings: int = 2048
    sft_examples: int = 3000
    """Scripted chats in the warm-start set."""
    sft_steps: int = 3000
    batch_size: int = 32
    """Most chats in one warm-start batch."""
    batch_tokens: int = 4096
    """Tokens per warm-start batch after the shared prefix (rows x longest row)."""
    learning_rate: float = 4e-3
    warmup_steps: int = 20
    weight_decay: float = 0.01
    copy_steps: int = 4000
    """Updates of the copy drill that runs before the warm start (0: none), see :func:`copy_drill`."""
    copy_batch_size: int = 32
    """Rows per copy-drill update."""
    copy_max_gap: int = 30
    """Longest run of filler tokens between a copy drill's source and its copy."""
    copy_min_digits: int = 1
    """Shortest number in the copy drill, 1-6 (the longest has 6 digits)."""
    copy_distractor: float = 0.5
    """Share of copy-drill rows with a distractor: the source's digits shuffled, a few tokens before
    the source (as a question's operands sit a few tokens before the calculator's result)."""
    threads: int = 2
    """Torch threads of the build. Part of the settings (and of the cache key): the thread count
    changes how matrix products are split and so how their sums round, and for a model this small that
    decides which policy a build makes (version 4 on one machine: one thread, start accuracy 1.000; two,
    0.824). A fixed count makes a build the same whatever the machine's load or core count, on one CPU.
    Two (since build version 6) build in ~580 s on a 2-core machine, against ~940 s on one; the build
    slows many times over when other work shares those two cores."""
    copy_tokens: str = "digits"
    """What the copy drill copies: ``digits`` (numbers and expressions, as arith's chats do) or ``any``
    (half of the rows copy spans of ordinary tokens: the names of facts' generated world)."""
    harnesses: tuple[str, ...] = ()
    """Harness variants the scripted chats are shown in, one drawn per chat (built-in names,
    ``training_family`` for every built-in one not held out, or YAML/JSON files; see
    pte_rl/rollout/harness): a policy built on several takes tool names, argument names, call syntax and
    answer format from its prompt rather than from memory. Empty: the environment's own harness (and a
    cache key unchanged from builds made before this setting existed)."""
    loss: str = "predictable"
    """``predictable``: every token except the contents of user and tool messages (the question's
    numbers and the tools' results, which nothing can predict); ``all``: every token of the rendered
    chat; ``assistant``: the assistant turns only."""

    def __post_init__(self) -> None:
        if self.loss not in LOSS_MODES:
            raise ValueError(f"TinyConfig.loss: expected one of {LOSS_MODES}, got {self.loss!r}")
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size",
                     "sft_examples", "batch_size", "batch_tokens", "tokenizer_examples", "copy_batch_size",
                     "copy_max_gap", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"TinyConfig.{name}: expected a positive integer, got {getattr(self, name)!r}")
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"TinyConfig: hidden_size ({self.hidden_size}) must divide by num_heads ({self.num_heads}) "
                f"and num_heads by num_kv_heads ({self.num_kv_heads})"
            )
        if not 1 <= self.copy_min_digits <= 6:
            raise ValueError(f"TinyConfig.copy_min_digits: expected 1 to 6, got {self.copy_min_digits!r}")
        if self.copy_tokens not in ("digits", "any"):
            raise ValueError(f"TinyConfig.copy_tokens: expected digits or any, got {self.copy_tokens!r}")
        if isinstance(self.harnesses, str) or not all(isinstance(h, str) for h in self.harnesses):
            raise ValueError(f"TinyConfig.harnesses: expected a tuple of variant names, got {self.harnesses!r}")
        if self.copy_steps < 0:
            raise ValueError(f"TinyConfig.copy_steps: expected 0 or more, got {self.copy_steps!r}")
        if not 0.0 <= self.copy_distractor <= 1.0:
            raise ValueError(f"TinyConfig.copy_distractor: expected 0 to 1, got {self.copy_distractor!r}")
        if self.vocab_size < 256 + len(SPECIAL_TOKENS) + len(TOOL_TOKENS):
            raise ValueError(
                f"TinyConfig.vocab_size: expected at least 263 (bytes + special tokens), got {self.vocab_size}"
            )


def tiny_config(env: str = "arith", **overrides: Any) -> TinyConfig:
    """The build settings of ``env``'s tiny policy: the defaults, then the environment module's
    ``TINY_SETTINGS`` (a mapping of :class:`TinyConfig` fields, e.g. facts' ``copy_tokens: any``), then
    ``overrides``."""
    from pte_rl.rollout.env import load_module

    settings = dict(getattr(load_module(env), "TINY_SETTINGS", None) or {})
    unknown = sorted(set(settings) - set(TinyConfig.__dataclass_fields__))
    if unknown:
        raise ValueError(f"{env}: TINY_SETTINGS: unknown field(s) {unknown} of TinyConfig")
    return TinyConfig(env=env, **{**settings, **overrides})


def cache_root() -> Path:
    """``$PTE_RL_CACHE``, else ``~/.cache/pte_rl``."""
    configured = os.environ.get(CACHE_VARIABLE)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "pte_rl"


# Settings added after builds were made: at these values they are left out of the key and the record,
# so that every earlier build keeps both.
LATER_SETTINGS = {"harnesses": (), "copy_tokens": "digits"}


def settings_record(config: TinyConfig) -> dict:
    """The settings as hashed and recorded in a build: every field, except those of
    :data:`LATER_SETTINGS` at their value from before they existed."""
    settings = asdict(config)
    for name, value in LATER_SETTINGS.items():
        if getattr(config, name) == value:
            del settings[name]
    return settings


def settings_hash(config: TinyConfig) -> str:
    """A 12-hex-digit key over the settings, the environment's source and the build version.

    The source is the environment file's text plus that of the private helper modules beside it that
    its names come from (``_arith_scripts.py`` for ``arith``): a change to a scripted behaviour is a
    change of the build."""
    from pte_rl.rollout.env import load_module, resolve_environment

    path = resolve_environment(config.env)
    helpers = _private_helper_files(load_module(path), path.parent)
    env_text = path.read_bytes() + b"".join(helper.read_bytes() for helper in helpers)
    payload = json.dumps({"config": settings_record(config), "version": BUILD_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode() + hashlib.sha256(env_text).digest()).hexdigest()[:12]


def _private_helper_files(module: Any, directory: Path) -> list[Path]:
    """Files of the private modules (``_*.py``) in ``directory`` that ``module``'s names come from."""
    files = set()
    for value in vars(module).values():
        source = sys.modules.get(getattr(value, "__module__", None) or "")
        file = Path(getattr(source, "__file__", None) or "")
        if file.name.startswith("_") and file.suffix == ".py" and file.resolve().parent == directory:
            files.add(file.resolve())
    return sorted(files)


def tiny_policy_path(config: TinyConfig | None = None) -> Path:
    """Where the build of ``config`` lives in the cache (whether it exists or not)."""
    config = config or TinyConfig()
    return cache_root() / f"tiny-{settings_hash(config)}"


def is_built(path: str | os.PathLike) -> bool:
    path = Path(path)
    return (path / BUILD_INFO).is_file() and (path / "config.json").is_file()
