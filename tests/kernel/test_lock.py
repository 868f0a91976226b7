"""The per-device lock that makes the OPU exclusive."""

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from opu_kernel import lock
from opu_kernel.errors import DeviceBusyError, UnsafeLockError
from opu_kernel.lock import DeviceLock, holder_pid, lock_path


def test_lock_records_the_holder_and_is_released():
    lock = DeviceLock("/dev/opu7")
    assert holder_pid("/dev/opu7") is None
    lock.acquire()
    lock.acquire()  # re-entrant for its holder
    assert lock.held and holder_pid("/dev/opu7") == os.getpid()
    assert lock_path("/dev/opu7").name == "opu_kernel-opu7.lock"
    with pytest.raises(DeviceBusyError, match=f"in use by process {os.getpid()}"):
        DeviceLock("/dev/opu7").acquire()
    lock.release()
    assert not lock.held and holder_pid("/dev/opu7") is None
    DeviceLock("/dev/opu7").acquire()  # free again


def test_a_dead_holder_never_leaves_the_device_stuck():
    code = ("from opu_kernel.lock import DeviceLock; import os; "
            "DeviceLock('/dev/opu8').acquire(); os._exit(9)")
    subprocess.run([sys.executable, "-c", code], check=False)
    assert holder_pid("/dev/opu8") is None
    DeviceLock("/dev/opu8").acquire()


# -- attacks on the lock (issue 9, finding 1) ----------------------------------------------
# An attacker on the same machine may (1) plant a symlink at the lock's path so that the
# holder's open + truncate destroys a file of the attacker's choosing, (2) create and hold the
# lock file first, locking the holder out. We are root here: a second, real uid plays the
# attacker through setpriv.

NOTEBOOK = '{"cells": ["precious work"]}'


@pytest.fixture
def notebook(tmp_path):
    path = tmp_path / "analysis.ipynb"
    path.write_text(NOTEBOOK)
    return path


@pytest.fixture(scope="module")
def attacker():
    """A real second user (uid, gid, name), deleted afterwards."""
    if os.geteuid() != 0:
        pytest.fail("these tests create a second user and need root")
    name = f"opulockatk{os.getpid()}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    try:
        entry = pwd.getpwnam(name)
        yield entry.pw_uid, entry.pw_gid, name
    finally:
        subprocess.run(["userdel", name], check=True, capture_output=True)


def as_user(user, argv, **kwargs):
    uid, gid, _ = user
    return [*("setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"), *argv]


