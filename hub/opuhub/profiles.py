"""Spawn profiles ("Simulator", "OPU hardware", "Shared OPU"), the spawn options form, and the
kernel's env.

Pure functions: they turn what a user asked for (form fields or the JSON body of
``POST /hub/api/users/NAME/server``) into a validated :class:`SpawnChoice`, and a choice plus
a lease into the environment the OPU kernel reads. Bad input raises ``ValueError`` with a
message meant for the user; the spawner turns it into an HTTP 400.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import tzinfo

from .lease import Lease, format_clock, lease_env

SIMULATOR = "simulator"
HARDWARE = "hardware"
SHARED = "shared"  # the hub's OPU broker: one device for everyone, in fair turns
PROFILES = {SIMULATOR: "Simulator", HARDWARE: "OPU hardware", SHARED: "Shared OPU"}
#: the lengths a spawn may ask for, and the profile each belongs to
LENGTH_OPTIONS = {"lease_minutes": HARDWARE, "reserve_minutes": SHARED}
OPTION_KEYS = ("profile", *LENGTH_OPTIONS)
MAX_LEASE_MINUTES = 7 * 24 * 60
SHOWN_CHARS = 40  # how much of a refused value an error message (and the hub's log) repeats


def _shown(value) -> str:
    """repr() of a user-supplied value, cut short: messages stay readable whatever was sent."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


@dataclass(frozen=True)
class SpawnChoice:
    profile: str = SIMULATOR
    lease_seconds: float | None = None  # asked-for lease length; the policy may shorten it
    #: "Shared OPU" reserved for this user alone while the lease lasts (the broker serves
    #: only the holder of a lease on its device: opu_kernel.broker.leases)
    reserved: bool = False

    @property
    def wants_device(self) -> bool:
        """A device passed through to this server alone ("OPU hardware")."""
        return self.profile == HARDWARE

    @property
    def wants_lease(self) -> bool:
        """A lease: on a device passed through, or on the shared OPU's (a reserved window)."""
        return self.wants_device or self.reserved


def parse_profile(value) -> str:
    if not isinstance(value, str):
        raise ValueError(f"profile must be a string, one of {', '.join(PROFILES)}; got {_shown(value)}")
    wanted = value.strip().lower()
    for key, label in PROFILES.items():
        if wanted in (key, label.lower()):
            return key
    raise ValueError(f"unknown profile {_shown(value)}; choose one of: {', '.join(PROFILES)}")


