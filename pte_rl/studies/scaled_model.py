"""A real architecture, scaled down to run on a CPU: random weights, the model's own shape ratios.

    scaled_down("tests/data/models/qwen2.5-1.5b-instruct", "runs/scaled/qwen2.5-1.5b-l2")

reads a model directory's ``config.json``, ``generation_config.json`` and tokenizer, and writes a
model of the same architecture (``model_type``, ``architectures``, activation, RMSNorm epsilon, RoPE,
tied embeddings, attention bias, sliding-window settings, dtype) with fewer layers and a narrower
width, randomly initialised from a seed. What is kept and what is scaled:

    kept      the GQA ratio ``num_attention_heads / num_key_value_heads``; the ratio of the query
              width (``heads * head_dim``) to ``hidden_size``; ``intermediate_size / hidden_size``
              (rounded to an integer); the share of layers below ``max_window_layers``
    scaled    ``num_hidden_layers``; ``hidden_size`` (default: 16 per attention head);
              ``num_key_value_heads`` (default 1, so the heads are the GQA ratio)
    replaced  ``vocab_size`` by the tokenizer's length; special-token ids the tokenizer does not
              index (a stand-in tokenizer with a small vocabulary) re-based onto its special tokens

Such a model rehearses a GPU recipe end to end (shapes, chat template, tool parsing, the trainer's
code paths) at CPU speed. It prices nothing: a run that prices tokens must derive gamma from the
*unscaled* config, which :func:`scaled_down` records beside the weights (``scaled_down.json``).
Its outputs are noise; a rehearsal's accuracy and tool calls say nothing about the real model.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PROVENANCE = "scaled_down.json"
DEFAULT_HEAD_DIM = 16
SPECIAL_ID_KEYS = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")


@dataclass(frozen=True)
class ScaledShape:
    """The scaled model's dimensions."""

    num_hidden_layers: int
    hidden_size: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    intermediate_size: int
    max_window_layers: int | None


