"""Which OPU devices a cluster has, on which nodes: the device inventory, as pure data.

On one machine a device is its node path (``/dev/opu0``). On a cluster the same path exists on
several nodes, so a device is named ``NODE:PATH`` (``node-a:/dev/opu0``). Those names are what
the lease policy (:mod:`opuhub.lease`) and the lease store handle: one lease per name, so
``node-a:/dev/opu0`` and ``node-b:/dev/opu0`` are two devices, and a lease names its node. The
spawner pins the holder's pod to that node (:mod:`opuhub.kube_pod`), so a restarted holder
comes back to the device it holds.

Nothing here does I/O: the inventory is configuration (``OPUKubeSpawner.devices``, or a
``{node: [paths]}`` mapping), checked when the hub starts, with messages that name the bad
entry.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

SEPARATOR = ":"
# Kubernetes node names are DNS-1123 subdomains: lower-case alphanumerics, '-' and '.'
_NODE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# the last part of an extended resource name (after the domain), as the API server accepts it
_RESOURCE_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$")


class InventoryError(ValueError):
    """A device name or inventory that cannot be used (the message names the entry)."""


@dataclass(frozen=True)
class NodeDevice:
    """One OPU: the device node ``path`` on the cluster node ``node``."""

    node: str
    path: str

    @property
    def name(self) -> str:
        """The name leases use: ``node-a:/dev/opu0``."""
        return f"{self.node}{SEPARATOR}{self.path}"

    @property
    def short(self) -> str:
        """The device file's name (``opu0``): the per-device part of its resource name."""
        return posixpath.basename(self.path)


def check_node(node: str) -> str:
    if not isinstance(node, str) or not node or len(node) > 253 or not _NODE.match(node):
        raise InventoryError(
            f"{node!r} is not a Kubernetes node name (lower-case letters, digits, '-' and '.', "
            "as `kubectl get nodes` shows them)")
    return node


def check_path(path: str, what: str = "device") -> str:
    if not isinstance(path, str) or not path.startswith("/dev/") or posixpath.normpath(path) != path:
        raise InventoryError(f"{what}: {path!r} is not a device node path such as /dev/opu0")
    if "," in path or SEPARATOR in path:
        # ',' separates devices in OPUHUB_DEVICES, ':' separates the node from the path
        raise InventoryError(f"{what}: {path!r} must not contain ',' or ':'")
    return path


def parse_device(name: str) -> NodeDevice:
    """``"node-a:/dev/opu0"`` → ``NodeDevice("node-a", "/dev/opu0")``; a bare path has no
    node to pin its holder to, so it is refused here."""
    if not isinstance(name, str) or SEPARATOR not in name:
        raise InventoryError(
            f"device {name!r} names no node: on a cluster write NODE:PATH, e.g. "
            "node-a:/dev/opu0 (the node as `kubectl get nodes` names it)")
    node, path = name.split(SEPARATOR, 1)
    return NodeDevice(check_node(node), check_path(path, f"device {name!r}"))


@dataclass(frozen=True)
class DeviceInventory:
    """The OPUs of a cluster, in configuration order."""

    devices: tuple[NodeDevice, ...]

    def __post_init__(self):
        seen = set()
        for device in self.devices:
            if device.name in seen:
                raise InventoryError(f"device {device.name} is listed twice")
            seen.add(device.name)

    @classmethod
    def from_names(cls, names: Iterable[str]) -> DeviceInventory:
        return cls(tuple(parse_device(name) for name in names))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Sequence[str]]) -> DeviceInventory:
        """``{"node-a": ["/dev/opu0", "/dev/opu1"], "node-b": ["/dev/opu0"]}``."""
        devices = []
        for node, paths in mapping.items():
            check_node(node)
            if isinstance(paths, str):
                raise InventoryError(f"node {node}: give a list of device paths, not {paths!r}")
            devices += [NodeDevice(node, check_path(path, f"node {node}")) for path in paths]
        return cls(tuple(devices))

    @property
    def nodes(self) -> tuple[str, ...]:
        """The OPU nodes, in the order they first appear."""
        return tuple(dict.fromkeys(device.node for device in self.devices))

    def on_node(self, node: str) -> tuple[NodeDevice, ...]:
        return tuple(device for device in self.devices if device.node == node)

    def by_node(self) -> dict[str, tuple[NodeDevice, ...]]:
        return {node: self.on_node(node) for node in self.nodes}

    def names(self) -> list[str]:
        return [device.name for device in self.devices]

    def hand_out_order(self) -> list[str]:
        """Device names, one node after the other in turn (a0, b0, a1, ...): the lease policy
        grants the first free device of its list, so consecutive claims land on different
        nodes while any is free, and one node's maintenance ends as few leases as it can."""
        columns = [self.on_node(node) for node in self.nodes]
        order = []
        for rank in range(max((len(column) for column in columns), default=0)):
            order += [column[rank].name for column in columns if rank < len(column)]
        return order

    def locate(self, name: str) -> NodeDevice:
        """The device a lease names; an error when it is not (or no longer) configured."""
        device = parse_device(name)
        if device not in self.devices:
            raise InventoryError(
                f"device {name} is not in this hub's inventory ({', '.join(self.names())})")
        return device

    def resource_names(self, template: str) -> dict[str, str]:
        """Each device's extended resource name (see :func:`resource_name`)."""
        return {device.name: resource_name(template, device) for device in self.devices}


def resource_name(template: str, device: NodeDevice) -> str:
    """The extended resource that the node's device plugin advertises for ``device``.

    ``template`` is ``DOMAIN/NAME``; ``{device}`` in NAME is the device file's name, so
    ``lighton.ai/{device}`` gives ``lighton.ai/opu0``: one resource per device, and the pod
    gets exactly the leased one. Without ``{device}`` (``lighton.ai/opu``) every device of a
    node is one pool and the kubelet picks any free one of the holder's node.
    """
    name = template.replace("{device}", device.short)
    domain, _, last = name.partition("/")
    if not _DOMAIN.match(domain) or domain.endswith("kubernetes.io") or not last \
            or len(last) > 63 or not _RESOURCE_NAME.match(last):
        raise InventoryError(
            f"extended resource {name!r} (from {template!r}) is not DOMAIN/NAME such as "
            "lighton.ai/opu0 (a domain of your own, not kubernetes.io; NAME of at most 63 "
            "letters, digits, '-', '_' or '.')")
    return name
