"""The device inventory (devices named per node) and the lease policy over two nodes with three
devices: node-a has /dev/opu0 and /dev/opu1, node-b has /dev/opu0."""

from __future__ import annotations

import pytest

from opuhub.kube_inventory import (
    DeviceInventory,
    InventoryError,
    NodeDevice,
    parse_device,
    resource_name,
)
from opuhub.lease import (
    REFUSED_ALREADY_HOLDING,
    REFUSED_BUSY,
    Grant,
    LeasePolicy,
    Refusal,
    decide_claim,
)
from opuhub.lease_store import LeaseStore

CLUSTER = {"node-a": ["/dev/opu0", "/dev/opu1"], "node-b": ["/dev/opu0"]}
A0, A1, B0 = "node-a:/dev/opu0", "node-a:/dev/opu1", "node-b:/dev/opu0"
POLICY = LeasePolicy(max_duration=3600, warning=300)
T0 = 1_800_000_000.0


def test_devices_are_named_per_node_and_the_same_path_on_two_nodes_is_two_devices():
    inventory = DeviceInventory.from_mapping(CLUSTER)
    assert inventory.names() == [A0, A1, B0]
    assert inventory.nodes == ("node-a", "node-b")
    assert inventory.by_node() == {
        "node-a": (NodeDevice("node-a", "/dev/opu0"), NodeDevice("node-a", "/dev/opu1")),
        "node-b": (NodeDevice("node-b", "/dev/opu0"),),
    }
    assert parse_device(B0) == NodeDevice("node-b", "/dev/opu0") != parse_device(A0)
    assert DeviceInventory.from_names([A0, A1, B0]) == inventory
    assert inventory.locate(A1).node == "node-a"


def test_hand_out_order_alternates_nodes():
    assert DeviceInventory.from_mapping(CLUSTER).hand_out_order() == [A0, B0, A1]
    three = DeviceInventory.from_mapping({"x": ["/dev/opu0"], "y": ["/dev/opu0", "/dev/opu1",
                                                                   "/dev/opu2"]})
    assert three.hand_out_order() == ["x:/dev/opu0", "y:/dev/opu0", "y:/dev/opu1", "y:/dev/opu2"]
    assert DeviceInventory(()).hand_out_order() == []


@pytest.mark.parametrize("name, says", [
    ("/dev/opu0", "names no node"),
    ("Node_A:/dev/opu0", "not a Kubernetes node name"),
    ("node-a:opu0", "not a device node path"),
    ("node-a:/dev/../etc/passwd", "not a device node path"),
    ("node-a:/dev/opu0,node-b:/dev/opu0", "must not contain"),
])
def test_bad_device_names_are_refused_naming_the_entry(name, says):
    with pytest.raises(InventoryError, match=says):
        parse_device(name)


def test_bad_inventories_are_refused():
    with pytest.raises(InventoryError, match="listed twice"):
        DeviceInventory.from_names([A0, A0])
    with pytest.raises(InventoryError, match="list of device paths"):
        DeviceInventory.from_mapping({"node-a": "/dev/opu0"})
    with pytest.raises(InventoryError, match="not in this hub's inventory"):
        DeviceInventory.from_mapping(CLUSTER).locate("node-c:/dev/opu0")


def test_resource_names():
    device = NodeDevice("node-a", "/dev/opu1")
    assert resource_name("lighton.ai/{device}", device) == "lighton.ai/opu1"
    assert resource_name("lighton.ai/opu", device) == "lighton.ai/opu"
    assert DeviceInventory.from_mapping(CLUSTER).resource_names("lighton.ai/{device}") == {
        A0: "lighton.ai/opu0", A1: "lighton.ai/opu1", B0: "lighton.ai/opu0"}
    for bad in ("opu", "kubernetes.io/opu", "lighton.ai/", "lighton.ai/" + "x" * 64, "Lighton/opu"):
        with pytest.raises(InventoryError, match="DOMAIN/NAME"):
            resource_name(bad, device)


# --- the lease policy over the cluster's devices ------------------------------------------------


def test_claims_spread_over_the_nodes_until_every_device_is_held(tmp_path):
    store = LeaseStore(tmp_path / "leases.sqlite")
    devices = DeviceInventory.from_mapping(CLUSTER).hand_out_order()
    got = {}
    for i, user in enumerate(("alice", "bob", "carol")):
        decision = store.claim(user, "", devices, POLICY, now=T0 + i)
        assert isinstance(decision, Grant)
        got[user] = decision.device
    assert got == {"alice": A0, "bob": B0, "carol": A1}
    refused = store.claim("dave", "", devices, POLICY, now=T0 + 10)
    assert isinstance(refused, Refusal) and refused.reason == REFUSED_BUSY
    for device, user in ((A0, "alice"), (B0, "bob"), (A1, "carol")):
        assert f"{device} is held by {user}" in refused.message  # the node is named


def test_a_holder_keeps_its_device_and_node_across_a_restart(tmp_path):
    store = LeaseStore(tmp_path / "leases.sqlite")
    devices = DeviceInventory.from_mapping(CLUSTER).hand_out_order()
    assert store.claim("alice", "", devices, POLICY, now=T0).device == A0
    assert store.claim("bob", "", devices, POLICY, now=T0 + 1).device == B0
    again = store.claim("bob", "", devices, POLICY, now=T0 + 60)
    assert again == Grant(B0, T0 + 1, T0 + 1 + 3600, renewed=True)
    assert parse_device(again.device).node == "node-b"  # the pod goes back to node-b
    other = store.claim("bob", "lab", devices, POLICY, now=T0 + 61)
    assert isinstance(other, Refusal) and other.reason == REFUSED_ALREADY_HOLDING
    assert B0 in other.message


def test_a_released_device_on_the_other_node_goes_to_the_next_claimant(tmp_path):
    store = LeaseStore(tmp_path / "leases.sqlite")
    devices = DeviceInventory.from_mapping(CLUSTER).hand_out_order()
    for i, user in enumerate(("alice", "bob", "carol")):
        store.claim(user, "", devices, POLICY, now=T0 + i)
    store.release("bob", "", "stopped", now=T0 + 100)  # bob held node-b's only OPU
    decision = store.claim("dave", "", devices, POLICY, now=T0 + 101)
    assert decision.device == B0 and parse_device(decision.device).node == "node-b"


def test_same_path_on_two_nodes_never_blocks_each_other():
    # pure policy: alice's lease on node-a's /dev/opu0 leaves node-b's /dev/opu0 free
    from opuhub.lease import Lease

    leases = [Lease(A0, "alice", "", T0, None)]
    decision = decide_claim("bob", "", [A0, B0], leases, [], POLICY, now=T0 + 1)
    assert isinstance(decision, Grant) and decision.device == B0
    # a lease on a node no longer in the inventory blocks nothing
    gone = [Lease("node-c:/dev/opu0", "carol", "", T0, None)]
    assert decide_claim("bob", "", [A0], gone, [], POLICY, now=T0 + 1).device == A0
