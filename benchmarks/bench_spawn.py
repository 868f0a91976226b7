"""Spawn latency and a workshop burst on the real platform: hub image → DockerSpawner → user
containers, all on a Docker network this script creates (traffic goes only to those containers).

    python benchmarks/bench_spawn.py [--latency-runs 10] [--burst 20]

Prints: spawn latency with a warm image (request → server ready, median of N); a burst of users
who log in (API token), spawn and run an OPU cell concurrently (all must succeed; p50/p95 of
request → cell result); memory per idle user container; image sizes. Needs a Docker engine
(scripts/ensure-docker) and the images (make images).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.images.conftest import LABEL, Containers  # noqa: E402
from tests.images.hubcontainer import HubContainer, remove_tagged  # noqa: E402

HUB_IMAGE = "opuhub/hub:latest"
SINGLEUSER_IMAGE = "opuhub/singleuser:latest"
CELL = ("import numpy as np\nopu.fit1d(n_features=64)\n"
        "print(opu.transform(np.ones((4, 64), dtype=np.uint8)).shape)")


def wait_ready(hub: HubContainer, user: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = hub.server_model(user)
        if model and model.get("ready"):
            return
        if model is None:
            raise RuntimeError(f"{user}'s spawn failed:\n{hub.logs()[-3000:]}")
        time.sleep(0.2)
    raise TimeoutError(f"{user}'s server not ready within {timeout}s")


def spawn_latency(hub: HubContainer, runs: int, tag: str) -> list[float]:
    user = f"{tag}-latency"  # the tag in every name lets the clean-up find what the hub made
    hub.create_users(user)
    hub.spawn(user)  # first start creates the home volume: not counted
    hub.stop_server(user)
    seconds = []
    for _ in range(runs):
        start = time.monotonic()
        response = hub.request_spawn(user)
        assert response.status_code in (201, 202), response.text
        wait_ready(hub, user)
        seconds.append(time.monotonic() - start)
        hub.stop_server(user)
    return seconds


def one_attendee(hub: HubContainer, user: str) -> float:
    start = time.monotonic()
    token = hub.user_token(user)
    response = hub.request_spawn(user)
    assert response.status_code in (201, 202), response.text
    wait_ready(hub, user)
    out = hub.execute(user, token, CELL, timeout=300)
    if out["error"] or out["stdout"].strip() != "(4, 100)":
        raise RuntimeError(f"{user}: {out}")
    return time.monotonic() - start


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-runs", type=int, default=10)
    parser.add_argument("--burst", type=int, default=20)
    args = parser.parse_args()
    client = docker.from_env(timeout=300)
    tag = f"bench{uuid.uuid4().hex[:6]}"
    network = client.networks.create(f"opuhub-bench-net-{tag}", driver="bridge",
                                     labels={LABEL: "1"})
    containers = Containers(client)
    hub = HubContainer(containers, HUB_IMAGE, SINGLEUSER_IMAGE, network, tag,
                       env={"OPUHUB_CONCURRENT_SPAWN_LIMIT": str(args.burst + 5),
                            "OPUHUB_START_TIMEOUT": "300", "OPUHUB_HTTP_TIMEOUT": "300"})
    try:
        hub.start()
        for image in (SINGLEUSER_IMAGE, HUB_IMAGE, "opuhub/base:bookworm"):
            try:
                size = client.images.get(image).attrs["Size"] / 1e6
                print(f"image {image}: {size:.0f} MB")
            except docker.errors.ImageNotFound:
                print(f"image {image}: absent")
        latency = spawn_latency(hub, args.latency_runs, tag)
        print(f"spawn latency (warm image, request → ready), {len(latency)} runs: median "
              f"{statistics.median(latency):.2f} s (min {min(latency):.2f}, max "
              f"{max(latency):.2f})")
        users = [f"{tag}-attendee-{i:02d}" for i in range(1, args.burst + 1)]
        hub.create_users(*users)
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.burst) as pool:
            results = list(pool.map(lambda u: _attempt(hub, u), users))
        wall = time.monotonic() - started
        durations = [r for r in results if isinstance(r, float)]
        failures = [r for r in results if not isinstance(r, float)]
        print(f"burst: {len(durations)}/{len(users)} users logged in, spawned and ran a cell "
              f"in {wall:.1f} s; per user p50 {percentile(durations, 50):.1f} s, p95 "
              f"{percentile(durations, 95):.1f} s, max {max(durations):.1f} s")
        for failure in failures:
            print(f"  failed: {failure}")
        time.sleep(10)  # let the servers go idle
        usage = []
        for container in client.containers.list(filters={"name": tag}):
            if container.name == hub.name:
                continue
            stats = container.stats(stream=False)
            memory = stats["memory_stats"]
            used = memory.get("usage", 0) - memory.get("stats", {}).get("inactive_file", 0)
            usage.append(used / 2**20)
        if usage:
            print(f"idle user containers: {len(usage)}, memory median "
                  f"{statistics.median(usage):.0f} MiB (after one OPU cell; kernel running)")
    finally:
        containers.cleanup(failed=False)
        remove_tagged(client, tag)
        network.remove()


def _attempt(hub, user):
    try:
        return one_attendee(hub, user)
    except Exception as exc:  # noqa: BLE001 - reported, the other attendees go on
        return f"{user}: {type(exc).__name__}: {exc}"


if __name__ == "__main__":
    main()
