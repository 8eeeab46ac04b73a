"""The warm start's data: the environment's scripted chats, rendered to text, and encoded with a loss mask."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from pte_rl.pricing.trajectory import renderable
from pte_rl.tiny.config import TinyConfig


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


def harness_skins(config: TinyConfig, env: Any) -> list[Any]:
    """The re-skins of ``env`` by ``config.harnesses`` (none when it is empty)."""
    if not config.harnesses:
        return []
    from pte_rl.rollout.harness import TRAINING_FAMILY, make_skin, resolve_variants

    names = [n for h in config.harnesses for n in (TRAINING_FAMILY if h == "training_family" else [h])]
    return [make_skin(harness, env.tools, env.check_answer) for harness in resolve_variants(names)]


def scripted_texts(config: TinyConfig, n: int, seed: int, tool_schemas: list[dict], tokenizer: Any,
                   spans: bool = False, skins: list[Any] | None = None) -> list[dict]:
    """Scripted chats rendered to text; with ``spans``, also the character spans of their assistant
    turns (``assistant_spans``) and of the contents of their user and tool messages (``input_spans``).
    With ``skins`` (:func:`harness_skins`), each chat is shown in one drawn at random (seeded by ``seed``)."""
    import random

    module = environment_module(config.env)
    kwargs = {k: v for k, v in config.env_options.items() if k in parameter_names(module.scripted_trajectories)}
    records = module.scripted_trajectories(seed, n, mix=config.mix, **kwargs)
    draw = random.Random(f"harness/{seed}")
    out = []
    for record in records:
        messages = renderable(record["messages"])
        schemas: list[dict] | None = tool_schemas
        harness_name = None
        if skins:
            skin = skins[draw.randrange(len(skins))]
            messages = renderable(skin.chat(messages))
            schemas = skin.schemas if skin.harness.template_tools else None
            harness_name = skin.harness.name
        text = tokenizer.apply_chat_template(messages, tools=schemas, tokenize=False)
        assistant_spans, input_spans = [], []
        for index, message in enumerate(messages):
            if not spans or message["role"] == "system":
                continue
            if message["role"] == "assistant":
                before = tokenizer.apply_chat_template(messages[:index], tools=schemas, tokenize=False,
                                                       add_generation_prompt=True)
                upto = tokenizer.apply_chat_template(messages[: index + 1], tools=schemas, tokenize=False)
                assistant_spans.append((len(before), len(upto)))
                continue
            # A user or tool message: its content, found after the text of the messages before it.
            before = tokenizer.apply_chat_template(messages[:index], tools=schemas, tokenize=False) \
                if index else ""
            content = message.get("content") or ""
            start = text.find(content, len(before)) if content else -1
            if start >= 0:
                input_spans.append((start, start + len(content)))
        out.append({"text": text, "assistant_spans": assistant_spans, "input_spans": input_spans,
                    "behaviour": record.get("behaviour"),
                    "harness": harness_name})
    return out


def parameter_names(fn: Callable[..., Any]) -> set[str]:
    """The names of ``fn``'s parameters (to pass an environment only the options it takes)."""
    return set(inspect.signature(fn).parameters)


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
