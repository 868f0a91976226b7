"""The playbook against a disposable server: a container from the local Debian base
(opuhub/base:bookworm), reached with Ansible's docker connection plugin, never another host.

The target gets this machine's Docker engine (its socket) and shares this machine's network
namespace, so that what the playbook publishes on the target's 127.0.0.1 is on 127.0.0.1 here;
ansible/README.md says why. Its state folder lies at the same path here and in the target (the
engine resolves the hub container's bind mounts on this machine). Images come from a
`docker save` archive of the locally built images under tags of this test, loaded by the
playbook (the archive path for real; the build path in check mode).

One converge for the module; then: idempotence (changed=0), the firewall and the build path in
check mode, TLS (redirect, HSTS, TLS 1.2+, certificate verified against the generated CA), a
workshop account logs in through the proxy, spawns, runs opu.transform, and backup -> restore
brings back a home (into a fresh volume), the hub database and the lease database.
Everything created is named opuhub-ansible-test-<tag>… and removed at the end.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import shlex
import shutil
import socket
import sqlite3
import ssl
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import yaml

from tests.helpers import container_exec, execute_in_user_kernel, wait_until

from .ansiblerun import REPO, ansible_env, run_playbook

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1500)]

BASE_IMAGE = "opuhub/base:bookworm"
SOURCE_IMAGES = {"hub": "opuhub/hub:latest", "singleuser": "opuhub/singleuser:latest"}
LABEL = "opuhub.ansible-test"
TEST_BACKUP_CONFIG = "/etc/opuhub/backup-test.json"  # on the target
COMPUTE = (
    "import numpy as np, os\n"
    "x = (np.arange(64) % 3 == 0).astype('uint8')\n"
    "opu.fit1d(n_features=64)\n"
    "y = np.asarray(opu.transform(x), dtype='float64')\n"
    "print(y.shape[0], round(float(y.sum()), 3), os.environ.get('OPU_BACKEND'))\n"
)


def free_port() -> int:
    """A free port below the kernel's ephemeral range: the ports handed out to other programs'
    outgoing connections and random listeners come from that range, so a port picked there
    could be taken again before the playbook binds it."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(200):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found")


def recap(output: str) -> dict[str, int]:
    """The PLAY RECAP counters of the one target."""
    match = re.search(r"^\S+\s*: (ok=.*)$", output.split("PLAY RECAP", 1)[1], re.M)
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


@dataclass
class Deployment:
    client: object
    tag: str
    workdir: Path
    inventory: Path
    target: object = None
    hub_port: int = 0
    http_port: int = 0
    https_port: int = 0
    ca_file: Path | None = None
    converge: subprocess.CompletedProcess | None = None
    names: dict = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return f"opuhub-ansible-test-{self.tag}"

    @property
    def user_prefix(self) -> str:
        return f"ansible{self.tag}u"  # letters and digits: Docker names keep it as it is

    @property
    def state_dir(self) -> Path:
        return self.workdir / "srv" / "state"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def playbook(self, *args: str) -> subprocess.CompletedProcess:
        return run_playbook("-i", str(self.inventory), "site.yml", *args,
                            env=ansible_env(self.workdir), timeout=1200)

    def sh(self, command: str, timeout: float = 600, stderr: bool = True) -> str:
        """``command``'s output on the target; fails on a non-zero exit or past ``timeout``."""
        return container_exec(self.target, ["sh", "-c", command], timeout=timeout, stderr=stderr)

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, verify=str(self.ca_file), timeout=60, **kw)

    def api(self, method: str, path: str, token: str | None = None, **kw) -> requests.Response:
        token = token or (self.state_dir / "cli-token").read_text().strip()
        return requests.request(method, f"{self.url}/hub/api{path}", verify=str(self.ca_file),
                                headers={"Authorization": f"token {token}"}, timeout=60, **kw)


def _docker_client():
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env(timeout=300)
        client.ping()
        return client
    except Exception as e:
        message = f"no Docker engine reachable ({type(e).__name__}: {e}); run scripts/ensure-docker"
        if os.environ.get("OPUHUB_REQUIRE_DOCKER") == "1":
            pytest.fail(message)
        pytest.skip(message)


