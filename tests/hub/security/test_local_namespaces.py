"""Local servers live in namespaces of their own: what one attendee's processes can see of
another's (kernel sockets, shared memory, processes) and what outlives a server (nothing).
Found by attacking the first version: a loopback-TCP kernel's output could be subscribed to by
any local user, SysV shared memory outlived its server, a user could rebind her server's port."""

from __future__ import annotations

import json
import os
import pwd
import time
from pathlib import Path

import pytest

from tests.helpers import wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="local isolation needs a hub running as root"),
]

ATTACKER, VICTIM = "ns-mallory", "ns-alice"


@pytest.fixture(scope="module")
def pair(hub):
    hub.create_users(ATTACKER, VICTIM)
    for user in (ATTACKER, VICTIM):
        assert hub.spawn(user).status_code in (201, 202)
    tokens = {user: hub.user_token(user) for user in (ATTACKER, VICTIM)}
    # the victim has a running kernel with output
    out = hub.execute(VICTIM, tokens[VICTIM], "SECRET = 'ns-secret'; print(SECRET)")
    assert out["stdout"].strip() == "ns-secret", out
    yield tokens
    for user in (ATTACKER, VICTIM):
        if hub.server_model(user):
            hub.stop_server(user)


def uid_of(user: str) -> int:
    return pwd.getpwnam(f"opu-{user}").pw_uid


