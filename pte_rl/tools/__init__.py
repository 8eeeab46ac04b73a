"""Tools for agents: the tool-call protocol, a hardened Python sandbox, search/visit, a calculator.

The rollout loop uses three calls per turn::

    tools = Toolset([python, calculator])                      # schemas: tools.schemas
    parsed = parse_tool_calls(text, tools, turn=i)             # calls + failures (+ events)
    outcomes = execute_calls(parsed, tools, timeout_s=30)      # tool messages (+ events)

Tool failures never raise: they become a tool message the model reads and an event in the record.
See docs/tools.md.
"""

from pte_rl.tools.calculator import calculator, evaluate
from pte_rl.tools.common import ToolInputError, ToolText, cut_text, truncation_marker
from pte_rl.tools.execution import ToolOutcome, execute_calls
from pte_rl.tools.parsing import ParsedCall, ParseError, ParseResult, parse_tool_calls
from pte_rl.tools.python_tool import make_python_tool, python
from pte_rl.tools.sandbox import SandboxError, SandboxLayers, ToolResult, run_python, sandbox_layers
from pte_rl.tools.schema import ToolSchemaError, Toolset, as_toolset, function_schema
from pte_rl.tools.search import Corpus, Document, SearchHit, cut_to_budget, make_search_tools
from pte_rl.tools.think import strip_think

__all__ = [
    "Corpus",
    "Document",
    "ParseError",
    "ParseResult",
    "ParsedCall",
    "SandboxError",
    "SandboxLayers",
    "SearchHit",
    "ToolInputError",
    "ToolOutcome",
    "ToolResult",
    "ToolSchemaError",
    "ToolText",
    "Toolset",
    "as_toolset",
    "calculator",
    "cut_text",
    "cut_to_budget",
    "evaluate",
    "execute_calls",
    "function_schema",
    "make_python_tool",
    "make_search_tools",
    "parse_tool_calls",
    "python",
    "run_python",
    "sandbox_layers",
    "strip_think",
    "truncation_marker",
]
