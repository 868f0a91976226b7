"""The shared OPU's broker in a container of its own (opuhub.broker_container), for real: the
runner started as the hub starts it, the single-user image, a Docker network of the test's.

From the host the test reaches the broker at its container's address on that network, the
way users' containers reach it by name, and checks what the container is allowed to do."""

import os
import signal
import subprocess
import sys
import uuid

import docker.errors
import numpy as np
import pytest

from opu_kernel import OPU
from opu_kernel.broker import protocol
from opu_kernel.broker.client import BrokerClient, BrokerUnavailable
from opuhub import broker_container as bc
from tests.helpers import container_exec, docker_teardown, wait_until
from tests.hub.hubtest import docker_spawner_hub, free_port, hub_factory, hub_root
from tests.hub.test_docker_spawner import (
    IMAGE,
    docker_client,
    launched_docker_hub,
    remove_docker_objects,
    unavailable,
)
from tests.hub.test_shared_opu import local_sum

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PORT = 5599
TEST_LABEL = "opuhub.test=broker-container"
HAS_NO_CAPS = "0000000000000000"


@pytest.fixture(scope="module")
def client():
    found = docker_client()
    if found is None:
        unavailable(f"no Docker engine with the image {IMAGE}")
    yield found
    found.close()


@pytest.fixture(scope="module")
def network(client):
    net = client.networks.create(f"opuhub-test-{uuid.uuid4().hex[:8]}", driver="bridge",
                                 labels={"opuhub.test": "broker-container"})
    yield net
    docker_teardown(client, net.remove)


