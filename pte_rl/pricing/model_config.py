"""Read what gamma needs from a Hugging Face model config, and estimate active parameters from it.

A config is a dict, a ``config.json`` path, or a model directory holding one. Multimodal configs
with a ``text_config`` are read through it. Missing or malformed fields raise :class:`ConfigError`
(a :class:`ValueError`) naming the field and what was expected.

Active parameters (N_active, the parameters one token's forward pass multiplies) are estimated as

    N_active = sum over layers (attention + MLP or active experts + router) + output head

with the MLP gated (gate, up, down: ``3 * hidden * intermediate``), an MoE layer counting its
``top_k`` routed experts plus shared experts and the router, and the input embedding left out: it is
a table lookup with no FLOPs (the output head is a matmul and counts once, tied or not). Norms and
MLP biases are left out (well under 0.1%). Multi-token-prediction layers are left out (not used by
plain decoding). The estimate lands within 10% of the published active counts of Llama-3.1,
Qwen2/2.5/3, Qwen3-MoE, Mixtral, DeepSeek-V3, GPT-OSS and GLM-4.5 (tests/test_gamma.py).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeAlias

from pte_rl.pricing.jsonl import FormatError

# Model types whose estimates are checked against published counts in the tests.
CHECKED_FAMILIES = (
    "llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen2_moe", "qwen3_moe",
    "deepseek_v2", "deepseek_v3", "gpt_oss", "glm4_moe",
)
_DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "half": 2, "float32": 4, "float": 4,
                "float8_e4m3fn": 1, "float8_e5m2": 1, "fp8": 1}


Config: TypeAlias = dict[str, Any]
ConfigSource: TypeAlias = Config | str | os.PathLike[str]
"""A config dict, a ``config.json`` path, or a model directory holding one."""


class ConfigError(FormatError):
    """A model config without a field gamma needs, or with a malformed one."""

    def __init__(self, source: str | None, field: str, expected: str):
        super().__init__(source or "model config", None, field, expected)


def load_config(config: ConfigSource, source: str | None = None) -> tuple[Config, str]:
    """A config dict and a label for error messages, from a dict, a config.json path or a model dir."""
    if isinstance(config, dict):
        data, source = config, source or "model config"
    else:
        path = Path(config).expanduser()
        if path.is_dir():
            path = path / "config.json"
        if not path.is_file():
            raise ConfigError(str(path), "<file>", "expected a config.json file or a model directory holding one")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{exc.lineno}", "<file>", f"expected valid JSON ({exc.msg})") from None
        source = str(path)
        if not isinstance(data, dict):
            raise ConfigError(source, "<file>", "expected a JSON object")
    if "num_hidden_layers" not in data and isinstance(data.get("text_config"), dict):
        text = dict(data["text_config"])
        text.setdefault("model_type", data.get("model_type"))
        return text, f"{source} (text_config)"
    return data, source


def _int(cfg: Config, field: str, source: str, what: str, aliases: tuple[str, ...] = ()) -> int:
    for name in (field, *aliases):
        value = cfg.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(source, name, f"expected a positive integer ({what}), got {value!r}")
            return value
    raise ConfigError(source, field, f"missing; expected a positive integer ({what})")


def _opt_int(cfg: Config, field: str, source: str, what: str, minimum: int = 1) -> int | None:
    value = cfg.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(source, field, f"expected an integer >= {minimum} ({what}) or null, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class ModelShape:
    """The attention geometry gamma needs.

    ``layer_windows[i]`` is layer i's sliding window in tokens, ``None`` for full attention.
    ``kv_elements_per_layer`` is what one cached token holds per layer: ``2 * Hkv * head_dim``
    (K and V), or ``kv_lora_rank + qk_rope_head_dim`` for multi-head latent attention (one latent
    serves K and V).
    """

    model_type: str | None
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int | None  # None for MLA
    attention: str  # "mha" | "gqa" | "mla"
    kv_lora_rank: int | None
    qk_rope_head_dim: int | None
    layer_windows: tuple[int | None, ...]
    dtype_bytes: int | None
    source: str

    @property
    def head_ratio(self) -> float:
        """Hkv / Hq."""
        return self.num_key_value_heads / self.num_attention_heads

    @property
    def head_size(self) -> int:
        """``head_dim``, which every shape but MLA has."""
        return _present(self.head_dim, "head_dim", self.attention)

    @property
    def latent_dims(self) -> tuple[int, int]:
        """``(kv_lora_rank, qk_rope_head_dim)``, which only an MLA shape has."""
        rank = _present(self.kv_lora_rank, "kv_lora_rank", self.attention)
        return rank, _present(self.qk_rope_head_dim, "qk_rope_head_dim", self.attention)

    @property
    def kv_elements_per_layer(self) -> int:
        if self.attention == "mla":
            return sum(self.latent_dims)
        return 2 * self.num_key_value_heads * self.head_size

    @property
    def sliding_layers(self) -> int:
        return sum(w is not None for w in self.layer_windows)


def _present(value: int | None, field: str, attention: str) -> int:
    """A field that :func:`_shape` sets for this attention kind (asking for another is a bug, not bad input)."""
    if value is None:
        raise AttributeError(f"{field}: not part of a model shape with {attention!r} attention")
    return value


def model_shape(config: ConfigSource, *, source: str | None = None) -> ModelShape:
    """Read layers, width, heads, head size, MLA latent and sliding windows from a config."""
    return _shape(*load_config(config, source))


def _shape(cfg: Config, source: str) -> ModelShape:
    layers = _int(cfg, "num_hidden_layers", source, "the number of transformer layers", ("n_layer", "num_layers"))
    hidden = _int(cfg, "hidden_size", source, "the model width d_model", ("n_embd", "d_model"))
    heads = _int(cfg, "num_attention_heads", source, "the number of query heads Hq", ("n_head",))
    kv_heads = _opt_int(cfg, "num_key_value_heads", source, "the number of KV heads Hkv") or heads
    if kv_heads > heads or heads % kv_heads:
        raise ConfigError(source, "num_key_value_heads",
                          f"expected a divisor of num_attention_heads ({heads}), got {kv_heads}")
    kv_lora_rank = _opt_int(cfg, "kv_lora_rank", source, "the MLA latent width")
    rope_dim = head_dim = None
    if kv_lora_rank is not None:  # MLA caches a latent, not per-head K and V: head_dim plays no part
        rope_dim = _int(cfg, "qk_rope_head_dim", source, "the MLA decoupled RoPE key width, cached beside the latent")
        attention = "mla"
    else:
        attention = "mha" if kv_heads == heads else "gqa"
        head_dim = _opt_int(cfg, "head_dim", source, "the size of one attention head")
        if head_dim is None:
            if hidden % heads:
                raise ConfigError(source, "head_dim",
                                  f"missing, and hidden_size {hidden} is not divisible by {heads} heads")
            head_dim = hidden // heads
    dtype = cfg.get("torch_dtype") or cfg.get("dtype")
    dtype_bytes = _DTYPE_BYTES.get(str(dtype).removeprefix("torch.")) if dtype is not None else None
    return ModelShape(
        model_type=cfg.get("model_type"), num_layers=layers, hidden_size=hidden, num_attention_heads=heads,
        num_key_value_heads=kv_heads, head_dim=head_dim, attention=attention, kv_lora_rank=kv_lora_rank,
        qk_rope_head_dim=rope_dim, layer_windows=_layer_windows(cfg, layers, source), dtype_bytes=dtype_bytes,
        source=source,
    )


def _layer_windows(cfg: Config, layers: int, source: str) -> tuple[int | None, ...]:
    """Which layers attend within a sliding window, following transformers' config conventions."""
    layer_types = cfg.get("layer_types")
    use_flag = cfg.get("use_sliding_window")
    if layer_types is not None:
        if not isinstance(layer_types, list) or len(layer_types) != layers:
            raise ConfigError(source, "layer_types", f"expected a list of {layers} attention types")
        sliding = [t == "sliding_attention" for t in layer_types]
    elif "use_sliding_window" in cfg:  # Qwen2 family: window on layers >= max_window_layers when enabled
        first = _opt_int(cfg, "max_window_layers", source, "the first sliding-window layer", minimum=0) or 0
        sliding = [bool(use_flag) and i >= first for i in range(layers)]
    elif cfg.get("sliding_window_pattern") is not None:  # Gemma-3 style: every n-th layer is global
        pattern = _int(cfg, "sliding_window_pattern", source, "every n-th layer is global")
        sliding = [(i + 1) % pattern != 0 for i in range(layers)]
    else:  # Mistral style: one window for every layer, or none
        sliding = [cfg.get("sliding_window") is not None] * layers
    if not any(sliding):
        return (None,) * layers
    window = _int(cfg, "sliding_window", source, "the sliding-window size in tokens")
    return tuple(window if s else None for s in sliding)


