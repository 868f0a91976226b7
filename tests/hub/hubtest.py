"""Helpers that run the real hub: `jupyterhub -f hub/jupyterhub_config.py` in a subprocess,
with the local-process spawner, random ports, a temporary state directory and a stand-in
OPU device node. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

from tests import processes
from tests.helpers import execute_in_user_kernel, make_stand_in_node, wait_until

REPO = Path(__file__).resolve().parents[2]
FAKES = REPO / "tests" / "fakes"
BIN = Path(sys.executable).parent
CONFIG = REPO / "hub" / "jupyterhub_config.py"
USER_PASSWORD = "workshop-test-password"

_handed_out: set[int] = set()

def free_port() -> int:
    """A free port below Linux's ephemeral range (32768+), never the same one twice per run:
    the hubs under test start their proxy, services and servers at the same time, and those
    take ephemeral ports (bind to 0) that a port chosen the same way could collide with."""
    rng = random.Random()
    while True:
        port = rng.randrange(20000, 32000)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port

def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (its parent, the hub, is gone) counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return True

def hub_root(name: str) -> Path:
    """A private directory for one hub. Not under pytest's basetemp: pytest deletes old
    numbered basetemps when other sessions start, and on a shared machine that could pull the
    state out from under a running hub. Removed at shutdown unless OPUHUB_KEEP_TEST_STATE=1."""
    return Path(tempfile.mkdtemp(prefix=f"opuhub-{name}-"))


class Hub:
    """One hub with its state directory; can be stopped and started again on the same state."""

    def __init__(self, root: Path, via_run: bool = False, **settings):
        # via_run: start it as `make run` does (python -m opuhub.run, which execs jupyterhub)
        self.command = (
            [sys.executable, "-m", "opuhub.run"] if via_run
            else [str(BIN / "jupyterhub"), "-f", str(CONFIG)]
        )
        self.root = root
        processes.register_root(root)  # its services and servers count as this run's
        self.state = root / "state"
        self.devices = [str(root / "dev" / "opu0")]
        (root / "dev").mkdir(parents=True, exist_ok=True)
        for device in self.devices:
            # a character node with /dev/null's numbers stands in for the OPU
            make_stand_in_node(Path(device))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("JUPYTERHUB_", "OPUHUB_", "OPU_"))}
        # the fake vendor driver (tests/fakes) lets the holder's kernel use the "hardware"
        # backend; PYTHONPATH is in JupyterHub's Spawner.env_keep, so kernels inherit it
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(FAKES), env.get("PYTHONPATH")) if p)
        env.update(
            {
                "OPUHUB_STATE_DIR": str(self.state),
                "OPUHUB_BIND_URL": self.url,
                "OPUHUB_HUB_BIND_URL": f"http://127.0.0.1:{free_port()}",
                "OPUHUB_PROXY_API_PORT": str(free_port()),
                "OPUHUB_LEASE_SERVICE_PORT": str(free_port()),
                "OPUHUB_SPAWNER": "local",
                "OPUHUB_DEVICES": ",".join(self.devices),
                "OPUHUB_USER_PASSWORD": USER_PASSWORD,
                "OPUHUB_ADMINS": "admin",
                "OPUHUB_LEASE_TUTORS": "tutor",  # revokes leases without being admin
                "OPUHUB_CULL_IDLE_SECONDS": "0",
                "OPUHUB_LEASE_CHECK_INTERVAL": "1",
                "OPUHUB_LEASE_GRACE_SECONDS": "3",
                "OPUHUB_POLL_INTERVAL": "1",
                "OPUHUB_N_COMPONENTS": "100",
                # 50 users race for the device in one test; the default limit would answer 429
                "OPUHUB_CONCURRENT_SPAWN_LIMIT": "100",
                "OPUHUB_TIMEZONE": "UTC",
                "OPUHUB_LOG_LEVEL": "DEBUG",
            }
        )
        env.update({f"OPUHUB_{k.upper()}": str(v) for k, v in settings.items()})
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.log_path = root / "hub.log"
        self.pids: set[int] = set()

    # --- process ---------------------------------------------------------------------------

    def launch(self):
        """Start the hub process without waiting for it (see :meth:`wait_up`)."""
        from opuhub.proxy import ensure_chp

        ensure_chp()  # configurable-http-proxy comes from npm: installed once in a fresh clone
        self.state.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            self.command,
            cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    def wait_up(self, timeout: float = 90):
        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the hub exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                hub = requests.get(f"{self.url}/hub/api/", timeout=2).status_code == 200
                svc = self.get("/services/opu-lease/api/leases").status_code == 200
                return hub and svc
            except requests.RequestException:
                return False

        try:
            wait_until(up, timeout, "the hub and the lease service")
        except BaseException:
            self.shutdown()
            raise
        return self

    def start(self, timeout: float = 90):
        return self.launch().wait_up(timeout)

    def stop(self, sig=signal.SIGTERM, timeout: float = 30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def shutdown(self):
        """Stop the hub and every user server (cleanup_servers=False leaves them running).

        Local servers are signalled directly (faster than a stop through the API, which
        waits for each); containers and unknown servers are stopped through the API."""
        if self.proc and self.proc.poll() is None:
            try:
                for user in self.api("GET", "/users").json():
                    for name in user.get("servers") or {}:
                        if not self.remember_pid(user["name"], name):
                            self.api("DELETE", self.server_path(user["name"], name))
            except Exception:
                pass
        self.stop()
        alive = set(self.pids)
        for pid in alive:
            try:
                os.kill(pid, signal.SIGTERM)  # jupyter_server shuts its kernels down on TERM
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + 10
        while alive and time.monotonic() < deadline:
            for pid in list(alive):
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:  # not our child: the hub started it
                    done = 0 if _exists(pid) else pid
                if done:
                    alive.discard(pid)
            time.sleep(0.1)
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        from opuhub.local_spawner import release_host

        release_host(self.root / "homes")  # kernels, cgroups, loop-mounted homes
        # A hub killed (stop() timed out) or crashed leaves its proxy, which runs in a session
        # of its own, and whatever else it started: end every process carrying its state dir
        stragglers = processes.leftover_processes(-1, None, {self.root})
        if stragglers:
            print(f"{self.root.name}: ending what the hub left running:",
                  *(f"  {p}" for p in stragglers), sep="\n")
            processes.end_leftovers(stragglers)
        if os.environ.get("OPUHUB_KEEP_TEST_STATE") != "1" and self.root.name.startswith("opuhub-"):
            shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    # --- REST --------------------------------------------------------------------------------

    @property
    def token(self) -> str:
        return (self.state / "cli-token").read_text().strip()

    def api(self, method: str, path: str, token: str | None = None, **kw) -> requests.Response:
        headers = {"Authorization": f"token {token or self.token}"}
        return requests.request(method, f"{self.url}/hub/api{path}", headers=headers, timeout=30, **kw)

    def get(self, path: str, token: str | None = None, **kw) -> requests.Response:
        headers = {"Authorization": f"token {token or self.token}"}
        return requests.get(f"{self.url}{path}", headers=headers, timeout=30, **kw)

    @staticmethod
    def server_path(user: str, server: str = "") -> str:
        return f"/users/{user}/servers/{server}" if server else f"/users/{user}/server"

    def create_users(self, *names: str):
        resp = self.api("POST", "/users", json={"usernames": list(names)})
        assert resp.status_code in (201, 409), resp.text
        return resp

    def user_token(self, user: str) -> str:
        resp = self.api("POST", f"/users/{user}/tokens", json={"note": "test"})
        assert resp.status_code == 201, resp.text
        return resp.json()["token"]

    def server_model(self, user: str, server: str = "") -> dict | None:
        resp = self.api("GET", f"/users/{user}")
        assert resp.status_code == 200, resp.text
        return (resp.json().get("servers") or {}).get(server)

    def remember_pid(self, user: str, server: str = ""):
        model = self.server_model(user, server)
        pid = ((model or {}).get("state") or {}).get("pid")
        if pid:
            self.pids.add(pid)
        return pid

    def spawn(self, user: str, server: str = "", timeout: float = 90, **options) -> requests.Response:
        resp = self.api("POST", self.server_path(user, server), json=options)
        if resp.status_code not in (201, 202):
            return resp
        wait_until(lambda: (self.server_model(user, server) or {}).get("ready"), timeout,
                 f"{user}'s server to be ready")
        self.remember_pid(user, server)
        return resp

    def stop_server(self, user: str, server: str = "", timeout: float = 30):
        resp = self.api("DELETE", self.server_path(user, server))
        assert resp.status_code in (202, 204), resp.text
        wait_until(lambda: self.server_model(user, server) is None, timeout, f"{user}'s server to stop")

    def leases(self, token: str | None = None) -> list[dict]:
        resp = self.get("/services/opu-lease/api/leases", token)
        assert resp.status_code == 200, resp.text
        return resp.json()["leases"]

    # --- kernels through the proxy -------------------------------------------------------------

    def execute(self, user: str, token: str, code: str, kernel: str = "python3",
                timeout: float = 90) -> dict:
        """Run ``code`` in a new kernel of ``user``'s server, through the proxy."""
        return execute_in_user_kernel(f"http://127.0.0.1:{self.port}", user, token, code,
                                      kernel, timeout)

