"""Writes the model-directory fixtures beside this file: the public ``config.json`` and
``generation_config.json`` of each model a recipe config names, and a tokenizer of the same shape
(the model's tokenizer class, special and added tokens, and its original chat template, TRL's copy of
it), with a small byte-level BPE vocabulary instead of the real ~151k one. No weights.

    python tests/data/models/make_fixtures.py      # rewrites the fixtures (deterministic)

They stand in for a hub download: ``--model_name_or_path tests/data/models/qwen2.5-1.5b-instruct`` on
the recipe resolves gamma from the real shape and renders prompts with the real template. Token ids
differ from the real tokenizer's (the vocabulary is small), so counts are not the model's counts.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN25_SPECIAL = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>",
]
QWEN25_ADDED = ["<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
                "<|repo_name|>", "<|file_sep|>"]
QWEN3_ADDED = QWEN25_ADDED + ["<tool_response>", "</tool_response>", "<think>", "</think>"]
QWEN25_GENERATION = {"bos_token_id": 151643, "pad_token_id": 151643, "do_sample": True,
                     "eos_token_id": [151645, 151643], "repetition_penalty": 1.1, "temperature": 0.7,
                     "top_p": 0.8, "top_k": 20}
QWEN3_GENERATION = {"bos_token_id": 151643, "do_sample": True, "eos_token_id": [151645, 151643],
                    "pad_token_id": 151643, "temperature": 0.6, "top_k": 20, "top_p": 0.95}

MODELS = {
    "qwen2.5-1.5b-instruct": {
        "template": "qwen2_5", "added": QWEN25_ADDED, "generation": QWEN25_GENERATION | {"repetition_penalty": 1.1},
        "config": {
            "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
            "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 1536, "initializer_range": 0.02,
            "intermediate_size": 8960, "max_position_embeddings": 32768, "max_window_layers": 21,
            "model_type": "qwen2", "num_attention_heads": 12, "num_hidden_layers": 28, "num_key_value_heads": 2,
            "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": True,
            "torch_dtype": "bfloat16", "transformers_version": "4.43.1", "use_cache": True,
            "use_sliding_window": False, "vocab_size": 151936,
        },
    },
    "qwen2.5-7b-instruct": {
        "template": "qwen2_5", "added": QWEN25_ADDED, "generation": QWEN25_GENERATION | {"repetition_penalty": 1.05},
        "config": {
            "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
            "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 3584, "initializer_range": 0.02,
            "intermediate_size": 18944, "max_position_embeddings": 32768, "max_window_layers": 28,
            "model_type": "qwen2", "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4,
            "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 131072, "tie_word_embeddings": False,
            "torch_dtype": "bfloat16", "transformers_version": "4.43.1", "use_cache": True,
            "use_sliding_window": False, "vocab_size": 152064,
        },
    },
    "qwen3-1.7b": {
        "template": "qwen3", "added": QWEN3_ADDED, "generation": QWEN3_GENERATION,
        "config": {
            "architectures": ["Qwen3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
            "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
            "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 6144,
            "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
            "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
            "rope_scaling": None, "rope_theta": 1000000, "sliding_window": None, "tie_word_embeddings": True,
            "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": True,
            "use_sliding_window": False, "vocab_size": 151936,
        },
    },
}

CORPUS = [
    "Solve the math problem. You can run Python code with the python tool when it helps. "
    "Put the final answer in \\boxed{}.",
    "What is the smallest positive integer n such that 3n + 7 is divisible by 11? The answer is \\boxed{2}.",
    "Let x = 2 and y = 3. Then x^2 + y^2 = 13, so the answer is 13.",
    "def solve():\n    import math\n    return sum(i * i for i in range(10))\nprint(solve())",
    '{"name": "python", "arguments": {"code": "print(2 + 2)"}}',
    "Find the area of a circle of radius 5. The area is 25\\pi square units.",
    "# Tools\n\nYou may call one or more functions to assist with the user query.",
    "You are a helpful assistant. Please reason step by step, and put your final answer within \\boxed{}.",
]


def write_model(name: str, spec: dict, vocab_size: int = 600) -> None:
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from trl import chat_template_utils

    out = HERE / name
    out.mkdir(exist_ok=True)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=QWEN25_SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(CORPUS * 4, trainer)
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in QWEN25_SPECIAL])
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in spec["added"]])
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None,
        additional_special_tokens=[], clean_up_tokenization_spaces=False, model_max_length=131072,
        errors="replace", split_special_tokens=False,
    )
    wrapped.chat_template = getattr(chat_template_utils, f"{spec['template']}_chat_template")
    wrapped.save_pretrained(out)
    tokenizer_config = json.loads((out / "tokenizer_config.json").read_text())
    tokenizer_config["tokenizer_class"] = "Qwen2Tokenizer"  # the class the real repos name
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2, sort_keys=True) + "\n")
    (out / "config.json").write_text(json.dumps(spec["config"], indent=2) + "\n")
    (out / "generation_config.json").write_text(json.dumps(spec["generation"], indent=2) + "\n")


if __name__ == "__main__":
    for model_name, model_spec in MODELS.items():
        write_model(model_name, model_spec)
        print(f"wrote {HERE / model_name}")
