"""The pod OPUKubeSpawner asks Kubernetes for, built by KubeSpawner's own make_pod from our
traits, through the real spawn path (profile → lease claim in a real lease store → kernel env
→ pod), with only KubeSpawner's API calls left out; asserted field by field."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from unittest import mock

import pytest
from kubespawner import KubeSpawner
from tornado import web
from traitlets.config import Config

from opuhub.kube_spawner import OPUKubeSpawner, api_dict
from opuhub.lease_store import LeaseStore
from tests.hub.kube import strict

CLUSTER = {"node-a": ["/dev/opu0", "/dev/opu1"], "node-b": ["/dev/opu0"]}
HARDENED_CONTAINER = {
    "runAsUser": 1000,
    "runAsGroup": 1000,
    "runAsNonRoot": True,
    "privileged": False,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}
HARDENED_POD = {
    "runAsUser": 1000,
    "runAsGroup": 1000,
    "runAsNonRoot": True,
    "fsGroup": 1000,
    "fsGroupChangePolicy": "OnRootMismatch",
    "seccompProfile": {"type": "RuntimeDefault"},
}
TMP = {"medium": "Memory", "sizeLimit": str(512 * 1024**2)}


def config(tmp_path, **spawner) -> Config:
    c = Config()
    c.OPUKubeSpawner.lease_db = str(tmp_path / "leases.sqlite")
    c.OPUKubeSpawner.device_inventory = CLUSTER
    c.OPUKubeSpawner.images = {"simulator": "registry.example/opuhub/singleuser:1",
                               "hardware": "registry.example/opuhub/singleuser-hw:1"}
    c.OPUKubeSpawner.device_gid = 44
    c.OPUKubeSpawner.opu_node_taint = "lighton.ai/opu"
    c.OPUKubeSpawner.mem_guarantee = "512M"
    c.OPUKubeSpawner.cpu_guarantee = 0.1
    for key, value in spawner.items():
        setattr(c.KubeSpawner if key.startswith("chart_") else c.OPUKubeSpawner,
                key.removeprefix("chart_"), value)
    return c


def new_spawner(c: Config, user: str) -> OPUKubeSpawner:
    return OPUKubeSpawner(_mock=True, config=c,
                          user=SimpleNamespace(name=user, id=7, url=f"/user/{user}/"))


async def _pod_instead_of_api(self):
    # what KubeSpawner._start does before its first API request: the manifest, then the hook
    pod = await self.get_pod_manifest()
    if self.modify_pod_hook:
        pod = await self.modify_pod_hook(self, pod)
    return pod


async def spawn(spawner: OPUKubeSpawner, options: dict) -> dict:
    spawner.user_options = options
    with mock.patch.object(KubeSpawner, "start", _pod_instead_of_api):
        pod = await spawner._start_with_lease()
    return api_dict(pod)


def spawned(c: Config, *spawns: tuple[str, dict]) -> list[tuple[OPUKubeSpawner, dict]]:
    """Each (user, options) spawned in turn (one event loop: KubeSpawner's client wants one)."""

    async def run():
        result = []
        for user, options in spawns:
            spawner = new_spawner(c, user)
            result.append((spawner, await spawn(spawner, options)))
        return result

    return asyncio.run(run())


def container(pod: dict) -> dict:
    [notebook] = pod["spec"]["containers"]
    assert notebook["name"] == "notebook"
    return notebook


def env(pod: dict) -> dict:
    return {item["name"]: item["value"] for item in container(pod)["env"]}


def opu_resources(pod: dict) -> dict:
    resources = container(pod)["resources"]
    return {part: {k: v for k, v in (resources.get(part) or {}).items() if k.startswith("lighton.ai/")}
            for part in ("limits", "requests")}


def test_a_simulator_user_gets_a_hardened_pod_anywhere_without_any_device(tmp_path):
    [(spawner, pod)] = spawned(config(tmp_path), ("alice", {"profile": "simulator"}))
    strict.parse(pod, "V1Pod")  # every field is one of the API's
    notebook = container(pod)
    assert notebook["image"] == "registry.example/opuhub/singleuser:1"
    assert notebook["securityContext"] == HARDENED_CONTAINER
    assert pod["spec"]["securityContext"] == HARDENED_POD  # no device group
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert notebook["resources"]["limits"] == {"cpu": 2.0, "memory": 2 * 1024**3}
    assert notebook["resources"]["requests"] == {"cpu": 0.1, "memory": 512 * 1024**2}
    assert opu_resources(pod) == {"limits": {}, "requests": {}}
    assert "affinity" not in pod["spec"] and "nodeSelector" not in pod["spec"]
    assert not pod["spec"].get("tolerations")
    assert notebook["args"][0] == "jupyterhub-singleuser"
    assert notebook["workingDir"] == "/home/jovyan"
    assert pod["spec"]["volumes"] == [
        {"name": "home", "persistentVolumeClaim": {"claimName": spawner.pvc_name}},
        {"name": "opuhub-tmp", "emptyDir": TMP},
        {"name": "opuhub-var-tmp", "emptyDir": TMP},
    ]
    assert notebook["volumeMounts"] == [
        {"name": "home", "mountPath": "/home/jovyan"},
        {"name": "opuhub-tmp", "mountPath": "/tmp"},
        {"name": "opuhub-var-tmp", "mountPath": "/var/tmp"},
    ]
    values = env(pod)
    assert {k: v for k, v in values.items() if k.startswith("OPU_")} == {
        "OPU_PROFILE": "simulator",
        "OPU_BACKEND": "simulator",
        "OPU_N_COMPONENTS": "10000",
        "OPU_LEASE_STATUS": "none",
        "OPU_SIMULATOR_MAX_N_COMPONENTS": "2000000",
        "OPU_SIMULATOR_MAX_WORK": "1e+13",
    }
    assert values["JUPYTERHUB_USER"] == "alice"
    pvc = api_dict(spawner.get_pvc_manifest())
    strict.parse(pvc, "V1PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == spawner.pvc_name
    assert pvc["spec"]["resources"]["requests"] == {"storage": "2Gi"}


def test_the_holder_requests_its_device_and_is_pinned_to_its_node(tmp_path):
    c = config(tmp_path)
    (_, first), (spawner, pod) = spawned(
        c, ("alice", {"profile": "hardware"}), ("bob", {"profile": "hardware", "lease_minutes": 30}))
    assert opu_resources(first)["limits"] == {"lighton.ai/opu0": "1"}
    strict.parse(pod, "V1Pod")
    lease = LeaseStore(tmp_path / "leases.sqlite").lease_for("bob")
    assert lease.device == "node-b:/dev/opu0"  # hand-out order: node-a's first, then node-b's
    notebook = container(pod)
    assert notebook["image"] == "registry.example/opuhub/singleuser-hw:1"
    assert opu_resources(pod) == {"limits": {"lighton.ai/opu0": "1"},
                                  "requests": {"lighton.ai/opu0": "1"}}
    assert notebook["resources"]["limits"]["memory"] == 2 * 1024**3
    assert pod["spec"]["affinity"] == {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": ["node-b"]}]}]}}}
    assert pod["spec"]["tolerations"] == [
        {"key": "lighton.ai/opu", "operator": "Exists", "effect": "NoSchedule"}]
    assert notebook["securityContext"] == HARDENED_CONTAINER
    assert pod["spec"]["securityContext"] == {**HARDENED_POD, "supplementalGroups": [44]}
    values = env(pod)
    assert values["OPU_PROFILE"] == "hardware" and values["OPU_BACKEND"] == "hardware"
    assert values["OPU_DEVICE"] == "/dev/opu0"  # where the device plugin mounts it
    assert values["OPU_LEASE_STATUS"] == "held" and values["OPU_LEASE_HOLDER"] == "bob"
    assert values["OPU_LEASE_DEVICE"] == "node-b:/dev/opu0"
    assert values["OPU_LEASE_EXPIRES"] != "never" and values["OPU_LEASE_WARNING_SECONDS"] == "300"
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["home", "opuhub-tmp", "opuhub-var-tmp"]


def test_the_next_spawn_after_a_lease_carries_nothing_of_it(tmp_path):
    c = config(tmp_path)

    async def run():
        spawner = new_spawner(c, "carol")
        held = await spawn(spawner, {"profile": "hardware"})
        await spawner.run_post_stop_hook()  # releases the lease
        again = await spawn(spawner, {"profile": "simulator"})
        return held, again

    held, again = asyncio.run(run())
    assert opu_resources(held)["limits"] == {"lighton.ai/opu0": "1"}
    assert opu_resources(again) == {"limits": {}, "requests": {}}
    assert "affinity" not in again["spec"] and not again["spec"].get("tolerations")
    assert "supplementalGroups" not in again["spec"]["securityContext"]
    assert env(again)["OPU_LEASE_STATUS"] == "none" and "OPU_DEVICE" not in env(again)


def test_the_charts_settings_are_merged_with_ours_never_replaced(tmp_path):
    # what Zero to JupyterHub writes into c.KubeSpawner from singleuser.* values
    c = config(
        tmp_path,
        chart_volumes={"volume-{user_server}": {
            "name": "volume-{user_server}", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}},
        chart_volume_mounts={"volume-{user_server}": {
            "name": "volume-{user_server}", "mountPath": "/home/jovyan"}},
        chart_node_affinity_required=[
            {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["users"]}]}],
        chart_tolerations=[{"key": "hub.jupyter.org/dedicated", "operator": "Equal",
                            "value": "user", "effect": "NoSchedule"}],
        chart_fs_gid=100,
        chart_uid=1000,
        chart_allow_privilege_escalation=False,
        chart_extra_resource_limits={"ephemeral-storage": "1Gi"},
    )
    [(spawner, pod)] = spawned(c, ("dan", {"profile": "hardware"}))
    strict.parse(pod, "V1Pod")
    assert [v["name"] for v in pod["spec"]["volumes"]] == [
        f"volume-{spawner.user.name}", "opuhub-tmp", "opuhub-var-tmp"]  # the chart's home kept
    assert pod["spec"]["securityContext"]["fsGroup"] == 1000  # the home's group is ours
    assert pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"] == [{
            "matchExpressions": [{"key": "pool", "operator": "In", "values": ["users"]}],
            "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-a"]}]}]
    assert [t["key"] for t in pod["spec"]["tolerations"]] == ["hub.jupyter.org/dedicated",
                                                              "lighton.ai/opu"]
    assert container(pod)["resources"]["limits"]["ephemeral-storage"] == "1Gi"
    assert opu_resources(pod)["limits"] == {"lighton.ai/opu0": "1"}


