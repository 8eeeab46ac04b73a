"""Generation backends for the rollout loop: one interface, the trainer's engines behind it.

Every backend answers one call::

    backend.generate(prompts: list[list[int]], max_tokens: list[int], sampling: SamplingConfig)
        -> list[Generation]          # one per prompt, same order

A :class:`Generation` holds the generated token ids (the end-of-turn token included when the model
emitted it), their log-probabilities, whether the model finished the turn itself (``finished``) or
hit ``max_tokens``, the prefix tokens the engine served from its cache when it says so
(``cached_tokens``), and timings. The rollout loop counts the context it fed (``len(prompt)``) and the
tokens decoded (``len(token_ids)``) itself; backends never re-tokenise.

Backends:
  TransformersBackend   ``model.generate`` with the trainer's (unwrapped) model, CPU or GPU. Per-row
                        token limits via a stopping criterion, so one batched call honours each
                        trajectory's remaining budget. Log-probabilities follow TRL's convention:
                        ``log_softmax(logits / temperature)`` at the sampled token, from the raw
                        logits (no top-p / top-k renormalisation). Nothing is cached between calls:
                        ``cached_tokens = 0``. ``prefill_time_s`` is the time to the first token's
                        logits, ``decode_time_s`` the rest of the call (both for the whole batch).
  VLLMBackend           a ``vllm.LLM`` (the trainer's colocated ``vllm_generation.llm``, or a
                        standalone one from :func:`load_vllm`). One ``SamplingParams`` per prompt, so
                        each has its own ``max_tokens``; ``cached_tokens`` is vLLM's
                        ``RequestOutput.num_cached_tokens`` (automatic prefix caching).
  VLLMServerBackend     TRL's ``VLLMClient`` (``vllm_mode="server"``). The client does not report
                        cached prefixes (``cached_tokens=None``); prompts are grouped by their token
                        limit, one request per group. With several training processes it gathers the
                        prompts to the main process and broadcasts the results, so every process must
                        call it the same number of times (:meth:`any_active` keeps them in step).

vLLM is imported lazily (the ``[vllm]`` extra): nothing here needs it unless a vLLM backend is built
without an explicit ``sampling_params_factory``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class SamplingConfig:
    """Sampling knobs shared by every backend (TRL's names and meanings)."""

    temperature: float = 1.0
    """Softmax temperature; 0 means greedy decoding (log-probabilities then use temperature 1)."""
    top_p: float = 1.0
    """Nucleus sampling mass; 1.0 is off."""
    top_k: int = 0
    """Keep the k most likely tokens; 0 is off."""
    min_p: float = 0.0
    """Drop tokens below ``min_p`` times the top probability; 0 is off."""
    repetition_penalty: float = 1.0
    """1.0 is off."""

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature: expected >= 0, got {self.temperature!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p: expected a number in (0, 1], got {self.top_p!r}")
        if self.top_k < 0:
            raise ValueError(f"top_k: expected >= 0 (0 = off), got {self.top_k!r}")

    @property
    def logprob_temperature(self) -> float:
        return self.temperature if self.temperature > 0 else 1.0


@dataclass(slots=True)
class Generation:
    """One prompt's generated tokens and what the engine reported about them."""

    token_ids: list[int]
    logprobs: list[float] | None
    finished: bool
    """True when the model ended the turn itself (end-of-turn token), False when cut at max_tokens."""
    cached_tokens: int | None = None
    prefill_time_s: float | None = None
    decode_time_s: float | None = None
    generation_time_s: float | None = None
    """Wall time of the whole batched call this generation was part of."""
    batch_size: int = 1


class GenerationBackend(Protocol):
    """What the rollout loop needs from an engine."""

    max_context: int | None
    """The longest sequence (prompt + generated) the engine accepts, when known."""

    def generate(self, prompts: list[list[int]], max_tokens: list[int], sampling: SamplingConfig) -> list[Generation]:
        ...

    def any_active(self, local_active: bool) -> bool:
        """Whether any process still has work; only collective backends need more than the local flag."""
        ...


def _check_request(prompts: Sequence[Sequence[int]], max_tokens: Sequence[int]) -> None:
    if len(prompts) != len(max_tokens):
        raise ValueError(f"generate: {len(prompts)} prompts but {len(max_tokens)} max_tokens")
    for i, (prompt, limit) in enumerate(zip(prompts, max_tokens, strict=True)):
        if not prompt:
            raise ValueError(f"generate: prompt {i} is empty")
        if limit < 1:
            raise ValueError(f"generate: max_tokens[{i}] must be >= 1, got {limit}")


def eos_token_ids(tokenizer: Any, model: Any = None) -> set[int]:
    """End-of-turn token ids: the tokenizer's EOS plus the model's generation-config EOS ids."""
    ids: set[int] = set()
    if getattr(tokenizer, "eos_token_id", None) is not None:
        ids.add(int(tokenizer.eos_token_id))
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(config_eos, int):
        ids.add(config_eos)
    elif config_eos:
        ids.update(int(i) for i in config_eos)
    if not ids:
        raise ValueError("the tokenizer has no eos_token_id: the rollout cannot tell where a turn ends")
    return ids


class TransformersBackend:
    """``model.generate`` with per-row token limits and TRL-convention log-probabilities."""

    def __init__(
        self, model: Any, tokenizer: Any, eos_ids: set[int] | None = None, pad_token_id: int | None = None,
        logits_processors: Sequence[Any] = (),
    ):
        """``logits_processors`` are extra ``transformers.LogitsProcessor`` s applied at every step
        (constraints, forced tokens); log-probabilities are still read from the raw logits."""
        self.model = model
        self.logits_processors = list(logits_processors)
        self.eos_ids = set(eos_ids) if eos_ids is not None else eos_token_ids(tokenizer, model)
        pad = pad_token_id if pad_token_id is not None else getattr(tokenizer, "pad_token_id", None)
        self.pad_token_id = int(pad) if pad is not None else min(self.eos_ids)
        self.max_context = getattr(getattr(model, "config", None), "max_position_embeddings", None)

    def any_active(self, local_active: bool) -> bool:
        return local_active

    def generate(self, prompts: list[list[int]], max_tokens: list[int], sampling: SamplingConfig) -> list[Generation]:
        import torch
        from transformers import (
            GenerationConfig,
            LogitsProcessor,
            LogitsProcessorList,
            StoppingCriteria,
            StoppingCriteriaList,
        )

        if not prompts:
            return []
        _check_request(prompts, max_tokens)
        device = next(self.model.parameters()).device
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):  # left padding: the last position is every row's last token
            input_ids[row, width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
            attention_mask[row, width - len(prompt):] = 1
        limits = torch.tensor(max_tokens, dtype=torch.long, device=device)

        class RowBudget(StoppingCriteria):
            """Stop row r once it has generated ``max_tokens[r]`` tokens."""

            def __call__(self, ids, scores, **kwargs):
                return (ids.shape[1] - width) >= limits

        first_token_at: list[float] = []

        class FirstToken(LogitsProcessor):
            """Notes when the first logits arrive: the end of the prefill forward pass."""

            def __call__(self, ids, scores):
                if not first_token_at:
                    first_token_at.append(time.perf_counter())
                return scores

        config = GenerationConfig(
            max_new_tokens=max(max_tokens), do_sample=sampling.temperature > 0,
            temperature=sampling.temperature if sampling.temperature > 0 else None,
            top_p=sampling.top_p if sampling.temperature > 0 else None,
            top_k=(sampling.top_k or None) if sampling.temperature > 0 else None,
            min_p=(sampling.min_p or None) if sampling.temperature > 0 else None,
            repetition_penalty=sampling.repetition_penalty,
            eos_token_id=sorted(self.eos_ids), pad_token_id=self.pad_token_id,
            return_dict_in_generate=True, output_logits=True,
        )
        start = time.perf_counter()
        with torch.no_grad():
            out = self.model.generate(
                input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), generation_config=config,
                stopping_criteria=StoppingCriteriaList([RowBudget()]),
                logits_processor=LogitsProcessorList([FirstToken(), *self.logits_processors]),
            )
        end = time.perf_counter()
        generated = out.sequences[:, width:].cpu()
        logits = torch.stack(out.logits, dim=1).float().cpu() if out.logits else None  # (batch, steps, vocab)
        prefill = (first_token_at[0] - start) if first_token_at else end - start
        results = []
        for row, limit in enumerate(max_tokens):
            ids = generated[row, :limit].tolist()
            finished = False
            for position, token in enumerate(ids):
                if token in self.eos_ids:
                    ids, finished = ids[: position + 1], True
                    break
            logprobs = None
            if logits is not None and ids:
                scaled = torch.log_softmax(logits[row, : len(ids)] / sampling.logprob_temperature, dim=-1)
                logprobs = scaled.gather(1, torch.tensor(ids).unsqueeze(1)).squeeze(1).tolist()
            results.append(Generation(
                token_ids=ids, logprobs=logprobs, finished=finished, cached_tokens=0, prefill_time_s=prefill,
                decode_time_s=end - start - prefill, generation_time_s=end - start, batch_size=len(prompts),
            ))
        return results


def _vllm_sampling_params(**kwargs: Any) -> Any:
    try:
        from vllm import SamplingParams
    except ImportError as exc:  # pragma: no cover - depends on the optional extra
        raise ImportError("the vLLM backend needs vLLM: pip install 'pte-rl[vllm]'") from exc
    return SamplingParams(**kwargs)


class VLLMBackend:
    """A ``vllm.LLM`` engine (colocated with the trainer, or standalone); one request per prompt."""

    def __init__(
        self, llm: Any, eos_ids: set[int], max_context: int | None = None,
        sampling_params_factory: Callable[..., Any] | None = None,
    ):
        self.llm = llm
        self.eos_ids = set(eos_ids)
        self.max_context = max_context if max_context is not None else _vllm_max_model_len(llm)
        self._params = sampling_params_factory or _vllm_sampling_params

    def any_active(self, local_active: bool) -> bool:
        return local_active

    def generate(self, prompts: list[list[int]], max_tokens: list[int], sampling: SamplingConfig) -> list[Generation]:
        if not prompts:
            return []
        _check_request(prompts, max_tokens)
        params = [
            self._params(
                n=1, temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k or -1,
                min_p=sampling.min_p, repetition_penalty=sampling.repetition_penalty, max_tokens=limit, logprobs=0,
            )
            for limit in max_tokens
        ]
        start = time.perf_counter()
        requests = [{"prompt_token_ids": list(p)} for p in prompts]
        outputs = self.llm.generate(requests, sampling_params=params, use_tqdm=False)
        elapsed = time.perf_counter() - start
        if len(outputs) != len(prompts):
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(prompts)} prompts")
        results = []
        for prompt, output in zip(prompts, outputs, strict=True):
            if list(output.prompt_token_ids) != list(prompt):
                raise RuntimeError("vLLM returned outputs out of order (prompt token ids differ)")
            completion = output.outputs[0]
            ids = list(completion.token_ids)
            logprobs = None
            if completion.logprobs is not None:
                logprobs = [_logprob_of(entry, token) for entry, token in zip(completion.logprobs, ids, strict=False)]
            cached = getattr(output, "num_cached_tokens", None)
            finished = completion.finish_reason == "stop" or (bool(ids) and ids[-1] in self.eos_ids)
            results.append(Generation(
                token_ids=ids, logprobs=logprobs, finished=finished,
                cached_tokens=None if cached is None else int(cached), generation_time_s=elapsed,
                batch_size=len(prompts),
            ))
        return results


