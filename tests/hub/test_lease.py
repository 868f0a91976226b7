"""Pure lease policy: no I/O, no clock; every rule checked with plain data."""

from datetime import UTC, timedelta, timezone

import pytest

from opuhub.lease import (
    REFUSED_ALREADY_HOLDING,
    REFUSED_BUSY,
    REFUSED_NO_DEVICE,
    REFUSED_QUOTA,
    Grant,
    Lease,
    LeasePolicy,
    Refusal,
    UsageRecord,
    busy_message,
    decide_claim,
    format_clock,
    format_duration,
    lease_env,
    period_start,
    plan_enforcement,
    quota_left,
    seconds_used,
    usage_by_user,
)

DEVICES = ["/dev/opu0", "/dev/opu1"]
# 2026-11-28 12:00:00 UTC
NOON = 1795867200.0
POLICY = LeasePolicy(max_duration=3600, warning=300)


def claim(user, leases=(), usage=(), policy=POLICY, devices=DEVICES, server="", **kw):
    return decide_claim(user, server, devices, list(leases), list(usage), policy, NOON, tz=UTC, **kw)


def test_first_free_device_is_granted_with_max_duration():
    grant = claim("alice")
    assert grant == Grant("/dev/opu0", NOON, NOON + 3600)


def test_second_user_gets_the_next_device():
    leases = [Lease("/dev/opu0", "alice", "", NOON - 10, NOON + 100)]
    assert claim("bob", leases).device == "/dev/opu1"


def test_busy_refusal_names_holder_and_time_and_suggests_simulator():
    leases = [Lease("/dev/opu0", "alice", "", NOON - 10, NOON + 2.5 * 3600)]
    refusal = claim("bob", leases, devices=["/dev/opu0"])
    assert isinstance(refusal, Refusal)
    assert refusal.reason == REFUSED_BUSY
    assert "alice" in refusal.message and "until 14:30 UTC" in refusal.message
    assert "Simulator" in refusal.message
    assert refusal.retry_at == NOON + 2.5 * 3600
    assert refusal.holder.username == "alice"


def test_busy_message_for_unlimited_lease_and_local_time_zone():
    paris = timezone(timedelta(hours=1), "CET")
    text = busy_message([Lease("/dev/opu0", "alice", "", NOON, None)], paris, NOON)
    assert "until they stop their server" in text
    assert format_clock(NOON + 3600, paris, NOON) == "14:00 CET"
    assert format_clock(NOON + 86400, UTC, NOON) == "Nov 29 12:00 UTC"


def test_restart_of_the_holding_server_keeps_its_lease():
    lease = Lease("/dev/opu1", "alice", "gpu", NOON - 50, NOON + 10)
    grant = claim("alice", [lease], server="gpu")
    assert grant == Grant("/dev/opu1", NOON - 50, NOON + 10, renewed=True)


def test_one_device_per_user():
    leases = [Lease("/dev/opu0", "alice", "", NOON, None)]
    refusal = claim("alice", leases, server="second")
    assert refusal.reason == REFUSED_ALREADY_HOLDING
    assert "/dev/opu0" in refusal.message


def test_no_device_configured():
    assert claim("alice", devices=[]).reason == REFUSED_NO_DEVICE


def test_leases_on_unconfigured_devices_do_not_block():
    leases = [Lease("/dev/old", "bob", "", NOON, None)]
    assert claim("alice", leases, devices=["/dev/opu0"]).device == "/dev/opu0"


def test_requested_duration_shortens_but_never_extends():
    assert claim("alice", requested_duration=60).expires_at == NOON + 60
    assert claim("alice", requested_duration=99999).expires_at == NOON + 3600
    with pytest.raises(ValueError, match="> 0"):
        claim("alice", requested_duration=0)


def test_unlimited_policy_gives_open_ended_lease():
    policy = LeasePolicy(max_duration=0)
    assert claim("alice", policy=policy).expires_at is None


