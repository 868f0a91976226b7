"""The pre-started kernel: a real opuhub-singleuser server (in front of a stand-in hub API on
127.0.0.1) with PrestartingKernelManager, driven over REST and the kernel websocket as
JupyterLab drives it."""

import asyncio
import json
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from opuhub_singleuser.kernel_pool import PrestartingKernelManager, handover_code

from tests.helpers import run_on_kernel, wait_until

from .fake_hub import FakeHubServer

USER = "tester"
TOKEN = "kernel-pool-test-token"
HEADERS = {"Authorization": f"token {TOKEN}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, tmp_path: Path, prestart_count: int = 1):
        self.root = tmp_path / "home"
        (self.root / "sub").mkdir(parents=True)
        config = tmp_path / "config"
        config.mkdir()
        (config / "jupyter_server_config.json").write_text(json.dumps({
            "ServerApp": {
                "kernel_manager_class":
                    "opuhub_singleuser.kernel_pool.PrestartingKernelManager",
                "jpserver_extensions": {"opuhub_singleuser": True},
            },
            "MappingKernelManager": {"default_kernel_name": "python3"},
            "PrestartingKernelManager": {"prestart_count": prestart_count,
                                         "prestart_warmup": "import fractions"},
        }))
        self.hub = FakeHubServer("127.0.0.1", USER)
        port = free_port()
        self.base = f"http://127.0.0.1:{port}/user/{USER}/"
        env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "HOME": str(self.root), "JUPYTER_CONFIG_DIR": str(config),
            "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
            **self.hub.singleuser_env(TOKEN, self.base),
        }
        script = shutil.which("opuhub-singleuser", path=str(Path(sys.executable).parent))
        assert script, "opuhub-singleuser is not installed in this environment (make install)"
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        self.proc = subprocess.Popen(
            [script, "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
             f"--ServerApp.root_dir={self.root}", "--allow-root"],  # CI runs as root
            env=env, cwd=self.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_log(self, needle: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.log.append(line)
            if needle in line:
                return line
        raise AssertionError(f"no {needle!r} in the server's log:\n{''.join(self.log[-60:])}")

    def wait_up(self, timeout: float = 120) -> None:
        """Until the server answers, as the hub waits for it."""
        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited:\n{''.join(self.log[-60:])}")
            try:
                return self.api("GET", "api").status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(up, timeout, lambda: f"the server to answer:\n{''.join(self.log[-60:])}",
                   interval=0.1)

    def api(self, method: str, path: str, **kw) -> requests.Response:
        return requests.request(method, self.base + path, headers=HEADERS, timeout=60, **kw)

    def new_session(self, path: str) -> str:
        resp = self.api("POST", "api/sessions", json={
            "path": path, "name": Path(path).name, "type": "notebook",
            "kernel": {"name": "python3"}})
        assert resp.status_code == 201, resp.text
        return resp.json()["kernel"]["id"]

    def execute(self, kernel_id: str, code: str) -> tuple[str, int]:
        """(stdout, execution_count of the reply)."""
        out = run_on_kernel(self.base.replace("http://", "ws://")
                            + f"api/kernels/{kernel_id}/channels", TOKEN, USER, code,
                            timeout=60, store_history=True)
        assert out["error"] is None, out
        return out["stdout"], out["execution_count"]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.hub.close()


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path)
    yield s
    s.stop()


def prestarted_id(line: str) -> str:
    # "... [opuhub] pre-started python3 kernel <id> ready in 0.93s"
    return line.split(" kernel ", 1)[1].split()[0]


@pytest.mark.slow
def test_the_first_notebook_gets_the_prestarted_kernel_in_its_folder(server):
    kernel_id = prestarted_id(server.wait_log("[opuhub] pre-started"))
    # nobody's yet: not in the kernel list
    assert server.api("GET", "api/kernels").json() == []
    # what the hub's spawner asks before letting the next start in line go
    assert server.api("GET", "opuhub/prestart").json() == {"state": "done"}
    assert server.api("GET", "opuhub/prestart?wait=5").json() == {"state": "done"}
    assert server.api("GET", "opuhub/prestart?wait=soon").status_code == 400
    anonymous = requests.get(server.base + "opuhub/prestart", timeout=30,
                             allow_redirects=False)
    assert anonymous.status_code in (302, 403)  # to the hub's login, never the state

    assert server.new_session("sub/first.ipynb") == kernel_id
    out, count = server.execute(kernel_id, (
        "import os, sys\n"
        "print(os.getcwd(), __session__, os.environ['JPY_SESSION_NAME'],\n"
        "      'fractions' in sys.modules, '_opuhub_os' in dir())"))
    sub = server.root / "sub"
    assert out.split() == [str(sub), str(sub / "first.ipynb"), str(sub / "first.ipynb"),
                           "True", "False"]
    assert count == 1  # the hand-over and the warm-up left no trace in the history

    # not refilled: the next notebook gets a kernel of its own
    second = server.new_session("second.ipynb")
    assert second != kernel_id
    out, _ = server.execute(second, "import os; print(os.getcwd())")
    assert out.strip() == str(server.root)
    listed = {k["id"] for k in server.api("GET", "api/kernels").json()}
    assert listed == {kernel_id, second}


@pytest.mark.slow
def test_without_prestarted_kernels_the_server_starts_them_on_demand(tmp_path):
    s = Server(tmp_path, prestart_count=0)
    try:
        s.wait_up()
        resp = s.api("POST", "api/kernels", json={"name": "python3"})
        assert resp.status_code == 201, resp.text
        out, count = s.execute(resp.json()["id"], "print(6 * 7)")
        assert (out.strip(), count) == ("42", 1)
        assert not any("[opuhub] pre-started" in line for line in s.log)
        assert s.api("GET", "opuhub/prestart").json() == {"state": "off"}
    finally:
        s.stop()


def test_handover_code_sets_the_folder_and_session_and_leaves_no_name():
    namespace = {"get_ipython": lambda: type("Shell", (), {"user_ns": namespace})()}
    code = handover_code("/tmp", "/tmp/x.ipynb")
    import os

    before = os.getcwd()
    saved = os.environ.get("JPY_SESSION_NAME")
    try:
        exec(code, namespace)
        assert os.getcwd() == "/tmp"
        assert os.environ["JPY_SESSION_NAME"] == "/tmp/x.ipynb"
        assert namespace["__session__"] == "/tmp/x.ipynb"
        assert "_opuhub_os" not in namespace
    finally:
        os.chdir(before)
        if saved is None:
            os.environ.pop("JPY_SESSION_NAME", None)
        else:
            os.environ["JPY_SESSION_NAME"] = saved
    assert handover_code(None, None) == "import os as _opuhub_os\ndel _opuhub_os"


def test_waiting_for_the_prestart_ends_when_it_is_done_or_the_time_is_up():
    """What opuhub/prestart?wait= awaits before answering (the hub's long poll)."""
    async def scenario():
        manager = PrestartingKernelManager(prestart_count=1)
        loop = asyncio.get_running_loop()
        manager._prestart_task = loop.create_future()  # stands for the kernels' start
        waiter = asyncio.create_task(manager.wait_prestart_done(60))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not waiter.done() and manager.prestart_state == "starting"
        manager._prestart_task.set_result(None)
        await asyncio.wait_for(waiter, 10)
        assert manager.prestart_state == "done"

        manager._prestart_task = loop.create_future()  # never done: the time is up
        await asyncio.wait_for(manager.wait_prestart_done(0.05), 10)
        assert manager.prestart_state == "starting"

    asyncio.run(scenario())


def test_no_kernel_starts_while_the_prestarted_one_launches(monkeypatch):
    """Two kernels launched at once could get the same ipc socket files (jupyter_client picks
    those not in use yet; a launching kernel creates its own only once it runs)."""
    from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

    started = []

    async def base_start(self, **kwargs):
        started.append(kwargs.get("kernel_name"))
        return "new-kernel"

    monkeypatch.setattr(AsyncMappingKernelManager, "start_kernel", base_start)

    async def scenario():
        manager = PrestartingKernelManager(prestart_count=0)
        await manager._launching.acquire()  # a pre-started kernel is launching
        request = asyncio.create_task(manager.start_kernel(kernel_name="python3"))
        for _ in range(5):
            await asyncio.sleep(0)
        assert started == [] and not request.done()
        manager._launching.release()  # it answers: its sockets exist
        assert await asyncio.wait_for(request, 10) == "new-kernel"
        assert started == ["python3"]

    asyncio.run(scenario())