def parse_user_options(options: dict | None, hardware_available: bool,
                       shared_available: bool = False) -> SpawnChoice:
    """Validate spawn options; unknown keys are refused (no user-chosen images or commands)."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTION_KEYS))
    if unknown:
        raise ValueError(
            f"unknown spawn option(s): {', '.join(_shown(k) for k in unknown[:5])}"
            f"{' ...' if len(unknown) > 5 else ''}; allowed: {', '.join(OPTION_KEYS)}"
        )
    profile = parse_profile(options.get("profile", SIMULATOR))
    if profile == HARDWARE and not hardware_available:
        raise ValueError(
            "this hub has no OPU device configured; start the 'Simulator' profile instead"
        )
    if profile == SHARED and not shared_available:
        raise ValueError("this hub runs no shared OPU; start the 'Simulator' profile instead")
    lease_minutes = _minutes(options, "lease_minutes", profile)
    reserve_minutes = _minutes(options, "reserve_minutes", profile)
    if reserve_minutes is not None:
        return SpawnChoice(SHARED, reserve_minutes * 60, reserved=True)
    return SpawnChoice(profile, None if lease_minutes is None else lease_minutes * 60)


def _minutes(options: dict, key: str, profile: str) -> float | None:
    """A length in minutes of ``options[key]`` (None when absent or empty), which only the
    profile of ``LENGTH_OPTIONS[key]`` takes."""
    minutes = options.get(key)
    if minutes in (None, ""):
        return None
    try:
        minutes = float(minutes)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a JSON integer of 400 digits
        raise ValueError(f"{key} must be a number, got {_shown(minutes)}") from None
    if not 0 < minutes <= MAX_LEASE_MINUTES:
        raise ValueError(f"{key} must be in (0, {MAX_LEASE_MINUTES}], got {minutes}")
    if profile != LENGTH_OPTIONS[key]:
        raise ValueError(f"{key} only applies to the '{PROFILES[LENGTH_OPTIONS[key]]}' profile")
    return minutes


def options_from_form(formdata: dict[str, list[str]]) -> dict:
    """Form fields (lists of strings, as tornado gives them) → user_options."""
    options = {"profile": (formdata.get("profile") or [SIMULATOR])[0]}
    for key, profile in LENGTH_OPTIONS.items():
        minutes = (formdata.get(key) or [""])[0].strip()
        if minutes and options["profile"] == profile:
            options[key] = minutes
    return options


FREE = ": free"  # how a free device's status line ends


def device_status_lines(
    devices: list[str], leases: list[Lease], tz: tzinfo | None, now: float
) -> list[str]:
    """One line per device: "/dev/opu0: free" or "... held by alice until 14:30 UTC"."""
    by_device = {lease.device: lease for lease in leases}
    lines = []
    for device in devices:
        lease = by_device.get(device)
        if lease is None:
            lines.append(f"{device}{FREE}")
        elif lease.expires_at is None:
            lines.append(f"{device}: held by {lease.username}")
        else:
            until = format_clock(lease.expires_at, tz, now)
            lines.append(f"{device}: held by {lease.username} until {until}")
    return lines


def options_form_html(status_lines: list[str], max_minutes: float | None,
                      shared: str | None = None, shared_status: str | None = None) -> str:
    """The spawn page: pick a profile; each device's state (free, or who holds it until when)
    is shown under "OPU hardware", which cannot be picked while every device is busy.
    ``shared`` (what the hub's broker serves, e.g. "simulated") adds "Shared OPU", which may
    be reserved for a while (``shared_status``: who holds it now); a hub without devices
    (``status_lines`` empty) offers no hardware choice, nor a lease length."""
    free = [line.endswith(FREE) for line in status_lines]
    status = "".join(
        f'<li class="opuhub-device opuhub-device-{"free" if is_free else "busy"}">'
        f"{html.escape(line)}</li>"
        for line, is_free in zip(status_lines, free)
    )
    busy = bool(status_lines) and not any(free)
    hardware_note = (
        "every device is busy right now: start the Simulator, or come back later"
        if busy else "an exclusive lease on a device, yours until your server stops or the "
        "lease ends"
    )
    limit = f" (at most {max_minutes:g})" if max_minutes else ""
    hardware_choice = "" if not status_lines else f"""
  <div class="form-check">
    <input class="form-check-input" type="radio" name="profile" id="profile-{HARDWARE}"
      value="{HARDWARE}"{" disabled" if busy else ""}>
    <label class="form-check-label" for="profile-{HARDWARE}"><b>OPU hardware</b> &mdash;
      {hardware_note}</label>
    <ul class="opuhub-devices">{status}</ul>
  </div>"""
    lease_length = "" if not status_lines else f"""
  <label>Lease length in minutes{limit}:
    <input type="number" name="lease_minutes" min="1" step="1" placeholder="maximum"></label>"""
    shared_line = "" if shared_status is None else (
        '<ul class="opuhub-devices"><li class="opuhub-device opuhub-device-'
        f'{"free" if shared_status.endswith(FREE) else "busy"}">{html.escape(shared_status)}'
        "</li></ul>")
    shared_choice = "" if not shared else f"""
  <div class="form-check">
    <input class="form-check-input" type="radio" name="profile" id="profile-{SHARED}"
      value="{SHARED}">
    <label class="form-check-label" for="profile-{SHARED}"><b>Shared OPU</b> &mdash; one
      device ({html.escape(shared)}) for everyone, in fair turns: your transforms queue with
      the others' (<code>%opu</code> shows your place and share)</label>
    {shared_line}
    <label>Reserve it for me alone, minutes{limit}; optional, the others' transforms
      wait meanwhile:
      <input type="number" name="reserve_minutes" min="1" step="1" placeholder="no"></label>
  </div>"""
    return f"""
<fieldset id="opuhub-profiles">
  <legend>Where should <code>opu.transform</code> run?</legend>
  <div class="form-check">
    <input class="form-check-input" type="radio" name="profile" id="profile-{SIMULATOR}"
      value="{SIMULATOR}" checked>
    <label class="form-check-label" for="profile-{SIMULATOR}"><b>Simulator</b> &mdash; always
      available: the same API, exact results computed on the CPU</label>
  </div>{hardware_choice}{shared_choice}{lease_length}
</fieldset>
"""


def kernel_env(
    choice: SpawnChoice,
    n_components: int,
    kernel_device: str | None,
    lease: Lease | None,
    warning: float = 0.0,
    broker_env: dict[str, str] | None = None,
) -> dict[str, str]:
    """Environment for the single-user server and its OPU kernel.

    OPU_PROFILE        "simulator", "hardware" or "shared"
    OPU_BACKEND        "simulator", "hardware" or "shared" (what ``OPU()`` uses by default)
    OPU_BROKER_*       the shared OPU's address, this user's name and key (shared only; see
                       :mod:`opuhub.shared_opu`)
    OPU_N_COMPONENTS   default n_components for the preloaded ``opu``
    OPU_DEVICE         device node as the kernel sees it (hardware only)
    OPU_LEASE_*        see :func:`opuhub.lease.lease_env`; plus OPU_LEASE_WARNING_SECONDS:
                       how long before OPU_LEASE_EXPIRES the hub warns (the kernel may too)
    """
    env = {
        "OPU_PROFILE": choice.profile,
        "OPU_BACKEND": HARDWARE if lease is not None else SIMULATOR,
        "OPU_N_COMPONENTS": str(int(n_components)),
    }
    if choice.profile == SHARED and broker_env:
        env["OPU_BACKEND"] = SHARED
        env.update(broker_env)
    if lease is not None and kernel_device:
        env["OPU_DEVICE"] = kernel_device
    env.update(lease_env(lease))
    if lease is not None and lease.expires_at is not None and warning > 0:
        env["OPU_LEASE_WARNING_SECONDS"] = str(int(warning))
    return env
