"""The "Python 3 (OPU)" kernel, driven for real through jupyter_client."""

import json
import os
import time

import pytest

from opu_kernel import extension
from opu_kernel.lock import holder_pid
from tests.helpers import wait_until
from tests.kernel.kernel_client import execute, running_kernel, wait_for_stream


def test_opu_is_preloaded_lazy_and_transforms(opu_kernelspecs):
    with running_kernel(opu_kernelspecs, {"OPU_N_COMPONENTS": "2048"}) as (_, client):
        cell = execute(client, "import sys\n"
                               "print(type(opu).__name__, opu.materialized, 'numpy' in sys.modules)"
                               "\nopu")
        assert cell.status == "ok", cell.traceback
        # Starting the kernel loaded nothing heavy, not even numpy.
        assert cell.stdout.strip() == "LazyOPU False False"
        assert "simulator" in cell.result and "not yet opened" in cell.result
        assert "n_components=2048" in cell.result
        cell = execute(client, "print(opu.materialized)")
        assert cell.stdout.strip() == "False"  # showing the repr created nothing
        cell = execute(client, "opu.fit1d(n_features=16)\n"
                               "print(opu.device.matrix_allocated)\n"
                               "y = opu.transform([1, 0] * 8)\n"
                               "print(y.shape, y.dtype, opu.device.matrix_allocated)")
        assert cell.status == "ok", cell.traceback
        assert cell.stdout.split("\n")[:2] == ["False", "(2048,) uint8 True"]
        cell = execute(client, "opu2 = OPU(n_components=5, camera='exact')\n"
                               "print(opu2.fit_transform1d([1, 1, 0]).shape)")
        assert cell.stdout.strip() == "(5,)"
        cell = execute(client, "class MyOPU(OPU):\n    pass\n"
                               "print(isinstance(opu2, OPU), issubclass(MyOPU, OPU), OPU, "
                               "'random projections' in OPU.__doc__, MyOPU.__mro__[1].__name__)")
        assert cell.stdout.strip() == ("True True <class 'opu_kernel.opu.OPU'> True OPU"), cell.evalue


def opu_status(client) -> dict:
    """``%opu``'s table as a dict."""
    cell = execute(client, "%opu")
    assert cell.status == "ok", cell.traceback
    return dict(line.split(None, 1) for line in cell.stdout.strip().splitlines())


def test_opu_magic_shows_status_and_controls_the_device(opu_kernelspecs):
    env = {"OPU_LEASE_HOLDER": "alice", "OPU_LEASE_EXPIRES": "14:30"}
    with running_kernel(opu_kernelspecs, env) as (_, client):
        status = opu_status(client)
        assert status["backend"] == "simulator" and status["open"] == "False"
        assert status["n_components"] == "10000"
        assert "no device node at /dev/opu0" in status["hardware"]
        assert status["lease"] == "expires=14:30, holder=alice"
        execute(client, "opu.fit1d(n_features=8); opu.transform([1] * 8)")
        status = opu_status(client)
        assert "last_acquisition" in status and status["matrix_allocated"] == "True"
        assert "closed" in execute(client, "%opu close").stdout
        assert opu_status(client)["open"] == "False"
        cell = execute(client, "print(opu.transform([1] * 8).shape)")  # re-opens on use
        assert cell.stdout.strip() == "(10000,)"
        assert "reset" in execute(client, "%opu reset").stdout
        assert opu_status(client)["created"] == "False"
        cell = execute(client, "%opu backend hardware")
        assert cell.status == "ok" and "backend set to hardware" in cell.stdout
        cell = execute(client, "opu.fit1d(n_features=8)")
        assert cell.ename == "BackendUnavailableError"
        assert "no device node" in cell.evalue and "lightonopu" in cell.evalue
        assert "simulator" in execute(client, "%opu backend simulator").stdout
        cell = execute(client, "%opu backend quantum")
        # IPython shows a UsageError as a one-line message, without a traceback.
        assert cell.status == "error"
        assert "UsageError: backend='quantum' is not a backend" in cell.stderr
        cell = execute(client, "%opu fly")
        assert cell.status == "error" and "'fly' is not a command. Usage" in cell.stderr
        assert execute(client, "print(opu.fit_transform1d([1, 0]).shape)").stdout == "(10000,)\n"


def test_bad_input_keeps_the_kernel_and_its_variables(opu_kernelspecs):
    with running_kernel(opu_kernelspecs) as (_, client):
        execute(client, "precious = 42\nopu.fit1d(n_features=4)")
        cell = execute(client, "opu.transform([0.5, 1, 0, 1])")
        assert cell.status == "error" and cell.ename == "ValueError"
        assert "not binary" in cell.evalue
        cell = execute(client, "opu.transform([[[[1, 0, 1, 1]]]])")
        assert cell.ename == "ValueError" and "dimensions" in cell.evalue
        cell = execute(client, "print(precious, opu.transform([1, 0, 1, 1]).shape)")
        assert cell.stdout.strip() == "42 (10000,)"


def test_misconfigured_environment_gives_a_clear_error_and_a_working_kernel(opu_kernelspecs):
    with running_kernel(opu_kernelspecs, {"OPU_N_COMPONENTS": "lots"}) as (_, client):
        cell = execute(client, "opu")
        assert "misconfigured" in cell.result and "OPU_N_COMPONENTS='lots'" in cell.result
        cell = execute(client, "opu.fit1d(n_features=3)")
        assert cell.ename == "ValueError" and "not an integer" in cell.evalue
        assert execute(client, "print(1 + 1)").stdout == "2\n"