def _ensure_images(client) -> None:
    import docker

    def present(name):
        try:
            client.images.get(name)
            return True
        except docker.errors.ImageNotFound:
            return False

    if not all(present(i) for i in [BASE_IMAGE, *SOURCE_IMAGES.values()]):
        if os.environ.get("OPUHUB_TEST_BUILD") == "never":
            pytest.fail(f"{BASE_IMAGE} and {', '.join(SOURCE_IMAGES.values())} are needed: make images")
        result = subprocess.run([str(REPO / "images" / "build")], cwd=REPO, capture_output=True,
                                text=True)
        assert result.returncode == 0, result.stderr[-4000:]


def _cleanup(d: Deployment) -> None:
    client = d.client
    for container in client.containers.list(all=True, filters={"name": d.user_prefix}):
        container.remove(force=True, v=True)
    for container in client.containers.list(all=True, filters={"name": d.prefix}):
        container.remove(force=True, v=True)
    for volume in client.volumes.list(filters={"name": d.user_prefix}):
        volume.remove(force=True)
    for network in client.networks.list(names=[f"{d.prefix}-net"]):
        network.remove()
    for image in SOURCE_IMAGES:
        try:
            client.images.remove(f"{d.prefix}/{image}:latest", noprune=False)
        except Exception:
            pass
    shutil.rmtree(d.workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def deployment(request):
    client = _docker_client()
    _ensure_images(client)
    tag = uuid.uuid4().hex[:8]
    workdir = Path(f"/tmp/opuhub-ansible-test-{tag}")
    workdir.mkdir(mode=0o700)
    d = Deployment(client, tag, workdir, workdir / "hosts.yml")
    try:
        # the images, under this test's tags, in a docker save archive (the air-gapped path);
        # the tags are removed again so that only the playbook's load brings them back
        archive = workdir / "images.tar"
        for image, source in SOURCE_IMAGES.items():
            client.images.get(source).tag(f"{d.prefix}/{image}", "latest")
        started = time.monotonic()
        subprocess.run(["docker", "save", "-o", str(archive),
                        *[f"{d.prefix}/{image}:latest" for image in SOURCE_IMAGES]], check=True)
        print(f"docker save: {time.monotonic() - started:.0f}s, {archive.stat().st_size / 1e9:.2f} GB")
        for image in SOURCE_IMAGES:
            client.images.remove(f"{d.prefix}/{image}:latest")

        d.hub_port, d.http_port, d.https_port = free_port(), free_port(), free_port()
        d.target = client.containers.run(
            BASE_IMAGE, ["sleep", "infinity"], name=f"{d.prefix}-target", detach=True,
            network_mode="host", labels={LABEL: tag},
            volumes={"/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"},
                     str(workdir): {"bind": str(workdir), "mode": "rw"}})
        # like Debian's container images: packages do not start services at installation (the
        # engine's socket is this machine's; a dockerd of the target must never start)
        d.sh("printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && "
             "chmod 0755 /usr/sbin/policy-rc.d")
        d.inventory.write_text(yaml.safe_dump({"opuhub": {"hosts": {d.target.name: {
            "ansible_connection": "community.docker.docker",
            "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_become": False,
        }}, "vars": {
            "opuhub_root": str(workdir / "srv"),
            "opuhub_service_manager": "sysvinit",  # no systemd in the container
            "opuhub_docker_manage_service": False,  # the engine is this machine's
            "opuhub_images_source": "archive",
            "opuhub_images_archive": str(archive),
            "opuhub_hub_image": f"{d.prefix}/hub:latest",
            "opuhub_singleuser_image": f"{d.prefix}/singleuser:latest",
            "opuhub_hub_container": f"{d.prefix}-hub",
            "opuhub_docker_network": f"{d.prefix}-net",
            "opuhub_hub_port": d.hub_port,
            "opuhub_server_name": "opuhub.test",
            "opuhub_tls_subject_alt_names": ["IP:127.0.0.1"],
            "opuhub_listen_addresses": ["127.0.0.1"],  # this machine's network: loopback only
            "opuhub_http_port": d.http_port,
            "opuhub_https_port": d.https_port,
            "opuhub_workshop_accounts": 2,
            "opuhub_workshop_prefix": d.user_prefix,
            "opuhub_n_components": 100,
            "opuhub_mem_limit": "1G",
            "opuhub_hub_env": {"OPUHUB_POLL_INTERVAL": "2"},
        }}}))
        started = time.monotonic()
        d.converge = d.playbook("--skip-tags", "firewall")  # firewall: check mode only, below
        print(f"first converge: {time.monotonic() - started:.0f}s")
        if d.converge.returncode == 0:
            d.ca_file = workdir / "ca.crt"
            d.ca_file.write_text(d.sh("cat /etc/opuhub/tls/ca.crt", stderr=False))
        yield d
    finally:
        failed = request.session.testsfailed
        if failed and d.target is not None:
            hub = client.containers.list(all=True, filters={"name": f"{d.prefix}-hub"})
            for container in hub:
                print(f"----- {container.name} -----\n"
                      f"{container.logs(tail=150).decode(errors='replace')}")
        _cleanup(d)


