"""Detectors of the paper's confirmatory tool use, tool mixing and lack of tool priors, and of
repeated calls, overlong responses and front-loading (definitions in pte_rl.patterns)."""

from __future__ import annotations

import json
import re
from typing import Any

from pte_rl.checkers import accepted_answers, clean_answer, extract_answer, normalize_qa, parse_number
from pte_rl.checkers.text import strip_decorations
from pte_rl.patterns.base import (
    DEFAULT_CONFIG,
    FORMAT_KINDS,
    Flag,
    PatternConfig,
    is_compute_tool,
    snippet,
    toolset_of,
    turn_texts,
    unique_flags,
)
from pte_rl.patterns.outputs import read_output
from pte_rl.pricing.trajectory import Trajectory

# ---------------------------------------------------------------- confirmatory

_NUMBER_TOKEN = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\w]|\.\d|,\d{3})")
_FRACTION_TEXT = re.compile(
    r"\\[dt]?frac\s*\{\s*(\d+)\s*\}\s*\{\s*(\d+)\s*\}|(?<![\w.])(\d+)\s*/\s*(\d+)(?![\w.])"
)
_NUMERIC_ANSWER = re.compile(
    r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+|[-+]?\\[dt]?frac\{\d+\}\{\d+\}|[-+]?\d+/\d+"
)


def _numbers_in(text: str) -> list[tuple[float, int, int]]:
    """(value, start, end) of the number tokens of ``text``: integers, decimals, 1,000s, fractions."""
    found = []
    for match in _FRACTION_TEXT.finditer(text):
        num, den = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
        if int(den):
            found.append((int(num) / int(den), match.start(), match.end()))
    for match in _NUMBER_TOKEN.finditer(text):
        found.append((float(match.group(0).replace(",", "")), match.start(), match.end()))
    out = []
    for value, start, end in found:
        before = text[:start].rstrip(" ")
        # A minus right before, and not a binary minus ("x-4"), makes the number negative.
        if before.endswith(("-", "−")) and (len(before) < 2 or not re.match(r"[\w)\]}]", before[-2])):
            value = -value
        out.append((value, start, end))
    return out


def _answer_candidates(trajectory: Trajectory, texts: list[str]) -> list[tuple[str, str]]:
    """(label, answer) pairs: the final answer and each accepted ground truth."""
    candidates = []
    answer = trajectory.answer
    if (
        (answer is None or not str(answer).strip())
        and trajectory.turns
        and not trajectory.turns[-1].tool_calls
    ):
        answer = extract_answer(texts[-1])[0]
    if answer is not None and str(answer).strip():
        candidates.append(("final answer", str(answer)))
    try:
        truths = accepted_answers(trajectory.ground_truth, "ungraded") or []
    except TypeError:  # a ground truth of another shape (a dict, ...) holds nothing to look for
        truths = []
    candidates += [("ground truth", t) for t in truths if ("final answer", t) not in candidates]
    return candidates


def _find_answer(answer: str, text: str) -> tuple[int, int] | None:
    """Where ``answer`` stands in ``text``: a number as a number token, words as normalised whole
    words, a formula (``\\frac{\\sqrt{3}}{3}``) as the same characters with any spacing."""
    cleaned = strip_decorations(clean_answer(answer)).strip()
    if _NUMERIC_ANSWER.fullmatch(cleaned.replace(" ", "")):
        target = parse_number(cleaned)
        if target is None:
            return None
        for value, start, end in _numbers_in(text):
            if abs(value - target) <= 1e-9 * max(1.0, abs(target)):
                return start, end
        return None
    if re.fullmatch(r"[\w\s.,'’-]+", cleaned):
        words = normalize_qa(cleaned).split()
        pattern = r"\b" + r"\W+".join(re.escape(w) for w in words) + r"\b" if words else ""
    else:
        compact = re.sub(r"\s+", "", cleaned)
        pattern = r"\s*".join(re.escape(ch) for ch in compact) if 3 <= len(compact) <= 200 else ""
    if not pattern:
        return None
    match = re.search(pattern, text, re.IGNORECASE)
    return (match.start(), match.end()) if match else None


def confirmatory(trajectory: Trajectory, config: PatternConfig = DEFAULT_CONFIG) -> list[Flag]:
    first = next(
        (
            (i, c)
            for i, t in enumerate(trajectory.turns)
            for c in t.tool_calls
            if is_compute_tool(c.name, config)
        ),
        None,
    )
    if first is None:
        return []
    call_turn, call = first
    texts = turn_texts(trajectory)
    before = [*texts[:call_turn], texts[call_turn].split("<tool_call>")[0]]
    for label, answer in _answer_candidates(trajectory, texts):
        for turn, text in enumerate(before):
            where = _find_answer(answer, text)
            if where is not None:
                return [
                    Flag(
                        "confirmatory",
                        turn,
                        f"{label} {answer!r} stated before the first {call.name} call "
                        f"(turn {call_turn}): {snippet(text, *where)}",
                        label,
                    )
                ]
    return []


# ---------------------------------------------------------------- tool use


def _tool_names(trajectory: Trajectory) -> set[str] | None:
    if trajectory.tools is None:
        return None
    names = ((t.get("function") or t).get("name") for t in trajectory.tools if isinstance(t, dict))
    return {name for name in names if isinstance(name, str)}


