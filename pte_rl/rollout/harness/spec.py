"""What a harness is (:class:`Harness`), the built-in variants, and user variants from YAML / JSON.

A harness is what the policy sees of the tools: their names, descriptions, argument names and shapes,
the call syntax the parser accepts, the system prompt and the answer format. A variant re-skins an
environment without changing what its tools do (:func:`pte_rl.rollout.harness.reskin`).

Built-in variants have stable names (:data:`BUILTIN_VARIANTS`); those marked ``held_out`` are kept out
of the training family (:data:`TRAINING_FAMILY`), so that a probe can tell a policy that reads the
harness it is given from one that learned the training family by heart.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pte_rl.errors import InputError
from pte_rl.tools.call_syntax import SYNTAXES

ANSWER_FORMATS = ("boxed", "final_answer", "answer_tag")
LIST_RULES = ("each", "join", "first")
TOOLS_IN = ("template", "system")


@dataclass(frozen=True)
class Harness:
    """One harness: how the environment's tools, prompt and answer look to the policy.

    Every field's default leaves that part as the environment has it, so ``Harness("training")`` is the
    identity. Templates are ``str.format`` strings; renames and overrides are keyed by the *real* names.
    """

    name: str
    """Stable name: how the probe's table, the trajectories' metadata and the recipe refer to it."""
    tool_names: dict[str, str] = field(default_factory=dict)
    """Real tool name -> the name shown (``{search: google_search_tool}``)."""
    tool_name_template: str = "{name}"
    """Shown name of every tool not in ``tool_names``; ``{name}`` is the real one (``{name}_tool``)."""
    argument_names: dict[str, dict[str, str]] = field(default_factory=dict)
    """Real tool -> {real argument -> shown argument}."""
    argument_name_template: str = "{name}"
    """Shown name of every other argument; ``{tool}`` and ``{name}`` are the real ones (``{tool}_{name}``)."""
    list_arguments: dict[str, dict[str, str]] = field(default_factory=dict)
    """Real tool -> {real ``str`` argument -> rule}: the argument is shown as ``list[str]`` (named in the
    plural unless renamed), and the rule maps it back: ``each`` runs the tool once per item and joins the
    responses, ``join`` joins the items with ``separator``, ``first`` passes the first item."""
    list_rule: str | None = None
    """The rule for every tool's first required ``str`` argument not in ``list_arguments`` (None: none)."""
    separator: str = " "
    """What ``join`` puts between items."""
    descriptions: dict[str, str] = field(default_factory=dict)
    """Real tool -> the description shown."""
    description_template: str = "{description}"
    """Description of every other tool: ``{description}``, ``{first_sentence}`` or ``{name}`` (shown)."""
    syntax: str | None = None
    """The only call syntax accepted (:data:`pte_rl.tools.call_syntax.SYNTAXES`); None: the training
    default, Hermes ``<tool_call>`` or Llama 3.1 JSON."""
    tools_in: str | None = None
    """``template``: the chat template renders the tool list (with its own call instructions);
    ``system``: the system prompt carries the list and this syntax's instructions. None: ``template``
    for Hermes and the default, ``system`` for the others."""
    system_prompt: str | None = None
    """The system prompt; ``{system_prompt}`` is the environment's (None: the environment's)."""
    answer_format: str | None = None
    """``boxed`` (``\\boxed{X}``), ``final_answer`` (a last line ``Final answer: X``) or ``answer_tag``
    (``<answer>X</answer>``): the only form graded, the prompt's instruction rewritten to ask for it.
    None: the environment's own instruction and checker."""
    held_out: bool = False
    """Kept out of the training family (built-ins named ``heldout_*``)."""

    def __post_init__(self) -> None:
        problem = _problem(self)
        if problem is not None:
            raise InputError(f"harness variant {self.name!r}: {problem}")

    @property
    def template_tools(self) -> bool:
        """Whether the chat template renders the tool list (else the system prompt carries it)."""
        if self.tools_in is not None:
            return self.tools_in == "template"
        return self.syntax in (None, "hermes")

    @property
    def call_syntax(self) -> str:
        """The syntax a call is written in (the default accepts Hermes, which examples use)."""
        return self.syntax or "hermes"

    def describe(self) -> dict[str, Any]:
        """The non-default fields, for records and tables."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name == "name" or getattr(self, f.name) != _default(f)}


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _problem(harness: Harness) -> str | None:
    """What is wrong with the fields on their own (names of real tools are checked by reskin)."""
    if not isinstance(harness.name, str) or not harness.name.strip():
        return "name: expected a non-empty string"
    choices = (("syntax", SYNTAXES), ("answer_format", ANSWER_FORMATS), ("tools_in", TOOLS_IN),
               ("list_rule", LIST_RULES))
    for name, allowed in choices:
        value = getattr(harness, name)
        if value is not None and value not in allowed:
            return f"{name}: expected one of {list(allowed)} or null, got {value!r}"
    for tool, rules in harness.list_arguments.items():
        for argument, rule in rules.items():
            if rule not in LIST_RULES:
                return f"list_arguments.{tool}.{argument}: expected one of {list(LIST_RULES)}, got {rule!r}"
    templates = (("tool_name_template", {"name"}), ("argument_name_template", {"tool", "name"}),
                 ("description_template", {"description", "first_sentence", "name"}),
                 ("system_prompt", {"system_prompt"}))
    for name, fields in templates:
        value = getattr(harness, name)
        if value is None:
            continue
        used = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
        if not used <= fields:
            return f"{name}: unknown placeholder(s) {sorted(used - fields)} in {value!r}; allowed: {sorted(fields)}"
    return None


BUILTIN_VARIANTS: dict[str, Harness] = {h.name: h for h in (
    Harness("training"),
    Harness("renamed", tool_name_template="{name}_tool"),
    Harness("args", argument_name_template="{tool}_{name}"),
    Harness("listargs", list_rule="each"),
    Harness("terse", description_template="{first_sentence}"),
    Harness("pythonic", syntax="pythonic"),
    Harness("fenced", syntax="fenced_code"),
    Harness("llama_json", syntax="llama3_json"),
    Harness("answer_tag", answer_format="answer_tag"),
    Harness("heldout_names", tool_name_template="run_{name}", held_out=True),
    Harness("heldout_args", argument_name_template="{name}_text", held_out=True),
    Harness("heldout_final", answer_format="final_answer", held_out=True),
    Harness("heldout_combo", tool_name_template="run_{name}", argument_name_template="{name}_text",
            list_rule="each", syntax="pythonic", answer_format="final_answer", held_out=True),
)}
"""The built-in variants by name; see docs/harness.md for what each shows the policy."""
TRAINING_FAMILY = tuple(name for name, h in BUILTIN_VARIANTS.items() if not h.held_out)


def harness_from_mapping(data: Any, where: str) -> Harness:
    """A :class:`Harness` from a YAML/JSON mapping; ``where`` names the file and entry in errors."""
    if not isinstance(data, Mapping):
        raise InputError(f"{where}: expected a mapping of harness fields, got {type(data).__name__}")
    known = {f.name: f for f in dataclasses.fields(Harness)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise InputError(f"{where}: unknown field(s) {unknown}; expected some of {sorted(known)}")
    if not isinstance(data.get("name"), str):
        raise InputError(f"{where}: field 'name': expected a string (the variant's name)")
    for key, value in data.items():
        expected = _expected_type(key)
        if not _fits(value, expected):
            raise InputError(f"{where}: field {key!r}: expected {expected}, got {value!r}")
    return Harness(**dict(data))


def _expected_type(key: str) -> str:
    if key in ("tool_names", "descriptions"):
        return "a mapping of strings"
    if key in ("argument_names", "list_arguments"):
        return "a mapping of tool names to mappings of strings"
    if key == "held_out":
        return "true or false"
    if key in ("syntax", "tools_in", "system_prompt", "answer_format", "list_rule"):
        return "a string or null"
    return "a string"


def _fits(value: Any, expected: str) -> bool:
    strings = lambda v: isinstance(v, Mapping) and all(isinstance(x, str) for x in (*v.keys(), *v.values()))  # noqa: E731
    if expected == "a mapping of strings":
        return strings(value)
    if expected.startswith("a mapping of tool"):
        return isinstance(value, Mapping) and all(isinstance(k, str) and strings(v) for k, v in value.items())
    if expected == "true or false":
        return isinstance(value, bool)
    return isinstance(value, str) or (value is None and expected.endswith("or null"))


def load_variant_file(path: str | Path) -> list[Harness]:
    """The variants of a YAML or JSON file: one mapping, a list of them, or ``{variants: [...]}``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the harness file: {exc.strerror}") from None
    import yaml

    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
    if isinstance(data, Mapping) and "variants" in data:
        data = data["variants"]
    entries = data if isinstance(data, list) else [data]
    return [harness_from_mapping(entry, f"{path}: variant {i + 1}" if len(entries) > 1 else str(path))
            for i, entry in enumerate(entries)]