def scaled_shape(config: dict[str, Any], *, num_layers: int = 2, hidden_size: int | None = None,
                 num_key_value_heads: int = 1) -> ScaledShape:
    """The dimensions of ``config`` (a config.json mapping) scaled down, its ratios kept.

    Qwen2.5-1.5B (28 layers, hidden 1536, 12 heads over 2 KV heads, head_dim 128, intermediate 8960):
    GQA ratio 6, so 6 heads over 1 KV head, 16 wide: hidden 96, intermediate 96 * 8960 / 1536 = 560.

    >>> qwen = {"num_hidden_layers": 28, "hidden_size": 1536, "num_attention_heads": 12,
    ...         "num_key_value_heads": 2, "intermediate_size": 8960, "max_window_layers": 21}
    >>> scaled_shape(qwen)
    ScaledShape(num_hidden_layers=2, hidden_size=96, num_attention_heads=6, num_key_value_heads=1, head_dim=16, \
intermediate_size=560, max_window_layers=2)
    >>> scaled_shape(qwen, num_layers=4, hidden_size=384, num_key_value_heads=2).head_dim
    32
    """
    heads, kv_heads = int(config["num_attention_heads"]), int(config.get("num_key_value_heads") or 0)
    kv_heads = kv_heads or heads
    if heads % kv_heads:
        raise ValueError(f"config: num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}")
    if num_layers < 1 or num_key_value_heads < 1:
        raise ValueError(f"num_layers and num_key_value_heads: expected >= 1, got {num_layers}, {num_key_value_heads}")
    hidden, layers = int(config["hidden_size"]), int(config["num_hidden_layers"])
    new_heads = num_key_value_heads * heads // kv_heads
    query_ratio = int(config.get("head_dim") or hidden // heads) * heads / hidden  # query width / hidden
    new_hidden = hidden_size if hidden_size is not None else round(new_heads * DEFAULT_HEAD_DIM / query_ratio)
    head_dim = new_hidden * query_ratio / new_heads
    if head_dim != int(head_dim) or int(head_dim) % 2:
        raise ValueError(f"hidden_size: {new_hidden} over {new_heads} heads (GQA ratio {heads // kv_heads} x "
                         f"{num_key_value_heads} KV heads) gives head_dim {head_dim:g}; expected an even integer")
    window = config.get("max_window_layers")
    return ScaledShape(
        num_hidden_layers=num_layers, hidden_size=new_hidden, num_attention_heads=new_heads,
        num_key_value_heads=num_key_value_heads, head_dim=int(head_dim),
        intermediate_size=round(new_hidden * int(config["intermediate_size"]) / hidden),
        max_window_layers=None if window is None else round(int(window) * num_layers / layers),
    )


def scaled_config(config: dict[str, Any], shape: ScaledShape, vocab_size: int) -> dict[str, Any]:
    """A copy of ``config`` with ``shape``'s dimensions and ``vocab_size``; everything else as it was."""
    layers = int(config["num_hidden_layers"])
    scaled = dict(config)
    for key, value in asdict(shape).items():
        if key != "head_dim" and (value is not None or key in config):
            scaled[key] = value
    if "head_dim" in config:  # an explicit head_dim (Qwen3); otherwise it is hidden_size / heads
        scaled["head_dim"] = shape.head_dim
    if isinstance(config.get("layer_types"), list):  # evenly spaced picks keep the mix of layer kinds
        scaled["layer_types"] = [config["layer_types"][i * layers // shape.num_hidden_layers]
                                 for i in range(shape.num_hidden_layers)]
    scaled["vocab_size"] = vocab_size
    return scaled


def special_token_ids(configs: list[dict[str, Any]], tokenizer: Any) -> dict[int, int]:
    """{config id: tokenizer id} for the special-token ids of ``configs`` the tokenizer does not index.

    A stand-in tokenizer with a small vocabulary numbers the model's special tokens in the same order,
    from its first special token (Qwen: ``<|endoftext|>`` 151643, ``<|im_start|>`` 151644,
    ``<|im_end|>`` 151645 ... become 0, 1, 2 ...). The lowest special id of the configs is re-based
    onto the tokenizer's first special token and the others keep their distance; the result must
    give the config's ``eos_token_id`` the tokenizer's eos token, or it is an error.
    """
    ids = {i for config in configs for key in SPECIAL_ID_KEYS for i in _as_ids(config.get(key))}
    if all(i < len(tokenizer) for i in ids):
        return {}
    specials = [i for i, token in tokenizer.added_tokens_decoder.items() if token.special]
    if not specials:
        raise ValueError(f"special-token ids {sorted(ids)} lie beyond the tokenizer ({len(tokenizer)} tokens), "
                         "which has no special tokens to re-base them onto")
    offset = min(ids) - min(specials)
    mapping = {i: i - offset for i in ids if i >= len(tokenizer)}
    eos = _as_ids(configs[0].get("eos_token_id"))
    if tokenizer.eos_token_id is not None and eos and mapping.get(eos[0], eos[0]) != tokenizer.eos_token_id:
        raise ValueError(f"config.json: field 'eos_token_id': {eos[0]} re-based is {mapping.get(eos[0], eos[0])}, "
                         f"expected the tokenizer's eos {tokenizer.eos_token!r} ({tokenizer.eos_token_id})")
    if any(not 0 <= new < len(tokenizer) for new in mapping.values()):
        raise ValueError(f"special-token ids {sorted(mapping)} cannot be re-based into the tokenizer's "
                         f"{len(tokenizer)} tokens")
    return mapping


def _as_ids(value: Any) -> list[int]:
    if value is None:
        return []
    return [int(i) for i in value] if isinstance(value, list) else [int(value)]


def _remap(config: dict[str, Any], mapping: dict[int, int]) -> dict[str, Any]:
    out = dict(config)
    for key in SPECIAL_ID_KEYS:
        value = config.get(key)
        if isinstance(value, list):
            out[key] = [mapping.get(int(i), int(i)) for i in value]
        elif value is not None:
            out[key] = mapping.get(int(value), int(value))
    return out


def scaled_down(model_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, num_layers: int = 2,
                hidden_size: int | None = None, num_key_value_heads: int = 1, seed: int = 0) -> Path:
    """Write a randomly initialised, scaled-down copy of ``model_dir``'s architecture to ``out_dir``.

    Saves the model (in the source config's dtype), the tokenizer, ``generation_config.json`` and
    ``scaled_down.json`` (the source, its config, the shape, the seed and any re-based token ids)
    into a temporary directory beside ``out_dir``, then renames it into place; an existing
    ``out_dir`` is replaced. Returns ``out_dir``.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    source, target = Path(model_dir), Path(out_dir)
    config_path = source / "config.json"
    try:
        original = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{config_path}: expected a model's config.json ({exc})") from None
    generation_path = source / "generation_config.json"
    generation = json.loads(generation_path.read_text(encoding="utf-8")) if generation_path.is_file() else {}
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    shape = scaled_shape(original, num_layers=num_layers, hidden_size=hidden_size,
                         num_key_value_heads=num_key_value_heads)
    mapping = special_token_ids([original, generation], tokenizer)
    config_dict = _remap(scaled_config(original, shape, len(tokenizer)), mapping)
    config = AutoConfig.for_model(**config_dict)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.to(getattr(torch, str(getattr(config, "dtype", None) or "float32").removeprefix("torch.")))
    if generation:
        model.generation_config = GenerationConfig.from_dict(_remap(generation, mapping))
    provenance = {"source": str(source), "source_config": original, "shape": asdict(shape), "seed": seed,
                  "rebased_token_ids": {str(k): v for k, v in sorted(mapping.items())},
                  "parameters": sum(p.numel() for p in model.parameters())}
    return _save_atomically(target, model, tokenizer, provenance)


def _save_atomically(target: Path, model: Any, tokenizer: Any, provenance: dict[str, Any]) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / PROVENANCE).write_text(json.dumps(provenance, indent=2), encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
