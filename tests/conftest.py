"""Shared test fixtures: a tiny local tokenizer with a Qwen2.5-style, tool-aware chat template.

The tokenizer is a word-level one over the ``\\w+|[^\\w\\s]+`` pieces of the text (unknown words map
to ``[UNK]``); the chat-template markers (``<|im_start|>``, ``<tool_call>``, ...) are single tokens.
So a text's token count is ``count_tokens(text)`` below, an independent check on anything that
tokenizes through transformers.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

# Tests build what they need locally; never let transformers/huggingface_hub reach for the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One intra-op thread per test process: on a busy 2-core machine torch's default thread pool spends
# more time contending than computing (a generation measured 15x slower on 2 threads than on 1).
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Qwen2.5-Instruct's chat template (tools rendered in the system prompt, calls as <tool_call> JSON,
# tool results as <tool_response> blocks inside one user turn).
QWEN25_CHAT_TEMPLATE = (
    "{%- if tools %}"
    "{{- '<|im_start|>system\\n' }}"
    "{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}"
    "{%- else %}{{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}{%- endif %}"
    "{{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
    "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>\" }}"
    "{%- for tool in tools %}{{- \"\\n\" }}{{- tool | tojson }}{%- endfor %}"
    "{{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, "
    "\\\"arguments\\\": <args-json-object>}\\n</tool_call><|im_end|>\\n\" }}"
    "{%- else %}"
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if (message.role == 'user') or (message.role == 'system' and not loop.first)"
    " or (message.role == 'assistant' and not message.tool_calls) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- elif message.role == 'assistant' %}"
    "{{- '<|im_start|>' + message.role }}"
    "{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}"
    "{%- for tool_call in message.tool_calls %}"
    "{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}"
    "{{- '\\n<tool_call>\\n{\"name\": \"' }}{{- tool_call.name }}{{- '\", \"arguments\": ' }}"
    "{{- tool_call.arguments | tojson }}{{- '}\\n</tool_call>' }}"
    "{%- endfor %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- elif message.role == 'tool' %}"
    "{%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != 'tool') %}{{- '<|im_start|>user' }}{%- endif %}"
    "{{- '\\n<tool_response>\\n' }}{{- message.content }}{{- '\\n</tool_response>' }}"
    "{%- if loop.last or (messages[loop.index0 + 1].role != 'tool') %}{{- '<|im_end|>\\n' }}{%- endif %}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

SPECIAL_TOKENS = ("[UNK]", "<|endoftext|>", "<|im_start|>", "<|im_end|>")
MARKER_TOKENS = ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<tools>", "</tools>")
WORDS = ("the", "a", "is", "what", "answer", "of", "to", "and", "python", "code", "print", "result", "you",
         "are", "helpful", "assistant", "user", "system", "name", "arguments", "tool")
_MARKERS = re.compile("|".join(re.escape(t) for t in SPECIAL_TOKENS[1:] + MARKER_TOKENS))


def count_tokens(text: str) -> int:
    """Tokens of ``text`` under the tiny tokenizer, counted without it: markers + word/punctuation runs."""
    markers = len(_MARKERS.findall(text))
    return markers + sum(len(re.findall(r"\w+|[^\w\s]+", part)) for part in _MARKERS.split(text))


def build_tiny_tokenizer(directory: Path) -> Path:
    """Write a word-level tokenizer with the Qwen2.5 chat template to ``directory``."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + MARKER_TOKENS + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in SPECIAL_TOKENS])
    backend.add_tokens([AddedToken(t, normalized=False, special=False) for t in MARKER_TOKENS])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tokenizer.chat_template = QWEN25_CHAT_TEMPLATE
    tokenizer.save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local tokenizer directory (AutoTokenizer.from_pretrained loads it) with a tool-aware template."""
    return build_tiny_tokenizer(tmp_path_factory.mktemp("tiny_tokenizer"))