def resolve_variants(names: str | Iterable[str]) -> list[Harness]:
    """Variants by built-in name or file path (``renamed,my_variants.yaml``), in order, names unique."""
    items = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    if not items:
        raise InputError("variants: expected at least one variant name or file")
    variants: list[Harness] = []
    for item in items:
        if item in BUILTIN_VARIANTS:
            variants.append(BUILTIN_VARIANTS[item])
        elif item.endswith((".yaml", ".yml", ".json")):
            variants += load_variant_file(item)
        else:
            raise InputError(f"unknown harness variant {item!r}; built-in: {', '.join(BUILTIN_VARIANTS)} "
                             "(or a .yaml / .json file of variants)")
    seen: set[str] = set()
    for harness in variants:
        if harness.name in seen:
            raise InputError(f"harness variant {harness.name!r} is given twice; variant names must be unique")
        seen.add(harness.name)
    return variants


@dataclass(frozen=True)
class HarnessFamily:
    """The harnesses training draws from: one per GRPO group (``per="group"``) or per rollout.

    A draw is a hash of (seed, step, prompt key[, position]), so every process holding part of a group
    draws the same harness for it, and a run repeats its draws.
    """

    members: tuple[Harness, ...]
    per: str = "group"
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.members:
            raise InputError("harness family: expected at least one harness")
        if self.per not in ("group", "rollout"):
            raise InputError(f"harness family: per: expected group or rollout, got {self.per!r}")
        names = [h.name for h in self.members]
        if len(set(names)) != len(names):
            raise InputError(f"harness family: harness names must be unique, got {names}")

    def draw(self, key: str, step: int, position: str = "") -> Harness:
        """The harness of the rollout of prompt ``key`` at ``step`` (``position`` counts with ``per="rollout"``)."""
        text = f"{self.seed}/{step}/{key}" + (f"/{position}" if self.per == "rollout" else "")
        digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
        return self.members[int.from_bytes(digest, "big") % len(self.members)]


def harness_product(tool_names: Iterable[str] = (), argument_names: Iterable[str] = (),
                    descriptions: Iterable[str] = (), syntaxes: Iterable[str | None] = ()) -> list[Harness]:
    """Every combination of the given axes (an empty axis keeps the environment's), named by its parts:
    tool-name templates, argument-name templates, description templates, call syntaxes.

    >>> [h.name for h in harness_product(tool_names=["{name}", "{name}_tool"], syntaxes=[None, "pythonic"])]
    ['training', 'syntax=pythonic', 'tools={name}_tool', 'tools={name}_tool+syntax=pythonic']
    """
    short = {"tool_name_template": "tools", "argument_name_template": "args", "description_template": "descriptions",
             "syntax": "syntax"}
    out = []
    for tool, argument, description, syntax in itertools.product(
            list(tool_names) or ["{name}"], list(argument_names) or ["{name}"],
            list(descriptions) or ["{description}"], list(syntaxes) or [None]):
        harness = Harness("training", tool_name_template=tool, argument_name_template=argument,
                          description_template=description, syntax=syntax)
        parts = [f"{short[key]}={value}" for key, value in harness.describe().items() if key != "name"]
        out.append(dataclasses.replace(harness, name="+".join(parts) or "training"))
    return out
