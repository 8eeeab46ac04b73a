"""The pieces every pattern detector shares: the pattern names, the knobs, the flag, turn texts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pte_rl.errors import InputError, InputTypeError
from pte_rl.pricing.trajectory import Trajectory

PATTERNS = (
    "confirmatory",
    "tool_mixing",
    "lack_of_tool_priors",
    "format_collapse",
    "repeated_calls",
    "overlong_responses",
    "front_loading",
)

DEFAULT_TOOLSETS: dict[str, str] = {
    "search": "web",
    "visit": "web",
    "web_search": "web",
    "browse": "web",
    "fetch": "web",
    "python": "compute",
    "calculator": "compute",
    "code_interpreter": "compute",
}
DEFAULT_COMPUTE_TOOLS = ("python", "calculator", "code_interpreter")

# Tool families, read from the name's words (snake_case, kebab-case, dotted or camelCase), so that
# other harnesses' spellings (python_tool, execute_python, google_search, open_url, ...) are known.
_SEARCH_WORDS = re.compile(r"(?:^|_)(?:\w*search\w*|google|bing|serp\w*|tavily|duckduckgo|ddg|exa)(?:_|$)")
_READ_WORDS = re.compile(
    r"(?:^|_)(?:visit\w*|browse|browser|browsing|fetch\w*|scrape\w*|crawl\w*|url|urls|page|webpage|jina)(?:_|$)"
)
_COMPUTE_WORDS = re.compile(
    r"(?:^|_)(?:i?python\d?|py|jupyter|notebook|code|interpreter|repl|exec|execute|calc|calculator|"
    r"calculate|compute|math|sympy|wolfram\w*)(?:_|$)"
)
FORMAT_KINDS = frozenset({"bad_json", "unknown_tool", "bad_arguments", "code_block", "plain_text_call"})
PYTHON_FENCE_LANGUAGES = ("python", "py", "python3", "py3", "ipython")


@dataclass(frozen=True, slots=True)
class PatternConfig:
    """The detectors' knobs."""

    compute_tools: tuple[str, ...] | None = None
    """Tools whose first call makes a prior statement of the answer *confirmatory*; None: the code
    family (:func:`tool_family`), given explicitly: exactly these."""
    toolsets: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_TOOLSETS))
    """Tool name -> toolset name (``{set: [tools]}`` is accepted too); an unlisted tool goes to its
    family's set (``web`` / ``compute``) when ``tool_families``, else is a set of its own."""
    tool_families: bool = True
    """Recognise tools by family from their names (search, reading, code); False: only the lists."""
    overlong_tokens: int = 2048
    """A tool response over this many tokens is overlong."""
    front_loading_share: float = 0.8
    """Flag front-loading above this share of decode tokens before (and in) the first call's turn."""
    front_loading_min_tokens: int = 128
    """... when at least this many tokens were decoded by then."""
    enabled: tuple[str, ...] = PATTERNS
    """The patterns to detect (and that define *pattern-free*)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "toolsets", tool_to_set(self.toolsets))
        if self.compute_tools is not None:
            object.__setattr__(self, "compute_tools", tuple(self.compute_tools))
        object.__setattr__(self, "enabled", tuple(self.enabled))
        unknown = [p for p in self.enabled if p not in PATTERNS]
        if unknown:
            raise InputError(f"enabled: unknown pattern(s) {unknown}; expected some of {PATTERNS}")
        if self.overlong_tokens < 0 or self.front_loading_min_tokens < 0:
            raise InputError("overlong_tokens and front_loading_min_tokens: expected non-negative integers")
        if not 0.0 <= self.front_loading_share <= 1.0:
            raise InputError(
                f"front_loading_share: expected a share in [0, 1], got {self.front_loading_share!r}"
            )


def tool_family(name: str) -> str | None:
    """``"search"``, ``"read"`` (web pages), ``"compute"`` (code, calculators) or None, from the name.

    >>> [tool_family(n) for n in ("python_tool", "executePython", "google_search", "open_url", "lookup")]
    ['compute', 'compute', 'search', 'read', None]
    """
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    words = "_".join(w for w in re.split(r"[^A-Za-z0-9]+", words.lower()) if w)
    for family, pattern in (("search", _SEARCH_WORDS), ("read", _READ_WORDS), ("compute", _COMPUTE_WORDS)):
        if pattern.search(words):
            return family
    return None


def is_compute_tool(name: str, config: PatternConfig) -> bool:
    """Whether a call of ``name`` computes: in ``compute_tools`` when given, else by family."""
    if config.compute_tools is not None:
        return name in config.compute_tools
    return name in DEFAULT_COMPUTE_TOOLS or (config.tool_families and tool_family(name) == "compute")


def toolset_of(name: str, config: PatternConfig) -> str:
    """The toolset of ``name``: listed in ``toolsets``, else its family's (search/read -> ``web``)."""
    if name in config.toolsets:
        return config.toolsets[name]
    family = tool_family(name) if config.tool_families else None
    return {"search": "web", "read": "web", "compute": "compute"}.get(family or "", name)


