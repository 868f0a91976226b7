"""A real "Python 3 (OPU)" kernel on the shared OPU: the preloaded ``opu`` goes to the broker,
``%opu`` shows the shared device and the queue, and Kernel → Interrupt during a wait frees the
kernel's place at once (and the next cell works)."""

import time

import numpy as np

from opu_kernel import OPU
from tests.kernel.kernel_client import execute, running_kernel

from .conftest import broker_in_thread
from .test_faults import wait_until

CELL = """
import numpy as np
X = (np.arange(640).reshape(10, 64) % 3 == 0).astype('uint8')
opu.n_components = 300
opu.fit1d(X)
Y = opu.transform(X)
print(Y.dtype, Y.shape, Y.context.backend, int(np.asarray(Y, dtype='int64').sum()))
"""


def test_a_shared_kernel_transforms_shows_its_place_and_an_interrupt_frees_it(
        opu_kernelspecs, secret):
    with broker_in_thread(secret, heartbeat_s=0.2) as b:
        env = {**b.env("alice"), "OPU_BACKEND": "shared"}
        with running_kernel(opu_kernelspecs, env) as (manager, client):
            status = execute(client, "%opu")
            assert "shared: simulated" in status.stdout, status
            assert "your_position" in status.stdout and "queue" in status.stdout

            out = execute(client, CELL)
            assert out.status == "ok", out
            X = (np.arange(640).reshape(10, 64) % 3 == 0).astype("uint8")
            local = OPU(n_components=300, max_n_features=1000, backend="simulator").fit1d(X)
            expected = int(np.asarray(local.transform(X), dtype="int64").sum())
            assert out.stdout.split() == ["uint8", "(10,", "300)", "shared", str(expected)]

            b.admin("reserve", holder="nobody", start=time.time(), end=time.time() + 300)
            msg_id = client.execute("opu.transform(X)", stop_on_error=False)
            wait_until(lambda: b.admin()["jobs"] == 1, what="the request to queue")
            manager.interrupt_kernel()
            reply = client.get_shell_msg(timeout=30)
            assert reply["parent_header"]["msg_id"] == msg_id
            assert reply["content"]["ename"] == "KeyboardInterrupt"
            wait_until(lambda: b.admin()["jobs"] == 0, what="the cancel")
            assert b.admin()["requests_dropped"] == 0  # cancelled, not timed out
            b.admin("release", holder="nobody")
            again = execute(client, "print(opu.transform(X).shape)")
            assert again.stdout == "(10, 300)\n", again
