"""OPUHUB_* settings, spawner auto-choice and the generated JupyterHub config."""

from pathlib import Path

import pytest
from traitlets.config import Config

from opuhub import hubconfig, secrets
from opuhub.settings import SettingsError, settings_from_env
from opuhub.spawner_choice import DOCKER, LOCAL, DockerProbe, choose_spawner


def test_defaults_and_overrides(tmp_path):
    s = settings_from_env({"OPUHUB_STATE_DIR": str(tmp_path)})
    assert s.bind_url == "http://127.0.0.1:8000" and s.devices is None and s.spawner == "auto"
    s = settings_from_env({
        "OPUHUB_STATE_DIR": str(tmp_path), "OPUHUB_DEVICES": "/dev/opu0, /dev/opu1",
        "OPUHUB_QUOTA_SECONDS": "3600", "OPUHUB_ALLOW_ALL": "yes", "OPUHUB_PIDS_LIMIT": "64",
        "OPUHUB_ADMINS": "ann,ben",
    })
    assert s.devices == ["/dev/opu0", "/dev/opu1"] and s.quota_seconds == 3600.0
    assert s.allow_all is True and s.pids_limit == 64 and s.admins == ["ann", "ben"]
    assert s.state_dir == Path(tmp_path).resolve()


@pytest.mark.parametrize(
    "var, value, message",
    [
        ("OPUHUB_SPAWNER", "kubernetes", "OPUHUB_SPAWNER must be one of"),
        ("OPUHUB_QUOTA_SECONDS", "an hour", "OPUHUB_QUOTA_SECONDS must be a number"),
        ("OPUHUB_LEASE_MAX_SECONDS", "-1", "OPUHUB_LEASE_MAX_SECONDS must be >= 0"),
        ("OPUHUB_ALLOW_ALL", "maybe", "OPUHUB_ALLOW_ALL must be true or false"),
        ("OPUHUB_BIND_URL", "127.0.0.1", "OPUHUB_BIND_URL must look like"),
        ("OPUHUB_TIMEZONE", "Mars/Olympus", "unknown time zone"),
        ("OPUHUB_USER_PASSWORD", "short", "at least 8"),
    ],
)
def test_bad_values_name_the_variable(var, value, message):
    with pytest.raises(SettingsError, match=message):
        settings_from_env({var: value})


def test_spawner_choice_with_reasons():
    assert choose_spawner("local", None).class_path == LOCAL
    assert choose_spawner("docker", None).class_path == DOCKER
    assert choose_spawner("local", None).multi_user  # asked for: every user, own account
    down = choose_spawner("auto", DockerProbe(False, "ConnectionError: no socket"))
    assert down.class_path == LOCAL and "no Docker engine reachable" in down.reason
    assert not down.multi_user and "admins only" in down.reason  # a fall-back serves admins
    # fail closed: an engine without the image stays Docker (spawns say `make images`)
    no_image = choose_spawner("auto", DockerProbe(True, "Docker engine 20.10", ("img:1",)))
    assert no_image.is_docker and "img:1" in no_image.reason and "make images" in no_image.reason
    up = choose_spawner("auto", DockerProbe(True, "Docker engine 20.10"))
    assert up.is_docker and "reachable" in up.reason


def test_generated_config(tmp_path):
    settings = settings_from_env({
        "OPUHUB_STATE_DIR": str(tmp_path / "state"), "OPUHUB_SPAWNER": "local",
        "OPUHUB_DEVICES": "/dev/opu0", "OPUHUB_ADMINS": "ann", "OPUHUB_AUTHENTICATOR": "shared",
    })
    c = Config()
    choice = hubconfig.configure(c, settings, chp="/bin/true")
    assert choice.class_path == LOCAL
    assert c.JupyterHub.cleanup_servers is False
    assert c.JupyterHub.db_url.startswith("sqlite:///") and c.JupyterHub.bind_url.endswith(":8000")
    assert c.JupyterHub.authenticator_class == "opuhub.workshop_auth.OPUSharedPasswordAuthenticator"
    assert c.Authenticator.admin_users == {"ann"}
    assert c.OPUSpawnerMixin.devices == ["/dev/opu0"]
    assert "--MappingKernelManager.cull_connected=True" in c.Spawner.args
    # secrets: generated once, 0600, in a 0700 state directory, reused later
    state = tmp_path / "state"
    assert (state.stat().st_mode & 0o777) == 0o700
    for name in (secrets.PROXY_TOKEN, secrets.WORKSHOP_PASSWORD, secrets.ADMIN_PASSWORD,
                 secrets.CLI_TOKEN):
        assert ((state / name).stat().st_mode & 0o777) == 0o600
    assert len(c.SharedPasswordAuthenticator.admin_password) >= 32
    assert c.SharedPasswordAuthenticator.user_password == (state / "workshop-password").read_text().strip()
    again = Config()
    hubconfig.configure(again, settings, chp="/bin/true")
    assert again.ConfigurableHTTPProxy.auth_token == c.ConfigurableHTTPProxy.auth_token
    # services: each with its own role and only the scopes it needs
    roles = {role["name"]: role for role in c.JupyterHub.load_roles}
    assert roles["idle-culler"]["scopes"] == [
        "list:users", "read:users:activity", "read:servers", "delete:servers"]
    assert roles["opu-lease-service"]["scopes"] == ["list:users", "read:servers", "delete:servers"]
    assert "admin:users" not in roles["opu-lease-service"]["scopes"]
    services = {svc["name"]: svc for svc in c.JupyterHub.services}
    assert services["opu-lease"]["environment"]["OPUHUB_DEVICES"] == "/dev/opu0"
    assert "--timeout=3600" in services["idle-culler"]["command"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning:nativeauthenticator")
def test_native_authenticator_config(tmp_path):
    settings = settings_from_env({
        "OPUHUB_STATE_DIR": str(tmp_path), "OPUHUB_SPAWNER": "local",
        "OPUHUB_AUTHENTICATOR": "native", "OPUHUB_CULL_IDLE_SECONDS": "0",
    })
    c = Config()
    hubconfig.configure(c, settings, chp="/bin/true")
    assert c.JupyterHub.authenticator_class == "opuhub.native_auth.OPUNativeAuthenticator"
    assert c.NativeAuthenticator.open_signup is False
    assert "idle-culler" not in {svc["name"] for svc in c.JupyterHub.services}
