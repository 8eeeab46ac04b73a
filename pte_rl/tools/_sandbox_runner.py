"""Start-up code of the sandboxed interpreter: runs inside the sandbox, before the model's code.

:mod:`pte_rl.tools.sandbox` passes this file's source to ``python -I -c`` with one JSON argument. It
must not import pte_rl (the child may not see the package). In order, it:

1. sets the module path: the caller's site-packages directories (so ``sympy``/``numpy`` import when the
   caller has them), and with a relocated interpreter the caller's whole ``sys.path``;
2. sets the resource limits with hard == soft, so the code cannot raise them again;
3. replaces the socket layer (``socket.socket``, ``_socket.socket``, ``socketpair``, name lookups) with
   objects that raise ``PermissionError`` (the network layer for systems without a network namespace);
4. replaces process creation (``os.fork``, ``os.system``, ``os.exec*``, ``os.spawn*``,
   ``os.posix_spawn``, ``_posixsubprocess.fork_exec``, hence ``subprocess`` and ``multiprocessing``);
5. writes one byte to ``ready_fd`` (the parent starts the code's wall-clock timeout then) and closes it;
6. runs ``main.py`` from the working directory as ``__main__``; a traceback hides this file's frame.

Steps 3 and 4 are speed bumps for well-meaning code, not walls: ``ctypes`` reaches libc directly.
The walls are the kernel's (namespaces, uid, rlimits), set up by the parent.

Exit status: the code's own; 1 after an uncaught exception; ``EXIT_MEMORY`` (99) after MemoryError.
"""

import json
import os
import resource
import sys

EXIT_MEMORY = 99


def _denied(*args, **kwargs):
    raise PermissionError(13, "this operation is disabled in the pte_rl sandbox")


def _block_network():
    import _socket
    import socket

    class BlockedRawSocket(_socket.socket):
        def __init__(self, *args, **kwargs):
            _denied()

    class BlockedSocket(socket.socket):  # a class, so stdlib modules can still subclass it (ssl)
        def __init__(self, *args, **kwargs):
            _denied()

    _socket.socket = _socket.SocketType = BlockedRawSocket
    socket.socket = BlockedSocket
    names = (
        "socketpair",
        "fromfd",
        "create_connection",
        "create_server",
        "getaddrinfo",
        "gethostbyname",
        "gethostbyname_ex",
        "gethostbyaddr",
        "getnameinfo",
    )
    for module in (socket, _socket):
        for name in names:
            if hasattr(module, name):
                setattr(module, name, _denied)


def _block_processes():
    import _posixsubprocess

    for name in (
        "fork",
        "forkpty",
        "system",
        "popen",
        "posix_spawn",
        "posix_spawnp",
        "spawnv",
        "spawnve",
        "spawnvp",
        "spawnvpe",
        "spawnl",
        "spawnle",
        "spawnlp",
        "spawnlpe",
        "execv",
        "execve",
        "execl",
        "execle",
        "execlp",
        "execlpe",
        "execvp",
        "execvpe",
    ):
        if hasattr(os, name):
            setattr(os, name, _denied)
    _posixsubprocess.fork_exec = _denied


def _report(exc, skip_frames):
    import traceback

    tb = exc.__traceback__
    for _ in range(skip_frames):
        tb = tb.tb_next if tb is not None else None
    traceback.print_exception(type(exc), exc, tb)


def _main():
    config = json.loads(sys.argv[1])
    import site

    if config.get("sys_path"):
        sys.path[:] = config["sys_path"]
    for directory in config["site_dirs"]:
        site.addsitedir(directory)
    for name, value in config["rlimits"].items():
        limit = getattr(resource, name)
        hard = resource.getrlimit(limit)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(limit, (value, value))
    if config["block_network"]:
        _block_network()
    if config["block_processes"]:
        _block_processes()
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(encoding="utf-8", errors="backslashreplace", line_buffering=True)
    sys.argv = ["main.py"]
    sys.path.insert(0, os.getcwd())
    with open("main.py", encoding="utf-8", errors="replace") as handle:
        source = handle.read()
    try:
        code = compile(source, "main.py", "exec")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        _report(exc, skip_frames=99)
        sys.exit(EXIT_MEMORY if isinstance(exc, MemoryError) else 1)
    namespace = {"__name__": "__main__", "__file__": "main.py", "__builtins__": __builtins__}
    if config.get("ready_fd") is not None:  # tell the parent that the code starts now (its timeout starts)
        os.write(config["ready_fd"], b"1")
        os.close(config["ready_fd"])
    try:
        exec(code, namespace)  # noqa: S102 - running the model's code is the point of the sandbox
    except SystemExit:
        raise
    except MemoryError as exc:
        try:
            _report(exc, skip_frames=1)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(EXIT_MEMORY)
    except BaseException as exc:  # noqa: BLE001 - report like the interpreter does, minus this frame
        _report(exc, skip_frames=1)
        sys.exit(1)


if __name__ == "__main__":
    _main()