def test_quota_refuses_when_used_up_and_limits_duration():
    policy = LeasePolicy(max_duration=3600, quota=1800, quota_period=86400)
    used = [UsageRecord("alice", NOON - 1000, NOON - 400)]  # 600 s today
    grant = claim("alice", usage=used, policy=policy)
    assert grant.expires_at == NOON + 1200  # 1800 - 600 left
    used_up = [UsageRecord("alice", NOON - 2000, NOON - 100)]
    refusal = claim("alice", usage=used_up, policy=policy)
    assert refusal.reason == REFUSED_QUOTA
    assert refusal.retry_at == NOON + 12 * 3600  # next UTC midnight
    assert "Nov 29 00:00 UTC" in refusal.message
    # other users' time does not count
    assert isinstance(claim("bob", usage=used_up, policy=policy), Grant)


def test_quota_counts_only_the_current_period():
    policy = LeasePolicy(quota=100, quota_period=86400)
    yesterday = [UsageRecord("alice", NOON - 86400, NOON - 80000)]
    assert quota_left(yesterday, "alice", policy, NOON) == 100
    straddling = [UsageRecord("alice", period_start(NOON, 86400) - 50, period_start(NOON, 86400) + 30)]
    assert quota_left(straddling, "alice", policy, NOON) == 70
    assert quota_left([], "alice", LeasePolicy(), NOON) == float("inf")


def test_seconds_used_counts_ongoing_up_to_now():
    records = [UsageRecord("a", 0, 10), UsageRecord("a", 20, None), UsageRecord("b", 0, 5)]
    assert seconds_used(records, "a", now=25) == 15
    assert seconds_used(records, "a", now=25, since=5) == 10
    assert usage_by_user(records, now=25) == {"a": 15, "b": 5}


@pytest.mark.parametrize(
    "kwargs", [{"max_duration": -1}, {"warning": float("nan")}, {"quota": "1h"}, {"quota_period": 0}]
)
def test_policy_rejects_bad_values(kwargs):
    with pytest.raises(ValueError, match="LeasePolicy"):
        LeasePolicy(**kwargs)


def test_enforcement_plan():
    expired = Lease("/dev/a", "u1", "", NOON - 100, NOON - 1)
    expiring = Lease("/dev/b", "u2", "", NOON - 100, NOON + 60)
    warned = Lease("/dev/c", "u3", "", NOON - 100, NOON + 60, warned_at=NOON - 5)
    orphan = Lease("/dev/d", "u4", "", NOON - 600, None)
    young = Lease("/dev/e", "u5", "", NOON - 5, None)
    fine = Lease("/dev/f", "u6", "", NOON - 100, NOON + 3000)
    running = {("u1", ""), ("u2", ""), ("u3", ""), ("u6", "")}
    actions = plan_enforcement(
        [expired, expiring, warned, orphan, young, fine], NOON, warning=300, running=running
    )
    assert [(a.kind, a.lease.device) for a in actions] == [
        ("expire", "/dev/a"),
        ("warn", "/dev/b"),
        ("orphan", "/dev/d"),
    ]
    # without knowledge of running servers, nothing is orphaned
    assert [a.kind for a in plan_enforcement([orphan], NOON, 300)] == []


def test_lease_env_documents_the_lease_for_the_kernel():
    assert lease_env(None) == {"OPU_LEASE_STATUS": "none"}
    env = lease_env(Lease("/dev/opu0", "alice", "", NOON, NOON + 60))
    assert env == {
        "OPU_LEASE_STATUS": "held",
        "OPU_LEASE_HOLDER": "alice",
        "OPU_LEASE_DEVICE": "/dev/opu0",
        "OPU_LEASE_STARTED": "2026-11-28T12:00:00+00:00",
        "OPU_LEASE_EXPIRES": "2026-11-28T12:01:00+00:00",
    }
    assert lease_env(Lease("/dev/opu0", "a", "", NOON))["OPU_LEASE_EXPIRES"] == "never"


def test_format_duration():
    assert format_duration(45) == "45s"
    assert format_duration(750) == "12m 30s"
    assert format_duration(3900) == "1h 05m"
