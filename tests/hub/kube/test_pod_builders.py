"""The pure pod builders of opuhub.kube_pod, without KubeSpawner."""

from __future__ import annotations

import pytest

from opuhub import kube_pod
from opuhub.kube_inventory import NodeDevice

DOMAIN = "lighton.ai"


def test_the_deployers_extra_security_keys_stay_ours_win():
    context = kube_pod.container_security_context(
        1000, 1000, {"seLinuxOptions": {"level": "s0:c1"}, "runAsUser": 2000,
                     "allowPrivilegeEscalation": False})
    assert context["seLinuxOptions"] == {"level": "s0:c1"}
    assert context["runAsUser"] == 1000 and context["capabilities"] == {"drop": ["ALL"]}
    with pytest.raises(kube_pod.UnsafePodConfig, match="Unconfined"):
        kube_pod.container_security_context(1000, 1000, {"seccompProfile": {"type": "Unconfined"}})
    with pytest.raises(kube_pod.UnsafePodConfig, match="uid must not be 0"):
        kube_pod.container_security_context(0, 1000)


def test_the_device_group_is_added_never_the_root_group():
    context = kube_pod.pod_security_context(1000, 1000, {"supplementalGroups": [0, 100]}, 44)
    assert context["supplementalGroups"] == [44, 100]
    assert "supplementalGroups" not in kube_pod.pod_security_context(1000, 1000, None, None)


def test_every_term_of_the_deployer_gets_the_holders_node():
    terms = [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["a"]}]},
             {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["b"]}]}]
    pinned = kube_pod.node_affinity_required(terms, "node-b")
    assert all(term["matchFields"] == [{"key": "metadata.name", "operator": "In",
                                        "values": ["node-b"]}] for term in pinned)
    assert "matchFields" not in terms[0]  # the configured value is never changed in place
    assert kube_pod.node_affinity_required(terms, None) == terms


def test_scratch_and_home_volumes_are_added_once():
    vols, mounts = kube_pod.volumes({}, {}, "1024")
    assert sorted(v["name"] for v in vols.values()) == ["home", "opuhub-tmp", "opuhub-var-tmp"]
    own_tmp = {"t": {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}}
    own_mount = {"t": {"name": "scratch", "mountPath": "/tmp"}}
    vols, mounts = kube_pod.volumes(own_tmp, own_mount, "1024")
    assert [m["mountPath"] for m in mounts.values()] == ["/tmp", "/home/jovyan", "/var/tmp"]
    allowed = {"d": {"name": "data", "hostPath": {"path": "/srv/data/set1"}}}
    assert "d" in kube_pod.volumes(allowed, {}, "1", ["/srv/data"])[0]


def test_opu_resources_only_for_the_holder():
    assert kube_pod.extra_resources({"nvidia.com/gpu": "1"}, None, DOMAIN, "x") == {
        "nvidia.com/gpu": "1"}
    assert kube_pod.extra_resources({}, "lighton.ai/opu1", DOMAIN, "x") == {"lighton.ai/opu1": "1"}
    with pytest.raises(kube_pod.UnsafePodConfig, match="only the OPU lease holder"):
        kube_pod.extra_resources({"lighton.ai/opu": "1"}, None, DOMAIN, "x")


def test_pod_traits_for_holder_and_simulator():
    common = dict(deployer={}, opu_domain=DOMAIN, uid=1000, gid=1000, device_gid=44,
                  taint_key="lighton.ai/opu", tmp_size="1024")
    holder = kube_pod.pod_traits(device=NodeDevice("node-a", "/dev/opu1"),
                                 resource="lighton.ai/opu1", **common)
    simulator = kube_pod.pod_traits(device=None, resource=None, **common)
    assert holder["extra_resource_limits"] == holder["extra_resource_guarantees"] == {
        "lighton.ai/opu1": "1"}
    assert holder["node_affinity_required"][0]["matchFields"][0]["values"] == ["node-a"]
    assert holder["pod_security_context"]["supplementalGroups"] == [44]
    assert simulator["extra_resource_limits"] == {} and simulator["node_affinity_required"] == []
    assert simulator["tolerations"] == [] and "supplementalGroups" not in simulator[
        "pod_security_context"]


def _pod(**container_changes):
    notebook = {"name": "notebook",
                "securityContext": kube_pod.container_security_context(1000, 1000),
                "resources": {"limits": {"cpu": 1}}}
    notebook.update(container_changes)
    return {"spec": {"automountServiceAccountToken": False,
                     "securityContext": kube_pod.pod_security_context(1000, 1000),
                     "containers": [notebook]}}


def test_pod_problems():
    assert kube_pod.pod_problems(_pod(), DOMAIN, None) == []
    stolen = _pod(resources={"limits": {"lighton.ai/opu0": "1"}})
    assert kube_pod.pod_problems(stolen, DOMAIN, None) == [
        "containers 'notebook' limits lighton.ai/opu0 without holding its lease"]
    assert kube_pod.pod_problems(stolen, DOMAIN, "lighton.ai/opu0") == []
    assert kube_pod.pod_problems(stolen, DOMAIN, "lighton.ai/opu1") != []
    writable = _pod(securityContext={**kube_pod.container_security_context(1000, 1000),
                                     "readOnlyRootFilesystem": False})
    assert "writable root filesystem" in kube_pod.pod_problems(writable, DOMAIN, None)[0]
    host = _pod()
    host["spec"]["volumes"] = [{"name": "etc", "hostPath": {"path": "/etc"}}]
    assert "system path" in kube_pod.pod_problems(host, DOMAIN, None)[0]
