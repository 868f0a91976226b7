"""Turn :class:`~opuhub.settings.Settings` into JupyterHub traitlets config: settings in, config out.

``configure(c, settings, host)`` only writes config into ``c``; what it needs to know about the
machine (secrets, the spawner that runs, the proxy's path, device nodes) comes in ``host``, made
by :func:`opuhub.host.prepare_host`, which does all the I/O. It sets up the hub, the proxy, the
authenticator, the spawner and the two hub-managed services (the OPU lease service and
jupyterhub-idle-culler), each service with a role holding only the scopes it uses.
"""

from __future__ import annotations

import sys
from pathlib import Path

from . import password_store, scopes, secrets, usernames
from .host import HostFacts, hub_db_path, lease_db_path
from .profiles import HARDWARE, SIMULATOR
from .settings import Settings, settings_env
from .spawner_choice import SpawnerChoice

LEASE_SERVICE = "opu-lease"
CULLER_SERVICE = "idle-culler"
CLI_SERVICE = "opuhub-cli"

TUTOR_ROLE = "opu-tutor"

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
    scopes.REVOKE,  # the operator's tool: the lease service's admin actions too
    scopes.READ_USAGE,
]


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


# what the lease service reads from the same OPUHUB_* variables as the hub (opuhub.settings)
LEASE_SERVICE_SETTINGS = ("state_dir", "devices", "lease_warning_seconds", "lease_grace_seconds",
                          "lease_check_interval", "timezone", "metrics_public", "shared_opu")


