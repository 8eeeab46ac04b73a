"""The Python sandbox against hostile code: the caller always survives, in bounded time and memory.

Every hostile run is bounded twice: by the sandbox's own limits and by this file (``bounded`` joins
the call with a hard cap; the fork bomb stops itself after 200 forks; runs that could hurt the
caller run in a separate caller process started in its own session). Assertions that rely on an
optional layer are skipped, with the reason, where that layer is not active.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from pte_rl.tools import (
    Toolset,
    execute_calls,
    make_python_tool,
    parse_tool_calls,
    run_python,
    sandbox_layers,
)
from pte_rl.tools.sandbox import SandboxLayers, candidate_layers

LAYERS = sandbox_layers()
NPROC_ENFORCED = LAYERS.drop_uid or os.geteuid() != 0  # RLIMIT_NPROC does not bind uid 0
ISOLATED = bool(LAYERS.namespaces) or LAYERS.drop_uid  # the code cannot reach the caller's processes
CAP_S = 60.0  # hard cap on any single call, far above the sandbox timeouts used here


def bounded(fn, cap_s: float = CAP_S):
    """Run ``fn`` in a thread; fail the test if it has not returned within ``cap_s``."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            box["error"] = exc

    start = time.monotonic()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(cap_s)
    assert not thread.is_alive(), f"the sandbox call did not return within {cap_s} s"
    if "error" in box:
        raise box["error"]
    return box["value"], time.monotonic() - start


def marked_processes(marker: str) -> list[int]:
    """Pids of live processes whose environment holds ``marker`` (sandbox processes get it via extra_env)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def assert_no_survivors(marker: str) -> None:
    deadline = time.monotonic() + 10  # the kernel tears a namespace down asynchronously
    while marked_processes(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marked_processes(marker) == []


def run_in_caller(code: str, **kwargs) -> dict:
    """run_python from a separate caller process in its own session; its result and peak memory."""
    script = (
        "import json, os, sys\n"
        "def hwm_kb():  # this process image's peak RSS; ru_maxrss would carry the forking parent's over exec\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'):\n"
        "            return int(line.split()[1])\n"
        "    import resource\n"
        "    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "from pte_rl.tools import SandboxLayers, run_python\n"
        "layers = json.loads(sys.argv[3])  # this session's layers: no probing again\n"
        "layers = SandboxLayers(**{**layers, 'namespaces': tuple(layers['namespaces'])})\n"
        "kwargs = json.loads(sys.argv[2])\n"
        "r = run_python(sys.argv[1], extra_env={'CALLER_PID': str(os.getpid())}, layers=layers, **kwargs)\n"
        "print(json.dumps({'error': r.error, 'stdout': r.stdout, 'stderr': r.stderr, 'truncated': r.truncated,\n"
        "                  'stdout_bytes': r.stdout_bytes, 'duration_s': r.duration_s,\n"
        "                  'maxrss_mb': hwm_kb() / 1024}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, code, json.dumps(kwargs), json.dumps(dataclasses.asdict(LAYERS))],
        capture_output=True,
        text=True,
        check=False,
        timeout=CAP_S,
        start_new_session=True,
        cwd=Path(__file__).parents[1],
    )
    assert done.returncode == 0, f"the caller died (status {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(done.stdout)


def test_runs_in_a_fresh_directory_that_is_deleted():
    result, _ = bounded(
        lambda: run_python(
            "import os\nprint(os.getcwd())\nopen('out.txt', 'w').write('hi')\nprint(sorted(os.listdir('.')))"
        )
    )
    cwd, listing = result.stdout.splitlines()
    assert result.error is None and result.returncode == 0
    assert listing == "['main.py', 'out.txt']" and not os.path.exists(cwd)
    assert 0 < result.startup_s <= result.duration_s  # the code's clock starts after the sandbox's start-up


def test_failures_are_reported_not_raised():
    result, _ = bounded(lambda: run_python("def f():\n    return 1 / 0\n\nf()\n"))
    assert (result.error, result.returncode) == ("exception", 1)
    assert 'File "main.py", line 4' in result.stderr and result.stderr.rstrip().endswith("division by zero")
    assert '"<string>"' not in result.stderr  # the sandbox's own frames are hidden
    syntax, _ = bounded(lambda: run_python("print(("))
    assert syntax.error == "exception" and "SyntaxError" in syntax.stderr
    exited, _ = bounded(lambda: run_python("import sys\nprint('bye')\nsys.exit(3)"))
    assert (exited.error, exited.returncode, exited.stdout) == ("exception", 3, "bye\n")


@pytest.mark.parametrize("code", ["while True:\n    pass", "import time\ntime.sleep(600)"])
def test_infinite_loops_time_out(code):
    result, elapsed = bounded(lambda: run_python("print('started', flush=True)\n" + code, timeout_s=2))
    assert result.error == "timeout" and result.returncode < 0
    assert result.stdout == "started\n"  # output before the kill is kept
    assert elapsed < CAP_S


@pytest.mark.parametrize(
    "code",
    [
        "x = bytearray(8 * 1024 ** 3)",
        "chunks = []\nwhile True:\n    chunks.append(bytearray(32 * 1024 ** 2))",
    ],
)
def test_memory_bombs_hit_the_memory_limit(code):
    result, _ = bounded(lambda: run_python(code, timeout_s=20, memory_mb=256))
    assert result.error == "memory" and "MemoryError" in result.stderr


FORK_BOMB = """
import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)   # past the prelude's os.fork block, straight to the kernel
made = failed = 0
for _ in range(200):                       # bounded by the test itself, whatever the sandbox does
    pid = libc.fork()
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    if pid < 0:
        failed += 1
    else:
        made += 1
