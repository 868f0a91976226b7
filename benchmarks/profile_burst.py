"""Where a workshop burst's CPU goes, per attendee: the burst of benchmarks/bench_spawn.py (N
attendees at once: token, spawn, ready, a kernel and an OPU cell) on the real platform, with
CPU-seconds read before and after it from the cgroups (cgroup v1 cpuacct) and /proc of every
process that takes part.

    python benchmarks/profile_burst.py [--burst 30] [--only ours|stock]

Categories (CPU-seconds of the whole burst, and per attendee):

- user containers, split by process: the single-user server (``*singleuser``), its reaped
  children (the entry script's examples sync before its exec; kernels shut down: the attendees
  here leave theirs running), the kernels (``ipykernel_launcher``: start, warm-up, hand-over,
  first cell), tini and the rest; "exited"
  is the cgroup's total minus what its live processes account for (processes gone and reaped
  by nobody still alive, e.g. the hand-over of ``runc init``);
- the hub container, by process: JupyterHub, configurable-http-proxy, the lease service, rest;
- the Docker engine: dockerd, containerd (with the reaped ``containerd-shim ... start``
  helpers), the shims of the burst's containers (with their reaped ``runc`` calls);
- this script (the harness: 30 attendees' HTTP and websocket clients);
- the machine: all busy CPU (/proc/stat), and what no category above holds (the kernel's own
  threads, other work on the machine: on a shared machine this is mostly other people's).

Runs on the Docker host, as root (reads other processes' /proc entries); the containers,
volumes and network it makes are removed at the end.
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.bench_spawn import (  # noqa: E402
    CELL,
    bench_hubs,
    one_spawn,
    percentile,
)
from tests.helpers import run_on_kernel  # noqa: E402
from tests.images.hubcontainer import HubContainer  # noqa: E402

CPUACCT = Path("/sys/fs/cgroup/cpuacct/docker")
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int | str) -> tuple[float, float] | None:
    """(own, reaped children's) CPU-seconds of a process, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return (utime + stime) / TICK, (cutime + cstime) / TICK


def cmdline(pid: int | str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


def user_process_kind(cmd: str) -> str:
    if "ipykernel_launcher" in cmd:
        return "kernel"
    if "singleuser" in cmd:
        return "server"
    if "tini" in cmd:
        return "tini"
    return "other process"


def hub_process_kind(cmd: str) -> str:
    if "configurable-http-proxy" in cmd or cmd.startswith(("node", "/usr/bin/node")):
        return "proxy"
    if "jupyterhub" in cmd and "-m" not in cmd.split():
        return "hub"
    if "opuhub" in cmd or "lease" in cmd:
        return "lease service"
    if "tini" in cmd:
        return "tini"
    return "other process"


def container_cpu(cid: str) -> float:
    try:
        return int((CPUACCT / cid / "cpuacct.usage").read_text()) / 1e9
    except OSError:
        return 0.0


def container_processes(cid: str) -> list[int]:
    try:
        return [int(p) for p in (CPUACCT / cid / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def machine_busy() -> float:
    """Busy CPU-seconds of the whole machine since boot (everything but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / TICK


def host_processes() -> dict[str, list[int]]:
    found = collections.defaultdict(list)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        cmd = cmdline(entry.name)
        if not cmd:
            continue
        name = Path(cmd.split()[0]).name
        if name in ("dockerd", "containerd", "containerd-shim-runc-v2", "containerd-shim"):
            found[name].append(int(entry.name))
    return found


def snapshot(client, hub_name: str, users_of: str) -> dict[str, float]:
    """CPU-seconds so far, by category (see the module's docstring); user containers: those
    whose name holds ``users_of`` and "attendee" (DockerSpawner escapes "-" in user names)."""
    cpu: dict[str, float] = collections.defaultdict(float)
    cpu["machine, all busy CPU"] = machine_busy()
    own = resource.getrusage(resource.RUSAGE_SELF)
    cpu["harness (this script)"] = own.ru_utime + own.ru_stime
    user_ids = set()
    for container in client.containers.list(all=True):
        if container.name == hub_name:
            prefix, kind_of = "hub container: ", hub_process_kind
        elif users_of in container.name and "attendee" in container.name:
            prefix, kind_of = "user containers: ", user_process_kind
            user_ids.add(container.id)
        else:
            continue
        total = container_cpu(container.id)
        accounted = 0.0
        for pid in container_processes(container.id):
            times = proc_cpu(pid)
            if times is None:
                continue
            own_s, children_s = times
            kind = kind_of(cmdline(pid))
            cpu[prefix + kind] += own_s
            if children_s:
                # the server's process was the entry script before its exec: its reaped
                # children are the examples sync, and any kernel shut down since
                cpu[prefix + f"{kind}'s reaped children"] += children_s
            accounted += own_s + children_s
        cpu[prefix + "exited, unreaped"] += max(0.0, total - accounted)
        cpu[prefix.rstrip(": ") + ", total"] += total
    for name, pids in host_processes().items():
        for pid in pids:
            times = proc_cpu(pid)
            if times is None:
                continue
            if name.startswith("containerd-shim"):
                if not any(cid in cmdline(pid) for cid in user_ids):
                    continue
                label = "docker: shims of the user containers (+ their runc calls)"
            else:
                label = f"docker: {name} (+ reaped helpers)"
            cpu[label] += sum(times)
    return cpu


class Sampler(threading.Thread):
    """Every second: the machine's busy cores, and the cores used by all Docker containers
    (the cgroup "docker": the burst, its hub, and any other container running meanwhile)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float, float]] = []  # (t, machine, docker) cores
        self.stop = threading.Event()

    def run(self):
        last = (time.monotonic(), machine_busy(), docker_cpu())
        while not self.stop.wait(1.0):
            now = (time.monotonic(), machine_busy(), docker_cpu())
            span = now[0] - last[0]
            self.samples.append((now[0], (now[1] - last[1]) / span, (now[2] - last[2]) / span))
            last = now

    def summary(self, cores: int) -> str:
        if not self.samples:
            return "no samples"
        machine = [m for _, m, _ in self.samples]
        docker_ = [d for _, _, d in self.samples]
        idle = sum(1 for m in machine if m < cores - 0.25)
        return (f"machine busy {statistics.mean(machine):.2f} of {cores} cores on average "
                f"(seconds with over a quarter core idle: {idle}/{len(machine)}); Docker "
                f"containers {statistics.mean(docker_):.2f} cores; per second (machine/docker): "
                + " ".join(f"{m:.1f}/{d:.1f}" for _, m, d in self.samples))


def docker_cpu() -> float:
    try:
        return int((CPUACCT / "cpuacct.usage").read_text()) / 1e9
    except OSError:
        return 0.0


def table(before: dict, after: dict, attendees: int) -> list[tuple[str, float]]:
    rows = [(key, after[key] - before.get(key, 0.0)) for key in after]
    accounted = sum(v for k, v in rows if not k.endswith(", total") and not k.startswith("machine"))
    machine = dict(rows)["machine, all busy CPU"]
    rows.append(("machine: not in any category above (kernel threads, other work)",
                 machine - accounted))
    print(f"  {'where':<66} {'CPU-s':>8} {'per attendee':>13} {'share':>6}")
    for key, value in sorted(rows, key=lambda r: (r[0].startswith("machine"), -r[1])):
        if abs(value) < 0.005:
            continue
        share = f"{100 * value / machine:5.1f}%" if machine else ""
        print(f"  {key:<66} {value:8.2f} {value / attendees:13.3f} {share:>6}")
    return rows


def attendee(hub: HubContainer, user: str) -> float | str:
    """bench_spawn's attendee (token, spawn, ready, a kernel and an OPU cell), except that the
    kernel is left running: a kernel shut down is reaped by the server, and its CPU would be
    counted as the server's."""
    try:
        start = time.monotonic()
        token = hub.user_token(user)
        one_spawn(hub, user)
        base = f"{hub.url}/user/{user}/api/kernels"
        resp = requests.post(base, json={"name": "opu"}, timeout=600,
                             headers={"Authorization": f"token {token}"})
        assert resp.status_code == 201, resp.text
        ws_url = base.replace("http://", "ws://", 1) + f"/{resp.json()['id']}/channels"
        out = run_on_kernel(ws_url, token, user, getattr(hub, "cell", CELL), timeout=600)
        if out["error"] or out["stdout"].strip() != "(4, 100)":
            raise RuntimeError(str(out))
        return time.monotonic() - start
    except Exception as exc:  # noqa: BLE001 - reported, the other attendees go on
        return f"{user}: {type(exc).__name__}: {exc}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=30)
    parser.add_argument("--only", choices=("ours", "stock"))
    parser.add_argument("--hub-log", help="write each hub's log here ({name}: ours, stock)")
    args = parser.parse_args()
    with bench_hubs("prof", args.burst, args.only) as (client, tag, hubs):
        for name, hub in hubs.items():
            hub.start()
            users = [f"{tag}-{name}-attendee-{i:02d}" for i in range(1, args.burst + 1)]
            hub.create_users(*users)
            time.sleep(5)  # the hub's start-up work settles
            print(f"\n{name}: burst of {args.burst}, load average before "
                  f"{os.getloadavg()[0]:.1f}")
            before = snapshot(client, hub.name, tag)
            sampler = Sampler()
            sampler.start()
            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=len(users)) as pool:
                results = list(pool.map(lambda u, h=hub: attendee(h, u), users))
            wall = time.monotonic() - started
            durations = [r for r in results if isinstance(r, float)]
            failures = [r for r in results if not isinstance(r, float)]
            after = snapshot(client, hub.name, tag)
            sampler.stop.set()
            print(f"  {len(durations)}/{len(users)} ok in {wall:.1f} s; p50 "
                  f"{percentile(durations, 50):.1f} s, p95 {percentile(durations, 95):.1f} s; "
                  f"load average after {os.getloadavg()[0]:.1f}")
            for failure in failures:
                print(f"  failed: {failure}")
            table(before, after, args.burst)
            print("  " + sampler.summary(os.cpu_count() or 1))
            if args.hub_log:
                Path(args.hub_log.format(name=name)).write_bytes(hub.container.logs())
            for user in users:
                try:
                    hub.api("DELETE", f"/users/{user}/server")
                except Exception as exc:  # noqa: BLE001 - clean-up; the figures are taken
                    print(f"  stopping {user}: {type(exc).__name__}: {exc}")
            time.sleep(10)


if __name__ == "__main__":
    main()
