"""The sandbox's file-system view: a private ``/tmp`` and ``/dev/shm``, the host read-only.

:mod:`pte_rl.tools.sandbox` runs the model's code inside a mount namespace; this module writes the
``sh`` script that the namespace's first process (still root there, before the uid and capabilities
are dropped) runs first:

1. a fresh tmpfs on ``/tmp`` and on ``/dev/shm`` (``tmp_mb`` each, nosuid, nodev, a bounded inode
   count): whatever the code writes there lives in memory capped by size and is gone with the run;
2. the run's working directory inside that ``/tmp`` (``/tmp/<run dir name>/work``, the host's run
   directory name, so the path is unique) holding a copy of ``main.py``, owned by the run's uid;
3. every other writable storage mount (``/``, ``/dev``, ``/run``, ... as listed in
   ``/proc/self/mountinfo``) remounted read-only, keeping its nosuid/nodev/noexec flags (a user
   namespace may not clear them), so home, the checkout and site-packages cannot be written even by
   a root inside. Kernel pseudo file systems (proc, sysfs, cgroup, ...) are left as they are: their
   files need capabilities the code no longer has, or a uid it does not run as;
4. with a relocated interpreter, its prefix bind-mounted (read-only, as ``/`` now is) at a path
   inside the private ``/tmp``.

Without a mount namespace none of this happens: the code gets ``TMPDIR``/``HOME`` pointed at the run
directory, and the host's ``/tmp`` and ``/dev/shm`` stay writable (``SandboxLayers.describe()`` says so).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import site
import sys
from pathlib import Path

EXIT_MOUNT_FAILED = 125  # the namespace script's exit status when a mount step fails
PRIVATE_DIRS = ("/tmp", "/dev/shm")
INODES_PER_TMPFS = 16384
# Kernel pseudo file systems: not storage; left alone (remounting some of them read-only is refused).
_PSEUDO_FS = frozenset(
    "proc sysfs cgroup cgroup2 devpts mqueue debugfs tracefs securityfs pstore bpf configfs fusectl "
    "binfmt_misc autofs efivarfs hugetlbfs nsfs rpc_pipefs selinuxfs".split()
)
_KEPT_FLAGS = ("nosuid", "nodev", "noexec", "noatime", "nodiratime", "relatime", "strictatime")


def _unescape(field: str) -> str:
    r"""Undo mountinfo's octal escapes: ``/a\040b`` -> ``/a b``."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _is_under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def writable_mounts(mountinfo: str | None = None) -> list[tuple[str, str]]:
    """(mount point, the flags to keep) of every writable storage mount to remount read-only.

    Mounts at or under ``/proc`` and the private directories are skipped (the namespace gets its own).

    >>> info = ("22 1 8:1 / / rw,relatime - ext4 /dev/vda rw\\n"
    ...         "23 22 0:5 / /proc rw,nosuid - proc proc rw\\n"
    ...         "24 22 0:6 / /run rw,nosuid,nodev - tmpfs tmpfs rw\\n"
    ...         "25 22 0:7 / /tmp rw - tmpfs tmpfs rw\\n"
    ...         "26 22 0:8 / /mnt/ro\\\\040data ro - ext4 /dev/vdb ro\\n")
    >>> writable_mounts(info)
    [('/', 'relatime'), ('/run', 'nosuid,nodev')]
    """
    if mountinfo is None:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
            mountinfo = handle.read()
    found: dict[str, str] = {}
    for line in mountinfo.splitlines():
        before, _, after = line.partition(" - ")
        fields, fs_type = before.split(), after.split()[:1]
        if len(fields) < 6 or not fs_type or fs_type[0] in _PSEUDO_FS:
            continue
        point, flags = _unescape(fields[4]), fields[5].split(",")
        if "rw" not in flags or _is_under(point, ("/proc", *PRIVATE_DIRS)):
            continue
        found[point] = ",".join(f for f in flags if f in _KEPT_FLAGS)
    return list(found.items())


def private_paths(run_dir: str) -> tuple[str, str]:
    """(the working directory, the interpreter mount point) that the code sees inside the namespace."""
    inside = os.path.join("/tmp", os.path.basename(run_dir))
    return os.path.join(inside, "work"), os.path.join(inside, "python")


def namespace_script(
    *,
    run_dir: str,
    uid: int | None,
    tmp_mb: int,
    private_tmp: bool,
    prefix: str | None,
    mount_point: str | None,
) -> str:
    """The ``sh`` lines run as root inside the mount namespace before the code (see the module docstring).

    Runs with the host's run working directory as its current directory; ends by running ``"$@"``.
    """
    mount = shlex.quote(shutil.which("mount") or "mount")
    fail = f" || exit {EXIT_MOUNT_FAILED}"
    lines = []
    if private_tmp:
        install = shlex.quote(shutil.which("install") or "install")
        owner = f" -o {uid} -g {uid}" if uid is not None else ""
        options = f"size={tmp_mb}m,nr_inodes={INODES_PER_TMPFS},mode=1777,nosuid,nodev"
        for directory in PRIVATE_DIRS:
            if os.path.isdir(directory):
                lines.append(f"{mount} -t tmpfs -o {options} pte_rl_tmp {directory}{fail}")
        work = shlex.quote(private_paths(run_dir)[0])
        # main.py is read through the current directory: the host's run directory, hidden by now.
        lines.append(f"{install} -d{owner} -m 700 {work} && {install}{owner} -m 600 main.py {work}/main.py{fail}")
        lines.append(f"cd {work}{fail}")
        for point, flags in writable_mounts():
            lines.append(f"{mount} -o remount,bind,ro{',' + flags if flags else ''} {shlex.quote(point)}{fail}")
    if prefix is not None and mount_point is not None:
        target = shlex.quote(mount_point)
        lines.append(f"mkdir -p {target} && {mount} --bind {shlex.quote(prefix)} {target}{fail}")
    return "".join(line + "; " for line in lines)


def write_code(code: str, run_dir: str, uid: int | None) -> str:
    """The run's working directory (``run_dir/work``) holding ``main.py``, owned by the run's uid."""
    work = os.path.join(run_dir, "work")
    os.mkdir(work, 0o700)
    Path(work, "main.py").write_text(code, encoding="utf-8", errors="surrogatepass")
    if uid is not None:
        os.chmod(run_dir, 0o711)
        for path in (work, os.path.join(work, "main.py")):
            os.chown(path, uid, uid)
    return work


# -- the relocated interpreter -----------------------------------------------------------------------


def interpreter_in_prefix() -> str | None:
    """The interpreter's path relative to its installation prefix, or None when it lives elsewhere."""
    relative = os.path.relpath(os.path.realpath(sys.executable), os.path.realpath(sys.base_prefix))
    return None if relative.startswith("..") else relative


def relocated_sys_path(mount_point: str) -> list[str]:
    """The caller's module path with its stdlib entries moved under ``mount_point`` (site-packages kept)."""
    prefixes = {sys.base_prefix, os.path.realpath(sys.base_prefix)}
    site_dirs = set(site.getsitepackages())
    path = []
    for entry in sys.path:
        moved = next(
            (mount_point + entry[len(p) :] for p in prefixes if entry == p or entry.startswith(p + os.sep)),
            None,
        )
        if moved is not None:
            path.append(moved)
        elif entry in site_dirs:
            path.append(entry)
    return path
