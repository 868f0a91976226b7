"""opuhub.host: the I/O behind the config, done once, idempotent, and safe with deployer files."""

import os
import pwd
import subprocess
import sys

import pytest

from opuhub import host, secrets
from opuhub.settings import settings_from_env
from opuhub.spawner_choice import LOCAL


def local_settings(tmp_path, **extra):
    return settings_from_env({"OPUHUB_STATE_DIR": str(tmp_path / "state"),
                              "OPUHUB_SPAWNER": "local", **extra})


def test_prepare_host_makes_state_and_secrets_once(tmp_path):
    settings = local_settings(tmp_path, OPUHUB_DEVICES="/dev/opu0")
    facts = host.prepare_host(settings, chp="/bin/true")
    state = tmp_path / "state"
    assert (state.stat().st_mode & 0o777) == 0o700
    for name in (secrets.PROXY_TOKEN, secrets.WORKSHOP_PASSWORD, secrets.ADMIN_PASSWORD,
                 secrets.CLI_TOKEN, host.HUB_DB):
        assert ((state / name).stat().st_mode & 0o777) == 0o600, name
    assert facts.choice.class_path == LOCAL and facts.devices == ["/dev/opu0"]
    assert facts.hub_bind_url == "http://127.0.0.1:8081" and facts.chp == "/bin/true"
    assert facts.secrets[secrets.CLI_TOKEN] == (state / secrets.CLI_TOKEN).read_text().strip()
    assert set(facts.created) == {str(state), str(state / host.HUB_DB),
                                  *(str(state / name) for name in secrets.NAMES)}
    again = host.prepare_host(settings, chp="/bin/true")
    assert again.secrets == facts.secrets  # reused, never regenerated
    assert again.created == []  # nothing to do the second time (Ansible: "ok", not "changed")


def test_devices_unset_means_the_nodes_present(tmp_path, monkeypatch):
    monkeypatch.setattr(host, "detect_devices", lambda: ["/dev/opu3"])
    assert host.prepare_host(local_settings(tmp_path), chp="/bin/true").devices == ["/dev/opu3"]
    none = host.prepare_host(local_settings(tmp_path, OPUHUB_DEVICES=""), chp="/bin/true")
    assert none.devices == []


def test_deployer_config_files_load_in_name_order(tmp_path):
    folder = tmp_path / "jupyterhub_config.d"
    folder.mkdir()
    for name in ("20-b.py", "10-a.py", "notes.txt"):
        (folder / name).write_text("c.JupyterHub.log_level = 'DEBUG'\n")
    os.chmod(folder, 0o755)
    facts = host.prepare_host(local_settings(tmp_path), chp="/bin/true")
    assert [p.name for p in facts.config_files] == ["10-a.py", "20-b.py"]


@pytest.mark.parametrize("target", ["file", "folder"])
def test_deployer_config_writable_by_others_is_refused(tmp_path, target):
    folder = tmp_path / "jupyterhub_config.d"
    folder.mkdir()
    (folder / "10-x.py").write_text("")
    os.chmod(folder / "10-x.py" if target == "file" else folder, 0o777)
    with pytest.raises(host.UnsafeConfigFile, match="writable by group or others"):
        host.prepare_host(local_settings(tmp_path), chp="/bin/true")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_deployer_config_of_another_user_is_refused(tmp_path):
    folder = tmp_path / "jupyterhub_config.d"
    folder.mkdir()
    (folder / "10-x.py").write_text("")
    os.chown(folder / "10-x.py", pwd.getpwnam("nobody").pw_uid, -1)
    with pytest.raises(host.UnsafeConfigFile, match="belongs to uid"):
        host.prepare_host(local_settings(tmp_path), chp="/bin/true")


def test_command_line_prepares_and_reports(tmp_path):
    env = {**os.environ, "OPUHUB_STATE_DIR": str(tmp_path / "state"),
           "OPUHUB_SPAWNER": "local", "OPUHUB_DEVICES": ""}
    done = subprocess.run([sys.executable, "-m", "opuhub.host"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "devices: none (simulator only)" in done.stdout and "created: " in done.stdout
    assert (tmp_path / "state" / secrets.ADMIN_PASSWORD).is_file()
    bad = subprocess.run([sys.executable, "-m", "opuhub.host"],
                         env={**env, "OPUHUB_SPAWNER": "kubernetes"}, capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "OPUHUB_SPAWNER must be one of" in bad.stderr
