"""The embedded tiny policy: tokenizer, chat template, model, warm start, cache and determinism."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from pte_rl.tiny.build import build_tiny_policy
from pte_rl.tiny.config import (
    BUILD_INFO,
    CACHE_VARIABLE,
    SPECIAL_TOKENS,
    TOOL_TOKENS,
    TinyConfig,
    settings_hash,
    tiny_policy_path,
)
from pte_rl.tiny.data import encode, scripted_texts
from pte_rl.tiny.model import make_model
from pte_rl.tiny.train import batches_by_tokens, common_prefix_length, copy_drill, copy_drill_batch, token_losses

# A build small enough for the fast suite: same code path as the default, toy sizes.
FAST = {"sft_examples": 48, "tokenizer_examples": 48, "sft_steps": 3, "hidden_size": 16, "num_layers": 1,
        "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 32, "vocab_size": 320, "batch_tokens": 2048,
        "warmup_steps": 1, "copy_steps": 2, "copy_batch_size": 2, "copy_max_gap": 8}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    config = TinyConfig(**FAST)
    path = build_tiny_policy(config, root / "a", log=lambda _: None)
    return config, path, root


@pytest.fixture(scope="module")
def tokenizer(built):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(built[1])


def test_tokenizer_splits_digits(tokenizer):
    tokens = tokenizer.tokenize("What is 4817*10?")
    digits = [t for t in tokens if any(ch.isdigit() for ch in t)]
    assert digits == ["4", "8", "1", "7", "1", "0"]
    ids = tokenizer("2146", add_special_tokens=False)["input_ids"]
    assert len(ids) == 4 and tokenizer.decode(ids) == "2146"


def test_chat_template_is_trls_qwen2_5_and_parses_tool_calls(tokenizer):
    from trl.chat_template_utils import add_response_schema, qwen2_5_chat_template, supports_tool_calling

    assert tokenizer.chat_template == qwen2_5_chat_template
    assert supports_tool_calling(tokenizer)
    add_response_schema(tokenizer)  # raises for a template TRL does not recognise
    text = '<tool_call>\n{"name": "calculator", "arguments": {"expression": "37*58"}}\n</tool_call><|im_end|>'
    parsed = tokenizer.parse_response(text, prefix="")
    assert parsed["tool_calls"][0]["function"] == {"name": "calculator", "arguments": {"expression": "37*58"}}


def test_special_tokens_are_single_tokens(tokenizer):
    for token in SPECIAL_TOKENS + TOOL_TOKENS:
        assert tokenizer.tokenize(token) == [token]
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2+3?"}], tokenize=False,
                                             add_generation_prompt=True)
    assert rendered.endswith("<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n")
    assert tokenizer.decode(tokenizer(rendered, add_special_tokens=False)["input_ids"]) == rendered


def test_model_loads_with_from_pretrained(built, tokenizer):
    from transformers import AutoModelForCausalLM, Qwen2ForCausalLM

    config, path, _ = built
    model = AutoModelForCausalLM.from_pretrained(path)
    assert isinstance(model, Qwen2ForCausalLM)
    assert model.config.vocab_size == len(tokenizer)
    assert model.config.hidden_size == 16 and model.config.num_hidden_layers == 1
    assert model.config.eos_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>")
    info = json.loads((path / BUILD_INFO).read_text())
    assert info["settings_hash"] == settings_hash(config)
    assert info["parameters"] == sum(p.numel() for p in model.parameters())
    assert len(info["sft_loss"]) == 1 and info["sft_loss"][0] > 0
    written = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in path.iterdir() if p.name != BUILD_INFO}
    assert info["files"] == written and "model.safetensors" in written  # what `pte-rl tiny ship` checks
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2+3?"}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)["input_ids"]
    out = model.generate(ids, max_new_tokens=3, do_sample=False)
    assert ids.shape[1] < out.shape[1] <= ids.shape[1] + 3


def test_build_is_deterministic_in_the_seed(built):
    from safetensors.torch import load_file

    config, first, root = built
    second = build_tiny_policy(config, root / "b", log=lambda _: None)
    assert (first / "tokenizer.json").read_text() == (second / "tokenizer.json").read_text()
    a, b = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    other = build_tiny_policy(TinyConfig(**{**FAST, "seed": 1}), root / "c", log=lambda _: None)
    c = load_file(other / "model.safetensors")
    assert not all(torch.equal(a[k], c[k]) for k in a if k in c and a[k].shape == c[k].shape)


def test_cache_reuse_and_atomic_layout(built, monkeypatch, tmp_path):
    config, path, _ = built
    messages = []
    assert build_tiny_policy(config, path, log=messages.append) == path
    assert messages and "reusing" in messages[0]
    with pytest.raises(FileExistsError, match="other settings"):
        build_tiny_policy(TinyConfig(**{**FAST, "seed": 5}), path, log=lambda _: None)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no staging left behind
    monkeypatch.setenv(CACHE_VARIABLE, str(tmp_path))
    assert tiny_policy_path(config) == tmp_path / f"tiny-{settings_hash(config)}"
    assert settings_hash(config) != settings_hash(TinyConfig(**{**FAST, "seed": 1}))


def test_shared_prefix_loss_equals_the_plain_loss():
    import torch.nn.functional as F
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=1, pad_token_id=0))
    prefix = [5, 6, 7, 8, 9]
    rows = [(prefix + [11, 12, 13], [1] * 8), (prefix + [14], [1] * 6), (prefix + [15, 16, 17, 18], ([1, 0] * 5)[:9])]
    total, count = token_losses(model, rows)
    total.backward()
    shared = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    reference, n = 0.0, 0
    for index, (ids, mask) in enumerate(rows):  # plain forward per row; the shared prefix counted once
        losses = F.cross_entropy(model(input_ids=torch.tensor([ids])).logits[0, :-1], torch.tensor(ids[1:]),
                                 reduction="none") * torch.tensor(mask[1:], dtype=torch.float32)
        first = 0 if index == 0 else len(prefix) - 1
        reference = reference + losses[first:].sum()
        n += sum(mask[1:][first:])
    reference.backward()
    assert count == n
    assert torch.allclose(total, reference, atol=1e-5)
    assert all(torch.allclose(a, p.grad, atol=1e-5) for a, p in zip(shared, model.parameters(), strict=True))


def test_prefix_and_batching_helpers():
    assert common_prefix_length([[1, 2, 3], [1, 2, 4, 5], [1, 2, 3, 9]]) == 2
    assert common_prefix_length([[1, 2], [1, 2, 3]]) == 1  # leaves each row a token of its own
    batches = batches_by_tokens([5, 1, 9, 3, 3], token_budget=10, max_rows=2)
    assert batches == [[1, 3], [4, 0], [2]]
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3, 4]


def test_predictable_loss_masks_exactly_the_user_and_tool_contents(built, tokenizer):
    from pte_rl.rollout.env import load_environment

    config, _, _ = built
    schemas = load_environment("arith").tool_schemas()
    examples = scripted_texts(config, 12, 0, schemas, tokenizer, spans=True)
    verbose = next(e for e in examples if e["behaviour"] == "verbose")
    (ids, mask), = encode([verbose], tokenizer, "predictable")
    kept = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m])
    dropped = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if not m])
    question = verbose["text"].split("<|im_start|>user\n")[1]
    assert dropped.startswith("What is ") and "--- execution report ---" in dropped
    assert "What is" not in kept and "--- execution report ---" not in kept
    # The policy's own turns (the call with its copied expression, the boxed answer) keep their loss.
    assert "<tool_call>" in kept and "\\boxed{" in kept and question.split("<|im_end|>")[0] in dropped
    assert "<|im_start|>user" in kept and "<tool_response>" in kept  # the template around them too
    (all_ids, all_mask), = encode([verbose], tokenizer, "all")
    assert all_ids == ids and all(all_mask)


def test_copy_drill_rows_copy_their_span(tokenizer):
    generator = torch.Generator().manual_seed(0)
    ids, labels = copy_drill_batch(tokenizer, 64, 40, generator)
    digits = {tokenizer.convert_tokens_to_ids(c) for c in "0123456789"}
    operators = {tokenizer.convert_tokens_to_ids(c) for c in "+-*"}
    expressions, lengths = 0, set()
    for row, label in zip(ids.tolist(), labels.tolist(), strict=True):
        copied = [t for t in label if t != -100]
        start = next(i for i, t in enumerate(label) if t != -100)
        assert 1 <= len(copied) <= 7 and set(copied) <= digits | operators
        assert copied[0] in digits and copied[-1] in digits and len(set(copied) & operators) <= 1
        expressions += bool(set(copied) & operators)
        lengths.add(len(copied))
        assert row[1 : 1 + len(copied)] == copied  # the span right after the first token...
        assert row[start : start + len(copied)] == copied  # ...is what the loss asks for at the end
        gap = row[1 + len(copied) : start]
        assert 3 <= len(gap) <= 40 and not set(gap) & (digits | operators)
    assert 0 < expressions < 64  # both plain numbers and expressions are drilled
    assert 1 in lengths  # one-digit results (5 = 20-15) are drilled too
    _, longer = copy_drill_batch(tokenizer, 64, 40, torch.Generator().manual_seed(0), min_digits=3)
    assert min(int((row != -100).sum()) for row in longer) >= 3


def test_copy_drill_distractors_hold_the_spans_digits(tokenizer):
    """A distractor row puts the span's digits, shuffled, a few tokens before the span it copies."""
    digits = {tokenizer.convert_tokens_to_ids(c) for c in "0123456789"}
    operators = {tokenizer.convert_tokens_to_ids(c) for c in "+-*"}
    ids, labels = copy_drill_batch(tokenizer, 64, 20, torch.Generator().manual_seed(3), distractor=1.0)
    shuffled = 0
    for row, label in zip(ids.tolist(), labels.tolist(), strict=True):
        copied = [t for t in label if t != -100]
        numbers = [i for i, t in enumerate(row) if t in digits | operators]
        decoy_end = next(i for i in range(1, len(numbers)) if numbers[i] != numbers[i - 1] + 1)
        decoy = row[numbers[0] : numbers[decoy_end - 1] + 1]
        near = numbers[decoy_end] - numbers[decoy_end - 1] - 1
        source = row[numbers[decoy_end] : numbers[decoy_end] + len(copied)]
        assert source == copied and 1 <= near <= 8
        assert sorted(t for t in decoy if t in digits) == sorted(t for t in copied if t in digits)
        shuffled += [t for t in decoy if t in digits] != [t for t in copied if t in digits]
    assert shuffled > 16  # most decoys reorder the digits
    plain, _ = copy_drill_batch(tokenizer, 64, 20, torch.Generator().manual_seed(3))
    again, _ = copy_drill_batch(tokenizer, 64, 20, torch.Generator().manual_seed(3), distractor=0.0)
    assert torch.equal(plain, again)  # no distractor: the drill of earlier builds, draw for draw
    with pytest.raises(ValueError, match="copy_distractor"):
        TinyConfig(copy_distractor=1.5)


