"""OPUKubeSpawner: one pod per user on Kubernetes, with the OPU lease (KubeSpawner + our mixin).

Everything the Docker spawner promises carries over (profiles, lease, kernel env, hardening);
the pure parts are in :mod:`opuhub.kube_pod` (the pod's trait values and checks) and
:mod:`opuhub.kube_inventory` (devices named ``NODE:PATH``). Per spawn:

- the image comes from the profile, never from the user (KubeSpawner's ``profile_list`` is
  not used: the OPU profiles are the choice);
- the "OPU hardware" profile claims a device before the pod exists (the mixin); the holder's
  pod requests that device's extended resource (``device_resource``, advertised by the
  node's device plugin: ``kubernetes/``) and is pinned to the device's node; every other pod
  runs the simulator anywhere and requests no device;
- KubeSpawner's own ``make_pod`` builds the pod from the trait values computed here, merged
  with what the deployer or the Zero to JupyterHub chart configured (captured when the spawner
  is made); the finished pod, after any ``modify_pod_hook``, is checked once more and refused
  if anything in it undoes the hardening.

Installed with the ``kubernetes`` extra (``pip install opuhub[kubernetes]``).
"""

from __future__ import annotations

import copy
import inspect

from kubespawner import KubeSpawner
from tornado import web
from traitlets import Dict, Integer, List, Unicode, default, validate

from . import kube_pod
from .cgroups import parse_bytes
from .container_spec import HOME, check_allowed_host_paths, singleuser_command
from .kube_inventory import DeviceInventory, InventoryError, resource_name
from .lease import Lease
from .lease_spawner import OPUSpawnerMixin
from .profiles import HARDWARE, SIMULATOR, SpawnChoice
from .settings import default_of

# KubeSpawner traits whose configured value is merged with the hardening and the lease at
# every spawn (kube_pod.pod_traits); the configured value is kept aside when the spawner is made
MERGED_TRAITS = (
    "container_security_context", "pod_security_context", "volumes", "volume_mounts",
    "node_affinity_required", "extra_resource_limits", "extra_resource_guarantees",
    "tolerations",
)


