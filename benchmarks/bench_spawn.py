"""Spawn latency and a workshop burst on the real platform, ours against the stock baseline, side
by side in one run: hub image → spawner → user containers, all on a Docker network this script
creates (traffic goes only to those containers).

    python benchmarks/bench_spawn.py [--latency-runs 10] [--burst 30] [--burst-rounds 1]
                                     [--only ours|stock]

- ours: the hub image as compose runs it (OPUDockerSpawner: admission, fast readiness) and
  opuhub/singleuser (opuhub-singleuser, pre-started kernel);
- stock: the same hub image running benchmarks/stock/jupyterhub_config.py (stock DockerSpawner)
  and an image made here from opuhub/singleuser with the stock entry point and without our
  server settings (stock `jupyterhub-singleuser`, same base, same Python packages).

Prints, for each and as ratios ours/stock: spawn latency (request → ready, warm image, median,
runs alternating between the two); login → first OPU cell result for one attendee (token,
spawn, ready, a kernel and the cell: what a browser does, through the API); a burst of N
attendees doing that at once (all must succeed; p50/p95); memory per idle user container.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.images.conftest import Containers  # noqa: E402
from tests.images.hubcontainer import HubContainer, remove_tagged  # noqa: E402

HERE = Path(__file__).resolve().parent
# not tests.images' label: a test session's clean-up removes every container and network with
# that one, and other people's test runs on this machine would end a benchmark midway
BENCH_LABEL = "opuhub-bench"


class BenchContainers(Containers):
    """Containers started with the benchmark's own label (see BENCH_LABEL)."""

    def run(self, image: str, command=None, **kwargs):
        kwargs.pop("labels", None)
        name = kwargs.pop("name", f"opuhub-bench-{uuid.uuid4().hex[:10]}")
        container = self.client.containers.run(image, command, detach=True, name=name,
                                               labels={BENCH_LABEL: "1"}, **kwargs)
        self.started.append(container)
        return container

HUB_IMAGE = "opuhub/hub:latest"
SINGLEUSER_IMAGE = "opuhub/singleuser:latest"
STOCK_IMAGE = "opuhub/bench-stock-singleuser:latest"
STOCK_TOKEN = "bench-stock-" + uuid.uuid4().hex
CELL = ("import numpy as np\nopu.fit1d(n_features=64)\n"
        "print(opu.transform(np.ones((4, 64), dtype=np.uint8)).shape)")
STOCK_CELL = ("import numpy as np\nfrom opu_kernel import OPU\nopu = OPU(n_components=100)\n"
              "opu.fit1d(n_features=64)\n"
              "print(opu.transform(np.ones((4, 64), dtype=np.uint8)).shape)")


def stock_image(client) -> str:
    """opuhub/singleuser with what makes it ours taken away: stock entry point and command,
    no jupyter_server_config.json of ours (all server extensions, no pre-started kernel)."""
    dockerfile = f"""FROM {SINGLEUSER_IMAGE}
USER root
RUN rm -f /opt/opuhub/venv/etc/jupyter/jupyter_server_config.json
USER 1000:1000
ENTRYPOINT ["/usr/bin/tini", "-g", "--"]
CMD ["jupyterhub-singleuser"]
"""
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=STOCK_IMAGE, rm=True,
                        labels={BENCH_LABEL: "1"})
    return STOCK_IMAGE


class StockHub(HubContainer):
    """The same hub image, running the stock configuration."""

    def __init__(self, containers, network, tag, burst):
        super().__init__(containers, HUB_IMAGE, STOCK_IMAGE, network, tag,
                         binds={str(HERE / "stock"): "/srv/bench"})
        self.name = self.name.replace("opuhub-test-hub", "opuhub-stock-hub")
        self.env = {"BENCH_STOCK_IMAGE": STOCK_IMAGE, "BENCH_NETWORK": network.name,
                    "BENCH_TAG": tag, "BENCH_TOKEN": STOCK_TOKEN,
                    "BENCH_HUB_CONNECT_URL": f"http://{self.name}:8081",
                    "BENCH_SPAWN_LIMIT": str(burst + 5)}
        self.volumes["/var/run/docker.sock"] = {"bind": "/var/run/docker.sock", "mode": "rw"}
        self.cell = STOCK_CELL

    def start(self, timeout: float = 120):
        self.client.volumes.create(self.state_volume, labels={BENCH_LABEL: "1"})
        self.container = self.containers.run(
            self.image, ["jupyterhub", "-f", "/srv/bench/jupyterhub_config.py"],
            name=self.name, hostname=self.name, environment=self.env, volumes=self.volumes,
            network=self.network.name)
        self.wait_ready(timeout)
        return self

    @property
    def token(self) -> str:
        return STOCK_TOKEN