def test_copy_drill_of_any_tokens_copies_names_too(tokenizer):
    """copy_tokens any: about half of the rows copy a span of ordinary tokens (a name), the rest digits as
    before; digits mode draws exactly as before the option existed."""
    digits = {tokenizer.convert_tokens_to_ids(c) for c in "0123456789"}
    operators = {tokenizer.convert_tokens_to_ids(c) for c in "+-*"}
    ids, labels = copy_drill_batch(tokenizer, 200, 20, torch.Generator().manual_seed(5), tokens="any")
    names = 0
    for row, label in zip(ids.tolist(), labels.tolist(), strict=True):
        copied = [t for t in label if t != -100]
        start = next(i for i, t in enumerate(label) if t != -100)
        assert row[start : start + len(copied)] == copied and row[1 : 1 + len(copied)] == copied
        if not set(copied) & (digits | operators):
            names += 1
            assert 1 <= len(copied) <= 6
    assert 70 < names < 130
    before, _ = copy_drill_batch(tokenizer, 64, 20, torch.Generator().manual_seed(3), distractor=0.5)
    again, _ = copy_drill_batch(tokenizer, 64, 20, torch.Generator().manual_seed(3), distractor=0.5, tokens="digits")
    assert torch.equal(before, again)
    with pytest.raises(ValueError, match="copy_tokens"):
        TinyConfig(copy_tokens="letters")


