"""Re-skin an environment with a harness: the tools under their shown names and schemas, calling the
real ones; the system prompt and its tool list; the answer format that is graded.

:func:`plan` checks a harness against an environment's tools (every rename names a tool or argument that
exists, no two tools or arguments end up with one name) and raises :class:`~pte_rl.errors.InputError`
naming the variant; :func:`reskin` builds the re-skinned :class:`~pte_rl.rollout.env.Environment`.
A shown tool is a typed function like any other tool (its signature and Google-style docstring give its
schema), whose body maps the shown arguments back to the real ones: what the tools do never changes.
"""

from __future__ import annotations

import inspect
import json
import keyword
import re
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pte_rl.checkers import strip_reasoning
from pte_rl.checkers.base import last_boxed
from pte_rl.errors import InputError
from pte_rl.rollout.env import Environment
from pte_rl.rollout.harness.spec import BUILTIN_VARIANTS, Harness
from pte_rl.tools.call_syntax import render_call, render_calls
from pte_rl.tools.common import ToolInputError, ToolText
from pte_rl.tools.schema import ToolSchemaError, function_schema

RULE_NOTES = {
    "each": " Give a list: the tool runs once per item.",
    "join": " Give a list: its items are joined into one.",
    "first": " Give a list: only its first item is used.",
}
ANSWER_FORMS = {"boxed": "\\boxed{{{x}}}", "final_answer": 'a last line "Final answer: {x}"',
                "answer_tag": "<answer>{x}</answer>"}
CALL_INSTRUCTIONS = {
    "hermes": "To call a function, write a JSON object with its name and arguments within <tool_call></tool_call> "
              "tags, for example:",
    "llama3_json": "To call a function, reply with only a JSON object with its name and parameters, for example:",
    "pythonic": "To call functions, reply with a Python list of calls with keyword arguments, for example:",
    "fenced_code": "To call functions, write Python calls with keyword arguments, one a line, in a ```tool_code "
                   "block, for example:",
}
_BOXED_INSTRUCTION = re.compile(r"\\boxed\{([^{}]*)\}")
_FINAL_ANSWER = re.compile(r"^[ \t*]*final answer[ \t*]*:[ \t*]*(.+?)[ \t*]*$", re.IGNORECASE | re.MULTILINE)
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


@dataclass(frozen=True)
class ShownArgument:
    real: str
    shown: str
    rule: str | None = None  # a list rule when the argument is shown as list[str]


@dataclass(frozen=True)
class ShownTool:
    real: str
    shown: str
    description: str
    arguments: tuple[ShownArgument, ...]
    unchanged: bool


def plan(harness: Harness, tools: Sequence[Callable]) -> list[ShownTool]:
    """How each tool is shown under ``harness``; bad renames raise InputError naming the variant."""
    functions = {fn.__name__: fn for fn in tools}
    for table in ("tool_names", "argument_names", "list_arguments", "descriptions"):
        missing = sorted(set(getattr(harness, table)) - set(functions))
        if missing:
            _fail(harness, f"{table}: no tool named {', '.join(map(repr, missing))} in the environment "
                           f"(its tools: {', '.join(functions)})")
    shown_tools = []
    for real, fn in functions.items():
        schema = _schema(harness, fn)
        shown = harness.tool_names.get(real) or harness.tool_name_template.format(name=real)
        _check_name(harness, f"tool {real!r}", shown)
        original = schema["description"]
        description = harness.descriptions.get(real) or harness.description_template.format(
            description=original, first_sentence=first_sentence(original), name=shown)
        arguments = _plan_arguments(harness, real, fn, schema)
        unchanged = shown == real and description == original and all(
            a.shown == a.real and a.rule is None for a in arguments)
        shown_tools.append(ShownTool(real, shown, description, arguments, unchanged))
    _check_unique(harness, "tools", [(t.real, t.shown) for t in shown_tools])
    return shown_tools