def tool_to_set(toolsets: Mapping[str, Any]) -> dict[str, str]:
    """``{tool: set}`` as is; ``{set: [tools]}`` inverted to it. A tool in two sets is an error.

    >>> tool_to_set({"web": ["search", "visit"], "compute": ("python",)})
    {'search': 'web', 'visit': 'web', 'python': 'compute'}
    """
    if not isinstance(toolsets, Mapping):
        raise InputTypeError(f"toolsets: expected a mapping tool -> set (or set -> [tools]), got {toolsets!r}")
    mapping: dict[str, str] = {}
    for key, value in toolsets.items():
        if isinstance(value, str):
            pairs = [(str(key), value)]
        elif isinstance(value, list | tuple | set | frozenset):
            pairs = [(str(tool), str(key)) for tool in value]
        else:
            raise InputTypeError(f"toolsets[{key!r}]: expected a set name or a list of tools, got {value!r}")
        for tool, name in pairs:
            if mapping.get(tool, name) != name:
                raise InputError(f"toolsets: tool {tool!r} is in two sets ({mapping[tool]!r}, {name!r})")
            mapping[tool] = name
    return mapping


DEFAULT_CONFIG = PatternConfig()
"""The defaults, shared (do not mutate its ``toolsets``)."""


@dataclass(frozen=True, slots=True)
class Flag:
    """One finding: the pattern, the turn it points at (None: the whole trajectory), the evidence."""

    pattern: str
    turn: int | None
    evidence: str
    kind: str = ""  # a finer cause: the event kind, "ground truth" / "final answer", ...
    value: float | None = None  # a measure when there is one: the share, the response tokens

    def to_dict(self) -> dict[str, Any]:
        return {
            "pattern": self.pattern,
            "turn": self.turn,
            "kind": self.kind,
            "evidence": self.evidence,
            "value": self.value,
        }


def snippet(text: str, start: int, end: int, margin: int = 40) -> str:
    left, right = max(0, start - margin), min(len(text), end + margin)
    return (
        ("..." if left else "") + text[left:right].replace("\n", " ") + ("..." if right < len(text) else "")
    )


def turn_texts(trajectory: Trajectory) -> list[str]:
    """Each assistant message's reasoning (``reasoning_content``, if logged apart) + content, per turn."""
    if not trajectory.messages:
        return ["" for _ in trajectory.turns]
    texts = []
    for message, content in zip(
        [m for m in trajectory.messages if m.get("role") == "assistant"],
        trajectory.assistant_texts(),
        strict=False,
    ):
        reasoning = message.get("reasoning_content") or message.get("reasoning") or ""
        texts.append((reasoning + "\n" if isinstance(reasoning, str) and reasoning else "") + content)
    return texts + ["" for _ in range(len(trajectory.turns) - len(texts))]


def unique_flags(flags: list[Flag]) -> list[Flag]:
    """One flag per (pattern, turn, kind): an event and the text that caused it are one finding."""
    seen, out = set(), []
    for flag in flags:
        if (flag.pattern, flag.turn, flag.kind) not in seen:
            seen.add((flag.pattern, flag.turn, flag.kind))
            out.append(flag)
    return out
