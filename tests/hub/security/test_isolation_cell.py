"""An attendee attacks from a notebook cell of her own server (issue 9).

The session hub runs as root with local servers, so each attendee's server and kernels run
under a Unix account of their own (``opu-<name>``, :mod:`opuhub.local_spawner`) in a sandbox
(:mod:`opuhub.sandbox`). From her kernel the attacker tries to read the victim's files, the
hub's secrets and databases, other processes' environment and root directories, to change the
hub's code or configuration, to signal the victim's processes and the hub, and to open the
OPU device that the victim holds. Every attempt fails, and the victim's server, kernel and
files are intact afterwards. The victim's own kernel doing the same shows what was there.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from opuhub import secrets
from tests.hub.hubtest import REPO
from tests.hub.security.attendees import ATTEMPT, Attendee, failed

pytestmark = pytest.mark.slow

ATTACKER, VICTIM = "sec-mallory", "sec-bob"
SECRET = "victim-home-secret-51c0de"
STATE_FILES = [secrets.CLI_TOKEN, secrets.PROXY_TOKEN, secrets.ADMIN_PASSWORD,
               secrets.WORKSHOP_PASSWORD, secrets.COOKIE_SECRET, "jupyterhub.sqlite",
               "opu_leases.sqlite", "workshop-accounts.sqlite"]


def find_pids(uid: int, needle: str = "") -> list[int]:
    """Host side (root): processes of ``uid`` whose command line contains ``needle``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid and needle in (entry / "cmdline").read_text():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def pair(hub):
    attacker = Attendee.create(hub, ATTACKER)
    victim = Attendee.create(hub, VICTIM)
    victim.start("hardware")  # the victim holds the OPU
    attacker.start("simulator")
    # the victim's kernel writes a file and shows what there is to steal
    victim.seen = victim.run(
        "import json, os\n"
        f"open(os.path.expanduser('~/secret.txt'), 'w').write({SECRET!r})\n"
        f"fd = os.open({hub.devices[0]!r}, os.O_RDWR); os.close(fd)\n"
        "print(json.dumps({'uid': os.getuid(), 'home': os.path.expanduser('~'),\n"
        "                  'api_token': os.environ['JUPYTERHUB_API_TOKEN']}))\n")
    assert victim.seen["uid"] == victim.uid != attacker.uid
    assert (victim.home / "secret.txt").read_text() == SECRET
    victim.kernel = victim.start_kernel()  # stays up for the attacker to go after
    victim.server_pid = hub.remember_pid(VICTIM)
    [victim.kernel_pid] = find_pids(victim.uid, victim.kernel)
    yield attacker, victim
    victim.request("DELETE", f"/user/{VICTIM}/api/kernels/{victim.kernel}")
    attacker.stop()
    victim.stop()
    assert hub.leases() == []  # the next modules race for the device


def attack(attacker: Attendee, body: str, **values) -> dict:
    """Run ``body`` after the ATTEMPT prelude in the attacker's kernel; ``values`` are bound
    as Python literals first. The cell prints one JSON object."""
    bindings = "".join(f"{name} = {value!r}\n" for name, value in values.items())
    return attacker.run(ATTEMPT + bindings + body)


def test_a_cell_cannot_read_the_victims_files(pair, hub):
    attacker, victim = pair
    seen = attack(attacker, """
out = {
    "file": attempt(read, home + "/secret.txt"),
    "list_home": attempt(os.listdir, home),
    "list_homes": attempt(os.listdir, os.path.dirname(home)),
    "via_root": attempt(read, f"/proc/{server}/root{home}/secret.txt"),
    "via_cwd": attempt(read, f"/proc/{kernel}/cwd/secret.txt"),
}
print(json.dumps(out))
""", home=str(victim.home), server=victim.server_pid, kernel=victim.kernel_pid)
    homes = seen.pop("list_homes")  # her sandbox may show the folder, with her home only
    assert failed(homes, "PermissionError") or VICTIM not in homes["value"], homes
    for what, outcome in seen.items():
        assert failed(outcome, "PermissionError", "FileNotFoundError"), (what, outcome)
    assert SECRET not in json.dumps(seen)
    # where the homes are visible at all, they are closed: the victim's is hers alone
    info = victim.home.stat()
    assert info.st_uid == victim.uid and stat.S_IMODE(info.st_mode) == 0o700
    assert stat.S_IMODE(victim.home.parent.stat().st_mode) & 0o004 == 0  # no listing


