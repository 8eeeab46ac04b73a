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

Builds are cached under ``$PTE_RL_CACHE`` (default ``~/.cache/pte_rl``) as ``tiny-<hash>``, where the
hash covers every setting, the environment file's text and :data:`BUILD_VERSION`; a build is written
to a temporary directory and renamed into place, so a cache entry is complete or absent.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
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
        if self.copy_steps < 0:
            raise ValueError(f"TinyConfig.copy_steps: expected 0 or more, got {self.copy_steps!r}")
        if not 0.0 <= self.copy_distractor <= 1.0:
            raise ValueError(f"TinyConfig.copy_distractor: expected 0 to 1, got {self.copy_distractor!r}")
        if self.vocab_size < 256 + len(SPECIAL_TOKENS) + len(TOOL_TOKENS):
            raise ValueError(f"TinyConfig.vocab_size: expected at least 263 (bytes + special tokens), got {self.vocab_size}")


# ---------------------------------------------------------------- cache


def cache_root() -> Path:
    """``$PTE_RL_CACHE``, else ``~/.cache/pte_rl``."""
    configured = os.environ.get(CACHE_VARIABLE)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "pte_rl"


def settings_hash(config: TinyConfig) -> str:
    """A 12-hex-digit key over the settings, the environment's source and the build version.

    The source is the environment file's text plus that of the private helper modules beside it that
    its names come from (``_arith_scripts.py`` for ``arith``): a change to a scripted behaviour is a
    change of the build."""
    from pte_rl.rollout.env import load_module, resolve_environment

    path = resolve_environment(config.env)
    helpers = _private_helper_files(load_module(path), path.parent)
    env_text = path.read_bytes() + b"".join(helper.read_bytes() for helper in helpers)
    payload = json.dumps({"config": asdict(config), "version": BUILD_VERSION}, sort_keys=True, default=str)
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


# ---------------------------------------------------------------- data


def environment_module(name_or_path: str) -> Any:
    """The environment's module (for ``scripted_trajectories``), from the one environment loader."""
    from pte_rl.rollout.env import load_module

    module = load_module(name_or_path)
    if not callable(getattr(module, "scripted_trajectories", None)):
        # A bad environment file, not a bad argument type: ValueError.
        raise ValueError(  # noqa: TRY004
            f"{module.__file__}: the tiny policy needs scripted_trajectories(seed, n, mix=...) in the environment"
        )
    return module


def renderable(messages: list[dict]) -> list[dict]:
    """Chat-template input: tool-call arguments as objects (OpenAI logs hold JSON strings)."""
    out = []
    for message in messages:
        if message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                function = dict(call.get("function", call))
                if isinstance(function.get("arguments"), str):
                    function["arguments"] = json.loads(function["arguments"])
                calls.append({**call, "function": function})
            message = {**message, "tool_calls": calls}
        out.append(message)
    return out


def scripted_texts(config: TinyConfig, n: int, seed: int, tool_schemas: list[dict], tokenizer: Any,
                   spans: bool = False) -> list[dict]:
    """Scripted chats rendered to text; with ``spans``, also the character spans of their assistant
    turns (``assistant_spans``) and of the contents of their user and tool messages (``input_spans``)."""
    module = environment_module(config.env)
    kwargs = {k: v for k, v in config.env_options.items() if k in _parameters(module.scripted_trajectories)}
    records = module.scripted_trajectories(seed, n, mix=config.mix, **kwargs)
    out = []
    for record in records:
        messages = renderable(record["messages"])
        text = tokenizer.apply_chat_template(messages, tools=tool_schemas, tokenize=False)
        assistant_spans, input_spans = [], []
        for index, message in enumerate(messages):
            if not spans or message["role"] == "system":
                continue
            if message["role"] == "assistant":
                before = tokenizer.apply_chat_template(messages[:index], tools=tool_schemas, tokenize=False,
                                                       add_generation_prompt=True)
                upto = tokenizer.apply_chat_template(messages[: index + 1], tools=tool_schemas, tokenize=False)
                assistant_spans.append((len(before), len(upto)))
                continue
            # A user or tool message: its content, found after the text of the messages before it.
            before = tokenizer.apply_chat_template(messages[:index], tools=tool_schemas, tokenize=False) \
                if index else ""
            content = message.get("content") or ""
            start = text.find(content, len(before)) if content else -1
            if start >= 0:
                input_spans.append((start, start + len(content)))
        out.append({"text": text, "assistant_spans": assistant_spans, "input_spans": input_spans,
                    "behaviour": record.get("behaviour")})
    return out


def _parameters(fn: Callable) -> set[str]:
    import inspect

    return set(inspect.signature(fn).parameters)


