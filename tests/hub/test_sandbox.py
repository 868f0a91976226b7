"""The launcher of local servers: arguments, what it covers, and a real run as root."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from opuhub import sandbox


def test_refuses_to_run_a_server_as_root():
    with pytest.raises(SystemExit):
        sandbox.parse(["--uid", "0", "--gid", "0", "--home", "/tmp", "--", "true"])


def test_untraversable_ancestors_are_the_topmost_closed_directories(tmp_path):
    closed = tmp_path / "closed"
    (closed / "inner" / "python").mkdir(parents=True)
    os.chmod(tmp_path, 0o755)
    os.chmod(closed, 0o700)
    os.chmod(closed / "inner", 0o700)
    found = sandbox.untraversable_ancestors([str(closed / "inner" / "python")])
    # pytest's own base folder may already be closed (0700): then that is the topmost one
    above = sandbox.untraversable_ancestors([str(tmp_path)])
    assert found == (above or [str(closed)])
    open_path = tmp_path / "open"
    open_path.mkdir()
    assert str(open_path) not in sandbox.untraversable_ancestors([str(open_path)])


@pytest.mark.skipif(os.geteuid() != 0, reason="the launcher drops root: needs root to start")
def test_a_sandboxed_process_is_unprivileged_and_sees_only_its_own_tmp(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    secret = tmp_path / "state"
    secret.mkdir(mode=0o700)
    (secret / "token").write_text("hub secret")
    os.chown(home, 45678, 45678)
    planted = Path("/tmp") / f"opuhub-planted-{os.getpid()}"  # another user's /tmp file
    planted.write_text("x")
    probe = (
        "import os, pathlib\n"
        "print(os.getuid(), os.getgid())\n"
        f"print(os.path.exists({str(planted)!r}))\n"
        f"print(os.path.exists({str(secret / 'token')!r}))\n"
        "print([l for l in open('/proc/self/status') if l.startswith('NoNewPrivs')][0].split()[1])\n"
        "print(oct(os.umask(0)))\n"
    )
    keep = [sys.prefix, sys.base_prefix, str(home)]
    covers = [arg for d in sandbox.untraversable_ancestors(keep) for arg in ("--cover", d)]
    done = subprocess.run(
        [sys.executable, "-m", "opuhub.sandbox", "--uid", "45678", "--gid", "45678",
         "--home", str(home), "--cover", str(secret), *covers, "--keep", sys.prefix,
         "--keep", sys.base_prefix, "--", sys.executable, "-c", probe],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    uid, tmp, token_visible, nnp, umask = done.stdout.split("\n")[:5]
    assert uid == "45678 45678"
    planted.unlink()
    assert tmp == "False"  # a fresh /tmp: nothing of the host's
    assert token_visible == "False"  # the state directory is covered
    assert nnp == "1" and umask == "0o77"
