"""The tokenizer (a byte-level BPE trained on the scripted chats) and the freshly initialised model."""

from __future__ import annotations

import json
from typing import Any

from pte_rl.tiny.config import QWEN2_SPLIT, SPECIAL_TOKENS, TOOL_TOKENS, TinyConfig


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


def template_renderer() -> Any:
    """A tokenizer with the chat template and an empty vocabulary: it renders chats to text before the
    real tokenizer (trained on that text) exists."""
    from tokenizers import Tokenizer

    return _template_tokenizer(Tokenizer.from_str(_EMPTY_BPE))


_EMPTY_BPE = json.dumps({
    "version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
    "pre_tokenizer": None, "post_processor": None, "decoder": None,
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
              "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "vocab": {}, "merges": []},
})