def wait_ready(hub: HubContainer, user: str, timeout: float = 600) -> None:
    """Until ``user``'s server is ready, from the hub's progress event stream: what the spawn
    page's browser listens to (one long request the hub writes to; polling the user model,
    30 attendees twice a second, cost the hub more CPU than their spawns' own API calls)."""
    url = f"{hub.url}/hub/api/users/{user}/server/progress"
    deadline = time.monotonic() + timeout
    # the hub writes a keep-alive every 8 s: a read timeout of 60 s means a dead hub
    with requests.get(url, headers={"Authorization": f"token {hub.token}"}, stream=True,
                      timeout=(10, 60)) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{user}'s progress: {response.status_code} {response.text}")
        for line in response.iter_lines():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{user}'s server not ready within {timeout}s")
            if not line.startswith(b"data:"):
                continue
            event = json.loads(line[5:])
            if event.get("ready"):
                return
            if event.get("failed"):
                raise RuntimeError(f"{user}'s spawn failed: {event.get('message')}\n"
                                   f"{hub.logs()[-3000:]}")
    raise RuntimeError(f"{user}'s progress stream ended before the server was ready")


def one_spawn(hub: HubContainer, user: str) -> float:
    start = time.monotonic()
    response = hub.request_spawn(user)
    assert response.status_code in (201, 202), response.text
    wait_ready(hub, user)
    return time.monotonic() - start


def one_attendee(hub: HubContainer, user: str) -> float:
    """Login (a token), spawn, ready (as the spawn page learns it), a kernel and an OPU
    cell's result."""
    start = time.monotonic()
    token = hub.user_token(user)
    one_spawn(hub, user)
    out = hub.execute(user, token, getattr(hub, "cell", CELL), timeout=600)
    if out["error"] or out["stdout"].strip() != "(4, 100)":
        raise RuntimeError(f"{user}: {out}")
    return time.monotonic() - start


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _attempt(hub, user):
    try:
        return one_attendee(hub, user)
    except Exception as exc:  # noqa: BLE001 - reported, the other attendees go on
        return f"{user}: {type(exc).__name__}: {exc}"


def burst(hub: HubContainer, users: list[str]) -> tuple[list[float], list[str], float]:
    hub.create_users(*users)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        results = list(pool.map(lambda u: _attempt(hub, u), users))
    wall = time.monotonic() - started
    return ([r for r in results if isinstance(r, float)],
            [r for r in results if not isinstance(r, float)], wall)


def idle_memory(client, hub: HubContainer, tag: str, platform: str) -> list[float]:
    usage = []
    for container in client.containers.list(filters={"name": tag}):
        # DockerSpawner escapes the user name ("-" → "-2d"): match its words
        if container.name == hub.name or "attendee" not in container.name \
                or platform not in container.name:
            continue
        memory = container.stats(stream=False)["memory_stats"]
        used = memory.get("usage", 0) - memory.get("stats", {}).get("inactive_file", 0)
        usage.append(used / 2**20)
    return usage


def line(label: str, ours: float | None, stock: float | None, unit: str = "s") -> None:
    def fmt(v):
        return "—" if v is None else f"{v:.2f} {unit}"
    ratio = f"{ours / stock:.2f}×" if ours and stock else "—"
    print(f"  {label:<44} ours {fmt(ours):>10}   stock {fmt(stock):>10}   ours/stock {ratio}")


def both_hubs(client, containers, network, tag: str, burst_size: int,
              only: str | None) -> dict[str, HubContainer]:
    """Our hub and the stock one (or the ``only`` one), not started yet, on ``network``."""
    hubs: dict[str, HubContainer] = {}
    if only != "stock":
        hubs["ours"] = HubContainer(
            containers, HUB_IMAGE, SINGLEUSER_IMAGE, network, tag,
            env={"OPUHUB_CONCURRENT_SPAWN_LIMIT": str(burst_size + 5),
                 "OPUHUB_START_TIMEOUT": "600", "OPUHUB_HTTP_TIMEOUT": "600",
                 # production intervals, as the stock hub's (the test harness polls every
                 # second: 30 servers would then queue 30 inspects/s on DockerSpawner's
                 # one Docker thread, ahead of the creates and starts)
                 "OPUHUB_POLL_INTERVAL": "30", "OPUHUB_LEASE_CHECK_INTERVAL": "15",
                 # e.g. OPUHUB_START_CONCURRENCY=3 in this script's environment
                 **{k: v for k, v in os.environ.items() if k.startswith("OPUHUB_")}})
    if only != "ours":
        stock_image(client)
        hubs["stock"] = StockHub(containers, network, tag, burst_size)
    return hubs