def test_a_cell_cannot_read_the_hubs_state(pair, hub):
    attacker, victim = pair
    hub_pid = hub.proc.pid
    seen = attack(attacker, """
out = {"list": attempt(os.listdir, state)}
for name in files:
    out[name] = attempt(read, f"{state}/{name}")
    out["via root " + name] = attempt(read, f"/proc/{hub}/root{state}/{name}")
    out["via cwd " + name] = attempt(read, f"/proc/{hub}/cwd/state/{name}")
print(json.dumps(out))
""", state=str(hub.state), files=STATE_FILES, hub=hub_pid)
    for what, outcome in seen.items():
        assert failed(outcome, "PermissionError", "FileNotFoundError"), (what, outcome)
    leaked = json.dumps(seen)
    for name in STATE_FILES[:5]:
        assert (hub.state / name).read_text().strip() not in leaked
    assert Path(f"/proc/{hub_pid}/cwd").resolve() == hub.root  # the cwd route was a real one


def test_a_cell_cannot_read_other_processes_environment(pair, hub):
    attacker, victim = pair
    targets = {"hub": hub.proc.pid, "victim server": victim.server_pid,
               "victim kernel": victim.kernel_pid}
    seen = attack(attacker, """
me = os.getuid()
out = {"targets": {}, "readable": [], "others": 0, "cmdlines": []}
for label, pid in targets.items():
    out["targets"][label] = {
        "environ": attempt(read, f"/proc/{pid}/environ"),
        "root": attempt(os.listdir, f"/proc/{pid}/root"),
        "fds": attempt(os.listdir, f"/proc/{pid}/fd"),
        "mem": attempt(read, f"/proc/{pid}/mem"),
        "maps": attempt(read, f"/proc/{pid}/maps"),
    }
for pid, uid in procs():
    if uid != me:
        out["others"] += 1
        environ = attempt(read, f"/proc/{pid}/environ")
        if environ["ok"] and environ["value"]:  # kernel threads and zombies have none
            out["readable"].append(pid)
    cmdline = attempt(read, f"/proc/{pid}/cmdline")
    if cmdline["ok"]:
        out["cmdlines"].append(cmdline["value"])
print(json.dumps(out))
""", targets=targets)
    # each server has a PID namespace of its own: the hub's and the victim's processes are
    # not even there (and were they, another uid's /proc entries refuse)
    for label, attempts in seen["targets"].items():
        for what, outcome in attempts.items():
            assert failed(outcome, "PermissionError", "FileNotFoundError"), (label, what, outcome)
    assert seen["others"] == 0  # the sweep sees the attacker's own processes only
    assert seen["readable"] == [], seen["readable"]
    # nor does any secret sit on a command line, which every process can read
    secret_values = {name: (hub.state / name).read_text().strip() for name in STATE_FILES[:4]}
    secret_values.update({"victim's server token": victim.seen["api_token"],
                          "victim's token": victim.token})
    cmdlines = "\n".join(seen["cmdlines"])
    for name, value in secret_values.items():
        assert value not in cmdlines, f"{name} is on a command line"


