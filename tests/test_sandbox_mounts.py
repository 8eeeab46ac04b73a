"""The sandbox's file-system view: a private /tmp and /dev/shm, the host's mounts read-only.

Hostile runs are bounded twice: by the sandbox's own timeout (``timeout_s=20``) and by a hard cap
on the test (``pytest.mark.timeout``). Tests that need the private /tmp layer are skipped, with the
reason, where no mount namespace is available.
"""

from __future__ import annotations

import os
import site
import uuid
from pathlib import Path

import pytest

from pte_rl.tools import run_python, sandbox_layers
from pte_rl.tools.mounts import writable_mounts
from pte_rl.tools.sandbox import SandboxLayers

LAYERS = sandbox_layers()
NO_PRIVATE_TMP = "no mount namespace here (or tmpfs cannot be mounted in it): the code shares the host's /tmp"
CHECKOUT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(120)
@pytest.mark.skipif(not LAYERS.private_tmp, reason=NO_PRIVATE_TMP)
def test_files_written_to_tmp_and_dev_shm_stay_inside_the_run():
    names = [f"/tmp/pte-rl-test-{uuid.uuid4()}", f"/dev/shm/pte-rl-test-{uuid.uuid4()}"]
    code = (
        "import os, tempfile\n"
        f"for name in {names!r}:\n"
        "    open(name, 'w').write('planted')\n"
        "    print(open(name).read(), os.stat(name).st_size)\n"
        "print(tempfile.gettempdir())\n"
    )
    result = run_python(code, timeout_s=20)
    assert result.error is None, result.stderr
    assert result.stdout == "planted 7\nplanted 7\n/tmp\n"  # written and read back inside the run
    assert [os.path.exists(name) for name in names] == [False, False]  # and not on the host


@pytest.mark.timeout(120)
@pytest.mark.skipif(not LAYERS.private_tmp, reason=NO_PRIVATE_TMP)
def test_the_private_tmp_is_capped_by_tmp_mb():
    # 12 one-MB writes into an 8 MB /tmp: the ninth or so fails with ENOSPC (28); 1 MB < file_size_mb.
    code = (
        "import errno\nwritten = 0\n"
        "try:\n    with open('/tmp/fill', 'wb') as f:\n        for _ in range(12):\n"
        "            f.write(b'x' * 1024 * 1024); f.flush(); written += 1\n"
        "except OSError as exc:\n    print('stopped', exc.errno, written)\n"
    )
    result = run_python(code, timeout_s=20, tmp_mb=8, file_size_mb=32)
    assert result.error is None, result.stderr
    word, errno_, written = result.stdout.split()
    assert (word, int(errno_)) == ("stopped", 28) and 6 <= int(written) <= 8


@pytest.mark.timeout(120)
@pytest.mark.skipif(
    not (LAYERS.private_tmp or LAYERS.drop_uid), reason="without a read-only host or a per-run uid, root inside writes"
)
def test_cannot_write_to_the_checkout_home_or_site_packages():
    targets = [CHECKOUT, Path.home(), *map(Path, site.getsitepackages())]
    names = [str(directory / f"pte-rl-test-{uuid.uuid4()}") for directory in targets if directory.is_dir()]
    code = (
        f"for name in {names!r}:\n"
        "    try:\n        open(name, 'w').write('planted')\n        print('wrote', name)\n"
        "    except OSError as exc:\n        print('refused', exc.errno)\n"
    )
    result = run_python(code, timeout_s=20)
    lines = result.stdout.splitlines()
    assert result.error is None and len(lines) == len(names) >= 2
    assert all(line.startswith("refused") for line in lines), result.stdout
    assert [os.path.exists(name) for name in names] == [False] * len(names)
    if LAYERS.private_tmp and not str(CHECKOUT).startswith("/tmp/"):
        assert lines[0] == "refused 30"  # EROFS: the checkout is on a read-only mount inside


@pytest.mark.timeout(120)
def test_without_namespaces_tmpdir_is_the_run_directory_and_describe_says_so():
    fallback = SandboxLayers()
    assert "host /tmp and /dev/shm writable" in fallback.describe()
    assert "private /tmp" not in fallback.describe()
    assert "private /tmp and /dev/shm" in SandboxLayers(("mount",), private_tmp=True).describe()
    code = "import os, tempfile\nprint(tempfile.gettempdir() == os.getcwd())"
    result = run_python(code, timeout_s=20, layers=fallback)
    assert (result.error, result.stdout) == (None, "True\n")


def test_writable_mounts_reads_mountinfo():
    info = (
        "22 1 8:1 / / rw,relatime - ext4 /dev/vda rw\n"
        "23 22 0:5 / /proc rw,nosuid - proc proc rw\n"
        "24 22 0:6 / /run rw,nosuid,nodev,noexec - tmpfs tmpfs rw\n"
        "25 22 0:7 / /tmp rw - tmpfs tmpfs rw\n"
        "26 22 0:8 / /dev/shm/x rw - tmpfs tmpfs rw\n"
        "27 22 0:9 / /sys rw - sysfs sysfs rw\n"
        "28 22 0:10 / /mnt/my\\040data rw,noatime - ext4 /dev/vdb rw\n"
        "29 22 0:11 / /mnt/ro ro - ext4 /dev/vdc ro\n"
    )
    assert writable_mounts(info) == [("/", "relatime"), ("/run", "nosuid,nodev,noexec"), ("/mnt/my data", "noatime")]
