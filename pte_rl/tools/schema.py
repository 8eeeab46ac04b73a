"""JSON schemas for tools, derived from typed Python functions with Google-style docstrings.

A tool is a plain function. Its name is the function's ``__name__``; its description is the
docstring's text before the first section (``Args:``, ``Returns:``, ...); each parameter's JSON type
comes from its annotation and its description from the ``Args:`` section. The result is the
OpenAI tool format that chat templates render::

    {"type": "function",
     "function": {"name": ..., "description": ...,
                  "parameters": {"type": "object", "properties": {...}, "required": [...],
                                 "additionalProperties": false}}}

Annotations understood: ``str``, ``int``, ``float``, ``bool``, ``list[X]``, ``dict[str, X]``,
``Literal[...]``, ``Optional[X]`` / ``X | None``. A parameter with a default is not required. Anything
else (an undocumented parameter, ``*args``, an unsupported annotation) raises :class:`ToolSchemaError`
naming the function and the parameter, so a broken tool fails when the environment is built rather
than in the middle of a rollout.

:class:`Toolset` bundles the functions, their schemas and their argument validators (``jsonschema``).
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, Union

import jsonschema

from pte_rl.errors import InputTypeError

_SECTION_RE = re.compile(
    r"^(Args|Arguments|Parameters|Returns|Return|Yields|Raises|Examples|Example|Notes|Note|Attributes)\s*:\s*$"
)
_ARG_RE = re.compile(r"^(\*{0,2}\w+)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")
_BASIC = {str: "string", int: "integer", float: "number", bool: "boolean"}


class ToolSchemaError(InputTypeError):
    """A tool function whose signature or docstring cannot be turned into a JSON schema (the user's
    input: a ``TypeError``, and an :class:`~pte_rl.errors.InputError` the command line reports on one line)."""


def parse_google_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into (description, {parameter: description}).

    The description is the text before the first section header, each paragraph's wrapped lines
    joined; parameter entries are the lines of the ``Args:`` section, ``name (type): text`` or
    ``name: text``, with more-indented continuation lines.
    """
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    description: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    entry_indent: int | None = None
    for line in lines:
        stripped = line.strip()
        header = _SECTION_RE.match(stripped)
        if header and (len(line) - len(line.lstrip())) == 0:
            section, current, entry_indent = header.group(1), None, None
            continue
        if section is None:
            description.append(line)
            continue
        if section not in ("Args", "Arguments", "Parameters") or not stripped:
            continue
        indent = len(line) - len(line.lstrip())
        match = _ARG_RE.match(stripped)
        if match and (entry_indent is None or indent <= entry_indent):
            entry_indent = indent
            current = match.group(1).lstrip("*")
            params[current] = match.group(3).strip()
        elif current is not None:
            params[current] = f"{params[current]} {stripped}".strip()
    return _reflow("\n".join(description).strip()), params


def _reflow(text: str) -> str:
    """Join the wrapped lines of each paragraph (the model reads prose, not the source's line breaks);
    lines that start a list item (``-``, ``*``, ``1.``) keep their break."""
    paragraphs = []
    for paragraph in re.split(r"\n\s*\n", text):
        lines: list[str] = []
        for line in paragraph.splitlines():
            if lines and not re.match(r"\s*([-*]|\d+[.)])\s", line):
                lines[-1] = f"{lines[-1]} {line.strip()}"
            else:
                lines.append(line.rstrip())
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


