"""The ``python`` tool that models call: :func:`make_python_tool` binds :func:`run_python` to limits.

The tool message is the code's stdout; when the run failed, stderr (the traceback) and a one-line
reason follow. The text is a :class:`~pte_rl.tools.common.ToolText`, so the rollout records the error
kind (``timeout``, ``memory``, ``killed``, ``exception``, ``output_limit``) and the truncation as events.
"""

from __future__ import annotations

from collections.abc import Callable

from pte_rl.tools.common import ToolText
from pte_rl.tools.sandbox import ToolResult, run_python

_REASONS = {
    "timeout": "the code ran longer than {timeout:g} s and was stopped",
    "memory": "the code ran out of memory (limit {memory} MB)",
    "killed": "the process was killed by a signal",
    "exception": "the code raised an exception (exit status {returncode})",
    "output_limit": "the code printed more than {max_output} bytes and was stopped",
}


def format_result(result: ToolResult, *, timeout_s: float, memory_mb: int, max_output_bytes: int) -> ToolText:
    """The tool message for one run: stdout, then (on failure) stderr and ``[error: <reason>]``."""
    parts = [result.stdout.rstrip("\n")] if result.stdout.strip() else []
    if result.error is not None:
        if result.stderr.strip():
            parts.append(result.stderr.rstrip("\n"))
        reason = _REASONS[result.error].format(
            timeout=timeout_s, memory=memory_mb, returncode=result.returncode, max_output=max_output_bytes
        )
        parts.append(f"[error: {result.error}: {reason}]")
    return ToolText("\n".join(parts), error=result.error, truncated=result.truncated)


def make_python_tool(
    timeout_s: float = 10.0,
    memory_mb: int = 512,
    output_budget: int = 8192,
    *,
    max_output_bytes: int = 4 * 1024 * 1024,
    max_processes: int = 32,
    tmp_mb: int = 64,
    name: str = "python",
) -> Callable[[str], str]:
    """A ``python(code)`` tool running each call in a fresh sandbox with these limits.

    Args:
        timeout_s: wall-clock limit per call.
        memory_mb: address-space limit.
        output_budget: bytes of stdout (and of stderr) the model sees; the middle is cut with a marker.
        max_output_bytes: output after which the run is stopped.
        max_processes: RLIMIT_NPROC for the code.
        tmp_mb: the size of the code's private ``/tmp`` (its working directory) and ``/dev/shm``.
        name: the tool's name in the schema.
    """

    def python(code: str) -> str:
        result = run_python(
            code,
            timeout_s,
            memory_mb,
            output_budget=output_budget,
            max_output_bytes=max_output_bytes,
            max_processes=max_processes,
            tmp_mb=tmp_mb,
        )
        return format_result(
            result, timeout_s=timeout_s, memory_mb=memory_mb, max_output_bytes=max_output_bytes
        )

    python.__name__ = python.__qualname__ = name
    python.__doc__ = f"""Run Python code in a fresh interpreter and return what it prints.

        Each call starts a new process, so variables do not carry over between calls; print() what
        you need to see. The standard library is available (math, fractions, itertools, ...), and
        sympy/numpy when installed. There is no network. Limits: {timeout_s:g} s, {memory_mb} MB;
        long output is cut in the middle.

        Args:
            code: The Python source to run.
        """
    return python


python = make_python_tool()
