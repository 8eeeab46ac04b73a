"""Run model-written Python in a separate, limited, disposable process: :func:`run_python`.

Layers, outermost first (``sandbox_layers()`` says which are active; docs/tools.md has the table):

* **Process group.** The child leads a new session; at the wall-clock deadline, and after every run,
  the whole group gets SIGKILL. The deadline is ``timeout_s`` after the model's code starts (the
  child reports that moment through a pipe), so a slow start on a loaded machine does not eat the
  code's time; the start-up itself is bounded by ``STARTUP_TIMEOUT_S``. Output is read incrementally:
  ``output_budget`` bytes per stream are kept (head and tail, a visible marker between), and a run
  that prints more than ``max_output_bytes`` in all is stopped (``output_limit``). The caller never
  holds more than ``2 * output_budget`` bytes of output.
* **Namespaces** (``unshare``; as non-root inside a user namespace): mount, net, pid, ipc, uts.
  No network (only a loopback that is down); a fresh ``/proc``; the code cannot see or signal any
  process outside, and when the namespace's first process dies the kernel kills every other one,
  including daemons that left the process group.
* **An unprivileged uid** (as root, with ``setpriv``): each run gets its own uid from a pool
  (``PTE_RL_SANDBOX_UID_BASE``, default 60100, 256 uids), so ``RLIMIT_NPROC`` bounds fork bombs (it
  is not enforced for uid 0), files of other users cannot be written, and runs cannot signal each
  other. When the interpreter lives where that uid cannot reach (e.g. ``/root`` is 0700), its prefix is
  bind-mounted at a reachable path inside the mount namespace. All capabilities are dropped
  (``no_new_privs``, empty bounding set); without namespaces, leftover processes of the uid are killed.
* **Resource limits**, set by the child's start-up code before the model's code, hard == soft:
  RLIMIT_CPU (timeout + 1 s), RLIMIT_AS (``memory_mb``), RLIMIT_NPROC (``max_processes``; as a
  non-root caller: its current task count + ``max_processes``), RLIMIT_FSIZE, RLIMIT_NOFILE, RLIMIT_CORE=0.
* **A private /tmp** (in the mount namespace; :mod:`pte_rl.tools.mounts`): fresh tmpfs on ``/tmp``
  and ``/dev/shm`` (``tmp_mb`` each, gone with the run), the working directory inside that ``/tmp``,
  every other writable host mount read-only. Without it: TMPDIR is the run's directory, but the
  host's ``/tmp`` and ``/dev/shm`` stay writable (``SandboxLayers.describe()`` says which).
* **A clean environment**: only PATH, LANG, HOME/TMPDIR (the run's fresh directory, deleted after),
  thread-count variables; the interpreter runs with ``-I`` (no PYTHON* variables, no user site).
* **A prelude** (``_sandbox_runner.py``): a socket layer and process creation that raise
  ``PermissionError``. It stops honest code; hostile code can bypass it with ``ctypes``.

Error kinds: ``timeout`` (wall clock or CPU), ``memory`` (MemoryError under RLIMIT_AS),
``killed`` (a signal, e.g. the code killed itself), ``exception`` (nonzero exit, usually a traceback),
``output_limit`` (stopped for printing more than ``max_output_bytes``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from pte_rl.tools.mounts import (
    interpreter_in_prefix,
    namespace_script,
    private_paths,
    relocated_sys_path,
    write_code,
)
from pte_rl.tools.processes import (
    acquire_uid,
    collect_output,
    kill_group,
    kill_uid,
    release_uid,
    remove_tree,
    tasks_of_uid,
)

RUNNER_SOURCE = (Path(__file__).with_name("_sandbox_runner.py")).read_text(encoding="utf-8")
EXIT_MEMORY = 99  # the runner's exit status after a MemoryError (see _sandbox_runner.py)
STARTUP_TIMEOUT_S = 60.0  # the sandbox's own start-up (not the code's time); only a stalled machine hits it
_NAMESPACES = ("mount", "net", "pid", "ipc", "uts")


class SandboxError(RuntimeError):
    """The sandbox itself could not start (not a failure of the model's code)."""


@dataclass(frozen=True, slots=True)
class SandboxLayers:
    """Which optional isolation layers a run uses (the always-on ones are listed in the module docstring)."""

    namespaces: tuple[str, ...] = ()
    drop_uid: bool = False
    relocate_interpreter: bool = False
    drop_capabilities: bool = False
    private_tmp: bool = False  # tmpfs /tmp and /dev/shm, host mounts read-only (needs the mount namespace)

    def describe(self) -> str:
        parts = ["process group", "rlimits", "clean env", "fresh tmp dir", "socket/process prelude"]
        if self.namespaces:
            parts.append("namespaces(" + ",".join(self.namespaces) + ")")
        if self.private_tmp:
            parts.append("private /tmp and /dev/shm (tmpfs), host mounts read-only")
        else:
            parts.append("TMPDIR in the run dir only (host /tmp and /dev/shm writable)")
        if self.drop_uid:
            parts.append("per-run uid" + (" (relocated interpreter)" if self.relocate_interpreter else ""))
        if self.drop_capabilities:
            parts.append("no capabilities")
        return ", ".join(parts)


@dataclass(slots=True)
class ToolResult:
    """The outcome of :func:`run_python`.

    ``stdout``/``stderr`` are decoded text cut to the budget (with a marker when cut); ``*_bytes``
    count everything that was read. ``returncode`` is the code's exit status, negative for a signal.
    """

    stdout: str
    stderr: str
    error: str | None
    returncode: int | None
    duration_s: float
    truncated: bool
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    layers: SandboxLayers | None = None
    uid: int | None = None  # the per-run uid the code ran as, when that layer is on
    startup_s: float | None = None  # from the call to the moment the code started (None: it never did)

    @property
    def ok(self) -> bool:
        return self.error is None


def run_python(
    code: str,
    timeout_s: float = 10.0,
    memory_mb: int = 512,
    *,
    output_budget: int = 8192,
    max_output_bytes: int = 4 * 1024 * 1024,
    max_processes: int = 32,
    max_open_files: int = 256,
    file_size_mb: int = 16,
    tmp_mb: int = 64,
    block_network: bool = True,
    block_processes: bool = True,
    extra_env: dict[str, str] | None = None,
    layers: SandboxLayers | None = None,
) -> ToolResult:
    """Run ``code`` as ``__main__`` in a fresh sandboxed interpreter; never raises for the code's failures.

    Args:
        code: Python source.
        timeout_s: wall-clock limit for the code, counted from when it starts (after the sandbox's
            start-up, so that a loaded machine does not eat the code's time); CPU limit = ceil(timeout_s) + 1.
        memory_mb: address-space limit per process (RLIMIT_AS).
        output_budget: bytes kept per stream (first and last halves, marker between).
        max_output_bytes: bytes read over both streams before the run is stopped (``output_limit``).
        max_processes: processes/threads the code may have (RLIMIT_NPROC; see the module docstring).
        max_open_files: RLIMIT_NOFILE.
        file_size_mb: the largest file the code may write (RLIMIT_FSIZE).
        tmp_mb: the size of the private ``/tmp`` (which holds the working directory) and of the
            private ``/dev/shm``, when that layer is on.
        block_network / block_processes: install the prelude's socket / process-creation blocks.
        extra_env: variables added to the child's clean environment.
        layers: the isolation layers; default: the strongest set that works here (:func:`sandbox_layers`).
    """
    if not isinstance(code, str):
        raise TypeError(f"run_python: code must be str, got {type(code).__name__}")
    for name, value, low in (
        ("timeout_s", timeout_s, 0.01),
        ("memory_mb", memory_mb, 64),
        ("output_budget", output_budget, 0),
        ("max_output_bytes", max_output_bytes, 1),
        ("max_processes", max_processes, 1),
        ("max_open_files", max_open_files, 16),
        ("file_size_mb", file_size_mb, 0),
        ("tmp_mb", tmp_mb, 1),
    ):
        if not value >= low:
            raise ValueError(f"run_python: {name} must be >= {low}, got {value!r}")
    rlimits = {
        "RLIMIT_CPU": math.ceil(timeout_s) + 1,
        "RLIMIT_AS": memory_mb * 1024 * 1024,
        "RLIMIT_NPROC": max_processes,
        "RLIMIT_FSIZE": file_size_mb * 1024 * 1024,
        "RLIMIT_NOFILE": max_open_files,
        "RLIMIT_CORE": 0,
    }
    config = _child_config(rlimits, block_network, block_processes)
    config["tmp_mb"] = tmp_mb
    return _run(code, layers or sandbox_layers(), config, timeout_s, output_budget, max_output_bytes, extra_env)


def _child_config(rlimits: dict[str, int], block_network: bool, block_processes: bool) -> dict:
    """What the runner (``_sandbox_runner.py``) sets up before the code: limits, blocks, module path.

    ``tmp_mb`` (the private /tmp's size; 64 MB unless ``run_python`` sets it) is read by the parent only.
    """
    return {
        "tmp_mb": 64,
        "rlimits": rlimits,
        "block_network": block_network,
        "block_processes": block_processes,
        "site_dirs": [d for d in site.getsitepackages() if os.path.isdir(d)],
    }


# -- layers ----------------------------------------------------------------------------------------

_LAYERS: SandboxLayers | None = None
_LAYERS_LOCK = threading.Lock()
# The probe checks that the child runs, as the expected uid, the caller's exact Python build: an
# interpreter whose prefix is unreachable may still start but pick up another libpython and stdlib.
_PROBE_CODE = "import fractions, json, os, sys\nprint('pte-rl-probe', os.getuid(), sys.version)\n"


def sandbox_layers(refresh: bool = False) -> SandboxLayers:
    """The strongest layer set that works on this machine, found once by trying each candidate.

    ``PTE_RL_SANDBOX_NAMESPACES=0`` and ``PTE_RL_SANDBOX_DROP_UID=0`` take those layers out.
    """
    global _LAYERS
    with _LAYERS_LOCK:
        if _LAYERS is None or refresh:
            _LAYERS = next((c for c in candidate_layers() if _probe(c)), SandboxLayers())
        return _LAYERS


def candidate_layers() -> list[SandboxLayers]:
    """Layer sets to try, strongest first (the last one, no optional layer, always works)."""
    has = {tool: shutil.which(tool) is not None for tool in ("unshare", "setpriv", "mount", "sh", "install")}
    use_ns = os.environ.get("PTE_RL_SANDBOX_NAMESPACES", "1") != "0" and has["unshare"] and has["sh"]
    use_uid = os.environ.get("PTE_RL_SANDBOX_DROP_UID", "1") != "0" and has["setpriv"] and os.geteuid() == 0
    candidates = []
    if use_ns and os.geteuid() == 0:
        if use_uid:
            candidates.append(SandboxLayers(_NAMESPACES, drop_uid=True, drop_capabilities=True))
            if has["mount"] and interpreter_in_prefix() is not None:
                candidates.append(
                    SandboxLayers(_NAMESPACES, True, relocate_interpreter=True, drop_capabilities=True)
                )
        candidates.append(SandboxLayers(_NAMESPACES, drop_capabilities=has["setpriv"]))
    elif use_ns:
        candidates.append(SandboxLayers(("user", *_NAMESPACES), drop_capabilities=has["setpriv"]))
    if has["mount"] and has["install"]:  # each namespace set first with the private /tmp, then without
        candidates = [v for c in candidates for v in ((replace(c, private_tmp=True), c) if c.namespaces else (c,))]
    if use_uid:
        candidates.append(SandboxLayers(drop_uid=True, drop_capabilities=True))
    candidates.append(SandboxLayers())
    return candidates


def _probe(layers: SandboxLayers) -> bool:
    try:
        result = _run(_PROBE_CODE, layers, _child_config({}, True, True), 60.0, 4096, 65536, None)
    except SandboxError:
        return False
    uid = result.uid if layers.drop_uid else os.getuid() if not layers.namespaces else None
    expected = f"pte-rl-probe {uid} {sys.version}" if uid is not None else "pte-rl-probe "
    return (
        result.error is None
        and result.stdout.startswith(expected)
        and result.stdout.strip().endswith(sys.version)
    )


# -- one run ---------------------------------------------------------------------------------------


def _run(
    code: str,
    layers: SandboxLayers,
    config: dict,
    timeout_s: float,
    output_budget: int,
    max_output_bytes: int,
    extra_env: dict[str, str] | None,
) -> ToolResult:
    uid = acquire_uid() if layers.drop_uid else None
    run_dir = tempfile.mkdtemp(prefix="pte_rl_sandbox_")
    try:
        work = write_code(code, run_dir, uid)
        if uid is None and os.geteuid() != 0 and "RLIMIT_NPROC" in config["rlimits"]:
            # RLIMIT_NPROC counts every task of the uid: the code's allowance comes on top of the caller's.
            config = {**config, "rlimits": {**config["rlimits"]}}
            config["rlimits"]["RLIMIT_NPROC"] += tasks_of_uid(os.getuid())
        ready_read, ready_write = os.pipe()
        argv, env = _command(layers, uid, run_dir, work, {**config, "ready_fd": ready_write})
        env.update(extra_env or {})
        start = time.monotonic()
        proc = _spawn(argv, env, work, ready_read, ready_write)
        try:
            streams, reason, started = collect_output(
                proc, ready_read, start + STARTUP_TIMEOUT_S, timeout_s, output_budget, max_output_bytes
            )
        finally:
            kill_group(proc.pid)
            proc.wait()
            for stream in (proc.stdout, proc.stderr):  # both piped by _spawn
                if stream is not None:
                    stream.close()
            os.close(ready_read)
            if uid is not None and not layers.namespaces:
                kill_uid(uid)
        duration = time.monotonic() - start
    finally:
        release_uid(uid)
        remove_tree(run_dir)
    returncode, error = _outcome(proc.returncode, reason, layers)
    out, err = streams
    return ToolResult(
        out.text(), err.text(), error, returncode, duration, out.truncated or err.truncated, out.total, err.total,
        layers, uid, None if started is None else started - start,
    )


def _spawn(argv: list[str], env: dict[str, str], work: str, ready_read: int, ready_write: int) -> subprocess.Popen:
    """Start the child in a new session; it inherits only the write end of the ready pipe."""
    try:
        return subprocess.Popen(
            argv, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, close_fds=True, pass_fds=(ready_write,),
        )
    except OSError as exc:
        os.close(ready_read)
        raise SandboxError(f"cannot start the sandbox ({argv[0]}): {exc}") from exc
    finally:
        os.close(ready_write)


def _outcome(returncode: int, reason: str | None, layers: SandboxLayers) -> tuple[int, str | None]:
    """(the code's exit status, negative for a signal; the error kind, None for a clean exit)."""
    if layers.namespaces and 128 < returncode <= 128 + 64:  # the namespace's sh reports 128 + signal
        returncode = 128 - returncode
    if reason is not None or returncode == 0:
        return returncode, reason
    if returncode == EXIT_MEMORY:
        return returncode, "memory"
    if returncode < 0:
        return returncode, "timeout" if -returncode == signal.SIGXCPU else "killed"
    return returncode, "exception"


def _command(
    layers: SandboxLayers, uid: int | None, run_dir: str, work: str, config: dict
) -> tuple[list[str], dict[str, str]]:
    if layers.private_tmp:
        work, mount_point = private_paths(run_dir)  # the paths inside the namespace's private /tmp
    else:
        mount_point = os.path.join(run_dir, "python")
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": work,
        "TMPDIR": "/tmp" if layers.private_tmp else work,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    interpreter, prefix = sys.executable, None
    config = dict(config)
    if layers.relocate_interpreter:
        prefix = os.path.realpath(sys.base_prefix)
        if not layers.private_tmp:
            os.mkdir(mount_point, 0o755)
        interpreter = os.path.join(mount_point, interpreter_in_prefix() or "")
        env["LD_LIBRARY_PATH"] = os.path.join(mount_point, "lib")
        # The caller's module path, its stdlib entries moved under the mount point: the same stdlib
        # and site-packages (and their compiled .pyc files) as the caller, not the base install's.
        config = {**config, "sys_path": relocated_sys_path(mount_point)}
    tmp_mb = int(config.pop("tmp_mb", 64))
    argv = [interpreter, "-I", "-c", RUNNER_SOURCE, json.dumps(config)]
    if layers.drop_uid or layers.drop_capabilities:
        privileges = [shutil.which("setpriv") or "setpriv", "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all"]
        if layers.drop_uid and uid is not None:
            privileges += [f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        argv = [*privileges, "--", *argv]
    if layers.namespaces:
        flags = ["--user", "--map-root-user"] if "user" in layers.namespaces else []
        flags += ["--mount", "--net", "--pid", "--ipc", "--uts", "--fork", "--kill-child", "--mount-proc"]
        # sh stays the namespace's first process (no exec), so the code is not pid 1: its own signals
        # work as usual, and it cannot signal its parent (pid 1 ignores signals from inside).
        mounts = namespace_script(
            run_dir=run_dir, uid=uid, tmp_mb=tmp_mb,
            private_tmp=layers.private_tmp, prefix=prefix, mount_point=mount_point if prefix else None,
        )
        unshare, sh = shutil.which("unshare") or "unshare", shutil.which("sh") or "sh"
        argv = [unshare, *flags, "--", sh, "-c", mounts + '"$@"; exit $?', "sh", *argv]
    return argv, env