def converged(d: Deployment) -> Deployment:
    out = d.converge.stdout + d.converge.stderr
    assert d.converge.returncode == 0, out[-8000:]
    return d


def test_converge_deploys_the_hub_behind_tls_on_loopback(deployment):
    d = converged(deployment)
    out = d.converge.stdout
    assert recap(out)["failed"] == 0
    hub = d.client.containers.get(f"{d.prefix}-hub")
    assert hub.status == "running"
    assert hub.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    bindings = hub.attrs["HostConfig"]["PortBindings"]
    assert bindings == {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(d.hub_port)}]}
    env = dict(e.split("=", 1) for e in hub.attrs["Config"]["Env"])
    assert env["OPUHUB_SPAWNER"] == "docker" and env["OPUHUB_DEVICES"] == ""
    assert env["OPUHUB_IMAGE"] == f"{d.prefix}/singleuser:latest"
    assert "no OPU device node found: the hub offers the simulator only" in out
    # secrets: made by the playbook, root only, never shown
    assert d.state_dir.stat().st_mode & 0o777 == 0o700
    for name in ("admin-password", "cli-token", "proxy-auth-token", "jupyterhub_cookie_secret"):
        secret = d.state_dir / name
        assert secret.stat().st_mode & 0o777 == 0o600, name
        assert secret.read_text().strip() not in out, f"{name} was printed"
    [sheet] = d.state_dir.glob("accounts-*.csv")
    assert sheet.stat().st_mode & 0o777 == 0o600
    rows = list(csv.DictReader(sheet.open()))
    assert [r["name"] for r in rows] == [f"{d.user_prefix}01", f"{d.user_prefix}02"]
    assert rows[0]["login_url"].startswith(f"https://opuhub.test:{d.https_port}/hub/login")
    assert not any(r["password"] in out for r in rows), "a workshop password was printed"
    # the udev rule and the backup schedule are in place
    rule = d.sh("cat /etc/udev/rules.d/70-opuhub-opu.rules /etc/cron.d/opuhub-backup")
    assert 'KERNEL=="opu[0-9]*", GROUP="opu", MODE="0660"' in rule
    assert "/usr/local/sbin/opuhub-backup create" in rule


def test_second_converge_changes_nothing(deployment):
    d = converged(deployment)
    secrets = {p.name: p.read_text() for p in d.state_dir.iterdir() if p.name.endswith(
        ("password", "token", "secret"))}
    hub_id = d.client.containers.get(f"{d.prefix}-hub").id
    started = time.monotonic()
    again = d.playbook("--skip-tags", "firewall")
    print(f"second converge: {time.monotonic() - started:.0f}s")
    assert again.returncode == 0, again.stdout[-6000:]
    counts = recap(again.stdout)
    changed = re.findall(r"^changed: \[.*$|^TASK \[.*$", again.stdout, re.M)
    assert counts["changed"] == 0 and counts["failed"] == 0, "\n".join(changed)
    assert {p.name: p.read_text() for p in d.state_dir.iterdir() if p.name in secrets} == secrets
    assert d.client.containers.get(f"{d.prefix}-hub").id == hub_id  # not recreated
    assert len(list(d.state_dir.glob("accounts-*.csv"))) == 1  # no new sheet, no new password


def test_firewall_role_in_check_mode(deployment):
    d = converged(deployment)
    result = d.playbook("--tags", "firewall", "--check", "--diff")
    assert result.returncode == 0, result.stdout[-6000:]
    assert "policy drop;" in result.stdout
    assert f"tcp dport {{ {d.http_port}, {d.https_port} }} accept" in result.stdout
    d.sh("test ! -e /etc/opuhub/firewall.nft")  # check mode wrote no rules


