"""Platform settings: every ``OPUHUB_*`` variable, its default, type, check and help, in one place.

:class:`Settings` is the single source. ``hub/jupyterhub_config.py`` reads it from the
environment (:func:`settings_from_env`), :func:`opuhub.host.prepare_host` does the I/O it implies
once, and :func:`opuhub.hubconfig.configure` turns it into traitlets config. The spawner traits
that mirror a setting take its default and help from here (:func:`trait_default`,
:func:`trait_help`), the lease service reads the same variables with the same parser, and the
settings table in hub/README.md is generated from it (``python -m opuhub.settings --markdown``;
a test keeps the two equal). Finer-grained config is plain traitlets (``c.OPUSpawnerMixin.*``,
``c.OPUDockerSpawner.*``) in ``jupyterhub_config.d/*.py``.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from urllib.parse import urlparse


class SettingsError(ValueError):
    """A bad OPUHUB_* value; the message names the variable."""


SPAWNERS = ("auto", "docker", "local")
AUTHENTICATORS = ("workshop", "shared", "native")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def setting(default, help: str, *, kind: type | None = None, choices: tuple = (),
            minimum: float | None = 0, above: float | None = None, optional: bool = False,
            shown: str | None = None) -> Field:
    """A field of :class:`Settings`. ``kind`` defaults to the default's type; numbers must be
    >= ``minimum`` (None: any) and > ``above``; ``optional`` fields take None when the variable
    is empty; ``shown`` is how the README's table writes the default."""
    kind = kind or (Path if isinstance(default, Path) else type(default))
    meta = {"help": " ".join(help.split()), "kind": kind, "choices": choices,
            "minimum": minimum, "above": above, "optional": optional, "shown": shown}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Settings:
    # --- where things live
    state_dir: Path = setting(
        Path("state"), """Secrets, the hub's and the lease databases (0700, root only). Keep it
        across upgrades and restarts; delete it to start afresh.""")
    homes_dir: Path | None = setting(
        None, """Users' home directories of local servers and of Docker's size-limited homes.
        Empty: `homes` beside the state directory. Never inside it.""", kind=Path,
        optional=True, shown="`homes/` beside `STATE_DIR`")
    home_quota: str = setting(
        "2G", """Size limit of each home (a loop-mounted filesystem of its own, when the hub
        runs as root); 0 = none.""")
    config_dir: Path | None = setting(
        None, """Deployer additions: every `*.py` file in it is loaded, in name order, after the
        generated config (traitlets, e.g. `c.OPUDockerSpawner.tmp_size`). Files must belong
        to root or the hub's user and not be writable by others. Empty:
        `jupyterhub_config.d` beside the state directory.""", kind=Path, optional=True,
        shown="`jupyterhub_config.d/` beside `STATE_DIR`")
    # --- network
    bind_url: str = setting("http://127.0.0.1:8000", "Where the hub's proxy listens (http://HOST:PORT).")
    hub_bind_url: str = setting(
        "", """Where the hub itself listens. Empty: http://127.0.0.1:8081, or the Docker user
        network's gateway so that containers reach it.""")
    hub_connect_url: str = setting(
        "", "How user servers reach the hub, when not at `HUB_BIND_URL` (e.g. the hub container's name).")
    subdomain_host: str = setting(
        "", """Empty: user servers share the hub's origin (/user/NAME/). `https://HOST[:PORT]`:
        each server on NAME.HOST, an origin of its own (needs a wildcard DNS record and
        certificate); set it when strangers use the hub.""")
    proxy_api_port: int = setting(8001, "Port of the proxy's REST API, on 127.0.0.1.", above=0)
    lease_service_port: int = setting(10101, "Port of the OPU lease service, on 127.0.0.1.", above=0)
    # --- who, and how
    spawner: str = setting(
        "auto", """Where servers run: `docker` (a container per user), `local` (a process per
        user, under its own Unix account when the hub is root) or `auto` (Docker whenever an
        engine answers; without one, local servers for admins only).""", choices=SPAWNERS)
    authenticator: str = setting(
        "workshop", """`workshop`: a password per account (`python -m opuhub.accounts`);
        `shared`: one password for all accounts (a closed room only); `native`: sign-up, then an
        admin approves.""", choices=AUTHENTICATORS)
    admins: list[str] = setting([], "Comma-separated admin user names (`make run` uses `admin`).")
    allow_all: bool = setting(
        False, "With the shared password: anyone who has it may pick any user name.")
    user_password: str = setting(
        "", "The shared password; empty: generated into `STATE_DIR/workshop-password`.",
        shown='"" (generated)')
    lease_tutors: list[str] = setting(
        [], """Users who may revoke OPU leases and read everyone's OPU usage without being
        admins (role `opu-tutor`: scopes `custom:opu-lease:revoke`,
        `custom:opu-lease:read-usage`).""")
    # --- the OPU lease
    devices: list[str] | None = setting(
        None, """Comma-separated OPU device nodes users can lease, in the order handed out.
        Unset: every `/dev/opu*` at start; empty: simulator only.""", kind=list,
        optional=True, shown="every `/dev/opu*`")
    lease_max_seconds: float = setting(
        4 * 3600.0, """Longest a lease lasts (0 = until the server stops); then the server is
        stopped, files kept.""")
    lease_warning_seconds: float = setting(
        300.0, "How long before the end of a lease its holder is warned.")
    quota_seconds: float = setting(
        0.0, "OPU seconds a user may hold a device per quota period (0 = unlimited).")
    quota_period_seconds: float = setting(
        24 * 3600.0, "Length of a quota period, aligned to the epoch (86400 = a UTC day).",
        above=0)
    lease_check_interval: float = setting(
        15.0, "How often the lease service checks expiry and servers that went away.", above=0)
    lease_grace_seconds: float = setting(
        30.0, """How long a lease's server must be missing before the lease is called orphaned
        and ended (a stop in progress ends it itself).""")
    timezone: str = setting(
        "", "Time zone of times shown to users ('busy until 14:30'); empty: the machine's.")
    # --- idle servers and kernels
    cull_idle_seconds: float = setting(
        3600.0, "Stop servers idle this long (jupyterhub-idle-culler); 0 = no culler.")
    cull_every_seconds: float = setting(300.0, "How often the culler looks.", above=0)
    kernel_cull_idle_seconds: float = setting(
        1800.0, "Shut down kernels idle this long, open browser tabs included; 0 = never.")
    last_activity_interval: float = setting(
        300.0, "How often the hub records users' activity.", above=0)
    poll_interval: float = setting(30.0, "How often the hub checks that servers still run.", above=0)
    # --- starting servers
    concurrent_spawn_limit: int = setting(
        100, """Spawns pending at once, those waiting in line included; beyond it a spawn is
        refused (429).""", above=0)
    start_concurrency: int = setting(
        0, """Server starts at a time; 0 = the machine's cores + 1. Further starts wait in line,
        with their place on the spawn page.""", shown="0 (cores + 1)")
    start_timeout: float = setting(120.0, "Seconds a server may take to start.", above=0)
    http_timeout: float = setting(90.0, "Seconds a started server may take to answer.", above=0)
    # --- the simulator
    n_components: int = setting(10000, "Default `n_components` of the preloaded `opu`.", above=0)
    simulator_max_n_components: int = setting(
        2_000_000, "Largest `n_components` a simulated OPU accepts; 0 = no cap.")
    simulator_max_work: float = setting(
        1e13, """Most multiply-adds one simulated transform may take (about 4 to 11 minutes on
        2 cores); 0 = no cap.""")
    # --- the shared OPU (opuhub.shared_opu)
    shared_opu: str = setting(
        "", """The "Shared OPU" profile: a broker serves one device to every server started with
        it, in fair turns. Empty: no such profile; `simulated`: the simulator with the OPU's
        timing; a device node (e.g. `/dev/opu1`): that OPU, opened by the broker alone (never
        passed through to a server). Either may be leased as a window reserved for one user.""")
    shared_opu_port: int = setting(
        5599, "Port of the shared OPU's broker, on the address where servers reach the hub.",
        above=0)
    shared_opu_frame_us: float = setting(
        500.0, "The simulated shared OPU's time per camera frame (one per input row), in µs.",
        above=0)
    # --- containers and local servers
    image: str = setting("opuhub/singleuser:latest", "Single-user image (`make images` builds it).")
    hardware_image: str = setting(
        "", "Image for the OPU hardware profile; empty: the same as `IMAGE`.")
    docker_network: str = setting(
        "opuhub", "Docker network of the user containers; `host`: host networking, a free port per spawn.")
    mem_limit: str = setting("2G", "Memory of each user's server and kernels (container or cgroup).")
    cpu_limit: float = setting(2.0, "CPUs of each user's server (container or cgroup).", above=0)
    pids_limit: int = setting(512, "Processes and threads of each user's server.", above=0)
    # --- the hub itself
    metrics_public: bool = setting(
        False, "Serve /hub/metrics and the lease service's metrics without a token.")
    log_level: str = setting("INFO", "How much the hub logs (DEBUG shows each request).", choices=LOG_LEVELS)
    max_body_bytes: int = setting(
        1024 * 1024, "Largest request body the hub reads (413 beyond, before reading it).", above=0)
    max_form_bytes: int = setting(
        16 * 1024, "Largest login, sign-up, password, token or OAuth request body.", above=0)
    max_spawn_options_bytes: int = setting(
        4 * 1024, "Largest spawn request (API body or spawn-page form).", above=0)
    token_max_seconds: float = setting(
        30 * 24 * 3600.0, """Longest life, and the default, of an API token a user requests;
        0 = tokens may never expire.""")
    max_tokens_per_user: int = setting(
        50, "Live API tokens a user may hold; the next request gets 403 saying to delete old ones.",
        above=0)

    @property
    def hub_port(self) -> int:
        return urlparse(self.hub_bind_url or "http://127.0.0.1:8081").port or 8081