def docker_spawner_hub(root: Path, deployer_config: str, **settings) -> Hub:
    """A hub with the Docker spawner on a user network of its own, reached by containers at
    the network's gateway, with ``deployer_config`` as a deployer's addition in its
    ``jupyterhub_config.d`` (loaded after ours, with the same ``c``)."""
    network = f"opuhub-test-{uuid.uuid4().hex[:8]}"
    hub = Hub(root, spawner="docker", docker_network=network, **settings)
    hub.env.pop("OPUHUB_HUB_BIND_URL")  # containers reach the hub at the network's gateway
    config_dir = root / "jupyterhub_config.d"
    config_dir.mkdir(mode=0o755, exist_ok=True)
    (config_dir / "50-deployer.py").write_text(deployer_config)
    hub.env["OPUHUB_CONFIG_DIR"] = str(config_dir)
    hub.network = network
    return hub


# Hubs that some test modules need besides the session hub (other settings). Starting a hub
# takes seconds of mostly waiting, so they are launched together with the session hub (when a
# module that needs them is selected) and awaited when first used.
HUB_FACTORIES: dict = {}  # name -> (modules, factory)
_launched: dict[str, Hub] = {}  # launched early, not yet handed to a fixture
_ever_launched: set[str] = set()  # never launch a name twice (its fixture has taken the first)

