"""Turn :class:`~opuhub.settings.Settings` into JupyterHub traitlets config.

Called from ``hub/jupyterhub_config.py``. Everything here is config, not behaviour: the hub,
the proxy, the authenticator, the spawner and the two hub-managed services (the OPU lease
service and jupyterhub-idle-culler), each service with a role holding only the scopes it uses.
"""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path

from . import password_store, secrets, spawner_kind, usernames
from .profiles import HARDWARE, SIMULATOR
from .proxy import ensure_chp
from .settings import Settings
from .spawner_choice import SpawnerChoice, choose_spawner, probe_docker

LEASE_SERVICE = "opu-lease"
CULLER_SERVICE = "idle-culler"
CLI_SERVICE = "opuhub-cli"

# what each service may do, and nothing more
LEASE_SERVICE_SCOPES = ["list:users", "read:servers", "delete:servers"]
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
# the command-line token (state/cli-token, 0600) manages workshop accounts and servers
CLI_SCOPES = [
    "admin:users",
    "admin:servers",
    "tokens",
    "read:metrics",
    "read:hub",  # which authenticator runs: opuhub.accounts issues passwords for "workshop"
    "access:servers",
    f"access:services!service={LEASE_SERVICE}",
]


def _log(message: str) -> None:
    # the hub's logging is not set up yet while its config file runs
    print(f"[opuhub] {message}", file=sys.stderr, flush=True)


def lease_db_path(settings: Settings) -> Path:
    return settings.state_dir / "opu_leases.sqlite"


def singleuser_args(settings: Settings, default_kernel: str | None) -> list[str]:
    """Arguments for jupyterhub-singleuser: server-side kernel culling, so an open browser
    tab does not keep an idle kernel (and the server) alive."""
    args = []
    if settings.kernel_cull_idle_seconds > 0:
        timeout = int(settings.kernel_cull_idle_seconds)
        args += [
            f"--MappingKernelManager.cull_idle_timeout={timeout}",
            f"--MappingKernelManager.cull_interval={max(1, min(300, timeout // 2))}",
            "--MappingKernelManager.cull_connected=True",
            "--MappingKernelManager.cull_busy=False",
        ]
    if default_kernel:
        args.append(f"--MappingKernelManager.default_kernel_name={default_kernel}")
    return args