def type_schema(annotation: Any, *, where: str = "annotation") -> dict:
    """The JSON schema of one Python annotation (see the module docstring for what is understood)."""
    if annotation in _BASIC:
        return {"type": _BASIC[annotation]}
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        values = list(args)
        kinds = {_BASIC.get(type(v)) for v in values}
        if None in kinds:
            raise ToolSchemaError(f"{where}: Literal values must be str, int, float or bool, got {values!r}")
        schema: dict = {"enum": values}
        if len(kinds) == 1:
            schema["type"] = kinds.pop()
        return schema
    if origin in (Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        if len(members) != len(args) - 1 or len(members) != 1:
            raise ToolSchemaError(
                f"{where}: only Optional[X] / X | None unions are supported, got {annotation!r}"
            )
        inner = type_schema(members[0], where=where)
        if set(inner) == {"type"} and isinstance(inner["type"], str):
            return {"type": [inner["type"], "null"]}
        return {"anyOf": [inner, {"type": "null"}]}
    if origin is list or annotation is list:
        schema = {"type": "array"}
        if args:
            schema["items"] = type_schema(args[0], where=where)
        return schema
    if origin is dict or annotation is dict:
        schema = {"type": "object"}
        if args:
            if args[0] is not str:
                raise ToolSchemaError(f"{where}: dict keys must be str in JSON, got {args[0]!r}")
            schema["additionalProperties"] = type_schema(args[1], where=where)
        return schema
    raise ToolSchemaError(
        f"{where}: unsupported annotation {annotation!r}; expected str, int, float, bool, list[...], "
        "dict[str, ...], Literal[...] or Optional[...]"
    )


def function_schema(fn: Callable) -> dict:
    """The OpenAI-style tool schema of ``fn`` (raises :class:`ToolSchemaError` when it cannot be derived)."""
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise ToolSchemaError(f"tool {fn!r}: needs a __name__ that is an identifier")
    description, param_docs = parse_google_docstring(inspect.getdoc(fn))
    if not description:
        raise ToolSchemaError(
            f"tool {name!r}: the docstring must start with a description the model can read"
        )
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:  # a NameError in a string annotation, usually
        raise ToolSchemaError(f"tool {name!r}: cannot resolve annotations: {exc}") from exc
    properties: dict[str, dict] = {}
    required: list[str] = []
    for param in inspect.signature(fn).parameters.values():
        where = f"tool {name!r}, parameter {param.name!r}"
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise ToolSchemaError(
                f"{where}: *args, **kwargs and positional-only parameters cannot be called by name"
            )
        if param.name not in hints:
            raise ToolSchemaError(f"{where}: missing a type annotation")
        if param.name not in param_docs:
            raise ToolSchemaError(f"{where}: not documented in the docstring's Args: section")
        schema = type_schema(hints[param.name], where=where)
        schema["description"] = param_docs[param.name]
        if param.default is param.empty:
            required.append(param.name)
        elif _json_value(param.default):
            schema["default"] = param.default
        properties[param.name] = schema
    parameters = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


def _json_value(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


class Toolset:
    """Tools by name, with their schemas and argument validators.

    Build it from the functions (``Toolset([python, search, visit])``); a mapping ``{name: function}``
    is accepted too. Names must be unique.
    """

    def __init__(self, tools: Iterable[Callable] | Mapping[str, Callable] = ()) -> None:
        items = list(tools.items()) if isinstance(tools, Mapping) else [(None, fn) for fn in tools]
        self.functions: dict[str, Callable] = {}
        self._schemas: dict[str, dict] = {}
        self._validators: dict[str, jsonschema.protocols.Validator] = {}
        for key, fn in items:
            schema = function_schema(fn)
            name = key if key is not None else schema["function"]["name"]
            schema["function"]["name"] = name
            if name in self.functions:
                raise ToolSchemaError(f"two tools are named {name!r}; tool names must be unique")
            self.functions[name] = fn
            self._schemas[name] = schema
            self._validators[name] = jsonschema.Draft202012Validator(schema["function"]["parameters"])

    @property
    def names(self) -> list[str]:
        return list(self.functions)

    @property
    def schemas(self) -> list[dict]:
        """The OpenAI ``tools`` list, in the order the tools were given."""
        return [self._schemas[name] for name in self.functions]

    def schema(self, name: str) -> dict:
        return self._schemas[name]

    def __contains__(self, name: object) -> bool:
        return name in self.functions

    def __getitem__(self, name: str) -> Callable:
        return self.functions[name]

    def __len__(self) -> int:
        return len(self.functions)

    def validate(self, name: str, arguments: Any) -> str | None:
        """None when ``arguments`` fit the tool's schema, else a one-line message saying what is wrong."""
        if not isinstance(arguments, dict):
            return f"arguments must be a JSON object, got {type(arguments).__name__}"
        try:
            error = jsonschema.exceptions.best_match(self._validators[name].iter_errors(arguments))
        except RecursionError:
            return "arguments are nested too deeply"
        if error is None:
            return None
        path = ".".join(str(p) for p in error.absolute_path)
        return f"{path}: {error.message}" if path else error.message


def as_toolset(tools: Toolset | Iterable[Callable] | Mapping[str, Callable]) -> Toolset:
    """``tools`` as a :class:`Toolset` (returned unchanged when it already is one)."""
    return tools if isinstance(tools, Toolset) else Toolset(tools)