def test_an_environment_sets_its_own_build_settings():
    from pte_rl.tiny.config import settings_hash, settings_record, tiny_config

    assert tiny_config() == TinyConfig() and "copy_tokens" not in settings_record(TinyConfig())
    facts = tiny_config("facts")
    assert facts.copy_tokens == "any" and facts.env == "facts"  # facts.TINY_SETTINGS
    assert (facts.sft_examples, facts.sft_steps) == (6000, 8000)
    assert settings_record(facts)["copy_tokens"] == "any"
    assert tiny_config("facts", copy_tokens="digits").copy_tokens == "digits"  # overrides win
    assert settings_hash(facts) != settings_hash(TinyConfig(env="facts"))


def test_copy_drill_teaches_copying(tokenizer):
    """200 drill updates take a fresh model's copy accuracy from chance (~0.1) to well above it."""
    config = TinyConfig(**{**FAST, "hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 2,
                           "copy_steps": 200, "copy_batch_size": 32, "copy_max_gap": 10, "copy_distractor": 0.0,
                           "learning_rate": 3e-3, "warmup_steps": 5})
    torch.manual_seed(0)
    model = make_model(config, tokenizer)

    def held_out_accuracy() -> float:
        ids, labels = copy_drill_batch(tokenizer, 64, 10, torch.Generator().manual_seed(99))
        with torch.no_grad():
            predicted = model(input_ids=ids).logits[:, :-1].argmax(-1)
        scored = labels[:, 1:] != -100
        return float((predicted[scored] == labels[:, 1:][scored]).float().mean())

    before = held_out_accuracy()
    accuracy = copy_drill(model, tokenizer, config, log=lambda _: None)
    after = held_out_accuracy()
    assert len(accuracy) == 4 and accuracy[-1] > 0.5 and accuracy[-1] > accuracy[0] + 0.2, accuracy
    assert before < 0.2 and after > 0.35, (before, after)  # a copy's first digit is unpredictable


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="loss"):
        TinyConfig(loss="prompt")
    with pytest.raises(ValueError, match="num_heads"):
        TinyConfig(hidden_size=30, num_heads=4)
    with pytest.raises(ValueError, match="vocab_size"):
        TinyConfig(vocab_size=100)
    with pytest.raises(ValueError, match="copy_steps"):
        TinyConfig(copy_steps=-1)
    with pytest.raises(ValueError, match="copy_min_digits"):
        TinyConfig(copy_min_digits=0)


