"""Simulator speed and memory, measured side by side in one run.

Compares, on the same random matrix and input:
- ours: ``OPU(camera="exact").transform`` (two float32 GEMMs in row blocks);
- lightonml: its simulator's algorithm re-implemented faithfully, ``np.abs(X @ R) ** 2``
  with R complex64 (twice the necessary arithmetic) written into a float32 output;
- floor: two bare float32 GEMMs of the same shape, the least work that yields Re and Im.
Peak memory is measured in fresh subprocesses (ru_maxrss growth), matrix build included,
against matrix + output bytes. Prints ratios; machines are shared, so only ratios count.

    python benchmarks/bench_simulator.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

BATCH = 1000
N_FEATURES = 1000
SHAPES = (10_000, 50_000)
STREAM = dict(batch=100, n_features=1000, n_components=1_000_000)


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def peak_bytes() -> int:
    """This process's peak RSS (VmHWM; unlike ru_maxrss it is not inherited from the parent)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def binary_input(batch: int, n_features: int) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 2, (batch, n_features), dtype=np.uint8)


def lightonml_matrix(n_features: int, n_components: int) -> np.ndarray:
    """lightonml 1.4.3's SimulatedOpuDevice.build_random_matrix, re-implemented."""
    rng = np.random.RandomState(0)
    std = 1.0 / np.sqrt(n_features)
    real = rng.normal(0.0, std, (n_features, n_components)).astype(np.float32)
    imag = rng.normal(0.0, std, (n_features, n_components)).astype(np.float32)
    return real + 1.0j * imag


def lightonml_transform(X: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """lightonml's transform2: Y[:] = |X · R|² into a float32 output."""
    out = np.empty((X.shape[0], matrix.shape[1]), dtype=np.float32)
    out[:] = np.abs(np.dot(X, matrix)) ** 2
    return out


def memory_child(mode: str, batch: int, n_features: int, n_components: int) -> dict:
    """Runs in a fresh process: peak RSS growth of building H and transforming one batch."""
    from opu_kernel import OPU

    X = binary_input(batch, n_features)
    if mode == "lightonml":
        lightonml_transform(X[:1], lightonml_matrix(n_features, 8))  # warm BLAS, small
    else:
        warm = OPU(n_components=8, camera="exact", disable_pbar=True)
        warm.fit1d(n_features=n_features)
        warm.transform(X[:1])
    base = rss_bytes()
    start = time.perf_counter()
    if mode == "lightonml":
        out = lightonml_transform(X, lightonml_matrix(n_features, n_components))
    else:
        opu = OPU(n_components=n_components, camera="exact", disable_pbar=True,
                  streaming=(mode == "streaming"))
        opu.fit1d(n_features=n_features)
        out = opu.transform(X)
    seconds = time.perf_counter() - start
    return {"peak": peak_bytes() - base, "seconds": seconds, "checksum": float(out[:, :4].sum())}


def measure_memory(mode: str, batch: int, n_features: int, n_components: int) -> dict:
    code = (f"import json, sys; sys.path.insert(0, {str(__file__.rsplit('/', 1)[0])!r}); "
            "from bench_simulator import memory_child; "
            f"print(json.dumps(memory_child({mode!r}, {batch}, {n_features}, {n_components})))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def timed(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def speed(n_components: int, repeats: int) -> dict:
    from opu_kernel import OPU

    X = binary_input(BATCH, N_FEATURES)
    opu = OPU(n_components=n_components, camera="exact", disable_pbar=True)
    opu.fit1d(n_features=N_FEATURES)
    opu.transform(X[:2])  # builds H
    real_t, imag_t = opu.device.matrix()  # H is held transposed: (n_components, n_features)
    complex_matrix = np.ascontiguousarray((real_t + 1.0j * imag_t).T)
    real, imag = real_t.T, imag_t.T
    Xf = X.astype(np.float32)
    re_out = np.empty((BATCH, n_components), np.float32)
    im_out = np.empty_like(re_out)

    def floor():
        np.matmul(Xf, real, out=re_out)
        np.matmul(Xf, imag, out=im_out)

    ours_out = opu.transform(X)
    reference = lightonml_transform(X, complex_matrix)
    agreement = float(np.max(np.abs(ours_out - reference)) / np.max(reference))
    runs = {"ours": lambda: opu.transform(X),
            "lightonml": lambda: lightonml_transform(X, complex_matrix),
            "floor": floor}
    # Interleave the three so that machine noise hits them alike. Wall time: every core. CPU time
    # (all threads) with BLAS limited to one thread: the total work, which other jobs on the
    # machine disturb less than wall time.
    seconds = {name: [] for name in runs}
    cpu = {name: [] for name in runs}
    for _ in range(repeats):
        for name, function in runs.items():
            seconds[name].append(timed(function, 1))
        with threadpool_limits(1):
            for name, function in runs.items():
                start = time.process_time()
                function()
                cpu[name].append(time.process_time() - start)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    cpu_median = {name: statistics.median(values) for name, values in cpu.items()}
    return {"seconds": median, "cpu": cpu_median, "max_rel_diff_vs_lightonml": agreement}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no streaming run")
    args = parser.parse_args()
    repeats = 3 if args.quick else 7
    from threadpoolctl import threadpool_info

    blas = [(i["internal_api"], i.get("architecture"), i["num_threads"]) for i in threadpool_info()]
    print(f"numpy {np.__version__}, BLAS {blas}")
    print(f"batch {BATCH}, n_features {N_FEATURES}; median of {repeats}, interleaved\n")
    header = (f"{'n_components':>12} {'ours s':>8} {'lightonml s':>11} {'floor s':>8} "
              f"{'lightonml/ours':>14} {'ours/floor':>10} {'cpu time: lml/ours':>22} "
              f"{'ours/floor':>10} {'ours mem':>9} {'lightonml mem':>13}")
    print(header)
    for n_components in SHAPES:
        result = speed(n_components, repeats)
        s = result["seconds"]
        c = result["cpu"]
        ideal = 2 * 4 * N_FEATURES * n_components + 4 * BATCH * n_components
        ours_mem = measure_memory("ours", BATCH, N_FEATURES, n_components)["peak"] / ideal
        lightonml_mem = measure_memory("lightonml", BATCH, N_FEATURES, n_components)["peak"]
        lightonml_mem /= 8 * N_FEATURES * n_components + 4 * BATCH * n_components
        print(f"{n_components:>12} {s['ours']:>8.3f} {s['lightonml']:>11.3f} {s['floor']:>8.3f} "
              f"{s['lightonml'] / s['ours']:>13.2f}x {s['ours'] / s['floor']:>9.3f}x "
              f"{c['lightonml'] / c['ours']:>21.2f}x {c['ours'] / c['floor']:>9.3f}x "
              f"{ours_mem:>8.2f}x {lightonml_mem:>12.2f}x")
        assert result["max_rel_diff_vs_lightonml"] < 1e-4, result
    print("\nmem = peak RSS growth (matrix build + transform) / (matrix + output bytes)")
    if not args.quick:
        stream = measure_memory("streaming", STREAM["batch"], STREAM["n_features"],
                                STREAM["n_components"])
        held = 2 * 4 * STREAM["n_features"] * STREAM["n_components"]
        print(f"\nstreaming: n_components {STREAM['n_components']:,} x n_features "
              f"{STREAM['n_features']}, batch {STREAM['batch']}: {stream['seconds']:.1f} s, "
              f"peak {stream['peak'] / 2**20:.0f} MiB (holding H would take "
              f"{held / 2**30:.1f} GiB; output {4 * STREAM['batch'] * STREAM['n_components'] / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