def hub_factory(name: str, modules: tuple[str, ...]):
    def register(factory):
        HUB_FACTORIES[name] = (modules, factory)
        return factory

    return register

def launch_needed_hubs(tmp_path_factory, selected_modules: set[str]) -> None:
    for name, (modules, factory) in HUB_FACTORIES.items():
        if name not in _ever_launched and selected_modules & set(modules):
            _ever_launched.add(name)
            hub = factory(tmp_path_factory)
            if hub is not None:
                _launched[name] = hub.launch()

def launched_hub(name: str, tmp_path_factory) -> Hub | None:
    """The hub called ``name``: the one launched early, or a new one (None: cannot be made)."""
    hub = _launched.pop(name, None)
    if hub is None:
        hub = HUB_FACTORIES[name][1](tmp_path_factory)
        if hub is None:
            return None
        hub.launch()
    return hub.wait_up()

def shutdown_unclaimed_hubs() -> None:
    """Shut down the hubs launched early that no fixture took (their modules did not run);
    every one of them, even when stopping another failed."""
    failures = []
    while _launched:
        name, hub = _launched.popitem()
        try:
            hub.shutdown()
        except Exception as e:
            failures.append(f"{name}: {type(e).__name__}: {e}")
    if failures:
        raise RuntimeError("could not shut down: " + "; ".join(failures))

# A deployer's addition (jupyterhub_config.d) to the second hub: the start of this user's
# server fails inside the real spawner, after the OPU lease was granted (JupyterHub computes
# environment values in get_env, which the local spawner calls while starting the process).
FAILING_START_USER = "spawn-fails"
FAILING_START = f"""
def fail_this_start(spawner):
    if spawner.user.name == {FAILING_START_USER!r}:
        raise RuntimeError("this server's start fails on purpose (tests/hub/test_spawn_failure.py)")
    return "starts"


c.Spawner.environment.update({{"OPUHUB_TEST_START": fail_this_start}})
"""


@hub_factory("second", ("test_idle_culler.py", "test_authenticators.py", "test_spawn_failure.py"))
def make_second_hub(tmp_path_factory):
    """Persistent accounts (NativeAuthenticator), an impatient idle culler and kernel culler,
    and one user whose server start fails (FAILING_START)."""
    hub = Hub(
        hub_root("second-hub"),
        authenticator="native",
        kernel_cull_idle_seconds=2,
        cull_idle_seconds=6,
        cull_every_seconds=2,
        last_activity_interval=2,
    )
    config_dir = hub.root / "jupyterhub_config.d"  # the default: beside the state directory
    config_dir.mkdir(mode=0o755, exist_ok=True)
    (config_dir / "50-failing-start.py").write_text(FAILING_START)
    return hub
