"""Timed generation turns on an inference engine, the KV cache dropped between turns (the paper's setting).

One *turn* at concurrency B is B sequences generated together as a batch: a fresh forward over the
whole context (prefill, ``context_tokens`` random token ids each), then greedy decoding of exactly
``decode_tokens`` tokens with the KV cache (no EOS stop, no minimum-length tricks that change the
work). Nothing is cached across turns, which is the paper's ``evict`` policy. The time returned is the
batch's; callers divide by B to get the time per sequence.

Engines:

* :class:`TransformersEngine` (CPU or CUDA): a manual prefill + decode loop over a
  ``DynamicCache`` — the work of ``model.generate(max_new_tokens=D, min_new_tokens=D, do_sample=False)``
  without its per-step logits processors. The first token comes from the prefill's logits, then
  ``D - 1`` single-token steps, as in every serving engine. The B contexts are prefilled as whole
  sequences, as many per forward as a token budget allows (``prefill_tokens``, vLLM's
  ``max_num_batched_tokens``), so that a large batch keeps a serving engine's working set; their
  caches are then joined (untimed: a paged KV cache needs no copy) and decoded as one batch.
* :class:`VLLMEngine`: ``vllm.LLM.generate`` with ``SamplingParams(max_tokens=D, min_tokens=D,
  ignore_eos=True, temperature=0)`` and prefix caching disabled, so each turn prefills its whole
  context again. Imported lazily (extra ``pte-rl[vllm]``); only the total time of a turn is known.

Robust timing (CPU default): every prefill forward and decode step is timed and a turn's phase time is
their sum with each step capped at twice the phase's median step (:func:`clipped_sum`). The steps of
one turn cost nearly the same, so the cap changes nothing on a quiet machine; on a shared one it
removes the steps during which another job held the core (they cost 5-50x more).

Clocks: on a CPU the default clock is the process CPU time with one intra-op thread. On a machine
shared with other jobs, wall-clock time measures the other tenants too; CPU time of a single thread
measures the work, and equals wall-clock time on an idle machine. ``clock="wall"`` is available (and
is what CUDA uses, with a synchronize before each reading).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

CLOCKS = ("auto", "cpu", "wall")
SPIKE_FACTOR = 2.0


@dataclass(frozen=True, slots=True)
class TurnTiming:
    """Measured time of one batched turn (all B sequences together), in seconds.

    ``prefill_s`` is ``None`` where the engine does not expose it (vLLM): then ``decode_s`` is
    ``None`` too and only ``total_s`` is known. ``wall_s`` is the wall-clock time of the same turn.
    """

    total_s: float
    prefill_s: float | None
    decode_s: float | None
    wall_s: float


class Engine(Protocol):
    """What calibration and the latency study need from an inference engine."""

    name: str
    device: str
    clock: str
    vocab_size: int

    def run_turn(
        self, batch_size: int, context_tokens: int, decode_tokens: int, rng: np.random.Generator
    ) -> TurnTiming:
        """Prefill ``batch_size`` random contexts of ``context_tokens`` ids, decode ``decode_tokens`` each."""
        ...


def _check_shape(batch_size: int, context_tokens: int, decode_tokens: int, max_positions: int | None) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
    if context_tokens < 1:
        raise ValueError(f"context_tokens: expected >= 1, got {context_tokens}")
    if decode_tokens < 1:
        raise ValueError(f"decode_tokens: expected >= 1, got {decode_tokens}")
    if max_positions is not None and context_tokens + decode_tokens > max_positions:
        raise ValueError(
            f"context_tokens + decode_tokens = {context_tokens + decode_tokens} exceeds the model's "
            f"max_position_embeddings ({max_positions})"
        )


def clipped_sum(pieces: Sequence[float], factor: float = SPIKE_FACTOR) -> float:
    """Sum of per-step times with each step capped at ``factor`` x the median step.

    Steps of one turn differ by little (a decode step's cost grows with the context by less than 2x
    over a turn), while a step that another job on the machine interrupted costs many times more; the
    cap repairs those. Fewer than 3 steps are summed as they are.

    >>> clipped_sum([1.0, 1.1, 0.9, 30.0])   # the 30 becomes 2 x median (1.05)
    5.1
    """
    if len(pieces) < 3:
        return float(sum(pieces))
    cap = factor * float(np.median(pieces))
    return float(round(sum(min(p, cap) for p in pieces), 12))


def _merge(caches: list, config: Any) -> Any:
    """One ``DynamicCache`` holding the sequences of several (concatenated along the batch)."""
    if len(caches) == 1:
        return caches[0]
    from transformers import DynamicCache

    layers = range(len(caches[0].layers))
    data = [(_cat([c.layers[i].keys for c in caches]), _cat([c.layers[i].values for c in caches])) for i in layers]
    return DynamicCache(ddp_cache_data=data, config=config)


def _cat(tensors: list) -> Any:
    import torch

    return torch.cat(tensors, dim=0)


class TransformersEngine:
    """Greedy generation with Hugging Face transformers, timed per turn (see the module docstring).

    ``prefill_tokens``: the token budget of one prefill forward (vLLM's ``max_num_batched_tokens``):
    the B contexts are prefilled ``max(1, prefill_tokens // C)`` whole sequences per forward.
    ``robust``: time every prefill forward and decode step and sum them with :func:`clipped_sum`
    (default on a CPU, where other jobs interrupt; on a GPU the phases are timed whole).
    """

    name = "transformers"

    def __init__(
        self, model: str | Path | Any, *, device: str = "cpu", threads: int | None = 1, clock: str = "auto",
        prefill_tokens: int = 1024, robust: bool | None = None,
    ):
        import torch
        from transformers import AutoModelForCausalLM

        if clock not in CLOCKS:
            raise ValueError(f"clock: expected one of {CLOCKS}, got {clock!r}")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but torch sees no CUDA device")
        if prefill_tokens < 1:
            raise ValueError(f"prefill_tokens: expected >= 1, got {prefill_tokens}")
        self.torch = torch
        if isinstance(model, str | Path):
            path = Path(model)
            if not (path / "config.json").is_file():
                raise ValueError(f"{path}: not a model directory (no config.json)")
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32 if device == "cpu" else "auto")
        # transformers decorates PreTrainedModel.to with @wraps(nn.Module.to), which its types read as
        # the unbound Module.to: the device is taken for `self`.
        self.model = model.to(device).eval()  # type: ignore[arg-type]
        self.device = device
        self.threads = threads
        self.prefill_tokens = prefill_tokens
        self.robust = device == "cpu" if robust is None else robust
        self.clock = ("cpu" if device == "cpu" else "wall") if clock == "auto" else clock
        if self.clock == "cpu" and device != "cpu":
            raise ValueError("clock 'cpu' measures CPU work; use 'wall' on a GPU")
        config = self.model.config
        self.vocab_size = int(config.vocab_size)
        self.max_positions = getattr(config, "max_position_embeddings", None)
        params = inspect.signature(self.model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"

    def _now(self) -> tuple[float, float]:
        if self.device != "cpu":
            self.torch.cuda.synchronize()
        wall = time.perf_counter()
        return (time.process_time() if self.clock == "cpu" else wall), wall

    def _step(self, input_ids: Any, cache: Any) -> Any:
        out = self.model(input_ids=input_ids, use_cache=True, logits_to_keep=1, **{self._cache_arg: cache})
        return out.logits[:, -1].argmax(-1, keepdim=True)

    def run_turn(
        self, batch_size: int, context_tokens: int, decode_tokens: int, rng: np.random.Generator
    ) -> TurnTiming:
        torch = self.torch
        from transformers import DynamicCache

        _check_shape(batch_size, context_tokens, decode_tokens, self.max_positions)
        ids = torch.from_numpy(rng.integers(0, self.vocab_size, size=(batch_size, context_tokens), dtype=np.int64))
        ids = ids.to(self.device)
        group = max(1, self.prefill_tokens // context_tokens)  # whole sequences per prefill forward
        prefill, decode = [], []
        previous_threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                start, start_wall = self._now()
                before, caches, tokens = start, [], []
                for first in range(0, batch_size, group):
                    cache = DynamicCache(config=self.model.config)  # fresh: nothing kept from earlier turns
                    tokens.append(self._step(ids[first : first + group], cache))
                    caches.append(cache)
                    if self.robust:
                        after, _ = self._now()
                        prefill.append(after - before)
                        before = after
                middle, _ = self._now()
                # One batch for decoding. The copy is not timed: a paged KV cache needs none.
                cache, token = _merge(caches, self.model.config), torch.cat(tokens)
                resume, _ = self._now()
                before = resume
                for _ in range(decode_tokens - 1):
                    token = self._step(token, cache)
                    if self.robust:
                        after, _ = self._now()
                        decode.append(after - before)
                        before = after
                end, end_wall = self._now()
        finally:
            torch.set_num_threads(previous_threads)
        if self.robust:
            prefill_s, decode_s = clipped_sum(prefill), clipped_sum(decode)
        else:
            prefill_s, decode_s = middle - start, end - resume
        return TurnTiming(prefill_s + decode_s, prefill_s, decode_s, end_wall - start_wall)


class VLLMEngine:
    """Greedy generation with vLLM (``pip install 'pte-rl[vllm]'``), prefix caching off, timed per turn.

    ``llm`` and ``sampling_params`` may be given directly (an object with vLLM's ``generate`` and a
    ``SamplingParams``-like class) instead of a model directory; that is how the logic is tested
    without vLLM.
    """

    name = "vllm"
    clock = "wall"

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        llm: Any = None,
        sampling_params: Callable[..., Any] | None = None,
        vocab_size: int | None = None,
        device: str = "cuda",
        **llm_kwargs: Any,
    ):
        if llm is None:
            try:
                import vllm
            except ImportError as exc:
                raise ValueError("engine 'vllm' needs vLLM: pip install 'pte-rl[vllm]'") from exc
            if model is None:
                raise ValueError("VLLMEngine: give a model directory or an llm object")
            llm = vllm.LLM(model=str(model), enable_prefix_caching=False, **llm_kwargs)
            sampling_params = vllm.SamplingParams
        if sampling_params is None:
            raise ValueError("VLLMEngine: an llm object needs its sampling_params class")
        if vocab_size is None:
            vocab_size = int(llm.get_tokenizer().vocab_size)
        self.llm, self.sampling_params, self.vocab_size, self.device = llm, sampling_params, int(vocab_size), device
        self.max_positions = None

    def run_turn(
        self, batch_size: int, context_tokens: int, decode_tokens: int, rng: np.random.Generator
    ) -> TurnTiming:
        _check_shape(batch_size, context_tokens, decode_tokens, self.max_positions)
        ids = rng.integers(0, self.vocab_size, size=(batch_size, context_tokens))
        prompts = [{"prompt_token_ids": [int(t) for t in row]} for row in ids]
        params = self.sampling_params(
            max_tokens=decode_tokens, min_tokens=decode_tokens, ignore_eos=True, temperature=0.0
        )
        start = time.perf_counter()
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        elapsed = time.perf_counter() - start
        if len(outputs) != batch_size:
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {batch_size} prompts")
        for output in outputs:
            generated = len(output.outputs[0].token_ids)
            if generated != decode_tokens:
                raise RuntimeError(f"vLLM decoded {generated} tokens where {decode_tokens} were forced")
        return TurnTiming(elapsed, None, None, elapsed)


def make_engine(
    engine: str, model: str | Path, *, device: str = "cpu", threads: int | None = 1, clock: str = "auto",
    prefill_tokens: int = 1024,
) -> Engine:
    """The engine named ``engine`` (``transformers`` or ``vllm``) on ``model`` (a local directory)."""
    if engine == "transformers":
        return TransformersEngine(model, device=device, threads=threads, clock=clock, prefill_tokens=prefill_tokens)
    if engine == "vllm":
        if device != "cuda":
            raise ValueError("engine 'vllm' runs on --device cuda")
        return VLLMEngine(model, device=device)
    raise ValueError(f"engine: expected 'transformers' or 'vllm', got {engine!r}")


def warm_up(engine: Engine, batch_sizes: list[int], rng: np.random.Generator) -> None:
    """One small turn per batch size, so that allocations and kernel selection are not timed."""
    for batch_size in batch_sizes:
        engine.run_turn(batch_size, 32, 4, rng)
