"""Fixtures shared by every test folder."""

import os
import sys
from pathlib import Path

import pytest

from tests import processes
from tests.helpers import StandInDevice, make_stand_in_node, wait_until

ROOT = Path(__file__).resolve().parent.parent
FAKES = ROOT / "tests" / "fakes"

# Set at import, before any test starts a process: every child of this run inherits it.
RUN_MARKER = processes.mark_this_run()
LEFTOVER_GRACE_SECONDS = 10  # a hub's last children may still be on their way out

OPU_ENV = ("OPU_BACKEND", "OPU_DEVICE", "OPU_N_COMPONENTS", "OPU_MAX_N_FEATURES", "OPU_SEED",
           "OPU_LOCK_DIR", "FAKE_LIGHTONOPU_LOG")


@pytest.fixture(autouse=True)
def isolated_opu_env(monkeypatch, tmp_path_factory):
    """No test sees the developer's OPU settings; device locks live in a private folder."""
    for name in OPU_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPU_LOCK_DIR", str(tmp_path_factory.mktemp("locks")))


@pytest.fixture
def fake_driver_path(monkeypatch):
    """Put the fake `lightonopu` driver on sys.path and PYTHONPATH (for child processes)."""
    monkeypatch.syspath_prepend(str(FAKES))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(FAKES), os.environ.get("PYTHONPATH", "")) if p))
    yield FAKES
    for name in [m for m in sys.modules if m == "lightonopu" or m.startswith("lightonopu.")]:
        del sys.modules[name]


@pytest.fixture
def stand_in_opu(tmp_path, monkeypatch, fake_driver_path):
    """A usable 'hardware' OPU: stand-in node at OPU_DEVICE and the fake driver importable."""
    node = make_stand_in_node(tmp_path / "opu0")
    log = tmp_path / "driver.log"
    monkeypatch.setenv("OPU_DEVICE", str(node))
    monkeypatch.setenv("FAKE_LIGHTONOPU_LOG", str(log))
    return StandInDevice(node, log)


def pytest_sessionfinish(session, exitstatus):
    """No process this run started may outlive it (see tests/processes.py): name them, end
    them, and fail the run. All fixtures have been torn down by now."""
    def leftovers():
        return processes.leftover_processes(os.getpid(), RUN_MARKER, processes.registered_roots())

    try:
        wait_until(lambda: not leftovers(), LEFTOVER_GRACE_SECONDS, "no leftover processes")
        return
    except TimeoutError:
        left = leftovers()
    if not left:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"{len(left)} process(es) started by the tests still run after them "
             f"(ended now; a test or fixture must stop what it starts):"]
    lines += [f"  {p}" for p in left]
    if reporter is not None:
        reporter.write_line("")
        reporter.write_sep("=", "leftover processes", red=True)
        reporter.write_line("\n".join(lines))
    else:
        print("\n".join(lines), file=sys.stderr)
    processes.end_leftovers(left)
    if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
