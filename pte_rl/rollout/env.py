"""Environments: a dataset of prompts, the tools the agent may call, and the correctness checker.

An environment is one small module with a ``load_environment(**kwargs) -> Environment`` function
whose keyword options are typed. The built-in ones ship with the package (``pte_rl/envs/<name>.py``);
a user's own is a file anywhere. :func:`load_module` is the one loader: it imports an environment
file once per process, under a private module name, with ``importlib.util.spec_from_file_location``.

Where a name is looked up, in order:
  1. a path to a ``.py`` file (``my_envs/facts.py``, ``/abs/my_env.py``);
  2. ``<dir>/<name>.py`` for each directory in ``$PTE_RL_ENVS_DIR`` (``os.pathsep``-separated);
  3. the built-in ``pte_rl/envs/<name>.py``.

Dataset rows carry ``prompt`` (chat messages, the system prompt first; the tool schemas are not in
the messages: the chat template renders them from :meth:`Environment.tool_schemas`),
``ground_truth`` and ``task_id``. The held-out ``eval_dataset`` shares no ``task_id`` with ``dataset``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pte_rl.paths import available, search_dirs
from pte_rl.pricing.jsonl import FormatError, read_jsonl

REQUIRED_COLUMNS = ("prompt", "ground_truth", "task_id")
ENVS_DIR_VARIABLE = "PTE_RL_ENVS_DIR"
DATA_DIR_VARIABLE = "PTE_RL_DATA_DIR"


BUILTIN_ENVS_DIR = Path(__file__).resolve().parent.parent / "envs"


def checkout_root() -> Path:
    """The directory holding the ``pte_rl`` package: the repository in a checkout."""
    return Path(__file__).resolve().parent.parent.parent


def default_data_dir() -> Path:
    """Benchmark files: ``$PTE_RL_DATA_DIR``, else ``../shared/data`` beside the repository."""
    configured = os.environ.get(DATA_DIR_VARIABLE)
    return Path(configured) if configured else checkout_root().parent / "shared" / "data"


@dataclass
class Environment:
    """Data, tools and a checker: everything a rollout needs besides the policy.

    Fields:
      name: short name, used in task ids and logs.
      dataset: the training split, a ``datasets.Dataset`` with columns prompt / ground_truth / task_id.
      tools: typed Python functions the agent may call; their Google-style docstrings are what it sees.
      check_answer: ``(answer_text, ground_truth) -> bool | None``, the final-answer grader (None: the
        answer could not be graded, so the sample is left unscored).
      eval_dataset: a held-out split with the same columns, disjoint from ``dataset`` by task_id.
      system_prompt: the system message every prompt starts with.
      max_turns: the default bound on assistant turns per episode.
      source: how to rebuild it (file path, options), set by :func:`load_environment`; it makes the
        environment picklable by reloading, since tools may be closures over an index.
    """

    name: str
    dataset: Any
    tools: list[Callable[..., Any]]
    check_answer: Callable[[str, Any], bool | None]
    eval_dataset: Any = None
    system_prompt: str = ""
    max_turns: int = 4
    source: tuple[str, dict] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for split_name, split in (("dataset", self.dataset), ("eval_dataset", self.eval_dataset)):
            if split is None:
                if split_name == "dataset":
                    raise ValueError(f"environment {self.name!r}: dataset is required")
                continue
            missing = [c for c in REQUIRED_COLUMNS if c not in split.column_names]
            if missing:
                raise ValueError(
                    f"environment {self.name!r}: {split_name} lacks column(s) {missing}; "
                    f"expected {list(REQUIRED_COLUMNS)}, got {split.column_names}"
                )
        if self.eval_dataset is not None:
            overlap = set(self.dataset["task_id"]) & set(self.eval_dataset["task_id"])
            if overlap:
                raise ValueError(
                    f"environment {self.name!r}: {len(overlap)} task_id(s) in both dataset and eval_dataset, "
                    f"e.g. {sorted(overlap)[:3]}; the held-out split must be disjoint"
                )
        if not isinstance(self.max_turns, int) or self.max_turns < 1:
            raise ValueError(f"environment {self.name!r}: max_turns: expected a positive int, got {self.max_turns!r}")
        names = [getattr(t, "__name__", None) for t in self.tools]
        if len(set(names)) != len(names) or None in names:
            raise ValueError(f"environment {self.name!r}: tools need distinct __name__s, got {names}")

    def split(self, name: str) -> Any:
        """``"train"`` -> :attr:`dataset`, ``"eval"`` -> :attr:`eval_dataset`."""
        if name == "train":
            return self.dataset
        if name == "eval":
            if self.eval_dataset is None:
                raise ValueError(f"environment {self.name!r} has no eval split")
            return self.eval_dataset
        raise ValueError(f"split: expected 'train' or 'eval', got {name!r}")

    def tool_schemas(self) -> list[dict]:
        """OpenAI-style schemas of :attr:`tools`, derived from their signatures and docstrings."""
        from pte_rl.tools import Toolset

        return Toolset(self.tools).schemas

    def __reduce__(self):
        if self.source is None:
            return object.__reduce__(self)
        return (_reload, self.source)


def _reload(path: str, options: dict) -> Environment:
    return load_environment(path, **options)


def prompt_key(messages: list[dict]) -> str:
    """A canonical text key for a prompt's chat messages (role + content), for looking rows up."""
    return json.dumps([[m.get("role"), m.get("content")] for m in messages], ensure_ascii=False, sort_keys=True)


