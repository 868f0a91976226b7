"""Prometheus metrics of the OPU lease, read from the lease store at each scrape."""

from __future__ import annotations

import time

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import CollectorRegistry

from .lease_store import LeaseStore


class LeaseCollector:
    """A custom collector: the store is shared with the hub process, so figures are read
    fresh on every scrape instead of being counted in this process."""

    def __init__(self, store: LeaseStore, devices: list[str]):
        self.store = store
        self.devices = devices

    def collect(self):
        now = time.time()
        leases = self.store.active()
        devices = GaugeMetricFamily("opuhub_devices", "OPU devices configured on this hub")
        devices.add_metric([], len(self.devices))
        yield devices

        active = GaugeMetricFamily("opuhub_active_leases", "OPU device leases currently held")
        active.add_metric([], len(leases))
        yield active

        held = GaugeMetricFamily(
            "opuhub_lease_held", "1 for each device and the user holding it", labels=["device", "user"]
        )
        for lease in leases:
            held.add_metric([lease.device, lease.username], 1)
        yield held

        seconds = CounterMetricFamily(
            "opuhub_lease_seconds", "OPU seconds used per user (ongoing leases included)",
            labels=["user"],
        )
        for user, total in sorted(self.store.seconds_by_user(now).items()):
            seconds.add_metric([user], total)
        yield seconds

        refused = CounterMetricFamily(
            "opuhub_lease_refusals", "Refused OPU lease requests, by reason", labels=["reason"]
        )
        for reason, count in sorted(self.store.refusal_counts().items()):
            refused.add_metric([reason], count)
        yield refused


def registry_for(store: LeaseStore, devices: list[str]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LeaseCollector(store, devices))
    return registry
