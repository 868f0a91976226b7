"""The shared OPU's costs: broker overhead, device utilisation, and waiting under load.

1. Overhead per small request: ``OPU(backend="shared").transform`` through a broker process
   on loopback (timing model off: frame time 0) vs ``OPU(backend="simulator").transform``
   in-process, same shape, measured alternately; median and p95 of each, and the median
   difference (target ≤ 1 ms). Also the bare round trip of a status message.
2. Utilisation with 50 kernels: 50 client processes (one request at a time, batches of 10 to
   2000 rows, think time 0–50 ms) on a simulated device with the OPU's 500 µs per frame;
   utilisation = frames served × frame time / wall time (target ≥ 90 %).
3. Waiting under that load: a 51st kernel sends a 10-row request every ``--probe-every``
   seconds (1 s: a person running cells); p50 and p95 of its end-to-end time, and of the
   broker's queue wait (until its first slice starts). A user idle for a whole round of turns
   (users × quantum × frame time) goes first; one back sooner waits for its turn in the round.

    python benchmarks/bench_broker.py [--kernels 50] [--seconds 30] [--quantum 32 --quantum 8]
                                      [--probe-every 1 --probe-every 0.25]

The machine is shared: the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from opu_kernel.broker import protocol
from opu_kernel.broker.client import BrokerClient
from opu_kernel.broker.server import ADMIN_USER, admin_key

SECRET = os.urandom(32)
N_FEATURES = 1000


def load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def percentile(values, q) -> float:
    return float(np.percentile(np.asarray(values), q))


def env_for(url: str, user: str) -> dict:
    return {"OPU_BROKER_URL": url, "OPU_BROKER_USER": user,
            "OPU_BROKER_KEY": protocol.user_key(SECRET, user).hex()}


def start_broker(port: int, *args: str) -> subprocess.Popen:
    url = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen([sys.executable, "-m", "opu_kernel.broker", f"--bind={url}",
                                *args], env={**os.environ, "OPU_BROKER_SECRET": SECRET.hex()})
    probe = BrokerClient(url, "probe", protocol.user_key(SECRET, "probe"),
                         connect_timeout_s=0.5)
    for _ in range(60):
        try:
            probe.hello()
            break
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.2)
    probe.close()
    return process


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(10)


def admin(url: str) -> dict:
    client = BrokerClient(url, ADMIN_USER, admin_key(SECRET))
    try:
        return client.call("stats")
    finally:
        client.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- 1. overhead ----------------------------------------------------------------------------
def overhead(repeat: int) -> None:
    from opu_kernel import OPU

    port = free_port()
    broker = start_broker(port, "--frame-us=0")
    url = f"tcp://127.0.0.1:{port}"
    os.environ.update(env_for(url, "bench"))
    try:
        client = BrokerClient(url, "bench", protocol.user_key(SECRET, "bench"))
        client.hello()
        status = []
        for _ in range(repeat):
            start = time.perf_counter()
            client.status()
            status.append(time.perf_counter() - start)
        print(f"status round trip: median {1e3 * statistics.median(status):.3f} ms, "
              f"p95 {1e3 * percentile(status, 95):.3f} ms")
        for rows, n_components in ((1, 1000), (10, 1000), (10, 10_000)):
            X = (np.random.default_rng(0).random((rows, N_FEATURES)) < 0.5).astype(np.uint8)
            opus = {b: OPU(n_components=n_components, max_n_features=N_FEATURES,
                           backend=b, disable_pbar=True).fit1d(X) for b in ("simulator",
                                                                           "shared")}
            times = {b: [] for b in opus}
            runs = []
            for opu in opus.values():
                opu.transform(X)  # draws H
            for _ in range(repeat):
                for name, opu in opus.items():
                    start = time.perf_counter()
                    opu.transform(X)
                    times[name].append(time.perf_counter() - start)
                    if name == "shared":
                        runs.append(opus["shared"].device.last_run_s)
            local, shared = (statistics.median(times[b]) for b in ("simulator", "shared"))
            print(f"{rows:>3} rows × {N_FEATURES} features → {n_components} components: "
                  f"in-process median {1e3 * local:.3f} ms (p95 "
                  f"{1e3 * percentile(times['simulator'], 95):.3f}), shared median "
                  f"{1e3 * shared:.3f} ms (p95 {1e3 * percentile(times['shared'], 95):.3f}); "
                  f"overhead {1e3 * (shared - local):.3f} ms, ratio {shared / local:.2f}x; "
                  f"of which the broker's simulator run {1e3 * statistics.median(runs):.3f} ms")
        client.close()
    finally:
        stop(broker)


# -- 2 and 3. fifty kernels ---------------------------------------------------------------------
def kernel(index: int, env: dict, go, stop_at) -> None:
    from threadpoolctl import threadpool_limits

    os.environ.update(env)
    threadpool_limits(1)
    from opu_kernel import OPU

    rng = np.random.default_rng(index)
    rows = (10, 100, 500, 2000)[index % 4]
    opu = OPU(n_components=256, max_n_features=100, disable_pbar=True).fit1d(n_features=100)
    opu.open()
    X = (rng.random((rows, 100)) < 0.5).astype(np.uint8)
    go.wait()
    while time.time() < stop_at.value:
        opu.transform(X)
        time.sleep(rng.uniform(0, 0.05))


def under_load(n_kernels: int, seconds: float, quantum: int, probe_every: float) -> None:
    port = free_port()
    frame_us = 500.0
    broker = start_broker(port, f"--frame-us={frame_us}", f"--quantum={quantum}")
    url = f"tcp://127.0.0.1:{port}"
    fork = multiprocessing.get_context("fork")
    go = fork.Event()
    stop_at = fork.Value("d", time.time() + 3600)
    kernels = [fork.Process(target=kernel, args=(i, env_for(url, f"k{i}"), go, stop_at))
               for i in range(n_kernels)]
    for process in kernels:
        process.start()
    try:
        time.sleep(2.0)
        stop_at.value = time.time() + seconds + 3
        go.set()
        time.sleep(2.0)  # every kernel has work queued
        probe = BrokerClient(url, "probe", protocol.user_key(SECRET, "probe"))
        X = (np.random.default_rng(1).random((10, 100)) < 0.5).astype(np.uint8)
        params = {"n_components": 256, "seed": 0, "ones_fraction": 0.5, "override": {}}
        before, t0 = admin(url), time.monotonic()
        ends, waits = [], []
        while time.monotonic() - t0 < seconds:
            start = time.perf_counter()
            _, header = probe.transform(params, X)
            ends.append(time.perf_counter() - start)
            waits.append(header["wait_s"])
            time.sleep(probe_every)
        after, t1 = admin(url), time.monotonic()
        probe.close()
    finally:
        for process in kernels:
            process.join(60)
            if process.is_alive():
                process.kill()
        stop(broker)
    frames = after["frames_served"] - before["frames_served"]
    capacity = (t1 - t0) / (frame_us * 1e-6)
    print(f"{n_kernels} kernels, quantum {quantum} frames, {t1 - t0:.1f} s, frame "
          f"{frame_us:g} µs: {frames} frames "
          f"served of {capacity:.0f} possible → utilisation {frames / capacity:.1%} ({load()})")
    print(f"10-row request every {probe_every:g} s under load ({len(ends)} samples): "
          f"end-to-end p50 "
          f"{1e3 * percentile(ends, 50):.0f} ms, p95 {1e3 * percentile(ends, 95):.0f} ms; "
          f"queue wait p50 {1e3 * percentile(waits, 50):.0f} ms, "
          f"p95 {1e3 * percentile(waits, 95):.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kernels", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--probe-every", type=float, action="append",
                        help="seconds between the probe's requests (repeatable; default 1)")
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--quantum", type=int, action="append",
                        help="frames per turn (repeatable; default: the broker's 32)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, {load()}")
    overhead(args.repeat)
    for quantum in args.quantum or [32]:
        for every in args.probe_every or [1.0]:
            under_load(args.kernels, args.seconds, quantum, every)


if __name__ == "__main__":
    main()