# ---------------------------------------------------------------- tokenizer and model


def _template_tokenizer(tokenizer_object: Any) -> Any:
    from transformers import PreTrainedTokenizerFast
    from trl.chat_template_utils import qwen2_5_chat_template

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer_object, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        additional_special_tokens=[], clean_up_tokenization_spaces=False, model_max_length=2048,
    )
    tokenizer.chat_template = qwen2_5_chat_template
    return tokenizer


def train_tokenizer(texts: list[str], vocab_size: int) -> Any:
    """A byte-level BPE with Qwen2's digit-splitting pre-tokenizer, wrapped with the chat template."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in TOOL_TOKENS])
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS) + list(TOOL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return _template_tokenizer(tokenizer)


def make_model(config: TinyConfig, tokenizer: Any) -> Any:
    """A freshly initialised Qwen2ForCausalLM sized by ``config`` (seeded by the caller)."""
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    model_config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads, max_position_embeddings=config.max_position_embeddings,
        tie_word_embeddings=True, bos_token_id=None, eos_token_id=eos, pad_token_id=pad, use_cache=True,
    )
    model = Qwen2ForCausalLM(model_config)
    model.generation_config = GenerationConfig(eos_token_id=[eos, pad], pad_token_id=pad, do_sample=True,
                                               temperature=1.0, top_p=1.0, top_k=0)
    return model


# ---------------------------------------------------------------- the warm start


def encode(examples: list[dict], tokenizer: Any, loss: str) -> list[tuple[list[int], list[int]]]:
    """(input ids, loss mask) per example; the mask covers every token (``all``), the assistant spans
    (``assistant``) or every token outside the user and tool contents (``predictable``)."""
    encoded = []
    for example in examples:
        batch = tokenizer(example["text"], add_special_tokens=False, return_offsets_mapping=True)
        ids = batch["input_ids"]
        if loss == "all":
            mask = [1] * len(ids)
        elif loss == "assistant":
            spans = example["assistant_spans"]
            mask = [int(any(a <= start < b for a, b in spans)) for start, _ in batch["offset_mapping"]]
        else:
            spans = example["input_spans"]
            mask = [int(not any(a <= start < b for a, b in spans)) for start, _ in batch["offset_mapping"]]
        encoded.append((ids, mask))
    return encoded


def common_prefix_length(sequences: list[list[int]]) -> int:
    """Length of the longest common prefix, leaving every sequence at least one token after it."""
    length = min(len(s) for s in sequences) - 1
    first = sequences[0]
    for other in sequences[1:]:
        i = 0
        while i < length and other[i] == first[i]:
            i += 1
        length = i
    return max(0, length)


def token_losses(model: Any, rows: list[tuple[list[int], list[int]]]) -> tuple[Any, Any]:
    """(summed loss, counted tokens) of next-token prediction over ``rows``, each an (ids, mask).

    Exact, but cheaper than a plain padded batch: the prefix every row shares (the system prompt
    with the tool schemas, the start of the question) is run once and its keys and values are
    reused by every row; its tokens are counted once. A target token counts where its mask is 1.
    """
    import torch
    import torch.nn.functional as F

    pad = model.config.pad_token_id
    prefix = common_prefix_length([ids for ids, _ in rows])
    total = torch.zeros(())
    count = 0
    past = None
    if prefix > 0:
        ids, mask = rows[0]
        out = model(input_ids=torch.tensor([ids[:prefix]]), use_cache=True)
        targets = torch.tensor(ids[1:prefix])
        weights = torch.tensor(mask[1:prefix], dtype=torch.float32)
        if len(targets):
            losses = F.cross_entropy(out.logits[0, :-1], targets, reduction="none")
            total = total + (losses * weights).sum()
            count += int(weights.sum())
        last_logits = out.logits[0, -1]
        past = out.cache
        past.batch_repeat_interleave(len(rows))
    width = max(len(ids) for ids, _ in rows) - prefix
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    attention = torch.zeros((len(rows), prefix + width), dtype=torch.long)
    attention[:, :prefix] = 1
    for r, (ids, mask) in enumerate(rows):
        tail = ids[prefix:]
        input_ids[r, : len(tail)] = torch.tensor(tail)
        attention[r, prefix : prefix + len(tail)] = 1
        labels[r, : len(tail)] = torch.tensor([t if m else -100 for t, m in zip(tail, mask[prefix:])])
    out = model(input_ids=input_ids, attention_mask=attention, cache=past, use_cache=past is not None)
    logits = out.logits[:, :-1]
    if prefix > 0:  # the prefix's last position predicts every row's first own token
        logits = torch.cat([last_logits.expand(len(rows), 1, -1), out.logits[:, :-1]], dim=1)
        targets = labels
    else:
        targets = labels[:, 1:]
    losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum",
                             ignore_index=-100)
    return total + losses, count + int((targets != -100).sum())


def batches_by_tokens(lengths: list[int], token_budget: int, max_rows: int) -> list[list[int]]:
    """Indices grouped by length (sorted), each group's rows x longest length within the budget."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches, current = [], []
    for index in order:
        if current and (len(current) + 1) * lengths[index] > token_budget or len(current) == max_rows:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def copy_drill_batch(tokenizer: Any, rows: int, max_gap: int, generator: Any,
                     min_digits: int = 1, distractor: float = 0.0) -> tuple[Any, Any]:
    """One batch of the copy drill: (input ids, labels with -100 outside the copies).

    Each row is ``token, span, filler, span``: ``span`` is ``min_digits``-6 random digits, or (with
    two or more digits) two numbers joined by an operator (what a policy copies: ``2146``, ``37*58``),
    the filler 3-``max_gap`` random non-special tokens that are neither digits nor operators. The loss
    covers the copy only. A share ``distractor`` of the rows is ``token, decoy, near, span, filler,
    span``: the decoy holds the span's digits shuffled (an operator in the middle half of the time), the
    near filler 1-8 tokens, so the copy must come from the latest number, not from an earlier one
    with the same digits (``16*28`` before ``448``).
    """
    import torch

    digits = [tokenizer.convert_tokens_to_ids(c) for c in "0123456789"]
    operators = [tokenizer.convert_tokens_to_ids(c) for c in "+-*"]
    specials = set(tokenizer.all_special_ids) | set(tokenizer.convert_tokens_to_ids(list(TOOL_TOKENS)))
    ordinary = [i for i in range(len(tokenizer)) if i not in specials and i not in digits + operators]

    def pick(options: list[int], count: int) -> list[int]:
        return [options[i] for i in torch.randint(len(options), (count,), generator=generator).tolist()]

    sequences = []
    for _ in range(rows):
        span = pick(digits, int(torch.randint(min_digits, 7, (), generator=generator)))
        if torch.rand((), generator=generator) < 0.5 and len(span) > 1:  # an expression: number, operator, number
            span = span[: max(1, len(span) // 2)] + pick(operators, 1) + span[max(1, len(span) // 2) :]
        gap = pick(ordinary, int(torch.randint(3, max(4, max_gap + 1), (), generator=generator)))
        head = pick(ordinary, 1)
        if distractor and torch.rand((), generator=generator) < distractor:
            numbers = [t for t in span if t in digits]
            decoy = [numbers[i] for i in torch.randperm(len(numbers), generator=generator).tolist()]
            if len(decoy) > 1 and torch.rand((), generator=generator) < 0.5:
                decoy = decoy[: len(decoy) // 2] + pick(operators, 1) + decoy[len(decoy) // 2 :]
            head += decoy + pick(ordinary, int(torch.randint(1, 9, (), generator=generator)))
        sequences.append((head + span + gap, span))
    width = max(len(head) + len(span) for head, span in sequences)
    ids = torch.full((rows, width), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full((rows, width), -100, dtype=torch.long)
    for row, (head, span) in enumerate(sequences):
        ids[row, : len(head) + len(span)] = torch.tensor(head + span)
        labels[row, len(head) : len(head) + len(span)] = torch.tensor(span)
    return ids, labels


def copy_drill(model: Any, tokenizer: Any, config: TinyConfig, log: Callable[[str], None]) -> list[float]:
    """Teach the freshly initialised model to copy before it sees a chat; returns the copy accuracy
    (argmax, teacher-forced) every 50 updates.

    Why: every path of a scripted chat copies numbers (the question's expression into a tool call, a
    tool's result into the answer), but with the copies a handful of tokens among hundreds, a
    0.25M-parameter model trained on chats alone did not find the attention pattern that copies in
    1000 updates (answer digits at chance; docs/tiny.md). On a synthetic task where the copies are
    the only loss it forms within a few hundred updates, and the warm start then keeps it.
    """
    import torch
    import torch.nn.functional as F

    if config.copy_steps == 0:
        return []
    generator = torch.Generator().manual_seed(config.seed + 7919)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, betas=(0.9, 0.98),
                                  weight_decay=config.weight_decay)
    model.train()
    accuracies, start = [], time.perf_counter()
    for step in range(config.copy_steps):
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate * min(1.0, (step + 1) / config.warmup_steps)
        ids, labels = copy_drill_batch(tokenizer, config.copy_batch_size, config.copy_max_gap, generator,
                                       config.copy_min_digits, config.copy_distractor)
        logits = model(input_ids=ids).logits[:, :-1]
        targets = labels[:, 1:]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if (step + 1) % 50 == 0 or step + 1 == config.copy_steps:
            scored = targets != -100
            accuracies.append(float((logits.argmax(-1)[scored] == targets[scored]).float().mean()))
            log(f"copy drill step {step + 1}/{config.copy_steps}: loss {loss.item():.4f}, copy accuracy "
                f"{accuracies[-1]:.3f} ({time.perf_counter() - start:.0f} s)")
    model.eval()
    return accuracies


def supervised_warm_start(model: Any, data: list[tuple[list[int], list[int]]], config: TinyConfig,
                          log: Callable[[str], None], callback: Callable[[int, Any], None] | None = None) -> list[float]:
    """Next-token cross-entropy over length-bucketed batches; returns the loss every 10 steps.

    ``callback(step, model)``, when given, runs after every 10th step (for diagnostics).
    """
    import torch

    generator = torch.Generator().manual_seed(config.seed)
    prefix = common_prefix_length([ids for ids, _ in data])
    batches = batches_by_tokens([len(ids) - prefix for ids, _ in data], config.batch_tokens, config.batch_size)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=config.learning_rate, betas=(0.9, 0.98), eps=1e-8)

    def rate(step: int) -> float:  # linear warm-up, cosine decay to 10%
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, config.sft_steps - config.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    model.train()
    losses, running, queue = [], [], []
    start = time.perf_counter()
    for step in range(config.sft_steps):
        if not queue:
            queue = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        total, count = token_losses(model, [data[i] for i in queue.pop()])
        loss = total / max(1, count)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        running.append(loss.item())
        if (step + 1) % 10 == 0 or step + 1 == config.sft_steps:
            losses.append(sum(running) / len(running))
            running = []
            log(f"warm start step {step + 1}/{config.sft_steps}: loss {losses[-1]:.4f} "
                f"({time.perf_counter() - start:.0f} s)")
            if callback is not None:
                model.eval()
                with torch.no_grad():
                    callback(step + 1, model)
                model.train()
    model.eval()
    return losses


# ---------------------------------------------------------------- the build


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
    The build runs on ``config.threads`` torch threads (another count builds another policy, under
    another cache key).
    """
    import torch

    config = config or TinyConfig()
    key = settings_hash(config)
    target = Path(out) if out is not None else cache_root() / f"tiny-{key}"
    if is_built(target) and not force:
        recorded = json.loads((target / BUILD_INFO).read_text()).get("settings_hash")
        if recorded == key:
            log(f"tiny policy: reusing {target}")
            return target
        raise FileExistsError(f"{target}: holds a tiny policy built with other settings ({recorded}); pass force")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _build(config, key, target, log)
    finally:
        torch.set_num_threads(previous_threads)


def _build(config: TinyConfig, key: str, target: Path, log: Callable[[str], None]) -> Path:
    import torch
    from tokenizers import Tokenizer

    from pte_rl.rollout.env import load_environment

    started = time.perf_counter()
    cpu_started = time.process_time()
    env_kwargs = {k: v for k, v in config.env_options.items()
                  if k in _parameters(environment_module(config.env).load_environment)}
    schemas = load_environment(config.env, **env_kwargs).tool_schemas()
    # A template-only tokenizer renders text before the real one exists.
    renderer = _template_tokenizer(Tokenizer.from_str(_EMPTY_BPE))
    corpus = scripted_texts(config, config.tokenizer_examples, config.seed + 1, schemas, renderer)
    tokenizer = train_tokenizer([c["text"] for c in corpus], config.vocab_size)
    examples = scripted_texts(config, config.sft_examples, config.seed, schemas, tokenizer,
                              spans=config.loss != "all")
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
            "settings_hash": key, "build_version": BUILD_VERSION, "config": asdict(config),
            "parameters": parameters, "vocab_size": len(tokenizer), "sft_loss": losses,
            "copy_drill_accuracy": copy_accuracy,
            "build_seconds": round(time.perf_counter() - started, 1),
            "build_cpu_seconds": round(time.process_time() - cpu_started, 1),
            "torch_threads": torch.get_num_threads(),
        }
        (staging / BUILD_INFO).write_text(json.dumps(info, indent=2, default=str))
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log(f"tiny policy: built {target} in {info['build_seconds']} s (final loss {losses[-1]:.4f})")
    return target


_EMPTY_BPE = json.dumps({
    "version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
    "pre_tokenizer": None, "post_processor": None, "decoder": None,
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
              "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "vocab": {}, "merges": []},
})
