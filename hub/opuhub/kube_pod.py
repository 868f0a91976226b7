"""Pure builders for a user's pod on Kubernetes: what OPUKubeSpawner asks KubeSpawner for.

KubeSpawner turns its traits into a pod with its own ``make_pod``; these functions compute the
trait values that carry our container hardening and the OPU lease, from what the deployer (or
the Zero to JupyterHub chart) configured, and check the pod that comes out. No I/O: tests
build the pod from these values without a cluster.

The hardening is the Docker spawner's (:mod:`opuhub.container_spec`) in Kubernetes terms:

- non-root uid:gid 1000:1000, ``runAsNonRoot``, no privilege escalation, every capability
  dropped, the runtime's default seccomp profile, no service-account token;
- a read-only root filesystem; ``/tmp`` and ``/var/tmp`` are memory-backed ``emptyDir`` of a
  fixed size (counted in the memory limit, like Docker's tmpfs); the home is the user's
  PersistentVolumeClaim;
- memory and CPU limits (set on KubeSpawner's ``mem_limit`` / ``cpu_limit``); the process
  limit is the kubelet's ``podPidsLimit`` (a node setting: Kubernetes has no per-pod field);
- the OPU: only the lease holder's pod requests the device's extended resource, and it is
  pinned to the node of its device (node affinity on the node's name, added to every term
  the deployer wrote, since terms are alternatives); nobody else requests it, so nobody
  else's pod can be given the device by the kubelet.

A deployer's settings are merged with this, never substituted for it; settings that would
weaken it raise :class:`UnsafePodConfig` naming the setting.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

from .container_spec import HOME, TMP_DIRS, host_path_problem
from .kube_inventory import NodeDevice

CONTAINER_DEVICE = "/dev/opu0"  # where the device plugin mounts any OPU in the holder's pod
HOME_VOLUME = "home"
NOTEBOOK_CONTAINER = "notebook"  # the name KubeSpawner's make_pod gives the server's container
NODE_NAME_FIELD = "metadata.name"


class UnsafePodConfig(ValueError):
    """A deployer setting that would undo part of the pod hardening."""


# --- security contexts -------------------------------------------------------------------------


def container_security_context(uid: int, gid: int, deployer: Mapping | None = None) -> dict:
    """The server container's securityContext: the deployer's keys (e.g. ``seLinuxOptions``)
    with ours on top; a deployer value that would weaken ours is refused."""
    if uid == 0:
        raise UnsafePodConfig("user pods never run as root: the uid must not be 0")
    deployer = dict(deployer or {})
    _refuse_weaker(deployer, "container_security_context", {
        "privileged": False, "allowPrivilegeEscalation": False, "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
    })
    if (deployer.get("capabilities") or {}).get("add"):
        raise UnsafePodConfig(
            "container_security_context.capabilities.add is refused: user pods run with no "
            "capabilities")
    for key in ("runAsUser", "runAsGroup"):
        if deployer.get(key) == 0:
            raise UnsafePodConfig(f"container_security_context.{key}=0 is refused: never root")
    context = deployer
    context.update({
        "runAsUser": int(uid),
        "runAsGroup": int(gid),
        "runAsNonRoot": True,
        "privileged": False,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "seccompProfile": deployer.get("seccompProfile") or {"type": "RuntimeDefault"},
    })
    if context["seccompProfile"].get("type") == "Unconfined":
        raise UnsafePodConfig("seccompProfile Unconfined is refused for user pods")
    return context


def pod_security_context(uid: int, gid: int, deployer: Mapping | None = None,
                         device_gid: int | None = None) -> dict:
    """The pod's securityContext: non-root, the home's files owned by group ``gid``
    (``fsGroup``), and the device node's group for the lease holder only."""
    deployer = dict(deployer or {})
    _refuse_weaker(deployer, "pod_security_context", {"runAsNonRoot": True})
    for key in ("runAsUser", "runAsGroup", "fsGroup"):
        if deployer.get(key) == 0:
            raise UnsafePodConfig(f"pod_security_context.{key}=0 is refused: never root")
    if deployer.get("sysctls"):
        raise UnsafePodConfig("pod_security_context.sysctls is refused: user pods do not "
                              "change kernel parameters")
    groups = [int(g) for g in deployer.get("supplementalGroups") or [] if int(g) != 0]
    if device_gid:  # never the root group: give the device node a group of its own (udev)
        groups.append(int(device_gid))
    context = deployer
    context.update({
        "runAsUser": int(uid),
        "runAsGroup": int(gid),
        "runAsNonRoot": True,
        "fsGroup": int(gid),
        # a large home is not walked at every start, only when its top is not ours yet
        "fsGroupChangePolicy": deployer.get("fsGroupChangePolicy") or "OnRootMismatch",
        "seccompProfile": deployer.get("seccompProfile") or {"type": "RuntimeDefault"},
    })
    if groups:
        context["supplementalGroups"] = sorted(set(groups))
    else:
        context.pop("supplementalGroups", None)
    return context