@contextlib.contextmanager
def bench_hubs(prefix: str, burst_size: int, only: str | None):
    """(client, tag, hubs): our hub and the stock one, not started yet, on a network of their
    own; every container and network they made is removed afterwards."""
    client = docker.from_env(timeout=600)
    tag = f"{prefix}{uuid.uuid4().hex[:6]}"
    network = client.networks.create(f"opuhub-bench-net-{tag}", driver="bridge",
                                     labels={BENCH_LABEL: "1"})
    containers = BenchContainers(client)
    try:
        yield client, tag, both_hubs(client, containers, network, tag, burst_size, only)
    finally:
        containers.cleanup(failed=False)
        remove_tagged(client, tag)
        try:
            network.remove()
        except docker.errors.NotFound:
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-runs", type=int, default=10)
    parser.add_argument("--burst", type=int, default=30)
    parser.add_argument("--burst-rounds", type=int, default=1,
                        help="bursts of each platform, in alternating order")
    parser.add_argument("--only", choices=("ours", "stock"))
    args = parser.parse_args()
    results: dict[str, dict] = {"ours": {}, "stock": {}}
    with bench_hubs("bench", args.burst, args.only) as (client, tag, hubs):
        for hub in hubs.values():
            hub.start()
        for image in (SINGLEUSER_IMAGE, STOCK_IMAGE, HUB_IMAGE):
            try:
                print(f"image {image}: {client.images.get(image).attrs['Size'] / 1e6:.0f} MB")
            except docker.errors.ImageNotFound:
                pass
        # spawn latency, alternating ours/stock so that both see the same machine load
        latency = {name: [] for name in hubs}
        first = {name: [] for name in hubs}
        for hub in hubs.values():
            user = f"{tag}-latency"
            hub.create_users(user)
            one_spawn(hub, user)  # first start creates the home volume: not counted
            hub.stop_server(user)
        for _ in range(args.latency_runs):
            for name, hub in hubs.items():
                latency[name].append(one_spawn(hub, f"{tag}-latency"))
                hub.stop_server(f"{tag}-latency")
        # one attendee: login → first OPU cell (a fresh user each run: a first login)
        for run in range(3):
            for name, hub in hubs.items():
                user = f"{tag}-first-{run}"
                hub.create_users(user)
                first[name].append(one_attendee(hub, user))
                hub.stop_server(user)
        for name in hubs:
            results[name]["latency"] = statistics.median(latency[name])
            results[name]["first"] = statistics.median(first[name])
            print(f"{name}: spawn latency runs {[round(v, 2) for v in latency[name]]}; "
                  f"login → first cell {[round(v, 2) for v in first[name]]}")
        # the bursts, one platform after the other (each gets the whole machine); with
        # several rounds the order alternates, so that a drift of the machine's other load
        # does not always favour the same one
        rounds: list[dict[str, dict]] = []
        for number in range(args.burst_rounds):
            order = list(hubs.items())
            rounds.append({})
            for name, hub in order if number % 2 == 0 else order[::-1]:
                # 28 characters at most (opuhub.usernames)
                users = [f"{tag}-{name}-attendee{number}{i:02d}"
                         for i in range(1, args.burst + 1)]
                load = os.getloadavg()[0]
                durations, failures, wall = burst(hub, users)
                rounds[-1][name] = dict(
                    ok=len(durations), wall=wall, load=(load, os.getloadavg()[0]),
                    p50=percentile(durations, 50) if durations else None,
                    p95=percentile(durations, 95) if durations else None)
                print(f"{name}: burst {len(durations)}/{len(users)} ok in {wall:.1f} s (load "
                      f"average {load:.1f} before, {os.getloadavg()[0]:.1f} after); per "
                      f"attendee {sorted(round(d, 1) for d in durations)}", flush=True)
                for failure in failures:
                    print(f"  {name} failed: {failure}")
                if number == 0:
                    time.sleep(15)  # let the servers go idle
                    memory = idle_memory(client, hub, tag, name)
                    results[name]["memory"] = statistics.median(memory) if memory else None
                for user in users:  # free the machine for the next platform
                    try:
                        hub.api("DELETE", f"/users/{user}/server")
                    except Exception as exc:  # noqa: BLE001 - clean-up; the figures are taken
                        print(f"  {name}: stopping {user}: {type(exc).__name__}: {exc}")
                time.sleep(10)
        ours, stock = results["ours"], results["stock"]
        print(f"\nside by side ({args.burst} attendees in the burst):")
        line("spawn latency, request → ready, median", ours.get("latency"), stock.get("latency"))
        line("login → first OPU cell, one attendee, median", ours.get("first"), stock.get("first"))
        for number, result in enumerate(rounds, 1):
            o, s_ = result.get("ours", {}), result.get("stock", {})
            label = f"burst round {number}"
            line(f"{label} p50 ({o.get('ok')}/{s_.get('ok')} ok)", o.get("p50"), s_.get("p50"))
            line(f"{label} p95", o.get("p95"), s_.get("p95"))
            line(f"{label}, all done", o.get("wall"), s_.get("wall"))
        line("idle memory per user container, median", ours.get("memory"), stock.get("memory"),
             "MiB")


if __name__ == "__main__":
    main()