def socket_owners(uid: int) -> dict[int, int]:
    """Socket inode -> pid, for the processes of ``uid`` (read as root)."""
    owners = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            for fd in (entry / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    owners[int(target[8:-1])] = int(entry.name)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return owners


def test_kernels_listen_on_no_tcp_port(hub, pair):
    """The victim's kernels talk to her server over unix sockets in her private /tmp; on
    loopback TCP only her server's HTTP port (token-protected) is left to find, and in each
    running kernel (her pre-started one runs now) ipykernel's IOPub pipe: a PULL socket that
    only takes in the output of the kernel's forked subprocesses, signed with a random key of
    the kernel's (nothing to subscribe to)."""
    victim_uid = uid_of(VICTIM)
    out = hub.execute(ATTACKER, pair[ATTACKER], (
        "listening = set()\n"
        "for table in ('/proc/net/tcp', '/proc/net/tcp6'):\n"
        "    for line in open(table).read().splitlines()[1:]:\n"
        "        f = line.split()\n"
        f"        if f[3] == '0A' and int(f[7]) == {victim_uid}:\n"
        "            listening.add((int(f[1].split(':')[1], 16), int(f[9])))\n"
        "import json; print(json.dumps(sorted(listening)))\n"
    ))
    listeners = json.loads(out["stdout"])
    owners = socket_owners(victim_uid)
    by_process: dict[int, list[int]] = {}
    for port, inode in listeners:
        assert inode in owners, (port, inode, owners)
        by_process.setdefault(owners[inode], []).append(port)
    servers = 0
    for pid, ports in by_process.items():
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        if "ipykernel_launcher" in argv:
            connection = json.loads(Path(argv[argv.index("-f") + 1]).read_text())
            assert connection["transport"] == "ipc", connection  # no channel on TCP
            assert len(ports) == 1, (argv, ports)  # the IOPub pipe only
        else:
            assert any("singleuser" in a for a in argv), argv  # nothing else listens
            servers += 1
            assert len(ports) == 1, (argv, ports)
    assert servers <= 1, by_process

    victim = hub.execute(VICTIM, pair[VICTIM], "print(len(open('/proc/sysvipc/shm').read().splitlines()) - 1)")
    assert victim["stdout"].strip() == "0", victim


def test_a_connection_flood_runs_out_of_the_attackers_descriptors_first(hub, pair):
    """Each user process may hold 4096 descriptors (one attendee's sockets starved the hub of
    descriptors before). The hub raises its own limit to the system's ceiling where it may
    (CAP_SYS_RESOURCE; not in this sandbox, where it stays at 20,000)."""
    hub_port = int(hub.env["OPUHUB_HUB_BIND_URL"].rsplit(":", 1)[1])
    out = hub.execute(ATTACKER, pair[ATTACKER], (
        "import errno, resource, socket\n"
        "socks, stop = [], None\n"
        "try:\n"
        "    for _ in range(6000):\n"
        "        s = socket.socket(); s.setblocking(False)\n"
        f"        s.connect_ex(('127.0.0.1', {hub_port})); socks.append(s)\n"
        "except OSError as e:\n"
        "    stop = errno.errorcode[e.errno]\n"
        "print(len(socks), stop, resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
        "for s in socks: s.close()\n"
    ))
    opened, stop, limit = out["stdout"].split()
    assert stop == "EMFILE" and int(limit) == 4096 and int(opened) < 4096, out
    assert hub.api("GET", "/").status_code == 200


def test_shared_memory_is_private_and_dies_with_the_server(hub, pair):
    make_segment = (
        "import ctypes\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "shmid = libc.shmget(0, 16 * 2**20, 0o1666)\n"  # IPC_PRIVATE, IPC_CREAT | 0666
        "print(shmid)\n"
    )
    out = hub.execute(ATTACKER, pair[ATTACKER], make_segment)
    assert int(out["stdout"]) >= 0, out
    attacker_uid = uid_of(ATTACKER)

    def host_segments():
        lines = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
        return [line for line in lines if int(line.split()[7]) == attacker_uid]

    assert host_segments() == []  # not in the host's (or anyone else's) IPC namespace
    victim = hub.execute(VICTIM, pair[VICTIM], "print(len(open('/proc/sysvipc/shm').read().splitlines()) - 1)")
    assert victim["stdout"].strip() == "0", victim


def test_a_stopped_server_leaves_no_process_behind(hub, pair):
    """A background job started from a cell, and anything else the user ran, ends with the
    server: nobody can keep its port or run on after a stop, cull or lease expiry."""
    out = hub.execute(ATTACKER, pair[ATTACKER], (
        "import subprocess\n"
        "p = subprocess.Popen(['sleep', '3600'], start_new_session=True)\n"
        "print(p.pid)\n"
    ))
    assert int(out["stdout"]) > 0, out
    attacker_uid = uid_of(ATTACKER)

    def processes_of(uid):
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if entry.stat().st_uid == uid:
                        found.append(int(entry.name))
                except FileNotFoundError:
                    pass
        return found

    assert processes_of(attacker_uid)  # the server, kernel and sleep run now
    hub.stop_server(ATTACKER)
    wait_until(lambda: not processes_of(attacker_uid), 30, "every process of the account to end")
    time.sleep(0.5)
    assert processes_of(attacker_uid) == []


def test_a_kernel_cannot_take_over_its_own_server(hub, pair):
    """Her server runs as her uid too: were it dumpable, her kernel could ptrace it or write
    its memory and make it serve pages on the hub's origin (token theft). It is not."""
    out = hub.execute(VICTIM, pair[VICTIM], (
        "import ctypes, os, json\n"
        "server = os.getppid()\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "attach = libc.ptrace(16, server, None, None)\n"  # PTRACE_ATTACH
        "err = ctypes.get_errno()\n"
        "if attach == 0:\n"
        "    os.waitpid(server, 0); libc.ptrace(17, server, None, None)\n"  # let it go again
        "try:\n"
        "    open(f'/proc/{server}/mem', 'rb').close(); mem = 'opened'\n"
        "except OSError as e:\n"
        "    mem = type(e).__name__\n"
        "cmd = open(f'/proc/{server}/cmdline').read()\n"
        "print(json.dumps([attach, err, mem, 'singleuser' in cmd]))\n"
    ))
    attach, err, mem, is_server = json.loads(out["stdout"])
    assert is_server, out  # the parent really is her server (opuhub- or jupyterhub-singleuser)
    assert attach == -1 and err == 1, out  # EPERM
    assert mem == "PermissionError", out


def test_a_module_planted_in_the_home_does_not_replace_the_servers_start(hub, pair):
    """The start helper runs with the home as working directory: `python -m` would import a
    planted ~/opuhub/singleuser_start.py first, and with it start the server any way she
    likes (her own config, her own pages). It runs with -P."""
    out = hub.execute(VICTIM, pair[VICTIM], (
        "import os\n"
        "os.makedirs('opuhub', exist_ok=True)\n"
        "open('opuhub/__init__.py', 'w').close()\n"
        "open('opuhub/singleuser_start.py', 'w').write("
        "\"open(__import__('os').path.expanduser('~/PLANTED_RAN'), 'w').write('1')\\n\")\n"
        "print('planted')\n"
    ))
    assert out["stdout"].strip() == "planted", out
    hub.stop_server(VICTIM)
    assert hub.spawn(VICTIM).status_code in (201, 202)
    pair[VICTIM] = hub.user_token(VICTIM)
    out = hub.execute(VICTIM, pair[VICTIM], "import os; print(os.path.exists('PLANTED_RAN'))")
    assert out["stdout"].strip() == "False", out