def _refuse_weaker(deployer: Mapping, setting: str, required: Mapping) -> None:
    for key, value in required.items():
        if key in deployer and deployer[key] is not None and deployer[key] != value:
            raise UnsafePodConfig(
                f"{setting}.{key}={deployer[key]!r} is refused: user pods always have "
                f"{key}={value!r}")


# --- volumes -------------------------------------------------------------------------------------


def _named(items, what: str) -> dict:
    """KubeSpawner accepts a list or a dict of volumes (and mounts, tolerations...); as a dict
    keyed like KubeSpawner sorts them, so that ours can be added without reordering."""
    if isinstance(items, Mapping):
        return copy.deepcopy(dict(items))
    return {f"{index:04d}": copy.deepcopy(item) for index, item in enumerate(items or [])}


def volumes(deployer_volumes, deployer_mounts, tmp_size: str,
            allowed_host_paths: Sequence[str] = ()) -> tuple[dict, dict]:
    """(volumes, volume_mounts) for KubeSpawner: the deployer's (the chart's home PVC), a
    home PVC ``{pvc_name}`` on /home/jovyan when nothing else is mounted there, and the
    scratch ``emptyDir`` on /tmp and /var/tmp (memory, ``tmp_size`` each)."""
    vols, mounts = _named(deployer_volumes, "volumes"), _named(deployer_mounts, "volume_mounts")
    for volume in vols.values():
        host = volume.get("hostPath") if isinstance(volume, Mapping) else None
        if host is not None:
            problem = host_path_problem(str(host.get("path", "")), allowed_host_paths)
            if problem:
                raise UnsafePodConfig(f"volume {volume.get('name')!r} is refused: {problem}")
    mounted = {mount.get("mountPath") for mount in mounts.values()}
    if HOME not in mounted:
        vols["zz-opuhub-home"] = {"name": HOME_VOLUME,
                                  "persistentVolumeClaim": {"claimName": "{pvc_name}"}}
        mounts["zz-opuhub-home"] = {"name": HOME_VOLUME, "mountPath": HOME}
    for path in TMP_DIRS:
        if path in mounted:
            continue  # the deployer's own scratch volume for this path
        name = "opuhub" + path.replace("/", "-")
        vols[f"zz-{name}"] = {"name": name, "emptyDir": {"medium": "Memory", "sizeLimit": tmp_size}}
        mounts[f"zz-{name}"] = {"name": name, "mountPath": path}
    return vols, mounts


# --- the OPU: resource, node, tolerations ----------------------------------------------------


def node_affinity_required(deployer_terms, node: str | None) -> list:
    """Node-selector terms with the holder's node added to each (terms are ORed, so a term
    without it would let the pod land elsewhere). ``node`` None: the deployer's terms."""
    terms = list(_named(deployer_terms, "node_affinity_required").values())
    if node is None:
        return terms
    pin = {"key": NODE_NAME_FIELD, "operator": "In", "values": [node]}
    if not terms:
        return [{"matchFields": [pin]}]
    for term in terms:
        term["matchFields"] = [*term.get("matchFields", []), pin]
    return terms


def extra_resources(deployer: Mapping | None, resource: str | None, opu_domain: str,
                    setting: str) -> dict:
    """Extended resources of the pod: the deployer's, plus one ``resource`` for the holder.
    The deployer may not hand OPU resources (``opu_domain/...``) to every pod."""
    resources = dict(deployer or {})
    for name in resources:
        if name.startswith(opu_domain + "/"):
            raise UnsafePodConfig(
                f"{setting}[{name!r}] is refused: only the OPU lease holder's pod gets a "
                "device, and the spawner adds it")
    if resource:
        resources[resource] = "1"  # extended resources: requests must equal limits
    return resources