def test_cli_path_uses_the_cache_variable(monkeypatch, tmp_path, capsys):
    from pte_rl.cli import main

    monkeypatch.setenv(CACHE_VARIABLE, str(tmp_path))
    assert main(["tiny", "path", "--seed", "3"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == str(tiny_policy_path(TinyConfig(seed=3)))
    assert printed.startswith(str(tmp_path / "tiny-"))
    assert main(["tiny", "path", "--seed", "3", "--threads", "1"]) == 0  # the thread count is in the key
    assert capsys.readouterr().out.strip() == str(tiny_policy_path(TinyConfig(seed=3, threads=1))) != printed
    assert main(["tiny", "build", "--steps", "0", "--out", str(tmp_path / "x")]) == 2


@pytest.mark.slow
def test_default_build_learns_the_scripted_chats(tmp_path):
    path = build_tiny_policy(TinyConfig(), tmp_path / "default", force=True, log=lambda _: None)  # not the shipped
    info = json.loads((path / BUILD_INFO).read_text())
    assert info["sft_loss"][-1] < 0.35 * info["sft_loss"][0]
    assert 150_000 < info["parameters"] < 2_000_000


def test_thread_count_is_part_of_the_settings(tmp_path, monkeypatch):
    """Another thread count rounds differently and builds another policy: it gets its own cache entry."""
    monkeypatch.setenv(CACHE_VARIABLE, str(tmp_path))
    assert TinyConfig().threads == 2
    one, two = TinyConfig(**{**FAST, "threads": 1}), TinyConfig(**FAST)
    assert settings_hash(one) != settings_hash(two)
    path = build_tiny_policy(two, log=lambda _: None)
    assert path == tiny_policy_path(two)
    info = json.loads((path / BUILD_INFO).read_text())
    assert info["torch_threads"] == 2 and info["config"]["threads"] == 2
    with pytest.raises(ValueError, match="threads"):
        TinyConfig(threads=0)