SETTINGS: dict[str, Field] = {f.name: f for f in fields(Settings)}


def env_name(name: str) -> str:
    return "OPUHUB_" + name.upper()


def default_of(name: str):
    """The default of setting ``name`` (a fresh list for list settings)."""
    f = SETTINGS[name]
    return f.default_factory() if f.default is MISSING else f.default


def help_of(name: str) -> str:
    return SETTINGS[name].metadata["help"]


def trait_help(name: str, extra: str = "") -> str:
    """Help of a traitlets trait that mirrors setting ``name``: the setting's help, the
    variable that sets it, and what the trait adds."""
    text = f"{help_of(name)} (Set by {env_name(name)}.)"
    return f"{text} {' '.join(extra.split())}" if extra else text


def parse_value(name: str, raw: str):
    """The value of ``OPUHUB_<NAME>=raw``, checked; :class:`SettingsError` names the variable."""
    meta = SETTINGS[name].metadata
    var, kind = env_name(name), meta["kind"]
    raw = raw.strip()
    if meta["optional"] and raw == "" and kind is not list:
        return None
    if kind is bool:
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise SettingsError(f"{var} must be true or false (1/0, yes/no, on/off), got {raw!r}")
    if kind in (int, float):
        try:
            value = kind(raw)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise SettingsError(f"{var} must be {what}, got {raw!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise SettingsError(f"{var} must be a finite number, got {raw!r}")
        check_number(name, value)
        return value
    if kind is list:
        return [item.strip() for item in raw.split(",") if item.strip()]
    if kind is Path:
        return Path(raw).expanduser()
    if meta["choices"] and raw not in meta["choices"]:
        raise SettingsError(f"{var} must be one of {', '.join(meta['choices'])}, got {raw!r}")
    return raw


def check_number(name: str, value) -> None:
    meta, var = SETTINGS[name].metadata, env_name(name)
    if meta["above"] is not None and not value > meta["above"]:
        raise SettingsError(f"{var} must be > {meta['above']:g}, got {value}")
    if meta["minimum"] is not None and value < meta["minimum"]:
        raise SettingsError(f"{var} must be >= {meta['minimum']:g}, got {value}")


def env_value(settings: Settings, name: str) -> str:
    """``OPUHUB_<NAME>``'s text for the current value: what :func:`parse_value` reads back."""
    value = getattr(settings, name)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list):
        return ",".join(value)
    return str(value)


