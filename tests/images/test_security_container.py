"""An attendee attacks from a notebook cell of her container on the whole platform (the hub
image as compose runs it, the Docker spawner, real user containers): issue 9's container
hardening, checked from where an attendee stands.

What the other modules already check is not repeated: the container settings as Docker
reports them (test_platform_e2e.py), the device and the thread limit in the lease holder's
container (tests/hub/test_docker_spawner.py), the refusal of weakening deployer settings
(tests/hub/security/test_container_config.py). Here her cell tries to gain privileges, to find
a Docker socket, to reach the hub's state and private ports, to reach another attendee's home
and server directly over the user network, and to exhaust the process table with a fork bomb.
Traffic goes only to containers on a network this module creates.
"""

from __future__ import annotations

import json
import uuid

import pytest

from .conftest import Containers, container_ip
from .hubcontainer import HubContainer, hub_network

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]

TAG = uuid.uuid4().hex[:8]
ATTACKER, VICTIM = f"mallory{TAG}", f"bob{TAG}"
SECRET = "victim-volume-secret-" + TAG
STATE_FILES = ["cli-token", "proxy-auth-token", "admin-password", "jupyterhub_cookie_secret",
               "jupyterhub.sqlite", "opu_leases.sqlite", "workshop-accounts.sqlite"]

PRELUDE = r'''
import errno, json, os, socket, urllib.request, urllib.error

def attempt(fn, *args):
    try:
        value = fn(*args)
    except OSError as e:
        return {"ok": False, "error": type(e).__name__, "errno": errno.errorcode.get(e.errno)}
    return {"ok": True, "value": repr(value)[:200]}

def http(url, token=None):
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return {"status": resp.status, "body": resp.read(2000).decode(errors="replace")}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": e.read(2000).decode(errors="replace")}
    except OSError as e:
        return {"status": None, "body": "", "error": type(e).__name__}

def connect(host, port):
    with socket.create_connection((host, port), timeout=5):
        return "connected"
'''


@pytest.fixture(scope="module")
def network(docker_client):
    with hub_network(docker_client, f"opuhub-test-sec-{TAG}", TAG) as net:
        yield net


@pytest.fixture(scope="module")
def platform(docker_client, network, hub_image, singleuser_image, request):
    containers = Containers(docker_client)
    failed_before = request.session.testsfailed
    hub = HubContainer(containers, hub_image, singleuser_image, network, f"sec{TAG}").start()
    hub.create_users(ATTACKER, VICTIM)
    hub.spawn(VICTIM)
    hub.spawn(ATTACKER)
    tokens = {name: hub.user_token(name) for name in (ATTACKER, VICTIM)}
    out = hub.execute(VICTIM, tokens[VICTIM],
                      f"open('/home/jovyan/secret.txt', 'w').write({SECRET!r}); print('ok')")
    assert out["stdout"].strip() == "ok", out
    yield hub, tokens
    containers.cleanup(failed=request.session.testsfailed > failed_before)


def attack(hub, tokens, body: str, **values) -> dict:
    bindings = "".join(f"{name} = {value!r}\n" for name, value in values.items())
    out = hub.execute(ATTACKER, tokens[ATTACKER], PRELUDE + bindings + body, timeout=180)
    assert out["error"] is None, out
    return json.loads(out["stdout"].strip().splitlines()[-1])