class Runner:
    """``python -m opuhub.broker_container`` as the hub's service runs it (its own session,
    the secret in its environment), with its output (the broker's log too) in a file."""

    def __init__(self, tmp_path, network, secret: bytes, *broker_args: str, device: str = "",
                 image: str = IMAGE, pause: float = 5.0):
        self.name = f"{network.name}-opu-broker"
        self.network = network
        self.secret = secret
        self.log_path = tmp_path / f"runner-{uuid.uuid4().hex[:6]}.log"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("OPU_", "JUPYTERHUB_", "OPUHUB_"))}
        env.update({bc.SECRET_ENV: secret.hex(), "JUPYTERHUB_API_TOKEN": "service-token",
                    "OPU_BROKER_TEST_MARK": "forwarded", "OPUHUB_STATE_DIR": "/not/forwarded"})
        args = broker_args or (f"--bind=tcp://0.0.0.0:{PORT}", "--device=simulated",
                               "--frame-us=1")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "opuhub.broker_container", f"--image={image}",
                 f"--failure-pause={pause}",
                 f"--network={network.name}", f"--name={self.name}", f"--label={TEST_LABEL}",
                 "--state-dir=/srv/test-state", *([f"--device={device}"] if device else []),
                 "--", *args],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def container(self, client):
        try:
            return client.containers.get(self.name)
        except docker.errors.NotFound:
            return None

    def address(self, client) -> str:
        container = self.container(client)
        return container.attrs["NetworkSettings"]["Networks"][self.network.name]["IPAddress"]

    def wait_serving(self, client, timeout: float = 90):
        def serving():
            if self.proc.poll() is not None:
                raise AssertionError(f"the runner exited with {self.proc.returncode}:\n"
                                     f"{self.log()[-3000:]}")
            if "started" not in self.log():  # the container of that name is this runner's
                return False
            container = self.container(client)
            if container is None or container.status != "running":
                return False
            probe = BrokerClient(f"tcp://{self.address(client)}:{PORT}", "probe",
                                 protocol.user_key(self.secret, "probe"), connect_timeout_s=2)
            try:
                return probe.hello()
            except BrokerUnavailable:
                return False
            finally:
                probe.close()

        wait_until(serving, timeout, lambda: f"the broker container to serve:\n{self.log()}")

    def stop(self, client, sig=signal.SIGTERM, timeout: float = 60) -> int | None:
        """Signal the runner; its exit code (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                return None
        return self.proc.returncode

    def remove(self, client):
        """Clean-up whatever the test did: the runner gone, no container left."""
        self.stop(client, signal.SIGKILL, 10)
        container = self.container(client)
        if container is not None:
            container.remove(force=True)


@pytest.fixture
def runners(client, network, tmp_path):
    made = []

    def start(*broker_args: str, secret: bytes | None = None, **options) -> Runner:
        runner = Runner(tmp_path, network, secret or os.urandom(32), *broker_args, **options)
        made.append(runner)
        return runner

    yield start
    for runner in made:  # pytest shows it when the test failed
        print(f"--- {runner.name}: runner and container log ---\n{runner.log()[-6000:]}")
    docker_teardown(client, *(lambda r=r: r.remove(client) for r in made))


def test_the_broker_container_serves_the_simulators_bytes_and_holds_nothing_else(
        client, network, runners, monkeypatch):
    runner = runners()
    runner.wait_serving(client)
    user = "alice"
    monkeypatch.setenv("OPU_BROKER_URL", f"tcp://{runner.address(client)}:{PORT}")
    monkeypatch.setenv("OPU_BROKER_USER", user)
    monkeypatch.setenv("OPU_BROKER_KEY", protocol.user_key(runner.secret, user).hex())
    monkeypatch.delenv("OPU_BACKEND", raising=False)
    X = (np.random.default_rng(7).random((50, 300)) < 0.4).astype(np.uint8)
    shared = OPU(n_components=500, max_n_features=1000, seed=3, backend="shared").fit1d(X)
    local = OPU(n_components=500, max_n_features=1000, seed=3, backend="simulator").fit1d(X)
    Y, R = shared.transform(X), local.transform(X)
    assert Y.context.backend == "shared" and Y.shape == (50, 500)
    assert np.array_equal(np.asarray(Y), np.asarray(R))

    container = runner.container(client)
    config, host = container.attrs["Config"], container.attrs["HostConfig"]
    assert config["User"] == "1000:1000"
    assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd")
    assert host["SecurityOpt"] == ["no-new-privileges"] and host["Privileged"] is False
    assert host["ReadonlyRootfs"] is True and list(host["Tmpfs"]) == ["/tmp"]
    assert host["Memory"] > 0 and host["PidsLimit"] == bc.DEFAULT_PIDS_LIMIT
    assert host["RestartPolicy"]["Name"] == "no"
    assert not host.get("Devices")  # the simulated OPU: no device at all
    assert not container.attrs["Mounts"] and not host.get("Binds")  # no state, no socket
    assert not host.get("PortBindings")  # reached on the users' network only
    assert list(container.attrs["NetworkSettings"]["Networks"]) == [network.name]
    labels = config["Labels"]
    assert labels[bc.LABEL] == "/srv/test-state" and labels["opuhub.test"] == "broker-container"
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env[bc.SECRET_ENV] == runner.secret.hex()
    assert env["JUPYTERHUB_API_TOKEN"] == "service-token"
    assert env["OPU_BROKER_TEST_MARK"] == "forwarded" and "OPUHUB_STATE_DIR" not in env
    assert runner.secret.hex() not in " ".join(config["Entrypoint"] + config["Cmd"])
    # inside: no capabilities, no privilege gain, no Docker socket, nothing to write to
    status = container_exec(container, ["cat", "/proc/1/status"])
    assert f"CapEff:\t{HAS_NO_CAPS}" in status and f"CapPrm:\t{HAS_NO_CAPS}" in status
    assert "NoNewPrivs:\t1" in status
    probe = container_exec(container, ["python", "-c", (
        "import os\n"
        "print(os.getuid(), any(os.path.exists(p) for p in "
        "('/var/run/docker.sock', '/run/docker.sock')))\n"
        "try:\n    open('/opt/evil', 'w')\nexcept OSError as e:\n    print(e.errno)\n")])
    assert probe.split() == ["1000", "False", "30"]  # EROFS


def test_sigterm_to_the_runner_removes_the_container(client, runners):
    runner = runners()
    runner.wait_serving(client)
    assert runner.stop(client, signal.SIGTERM) == 0, runner.log()
    assert runner.container(client) is None
    assert "stopping the broker container" in runner.log()


def test_a_killed_runners_container_is_replaced_and_an_exit_is_passed_on(client, runners):
    first = runners()
    first.wait_serving(client)
    left = first.container(client).id
    assert first.stop(client, signal.SIGKILL) == -signal.SIGKILL
    assert first.container(client).id == left  # killed: it could not clean up
    second = runners()
    second.wait_serving(client)
    assert second.container(client).id != left
    assert "removing a leftover broker container" in second.log()
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(left)
    assert second.stop(client) == 0
    # a broker that exits: the runner exits with its code (JupyterHub then restarts the
    # service) and takes the container along
    failing = runners("--bind=not-an-endpoint", "--device=simulated", pause=0.5)
    assert failing.proc.wait(90) not in (0, None), failing.log()
    assert failing.container(client) is None
    assert "exited with" in failing.log()
    # an image that is not there: a clear line, after a pause (JupyterHub restarts at once)
    missing = runners(image="opuhub/absent-for-tests:never", pause=0.5)
    assert missing.proc.wait(90) == 1 and missing.container(client) is None
    assert "Docker could not run the broker" in missing.log(), missing.log()


@pytest.fixture
def device_node():
    """A stand-in OPU node under the host's /dev (/dev/null's numbers), group 4242, mode 0660:
    only a process in that group may open it."""
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    node = f"/dev/opuhub-test-{uuid.uuid4().hex[:8]}"
    os.mknod(node, 0o020000 | 0o660, os.makedev(1, 3))
    os.chown(node, 0, 4242)
    os.chmod(node, 0o660)
    yield node
    os.unlink(node)


def test_the_served_node_goes_to_the_broker_container_alone_with_its_group(
        client, runners, device_node):
    # the runner's --device is what it passes through; the broker here still serves the
    # simulated device (the image has no vendor driver to open a stand-in node with)
    runner = runners(device=device_node)
    runner.wait_serving(client)
    container = runner.container(client)
    host = container.attrs["HostConfig"]
    assert host["Devices"] == [{"PathOnHost": device_node, "PathInContainer": device_node,
                                "CgroupPermissions": "rwm"}]
    assert host["GroupAdd"] == ["4242"]
    probe = container_exec(container, ["python", "-c", (
        "import glob, os\n"
        f"fd = os.open({device_node!r}, os.O_RDWR); os.close(fd)\n"
        "print(sorted(glob.glob('/dev/opu*')))\n")])
    assert probe.split() == [f"['{device_node}']"]  # opened as uid 1000; no other OPU node


# --- a Docker-mode hub with a shared OPU: the hub runs the broker's container ----------------

SHARER = "dockersharer"


@hub_factory("shared-docker", ("test_broker_container_docker.py",))
def make_shared_docker_hub(tmp_path_factory):
    if docker_client() is None:
        return None
    # homes as volumes (no loop-mounted filesystem to make): this test is about the broker
    return docker_spawner_hub(hub_root("shared-docker"), "", image=IMAGE, hardware_image=IMAGE,
                              home_quota="0", shared_opu="simulated",
                              shared_opu_port=free_port(), shared_opu_frame_us=50)


@pytest.fixture(scope="module")
def shared_docker_hub(tmp_path_factory):
    hub, client = launched_docker_hub("shared-docker", tmp_path_factory,
                                      "the shared-OPU Docker hub could not be made")
    yield hub, client

    def remove_broker():  # a hub that did not stop cleanly
        try:
            client.containers.get(f"{hub.network}-opu-broker").remove(force=True)
        except docker.errors.NotFound:
            pass

    def remove_server():
        try:
            client.api.remove_container(f"jupyter-{SHARER}", force=True)
        except docker.errors.NotFound:
            pass

    docker_teardown(client, hub.shutdown, remove_server, remove_broker,
                    lambda: remove_docker_objects(client, hub, SHARER))


def test_a_docker_hub_runs_the_broker_container_and_shared_kernels_use_it(shared_docker_hub):
    hub, client = shared_docker_hub
    name = f"{hub.network}-opu-broker"

    def running():
        try:
            return client.containers.get(name).status == "running"
        except docker.errors.NotFound:
            return False

    wait_until(running, 90, lambda: f"the hub's broker container {name}:\n{hub.log()[-3000:]}")
    broker = client.containers.get(name)
    host = broker.attrs["HostConfig"]
    assert broker.attrs["Config"]["Labels"][bc.LABEL] == str(hub.state)
    assert broker.attrs["Config"]["User"] == "1000:1000" and host["CapDrop"] == ["ALL"]
    assert host["ReadonlyRootfs"] is True and not host.get("Devices")
    assert not broker.attrs["Mounts"] and not host.get("Binds")
    assert list(broker.attrs["NetworkSettings"]["Networks"]) == [hub.network]
    secret = (hub.state / "opu-broker-secret").read_text().strip()
    assert secret not in " ".join(broker.attrs["Config"]["Entrypoint"] + broker.attrs["Config"]["Cmd"])

    hub.create_users(SHARER)
    assert hub.spawn(SHARER, profile="shared", timeout=180).status_code in (201, 202)
    code = (
        "import numpy as np, os\n"
        "x = (np.arange(64) % 3 == 0).astype('uint8')\n"
        "opu.fit1d(n_features=64)\n"
        "y = opu.transform(x)\n"
        "print(os.environ['OPU_BROKER_URL'], y.context.backend,\n"
        "      int(np.asarray(y, dtype='int64').sum()))\n"
    )
    out = hub.execute(SHARER, hub.user_token(SHARER), code, kernel="opu", timeout=120)
    assert out["error"] is None, (out, broker.logs()[-3000:])
    port = hub.env["OPUHUB_SHARED_OPU_PORT"]
    assert out["stdout"].split() == [f"tcp://{name}:{port}", "shared",
                                     str(local_sum(n_components=100))], out
    hub.stop_server(SHARER, timeout=60)
    # a stopped hub leaves no broker behind
    hub.stop()
    assert not client.containers.list(all=True, filters={"name": f"^/{name}$"})
