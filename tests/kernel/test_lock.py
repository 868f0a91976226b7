"""The per-device lock that makes the OPU exclusive."""

import os
import subprocess
import sys

import pytest

from opu_kernel.errors import DeviceBusyError
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
