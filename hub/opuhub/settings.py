"""Platform settings from ``OPUHUB_*`` environment variables, validated with clear errors.

``jupyterhub_config.py`` stays thin: it calls :func:`settings_from_env` and
:func:`opuhub.hubconfig.configure`. Every setting has a production default; tests and small
deployments override them through the environment. Anything finer-grained is plain traitlets
config (``c.OPUSpawnerMixin.*``, ``c.OPUDockerSpawner.*``) after the ``configure`` call.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlparse


class SettingsError(ValueError):
    """A bad OPUHUB_* value; the message names the variable."""


SPAWNERS = ("auto", "docker", "local")
AUTHENTICATORS = ("workshop", "shared", "native")


@dataclass
class Settings:
    state_dir: Path = Path("state")
    homes_dir: Path | None = None  # local homes; None → "homes" beside the state directory
    home_quota: str = "2G"  # size limit of each local home (0 = none)
    bind_url: str = "http://127.0.0.1:8000"
    hub_bind_url: str = ""  # "" → http://127.0.0.1:8081, or the Docker network's gateway
    hub_connect_url: str = ""  # how user servers reach the hub, when not at hub_bind_url
    # "" → user servers share the hub's origin (/user/<name>/); e.g. http://localhost:8000 →
    # each on <name>.localhost:8000, an origin of its own (subdomain_origin below)
    subdomain_host: str = ""
    proxy_api_port: int = 8001
    lease_service_port: int = 10101
    spawner: str = "auto"
    authenticator: str = "workshop"  # a password per account; "shared": one for all
    admins: list[str] = field(default_factory=list)
    allow_all: bool = False
    user_password: str = ""  # "" → generated into state/workshop-password
    devices: list[str] | None = None  # None → every /dev/opu*
    lease_max_seconds: float = 4 * 3600.0
    lease_warning_seconds: float = 300.0
    quota_seconds: float = 0.0
    quota_period_seconds: float = 24 * 3600.0
    lease_check_interval: float = 15.0
    lease_grace_seconds: float = 30.0  # a lease younger than this is never called orphaned
    timezone: str = ""  # "" → the hub machine's local zone
    cull_idle_seconds: float = 3600.0  # 0 disables jupyterhub-idle-culler
    cull_every_seconds: float = 300.0
    kernel_cull_idle_seconds: float = 1800.0  # 0 disables server-side kernel culling
    last_activity_interval: float = 300.0
    poll_interval: float = 30.0
    concurrent_spawn_limit: int = 100  # spawns pending at once, those waiting in line included
    start_concurrency: int = 0  # server starts at a time; 0 = cores + 1 (opuhub.admission)
    start_timeout: float = 120.0
    http_timeout: float = 90.0
    n_components: int = 10000
    simulator_max_n_components: int = 2_000_000  # 0 = no cap
    simulator_max_work: float = 1e13  # multiply-adds per simulated transform; 0 = no cap
    image: str = "opuhub/singleuser:latest"
    hardware_image: str = ""  # "" → same as image
    docker_network: str = "opuhub"  # "host" → host networking with a free port per spawn
    mem_limit: str = "2G"
    cpu_limit: float = 2.0
    pids_limit: int = 512
    metrics_public: bool = False
    log_level: str = "INFO"
    # request body caps of the hub (opuhub.limits): bigger bodies get 413 before being read
    max_body_bytes: int = 1024 * 1024  # any request to /hub/
    max_form_bytes: int = 16 * 1024  # login, sign-up, password, token and OAuth requests
    max_spawn_options_bytes: int = 4 * 1024  # spawn requests: API body or spawn-page form
    # API tokens users request (opuhub.token_limits): the longest lifetime, also the default
    # (0 = tokens may never expire), and how many live ones a user may hold
    token_max_seconds: float = 30 * 24 * 3600.0
    max_tokens_per_user: int = 50

    @property
    def hub_port(self) -> int:
        return urlparse(self.hub_bind_url or "http://127.0.0.1:8081").port or 8081


def _env_name(name: str) -> str:
    return "OPUHUB_" + name.upper()


def _parse(name: str, kind, raw: str):
    var = _env_name(name)
    raw = raw.strip()
    if kind is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off", ""):
            return False
        raise SettingsError(f"{var} must be true or false, got {raw!r}")
    if kind is int:
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{var} must be an integer, got {raw!r}") from None
        if value < 0:
            raise SettingsError(f"{var} must be >= 0, got {value}")
        return value
    if kind is float:
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{var} must be a number of seconds, got {raw!r}") from None
        if math.isnan(value) or value < 0:
            raise SettingsError(f"{var} must be >= 0, got {raw!r}")
        return value
    if kind is list:
        return [item.strip() for item in raw.split(",") if item.strip()]
    if kind is Path:
        return Path(raw).expanduser()
    return raw


_KINDS = {
    "state_dir": Path,
    "homes_dir": Path,
    "admins": list,
    "devices": list,
    "allow_all": bool,
    "metrics_public": bool,
}


def settings_from_env(environ=None) -> Settings:
    environ = os.environ if environ is None else environ
    values = {}
    for f in fields(Settings):
        var = _env_name(f.name)
        if var not in environ:
            continue
        kind = _KINDS.get(f.name) or {"int": int, "float": float}.get(f.type, str)
        values[f.name] = _parse(f.name, kind, environ[var])
    settings = Settings(**values)
    validate(settings)
    settings.state_dir = settings.state_dir.resolve()
    if settings.homes_dir is None:
        settings.homes_dir = settings.state_dir.parent / "homes"
    settings.homes_dir = settings.homes_dir.resolve()
    return settings


def validate(s: Settings) -> None:
    if s.spawner not in SPAWNERS:
        raise SettingsError(f"OPUHUB_SPAWNER must be one of {', '.join(SPAWNERS)}, got {s.spawner!r}")
    if s.authenticator not in AUTHENTICATORS:
        raise SettingsError(
            f"OPUHUB_AUTHENTICATOR must be one of {', '.join(AUTHENTICATORS)}, got {s.authenticator!r}"
        )
    for name in ("bind_url", "hub_bind_url", "hub_connect_url"):
        url = getattr(s, name)
        if url and (urlparse(url).scheme not in ("http", "https") or not urlparse(url).port):
            raise SettingsError(f"{_env_name(name)} must look like http://HOST:PORT, got {url!r}")
    if s.subdomain_host:
        s.subdomain_host = subdomain_origin(s.subdomain_host)
    for name in ("proxy_api_port", "lease_service_port"):
        if not 0 < getattr(s, name) < 65536:
            raise SettingsError(f"{_env_name(name)} must be a TCP port, got {getattr(s, name)}")
    if s.quota_period_seconds <= 0:
        raise SettingsError("OPUHUB_QUOTA_PERIOD_SECONDS must be > 0")
    if s.lease_check_interval <= 0:
        raise SettingsError("OPUHUB_LEASE_CHECK_INTERVAL must be > 0")
    if s.n_components <= 0:
        raise SettingsError("OPUHUB_N_COMPONENTS must be > 0")
    if s.max_tokens_per_user < 1:
        raise SettingsError("OPUHUB_MAX_TOKENS_PER_USER must be at least 1")
    if s.user_password and len(s.user_password) < 8:
        raise SettingsError("OPUHUB_USER_PASSWORD must be at least 8 characters")
    if s.homes_dir is not None and s.homes_dir.resolve().is_relative_to(s.state_dir.resolve()):
        raise SettingsError(
            "OPUHUB_HOMES_DIR must not be inside OPUHUB_STATE_DIR: users reach their homes, "
            "never the state directory (secrets, databases)")
    from .cgroups import parse_bytes

    for name in ("home_quota", "mem_limit"):
        try:
            parse_bytes(getattr(s, name))
        except ValueError as e:
            raise SettingsError(f"{_env_name(name)}: {e}") from None
    if s.timezone:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(s.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(f"OPUHUB_TIMEZONE: unknown time zone {s.timezone!r}") from None


_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")


def subdomain_origin(raw: str) -> str:
    """OPUHUB_SUBDOMAIN_HOST checked and normalised to ``scheme://host[:port]`` (pure).

    Users' servers go to ``<name>.<host>``, so the host must be a DNS name that a wildcard
    record (and, with https, a wildcard certificate) covers: never an IP address, no path, no
    credentials. The scheme is required: JupyterHub would silently assume https."""
    var = "OPUHUB_SUBDOMAIN_HOST"
    url = urlparse(raw.strip())
    if url.scheme not in ("http", "https") or not url.hostname:
        raise SettingsError(f"{var} must look like https://hub.example.org or "
                            f"http://localhost:8000 (scheme and host), got {raw!r}")
    if url.username or url.password or url.path not in ("", "/") or url.query or url.fragment \
            or url.params:
        raise SettingsError(f"{var} is a scheme, a host and a port only, got {raw!r}")
    try:
        port = url.port
    except ValueError:
        raise SettingsError(f"{var}: bad port in {raw!r}") from None
    host = url.hostname.rstrip(".")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise SettingsError(f"{var} must be a DNS name, not an IP address ({host}): user "
                            "servers live on <name>.<host>, which needs a wildcard DNS record; "
                            "on one machine use http://localhost:PORT (browsers resolve "
                            "*.localhost themselves)")
    labels = host.split(".")
    if len(host) > 190 or not all(_DNS_LABEL.match(label) for label in labels):
        raise SettingsError(f"{var}: {host!r} is not a DNS host name (letters, digits and '-' "
                            "in dot-separated labels, at most 190 characters, so that "
                            "<name>.<host> stays a valid name)")
    return f"{url.scheme}://{host}" + (f":{port}" if port else "")


def hub_timezone(name: str):
    """The zone used in messages such as "busy until 14:30"."""
    if name:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    return None  # datetime uses the machine's local zone
