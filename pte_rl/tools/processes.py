"""Process plumbing for the sandbox: bounded output capture, process-group and per-uid clean-up.

Kept apart from :mod:`pte_rl.tools.sandbox` (which decides *how* a run is isolated); this module only
starts nothing, reads pipes with a memory cap, and kills what a run left behind.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from pte_rl.tools.common import truncation_marker

UID_SLOTS = 256


class OutputBuffer:
    """Keeps the first and last ``budget // 2`` bytes of a stream and counts the rest."""

    def __init__(self, budget: int) -> None:
        self.head_cap, self.tail_cap = budget - budget // 2, budget // 2
        self.head, self.tail = bytearray(), bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_cap - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if self.tail_cap:
            self.tail += chunk[-self.tail_cap :]
            del self.tail[: max(0, len(self.tail) - self.tail_cap)]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + len(self.tail)

    def text(self) -> str:
        head = self.head.decode("utf-8", "replace")
        if not self.truncated:
            return head + self.tail.decode("utf-8", "replace")
        marker = truncation_marker(self.total - len(self.head) - len(self.tail), "bytes")
        return f"{head}\n{marker}\n" + self.tail.decode("utf-8", "replace")


def collect_output(
    proc: subprocess.Popen,
    ready_fd: int,
    startup_deadline: float,
    timeout_s: float,
    budget: int,
    max_total: int,
) -> tuple[tuple[OutputBuffer, OutputBuffer], str | None, float | None]:
    """Read stdout and stderr until EOF, the deadline or ``max_total`` bytes.

    The deadline is ``startup_deadline`` until the child writes to ``ready_fd`` (its code starts),
    then that moment + ``timeout_s``. Returns the buffers, why reading stopped (None, ``"timeout"``
    or ``"output_limit"``) and when the code started (None if it never did).
    """
    if proc.stdout is None or proc.stderr is None:
        raise ValueError("collect_output: expected a process started with stdout and stderr piped")
    stdout_fd, stderr_fd = proc.stdout.fileno(), proc.stderr.fileno()
    buffers = {stdout_fd: OutputBuffer(budget), stderr_fd: OutputBuffer(budget)}
    selector = selectors.DefaultSelector()
    for fd in (*buffers, ready_fd):
        selector.register(fd, selectors.EVENT_READ)
    deadline, started = startup_deadline, None
    exited_at: float | None = None
    reason = None
    total = 0
    with selector:
        while set(selector.get_map()) - {ready_fd} and reason is None:
            now = time.monotonic()
            if now >= deadline:
                reason = "timeout"
                break
            if exited_at is not None and now - exited_at > 0.5:
                break  # the code exited but a descendant holds the pipes open
            for key, _ in selector.select(timeout=min(deadline - now, 0.1)):
                chunk = os.read(key.fd, 65536)
                if key.fd == ready_fd:
                    if chunk and started is None:
                        started = time.monotonic()
                        deadline = started + timeout_s
                    if not chunk:
                        selector.unregister(key.fd)
                    continue
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                buffers[key.fd].add(chunk)
                total += len(chunk)
                if total > max_total:
                    reason = "output_limit"
                    break
            if exited_at is None and proc.poll() is not None:
                exited_at = time.monotonic()
    return (buffers[stdout_fd], buffers[stderr_fd]), reason, started


# -- uids and processes ---------------------------------------------------------------------------------------

_UIDS_IN_USE: set[int] = set()
_UID_LOCK = threading.Lock()


def acquire_uid() -> int:
    base = int(os.environ.get("PTE_RL_SANDBOX_UID_BASE", "60100"))
    with _UID_LOCK:
        first = os.getpid() % UID_SLOTS  # different processes start at different slots
        for k in range(UID_SLOTS):
            uid = base + (first + k) % UID_SLOTS
            if uid not in _UIDS_IN_USE:
                _UIDS_IN_USE.add(uid)
                return uid
    raise RuntimeError(f"all {UID_SLOTS} sandbox uids from {base} are in use")


def release_uid(uid: int | None) -> None:
    with _UID_LOCK:
        _UIDS_IN_USE.discard(uid)


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def uid_processes(uid: int) -> list[tuple[int, int]]:
    """(pid, threads) of every process whose real uid is ``uid``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            status = Path(entry.path, "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields.get("Uid", "-1 0").split()[0]) == uid:
            found.append((int(entry.name), int(fields.get("Threads", "1").strip() or 1)))
    return found


def tasks_of_uid(uid: int) -> int:
    return sum(threads for _, threads in uid_processes(uid))


def kill_uid(uid: int) -> None:
    """SIGKILL every process of a per-run uid (daemons that left the process group), until none is left."""
    for _ in range(20):
        pids = [pid for pid, _ in uid_processes(uid)]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.01)


def remove_tree(path: str) -> None:
    mount_point = os.path.join(path, "python")
    if os.path.ismount(mount_point):  # never descend into a bind-mounted interpreter
        return

    def retry(function, failed_path, *_):
        try:
            os.chmod(os.path.dirname(failed_path), 0o700)
            function(failed_path)
        except OSError:
            pass

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=retry)
    else:
        shutil.rmtree(path, onerror=retry)