def _plan_arguments(harness: Harness, tool: str, fn: Callable, schema: dict) -> tuple[ShownArgument, ...]:
    names = list(schema["parameters"]["properties"])
    hints = typing.get_type_hints(fn)
    renames = harness.argument_names.get(tool, {})
    rules = dict(harness.list_arguments.get(tool, {}))
    unknown = sorted((set(renames) | set(rules)) - set(names))
    if unknown:
        table = "argument_names" if set(unknown) & set(renames) else "list_arguments"
        _fail(harness, f"{table}.{tool}: no argument {', '.join(map(repr, unknown))} (its arguments: "
                       f"{', '.join(names) or 'none'})")
    if harness.list_rule is not None and not rules:
        first = next((n for n in schema["parameters"]["required"] if hints.get(n) is str), None)
        if first is not None:
            rules[first] = harness.list_rule
    for name in rules:
        if hints.get(name) is not str:
            _fail(harness, f"list_arguments.{tool}.{name}: only a str argument can be shown as a list")
    if list(rules.values()).count("each") > 1:
        _fail(harness, f"list_arguments.{tool}: at most one argument may have the rule 'each'")
    arguments = []
    for name in names:
        rule = rules.get(name)
        shown = renames.get(name) or harness.argument_name_template.format(
            tool=tool, name=plural(name) if rule else name)
        _check_name(harness, f"argument {name!r} of tool {tool!r}", shown)
        arguments.append(ShownArgument(name, shown, rule))
    _check_unique(harness, f"arguments of tool {tool!r}", [(a.real, a.shown) for a in arguments])
    return tuple(arguments)


def _schema(harness: Harness, fn: Callable) -> dict:
    try:
        return function_schema(fn)["function"]
    except ToolSchemaError as exc:
        raise InputError(f"harness variant {harness.name!r}: {exc}") from None


def _fail(harness: Harness, problem: str) -> typing.NoReturn:
    raise InputError(f"harness variant {harness.name!r}: {problem}")


def _check_name(harness: Harness, what: str, shown: str) -> None:
    if not shown.isidentifier() or keyword.iskeyword(shown):
        _fail(harness, f"{what} would be shown as {shown!r}, which is not a valid identifier")


def _check_unique(harness: Harness, what: str, pairs: list[tuple[str, str]]) -> None:
    owners: dict[str, str] = {}
    for real, shown in pairs:
        if shown in owners:
            _fail(harness, f"{what} {owners[shown]!r} and {real!r} would both be named {shown!r}")
        owners[shown] = real


def plural(name: str) -> str:
    """The plural of an argument name.

    >>> [plural(n) for n in ("query", "expression", "box", "key")]
    ['queries', 'expressions', 'boxes', 'keys']
    """
    if name.endswith("y") and name[-2:-1] not in tuple("aeiou"):
        return name[:-1] + "ies"
    if name.endswith(("s", "x", "z", "ch", "sh")):
        return name + "es"
    return name + "s"


def first_sentence(text: str) -> str:
    """The text up to its first full stop followed by a space or the end (the whole first line else)."""
    match = re.match(r"(.+?[.!?])(\s|$)", text.strip(), re.DOTALL)
    return (match.group(1) if match else text.strip().splitlines()[0] if text.strip() else "").strip()


def shown_function(tool: ShownTool, fn: Callable, separator: str = " ") -> Callable[..., Any]:
    """The tool as the harness shows it: its own name, signature and docstring; it calls ``fn``."""
    if tool.unchanged:
        return fn
    hints = typing.get_type_hints(fn)
    real_parameters = inspect.signature(fn).parameters
    properties = function_schema(fn)["function"]["parameters"]["properties"]
    parameters, lines = [], []
    for argument in tool.arguments:
        annotation = list[str] if argument.rule else hints[argument.real]
        parameters.append(inspect.Parameter(argument.shown, inspect.Parameter.KEYWORD_ONLY,
                                            default=real_parameters[argument.real].default, annotation=annotation))
        note = RULE_NOTES[argument.rule] if argument.rule else ""
        lines.append(f"    {argument.shown}: {properties[argument.real]['description']}{note}".rstrip())
    by_shown = {a.shown: a for a in tool.arguments}

    def call(**kwargs: Any) -> Any:
        real: dict[str, Any] = {}
        each: tuple[str, list] | None = None
        for shown, value in kwargs.items():
            argument = by_shown[shown]
            if argument.rule is not None and not value:
                raise ToolInputError(f"{shown}: expected a list with at least one item")
            if argument.rule == "each":
                each = (argument.real, list(value))
            real[argument.real] = {"join": lambda v: separator.join(v), "first": lambda v: v[0]}.get(
                argument.rule or "", lambda v: v)(value)
        if each is None:
            return fn(**real)
        return _joined([fn(**{**real, each[0]: item}) for item in each[1]])

    call.__name__ = call.__qualname__ = tool.shown
    call.__doc__ = tool.description + ("\n\nArgs:\n" + "\n".join(lines) if lines else "")
    call.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    call.__annotations__ = {p.name: p.annotation for p in parameters}
    return call


