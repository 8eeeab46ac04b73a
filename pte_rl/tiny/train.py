"""The two training loops of a build: the copy drill, then the supervised warm start on the chats."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from pte_rl.tiny.config import TOOL_TOKENS, TinyConfig


def common_prefix_length(sequences: list[list[int]]) -> int:
    """Length of the longest common prefix, leaving every sequence at least one token after it."""
    length = min(len(s) for s in sequences) - 1
    first = sequences[0]
    for other in sequences[1:]:
        i = 0
        while i < length and other[i] == first[i]:
            i += 1
        length = i
    return max(0, length)


def token_losses(model: Any, rows: list[tuple[list[int], list[int]]]) -> tuple[Any, Any]:
    """(summed loss, counted tokens) of next-token prediction over ``rows``, each an (ids, mask).

    Exact, but cheaper than a plain padded batch: the prefix every row shares (the system prompt
    with the tool schemas, the start of the question) is run once and its keys and values are
    reused by every row; its tokens are counted once. A target token counts where its mask is 1.
    """
    import torch
    import torch.nn.functional as F

    pad = model.config.pad_token_id
    prefix = common_prefix_length([ids for ids, _ in rows])
    total = torch.zeros(())
    count = 0
    past = None
    if prefix > 0:
        ids, mask = rows[0]
        out = model(input_ids=torch.tensor([ids[:prefix]]), use_cache=True)
        targets = torch.tensor(ids[1:prefix])
        weights = torch.tensor(mask[1:prefix], dtype=torch.float32)
        if len(targets):
            losses = F.cross_entropy(out.logits[0, :-1], targets, reduction="none")
            total = total + (losses * weights).sum()
            count += int(weights.sum())
        last_logits = out.logits[0, -1]
        past = out.cache
        past.batch_repeat_interleave(len(rows))
    width = max(len(ids) for ids, _ in rows) - prefix
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    attention = torch.zeros((len(rows), prefix + width), dtype=torch.long)
    attention[:, :prefix] = 1
    for r, (ids, mask) in enumerate(rows):
        tail = ids[prefix:]
        input_ids[r, : len(tail)] = torch.tensor(tail)
        attention[r, prefix : prefix + len(tail)] = 1
        labels[r, : len(tail)] = torch.tensor([t if m else -100 for t, m in zip(tail, mask[prefix:], strict=True)])
    out = model(input_ids=input_ids, attention_mask=attention, cache=past, use_cache=past is not None)
    logits = out.logits[:, :-1]
    if prefix > 0:  # the prefix's last position predicts every row's first own token
        logits = torch.cat([last_logits.expand(len(rows), 1, -1), out.logits[:, :-1]], dim=1)
        targets = labels
    else:
        targets = labels[:, 1:]
    losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum",
                             ignore_index=-100)
    return total + losses, count + int((targets != -100).sum())


def batches_by_tokens(lengths: list[int], token_budget: int, max_rows: int) -> list[list[int]]:
    """Indices grouped by length (sorted), each group's rows x longest length within the budget."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        if current and (len(current) + 1) * lengths[index] > token_budget or len(current) == max_rows:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def copy_drill_batch(tokenizer: Any, rows: int, max_gap: int, generator: Any,
                     min_digits: int = 1, distractor: float = 0.0, tokens: str = "digits") -> tuple[Any, Any]:
    """One batch of the copy drill: (input ids, labels with -100 outside the copies).

    Each row is ``token, span, filler, span``: ``span`` is ``min_digits``-6 random digits, or (with
    two or more digits) two numbers joined by an operator (what a policy copies: ``2146``, ``37*58``),
    the filler 3-``max_gap`` random non-special tokens that are neither digits nor operators. The loss
    covers the copy only. A share ``distractor`` of the rows is ``token, decoy, near, span, filler,
    span``: the decoy holds the span's digits shuffled (an operator in the middle half of the time), the
    near filler 1-8 tokens, so the copy must come from the latest number, not from an earlier one
    with the same digits (``16*28`` before ``448``).

    With ``tokens="any"``, half of the rows (drawn first) copy a span of 1-6 random ordinary tokens
    instead (what a policy copies from a name: ``Viatatour`` is several tokens of letters), its decoy
    the same tokens shuffled; ``"digits"`` draws exactly as before the option existed.
    """
    import torch

    digits = [tokenizer.convert_tokens_to_ids(c) for c in "0123456789"]
    operators = [tokenizer.convert_tokens_to_ids(c) for c in "+-*"]
    specials = set(tokenizer.all_special_ids) | set(tokenizer.convert_tokens_to_ids(list(TOOL_TOKENS)))
    ordinary = [i for i in range(len(tokenizer)) if i not in specials and i not in digits + operators]

    def pick(options: list[int], count: int) -> list[int]:
        return [options[i] for i in torch.randint(len(options), (count,), generator=generator).tolist()]

    sequences = []
    for _ in range(rows):
        if tokens == "any" and torch.rand((), generator=generator) < 0.5:  # a name: ordinary tokens
            span = pick(ordinary, int(torch.randint(1, 7, (), generator=generator)))
            gap = pick(ordinary, int(torch.randint(3, max(4, max_gap + 1), (), generator=generator)))
            head = pick(ordinary, 1)
            if distractor and torch.rand((), generator=generator) < distractor and len(span) > 1:
                head += [span[i] for i in torch.randperm(len(span), generator=generator).tolist()]
                head += pick(ordinary, int(torch.randint(1, 9, (), generator=generator)))
            sequences.append((head + span + gap, span))
            continue
        span = pick(digits, int(torch.randint(min_digits, 7, (), generator=generator)))
        if torch.rand((), generator=generator) < 0.5 and len(span) > 1:  # an expression: number, operator, number
            span = span[: max(1, len(span) // 2)] + pick(operators, 1) + span[max(1, len(span) // 2) :]
        gap = pick(ordinary, int(torch.randint(3, max(4, max_gap + 1), (), generator=generator)))
        head = pick(ordinary, 1)
        if distractor and torch.rand((), generator=generator) < distractor:
            numbers = [t for t in span if t in digits]
            decoy = [numbers[i] for i in torch.randperm(len(numbers), generator=generator).tolist()]
            if len(decoy) > 1 and torch.rand((), generator=generator) < 0.5:
                decoy = decoy[: len(decoy) // 2] + pick(operators, 1) + decoy[len(decoy) // 2 :]
            head += decoy + pick(ordinary, int(torch.randint(1, 9, (), generator=generator)))
        sequences.append((head + span + gap, span))
    width = max(len(head) + len(span) for head, span in sequences)
    ids = torch.full((rows, width), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full((rows, width), -100, dtype=torch.long)
    for row, (head, span) in enumerate(sequences):
        ids[row, : len(head) + len(span)] = torch.tensor(head + span)
        labels[row, len(head) : len(head) + len(span)] = torch.tensor(span)
    return ids, labels


def copy_drill(model: Any, tokenizer: Any, config: TinyConfig, log: Callable[[str], None]) -> list[float]:
    """Teach the freshly initialised model to copy before it sees a chat; returns the copy accuracy
    (argmax, teacher-forced) every 50 updates.

    Why: every path of a scripted chat copies numbers (the question's expression into a tool call, a
    tool's result into the answer), but with the copies a handful of tokens among hundreds, a
    0.25M-parameter model trained on chats alone did not find the attention pattern that copies in
    1000 updates (answer digits at chance; docs/tiny.md). On a synthetic task where the copies are
    the only loss it forms within a few hundred updates, and the warm start then keeps it.
    """
    import torch
    import torch.nn.functional as F

    if config.copy_steps == 0:
        return []
    generator = torch.Generator().manual_seed(config.seed + 7919)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, betas=(0.9, 0.98),
                                  weight_decay=config.weight_decay)
    model.train()
    accuracies, start = [], time.perf_counter()
    for step in range(config.copy_steps):
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate * min(1.0, (step + 1) / config.warmup_steps)
        ids, labels = copy_drill_batch(tokenizer, config.copy_batch_size, config.copy_max_gap, generator,
                                       config.copy_min_digits, config.copy_distractor, config.copy_tokens)
        logits = model(input_ids=ids).logits[:, :-1]
        targets = labels[:, 1:]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if (step + 1) % 50 == 0 or step + 1 == config.copy_steps:
            scored = targets != -100
            accuracies.append(float((logits.argmax(-1)[scored] == targets[scored]).float().mean()))
            log(f"copy drill step {step + 1}/{config.copy_steps}: loss {loss.item():.4f}, copy accuracy "
                f"{accuracies[-1]:.3f} ({time.perf_counter() - start:.0f} s)")
    model.eval()
    return accuracies


def supervised_warm_start(
    model: Any, data: list[tuple[list[int], list[int]]], config: TinyConfig, log: Callable[[str], None],
    callback: Callable[[int, Any], None] | None = None,
) -> list[float]:
    """Next-token cross-entropy over length-bucketed batches; returns the loss every 10 steps.

    ``callback(step, model)``, when given, runs after every 10th step (for diagnostics).
    """
    import torch

    generator = torch.Generator().manual_seed(config.seed)
    prefix = common_prefix_length([ids for ids, _ in data])
    batches = batches_by_tokens([len(ids) - prefix for ids, _ in data], config.batch_tokens, config.batch_size)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=config.learning_rate, betas=(0.9, 0.98), eps=1e-8)

    def rate(step: int) -> float:  # linear warm-up, cosine decay to 10%
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, config.sft_steps - config.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    model.train()
    losses, running = [], []
    queue: list[list[int]] = []
    start = time.perf_counter()
    for step in range(config.sft_steps):
        if not queue:
            queue = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        total, count = token_losses(model, [data[i] for i in queue.pop()])
        loss = total / max(1, count)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        running.append(loss.item())
        if (step + 1) % 10 == 0 or step + 1 == config.sft_steps:
            losses.append(sum(running) / len(running))
            running = []
            log(f"warm start step {step + 1}/{config.sft_steps}: loss {losses[-1]:.4f} "
                f"({time.perf_counter() - start:.0f} s)")
            if callback is not None:
                model.eval()
                with torch.no_grad():
                    callback(step + 1, model)
                model.train()
    model.eval()
    return losses