def available_environments() -> dict[str, Path]:
    """Environment names -> files, over ``$PTE_RL_ENVS_DIR`` then the built-in ``pte_rl/envs/``."""
    return available(ENVS_DIR_VARIABLE, BUILTIN_ENVS_DIR, ".py")


def _search_dirs() -> list[Path]:
    return search_dirs(ENVS_DIR_VARIABLE, BUILTIN_ENVS_DIR)


def resolve_environment(name_or_path: str | os.PathLike) -> Path:
    """The file that defines an environment given by name or by path."""
    text = str(name_or_path)
    candidate = Path(text)
    if text.endswith(".py") or os.sep in text or (os.altsep and os.altsep in text):
        if not candidate.is_file():
            raise FileNotFoundError(f"environment file {text!r} does not exist")
        return candidate.resolve()
    available = available_environments()
    if text in available:
        return available[text].resolve()
    dirs = ", ".join(str(d) for d in _search_dirs())
    names = ", ".join(sorted(available)) or "none"
    raise ValueError(
        f"unknown environment {text!r}; available: {names} (searched {dirs}; or give a path to a .py file)"
    )


def load_module(name_or_path: str | os.PathLike) -> Any:
    """An environment's module, by name or path, imported once per process under a private name."""
    return _load_module(resolve_environment(name_or_path))


def _load_module(path: Path) -> Any:
    if path.parent == BUILTIN_ENVS_DIR:  # a built-in: imported under its package name, like any module
        module = importlib.import_module(f"pte_rl.envs.{path.stem}")
        if not callable(getattr(module, "load_environment", None)):
            raise AttributeError(f"{path}: expected a function load_environment(**kwargs) -> Environment")
        return module
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    module_name = f"_pte_rl_env_{path.stem}_{digest}"
    loaded = sys.modules.get(module_name)
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up here
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    if not callable(getattr(module, "load_environment", None)):
        del sys.modules[module_name]
        raise AttributeError(  # noqa: TRY004 - a missing attribute, not a wrong type
            f"{path}: expected a function load_environment(**kwargs) -> Environment"
        )
    return module


def environment_options(name_or_path: str | os.PathLike) -> dict[str, inspect.Parameter]:
    """The keyword options an environment's ``load_environment`` accepts (for the command line)."""
    module = _load_module(resolve_environment(name_or_path))
    return dict(inspect.signature(module.load_environment).parameters)


def load_environment(name_or_path: str | os.PathLike, **kwargs: Any) -> Environment:
    """Load an environment by name (``pte_rl/envs/<name>.py``) or ``.py`` path and call its
    ``load_environment(**kwargs)``.

    Unknown options raise a ``TypeError`` that names the file and lists the options it accepts.
    """
    path = resolve_environment(name_or_path)
    factory = _load_module(path).load_environment
    signature = inspect.signature(factory)
    try:
        signature.bind(**kwargs)
    except TypeError as exc:
        options = ", ".join(
            f"{p.name}: {_annotation_name(p.annotation)} = {p.default!r}" for p in signature.parameters.values()
        )
        raise TypeError(f"{path}: load_environment(): {exc}; accepted options: {options or 'none'}") from None
    env = factory(**kwargs)
    if not isinstance(env, Environment):
        raise TypeError(
            f"{path}: load_environment() returned {type(env).__name__}, expected pte_rl.rollout.env.Environment"
        )
    env.source = (str(path), dict(kwargs))
    return env


def _annotation_name(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return "Any"
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))


def dataset_records(path: str | os.PathLike[str]) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of a dataset's JSONL file, at least one; a bad
    line raises :class:`~pte_rl.pricing.jsonl.FormatError` naming file:line."""
    records = list(read_jsonl(path))
    if not records:
        raise FormatError(str(path), None, "<file>", "expected at least one JSON object (the file has none)")
    return records


def held_out(key: str, eval_fraction: float, seed: int | None = 0) -> bool:
    """Whether a task belongs to the held-out split: a hash of ``seed/key`` (of ``key`` alone when
    ``seed`` is None) below ``eval_fraction``. The one held-out split of every environment.

    The split depends on the task, not on the order of the file, so adding rows never moves old ones.

    >>> held_out("2+2", 0.0), held_out("2+2", 1.0)
    (False, True)
    """
    text = key if seed is None else f"{seed}/{key}"
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < eval_fraction