def _logprob_of(entry: dict, token: int) -> float:
    """vLLM gives {token_id: Logprob(logprob, rank, ...)} per position; NaN when it has none."""
    item = entry.get(token) if entry else None
    value = getattr(item, "logprob", item)
    return float("nan") if value is None else float(value)


def _vllm_max_model_len(llm: Any) -> int | None:
    try:
        return int(llm.llm_engine.model_config.max_model_len)
    except AttributeError:
        return None


class VLLMServerBackend:
    """TRL's ``VLLMClient`` (server mode), gathered across training processes when there are several."""

    def __init__(self, client: Any, eos_ids: set[int], accelerator: Any = None, max_context: int | None = None):
        self.client = client  # None on processes other than the main one
        self.eos_ids = set(eos_ids)
        self.accelerator = accelerator
        self.max_context = max_context
        self.collective = accelerator is not None and getattr(accelerator, "num_processes", 1) > 1

    def any_active(self, local_active: bool) -> bool:
        if not self.collective:
            return local_active
        from accelerate.utils import gather_object

        return any(gather_object([local_active]))

    def _request(self, prompts: list[list[int]], limit: int, sampling: SamplingConfig) -> dict:
        return self.client.generate(
            prompts=prompts, n=1, repetition_penalty=sampling.repetition_penalty, temperature=sampling.temperature,
            top_p=sampling.top_p, top_k=sampling.top_k, min_p=sampling.min_p, max_tokens=limit, logprobs=0,
        )

    def _generate_main(self, prompts: list[list[int]], max_tokens: list[int], sampling: SamplingConfig) -> list[tuple]:
        groups: dict[int, list[int]] = {}
        for index, limit in enumerate(max_tokens):
            groups.setdefault(limit, []).append(index)
        results: list[tuple] = [()] * len(prompts)
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=min(8, max(1, len(groups)))) as pool:
            futures = {
                limit: pool.submit(self._request, [prompts[i] for i in indices], limit, sampling)
                for limit, indices in groups.items()
            }
            for limit, indices in groups.items():
                response = futures[limit].result()
                for k, index in enumerate(indices):
                    ids = list(response["completion_ids"][k])
                    lps = response.get("logprobs")
                    logprobs = [float("nan") if lp[0] is None else float(lp[0]) for lp in lps[k]] if lps else None
                    results[index] = (ids, logprobs)
        elapsed = time.perf_counter() - start
        return [(ids, lps, elapsed) for ids, lps in results]

    def generate(self, prompts: list[list[int]], max_tokens: list[int], sampling: SamplingConfig) -> list[Generation]:
        if prompts:
            _check_request(prompts, max_tokens)
        if self.collective:
            from accelerate.utils import broadcast_object_list, gather_object

            everyone = gather_object([(list(map(list, prompts)), list(max_tokens))])
            payload = None
            if self.accelerator.is_main_process:
                flat_prompts = [p for ps, _ in everyone for p in ps]
                flat_limits = [m for _, ms in everyone for m in ms]
                flat = self._generate_main(flat_prompts, flat_limits, sampling) if flat_prompts else []
                payload, offset = [], 0
                for ps, _ in everyone:
                    payload.append(flat[offset: offset + len(ps)])
                    offset += len(ps)
            box = [payload]
            broadcast_object_list(box, from_process=0)
            mine = box[0][self.accelerator.process_index]
        else:
            mine = self._generate_main(prompts, max_tokens, sampling) if prompts else []
        return [
            Generation(
                token_ids=ids, logprobs=lps, finished=bool(ids) and ids[-1] in self.eos_ids, cached_tokens=None,
                generation_time_s=elapsed, batch_size=len(prompts),
            )
            for ids, lps, elapsed in mine
        ]


def load_vllm(model: str, seed: int | None = None, **engine_kwargs: Any) -> Any:
    """A standalone ``vllm.LLM`` for ``pte-rl rollout --engine vllm`` (prefix caching on)."""
    try:
        from vllm import LLM
    except ImportError as exc:  # pragma: no cover - depends on the optional extra
        raise ImportError("--engine vllm needs vLLM: pip install 'pte-rl[vllm]'") from exc
    options = {"enable_prefix_caching": True, "logprobs_mode": "processed_logprobs", **engine_kwargs}
    if seed is not None:
        options["seed"] = seed
    return LLM(model=model, **options)