def _joined(results: list[Any]) -> Any:
    """One response from the responses to each item (a failure in any of them is the whole one's)."""
    if len(results) == 1:
        return results[0]
    texts = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False, default=str) for r in results]
    error = next((getattr(r, "error", None) for r in results if getattr(r, "error", None)), None)
    truncated = any(getattr(r, "truncated", False) for r in results)
    return ToolText("\n\n".join(texts), error=error, truncated=truncated)


def shown_prompt(harness: Harness, messages: list[dict], tools: Sequence[ShownTool], schemas: list[dict]) -> list[dict]:
    """The prompt's messages as the harness shows them: the system message rewritten (its text, the
    tools' shown names, the answer instruction, and the tool list where the template does not render it)."""
    messages = [dict(m) for m in messages]
    has_system = bool(messages) and messages[0].get("role") == "system"
    original = str(messages[0].get("content") or "") if has_system else ""
    content = original if harness.system_prompt is None else harness.system_prompt.format(system_prompt=original)
    renames = {t.real: t.shown for t in tools if t.shown != t.real}
    if renames:
        pattern = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, sorted(renames, key=len, reverse=True)))
                             + r")(?!\w)")
        content = pattern.sub(lambda m: renames[m.group(1)], content)
    if harness.answer_format is not None:
        content = answer_instruction(content, harness.answer_format)
    if not harness.template_tools:
        content = f"{content}\n\n{tool_list(harness, tools, schemas)}".lstrip()
    if content == original:
        return messages
    if has_system:
        messages[0]["content"] = content
    else:
        messages.insert(0, {"role": "system", "content": content})
    return messages


def answer_instruction(text: str, answer_format: str) -> str:
    """``text`` asking for ``answer_format``: each ``\\boxed{X}`` rewritten, or a sentence appended.

    >>> answer_instruction("Give the final answer as \\\\boxed{N}.", "answer_tag")
    'Give the final answer as <answer>N</answer>.'
    """
    form = ANSWER_FORMS[answer_format]
    rewritten, count = _BOXED_INSTRUCTION.subn(lambda m: form.format(x=m.group(1)), text)
    if count:
        return rewritten
    return f"{text.rstrip()} Give the final answer as {form.format(x='the answer')}.".lstrip()


def tool_list(harness: Harness, tools: Sequence[ShownTool], schemas: list[dict]) -> str:
    """The tool list and call instructions for the system prompt (where the template does not render them)."""
    lines = "\n".join(json.dumps(s, ensure_ascii=False) for s in schemas)
    example = ""
    if tools:
        argument = next(iter(tools[0].arguments), None)
        arguments = {} if argument is None else {argument.shown: ["..."] if argument.rule else "..."}
        example = render_call(harness.call_syntax, tools[0].shown, arguments)
    return (f"# Tools\n\nYou may call one or more functions. Their signatures:\n<tools>\n{lines}\n</tools>\n\n"
            f"{CALL_INSTRUCTIONS[harness.call_syntax]}\n{example}")


def formatted_answer(text: str, answer_format: str) -> str | None:
    """The final answer written in ``answer_format`` (the last one), or None when there is none."""
    text = strip_reasoning(text or "")
    if answer_format == "boxed":
        return last_boxed(text)
    matches = (_FINAL_ANSWER if answer_format == "final_answer" else _ANSWER_TAG).findall(text)
    answer = matches[-1].strip() if matches else ""
    return answer or None


class FormattedAnswerChecker:
    """The environment's checker, given only an answer written in the harness's format (else False)."""

    def __init__(self, checker: Callable[[str, Any], bool | None], answer_format: str):
        self.checker, self.answer_format = checker, answer_format

    def __call__(self, text: str, ground_truth: Any) -> bool | None:
        answer = formatted_answer(text, self.answer_format)
        if answer is None:
            verdict = self.checker("", ground_truth)  # None when the task cannot be graded at all
            return None if verdict is None else False
        return self.checker(answer, ground_truth)