def services(settings: Settings, host: HostFacts, hub_pid: int | None = None) -> list[dict]:
    """The hub-managed services. Each runs through :mod:`opuhub.lifeline`, bound to the hub
    process (``hub_pid``, default: this one, since the config file runs inside the hub): a
    hub killed with SIGKILL takes them along, so a restart never finds them still running.
    ``OPUHUB_STATE_DIR`` in their environment tells a later start which hub they served."""
    from .lifeline import lifeline_command

    marker = {"OPUHUB_STATE_DIR": str(settings.state_dir)}
    lease_env = settings_env(settings, LEASE_SERVICE_SETTINGS)
    # the nodes found (not the pattern), and the shared OPU's device
    lease_env["OPUHUB_DEVICES"] = ",".join(leasable_devices(settings, host))
    result = [
        {
            "name": LEASE_SERVICE,
            "url": f"http://{lease_service_host(settings, host)}:{settings.lease_service_port}",
            "command": lifeline_command([sys.executable, "-m", "opuhub.service"], hub_pid),
            "environment": lease_env,
            "oauth_no_confirm": True,
            # a browser's token for the service carries these when its user holds them
            "oauth_client_allowed_scopes": [scopes.REVOKE, scopes.READ_USAGE, "read:metrics"],
            "display": True,
        },
        {"name": CLI_SERVICE, "api_token": host.secrets[secrets.CLI_TOKEN]},
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
    if settings.shared_opu:
        result.append(shared_opu_service(settings, host, hub_pid))
    return result


def shared_opu_service(settings: Settings, host: HostFacts, hub_pid: int | None) -> dict:
    """The shared OPU's broker (opuhub.shared_opu), listening where servers reach the hub, or
    with Docker in a container of its own on the users' network (opuhub.broker_container)."""
    from urllib.parse import urlparse

    from . import broker_container
    from .lifeline import lifeline_command
    from .shared_opu import SECRET_FILE, SIMULATED, broker_command, broker_service, leases_url

    device = "" if settings.shared_opu == SIMULATED else settings.shared_opu
    docker = host.choice.is_docker
    bind_ip = (broker_container.bind_ip(settings.docker_network) if docker
               else urlparse(host.hub_bind_url).hostname or "127.0.0.1")
    command = broker_command(bind_ip,
                             settings.shared_opu_port, device, settings.shared_opu_frame_us,
                             leases_url=leases_url(lease_service_base(settings, host)),
                             quota_seconds=settings.quota_seconds,
                             quota_period_seconds=settings.quota_period_seconds)
    if docker:
        command = broker_container.runner_command(
            command, image=broker_container.image_for(device, settings.image,
                                                      settings.hardware_image),
            network=settings.docker_network, device=device, state_dir=str(settings.state_dir),
            hub_api_url=f"{hub_url_for_servers(settings, host).rstrip('/')}/hub/api/")
    return broker_service(lifeline_command(command, hub_pid), host.secrets[SECRET_FILE],
                          {"OPUHUB_STATE_DIR": str(settings.state_dir)})


def hub_url_for_servers(settings: Settings, host: HostFacts) -> str:
    """Where users' servers (and the broker's container) reach the hub: ``HUB_CONNECT_URL``,
    else where the hub binds."""
    return settings.hub_connect_url or host.hub_bind_url


def lease_service_host(settings: Settings, host: HostFacts) -> str:
    """Where the lease service listens: the loopback, or, when the shared OPU's broker runs in
    a container of its own (Docker), also where containers reach the hub (``HUB_BIND_URL``'s
    host), so that the broker can read the leases. Every answer there needs a hub token, as
    through the proxy."""
    from urllib.parse import urlparse

    if settings.shared_opu and host.choice.is_docker:
        return urlparse(host.hub_bind_url).hostname or "127.0.0.1"
    return "127.0.0.1"


def lease_service_base(settings: Settings, host: HostFacts) -> str:
    """Where the broker reaches the lease service: beside it on the hub's machine, or from
    its container on the users' network (Docker), at the hub's address there."""
    from urllib.parse import urlparse

    if host.choice.is_docker:
        hub_host = urlparse(hub_url_for_servers(settings, host)).hostname
        return f"http://{hub_host}:{settings.lease_service_port}"
    return f"http://127.0.0.1:{settings.lease_service_port}"


def passthrough_devices(settings: Settings, host: HostFacts) -> list[str]:
    """The nodes found that a lease passes to its holder's server: all but one the shared
    OPU's broker owns."""
    return [d for d in host.devices if d != settings.shared_opu]


def leasable_devices(settings: Settings, host: HostFacts) -> list[str]:
    """What users may lease: the devices passed through, and the shared OPU (a lease on it is
    a window its broker reserves for the holder)."""
    shared = [settings.shared_opu] if settings.shared_opu else []
    return passthrough_devices(settings, host) + shared


def roles(settings: Settings) -> list[dict]:
    result = [
        # every user may read the lease API (their own usage, who holds the OPU)
        {"name": "user", "scopes": ["self", f"access:services!service={LEASE_SERVICE}"]},
        # the admins and tutors of the settings revoke leases and read usage (JupyterHub's admin
        # role cannot be extended; admins made later in the admin page may revoke through
        # their delete:servers, see opuhub.service). A deployer grants the scopes to a group
        # with a role of their own in jupyterhub_config.d.
        {"name": TUTOR_ROLE, "description": "Revoke OPU leases and read everyone's OPU usage.",
         "scopes": [scopes.REVOKE, scopes.READ_USAGE],
         "users": sorted(set(settings.admins) | set(settings.lease_tutors))},
        {"name": "opu-lease-service", "scopes": LEASE_SERVICE_SCOPES, "services": [LEASE_SERVICE]},
        {"name": "opuhub-cli", "scopes": CLI_SCOPES, "services": [CLI_SERVICE]},
    ]
    if settings.cull_idle_seconds > 0:
        result.append({"name": "idle-culler", "scopes": CULLER_SCOPES, "services": [CULLER_SERVICE]})
    if settings.shared_opu:
        from .shared_opu import BROKER_SCOPES, BROKER_SERVICE

        result.append({"name": BROKER_SERVICE, "scopes": BROKER_SCOPES,
                       "services": [BROKER_SERVICE]})
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


def configure_branding(c, devices: list[str]) -> None:
    """The platform's name, logo and introduction on the hub's pages (opuhub.branding): our
    templates go before any the authenticator brought (NativeAuthenticator's)."""
    from . import branding

    existing = c.JupyterHub.template_paths if "template_paths" in c.JupyterHub else []
    c.JupyterHub.template_paths = branding.template_paths(list(existing))
    c.JupyterHub.template_vars = branding.template_vars(len(devices))
    c.JupyterHub.logo_file = str(branding.LOGO_FILE)


def configure_spawner(c, settings: Settings, host: HostFacts) -> list[str]:
    """The spawner's config; returns the lines the hub logs about it."""
    choice: SpawnerChoice = host.choice
    c.JupyterHub.spawner_class = choice.class_path
    c.Spawner.start_timeout = int(settings.start_timeout)
    c.Spawner.http_timeout = int(settings.http_timeout)
    c.Spawner.poll_interval = int(max(1, settings.poll_interval))
    lease = c.OPUSpawnerMixin
    lease.devices = passthrough_devices(settings, host)
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
    if settings.shared_opu:
        from .shared_opu import SECRET_FILE, broker_url

        lease.shared_opu = settings.shared_opu
        lease.shared_opu_secret = host.secrets[SECRET_FILE]
        if choice.is_docker:  # its own container, by name on the users' network
            from .broker_container import broker_url as container_broker_url

            lease.shared_opu_url = container_broker_url(settings.docker_network,
                                                        settings.shared_opu_port)
        else:
            lease.shared_opu_url = broker_url(hub_url_for_servers(settings, host),
                                              settings.shared_opu_port)
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

        return [startup_line(settings.home_quota, settings.homes_dir)]  # size-limited or not
    c.Spawner.args = singleuser_args(settings, host.default_kernel)
    local = c.OPULocalSpawner
    local.homes_dir = str(settings.homes_dir)
    local.multi_user = choice.multi_user
    local.home_quota = settings.home_quota
    local.mem_limit_local = settings.mem_limit
    local.cpu_limit_local = settings.cpu_limit
    local.pids_limit_local = settings.pids_limit
    # deployer config may hold secrets too (client secrets, passwords): as hidden as the state
    local.hidden_paths = [str(settings.state_dir)] + (
        [str(settings.config_dir)] if host.config_files else [])
    return []


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


def configure(c, settings: Settings, host: HostFacts) -> list[str]:
    """Write the hub's config for ``settings`` on the machine ``host`` describes into ``c``.

    Pure: no file, process, network or environment is touched (``opuhub.host`` did that).
    Returns the lines the hub should log about its choices."""
    state, choice = settings.state_dir, host.choice
    lines = [f"spawner: {choice.reason}"]
    c.JupyterHub.bind_url = settings.bind_url
    c.JupyterHub.hub_bind_url = host.hub_bind_url
    if settings.hub_connect_url:  # e.g. the hub's container name on the user network
        c.JupyterHub.hub_connect_url = settings.hub_connect_url
    c.JupyterHub.db_url = f"sqlite:///{hub_db_path(settings)}"
    c.JupyterHub.cookie_secret_file = str(state / secrets.COOKIE_SECRET)
    c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
    c.JupyterHub.log_level = settings.log_level
    # a hub restart (upgrade, crash) must not kill running notebooks; leases are reconciled
    c.JupyterHub.cleanup_servers = False
    c.JupyterHub.concurrent_spawn_limit = settings.concurrent_spawn_limit
    c.JupyterHub.last_activity_interval = int(max(1, settings.last_activity_interval))
    c.JupyterHub.authenticate_prometheus = not settings.metrics_public
    # API tokens users request: bounded lifetime (their number: opuhub.token_limits)
    c.JupyterHub.token_expires_in_max_seconds = int(settings.token_max_seconds)

    c.ConfigurableHTTPProxy.command = [host.chp]
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings.proxy_api_port}"
    c.ConfigurableHTTPProxy.auth_token = host.secrets[secrets.PROXY_TOKEN]
    c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")

    configure_auth(c, settings, host.secrets)
    configure_branding(c, host.devices)
    lines += configure_spawner(c, settings, host)
    lines.append(configure_user_origins(c, settings))
    c.JupyterHub.custom_scopes = dict(scopes.CUSTOM_SCOPES)
    c.JupyterHub.services = services(settings, host)
    c.JupyterHub.load_roles = roles(settings)
    if settings.cull_idle_seconds and settings.cull_idle_seconds < settings.last_activity_interval + 30:
        lines.append(
            "warning: the idle-culler timeout is shorter than last_activity_interval + 30 s; "
            "active servers may be culled before their activity reaches the hub"
        )
    return lines


def install_hub_limits(settings: Settings) -> None:
    """Limits JupyterHub has no setting for, installed into this (the hub's) process: request
    bodies refused (413) before they are read, and a bounded number of API tokens per user."""
    from . import limits, token_limits

    limits.install(limits.limits_from_settings(settings))
    token_limits.install(token_limits.TokenLimits(max_tokens=settings.max_tokens_per_user))