def tolerations(deployer, taint_key: str | None) -> list:
    """The deployer's tolerations; the holder also tolerates ``taint_key`` (operators may
    taint OPU nodes so that simulator users leave them to holders)."""
    result = list(_named(deployer, "tolerations").values())
    if taint_key:
        result.append({"key": taint_key, "operator": "Exists", "effect": "NoSchedule"})
    return result


def pod_traits(
    *,
    deployer: Mapping,
    device: NodeDevice | None,
    resource: str | None,
    opu_domain: str,
    uid: int,
    gid: int,
    device_gid: int | None,
    taint_key: str | None,
    tmp_size: str,
    allowed_host_paths: Sequence[str] = (),
) -> dict:
    """KubeSpawner trait values for one spawn. ``deployer`` holds the configured values of
    the traits returned here; ``device`` and ``resource`` are the lease's (None: simulator)."""
    holder = device is not None
    vols, mounts = volumes(deployer.get("volumes"), deployer.get("volume_mounts"), tmp_size,
                           allowed_host_paths)
    return {
        "container_security_context": container_security_context(
            uid, gid, deployer.get("container_security_context")),
        "pod_security_context": pod_security_context(
            uid, gid, deployer.get("pod_security_context"), device_gid if holder else None),
        "volumes": vols,
        "volume_mounts": mounts,
        "node_affinity_required": node_affinity_required(
            deployer.get("node_affinity_required"), device.node if holder else None),
        "extra_resource_limits": extra_resources(
            deployer.get("extra_resource_limits"), resource if holder else None, opu_domain,
            "extra_resource_limits"),
        "extra_resource_guarantees": extra_resources(
            deployer.get("extra_resource_guarantees"), resource if holder else None,
            opu_domain, "extra_resource_guarantees"),
        "tolerations": tolerations(deployer.get("tolerations"), taint_key if holder else None),
    }


# --- the pod that comes out ----------------------------------------------------------------------


def pod_problems(pod: Mapping, opu_domain: str, holder_resource: str | None,
                 allowed_host_paths: Sequence[str] = ()) -> list[str]:
    """What in a finished pod (the API's camelCase dict) breaks the hardening: checked after
    KubeSpawner built it and after any ``modify_pod_hook``, whatever set what."""
    problems = []
    spec = pod.get("spec") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            problems.append(f"spec.{key} shares the node's namespaces")
    if spec.get("automountServiceAccountToken") is not False:
        problems.append("the pod would get a service-account token (API access)")
    psc = spec.get("securityContext") or {}
    if psc.get("runAsNonRoot") is not True:
        problems.append("spec.securityContext.runAsNonRoot is not true")
    for volume in spec.get("volumes") or []:
        if volume.get("hostPath") is not None:
            problem = host_path_problem(str(volume["hostPath"].get("path", "")),
                                        allowed_host_paths)
            if problem:
                problems.append(f"volume {volume.get('name')!r}: {problem}")
    containers = [("initContainers", c) for c in spec.get("initContainers") or []]
    containers += [("containers", c) for c in spec.get("containers") or []]
    for kind, container in containers:
        where = f"{kind} {container.get('name')!r}"
        csc = container.get("securityContext") or {}
        if csc.get("privileged"):
            problems.append(f"{where} is privileged")
        if csc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where} may escalate privileges")
        uid = csc.get("runAsUser", psc.get("runAsUser"))
        if uid == 0 or (uid is None and csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True):
            problems.append(f"{where} may run as root")
        caps = csc.get("capabilities") or {}
        if caps.get("add") or "ALL" not in (caps.get("drop") or []):
            problems.append(f"{where} keeps capabilities (drop must be ['ALL'], add empty)")
        if container.get("name") == NOTEBOOK_CONTAINER and csc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where} has a writable root filesystem")
        resources = container.get("resources") or {}
        for part in ("limits", "requests"):
            for name in (resources.get(part) or {}):
                if not name.startswith(opu_domain + "/"):
                    continue
                if container.get("name") != NOTEBOOK_CONTAINER or name != holder_resource:
                    problems.append(f"{where} {part} {name} without holding its lease")
    return problems