def test_a_cell_gains_no_privilege(platform):
    hub, tokens = platform
    seen = attack(hub, tokens, r'''
import ctypes, ctypes.util, sys
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
def syscall(name, *args):
    if getattr(libc, name)(*args) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
status = dict(l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\t" in l)
setuid = []
for top in ("/usr", "/bin", "/sbin", "/opt"):
    for root, dirs, files in os.walk(top):
        for f in files:
            p = os.path.join(root, f)
            try:
                if not os.path.islink(p) and os.stat(p).st_mode & 0o6000:
                    setuid.append(p)
            except OSError:
                pass
out = {
    "uid": os.getuid(), "groups": os.getgroups(),
    "cap_eff": status["CapEff"].strip(), "cap_bnd": status["CapBnd"].strip(),
    "no_new_privs": status["NoNewPrivs"].strip(), "seccomp": status["Seccomp"].strip(),
    "setuid": attempt(os.setuid, 0), "setgid": attempt(os.setgid, 0),
    "userns": attempt(syscall, "unshare", 0x10000000),
    "mount": attempt(syscall, "mount", b"none", b"/tmp", b"tmpfs", 0, None),
    "mknod": attempt(os.mknod, "/tmp/sda", 0o600 | 0o060000, os.makedev(8, 0)),
    "chroot": attempt(os.chroot, "/tmp"),
    "sudo": [p for p in setuid if os.path.basename(p) in ("sudo", "doas", "pkexec")],
    "setuid_files": setuid,
}
print(json.dumps(out))
''')
    assert seen["uid"] == 1000 and 0 not in seen["groups"], seen
    assert seen["cap_eff"] == "0000000000000000" and seen["cap_bnd"] == "0000000000000000", seen
    assert seen["no_new_privs"] == "1", seen  # setuid files gain nothing: seen["setuid_files"]
    assert seen["seccomp"] == "2", seen  # Docker's default syscall filter
    for what in ("setuid", "setgid", "userns", "mount", "mknod", "chroot"):
        assert not seen[what]["ok"] and seen[what]["errno"] == "EPERM", (what, seen[what])
    assert seen["sudo"] == [], seen


def test_a_cell_finds_no_docker_socket_and_no_hub_state(platform):
    hub, tokens = platform
    seen = attack(hub, tokens, r'''
def connect_unix(path):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
    finally:
        s.close()
sockets, state = [], []
for root, dirs, files in os.walk("/"):
    if root == "/":
        dirs[:] = [d for d in dirs if d not in ("proc", "sys")]
    for f in files:
        p = os.path.join(root, f)
        try:
            if os.stat(p, follow_symlinks=False).st_mode & 0o170000 == 0o140000:
                sockets.append(p)
        except OSError:
            pass
        if f in state_files:
            state.append(p)
out = {"sockets": sockets, "state": state,
       "docker_env": sorted(k for k in os.environ if k.startswith("DOCKER")),
       "secrets_in_env": sorted(k for k in os.environ
                                if k in ("CONFIGPROXY_AUTH_TOKEN", "JPY_COOKIE_SECRET")),
       "docker_sock": attempt(connect_unix, "/var/run/docker.sock"),
       "run_docker_sock": attempt(connect_unix, "/run/docker.sock")}
print(json.dumps(out))
''', state_files=STATE_FILES)
    assert not [s for s in seen["sockets"] if "docker" in s or "containerd" in s], seen["sockets"]
    assert seen["state"] == [], seen["state"]
    assert seen["docker_env"] == [] and seen["secrets_in_env"] == [], seen
    for what in ("docker_sock", "run_docker_sock"):
        assert not seen[what]["ok"] and seen[what]["errno"] == "ENOENT", seen[what]


def test_a_cell_cannot_reach_the_hubs_private_ports_or_admin_api(platform):
    hub, tokens = platform
    seen = attack(hub, tokens, r'''
server_token = os.environ["JUPYTERHUB_API_TOKEN"]
api = os.environ["JUPYTERHUB_API_URL"]
out = {
    "proxy_api": attempt(connect, hub_host, 8001),  # configurable-http-proxy's REST API
    "lease_service": attempt(connect, hub_host, 10101),
    "routes": http(f"http://{hub_host}:8001/api/routes"),
    "users": http(f"{api}/users", server_token),
    "victim": http(f"{api}/users/{victim}", server_token),
    "victim_token": http(f"{api}/users/{victim}/tokens", server_token),
    "proxy": http(f"{api}/proxy", server_token),
    "hub_up": http(f"{api}/")["status"],
}
print(json.dumps(out))
''', hub_host=hub.name, victim=VICTIM)
    assert seen["hub_up"] == 200  # the hub's API is reachable (servers need it) ...
    for what in ("proxy_api", "lease_service"):  # ... its private ports are not
        assert not seen[what]["ok"] and seen[what]["errno"] == "ECONNREFUSED", (what, seen[what])
    assert seen["routes"]["status"] is None, seen["routes"]
    assert seen["users"]["status"] == 403 and seen["proxy"]["status"] == 403, seen
    assert seen["victim"]["status"] == 404 and seen["victim_token"]["status"] == 403, seen
    assert tokens[VICTIM] not in json.dumps(seen)