def test_lightonml_imports_work_in_the_kernel(opu_kernelspecs):
    with running_kernel(opu_kernelspecs) as (_, client):
        cell = execute(client, "from lightonml import OPU as LightOnOPU\n"
                               "from lightonml.encoding.base import BinaryThresholdEncoder\n"
                               "print(LightOnOPU.__module__, issubclass(LightOnOPU, OPU))")
        assert cell.status == "ok", cell.traceback
        # lightonml's OPU is opu_kernel's with lightonml's behaviour (lightonml_compat.opu)
        assert cell.stdout.strip() == "opu_kernel.lightonml_compat.opu True"


def hardware_env(stand_in_opu, **extra):
    return {"OPU_BACKEND": "hardware", "OPU_DEVICE": str(stand_in_opu.node),
            "FAKE_LIGHTONOPU_LOG": str(stand_in_opu.log), "PYTHONPATH": os.environ["PYTHONPATH"],
            "OPU_LOCK_DIR": os.environ["OPU_LOCK_DIR"], **extra}


def kernel_pid(client) -> int:
    return int(execute(client, "import os; print(os.getpid())").stdout)


@pytest.mark.parametrize("how", ["shutdown", "restart"])
def test_kernel_shutdown_or_restart_closes_the_device(opu_kernelspecs, stand_in_opu, how):
    node = str(stand_in_opu.node)
    with running_kernel(opu_kernelspecs, hardware_env(stand_in_opu)) as (manager, client):
        pid = kernel_pid(client)
        cell = execute(client, "opu.fit1d(n_features=8); print(opu.transform([1] * 8).shape)")
        assert cell.stdout.strip() == "(10000,)", cell.traceback
        assert holder_pid(node) == pid
        status = opu_status(client)
        assert status["backend"] == "hardware" and status["driver_version"] == "0.0-fake"
        if how == "restart":
            manager.restart_kernel(now=False)
            client.wait_for_ready(timeout=60)
        else:
            manager.shutdown_kernel(now=False)
    events = [(e["event"], e["pid"]) for e in stand_in_opu.events()]
    assert ("close", pid) in events
    assert holder_pid(node) is None


def test_interrupt_stops_a_long_transform_and_the_kernel_goes_on(opu_kernelspecs):
    with running_kernel(opu_kernelspecs) as (manager, client):
        # the progress bar (shown once a transform lasts a second) is the sign, sent from
        # inside the transform's loop, that the interrupt lands in the middle of it
        execute(client, "import numpy as np\n"
                        "big = OPU(n_components=3_000_000, streaming=True)\n"
                        "big.fit1d(n_features=1000)")
        # stop_on_error=False: ipykernel would otherwise abort the next cell if it arrives
        # while the kernel still handles this one's error (a race, not what is tested)
        msg_id = client.execute("big.transform(np.ones((100, 1000)))", stop_on_error=False)
        wait_for_stream(client, msg_id, "stderr", "OPU 100 inputs", timeout=60)
        started = time.monotonic()
        manager.interrupt_kernel()
        reply = client.get_shell_msg(timeout=30)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert time.monotonic() - started < 20
        after = execute(client, "print('still here')")
        assert after.stdout == "still here\n", after


def test_interrupt_during_a_hardware_acquisition_releases_the_device(opu_kernelspecs,
                                                                     stand_in_opu):
    env = hardware_env(stand_in_opu, FAKE_LIGHTONOPU_TRANSFORM_SECONDS="30")
    with running_kernel(opu_kernelspecs, env) as (manager, client):
        pid = kernel_pid(client)
        execute(client, "opu.fit1d(n_features=8)")
        client.execute("opu.transform([1] * 8)", stop_on_error=False)  # see above
        wait_until(lambda: "transform1" in stand_in_opu.event_names(), 30,
                   lambda: f"the driver's transform to start (log: {stand_in_opu.events()})",
                   interval=0.1)
        manager.interrupt_kernel()
        reply = client.get_shell_msg(timeout=30)
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert ("close", pid) in [(e["event"], e["pid"]) for e in stand_in_opu.events()]
        assert holder_pid(str(stand_in_opu.node)) is None
        assert opu_status(client)["open"] == "False"


def test_a_failing_extension_leaves_a_working_shell_and_tells_the_first_cell(monkeypatch,
                                                                            capsys):
    from IPython.core.interactiveshell import InteractiveShell

    def broken(*args, **kwargs):
        raise OSError("disk on fire")

    monkeypatch.setattr(extension, "LazyOPU", broken)
    monkeypatch.setattr(extension, "_state", {})
    shell = InteractiveShell()
    try:
        extension.load(shell)
        assert "OPU extension could not load (OSError: disk on fire)" in capsys.readouterr().err
        result = shell.run_cell("print(6 * 7)")
        assert result.success
        out = capsys.readouterr()
        assert "disk on fire" in out.err and out.out == "42\n"
        shell.run_cell("pass")
        assert "disk on fire" not in capsys.readouterr().err  # said once
    finally:
        InteractiveShell.clear_instance()


def test_kernelspec_env_defaults_reach_the_proxy(opu_kernelspecs):
    env = {"OPU_N_COMPONENTS": "300", "OPU_MAX_N_FEATURES": "50", "OPU_SEED": "5"}
    with running_kernel(opu_kernelspecs, env) as (_, client):
        cell = execute(client, "import json; opu.fit1d(n_features=50)\n"
                               "print(json.dumps([opu.n_components, opu.max_n_features, "
                               "opu.seed]))")
        assert json.loads(cell.stdout) == [300, 50, 5]
