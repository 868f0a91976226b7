"""Fifty kernels on one simulated shared OPU (the real broker process, real client processes):
each user's frames are within 10 % of its weighted fair share while all contend, every result
equals the in-process simulator's bytes for the same seed, and no request is lost."""

import hashlib
import multiprocessing
import os
import time
from dataclasses import dataclass

import numpy as np
import pytest

N_KERNELS = 50
HEAVY = range(5)  # users u0..u4 have weight 2
FRAME_US = 250
QUANTUM = 16
WARM_UP_S = 2.0
WINDOW_S = 14.0


@dataclass(frozen=True)
class Workload:
    rows: int
    n_features: int
    n_components: int
    seed: int
    think_s: float


def workload(index: int) -> Workload:
    """A different notebook per kernel: batch size, input and output size, seed, think time."""
    return Workload(rows=(40, 80, 160, 320)[index % 4], n_features=(32, 100, 300)[index % 3],
                    n_components=(64, 128, 256)[index % 5 % 3], seed=index % 3,
                    think_s=0.02 * (index % 7) / 6)


def inputs(index: int, k: int, spec: Workload) -> np.ndarray:
    rng = np.random.default_rng([index, k])
    return (rng.random((spec.rows, spec.n_features)) < 0.3).astype(np.uint8)


def kernel(index, env, go, stop_at, results):
    """One kernel: transforms in a loop with think time until ``stop_at``, then checks every
    result against the in-process simulator."""
    from threadpoolctl import threadpool_limits

    os.environ.update(env)
    threadpool_limits(1)
    from opu_kernel import OPU

    spec = workload(index)
    report = {"index": index, "sent": 0, "received": 0, "errors": [], "mismatches": 0}
    try:
        opu = OPU(n_components=spec.n_components, max_n_features=1000, seed=spec.seed,
                  disable_pbar=True)
        opu.fit1d(n_features=spec.n_features)
        opu.open()
        go.wait()
        digests = []
        while time.time() < stop_at.value:
            X = inputs(index, len(digests), spec)
            report["sent"] += 1
            Y = opu.transform(X)
            report["received"] += 1
            digests.append(hashlib.sha256(np.asarray(Y).tobytes()).hexdigest())
            time.sleep(spec.think_s)
        local = OPU(n_components=spec.n_components, max_n_features=1000, seed=spec.seed,
                    backend="simulator").fit1d(n_features=spec.n_features)
        for k, digest in enumerate(digests):
            mine = hashlib.sha256(np.asarray(local.transform(inputs(index, k, spec))).tobytes())
            report["mismatches"] += mine.hexdigest() != digest
    except Exception as exc:  # noqa: BLE001 - reported to the test
        report["errors"].append(f"{type(exc).__name__}: {exc}")
    results.put(report)


@pytest.mark.slow
def test_fifty_kernels_share_one_device_fairly_and_exactly(broker_process, tmp_path):
    config = tmp_path / "broker_config.py"
    config.write_text(f"c.OPUBroker.weights = {dict.fromkeys((f'u{i}' for i in HEAVY), 2)!r}\n")
    handle = broker_process(f"--frame-us={FRAME_US}", f"--quantum={QUANTUM}",
                            "--max-slice=128", "--heartbeat-s=0.5", f"--config={config}")
    fork = multiprocessing.get_context("fork")
    go, results = fork.Event(), fork.Queue()
    stop_at = fork.Value("d", time.time() + 3600)
    kernels = [fork.Process(target=kernel, args=(i, handle.env(f"u{i}"), go, stop_at, results))
               for i in range(N_KERNELS)]
    for process in kernels:
        process.start()
    try:
        time.sleep(1.0)  # let every kernel import and connect before the start
        stop_at.value = time.time() + WARM_UP_S + WINDOW_S + 0.5
        go.set()
        time.sleep(WARM_UP_S)
        before = handle.admin()
        time.sleep(WINDOW_S)
        after = handle.admin()
        reports = [results.get(timeout=120) for _ in kernels]
    finally:
        for process in kernels:
            process.join(30)
            if process.is_alive():
                process.kill()
    reports.sort(key=lambda r: r["index"])
    assert [r for r in reports if r["errors"]] == []
    assert sum(r["mismatches"] for r in reports) == 0
    assert all(r["sent"] == r["received"] >= 1 for r in reports)
    final = handle.admin()
    assert final["requests_done"] == sum(r["received"] for r in reports)  # nothing lost
    assert final["requests_dropped"] == 0 and final["jobs"] == 0

    served = {f"u{i}": after["served_frames"].get(f"u{i}", 0)
              - before["served_frames"].get(f"u{i}", 0) for i in range(N_KERNELS)}
    weights = {u: 2 if int(u[1:]) in HEAVY else 1 for u in served}
    total = sum(served.values())
    unfair = {}
    for user, frames in served.items():
        fair = total * weights[user] / sum(weights.values())
        if abs(frames - fair) > 0.10 * fair:
            unfair[user] = (frames, round(fair), workload(int(user[1:])))
    assert unfair == {}, f"outside 10 % of the fair share (of {total} frames): {unfair}"