def api_dict(obj):
    """A kubernetes client model as the API's camelCase dict (None fields left out)."""
    if hasattr(obj, "openapi_types") and hasattr(obj, "attribute_map"):
        return {obj.attribute_map[attr]: api_dict(getattr(obj, attr))
                for attr in obj.openapi_types if getattr(obj, attr) is not None}
    if isinstance(obj, dict):
        return {key: api_dict(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [api_dict(item) for item in obj]
    return obj


class CheckedPodHook:
    """``modify_pod_hook`` with the pod checked after the deployer's hook (if any) ran."""

    def __init__(self, deployer=None):
        self.deployer = deployer

    async def __call__(self, spawner, pod):
        if self.deployer is not None:
            pod = self.deployer(spawner, pod)
            if inspect.isawaitable(pod):
                pod = await pod
        spawner.check_pod(pod)
        return pod

    def __repr__(self):
        return f"CheckedPodHook({self.deployer!r})"


class OPUKubeSpawner(OPUSpawnerMixin, KubeSpawner):
    images = Dict(
        {SIMULATOR: "opuhub/singleuser:latest", HARDWARE: "opuhub/singleuser:latest"},
        config=True,
        help="""Image per profile ('simulator', 'hardware'), as the cluster's nodes pull it
        (e.g. registry.example.org/opuhub/singleuser:1.0). Users pick a profile, never an
        image.""",
    )
    device_inventory = Dict(
        config=True,
        help="""The cluster's OPUs per node: {"node-a": ["/dev/opu0", "/dev/opu1"], "node-b":
        ["/dev/opu0"]} (node names as `kubectl get nodes` shows them). Gives `devices`, one
        node after the other in turn, so that holders spread over the nodes. A hub pod cannot
        look at the nodes' /dev, so nothing is detected: without an inventory (or `devices`
        written as NODE:PATH) the hub offers the simulator only.""",
    )
    device_resource = Unicode(
        "lighton.ai/{device}",
        config=True,
        help="""Extended resource the holder's pod requests (one): what the OPU nodes' device
        plugin advertises (kubernetes/opu-device-plugin.yaml). '{device}' stands for the
        device file's name, so 'lighton.ai/{device}' is lighton.ai/opu0 for NODE:/dev/opu0:
        the pod gets exactly the leased device. Without '{device}' (e.g. 'lighton.ai/opu')
        a node's devices are one pool and the kubelet hands the holder any free one.""",
    )
    container_device = Unicode(
        kube_pod.CONTAINER_DEVICE,
        config=True,
        help="""Path of the device inside the holder's pod (env OPU_DEVICE): the mountPath
        the device plugin is configured with.""",
    )
    device_gid = Integer(
        0,
        config=True,
        help="""Group owning /dev/opu* on the OPU nodes (a udev rule gives the devices a group
        of their own), added to the holder's pod only so that uid 1000 may open the device;
        0 = none added (the container runtime then decides the node's owner in the pod).""",
    )
    opu_node_taint = Unicode(
        "",
        config=True,
        help="""Taint key that the holder's pod tolerates (effect NoSchedule), e.g.
        'lighton.ai/opu': taint the OPU nodes with it to keep simulator pods off them. '' =
        no toleration added.""",
    )
    container_uid = Integer(1000, config=True, help="uid the single-user server runs as.")
    container_gid = Integer(1000, config=True, help="gid of the server; also the home's fsGroup.")
    tmp_size = Unicode(
        "512M",
        config=True,
        help="""Size of each of the memory-backed emptyDir on /tmp and /var/tmp: the only
        writable paths besides the home (the root filesystem is read-only). Counted in the
        pod's memory limit, never the node's disk.""",
    )
    allowed_host_paths = List(
        Unicode(),
        config=True,
        help="""Node directories that deployer-configured hostPath volumes may mount into user
        pods (e.g. ['/srv/datasets']). Empty by default; system paths are refused even below
        an entry.""",
    )

    @validate("devices")
    def _check_devices(self, proposal):
        DeviceInventory.from_names(proposal.value)  # raises naming the bad entry
        return proposal.value

    @default("devices")
    def _devices_from_inventory(self):
        return DeviceInventory.from_mapping(self.device_inventory).hand_out_order()

    @validate("device_inventory")
    def _check_inventory(self, proposal):
        DeviceInventory.from_mapping(proposal.value)
        return proposal.value

    @validate("device_resource")
    def _check_resource(self, proposal):
        resource_name(proposal.value, DeviceInventory.from_names(["node:/dev/opu0"]).devices[0])
        return proposal.value

    @validate("images")
    def _check_images(self, proposal):
        missing = {SIMULATOR, HARDWARE} - set(proposal.value)
        if missing:
            raise ValueError(f"OPUKubeSpawner.images needs an image for: {', '.join(sorted(missing))}")
        return proposal.value

    @validate("container_uid")
    def _not_root(self, proposal):
        if proposal.value == 0:
            raise ValueError("container_uid must not be 0: user pods never run as root")
        return proposal.value

    @validate("tmp_size")
    def _check_tmp(self, proposal):
        if parse_bytes(proposal.value) <= 0:
            raise ValueError("tmp_size must be > 0 (e.g. 512M): /tmp must be writable")
        return proposal.value

    @validate("allowed_host_paths")
    def _check_allowed_host_paths(self, proposal):
        return check_allowed_host_paths(proposal.value)

    @validate("privileged")
    def _never_privileged(self, proposal):
        if proposal.value:
            raise kube_pod.UnsafePodConfig("privileged user pods are refused")
        return proposal.value

    @validate("allow_privilege_escalation")
    def _never_escalate(self, proposal):
        if proposal.value is not False:
            raise kube_pod.UnsafePodConfig(
                "allow_privilege_escalation must be False for user pods (the chart's "
                "singleuser.allowPrivilegeEscalation too)")
        return proposal.value

    @validate("uid", "gid")
    def _ids_not_root(self, proposal):
        if proposal.value == 0:
            raise kube_pod.UnsafePodConfig(f"{proposal.trait.name}=0 is refused: never root")
        return proposal.value

    @validate("profile_list")
    def _no_profile_list(self, proposal):
        if proposal.value:
            raise ValueError(
                "OPUKubeSpawner offers the OPU profiles (Simulator / OPU hardware); "
                "KubeSpawner's profile_list (the chart's singleuser.profileList) must stay empty")
        return proposal.value

    @validate("modify_pod_hook")
    def _check_after_hook(self, proposal):
        hook = proposal.value
        return hook if isinstance(hook, CheckedPodHook) else CheckedPodHook(hook)

    @default("modify_pod_hook")
    def _checking_hook(self):
        return CheckedPodHook()

    @default("uid")
    def _uid_default(self):
        return self.container_uid

    @default("gid")
    def _gid_default(self):
        return self.container_gid

    @default("fs_gid")
    def _fs_gid_default(self):
        return self.container_gid

    @default("cmd")
    def _cmd_default(self):
        return singleuser_command()

    @default("working_dir")
    def _working_dir_default(self):
        return HOME

    @default("notebook_dir")
    def _notebook_dir_default(self):
        return HOME

    @default("mem_limit")
    def _mem_default(self):
        return default_of("mem_limit")

    @default("cpu_limit")
    def _cpu_default(self):
        return default_of("cpu_limit")

    @default("storage_pvc_ensure")
    def _pvc_default(self):
        return True  # every user's home is a PersistentVolumeClaim of their own

    @default("storage_capacity")
    def _capacity_default(self):
        return "2Gi"

    @default("image_pull_policy")
    def _pull_default(self):
        return "IfNotPresent"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in MERGED_TRAITS:
            if callable(getattr(self, name)):
                raise kube_pod.UnsafePodConfig(
                    f"OPUKubeSpawner.{name} must be a dict or list, not a callable: the spawner "
                    "merges it with the hardening at every spawn")
        self._deployer_traits = {name: copy.deepcopy(getattr(self, name)) for name in MERGED_TRAITS}
        self.pod_traits(None)  # a setting that weakens the hardening stops here, not at a spawn

    # --- per spawn -----------------------------------------------------------------------------

    @property
    def inventory(self) -> DeviceInventory:
        return DeviceInventory.from_names(self.devices)

    @property
    def opu_domain(self) -> str:
        return self.device_resource.partition("/")[0]

    def pod_traits(self, lease: Lease | None) -> dict:
        """The merged trait values for a spawn with ``lease`` (None: simulator)."""
        device = self.inventory.locate(lease.device) if lease else None
        resource = resource_name(self.device_resource, device) if device else None
        self._opu_holder_resource = resource
        return kube_pod.pod_traits(
            deployer=self._deployer_traits,
            device=device,
            resource=resource,
            opu_domain=self.opu_domain,
            uid=self.container_uid,
            gid=self.container_gid,
            device_gid=self.device_gid or None,
            taint_key=self.opu_node_taint or None,
            tmp_size=str(parse_bytes(self.tmp_size)),
            allowed_host_paths=self.allowed_host_paths,
        )

    def kernel_device(self, lease: Lease) -> str:
        return self.container_device

    def prepare_profile(self, choice: SpawnChoice, lease: Lease | None) -> None:
        self.image = self.images[choice.profile]
        try:
            traits = self.pod_traits(lease)
        except (InventoryError, kube_pod.UnsafePodConfig) as e:
            self.log.error("no pod for %s: %s", self._log_name, e)
            raise web.HTTPError(
                500, f"This hub's Kubernetes settings cannot start your server: {e}. An admin "
                "must fix the hub's configuration.") from None
        for name, value in traits.items():
            setattr(self, name, value)

    async def load_user_options(self):
        # KubeSpawner would apply profile_list here; the OPU profiles were applied already
        # (prepare_profile), and user_options were validated by the mixin
        return None

    def check_pod(self, pod) -> None:
        """Refuse a pod that undoes the hardening (after make_pod and any modify_pod_hook)."""
        problems = kube_pod.pod_problems(
            api_dict(pod), self.opu_domain, getattr(self, "_opu_holder_resource", None),
            self.allowed_host_paths)
        if problems:
            self.log.error("refused pod for %s: %s", self._log_name, "; ".join(problems))
            raise web.HTTPError(
                500, "This hub's Kubernetes settings are unsafe, so no notebook server starts: "
                f"{'; '.join(problems)}. An admin must fix the hub's configuration.")

    async def get_pod_manifest(self):
        pod = await super().get_pod_manifest()
        self.check_pod(pod)
        return pod