def local_default_kernel() -> str | None:
    """'opu' when the OPU kernel is installed in this environment."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        return "opu" if "opu" in KernelSpecManager().find_kernel_specs() else None
    except Exception:
        return None


def device_list(settings: Settings) -> list[str]:
    """OPUHUB_DEVICES, or every /dev/opu* node now; the spawner and the service share it."""
    if settings.devices is not None:
        return settings.devices
    return sorted(glob.glob("/dev/opu*"))


def services(settings: Settings, hub_pid: int | None = None) -> list[dict]:
    """The hub-managed services. Each runs through :mod:`opuhub.lifeline`, bound to the hub
    process (``hub_pid``, default: this one, since the config file runs inside the hub): a
    hub killed with SIGKILL takes them along, so a restart never finds them still running.
    ``OPUHUB_STATE_DIR`` in their environment tells a later start which hub they served."""
    from .lifeline import lifeline_command

    marker = {"OPUHUB_STATE_DIR": str(settings.state_dir)}
    lease_env = {
        **marker,
        "OPUHUB_DEVICES": ",".join(device_list(settings)),
        "OPUHUB_LEASE_GRACE_SECONDS": str(settings.lease_grace_seconds),
        "OPUHUB_LEASE_DB": str(lease_db_path(settings)),
        "OPUHUB_LEASE_WARNING_SECONDS": str(settings.lease_warning_seconds),
        "OPUHUB_LEASE_CHECK_INTERVAL": str(settings.lease_check_interval),
        "OPUHUB_TIMEZONE": settings.timezone,
        "OPUHUB_METRICS_PUBLIC": "1" if settings.metrics_public else "0",
    }
    result = [
        {
            "name": LEASE_SERVICE,
            "url": f"http://127.0.0.1:{settings.lease_service_port}",
            "command": lifeline_command([sys.executable, "-m", "opuhub.service"], hub_pid),
            "environment": lease_env,
            "oauth_no_confirm": True,
            "display": True,
        },
        {"name": CLI_SERVICE, "api_token": secrets.read_or_create(
            settings.state_dir / secrets.CLI_TOKEN, secrets.token)},
    ]
    if settings.cull_idle_seconds > 0:
        result.append(
            {
                "name": CULLER_SERVICE,
                "command": lifeline_command(
                    [
                        sys.executable,
                        "-m",
                        "jupyterhub_idle_culler",
                        f"--timeout={int(settings.cull_idle_seconds)}",
                        f"--cull-every={max(1, int(settings.cull_every_seconds))}",
                    ],
                    hub_pid,
                ),
                "environment": marker,
            }
        )
    return result


def roles(settings: Settings) -> list[dict]:
    result = [
        # every user may read the lease API (their own usage, who holds the OPU)
        {"name": "user", "scopes": ["self", f"access:services!service={LEASE_SERVICE}"]},
        {"name": "opu-lease-service", "scopes": LEASE_SERVICE_SCOPES, "services": [LEASE_SERVICE]},
        {"name": "opuhub-cli", "scopes": CLI_SCOPES, "services": [CLI_SERVICE]},
    ]
    if settings.cull_idle_seconds > 0:
        result.append({"name": "idle-culler", "scopes": CULLER_SCOPES, "services": [CULLER_SERVICE]})
    return result


def configure_auth(c, settings: Settings, state_secrets: dict) -> None:
    """Every authenticator accepts only the names of opuhub.usernames; admins log in with
    state/admin-password."""
    c.Authenticator.admin_users = set(settings.admins)
    c.Authenticator.username_pattern = usernames.PATTERN
    admin_password = state_secrets[secrets.ADMIN_PASSWORD]
    if settings.authenticator == "workshop":
        # a password per account (python -m opuhub.accounts create), stored hashed
        c.JupyterHub.authenticator_class = "opuhub.workshop_auth.WorkshopAuthenticator"
        c.WorkshopAuthenticator.password_db = str(settings.state_dir / password_store.FILE_NAME)
        c.WorkshopAuthenticator.admin_password = admin_password
        c.Authenticator.allow_existing_users = True  # accounts deleted in the hub lose access
        c.Authenticator.allow_all = False
    elif settings.authenticator == "shared":
        # opt-in for closed rooms: whoever has the password may log in as any workshop account
        c.JupyterHub.authenticator_class = "opuhub.workshop_auth.OPUSharedPasswordAuthenticator"
        c.SharedPasswordAuthenticator.user_password = (
            settings.user_password or state_secrets[secrets.WORKSHOP_PASSWORD]
        )
        c.SharedPasswordAuthenticator.admin_password = admin_password
        # workshop accounts are created in bulk (python -m opuhub.accounts); only they log in,
        # unless OPUHUB_ALLOW_ALL lets anyone with the password pick a name
        c.Authenticator.allow_existing_users = True
        c.Authenticator.allow_all = settings.allow_all
    else:
        import nativeauthenticator

        c.JupyterHub.authenticator_class = "opuhub.native_auth.OPUNativeAuthenticator"
        c.JupyterHub.template_paths = [
            str(Path(nativeauthenticator.__file__).parent / "templates")
        ]
        c.OPUNativeAuthenticator.admin_password = admin_password
        c.NativeAuthenticator.open_signup = False  # sign-up, then an admin approves
        c.NativeAuthenticator.minimum_password_length = 10
        c.NativeAuthenticator.check_common_password = True
        c.Authenticator.allow_all = True  # approval is NativeAuthenticator's allow-list


def configure_branding(c, settings: Settings) -> None:
    """The platform's name, logo and introduction on the hub's pages (opuhub.branding): our
    templates go before any the authenticator brought (NativeAuthenticator's)."""
    from . import branding

    existing = c.JupyterHub.template_paths if "template_paths" in c.JupyterHub else []
    c.JupyterHub.template_paths = branding.template_paths(list(existing))
    c.JupyterHub.template_vars = branding.template_vars(len(device_list(settings)))
    c.JupyterHub.logo_file = str(branding.LOGO_FILE)


def configure_spawner(c, settings: Settings, choice: SpawnerChoice) -> None:
    c.JupyterHub.spawner_class = choice.class_path
    c.Spawner.start_timeout = int(settings.start_timeout)
    c.Spawner.http_timeout = int(settings.http_timeout)
    c.Spawner.poll_interval = int(max(1, settings.poll_interval))
    lease = c.OPUSpawnerMixin
    lease.devices = device_list(settings)
    lease.lease_db = str(lease_db_path(settings))
    lease.lease_max_duration = settings.lease_max_seconds
    lease.lease_warning = settings.lease_warning_seconds
    lease.lease_quota = settings.quota_seconds
    lease.lease_quota_period = settings.quota_period_seconds
    lease.lease_timezone = settings.timezone
    lease.default_n_components = settings.n_components
    lease.simulator_max_n_components = settings.simulator_max_n_components
    lease.simulator_max_work = settings.simulator_max_work
    lease.start_concurrency = settings.start_concurrency  # a burst waits in line (admission)
    if choice.is_docker:
        c.Spawner.args = singleuser_args(settings, "opu")
        docker = c.OPUDockerSpawner
        docker.images = {
            SIMULATOR: settings.image,
            HARDWARE: settings.hardware_image or settings.image,
        }
        docker.network_name = settings.docker_network
        docker.mem_limit = settings.mem_limit
        docker.cpu_limit = settings.cpu_limit
        docker.pids_limit = settings.pids_limit
        docker.homes_dir = str(settings.homes_dir)
        docker.home_quota = settings.home_quota
        from .docker_homes import startup_line

        _log(startup_line(settings.home_quota, settings.homes_dir))  # size-limited or not
    else:
        c.Spawner.args = singleuser_args(settings, local_default_kernel())
        local = c.OPULocalSpawner
        local.homes_dir = str(settings.homes_dir)
        local.multi_user = choice.multi_user
        local.home_quota = settings.home_quota
        local.mem_limit_local = settings.mem_limit
        local.cpu_limit_local = settings.cpu_limit
        local.pids_limit_local = settings.pids_limit
        local.hidden_paths = [str(settings.state_dir)]


def configure_user_origins(c, settings: Settings) -> str:
    """Where users' servers live in the browser's eyes; returns the line the hub logs.

    On the hub's origin (the default), a page a user's server serves runs with the hub's
    cookies: a script on it could read the hub's pages of whoever opens it and act as them.
    OPUHUB_SUBDOMAIN_HOST puts each server on ``<name>.<host>``, another origin, so the
    browser keeps the hub's pages and login cookie from it."""
    if not settings.subdomain_host:
        return ("user servers: on the hub's origin (/user/<name>/); for strangers set "
                "OPUHUB_SUBDOMAIN_HOST (an origin per user)")
    c.JupyterHub.subdomain_host = settings.subdomain_host
    scheme, host = settings.subdomain_host.split("://", 1)
    return f"user servers: each on an origin of its own, {scheme}://<name>.{host}"


def docker_gateway(network: str) -> str:
    """Create the user network if needed; return its gateway (the host as containers see it)."""
    import docker

    client = docker.from_env(timeout=10)
    try:
        try:
            net = client.networks.get(network)
        except docker.errors.NotFound:
            _log(f"creating Docker network {network}")
            net = client.networks.create(network, driver="bridge")
            net.reload()
        return net.attrs["IPAM"]["Config"][0]["Gateway"]
    finally:
        client.close()


def configure(c, settings: Settings, chp: str | None = None) -> SpawnerChoice:
    state = secrets.ensure_state_dir(settings.state_dir)
    state_secrets = secrets.ensure_secrets(state)

    images = [settings.image, settings.hardware_image or settings.image]
    probe = probe_docker(images) if settings.spawner == "auto" else None
    choice = choose_spawner(settings.spawner, probe)
    _log(f"spawner: {choice.reason}")
    spawner_kind.enforce(settings, choice)  # a kind change must not hide users' files

    hub_bind_url = settings.hub_bind_url or "http://127.0.0.1:8081"
    if choice.is_docker and settings.docker_network != "host" and not settings.hub_bind_url:
        # containers on the user network reach the hub at the network's gateway address
        hub_bind_url = f"http://{docker_gateway(settings.docker_network)}:{settings.hub_port}"

    c.JupyterHub.bind_url = settings.bind_url
    c.JupyterHub.hub_bind_url = hub_bind_url
    if settings.hub_connect_url:  # e.g. the hub's container name on the user network
        c.JupyterHub.hub_connect_url = settings.hub_connect_url
    db_file = state / "jupyterhub.sqlite"
    if not db_file.exists():  # SQLite would create it world-readable (token hashes, state)
        os.close(os.open(db_file, os.O_WRONLY | os.O_CREAT, 0o600))
    c.JupyterHub.db_url = f"sqlite:///{db_file}"
    c.JupyterHub.cookie_secret_file = str(state / secrets.COOKIE_SECRET)
    c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
    c.JupyterHub.log_level = settings.log_level
    # a hub restart (upgrade, crash) must not kill running notebooks; leases are reconciled
    c.JupyterHub.cleanup_servers = False
    c.JupyterHub.concurrent_spawn_limit = settings.concurrent_spawn_limit
    c.JupyterHub.last_activity_interval = int(max(1, settings.last_activity_interval))
    c.JupyterHub.authenticate_prometheus = not settings.metrics_public

    c.ConfigurableHTTPProxy.command = [chp or ensure_chp(quiet=True)]
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings.proxy_api_port}"
    c.ConfigurableHTTPProxy.auth_token = state_secrets[secrets.PROXY_TOKEN]
    c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")

    configure_auth(c, settings, state_secrets)
    configure_branding(c, settings)
    configure_spawner(c, settings, choice)
    _log(configure_user_origins(c, settings))
    c.JupyterHub.services = services(settings)
    c.JupyterHub.load_roles = roles(settings)
    if settings.cull_idle_seconds and settings.cull_idle_seconds < settings.last_activity_interval + 30:
        _log(
            "warning: the idle-culler timeout is shorter than last_activity_interval + 30 s; "
            "active servers may be culled before their activity reaches the hub"
        )
    os.environ.setdefault("OPUHUB_STATE_DIR", str(state))

    # --- request size limits: JupyterHub has no setting for them; the HTTPServer it builds
    # after loading this config refuses oversized bodies (413) before reading them
    from . import limits

    limits.install(limits.limits_from_settings(settings))
    # API tokens users request: a short note, a bounded number, a bounded lifetime
    from . import token_limits

    token_limits.install(token_limits.TokenLimits(max_tokens=settings.max_tokens_per_user))
    c.JupyterHub.token_expires_in_max_seconds = int(settings.token_max_seconds)
    # ---
    return choice
