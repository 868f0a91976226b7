"""The status-bar item's data (opuhub_lab.status), its install, and the committed build."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from opuhub_lab import buildstamp, install
from opuhub_lab.status import format_left, label, parse_iso, status_from_env

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
HUB = {"JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api", "JUPYTERHUB_USER": "alice"}


def test_a_simulator_server():
    status = status_from_env({**HUB, "OPU_PROFILE": "simulator", "OPU_BACKEND": "simulator",
                              "OPU_LEASE_STATUS": "none"}, NOW)
    assert status["on_hub"] and status["backend"] == "simulator" and status["lease"] is None
    assert status["device"] is None and status["user"] == "alice"
    assert label(status) == "OPU: simulator"


def test_the_lease_holder_gets_device_holder_and_time_left_on_the_servers_clock():
    env = {**HUB, "OPU_PROFILE": "hardware", "OPU_BACKEND": "hardware", "OPU_DEVICE": "/dev/opu0",
           "OPU_LEASE_STATUS": "held", "OPU_LEASE_HOLDER": "alice",
           "OPU_LEASE_DEVICE": "/srv/dev/opu0", "OPU_LEASE_STARTED": "2026-11-29T11:30:00Z",
           "OPU_LEASE_EXPIRES": "2026-11-29T12:30:05Z", "OPU_LEASE_WARNING_SECONDS": "300"}
    status = status_from_env(env, NOW)
    lease = status["lease"]
    assert lease["holder"] == "alice" and lease["device"] == "/srv/dev/opu0"
    assert lease["seconds_left"] == 30 * 60 + 5 and lease["warning_seconds"] == 300
    assert status["device"] == "/dev/opu0"
    assert label(status) == "OPU: hardware /srv/dev/opu0 · alice · 30:05 left"
    # past the end: never negative
    assert status_from_env(env, NOW + timedelta(hours=2))["lease"]["seconds_left"] == 0


def test_a_lease_without_end_and_odd_values():
    env = {**HUB, "OPU_BACKEND": "hardware", "OPU_LEASE_STATUS": "held", "OPU_LEASE_HOLDER": "bo",
           "OPU_LEASE_DEVICE": "/dev/opu1", "OPU_LEASE_EXPIRES": "never",
           "OPU_LEASE_WARNING_SECONDS": "nan"}
    status = status_from_env(env, NOW)
    assert status["lease"]["expires"] is None and status["lease"]["seconds_left"] is None
    assert status["lease"]["warning_seconds"] is None
    assert label(status) == "OPU: hardware /dev/opu1 · bo"
    assert parse_iso("yesterday") is None and parse_iso("") is None
    assert status_from_env({**HUB, "OPU_BACKEND": "quantum"}, NOW)["backend"] == "auto"


def test_a_shared_opu_server_and_its_reserved_window():
    env = {**HUB, "OPU_PROFILE": "shared", "OPU_BACKEND": "shared", "OPU_LEASE_STATUS": "none",
           "OPU_BROKER_URL": "tcp://127.0.0.1:5599"}
    status = status_from_env(env, NOW)
    assert status["backend"] == "shared" and status["lease"] is None
    assert label(status) == "OPU: shared"
    reserved = status_from_env({**env, "OPU_LEASE_STATUS": "held", "OPU_LEASE_HOLDER": "alice",
                                "OPU_LEASE_DEVICE": "simulated",
                                "OPU_LEASE_EXPIRES": "2026-11-29T12:12:05Z"}, NOW)
    assert reserved["lease"]["device"] == "simulated" and reserved["device"] is None
    assert label(reserved) == "OPU: shared · reserved · 12:05 left"


def test_a_server_started_by_hand_says_auto():
    status = status_from_env({}, NOW)
    assert not status["on_hub"] and status["backend"] == "auto" and label(status) == "OPU: auto"


def test_format_left():
    assert [format_left(s) for s in (-3, 0, 42, 725, 3723)] == ["0:00", "0:00", "0:42", "12:05",
                                                               "1:02:03"]


def test_install_puts_the_extension_the_server_extension_and_the_news_setting(tmp_path):
    done = install.install(tmp_path)
    ext = done["labextension"]
    assert json.loads((ext / "package.json").read_text())["name"] == "opuhub-lab"
    assert list((ext / "static").glob("remoteEntry.*.js"))
    server = json.loads(done["server_config"].read_text())
    assert server["ServerApp"]["jpserver_extensions"] == {"opuhub_lab": True}
    news = json.loads(done["lab_overrides"].read_text())["@jupyterlab/apputils-extension:notification"]
    assert news == {"fetchNews": "false", "checkForUpdates": False}
    # again: replaced, not merged with an older build
    (ext / "static" / "remoteEntry.old.js").write_text("")
    install.install(tmp_path)
    assert not (ext / "static" / "remoteEntry.old.js").exists()


def test_install_refuses_without_a_build(tmp_path):
    empty = tmp_path / "nothing-built"
    empty.mkdir()
    try:
        install.install(tmp_path / "prefix", source=empty)
    except FileNotFoundError as e:
        assert "labextension/build" in str(e)
    else:
        raise AssertionError("installed an extension that was never built")


def test_the_committed_build_matches_its_sources():
    """src/, style/ or the npm manifests changed without `labextension/build`: rebuild and
    commit opuhub_lab/labextension."""
    assert buildstamp.stale() == [], "run labextension/build and commit the result"
    result = subprocess.run([sys.executable, "-m", "opuhub_lab.buildstamp"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout


def test_a_changed_source_is_noticed(tmp_path):
    root = tmp_path / "src-copy"
    (root / "src").mkdir(parents=True)
    (root / "src" / "index.js").write_text("export default {};\n")
    stamp = tmp_path / "stamp.json"
    stamp.write_text(json.dumps({"sources": buildstamp.source_sums(root)}))
    assert buildstamp.stale(root, stamp) == []
    (root / "src" / "index.js").write_text("export default {id: 'changed'};\n")
    assert buildstamp.stale(root, stamp) == ["src/index.js"]
