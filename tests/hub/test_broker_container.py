"""The shared OPU's broker as a container of its own (Docker mode, opuhub.broker_container):
what the container looks like (pure builders, no Docker), and the hub config that runs it."""

import sys

import pytest
from traitlets.config import Config

from opuhub import broker_container as bc
from opuhub import hubconfig, shared_opu
from opuhub.settings import settings_from_env
from opuhub.spawner_choice import DOCKER
from tests.hub.test_hubconfig import facts

SECRET = "5e" * 32
ENV = {bc.SECRET_ENV: SECRET}
ARGS = ["--bind=tcp://0.0.0.0:5599", "--device=simulated", "--frame-us=500"]


def spec(**kwargs):
    kwargs.setdefault("environment", ENV)
    return bc.container_spec("opuhub/singleuser:latest", ARGS, "opuhub", **kwargs)


def test_the_simulated_brokers_container_gets_no_device_and_no_privilege():
    s = spec(state_dir="/srv/state")
    assert s["image"] == "opuhub/singleuser:latest"
    assert s["entrypoint"] == ["python", "-m", "opu_kernel.broker"] and s["command"] == ARGS
    assert s["devices"] == [] and "group_add" not in s
    assert s["cap_drop"] == ["ALL"] and "cap_add" not in s
    assert s["security_opt"] == ["no-new-privileges"] and s["privileged"] is False
    assert s["user"] == "1000:1000"
    assert s["read_only"] is True and list(s["tmpfs"]) == ["/tmp"]
    assert "nosuid" in s["tmpfs"]["/tmp"] and "nodev" in s["tmpfs"]["/tmp"]
    assert s["mem_limit"] == s["memswap_limit"] == bc.DEFAULT_MEM_LIMIT
    assert s["pids_limit"] == bc.DEFAULT_PIDS_LIMIT
    assert s["restart_policy"] == {"Name": "no"}  # the runner restarts it, never Docker
    assert s["log_config"]["config"]["max-size"]  # rotated
    assert s["labels"] == {bc.LABEL: "/srv/state"}
    # on the users' network, by its name, and nothing else: no ports, no mounts at all
    assert s["network"] == "opuhub" and s["name"] == s["hostname"] == bc.DEFAULT_NAME
    for key in ("volumes", "mounts", "volumes_from", "ports", "network_mode", "pid_mode",
                "ipc_mode", "cap_add", "sysctls", "userns_mode"):
        assert key not in s, key


def test_a_device_node_is_passed_through_to_the_broker_alone_with_its_group():
    s = spec(device="/dev/opu1", device_gid=123)
    # at the same path: the broker's --device and the lease service name the same node
    assert s["devices"] == ["/dev/opu1:/dev/opu1:rwm"] and s["group_add"] == ["123"]
    # never the root group (a root-owned node needs a udev rule giving it a group)
    assert "group_add" not in spec(device="/dev/opu1", device_gid=0)
    with pytest.raises(bc.BrokerContainerError, match="under /dev/"):
        spec(device="/opt/opuhub/venv/bin/python")


def test_the_secret_goes_in_the_environment_never_on_the_command_line():
    s = spec()
    assert s["environment"][bc.SECRET_ENV] == SECRET
    assert SECRET not in " ".join(s["entrypoint"] + s["command"])
    with pytest.raises(bc.BrokerContainerError, match="must not be on its command line"):
        bc.container_spec("img", [*ARGS, f"--x={SECRET}"], "opuhub", environment=ENV)
    with pytest.raises(bc.BrokerContainerError, match="needs its secret"):
        bc.container_spec("img", ARGS, "opuhub", environment={})
    with pytest.raises(bc.BrokerContainerError, match="root"):
        spec(uid=0)
    with pytest.raises(bc.BrokerContainerError, match="network"):
        bc.container_spec("img", ARGS, "", environment=ENV)


def test_the_runner_forwards_what_the_broker_needs_and_nothing_else():
    environ = {bc.SECRET_ENV: SECRET, "JUPYTERHUB_API_TOKEN": "tok",
               "JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api",
               "JUPYTERHUB_SERVICE_NAME": "opu-broker", "OPU_BROKER_LEASE_POLL_S": "2",
               "OPUHUB_STATE_DIR": "/srv/state", "PATH": "/usr/bin", "HOME": "/root",
               "JUPYTERHUB_CLIENT_ID": "service-opu-broker", "OPU_BROKERX": "no"}
    env = bc.forwarded_env(environ)
    assert env == {bc.SECRET_ENV: SECRET, "JUPYTERHUB_API_TOKEN": "tok",
                   "JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api",
                   "JUPYTERHUB_SERVICE_NAME": "opu-broker", "OPU_BROKER_LEASE_POLL_S": "2"}
    # the hub's address as the container sees it, not the service's loopback one
    assert bc.forwarded_env(environ, "http://opuhub-hub:8081/hub/api/")["JUPYTERHUB_API_URL"] \
        == "http://opuhub-hub:8081/hub/api/"


