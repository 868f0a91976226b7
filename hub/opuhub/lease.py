"""The OPU device lease as pure policy: who may hold which device, for how long, and why not.

Nothing here does I/O or reads the clock: every function takes the current time and the
current leases as plain data, so the rules can be tested exhaustively and reused by the
spawner (claims), the lease store (atomic claims) and the lease service (enforcement).

Vocabulary
----------
device
    A host device node such as ``/dev/opu0``. Exactly one lease may exist per device.
lease
    "user U's server S holds device D from T0 until T1 (or until it stops)".
usage record
    A past or ongoing lease interval, used for per-user OPU-time accounting and quotas.
quota
    Seconds of OPU time per fixed period (aligned to the epoch, e.g. one UTC day);
    0 means unlimited.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from .settings import default_of

UNLIMITED = 0.0

# why a claim was refused; also the label of the refusal metric
REFUSED_BUSY = "busy"
REFUSED_QUOTA = "quota"
REFUSED_NO_DEVICE = "no-device"
REFUSED_ALREADY_HOLDING = "already-holding"

# why a lease ended; stored with the usage record
ENDED_STOPPED = "stopped"
ENDED_EXPIRED = "expired"
ENDED_REVOKED = "revoked"
ENDED_SERVER_GONE = "server-gone"
ENDED_SPAWN_FAILED = "spawn-failed"


@dataclass(frozen=True)
class Lease:
    device: str
    username: str
    server_name: str
    started_at: float
    expires_at: float | None = None  # None: held until the server stops
    warned_at: float | None = None  # when the "expires soon" warning was given

    def held_by(self, username: str, server_name: str) -> bool:
        return self.username == username and self.server_name == server_name

    def seconds_used(self, now: float) -> float:
        return max(0.0, now - self.started_at)


@dataclass(frozen=True)
class UsageRecord:
    username: str
    started_at: float
    ended_at: float | None  # None: still running


@dataclass(frozen=True)
class LeasePolicy:
    """How long a lease may last and how much OPU time a user gets.

    All durations in seconds; 0 means "no limit".
    """

    max_duration: float = default_of("lease_max_seconds")
    warning: float = default_of("lease_warning_seconds")
    quota: float = default_of("quota_seconds")  # 0 = UNLIMITED
    quota_period: float = default_of("quota_period_seconds")

    def __post_init__(self):
        for name in ("max_duration", "warning", "quota"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or math.isnan(value) or value < 0:
                raise ValueError(f"LeasePolicy.{name} must be a number >= 0, got {value!r}")
        if not self.quota_period > 0:
            raise ValueError(f"LeasePolicy.quota_period must be > 0, got {self.quota_period!r}")


@dataclass(frozen=True)
class Grant:
    device: str
    started_at: float
    expires_at: float | None
    renewed: bool = False  # the claimant already held this device (e.g. a restart)


@dataclass(frozen=True)
class Refusal:
    reason: str
    message: str
    holder: Lease | None = None
    retry_at: float | None = None


@dataclass(frozen=True)
class Action:
    """What the lease enforcer should do with a lease (see :func:`plan_enforcement`)."""

    kind: str  # "warn", "expire" or "orphan"
    lease: Lease
    detail: str = field(default="", compare=False)


# --- time formatting -------------------------------------------------------------------------


def format_clock(ts: float, tz: tzinfo | None, now: float | None = None) -> str:
    """'14:30 UTC' for today, 'Nov 29 14:30 UTC' otherwise (both in the hub's time zone)."""
    when = datetime.fromtimestamp(ts, tz).astimezone(tz)
    zone = when.tzname() or ""
    same_day = now is not None and datetime.fromtimestamp(now, tz).astimezone(tz).date() == (
        when.date()
    )
    text = when.strftime("%H:%M") if same_day else when.strftime("%b %d %H:%M")
    return f"{text} {zone}".strip()


def format_duration(seconds: float) -> str:
    """'1h 05m', '12m 30s', '45s'."""
    seconds = int(round(max(0.0, seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def iso_utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


# --- accounting ------------------------------------------------------------------------------


def period_start(now: float, period: float) -> float:
    """Start of the fixed quota period containing ``now`` (periods are aligned to the epoch,
    so a one-day period is a UTC calendar day)."""
    return now - (now % period)


def seconds_used(
    records: Iterable[UsageRecord], username: str, now: float, since: float | None = None
) -> float:
    """OPU seconds ``username`` used, counting only time after ``since`` (if given); an
    ongoing record counts up to ``now``."""
    total = 0.0
    for record in records:
        if record.username != username:
            continue
        start = record.started_at if since is None else max(record.started_at, since)
        end = now if record.ended_at is None else min(record.ended_at, now)
        total += max(0.0, end - start)
    return total


def usage_by_user(records: Iterable[UsageRecord], now: float) -> dict[str, float]:
    """Total OPU seconds per user (for metrics and the usage API)."""
    totals: dict[str, float] = {}
    for record in records:
        end = now if record.ended_at is None else record.ended_at
        totals[record.username] = totals.get(record.username, 0.0) + max(0.0, end - record.started_at)
    return totals


def quota_left(
    records: Iterable[UsageRecord], username: str, policy: LeasePolicy, now: float
) -> float:
    """Seconds of OPU time ``username`` may still use in this period (inf when unlimited)."""
    if policy.quota == UNLIMITED:
        return math.inf
    used = seconds_used(records, username, now, since=period_start(now, policy.quota_period))
    return max(0.0, policy.quota - used)


# --- claims ----------------------------------------------------------------------------------


def busy_message(holders: Sequence[Lease], tz: tzinfo | None, now: float) -> str:
    """The refusal text when every device is held: who holds it, and until when."""
    parts = []
    for lease in sorted(holders, key=lambda lease: lease.expires_at or math.inf):
        if lease.expires_at is None:
            until = "until they stop their server"
        else:
            until = f"until {format_clock(lease.expires_at, tz, now)}"
        parts.append(f"{lease.device} is held by {lease.username} {until}")
    what = "The OPU is busy" if len(holders) == 1 else "All OPUs are busy"
    return (
        f"{what}: {'; '.join(parts)}. Start the 'Simulator' profile instead "
        "(same code, simulated results), or try again later."
    )


def decide_claim(
    username: str,
    server_name: str,
    devices: Sequence[str],
    leases: Sequence[Lease],
    usage: Iterable[UsageRecord],
    policy: LeasePolicy,
    now: float,
    requested_duration: float | None = None,
    tz: tzinfo | None = None,
) -> Grant | Refusal:
    """Decide whether ``username``'s server ``server_name`` gets a device.

    Rules, in order:
    1. A server that already holds a device keeps it (a restart is not a new claim).
    2. A user holds at most one device, so one person cannot block every OPU.
    3. The user must have quota left in this period.
    4. The first free device in configuration order is granted; leases on devices that are
       no longer configured do not block anything.
    The lease lasts the shortest of: the policy maximum, the requested duration and the quota
    left; unlimited when all three are unlimited.
    """
    if not devices:
        return Refusal(
            REFUSED_NO_DEVICE,
            "This hub has no OPU device configured. Start the 'Simulator' profile instead.",
        )
    if requested_duration is not None and not requested_duration > 0:
        raise ValueError(f"requested lease duration must be > 0 seconds, got {requested_duration!r}")

    configured = set(devices)
    current = [lease for lease in leases if lease.device in configured]
    for lease in current:
        if lease.held_by(username, server_name):
            return Grant(lease.device, lease.started_at, lease.expires_at, renewed=True)
    for lease in current:
        if lease.username == username:
            where = f"server '{lease.server_name}'" if lease.server_name else "your default server"
            return Refusal(
                REFUSED_ALREADY_HOLDING,
                f"You already hold {lease.device} on {where}. Stop that server first, or start "
                "this one with the 'Simulator' profile.",
                holder=lease,
            )

    usage = list(usage)
    left = quota_left(usage, username, policy, now)
    if left <= 0:
        reset = period_start(now, policy.quota_period) + policy.quota_period
        return Refusal(
            REFUSED_QUOTA,
            f"You have used your OPU time for this period ({format_duration(policy.quota)}); "
            f"more is available from {format_clock(reset, tz, now)}. Use the 'Simulator' "
            "profile meanwhile.",
            retry_at=reset,
        )

    held = {lease.device for lease in current}
    free = [device for device in devices if device not in held]
    if not free:
        soonest = min((lease.expires_at for lease in current if lease.expires_at), default=None)
        return Refusal(
            REFUSED_BUSY,
            busy_message(current, tz, now),
            holder=min(current, key=lambda lease: lease.expires_at or math.inf),
            retry_at=soonest,
        )

    limits = [left]
    if policy.max_duration != UNLIMITED:
        limits.append(policy.max_duration)
    if requested_duration is not None:
        limits.append(requested_duration)
    duration = min(limits)
    expires_at = None if math.isinf(duration) else now + duration
    return Grant(free[0], now, expires_at)


# --- enforcement -----------------------------------------------------------------------------


def plan_enforcement(
    leases: Iterable[Lease],
    now: float,
    warning: float,
    running: set[tuple[str, str]] | None = None,
    grace: float = 60.0,
) -> list[Action]:
    """What to do with each active lease right now.

    - ``expire``: the maximum duration is over; stop the server and end the lease.
    - ``warn``: it ends within ``warning`` seconds and nobody has been warned yet.
    - ``orphan``: ``running`` (the set of (user, server name) the hub reports as running or
      starting) does not contain the holder, so the server is gone (crash, hub restart, lost
      container). Leases younger than ``grace`` are left alone: their server may be starting
      and not yet visible to the hub API.
    """
    actions = []
    for lease in leases:
        if lease.expires_at is not None and now >= lease.expires_at:
            actions.append(Action("expire", lease, "maximum lease duration reached"))
        elif running is not None and (lease.username, lease.server_name) not in running:
            if now - lease.started_at >= grace:
                actions.append(Action("orphan", lease, "the holder's server is not running"))
        elif (
            lease.expires_at is not None
            and lease.warned_at is None
            and lease.expires_at - now <= warning
        ):
            left = format_duration(lease.expires_at - now)
            actions.append(Action("warn", lease, f"lease ends in {left}"))
    return actions


def lease_env(lease: Lease | None) -> dict[str, str]:
    """Environment that tells the kernel about the lease (``%opu`` prints ``OPU_LEASE_*``).

    OPU_LEASE_STATUS   "held" or "none"
    OPU_LEASE_HOLDER   hub user name of the holder
    OPU_LEASE_DEVICE   host device node that is leased (e.g. /dev/opu0)
    OPU_LEASE_STARTED  ISO 8601 UTC start time
    OPU_LEASE_EXPIRES  ISO 8601 UTC end time, or "never"
    """
    if lease is None:
        return {"OPU_LEASE_STATUS": "none"}
    return {
        "OPU_LEASE_STATUS": "held",
        "OPU_LEASE_HOLDER": lease.username,
        "OPU_LEASE_DEVICE": lease.device,
        "OPU_LEASE_STARTED": iso_utc(lease.started_at),
        "OPU_LEASE_EXPIRES": "never" if lease.expires_at is None else iso_utc(lease.expires_at),
    }