@dataclass(eq=False)
class Skin:
    """What a rollout needs of a re-skin: the harness, the shown tools (calling the real ones) and their
    schemas, the checker of its answer format, and :meth:`prompt` to rewrite a prompt's messages."""

    harness: Harness
    shown: list[ShownTool]
    tools: list[Callable[..., Any]]
    schemas: list[dict]
    check_answer: Callable[[str, Any], bool | None]

    def prompt(self, messages: list[dict]) -> list[dict]:
        return shown_prompt(self.harness, messages, self.shown, self.schemas)

    def chat(self, messages: list[dict]) -> list[dict]:
        """A whole chat as this harness shows it (a scripted chat of the tiny policy's build): the prompt
        rewritten, each call (OpenAI form) under its shown name and arguments, written in the harness's
        syntax where that is not the template's Hermes, and the final ``\\boxed{X}`` in its answer format."""
        by_real = {t.real: t for t in self.shown}
        syntax, out = self.harness.syntax, self.prompt(messages)
        for index, message in enumerate(out):
            if message.get("role") == "tool" and message.get("name") in by_real:
                out[index] = {**message, "name": by_real[message["name"]].shown}
            if message.get("role") != "assistant":
                continue
            calls = [_shown_call(by_real, call) for call in message.get("tool_calls") or []]
            content = str(message.get("content") or "")
            if not calls:
                out[index] = {**message, "content": answer_text(content, self.harness.answer_format)}
            elif syntax in (None, "hermes"):
                out[index] = {**message, "tool_calls": [
                    {"type": "function", "function": {"name": n, "arguments": a}} for n, a in calls]}
            else:
                written = render_calls(syntax, calls)
                joiner = "<|python_tag|>" if syntax == "llama3_json" else "\n"
                out[index] = {"role": "assistant", "content": f"{content}{joiner}{written}" if content else written}
        return out


def _shown_call(by_real: dict[str, ShownTool], call: dict) -> tuple[str, dict]:
    function = call.get("function", call)
    name, arguments = function.get("name"), function.get("arguments") or {}
    if isinstance(arguments, str):
        arguments = json.loads(arguments)
    tool = by_real.get(name)
    if tool is None:  # not one of the tools: left as it was
        return name, arguments
    return tool.shown, {a.shown: [arguments[a.real]] if a.rule else arguments[a.real]
                        for a in tool.arguments if a.real in arguments}


def answer_text(text: str, answer_format: str | None) -> str:
    """A final answer's ``\\boxed{X}`` written in ``answer_format`` (``final_answer``: moved to a last line).

    >>> answer_text("So \\\\boxed{42}.", "final_answer")
    'So .\\nFinal answer: 42'
    """
    found = _BOXED_INSTRUCTION.findall(text)
    if answer_format in (None, "boxed") or not found:
        return text
    if answer_format == "answer_tag":
        return _BOXED_INSTRUCTION.sub(lambda m: f"<answer>{m.group(1)}</answer>", text)
    rest = _BOXED_INSTRUCTION.sub("", text).strip()
    return f"{rest}\nFinal answer: {found[-1]}" if rest else f"Final answer: {found[-1]}"


def make_skin(harness: Harness, tools: Sequence[Callable], check_answer: Callable[[str, Any], bool | None]) -> Skin:
    """The re-skin of ``tools`` and ``check_answer`` by ``harness`` (checked by :func:`plan`)."""
    from pte_rl.tools import Toolset

    shown = plan(harness, tools)
    functions = [shown_function(t, fn, harness.separator) for t, fn in zip(shown, tools, strict=True)]
    checker = check_answer if harness.answer_format is None else FormattedAnswerChecker(
        check_answer, harness.answer_format)
    return Skin(harness, shown, functions, Toolset(functions).schemas, checker)


@dataclass
class ReskinnedEnvironment(Environment):
    """An environment as a harness shows it; pickled as (base environment, harness)."""

    harness: Harness = field(default_factory=lambda: BUILTIN_VARIANTS["training"])
    base: Environment | None = field(default=None, repr=False)

    def __reduce__(self):
        return (reskin, (self.base, self.harness))


def reskin(env: Environment, harness: Harness) -> ReskinnedEnvironment:
    """``env`` under ``harness``: shown tools calling the real ones, rewritten prompts, the answer
    format's checker. The ``training`` harness gives back the same tools, prompts and checker."""
    base = env.base if isinstance(env, ReskinnedEnvironment) and env.base is not None else env
    skin = make_skin(harness, base.tools, base.check_answer)

    def rewrite(dataset: Any) -> Any:
        if dataset is None:
            return None
        prompts = [skin.prompt(p) for p in dataset["prompt"]]
        if prompts == dataset["prompt"]:
            return dataset
        return dataset.remove_columns("prompt").add_column("prompt", prompts)

    system = skin.prompt([{"role": "system", "content": base.system_prompt}])
    return ReskinnedEnvironment(
        name=base.name, dataset=rewrite(base.dataset), tools=skin.tools, check_answer=skin.check_answer,
        eval_dataset=rewrite(base.eval_dataset), system_prompt=system[0]["content"], max_turns=base.max_turns,
        source=base.source, harness=harness, base=base,
    )
