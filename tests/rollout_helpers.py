"""Test helpers for the rollout loop: a lossless byte-level tokenizer, a tiny Qwen2, scripted engines.

The tokenizer maps every UTF-8 byte to one token (no merges), and the chat/tool markers to one token
each, so a text's token count is known without the tokenizer (:func:`count_tokens`): an independent
check on every count the loop records. It carries TRL's Qwen2.5 chat template.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
MARKERS = ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>")
_MARKER_RE = re.compile("|".join(re.escape(t) for t in SPECIAL + MARKERS))


def count_tokens(text: str) -> int:
    """Tokens of ``text`` under :func:`build_byte_tokenizer`: one per marker, one per UTF-8 byte otherwise."""
    return len(_MARKER_RE.findall(text)) + sum(len(part.encode()) for part in _MARKER_RE.split(text))


def qwen2_5_template() -> str:
    """TRL's ``qwen2_5_chat_template``, read from its file (importing trl takes seconds)."""
    import importlib.util

    origin = importlib.util.find_spec("trl").origin
    return (Path(origin).parent / "chat_templates" / "qwen2_5.jinja").read_text(encoding="utf-8")


def build_byte_tokenizer(directory: Path | None = None) -> Any:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    backend = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in SPECIAL])
    backend.add_tokens([AddedToken(t, normalized=False, special=False) for t in MARKERS])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tokenizer.chat_template = qwen2_5_template()
    if directory is not None:
        tokenizer.save_pretrained(str(directory))
    return tokenizer


def build_tiny_model(directory: Path, tokenizer: Any, seed: int = 0) -> Path:
    """A random Qwen2ForCausalLM (hidden 32, 2 layers) and the tokenizer, saved to ``directory``."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


def encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


@dataclass
class ScriptedBackend:
    """A generation backend that answers each prompt with the next scripted text of its episode.

    ``scripts`` maps a marker found in the prompt's user message (the question) to the texts of that
    episode's turns, in order; every text gets the EOS token appended (cut at ``max_tokens``).
    """

    tokenizer: Any
    scripts: dict[str, list[str]]
    max_context: int | None = None
    fed: list[list[int]] = field(default_factory=list)
    emitted: list[list[int]] = field(default_factory=list)
    turn_of: dict[str, int] = field(default_factory=dict)

    @property
    def eos_ids(self) -> set[int]:
        return {self.tokenizer.eos_token_id}

    def any_active(self, local_active: bool) -> bool:
        return local_active

    def _key(self, prompt: list[int]) -> str:
        text = self.tokenizer.decode(prompt)
        return next(k for k in self.scripts if k in text)

    def generate(self, prompts, max_tokens, sampling):
        from pte_rl.rollout.backends import Generation

        out = []
        for prompt, limit in zip(prompts, max_tokens, strict=True):
            key = self._key(prompt)
            turn = self.turn_of.get(key, 0)
            self.turn_of[key] = turn + 1
            ids = encode(self.tokenizer, self.scripts[key][turn]) + [self.tokenizer.eos_token_id]
            finished = len(ids) <= limit
            ids = ids[:limit]
            self.fed.append(list(prompt))
            self.emitted.append(ids)
            out.append(Generation(ids, [-0.25] * len(ids), finished, batch_size=len(prompts)))
        return out


class ForceScript:
    """A ``LogitsProcessor`` that makes a real model emit scripted turns (so its logits are real).

    Rows are matched to scripts by a marker in their text; the turn is the number of ``<|im_end|>``
    tokens after the prompt, halved (each turn adds the model's EOS and the tool message's).
    """

    def __init__(self, tokenizer: Any, scripts: dict[str, list[str]]):
        self.tokenizer = tokenizer
        self.scripts = {k: [encode(tokenizer, t) + [tokenizer.eos_token_id] for t in v] for k, v in scripts.items()}
        self.width: int | None = None
        self.start_ids = None
        self.rows: list[tuple[list[int], str, int]] = []

    def __call__(self, input_ids, scores):
        import torch

        same_call = (
            self.start_ids is not None and input_ids.shape[0] == self.start_ids.shape[0]
            and input_ids.shape[1] > self.width and bool((input_ids[:, : self.width] == self.start_ids).all())
        )
        if not same_call:
            self._start(input_ids)
        position = input_ids.shape[1] - self.width
        forced = torch.full_like(scores, float("-inf"))
        for row, (_, key, turn) in enumerate(self.rows):
            script = self.scripts[key][turn]
            target = script[position] if position < len(script) else self.tokenizer.eos_token_id
            forced[row, target] = 0.0
        return forced

    def _start(self, input_ids) -> None:
        self.width = input_ids.shape[1]
        self.start_ids = input_ids.clone()
        self.rows = []
        eos, pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        for row in input_ids.tolist():
            ids = [t for t in row if t != pad]
            text = self.tokenizer.decode(ids)
            key = next(k for k in self.scripts if k in text)
            prompt_end = text.index("<|im_start|>assistant")
            self.rows.append((ids, key, text[prompt_end:].count(self.tokenizer.decode([eos])) // 2))


def one_torch_thread():
    """Generator for a fixture: torch on one thread (two threads on two busy cores run ~15x slower)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