def test_a_cell_cannot_change_the_hub_or_the_repository(pair, hub):
    attacker, victim = pair
    config = REPO / "hub" / "jupyterhub_config.py"
    before = hashlib.sha256(config.read_bytes()).hexdigest()
    planted = ["hub/opuhub/sec_planted.py", "sec_planted.txt"]
    seen = attack(attacker, """
import sysconfig
def append(path):
    with open(path, "a") as f:
        f.write("\\nc.JupyterHub.admin_users = {'sec-mallory'}\\n")
def create(path):
    with open(path, "x") as f:
        f.write("import os")
out = {"config": attempt(append, f"{repo}/hub/jupyterhub_config.py"),
       "pth": attempt(create, sysconfig.get_paths()["purelib"] + "/sec_planted.pth"),
       "sitecustomize": attempt(create, sysconfig.get_paths()["purelib"] + "/sitecustomize.py")}
for path in planted:
    out[path] = attempt(create, f"{repo}/{path}")
writable, entries = [], 0
# the sandbox may show the checkout only in part (e.g. under a private /tmp) but keeps the
# hub's environment: walk both, each path once
seen_paths = set()
for top in (repo, sys.prefix):
    for root, dirs, files in os.walk(top):
        for path in [root] + [os.path.join(root, f) for f in files]:
            if path in seen_paths:
                continue
            seen_paths.add(path)
            entries += 1
            if not os.path.islink(path) and os.access(path, os.W_OK):
                writable.append(path)
out["writable"], out["entries"] = writable[:20], entries
print(json.dumps(out))
""", repo=str(REPO), planted=planted)
    assert seen.pop("writable") == []
    assert seen.pop("entries") > 1000  # the hub's Python environment at least was there
    for what, outcome in seen.items():
        assert failed(outcome, "PermissionError", "FileNotFoundError"), (what, outcome)
    assert hashlib.sha256(config.read_bytes()).hexdigest() == before
    for path in planted:
        assert not (REPO / path).exists()


def test_a_cell_cannot_signal_the_victim_or_the_hub(pair, hub):
    attacker, victim = pair
    seen = attack(attacker, """
me = os.getuid()
out = {"kill": {}, "signalled": []}
for pid in victims:
    out["kill"][str(pid)] = attempt(os.kill, pid, signal.SIGKILL)
for pid, uid in procs():  # signal 0: the permission check alone, for everyone else
    if uid != me and attempt(os.kill, pid, 0)["ok"]:
        out["signalled"].append(pid)
print(json.dumps(out))
""", victims=[victim.server_pid, victim.kernel_pid])
    for pid, outcome in seen["kill"].items():  # not even visible from her PID namespace
        assert failed(outcome, "PermissionError", "ProcessLookupError"), (pid, outcome)
    assert hub.proc.pid not in seen["signalled"]
    assert seen["signalled"] == [], seen["signalled"]
    # the victim did not notice
    kernel = victim.request("GET", f"/user/{VICTIM}/api/kernels/{victim.kernel}")
    assert kernel.status_code == 200 and kernel.json()["execution_state"] != "dead", kernel.text
    assert hub.server_model(VICTIM)["ready"]
    assert os.path.exists(f"/proc/{victim.kernel_pid}")


def test_a_cell_cannot_open_the_device_the_victim_holds(pair, hub):
    attacker, victim = pair
    node = hub.devices[0]
    seen = attack(attacker, """
out = {"rw": attempt(os.open, node, os.O_RDWR), "ro": attempt(os.open, node, os.O_RDONLY),
       "wo": attempt(os.open, node, os.O_WRONLY), "chmod": attempt(os.chmod, node, 0o666),
       "chown": attempt(os.chown, node, os.getuid(), os.getgid()),
       "env": {k: v for k, v in os.environ.items() if k.startswith("OPU_")}}
print(json.dumps(out))
""", node=node)
    env = seen.pop("env")
    assert env["OPU_LEASE_STATUS"] == "none" and env["OPU_BACKEND"] == "simulator", env
    for what, outcome in seen.items():
        assert failed(outcome, "PermissionError"), (what, outcome)
    # only the holder's account may open it (the victim's kernel did, in the fixture)
    info = os.stat(node)
    assert info.st_uid == victim.uid and stat.S_IMODE(info.st_mode) & 0o077 == 0
    assert [lease["user"] for lease in hub.leases()] == [VICTIM]
