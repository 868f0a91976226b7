"""Spawn options and the kernel environment."""

import pytest

from opuhub.lease import Lease
from opuhub.profiles import (
    SpawnChoice,
    device_status_lines,
    kernel_env,
    options_form_html,
    options_from_form,
    parse_user_options,
)


def test_parse_user_options():
    assert parse_user_options({}, True) == SpawnChoice("simulator")
    assert parse_user_options({"profile": "OPU hardware"}, True) == SpawnChoice("hardware")
    assert parse_user_options({"profile": "hardware", "lease_minutes": "30"}, True) == SpawnChoice(
        "hardware", 1800.0
    )


@pytest.mark.parametrize(
    "options, hardware, message",
    [
        ({"image": "evil:latest"}, True, "unknown spawn option"),
        ({"profile": "gpu"}, True, "unknown profile"),
        ({"profile": 3}, True, "must be a string"),
        ({"profile": "hardware"}, False, "no OPU device"),
        ({"profile": "hardware", "lease_minutes": "soon"}, True, "must be a number"),
        ({"profile": "hardware", "lease_minutes": -5}, True, "must be in"),
        ({"profile": "simulator", "lease_minutes": 5}, True, "only applies"),
    ],
)
def test_bad_options_are_refused_with_a_reason(options, hardware, message):
    with pytest.raises(ValueError, match=message):
        parse_user_options(options, hardware)


def test_form_round_trip_and_rendering():
    assert options_from_form({"profile": ["hardware"], "lease_minutes": ["15"]}) == {
        "profile": "hardware",
        "lease_minutes": "15",
    }
    assert options_from_form({"profile": ["simulator"], "lease_minutes": ["15"]}) == {
        "profile": "simulator"
    }
    lines = device_status_lines(
        ["/dev/opu0", "/dev/opu1"], [Lease("/dev/opu0", "bob<", "", 0, 3600)], None, 0
    )
    assert lines[1] == "/dev/opu1: free" and lines[0].startswith("/dev/opu0: held by bob<")
    html = options_form_html(lines, 240)
    assert "bob&lt;" in html and 'value="hardware"' in html and "at most 240" in html


def test_kernel_env():
    sim = kernel_env(SpawnChoice("simulator"), 500, None, None)
    assert sim == {
        "OPU_PROFILE": "simulator",
        "OPU_BACKEND": "simulator",
        "OPU_N_COMPONENTS": "500",
        "OPU_LEASE_STATUS": "none",
    }
    hw = kernel_env(SpawnChoice("hardware"), 500, "/dev/opu0", Lease("/dev/x", "al", "", 0, None))
    assert hw["OPU_BACKEND"] == "hardware" and hw["OPU_DEVICE"] == "/dev/opu0"
    assert hw["OPU_LEASE_DEVICE"] == "/dev/x" and hw["OPU_LEASE_EXPIRES"] == "never"
    assert "OPU_LEASE_WARNING_SECONDS" not in hw  # nothing to warn about
    timed = kernel_env(SpawnChoice("hardware"), 5, "/dev/opu0", Lease("/dev/x", "al", "", 0, 60), 30)
    assert timed["OPU_LEASE_WARNING_SECONDS"] == "30"


@pytest.mark.parametrize(
    "options",
    [
        {"profile": "x" * 3000},
        {"profile": ["x" * 3000]},
        {"profile": "hardware", "lease_minutes": "9" * 3000 + "x"},
        {f"key{i}" + "k" * 500: 1 for i in range(7)},
    ],
)
def test_refusals_do_not_echo_a_long_value(options):
    # the message goes back to the attendee and into the hub's log: it stays short
    with pytest.raises(ValueError) as raised:
        parse_user_options(options, True)
    assert len(str(raised.value)) < 300