@dataclass(frozen=True, slots=True)
class ActiveParams:
    """An estimate of N_active and its parts (parameter counts)."""

    total: int
    attention: int
    mlp: int
    router: int
    lm_head: int
    dense_layers: int
    moe_layers: int
    num_experts: int | None
    experts_per_token: int | None
    model_type: str | None
    checked_family: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _attention_params(cfg: Config, shape: ModelShape, source: str) -> int:
    """Per-layer attention weights (q, k, v, o; MLA: the down/up projections)."""
    d, heads = shape.hidden_size, shape.num_attention_heads
    if shape.attention == "mla":
        nope = _int(cfg, "qk_nope_head_dim", source, "the MLA non-RoPE query/key head size")
        v_dim = _int(cfg, "v_head_dim", source, "the MLA value head size")
        rank, rope = shape.latent_dims
        q_rank = _opt_int(cfg, "q_lora_rank", source, "the MLA query latent width")
        q = d * heads * (nope + rope) if q_rank is None else d * q_rank + q_rank * heads * (nope + rope)
        return q + d * (rank + rope) + rank * heads * (nope + v_dim) + heads * v_dim * d
    hd, kv = shape.head_size, shape.num_key_value_heads
    weights = d * heads * hd + 2 * d * kv * hd + heads * hd * d
    has_bias = cfg.get("attention_bias") or str(shape.model_type).startswith("qwen2")
    return weights + ((heads + 2 * kv) * hd if has_bias else 0)


