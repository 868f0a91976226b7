"""opuhub.hubconfig.configure: settings and host facts in, traitlets config out, nothing else."""

import os

import pytest
from traitlets.config import Config

from opuhub import hubconfig, scopes, secrets
from opuhub.host import HostFacts
from opuhub.settings import settings_from_env
from opuhub.spawner_choice import DOCKER, LOCAL, SpawnerChoice

SECRETS = {secrets.PROXY_TOKEN: "p" * 64, secrets.WORKSHOP_PASSWORD: "word-word-word-word",
           secrets.ADMIN_PASSWORD: "a" * 39, secrets.CLI_TOKEN: "c" * 64}


def facts(kind=LOCAL, devices=("/dev/opu0",), **extra) -> HostFacts:
    return HostFacts(secrets=dict(SECRETS), choice=SpawnerChoice(kind, f"{kind} for the test"),
                     chp="/usr/bin/chp", devices=list(devices),
                     hub_bind_url=extra.pop("hub_bind_url", "http://127.0.0.1:8081"), **extra)


def snapshot(root):
    return sorted(str(p) for p in root.rglob("*"))


def test_configure_writes_config_and_nothing_else(tmp_path):
    settings = settings_from_env({"OPUHUB_STATE_DIR": str(tmp_path / "state"),
                                  "OPUHUB_SPAWNER": "local", "OPUHUB_ADMINS": "ann"})
    before, environ = snapshot(tmp_path), dict(os.environ)
    c = Config()
    lines = hubconfig.configure(c, settings, facts())
    assert snapshot(tmp_path) == before == []  # no state dir, secret or database made
    assert dict(os.environ) == environ
    assert lines[0] == "spawner: opuhub.local_spawner.OPULocalSpawner for the test"
    assert c.ConfigurableHTTPProxy.command == ["/usr/bin/chp"]
    assert c.ConfigurableHTTPProxy.auth_token == SECRETS[secrets.PROXY_TOKEN]
    assert c.JupyterHub.db_url == f"sqlite:///{tmp_path.resolve()}/state/jupyterhub.sqlite"
    assert c.JupyterHub.cleanup_servers is False
    assert c.JupyterHub.authenticator_class == "opuhub.workshop_auth.WorkshopAuthenticator"
    assert c.Authenticator.admin_users == {"ann"}
    assert c.OPUSpawnerMixin.devices == ["/dev/opu0"]
    assert c.OPUSpawnerMixin.lease_db == f"{tmp_path.resolve()}/state/opu_leases.sqlite"
    assert c.OPULocalSpawner.hidden_paths == [str(tmp_path.resolve() / "state")]
    with_files = Config()
    hubconfig.configure(with_files, settings, facts(config_files=[settings.config_dir / "a.py"]))
    assert with_files.OPULocalSpawner.hidden_paths == [str(tmp_path.resolve() / "state"),
                                                       str(settings.config_dir)]
    assert "--MappingKernelManager.cull_connected=True" in c.Spawner.args
    assert "--MappingKernelManager.default_kernel_name=opu" in c.Spawner.args


def test_same_input_same_config(tmp_path):
    settings = settings_from_env({"OPUHUB_STATE_DIR": str(tmp_path), "OPUHUB_SPAWNER": "local"})
    first, second = Config(), Config()
    hubconfig.configure(first, settings, facts())
    hubconfig.configure(second, settings, facts())
    assert first == second


def test_docker_config_from_host_facts(tmp_path):
    settings = settings_from_env({"OPUHUB_STATE_DIR": str(tmp_path), "OPUHUB_SPAWNER": "docker",
                                  "OPUHUB_IMAGE": "img:1", "OPUHUB_MEM_LIMIT": "1G"})
    c = Config()
    lines = hubconfig.configure(c, settings, facts(DOCKER, hub_bind_url="http://172.30.0.1:8081"))
    assert c.JupyterHub.spawner_class == DOCKER
    assert c.JupyterHub.hub_bind_url == "http://172.30.0.1:8081"
    assert c.OPUDockerSpawner.images == {"simulator": "img:1", "hardware": "img:1"}
    assert c.OPUDockerSpawner.mem_limit == "1G"
    assert any(line.startswith("homes:") for line in lines)


@pytest.mark.filterwarnings("ignore::DeprecationWarning:nativeauthenticator")
def test_native_authenticator_and_no_culler(tmp_path):
    settings = settings_from_env({
        "OPUHUB_STATE_DIR": str(tmp_path), "OPUHUB_AUTHENTICATOR": "native",
        "OPUHUB_CULL_IDLE_SECONDS": "0",
    })
    c = Config()
    hubconfig.configure(c, settings, facts())
    assert c.JupyterHub.authenticator_class == "opuhub.native_auth.OPUNativeAuthenticator"
    assert c.NativeAuthenticator.open_signup is False
    assert "idle-culler" not in {svc["name"] for svc in c.JupyterHub.services}
    assert "idle-culler" not in {role["name"] for role in c.JupyterHub.load_roles}


def test_services_roles_and_scopes(tmp_path):
    settings = settings_from_env({
        "OPUHUB_STATE_DIR": str(tmp_path), "OPUHUB_LEASE_TUTORS": "tim", "OPUHUB_ADMINS": "admin",
        "OPUHUB_LEASE_GRACE_SECONDS": "45", "OPUHUB_AUTHENTICATOR": "shared",
    })
    c = Config()
    hubconfig.configure(c, settings, facts(devices=["/dev/opu0", "/dev/opu1"]))
    assert c.SharedPasswordAuthenticator.user_password == SECRETS[secrets.WORKSHOP_PASSWORD]
    roles = {role["name"]: role for role in c.JupyterHub.load_roles}
    # each service: its own role, only the scopes it needs
    assert roles["idle-culler"]["scopes"] == [
        "list:users", "read:users:activity", "read:servers", "delete:servers"]
    assert roles["opu-lease-service"]["scopes"] == ["list:users", "read:servers", "delete:servers"]
    # lease permissions are custom scopes: admins and tutors hold them, users do not
    assert set(c.JupyterHub.custom_scopes) == {scopes.REVOKE, scopes.READ_USAGE}
    assert "admin" not in roles  # JupyterHub's own, which cannot be extended
    assert roles["opu-tutor"]["scopes"] == [scopes.REVOKE, scopes.READ_USAGE]
    assert roles["opu-tutor"]["users"] == ["admin", "tim"]
    assert scopes.REVOKE not in roles["user"]["scopes"]
    services = {svc["name"]: svc for svc in c.JupyterHub.services}
    env = services["opu-lease"]["environment"]
    assert env["OPUHUB_DEVICES"] == "/dev/opu0,/dev/opu1"
    assert env["OPUHUB_LEASE_GRACE_SECONDS"] == "45.0"
    assert env["OPUHUB_STATE_DIR"] == str(tmp_path.resolve())
    assert services["opuhub-cli"]["api_token"] == SECRETS[secrets.CLI_TOKEN]
    assert "--timeout=3600" in services["idle-culler"]["command"]