print("made", made, "failed", failed, flush=True)   # and exit: the children must not outlive the run
"""


def test_fork_bomb_is_bounded_and_cleaned_up():
    marker = f"pte-rl-test-{uuid.uuid4()}"
    result, elapsed = bounded(
        lambda: run_python(FORK_BOMB, timeout_s=20, max_processes=16, extra_env={"PTE_RL_TEST_MARK": marker})
    )
    assert result.error is None and elapsed < CAP_S
    made, failed = (int(word) for word in result.stdout.split()[1::2])
    if NPROC_ENFORCED:
        assert made < 16 and failed == 200 - made  # RLIMIT_NPROC stopped it
    assert_no_survivors(marker)


def test_process_creation_is_blocked_for_ordinary_code():
    for code in (
        "import os\nos.fork()",
        "import subprocess\nsubprocess.run(['true'])",
        "import os\nos.system('true')",
    ):
        result, _ = bounded(lambda code=code: run_python(code))
        assert result.error == "exception" and "PermissionError" in result.stderr, code


@pytest.mark.skipif(
    not ISOLATED, reason="needs namespaces or a per-run uid to catch daemons that call setsid()"
)
def test_daemons_that_leave_the_process_group_are_killed():
    marker = f"pte-rl-test-{uuid.uuid4()}"
    code = (
        "import ctypes, os, time\nlibc = ctypes.CDLL(None)\n"
        "if libc.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n    os._exit(0)\nprint('parent done')"
    )
    result, _ = bounded(lambda: run_python(code, timeout_s=20, extra_env={"PTE_RL_TEST_MARK": marker}))
    assert result.stdout == "parent done\n"
    assert_no_survivors(marker)


@pytest.mark.skipif(not LAYERS.drop_uid, reason="without a per-run uid the code runs as the caller's user")
def test_cannot_write_outside_its_directory(tmp_path):
    protected = tmp_path / "protected.txt"
    protected.write_text("original")
    protected.chmod(0o644)
    tmp_path.chmod(0o755)
    code = f"open({str(protected)!r}, 'a').write('overwritten')"
    result, _ = bounded(lambda: run_python(code))
    # With the private /tmp the host's /tmp (where tmp_path lives) is not even visible inside.
    hidden = LAYERS.private_tmp and str(tmp_path).startswith("/tmp/")
    expected = "FileNotFoundError" if hidden else "PermissionError"
    assert result.error == "exception" and expected in result.stderr
    assert protected.read_text() == "original"


def test_cannot_read_the_parents_secrets(monkeypatch):
    secret = f"s3cret-{uuid.uuid4()}"
    monkeypatch.setenv("PTE_RL_TEST_SECRET", secret)
    code = (
        "import os\nprint(dict(os.environ))\n"
        "for pid in ('1', str(os.getppid()), os.environ['CALLER_PID']):\n"
        "    try:\n        print(open(f'/proc/{pid}/environ').read())\n"
        "    except OSError as exc:\n        print('denied', pid, exc.errno)\n"
    )
    result, _ = bounded(lambda: run_python(code, extra_env={"CALLER_PID": str(os.getpid())}))
    assert result.error is None and "'HOME'" in result.stdout
    assert "PTE_RL_TEST_SECRET" not in result.stdout
    if ISOLATED:  # the caller's /proc/<pid>/environ is out of reach too
        assert secret not in result.stdout + result.stderr


@pytest.fixture()
def listening_server():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    yield server
    server.close()


def _assert_no_connection(server: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        server.accept()


def test_sockets_are_blocked_by_the_prelude(listening_server):
    port = listening_server.getsockname()[1]
    code = (
        f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "except PermissionError as exc:\n    print('blocked', exc)\n"
        "import _socket\ntry:\n    _socket.socket()\nexcept PermissionError:\n    print('raw blocked')"
    )
    for layers in (LAYERS, SandboxLayers()):  # also with no optional layer at all
        result, _ = bounded(lambda layers=layers: run_python(code, layers=layers))
        assert result.stdout.splitlines()[0].startswith("blocked") and "raw blocked" in result.stdout
    _assert_no_connection(listening_server)


@pytest.mark.skipif("net" not in LAYERS.namespaces, reason="no network namespace on this system")
def test_sockets_fail_in_the_kernel_without_the_prelude(listening_server):
    port = listening_server.getsockname()[1]
    code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)"
    result, _ = bounded(lambda: run_python(code, block_network=False))
    assert result.error == "exception" and "[Errno" in result.stderr  # ENETUNREACH: the loopback is down
    _assert_no_connection(listening_server)


@pytest.mark.skipif(not ISOLATED, reason="without namespaces or a per-run uid the code can signal its caller")
def test_killing_the_parent_leaves_the_caller_alive():
    code = (
        "import os, signal\n"
        "caller = int(os.environ['CALLER_PID'])\n"
        "for kill in (lambda: os.kill(os.getppid(), signal.SIGKILL), lambda: os.kill(caller, signal.SIGKILL),\n"
        "             lambda: os.killpg(os.getpgid(caller), signal.SIGKILL)):\n"
        "    try:\n        kill()\n    except OSError as exc:\n        print('refused', exc.errno)\n"
        "print('still here')\n"
    )
    result = run_in_caller(code, timeout_s=10)
    assert result["error"] is None and result["stdout"].endswith("still here\n")  # every kill was refused


def test_printing_100_mb_is_cut_in_bounded_time_and_memory():
    code = "import sys\nchunk = 'x' * 1024 * 1024\nfor _ in range(100):\n    sys.stdout.write(chunk)\n"
    result = run_in_caller(code, timeout_s=30, output_budget=8192)
    assert result["error"] == "output_limit" and result["truncated"]
    assert "[... output truncated: " in result["stdout"] and len(result["stdout"]) < 8192 + 100
    assert result["stdout_bytes"] <= 4 * 1024 * 1024 + 65536  # stopped after max_output_bytes
    assert result["maxrss_mb"] < 200  # the caller never held the 100 MB


def test_the_python_tool_reports_errors_and_events():
    tools = Toolset([make_python_tool(timeout_s=20)])
    text = "".join(
        f"<tool_call>{json.dumps({'name': 'python', 'arguments': {'code': code}})}</tool_call>"
        for code in ("print(6 * 7)", "x = 1", "raise ValueError('bad input')")
    )
    ok, empty, error = bounded(lambda: execute_calls(parse_tool_calls(text, tools), tools, timeout_s=30))[0]
    assert ok.content == "42" and ok.error is None and ok.events == []
    assert [e.kind for e in empty.events] == ["empty_output"]
    assert error.error == "exception" and "ValueError: bad input" in error.content
    assert error.content.endswith("[error: exception: the code raised an exception (exit status 1)]")
    short = Toolset([make_python_tool(timeout_s=2)])
    looping = '<tool_call>{"name": "python", "arguments": {"code": "while True: pass"}}</tool_call>'
    (timeout,), _ = bounded(lambda: execute_calls(parse_tool_calls(looping, short), short, timeout_s=30))
    assert (
        timeout.error == "timeout"
        and timeout.content == "[error: timeout: the code ran longer than 2 s and was stopped]"
    )
    assert [(e.kind, e.detail) for e in timeout.events] == [("tool_error", "timeout")]


def test_concurrent_runs_are_separate():
    tools = Toolset([make_python_tool(timeout_s=20)])
    one = '<tool_call>{"name": "python", "arguments": {"code": "import os; print(os.getuid())"}}</tool_call>'
    text = one * 3
    outcomes, _ = bounded(
        lambda: execute_calls(parse_tool_calls(text, tools), tools, timeout_s=30, max_workers=3)
    )
    assert [o.error for o in outcomes] == [None, None, None]
    if LAYERS.drop_uid:
        assert len({o.content for o in outcomes}) == 3  # one uid per run


def test_layer_candidates_and_overrides(monkeypatch):
    assert candidate_layers()[-1] == SandboxLayers()
    monkeypatch.setenv("PTE_RL_SANDBOX_NAMESPACES", "0")
    monkeypatch.setenv("PTE_RL_SANDBOX_DROP_UID", "0")
    assert candidate_layers() == [SandboxLayers()]
    assert "rlimits" in LAYERS.describe()