def settings_env(settings: Settings, names) -> dict[str, str]:
    """``OPUHUB_*`` variables that hand ``names`` to another process (a hub service)."""
    return {env_name(name): env_value(settings, name) for name in names}


def settings_from_env(environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    values = {name: parse_value(name, environ[env_name(name)])
              for name in SETTINGS if env_name(name) in environ}
    settings = Settings(**values)
    validate(settings)
    settings.state_dir = settings.state_dir.resolve()
    if settings.homes_dir is None:
        settings.homes_dir = settings.state_dir.parent / "homes"
    settings.homes_dir = settings.homes_dir.resolve()
    if settings.config_dir is None:
        settings.config_dir = settings.state_dir.parent / "jupyterhub_config.d"
    settings.config_dir = settings.config_dir.resolve()
    return settings


def validate(s: Settings) -> None:
    """Checks of values set in Python (``Settings(...)``) and across settings."""
    for name, f in SETTINGS.items():
        value = getattr(s, name)
        if f.metadata["choices"] and value not in f.metadata["choices"]:
            raise SettingsError(f"{env_name(name)} must be one of "
                                f"{', '.join(f.metadata['choices'])}, got {value!r}")
        if f.metadata["kind"] in (int, float) and not isinstance(value, bool):
            if math.isnan(value):
                raise SettingsError(f"{env_name(name)} must be a number, got {value!r}")
            check_number(name, value)
    for name in ("bind_url", "hub_bind_url", "hub_connect_url"):
        url = getattr(s, name)
        if url and (urlparse(url).scheme not in ("http", "https") or not urlparse(url).port):
            raise SettingsError(f"{env_name(name)} must look like http://HOST:PORT, got {url!r}")
    if s.subdomain_host:
        s.subdomain_host = subdomain_origin(s.subdomain_host)
    for name in ("proxy_api_port", "lease_service_port"):
        if not 0 < getattr(s, name) < 65536:
            raise SettingsError(f"{env_name(name)} must be a TCP port, got {getattr(s, name)}")
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
            raise SettingsError(f"{env_name(name)}: {e}") from None
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


# --- the README's table ----------------------------------------------------------------------

TABLE_START = "<!-- settings table: generated by `python -m opuhub.settings --markdown` -->"
TABLE_END = "<!-- end of settings table -->"


def shown_default(name: str) -> str:
    meta = SETTINGS[name].metadata
    if meta["shown"]:
        return meta["shown"]
    value = default_of(name)
    if isinstance(value, bool):
        return "false" if not value else "true"
    if isinstance(value, list):
        return '""'
    if isinstance(value, float):
        text = str(int(value)) if value.is_integer() and value < 1e9 else f"{value:g}"
    else:
        text = str(value)
    return f"`{text}`" if text else '""'


def markdown_table() -> str:
    """The settings table of hub/README.md, between its two marker lines."""
    rows = [TABLE_START, "", "| variable | default | what it sets |", "|---|---|---|"]
    for name, f in SETTINGS.items():
        choices = f.metadata["choices"]
        help_text = f.metadata["help"]
        if choices and not all(f"`{c}`" in help_text for c in choices):
            help_text += f" One of {', '.join(f'`{c}`' for c in choices)}."
        cell = help_text.replace("|", "\\|")
        rows.append(f"| `{env_name(name)}` | {shown_default(name)} | {cell} |")
    return "\n".join(rows + ["", TABLE_END])


def readme_with_table(readme: str) -> str:
    """``readme`` with its settings table replaced by the generated one."""
    start, end = readme.index(TABLE_START), readme.index(TABLE_END) + len(TABLE_END)
    return readme[:start] + markdown_table() + readme[end:]


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m opuhub.settings", description=(
        "Print the OPUHUB_* settings table, or rewrite it in a README between its markers."))
    parser.add_argument("--markdown", action="store_true", help="print the table")
    parser.add_argument("--update", type=Path, metavar="README", help="rewrite the table in README")
    parser.add_argument("--check", action="store_true",
                        help="check the environment's OPUHUB_* values and print them")
    args = parser.parse_args(argv)
    if args.update:
        args.update.write_text(readme_with_table(args.update.read_text()))
    elif args.check:
        try:
            settings = settings_from_env()
        except SettingsError as e:
            print(f"opuhub: {e}", file=sys.stderr)
            return 2
        for name in SETTINGS:
            print(f"{env_name(name)}={env_value(settings, name)}")
    else:
        print(markdown_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
