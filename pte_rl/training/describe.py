"""What a dry run reports about a run's environment, tokenizer and launch (``recipes/grpo_pte.py --dry_run true``).

Each function returns plain data for the printed YAML; none loads model weights. A tokenizer that does
not load, or whose chat template cannot render a prompt with the environment's tools, is an
:class:`pte_rl.errors.InputError` naming the ``model_name_or_path`` field.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pte_rl.errors import InputError


def describe_tokenizer(model: str, env: Any, where: Callable[[str], str]) -> dict:
    """The tokenizer loads and its chat template renders the first training prompt with the tools."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model)
        ids: Any = tokenizer.apply_chat_template(env.dataset[0]["prompt"], tools=env.tool_schemas(),
                                                 add_generation_prompt=True, tokenize=True)
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"{where('model_name_or_path')}: field 'model_name_or_path': {model}: its tokenizer does "
                         f"not load or render a prompt with the tools ({type(exc).__name__}: {exc})") from None
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids  # a BatchEncoding in transformers 5
    return {"class": type(tokenizer).__name__, "vocab": len(tokenizer), "first_prompt_tokens": len(ids)}


def describe_env(env: Any) -> dict:
    """Both splits' sizes, a sample task id each, the tools and their schemas' names."""
    splits = {}
    for name, split in (("train", env.dataset), ("eval", env.eval_dataset)):
        splits[name] = None if split is None else {"rows": len(split), "sample_task_id": split[0]["task_id"]
                                                   if len(split) else None}
    return {"name": env.name, "source": env.source[0] if env.source else None, "max_turns": env.max_turns,
            "splits": splits, "tools": [schema["function"]["name"] for schema in env.tool_schemas()]}


def describe_launch(training: Any, warnings: list[str]) -> dict:
    """accelerate's state as launched, the mixed precision the Trainer asks for, vLLM, DeepSpeed."""
    import importlib.util

    import torch
    from accelerate import PartialState

    state = PartialState()
    launch: dict[str, Any] = {
        "num_processes": state.num_processes, "distributed_type": str(state.distributed_type.value),
        "device": str(state.device), "gpus_visible": torch.cuda.device_count(),
        "mixed_precision": "bf16" if training.bf16 else "fp16" if training.fp16 else "no",
        "launcher_mixed_precision": os.environ.get("ACCELERATE_MIXED_PRECISION"),
    }
    if training.use_vllm:
        vllm = {"mode": training.vllm_mode}
        if training.vllm_mode == "server":  # TRL: the base URL when given, else host and port
            from urllib.parse import urlsplit

            url = training.vllm_server_base_url or f"http://{training.vllm_server_host}:{training.vllm_server_port}"
            vllm.update(server=url, host=urlsplit(url).hostname, port=urlsplit(url).port)
        else:
            vllm.update(gpu_memory_utilization=training.vllm_gpu_memory_utilization,
                        tensor_parallel_size=training.vllm_tensor_parallel_size)
        launch["vllm"] = vllm
        if importlib.util.find_spec("vllm") is None or not torch.cuda.is_available():
            warnings.append(f"use_vllm: true (vllm_mode {training.vllm_mode}) needs vLLM (pip install -e '.[vllm]') "
                            f"and a GPU; this machine has vLLM: {importlib.util.find_spec('vllm') is not None}, "
                            f"GPUs: {torch.cuda.device_count()}")
    deepspeed = training.deepspeed or (os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE")
                                       if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true" else None)
    launch["deepspeed"] = None if not deepspeed else {"config": deepspeed, "zero_stage": zero_stage(deepspeed)}
    return launch


def zero_stage(deepspeed: Any) -> Any:
    """The ZeRO stage of a DeepSpeed config (a dict or a JSON file), else accelerate's launch setting."""
    if isinstance(deepspeed, str) and Path(deepspeed).is_file():
        deepspeed = json.loads(Path(deepspeed).read_text())
    stage = deepspeed.get("zero_optimization", {}).get("stage") if isinstance(deepspeed, dict) else None
    return stage if stage is not None else os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE")