def test_names_and_addresses_on_the_users_network():
    assert bc.container_name("opuhub") == "opuhub-opu-broker"
    assert bc.container_name("opuhub-test-1a2b") == "opuhub-test-1a2b-opu-broker"
    assert bc.bind_ip("opuhub") == "0.0.0.0" and bc.bind_ip("host") == "127.0.0.1"
    assert bc.broker_url("opuhub", 5599) == "tcp://opuhub-opu-broker:5599"
    assert bc.broker_url("host", 5599) == "tcp://127.0.0.1:5599"
    s = bc.container_spec("img", ARGS, "host", environment=ENV)
    assert s["network_mode"] == "host" and "network" not in s and "hostname" not in s
    assert bc.image_for("", "su", "hw") == "su" and bc.image_for("/dev/opu1", "su", "hw") == "hw"
    assert bc.image_for("/dev/opu1", "su", "") == "su"


def test_the_runner_command_carries_the_brokers_arguments_after_its_own():
    command = shared_opu.broker_command("0.0.0.0", 5599, "/dev/opu1")
    runner = bc.runner_command(command, image="hw", network="net", device="/dev/opu1",
                               state_dir="/s", hub_api_url="http://hub:8081/hub/api/")
    assert runner[:3] == [sys.executable, "-m", "opuhub.broker_container"]
    split = runner.index("--")
    assert runner[split + 1:] == command[3:]
    options = bc.parse_args(runner[3:])
    assert (options.image, options.network, options.name, options.device, options.state_dir,
            options.hub_api_url) == ("hw", "net", "net-opu-broker", "/dev/opu1", "/s",
                                     "http://hub:8081/hub/api/")
    assert options.broker_args[:2] == ["--bind=tcp://0.0.0.0:5599", "--device=/dev/opu1"]
    with pytest.raises(bc.BrokerContainerError, match="not a broker command"):
        bc.runner_command(["python", "-m", "something.else"], image="i", network="n")
    with pytest.raises(SystemExit):
        bc.parse_args(["--image=i", "--network=n"])  # no '--': where would the broker's go?


def docker_settings(tmp_path, **extra):
    env = {"OPUHUB_STATE_DIR": str(tmp_path), "OPUHUB_SPAWNER": "docker",
           "OPUHUB_SHARED_OPU": "simulated", "OPUHUB_SHARED_OPU_FRAME_US": "250",
           "OPUHUB_DOCKER_NETWORK": "opuhub", "OPUHUB_HUB_CONNECT_URL": "http://opuhub-hub:8081"}
    env.update({f"OPUHUB_{k.upper()}": v for k, v in extra.items()})
    return settings_from_env(env)


def broker_service_of(settings):
    host = facts(DOCKER, hub_bind_url="http://172.30.0.1:8081")
    host.secrets[shared_opu.SECRET_FILE] = SECRET
    c = Config()
    hubconfig.configure(c, settings, host)
    [service] = [s for s in c.JupyterHub.services if s["name"] == shared_opu.BROKER_SERVICE]
    return c, service


def test_in_docker_mode_the_hub_runs_the_broker_in_its_container(tmp_path):
    c, service = broker_service_of(docker_settings(tmp_path))
    command = service["command"]
    assert "opuhub.lifeline" in command  # the runner is tied to the hub's life
    options = bc.parse_args(command[command.index("opuhub.broker_container") + 1:])
    assert options.image == "opuhub/singleuser:latest" and options.network == "opuhub"
    assert options.name == bc.DEFAULT_NAME and options.device == ""
    assert options.state_dir == str(tmp_path.resolve())
    assert "--bind=tcp://0.0.0.0:5599" in options.broker_args
    assert "--device=simulated" in options.broker_args
    assert "--frame-us=250" in options.broker_args
    assert service["environment"][bc.SECRET_ENV] == SECRET and SECRET not in " ".join(command)
    # kernels reach it by name on the users' network, not at the hub
    assert c.OPUSpawnerMixin.shared_opu_url == "tcp://opuhub-opu-broker:5599"


def test_a_served_node_goes_to_the_broker_container_in_the_hardware_image(tmp_path):
    _, service = broker_service_of(docker_settings(
        tmp_path, shared_opu="/dev/opu1", hardware_image="opuhub/hw:1", docker_network="lab"))
    command = service["command"]
    options = bc.parse_args(command[command.index("opuhub.broker_container") + 1:])
    assert options.image == "opuhub/hw:1" and options.device == "/dev/opu1"
    assert options.name == "lab-opu-broker"
    assert "--device=/dev/opu1" in options.broker_args


def test_local_mode_still_runs_the_broker_beside_the_hub(tmp_path):
    settings = settings_from_env({"OPUHUB_STATE_DIR": str(tmp_path), "OPUHUB_SPAWNER": "local",
                                  "OPUHUB_SHARED_OPU": "simulated"})
    host = facts()
    host.secrets[shared_opu.SECRET_FILE] = SECRET
    c = Config()
    hubconfig.configure(c, settings, host)
    [service] = [s for s in c.JupyterHub.services if s["name"] == shared_opu.BROKER_SERVICE]
    assert "opuhub.broker_container" not in service["command"]
    assert "opu_kernel.broker" in service["command"]
    assert c.OPUSpawnerMixin.shared_opu_url == "tcp://127.0.0.1:5599"