def test_a_cell_cannot_reach_the_other_attendees_home(platform, docker_client, network):
    hub, tokens = platform
    victim_container = docker_client.containers.get(f"jupyter-{VICTIM}")
    attacker_container = docker_client.containers.get(f"jupyter-{ATTACKER}")
    # the victim's volume is mounted in the victim's container only
    assert [m.get("Name") for m in attacker_container.attrs["Mounts"]] == [
        f"opuhub-home-{ATTACKER}"]
    victim_ip = container_ip(victim_container, network.name)
    seen = attack(hub, tokens, r'''
server_token = os.environ["JUPYTERHUB_API_TOKEN"]
base = f"http://{victim_ip}:8888/user/{victim}"
found = [os.path.join(r, f) for top in ("/home", "/mnt", "/media", "/srv", "/tmp")
         for r, d, fs in os.walk(top) for f in fs if f == "secret.txt"]
out = {
    "found": found,
    "file": attempt(lambda: open("/home/jovyan/secret.txt").read()),
    "contents": http(f"{base}/api/contents/secret.txt"),
    "contents_with_her_token": http(f"{base}/api/contents/secret.txt", server_token),
    "contents_with_her_user_token": http(f"{base}/api/contents/secret.txt", user_token),
    "files_with_her_token": http(f"{base}/files/secret.txt", server_token),
    "kernels_with_her_token": http(f"{base}/api/kernels", server_token),
    "proxy_with_her_token": http(f"{hub_url}/user/{victim}/api/contents/secret.txt", user_token),
}
print(json.dumps(out))
''', victim_ip=victim_ip, victim=VICTIM, user_token=tokens[ATTACKER],
        hub_url=f"http://{hub.name}:8000")
    assert seen["found"] == [] and not seen["file"]["ok"], seen
    for what in ("contents", "contents_with_her_token", "contents_with_her_user_token",
                 "files_with_her_token", "kernels_with_her_token", "proxy_with_her_token"):
        # refused by the victim's server itself (or not reachable at all): never her files
        assert seen[what]["status"] in (None, 302, 403), (what, seen[what])
        assert SECRET not in seen[what]["body"], (what, seen[what])
    assert seen["contents_with_her_token"]["status"] == 403, seen  # it was reachable


def test_a_fork_bomb_stops_at_the_pids_limit_and_harms_nobody_else(platform):
    hub, tokens = platform
    seen = attack(hub, tokens, r'''
import subprocess
children, refused = [], None
try:
    for _ in range(1000):
        children.append(subprocess.Popen(["sleep", "120"]))
except OSError as e:
    refused = errno.errorcode.get(e.errno)
for child in children:
    child.kill()
for child in children:
    child.wait()
pids_max = open("/sys/fs/cgroup/pids.max").read().strip() if os.path.exists("/sys/fs/cgroup/pids.max") else None
print(json.dumps({"started": len(children), "refused": refused, "pids_max": pids_max}))
''')
    assert seen["refused"] == "EAGAIN" and seen["started"] < 512, seen
    assert seen["pids_max"] in ("512", None), seen
    # the victim's server and the hub did not notice
    out = hub.execute(VICTIM, tokens[VICTIM], "print(open('/home/jovyan/secret.txt').read())")
    assert out["stdout"].strip() == SECRET, out
    assert hub.api("GET", "/users").status_code == 200
    # and the attacker's own server recovered
    assert hub.execute(ATTACKER, tokens[ATTACKER], "print(6 * 7)")["stdout"].strip() == "42"