@pytest.fixture
def shared_dir():
    """A folder every user can write to, sticky like /tmp (outside pytest's private tmp)."""
    path = Path(tempfile.mkdtemp(prefix="opu-shared-"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path)


@contextmanager
def held_by(user, path: Path):
    """``user`` creates ``path`` and holds an exclusive flock on it until the block ends."""
    code = ("import fcntl, os, sys\n"
            f"fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT, 0o644)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "sys.stdin.read()\n")
    process = subprocess.Popen(as_user(user, [sys.executable, "-c", code]),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "held\n"
        yield
    finally:
        process.stdin.close()
        process.wait()


def test_symlink_at_the_lock_path_is_not_followed(notebook):
    path = lock_path("/dev/opu0")
    path.symlink_to(notebook)
    with pytest.raises(UnsafeLockError, match="is a symbolic link") as info:
        DeviceLock("/dev/opu0").acquire()
    assert "Nothing was written" in str(info.value) and "OPU_LOCK_DIR" in str(info.value)
    assert notebook.read_text() == NOTEBOOK
    assert holder_pid("/dev/opu0") is None  # not followed either


def test_symlink_planted_by_another_user_in_a_shared_folder(attacker, shared_dir, notebook,
                                                            monkeypatch):
    monkeypatch.setenv("OPU_LOCK_DIR", str(shared_dir))
    planted = shared_dir / "opu_kernel-opu0.lock"
    subprocess.run(as_user(attacker, ["ln", "-s", str(notebook), str(planted)]), check=True)
    assert planted.is_symlink() and planted.lstat().st_uid == attacker[0]
    with pytest.raises(UnsafeLockError, match="symbolic link"):
        DeviceLock("/dev/opu0").acquire()
    assert notebook.read_text() == NOTEBOOK


def test_a_hard_link_to_another_file_is_refused(notebook):
    os.link(notebook, lock_path("/dev/opu0"))
    with pytest.raises(UnsafeLockError, match="2 hard links"):
        DeviceLock("/dev/opu0").acquire()
    assert notebook.read_text() == NOTEBOOK


def test_a_lock_created_and_held_by_another_user_is_refused_by_name(attacker, shared_dir,
                                                                    monkeypatch):
    monkeypatch.setenv("OPU_LOCK_DIR", str(shared_dir))
    path = shared_dir / "opu_kernel-opu0.lock"
    with held_by(attacker, path):
        with pytest.raises(UnsafeLockError) as info:
            DeviceLock("/dev/opu0").acquire()
        message = str(info.value)
        assert f"belongs to {attacker[2]} (uid {attacker[0]}), not to you" in message
        assert "OPU_LOCK_DIR" in message


def test_a_writable_lock_folder_without_sticky_bit_is_refused(attacker, tmp_path, notebook,
                                                               monkeypatch):
    folder = tmp_path / "open"
    folder.mkdir()
    folder.chmod(0o777)  # anyone may rename or replace the lock in it
    monkeypatch.setenv("OPU_LOCK_DIR", str(folder))
    (folder / "opu_kernel-opu0.lock").symlink_to(notebook)
    with pytest.raises(UnsafeLockError, match="writable by other users .mode 777. without the "
                                              "sticky bit"):
        DeviceLock("/dev/opu0").acquire()
    assert notebook.read_text() == NOTEBOOK
    folder.chmod(0o1777)
    (folder / "opu_kernel-opu0.lock").unlink()
    DeviceLock("/dev/opu0").acquire()  # sticky, like /tmp: fine


@pytest.fixture
def default_location(monkeypatch, shared_dir):
    """OPU_LOCK_DIR unset; the per-user default folder made under a /tmp-like shared folder."""
    monkeypatch.delenv("OPU_LOCK_DIR")
    monkeypatch.setattr(lock, "DEFAULT_PARENT", str(shared_dir))
    return shared_dir / f"opu-{os.geteuid()}"


def test_the_default_folder_is_private_and_shared_by_the_users_processes(default_location,
                                                                         attacker):
    device = "/dev/opu0"
    held = DeviceLock(device)
    held.acquire()
    assert lock_path(device) == default_location / "opu_kernel-opu0.lock"
    info = default_location.stat()
    assert info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) == 0o700
    assert stat.S_IMODE(lock_path(device).stat().st_mode) == 0o600
    assert holder_pid(device) == os.getpid()
    # Another process of the same user, whatever its environment, finds the same lock.
    code = (f"from opu_kernel import lock; lock.DEFAULT_PARENT = {lock.DEFAULT_PARENT!r}\n"
            f"lock.DeviceLock({device!r}).acquire()")
    env = {k: v for k, v in os.environ.items() if k != "OPU_LOCK_DIR"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**env, "TMPDIR": "/var/tmp", "XDG_RUNTIME_DIR": "/nonexistent"})
    assert "DeviceBusyError" in out.stderr and f"in use by process {os.getpid()}" in out.stderr
    # Another user can neither hold nor plant anything in it.
    denied = subprocess.run(as_user(attacker, ["ln", "-s", "/etc/passwd",
                                               str(default_location / "x")]),
                            capture_output=True, text=True)
    assert denied.returncode != 0 and "Permission denied" in denied.stderr
    held.release()
    assert holder_pid(device) is None


def test_a_default_folder_pre_created_by_another_user_is_refused(default_location, attacker,
                                                                 notebook):
    subprocess.run(as_user(attacker, ["mkdir", "-m", "777", str(default_location)]),
                   check=True)
    subprocess.run(as_user(attacker, ["ln", "-s", str(notebook),
                                      str(default_location / "opu_kernel-opu0.lock")]),
                   check=True)
    with pytest.raises(UnsafeLockError) as info:
        DeviceLock("/dev/opu0").acquire()
    message = str(info.value)
    assert f"lock folder {default_location} belongs to {attacker[2]}" in message
    assert "Remove it, or set OPU_LOCK_DIR" in message
    assert notebook.read_text() == NOTEBOOK


def test_a_default_folder_replaced_by_a_symlink_is_refused(default_location, tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    default_location.symlink_to(target)
    with pytest.raises(UnsafeLockError, match="symbolic link or not a folder"):
        DeviceLock("/dev/opu0").acquire()
    assert list(target.iterdir()) == []
