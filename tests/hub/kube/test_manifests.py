"""kubernetes/: the chart values and the device plugin, turned into the objects they make and
checked against the Kubernetes API's typed models (no unknown field anywhere)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from types import SimpleNamespace

import pytest
import yaml
from traitlets.config import Config

from opuhub import hubconfig
from opuhub.kube_inventory import DeviceInventory
from opuhub.kube_spawner import OPUKubeSpawner, api_dict
from tests.hub.kube import chart, strict
from tests.hub.kube.test_spawner_pod import container, env, opu_resources, spawn


def test_values_use_only_what_the_chart_and_the_spawner_know():
    values = chart.load_values()
    unmapped = set(values["singleuser"]) - chart.MAPPED - chart.NOT_SPAWNER
    assert not unmapped, f"tests/hub/kube/chart.py does not restate singleuser.{unmapped}"
    for section in values["hub"]["config"]:
        assert section[:1].isupper()  # the chart refuses other section names
    traits = OPUKubeSpawner.class_traits(config=True)
    unknown = set(values["hub"]["config"]["OPUKubeSpawner"]) - set(traits)
    assert not unknown, f"values.yaml sets OPUKubeSpawner.{unknown}: no such setting"


def _pods_from_values(tmp_path):
    values = chart.load_values()
    c: Config = chart.spawner_config(values)
    c.OPUKubeSpawner.lease_db = str(tmp_path / "leases.sqlite")  # /srv/jupyterhub in the pod
    assert c.JupyterHub.spawner_class == "opuhub.kube_spawner.OPUKubeSpawner"

    async def run():
        pods = []
        for user, profile in (("alice", "simulator"), ("bob", "hardware")):
            spawner = OPUKubeSpawner(_mock=True, config=c, user=SimpleNamespace(
                name=user, id=1, url=f"/user/{user}/"))
            pods.append((spawner, await spawn(spawner, {"profile": profile})))
        return pods

    return values, asyncio.run(run())


def test_the_values_give_hardened_pods_and_the_holder_lands_on_the_opu_node(tmp_path):
    values, [(alice, simulator), (bob, holder)] = _pods_from_values(tmp_path)
    for spawner, pod in ((alice, simulator), (bob, holder)):
        strict.parse(pod, "V1Pod")
        strict.parse(api_dict(spawner.get_pvc_manifest()), "V1PersistentVolumeClaim")
        notebook = container(pod)
        assert notebook["args"][:2] == ["jupyterhub-singleuser",
                                        "--MappingKernelManager.cull_idle_timeout=3600"]
        assert "--MappingKernelManager.default_kernel_name=opu" in notebook["args"]
        assert notebook["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["spec"]["securityContext"]["fsGroup"] == 1000
        assert pod["metadata"]["labels"]["hub.jupyter.org/network-access-hub"] == "true"
        assert pod["spec"]["volumes"][0] == {
            "name": "home", "persistentVolumeClaim": {"claimName": f"opuhub-home-{spawner.user.name}"}}
        assert notebook["volumeMounts"][0] == {"name": "home", "mountPath": "/home/jovyan"}
        assert notebook["resources"]["limits"] == {
            "cpu": 2.0, "memory": 2 * 1024**3, **opu_resources(pod)["limits"]}
        assert not pod["spec"].get("initContainers")  # the chart's privileged one is off
    assert opu_resources(simulator) == {"limits": {}, "requests": {}}
    assert opu_resources(holder) == {"limits": {"lighton.ai/opu0": "1"},
                                     "requests": {"lighton.ai/opu0": "1"}}
    terms = holder["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                       "values": ["opu-node-1"]}]}]
    assert env(holder)["OPU_LEASE_DEVICE"] == "opu-node-1:/dev/opu0"
    assert env(holder)["OPU_DEVICE"] == "/dev/opu0"


def test_the_kernel_arguments_are_the_hubs():
    spawner = chart.load_values()["hub"]["config"]["OPUKubeSpawner"]
    assert spawner["args"] == hubconfig.singleuser_args(
        SimpleNamespace(kernel_cull_idle_seconds=3600), "opu")


def _device_plugin() -> dict:
    [daemonset] = list(yaml.safe_load_all(chart.DEVICE_PLUGIN.read_text()))
    return daemonset


def test_the_device_plugin_advertises_every_device_the_hub_leases():
    daemonset = _device_plugin()
    strict.parse_manifest(daemonset)
    spec = daemonset["spec"]["template"]["spec"]
    [plugin] = spec["containers"]
    args = plugin["args"]
    domain = args[args.index("--domain") + 1]
    devices = [json.loads(args[i + 1]) for i, arg in enumerate(args) if arg == "--device"]
    advertised = {}
    for device in devices:
        [group] = device["groups"]
        [path] = group["paths"]
        assert path["path"] == f"/dev/{device['name']}" and group.get("count", 1) == 1
        assert path["permissions"] == "rw"  # no "m": the pod cannot make device nodes
        advertised[f"{domain}/{device['name']}"] = path["mountPath"]
    spawner = chart.load_values()["hub"]["config"]["OPUKubeSpawner"]
    inventory = DeviceInventory.from_mapping(spawner["device_inventory"])
    wanted = set(inventory.resource_names(spawner["device_resource"]).values())
    assert wanted <= set(advertised)
    assert set(advertised.values()) == {spawner["container_device"]}
    assert spec["nodeSelector"] == {"lighton.ai/opu-node": "true"}
    assert {"key": spawner["opu_node_taint"], "operator": "Exists", "effect": "NoSchedule"} in \
        spec["tolerations"]
    assert spec["automountServiceAccountToken"] is False


def test_network_rules_user_pods_reach_only_the_hub_proxy_and_dns():
    values = chart.load_values()
    policy = values["singleuser"]["networkPolicy"]
    assert policy["enabled"] is True
    assert policy["egress"] == [] and policy["ingress"] == [] and policy["allowedIngressPorts"] == []
    # the chart always allows user pods → hub:8081 and → proxy:8000; these add the rest
    assert policy["egressAllowRules"] == {
        "cloudMetadataServer": False, "dnsPortsCloudMetadataServer": False,
        "dnsPortsKubeSystemNamespace": True, "dnsPortsPrivateIPs": False,
        "nonPrivateIPs": False, "privateIPs": False}
    assert values["singleuser"]["cloudMetadata"]["blockWithIptables"] is False
    # the rules we add for the lease service, as the API types them
    hub_in = strict.parse(values["hub"]["networkPolicy"]["ingress"],
                          "list[V1NetworkPolicyIngressRule]")
    proxy_out = strict.parse(values["proxy"]["chp"]["networkPolicy"]["egress"],
                             "list[V1NetworkPolicyEgressRule]")
    ports = strict.parse(values["hub"]["service"]["extraPorts"], "list[V1ServicePort]")
    assert hub_in[0].ports[0].port == proxy_out[0].ports[0].port == ports[0].port == 10101
    # the proxy alone may reach it: not user pods (they carry network-access-hub)
    assert hub_in[0]._from[0].pod_selector.match_labels == {"app": "jupyterhub",
                                                             "component": "proxy"}


def test_the_lease_service_and_the_culler_are_hub_services():
    values = chart.load_values()
    hub = values["hub"]
    service = hub["services"]["opu-lease"]
    assert service["command"][:2] == ["python3", "-m"]
    assert importlib.util.find_spec(service["command"][2]) is not None
    spawner = hub["config"]["OPUKubeSpawner"]
    inventory = DeviceInventory.from_mapping(spawner["device_inventory"])
    assert service["environment"]["OPUHUB_DEVICES"].split(",") == inventory.hand_out_order()
    assert service["environment"]["OPUHUB_LEASE_DB"] == spawner["lease_db"]
    assert service["url"].endswith(":10101")
    roles = hub["loadRoles"]
    assert roles["opu-lease-service"] == {"scopes": hubconfig.LEASE_SERVICE_SCOPES,
                                          "services": ["opu-lease"]}
    assert "access:services!service=opu-lease" in roles["user"]["scopes"]
    cull = values["cull"]
    # the culler (run by the chart as a hub service) must outlast the activity updates
    assert cull["enabled"] is True and cull["timeout"] >= 300 + 30


def test_the_lease_service_listens_on_the_pods_addresses():
    from opuhub.kube_service import DEFAULT_BIND_URL, bind_url

    values = chart.load_values()
    environment = values["hub"]["services"]["opu-lease"]["environment"]
    assert bind_url(environment) == "http://0.0.0.0:10101" == bind_url({}) == DEFAULT_BIND_URL
    for bad in ("http://hub", "https://0.0.0.0:10101", "0.0.0.0:10101", "http://0.0.0.0:1/x"):
        with pytest.raises(ValueError, match="http://HOST:PORT"):
            bind_url({"OPUHUB_LEASE_BIND_URL": bad})


def test_the_strict_parser_refuses_what_the_api_would_drop_or_refuse():
    good = {"name": "notebook", "image": "x", "securityContext": {"readOnlyRootFilesystem": True}}
    assert strict.parse(good, "V1Container").security_context.read_only_root_filesystem is True
    for bad, says in (
        ({**good, "securityContext": {"readOnlyRootFileSystem": True}}, "no field 'readOnlyRootFileSystem'"),
        ({**good, "ports": [{"containerPort": "8888"}]}, "int expected"),
        ({**good, "env": [{"name": "A", "value": 1}]}, "str expected"),
        ({"image": "x"}, "name"),  # required
    ):
        with pytest.raises(strict.UnknownField, match=says):
            strict.parse(bad, "V1Container")
    with pytest.raises(strict.UnknownField, match="null is not a value"):
        strict.parse({"metadata": {"labels": {"app": None}}}, "V1Pod")
    assert strict.parse({"limits": {"cpu": 2.0}}, "V1ResourceRequirements").limits == {"cpu": 2.0}


# Pod Security Standards, "restricted" profile (Kubernetes docs, v1.28+), restated for what a
# user pod can contain: kubernetes/README.md labels the namespace so that the API server itself
# refuses "baseline" violations and warns on "restricted" ones.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                      "persistentVolumeClaim", "projected", "secret"}


def restricted_problems(pod: dict) -> list[str]:
    problems = []
    spec = pod["spec"]
    psc = spec.get("securityContext") or {}
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']}: {kinds - RESTRICTED_VOLUMES}")
    for each in (spec.get("initContainers") or []) + spec["containers"]:
        csc = each.get("securityContext") or {}
        name = each["name"]
        if csc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation")
        if csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
            problems.append(f"{name}: runAsNonRoot")
        if csc.get("runAsUser", psc.get("runAsUser")) == 0:
            problems.append(f"{name}: runAsUser 0")
        seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile {seccomp}")
        caps = csc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []) or set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: capabilities")
        if any(port.get("hostPort") for port in each.get("ports") or []):
            problems.append(f"{name}: hostPort")
        if csc.get("privileged"):
            problems.append(f"{name}: privileged")
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            problems.append(key)
    return problems


def test_user_pods_meet_the_restricted_pod_security_standard(tmp_path):
    _, pods = _pods_from_values(tmp_path)
    for _, pod in pods:
        assert restricted_problems(pod) == []
    # and the restatement can fail: the chart's metadata blocker breaks it
    blocker = {"name": "block", "securityContext": {"privileged": True, "runAsUser": 0}}
    broken = {**pods[0][1], "spec": {**pods[0][1]["spec"], "initContainers": [blocker]}}
    assert "block: privileged" in restricted_problems(broken)


def test_the_lease_service_starts_from_the_values_and_shares_the_spawners_database(tmp_path):
    """python -m opuhub.kube_service with the environment values.yaml gives it (paths under the
    hub's volume moved to tmp_path, JupyterHub's variables as the hub sets them): it listens on
    its bind address although the service URL's host does not resolve here, answers through
    the hub's login, and its lease database is the file the spawner uses."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    values = chart.load_values()
    moved = {key: value.replace("/srv/jupyterhub", str(tmp_path))
             for key, value in values["hub"]["services"]["opu-lease"]["environment"].items()}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, **moved,
           "OPUHUB_LEASE_BIND_URL": f"http://127.0.0.1:{port}",
           "JUPYTERHUB_SERVICE_URL": values["hub"]["services"]["opu-lease"]["url"],
           "JUPYTERHUB_SERVICE_PREFIX": "/services/opu-lease/",
           "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api",  # nothing there: enforcement logs
           "JUPYTERHUB_API_TOKEN": "not-checked-before-a-request"}
    service = subprocess.Popen([sys.executable, "-m", "opuhub.kube_service"], cwd=tmp_path,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/services/opu-lease/api/leases"

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        deadline = time.monotonic() + 60  # a wait for the start, not a measurement
        while True:
            try:
                urllib.request.build_opener(NoRedirect).open(url, timeout=5)
                raise AssertionError("the lease list answered without a login")
            except urllib.error.HTTPError as e:
                answer = e
                break
            except (urllib.error.URLError, ConnectionError):
                assert service.poll() is None, service.stdout.read().decode()
                assert time.monotonic() < deadline, "the lease service never answered"
                time.sleep(0.1)
        assert answer.code == 302 and "/hub/api/oauth2/authorize" in answer.headers["Location"]
        spawner_db = values["hub"]["config"]["OPUKubeSpawner"]["lease_db"].replace(
            "/srv/jupyterhub", str(tmp_path))
        assert os.path.exists(spawner_db)
    finally:
        service.terminate()
        service.wait(timeout=30)
        service.stdout.close()