def tool_mixing(trajectory: Trajectory, config: PatternConfig = DEFAULT_CONFIG) -> list[Flag]:
    given = _tool_names(trajectory)
    seen: dict[str, tuple[int, str]] = {}
    for index, turn in enumerate(trajectory.turns):
        for call in turn.tool_calls:
            if call.error in ("bad_json", "unknown_tool") or (given is not None and call.name not in given):
                continue
            seen.setdefault(toolset_of(call.name, config), (index, call.name))
    if len(seen) < 2:
        return []
    second_turn = sorted(t for t, _ in seen.values())[1]
    listed = "; ".join(f"{s}: {name} (turn {t})" for s, (t, name) in seen.items())
    return [Flag("tool_mixing", second_turn, f"{len(seen)} toolsets: {listed}", value=float(len(seen)))]


_EXCEPTION_LINE = re.compile(r"^\w*(?:Error|Exception|Interrupt|Exit)\b:?.*$", re.MULTILINE)


def _output_flag(index: int, name: str, text: str) -> Flag | None:
    """An empty or raising output, read through its wrapper (pte_rl.patterns.outputs)."""
    output = read_output(text)
    if output.empty:
        shown = "" if output.wrapper == "plain" and not text.strip() else f" ({output.wrapper}: {text.strip()[:80]!r})"
        return Flag("lack_of_tool_priors", index, f"{name} returned nothing{shown}", "empty_output")
    if output.raised:
        errors = output.errors or output.printed
        raised = _EXCEPTION_LINE.findall(errors)  # the exception itself says most, a traceback's last line
        shown = raised[-1].strip()[:200] if raised else errors.strip().replace("\n", " ")[:200]
        if not shown and output.exit_code:
            shown = f"exit code {output.exit_code}"
        return Flag("lack_of_tool_priors", index, f"{name} output: {shown}", "tool_error")
    return None


def lack_of_tool_priors(trajectory: Trajectory, config: PatternConfig = DEFAULT_CONFIG) -> list[Flag]:
    flags = [
        Flag("lack_of_tool_priors", e.turn, e.text or e.detail or e.kind, e.kind)
        for e in trajectory.events
        if e.kind in ("tool_error", "empty_output")
    ]
    for index, turn in enumerate(trajectory.turns):
        for call in turn.tool_calls:
            if call.error is not None and call.error not in FORMAT_KINDS and call.error != "truncated_output":
                flags.append(
                    Flag(
                        "lack_of_tool_priors",
                        index,
                        f"{call.name} failed: {call.error}"
                        + (f": {call.output[:200]}" if call.output else ""),
                        call.error,
                    )
                )
            elif call.error is None and call.output is not None:
                flag = _output_flag(index, call.name, call.output)
                if flag is not None:
                    flags.append(flag)
    return unique_flags(flags)


def repeated_calls(trajectory: Trajectory, config: PatternConfig = DEFAULT_CONFIG) -> list[Flag]:
    first_seen: dict[tuple[str, str], int] = {}
    flags = []
    for index, turn in enumerate(trajectory.turns):
        for call in turn.tool_calls:
            key = (call.name, canonical_arguments(call.arguments))
            if key in first_seen:
                flags.append(
                    Flag(
                        "repeated_calls",
                        index,
                        f"{call.name}({key[1][:200]}) again, first called at turn {first_seen[key]}",
                        call.name,
                    )
                )
            else:
                first_seen[key] = index
    return flags


def canonical_arguments(arguments: Any) -> str:
    """Arguments as canonical JSON (sorted keys, no spaces); JSON text is parsed first."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return arguments.strip()
    return json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def overlong_responses(trajectory: Trajectory, config: PatternConfig = DEFAULT_CONFIG) -> list[Flag]:
    flags = [
        Flag(
            "overlong_responses",
            index,
            f"{call.name} response of {call.response_tokens} tokens > {config.overlong_tokens}",
            call.name,
            float(call.response_tokens),
        )
        for index, turn in enumerate(trajectory.turns)
        for call in turn.tool_calls
        if call.response_tokens > config.overlong_tokens
    ]
    flags += [
        Flag("overlong_responses", index, f"{call.name} output truncated", "truncated_output")
        for index, turn in enumerate(trajectory.turns)
        for call in turn.tool_calls
        if call.error == "truncated_output"
    ]
    flags += [
        Flag("overlong_responses", e.turn, e.text or e.detail or "output truncated", e.kind)
        for e in trajectory.events
        if e.kind == "truncated_output"
    ]
    return unique_flags(flags)


def front_loading_share(trajectory: Trajectory) -> tuple[float, int, int] | None:
    """(share, decode tokens up to and including the first call's turn, that turn); None without calls."""
    total = trajectory.decode_tokens
    for index, turn in enumerate(trajectory.turns):
        if turn.tool_calls:
            before = sum(t.decode_tokens for t in trajectory.turns[: index + 1])
            return (before / total if total else 0.0), before, index
    return None


def front_loading(trajectory: Trajectory, config: PatternConfig = DEFAULT_CONFIG) -> list[Flag]:
    found = front_loading_share(trajectory)
    if found is None:
        return []
    share, before, index = found
    if share > config.front_loading_share and before >= config.front_loading_min_tokens:
        return [
            Flag(
                "front_loading",
                index,
                f"{before} of {trajectory.decode_tokens} decode tokens "
                f"({100 * share:.0f}%) before the first call returned",
                value=share,
            )
        ]
    return []