def test_build_path_in_check_mode(deployment):
    d = converged(deployment)
    result = d.playbook("--tags", "images", "--check", "-e", "opuhub_images_source=build")
    assert result.returncode == 0, result.stdout[-6000:]
    assert re.search(r"TASK \[opuhub_images : Copy the sources to the server\].*\nchanged:",
                     result.stdout), result.stdout[-3000:]
    d.sh(f"test ! -e {d.workdir}/srv/src.tar")  # check mode copied no sources


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_proxy_redirects_sets_hsts_and_refuses_old_tls(deployment):
    d = converged(deployment)
    health = d.get("/hub/health")  # verified against the generated CA, for 127.0.0.1
    assert health.status_code == 200
    assert health.headers["Strict-Transport-Security"] == "max-age=31536000"
    plain = requests.get(f"http://127.0.0.1:{d.http_port}/hub/login?next=x", allow_redirects=False,
                         timeout=30)
    assert plain.status_code == 301
    assert plain.headers["Location"] == f"https://127.0.0.1:{d.https_port}/hub/login?next=x"
    with pytest.raises(requests.exceptions.SSLError):  # not trusted without the CA
        requests.get(d.url + "/hub/health", timeout=30)
    old = ssl.create_default_context(cafile=str(d.ca_file))
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError):
        with socket.create_connection(("127.0.0.1", d.https_port), timeout=30) as raw:
            old.wrap_socket(raw, server_hostname="127.0.0.1")
    modern = ssl.create_default_context(cafile=str(d.ca_file))
    with socket.create_connection(("127.0.0.1", d.https_port), timeout=30) as raw:
        with modern.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")


def _account(d: Deployment, index: int = 0) -> tuple[str, str]:
    [sheet] = d.state_dir.glob("accounts-*.csv")
    row = list(csv.DictReader(sheet.open()))[index]
    return row["name"], row["password"]


def _login(d: Deployment, name: str, password: str) -> requests.Session:
    browser = requests.Session()
    browser.trust_env = False  # else REQUESTS_CA_BUNDLE would replace the CA set here
    browser.verify = str(d.ca_file)
    page = browser.get(f"{d.url}/hub/login", timeout=60)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    done = browser.post(f"{d.url}/hub/login", data={"username": name, "password": password,
                                                     "_xsrf": xsrf}, allow_redirects=False, timeout=60)
    assert done.status_code == 302, done.text[:500]
    return browser


def _spawn_from_the_form(d: Deployment, browser: requests.Session, name: str) -> str:
    xsrf = browser.cookies.get("_xsrf", path="/hub/")
    submitted = browser.post(f"{d.url}/hub/spawn", data={"profile": "simulator", "_xsrf": xsrf},
                             allow_redirects=False, timeout=120)
    assert submitted.status_code == 302, submitted.text[:500]
    wait_until(lambda: ((d.api("GET", f"/users/{name}").json().get("servers") or {}).get("")
                        or {}).get("ready"), 180, f"{name}'s server to be ready", interval=1)
    # a token for the API and the kernel, made by the logged-in user through the proxy
    made = browser.post(f"{d.url}/hub/api/users/{name}/tokens", json={"note": "ansible test"},
                        headers={"X-XSRFToken": xsrf}, timeout=60)
    assert made.status_code == 201, made.text[:500]
    return made.json()["token"]


def _run(d: Deployment, name: str, token: str, code: str) -> dict:
    out = execute_in_user_kernel(d.url, name, token, code, "opu", 180, ca_file=str(d.ca_file))
    assert out["error"] is None, out
    return out


def test_workshop_account_logs_in_spawns_and_runs_opu_transform_through_tls(deployment):
    d = converged(deployment)
    name, password = _account(d)
    browser = _login(d, name, password)
    token = _spawn_from_the_form(d, browser, name)
    out = _run(d, name, token, COMPUTE)
    n, total, backend = out["stdout"].split()
    assert (n, backend) == ("100", "simulator") and float(total) > 0, out
    container = d.client.containers.get(f"jupyter-{name}")
    assert container.attrs["Config"]["Image"] == f"{d.prefix}/singleuser:latest"
    d.names["token"] = token
    # another account's password does not open this one
    other, other_password = _account(d, 1)
    page = requests.Session()
    page.trust_env = False
    page.verify = str(d.ca_file)
    form = page.get(f"{d.url}/hub/login", timeout=60)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', form.text).group(1)
    refused = page.post(f"{d.url}/hub/login", data={"username": name, "password": other_password,
                                                     "_xsrf": xsrf}, allow_redirects=False, timeout=60)
    assert refused.status_code == 403