@pytest.mark.parametrize("setting, value, says", [
    ("container_security_context", {"privileged": True}, "privileged"),
    ("container_security_context", {"readOnlyRootFilesystem": False}, "readOnlyRootFilesystem"),
    ("container_security_context", {"capabilities": {"add": ["SYS_ADMIN"]}}, "capabilities"),
    ("pod_security_context", {"runAsUser": 0}, "never root"),
    ("pod_security_context", {"sysctls": [{"name": "kernel.shm_rmid_forced", "value": "0"}]},
     "sysctls"),
    ("extra_resource_limits", {"lighton.ai/opu0": "1"}, "only the OPU lease holder"),
    ("volumes", [{"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}], "Docker socket"),
    ("volumes", [{"name": "data", "hostPath": {"path": "/srv/data"}}], "allowed_host_paths"),
    ("privileged", True, "privileged"),
    ("allow_privilege_escalation", True, "allow_privilege_escalation"),
    ("uid", 0, "never root"),
    ("profile_list", [{"display_name": "GPU"}], "profile_list"),
    ("devices", ["/dev/opu0"], "names no node"),
])
def test_settings_that_weaken_the_pod_stop_the_spawner(tmp_path, setting, value, says):
    c = config(tmp_path, **{setting: value})
    with pytest.raises(Exception, match=says):
        asyncio.run(_make(c))


async def _make(c):
    return new_spawner(c, "erin")


@pytest.mark.parametrize("hook, says", [
    (lambda spawner, pod: _set(pod, pod.spec, "host_network", True), "hostNetwork"),
    (lambda spawner, pod: _set(pod, pod.spec.containers[0].security_context, "privileged", True),
     "privileged"),
    (lambda spawner, pod: _set(pod, pod.spec, "automount_service_account_token", True),
     "service-account token"),
])
def test_a_pod_hook_that_weakens_the_pod_fails_the_spawn_and_frees_the_lease(tmp_path, hook, says):
    c = config(tmp_path, modify_pod_hook=hook)
    with pytest.raises(web.HTTPError) as raised:
        spawned(c, ("frank", {"profile": "hardware"}))
    assert raised.value.status_code == 500 and says in raised.value.log_message
    assert LeaseStore(tmp_path / "leases.sqlite").lease_for("frank") is None


def test_the_charts_privileged_metadata_blocker_is_refused(tmp_path):
    # Zero to JupyterHub's singleuser.cloudMetadata.blockWithIptables adds a root, privileged
    # init container: our values turn it off (the network policy blocks the metadata server)
    blocker = {"name": "block-cloud-metadata", "image": "quay.io/jupyterhub/k8s-network-tools:4",
               "securityContext": {"privileged": True, "runAsUser": 0,
                                   "capabilities": {"add": ["NET_ADMIN"]}}}
    c = config(tmp_path, chart_init_containers=[blocker])
    with pytest.raises(web.HTTPError) as raised:
        spawned(c, ("gina", {"profile": "simulator"}))
    message = raised.value.log_message
    assert "initContainers 'block-cloud-metadata' is privileged" in message
    assert "may run as root" in message


def _set(pod, obj, attr, value):
    """What a deployer's modify_pod_hook might do: change one field, return the pod."""
    if isinstance(obj, dict):
        obj[attr] = value
    else:
        setattr(obj, attr, value)
    return pod


def test_devices_and_options_reach_the_mixin(tmp_path):
    async def run():
        spawner = new_spawner(config(tmp_path), "hana")
        form = await spawner.options_form(spawner)  # ours, not KubeSpawner's profile_list form
        assert "node-b:/dev/opu0: free" in form and 'value="hardware"' in form
        assert spawner.options_from_form({"profile": ["hardware"], "image": ["evil/miner"]}) == {
            "profile": "hardware"}
        bad = None
        spawner.user_options = {"profile": "hardware", "image": "evil/miner"}
        try:
            spawner.spawn_choice()
        except web.HTTPError as e:
            bad = e
        return spawner, bad

    spawner, bad = asyncio.run(run())
    assert spawner.devices == ["node-a:/dev/opu0", "node-b:/dev/opu0", "node-a:/dev/opu1"]
    assert bad.status_code == 400 and "unknown spawn option" in bad.log_message
