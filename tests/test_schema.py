"""Tool schemas derived from typed functions with Google-style docstrings, and argument validation."""

from __future__ import annotations

from typing import Literal, Optional

import pytest

from pte_rl.errors import InputError
from pte_rl.tools import ToolSchemaError, Toolset, calculator, function_schema, make_python_tool
from pte_rl.tools.schema import parse_google_docstring


def lookup(
    query: str,
    limit: int = 3,
    ratio: float = 0.5,
    exact: bool = False,
    tags: list[str] | None = None,
    mode: Literal["fast", "slow"] = "fast",
    note: Optional[str] = None,  # noqa: UP045 - the typing spelling must work too
    weights: dict[str, float] | None = None,
) -> str:
    """Look something up.

    A second paragraph of description,
    wrapped in the source.
    - a list item
    - another

    Args:
        query (str): What to look for,
            continued on a second line.
        limit: How many results.
        ratio: A float.
        exact: Whether to match exactly.
        tags: Tags to filter on.
        mode: Speed.
        note: An optional note.
        weights: Per-field weights.

    Returns:
        Text.
    """
    return query


def test_function_schema_matches_hand_written_schema():
    assert function_schema(lookup) == {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look something up.\n\nA second paragraph of description, wrapped in the source."
            "\n- a list item\n- another",
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {
                        "type": "string",
                        "description": "What to look for, continued on a second line.",
                    },
                    "limit": {"type": "integer", "description": "How many results.", "default": 3},
                    "ratio": {"type": "number", "description": "A float.", "default": 0.5},
                    "exact": {
                        "type": "boolean",
                        "description": "Whether to match exactly.",
                        "default": False,
                    },
                    "tags": {
                        "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
                        "description": "Tags to filter on.",
                        "default": None,
                    },
                    "mode": {
                        "enum": ["fast", "slow"],
                        "type": "string",
                        "description": "Speed.",
                        "default": "fast",
                    },
                    "note": {"type": ["string", "null"], "description": "An optional note.", "default": None},
                    "weights": {
                        "anyOf": [
                            {"type": "object", "additionalProperties": {"type": "number"}},
                            {"type": "null"},
                        ],
                        "description": "Per-field weights.",
                        "default": None,
                    },
                },
                "required": ["query"],
                "additionalProperties": False,
            },
        },
    }


def test_docstring_parser_reads_sections_and_continuations():
    description, params = parse_google_docstring(lookup.__doc__)
    assert description.startswith("Look something up.")
    assert "Returns" not in description and "Text." not in params.values()
    assert params["query"] == "What to look for, continued on a second line."
    assert list(params) == ["query", "limit", "ratio", "exact", "tags", "mode", "note", "weights"]


def _no_annotation(x) -> str:
    """Doc.

    Args:
        x: thing.
    """
    return ""


def _undocumented(x: int) -> str:
    """Doc without an Args section."""
    return ""


def _star_args(*xs: int) -> str:
    """Doc.

    Args:
        xs: things.
    """
    return ""


def _bad_type(x: set[int]) -> str:
    """Doc.

    Args:
        x: a set.
    """
    return ""


def _no_doc(x: int) -> str:
    return ""


def _bad_union(x: int | str) -> str:
    """Doc.

    Args:
        x: either.
    """
    return ""


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (_no_annotation, "parameter 'x': missing a type annotation"),
        (_undocumented, "parameter 'x': not documented"),
        (_star_args, "*args"),
        (_bad_type, "unsupported annotation"),
        (_no_doc, "docstring must start with a description"),
        (_bad_union, "only Optional[X]"),
    ],
)
def test_broken_tools_fail_loudly_with_function_and_parameter(fn, message):
    with pytest.raises(ToolSchemaError, match=message.replace("[", r"\[").replace("*", r"\*")) as info:
        function_schema(fn)
    assert fn.__name__ in str(info.value)
    assert isinstance(info.value, InputError) and isinstance(info.value, TypeError)  # bad input, still a TypeError


def test_toolset_validates_arguments_against_the_schema():
    tools = Toolset([lookup])
    assert tools.validate("lookup", {"query": "x"}) is None
    assert tools.validate("lookup", {"query": "x", "ratio": 2}) is None  # an integer is a JSON number
    assert "'query' is a required property" in tools.validate("lookup", {})
    assert "is not of type 'string'" in tools.validate("lookup", {"query": 3})
    assert "limit" in tools.validate("lookup", {"query": "x", "limit": True})  # a bool is not an integer
    assert "Additional properties" in tools.validate("lookup", {"query": "x", "extra": 1})
    assert "mode" in tools.validate("lookup", {"query": "x", "mode": "medium"})
    assert tools.validate("lookup", ["x"]) == "arguments must be a JSON object, got list"
    deep: dict = {}
    for _ in range(5000):
        deep = {"a": deep}
    assert tools.validate("lookup", {"query": "x", "weights": deep}) is not None  # never raises


def test_toolset_names_schemas_and_duplicates():
    python = make_python_tool(timeout_s=3)
    tools = Toolset([python, calculator])
    assert tools.names == ["python", "calculator"]
    assert [s["function"]["name"] for s in tools.schemas] == ["python", "calculator"]
    assert tools.schema("python")["function"]["parameters"]["required"] == ["code"]
    assert "3 s" in tools.schema("python")["function"]["description"]
    assert Toolset({"calc": calculator}).names == ["calc"]
    with pytest.raises(ToolSchemaError, match="two tools are named 'calculator'"):
        Toolset([calculator, calculator])