def _usage_rows(d: Deployment) -> list[str]:
    db = sqlite3.connect(d.state_dir / "opu_leases.sqlite", timeout=30)
    try:
        return [r[0] for r in db.execute("SELECT username FROM usage ORDER BY id")]
    finally:
        db.close()


def _add_usage(d: Deployment, user: str) -> None:
    db = sqlite3.connect(d.state_dir / "opu_leases.sqlite", timeout=30)
    with db:
        db.execute("INSERT INTO usage (username, server_name, device, started_at, ended_at, "
                   "end_reason) VALUES (?, '', '/dev/opu0', 1, 2, 'stopped')", (user,))
    db.close()


def test_backup_then_restore_brings_back_homes_hub_and_lease_databases(deployment):
    d = converged(deployment)
    name, password = _account(d)
    token = d.names.get("token")
    if token is None or not (d.api("GET", f"/users/{name}").json().get("servers") or {}).get(""):
        token = _spawn_from_the_form(d, _login(d, name, password), name)
    marker = f"written before the backup {d.tag}"
    _run(d, name, token, f"open('/home/jovyan/kept.txt', 'w').write({marker!r})")
    _add_usage(d, f"before{d.tag}")  # stands for an OPU lease that ended (no OPU here)

    # This machine's Docker engine is shared (other tests, benchmarks): the deployed settings save
    # every opuhub-home-* volume on it, and a restore replaces them all and removes the containers
    # using them. The test runs the tool with the deployed settings narrowed to its own users.
    config = json.loads(d.sh("cat /etc/opuhub/backup.json", stderr=False))
    assert config["home_prefix"] == "opuhub-home-", config
    config["home_prefix"] = f"opuhub-home-{d.user_prefix}"
    d.sh(f"umask 077 && printf %s {shlex.quote(json.dumps(config))} > {TEST_BACKUP_CONFIG}")

    started = time.monotonic()
    out = d.sh(f"opuhub-backup --config {TEST_BACKUP_CONFIG} create")
    print(f"backup: {time.monotonic() - started:.0f}s")
    assert f"opuhub-home-{name}" in out and "1 home(s)" in out, out

    # after the backup: a new user, another lease record, the user's home gone for good
    late = f"{d.user_prefix}late"
    assert d.api("POST", "/users", json={"usernames": [late]}).status_code == 201
    _add_usage(d, f"after{d.tag}")
    assert d.api("DELETE", f"/users/{name}/server").status_code in (202, 204)
    wait_until(lambda: not d.client.containers.list(all=True, filters={"name": f"jupyter-{name}"}),
               60, "the server's container to go", interval=1)
    d.client.volumes.get(f"opuhub-home-{name}").remove()

    started = time.monotonic()
    d.sh(f"opuhub-backup --config {TEST_BACKUP_CONFIG} restore latest")
    print(f"restore: {time.monotonic() - started:.0f}s")
    assert d.client.volumes.get(f"opuhub-home-{name}")  # a fresh volume, filled from the backup
    def healthy():
        try:
            return d.get("/hub/health").status_code == 200
        except requests.RequestException:
            return False

    wait_until(healthy, 120, "the hub to come back after the restore", interval=1)

    assert _usage_rows(d)[-1] == f"before{d.tag}"  # the lease database as it was
    assert f"after{d.tag}" not in _usage_rows(d)
    assert d.api("GET", f"/users/{late}").status_code == 404  # the hub database as it was
    assert d.api("GET", f"/users/{name}").status_code == 200
    # the hub notices the server is gone; the user logs in with the same password (the password
    # hashes are in the state too) and finds the file in the restored home
    wait_until(lambda: not (d.api("GET", f"/users/{name}").json().get("servers") or {}).get(""),
               90, "the hub to drop the removed server", interval=1)
    token = _spawn_from_the_form(d, _login(d, name, password), name)
    out = _run(d, name, token, "print(open('/home/jovyan/kept.txt').read())")
    assert out["stdout"].strip() == marker