def _first(cfg: Config, names: tuple[str, ...]) -> tuple[str, Any]:
    for name in names:
        if cfg.get(name) is not None:
            return name, cfg[name]
    return names[0], None


def estimate_active_params(config: ConfigSource, *, source: str | None = None) -> ActiveParams:
    """Estimate N_active from a config (see the module docstring for what is counted).

    Dense: ``L * (attention + 3 * d * intermediate_size) + vocab * d``. MoE layers replace the MLP by
    ``(top_k * expert_size + shared_size) * 3 * d + d * num_experts`` (router). Which layers are MoE
    follows each family's fields: ``first_k_dense_replace`` and ``moe_layer_freq`` (DeepSeek,
    GLM-4.5), ``mlp_only_layers`` and ``decoder_sparse_step`` (Qwen MoE).
    """
    cfg, source = load_config(config, source)
    shape = _shape(cfg, source)
    d, layers = shape.hidden_size, shape.num_layers
    vocab = _int(cfg, "vocab_size", source, "the vocabulary size, for the output head")
    attention = _attention_params(cfg, shape, source) * layers

    experts_field, num_experts = _first(cfg, ("n_routed_experts", "num_local_experts", "num_experts"))
    if num_experts == 0:  # some dense configs carry an expert count of 0
        num_experts = None
    if num_experts is not None:
        num_experts = _int(cfg, experts_field, source, "the number of routed experts")
    moe_layer_ids: list[int] = []
    mlp = router = 0
    top_k = None
    if num_experts:
        k_field, _ = _first(cfg, ("num_experts_per_tok", "experts_per_token", "moe_topk"))
        top_k = _int(cfg, k_field, source, "the routed experts each token uses")
        expert_field = "moe_intermediate_size" if cfg.get("moe_intermediate_size") is not None else "intermediate_size"
        expert_size = _int(cfg, expert_field, source, "the hidden size of one expert")
        shared_size = (_opt_int(cfg, "n_shared_experts", source, "shared experts", minimum=0) or 0) * expert_size
        shared_size += _opt_int(cfg, "shared_expert_intermediate_size", source, "the shared expert size", 0) or 0
        first_dense = _opt_int(cfg, "first_k_dense_replace", source, "leading dense layers", minimum=0) or 0
        freq = _opt_int(cfg, "moe_layer_freq", source, "MoE layer frequency") or 1
        step = _opt_int(cfg, "decoder_sparse_step", source, "MoE layer step") or 1
        mlp_only = set(cfg.get("mlp_only_layers") or [])
        moe_layer_ids = [
            i for i in range(layers)
            if i >= first_dense and i % freq == 0 and (i + 1) % step == 0 and i not in mlp_only
        ]
        per_moe_layer = 3 * d * (top_k * expert_size + shared_size)
        if cfg.get("shared_expert_intermediate_size"):
            per_moe_layer += d  # Qwen2-MoE's sigmoid gate on the shared expert
        mlp += per_moe_layer * len(moe_layer_ids)
        router = d * num_experts * len(moe_layer_ids)
    dense_layers = layers - len(moe_layer_ids)
    if dense_layers:
        inter = _int(cfg, "intermediate_size", source, "the MLP hidden size of dense layers")
        mlp += 3 * d * inter * dense_layers
    lm_head = vocab * d
    return ActiveParams(
        total=attention + mlp + router + lm_head, attention=attention, mlp=mlp, router=router, lm_head=lm_head,
        dense_layers=dense_layers, moe_layers=len(moe_layer_ids), num_experts=num_experts or None,
        experts_per_token=top_k, model_type=shape.model_type,
        checked_family=shape.model_type in CHECKED_FAMILIES,
    )
