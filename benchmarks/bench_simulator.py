"""Simulator speed and memory, measured side by side in one run.

Compares, on the same seed and input:
- int8: ``OPU().transform``, the default 8-bit camera: H quantized to int8, exact int8 GEMMs
  (``torch._int_mm`` where usable, else float32 GEMMs on the int8 values), uint8 counts;
- exact: ``OPU(camera="exact").transform`` (two float32 GEMMs in tiles, float32 output);
- lightonml: its simulator's algorithm re-implemented faithfully, ``np.abs(X @ R) ** 2``
  with R complex64 (twice the necessary arithmetic) written into a float32 output;
- floor: two bare float32 GEMMs of the same shape, the least float32 work that yields Re and Im.
Peak memory is measured in fresh subprocesses (VmHWM growth), matrix build included,
against matrix + output bytes. Prints ratios; machines are shared, so only ratios count.
Streaming (n_components 1,000,000) runs the int8 and the exact path, and with
``--baseline-rev REV`` the simulator of that git revision too, all in fresh subprocesses.

    python benchmarks/bench_simulator.py [--quick] [--repeats N] [--baseline-rev REV]
        [--stream-only] [--stream-rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def memory_child(mode: str, batch: int, n_features: int, n_components: int,
                 streaming: bool = False) -> dict:
    """Runs in a fresh process: peak RSS growth of building H and transforming one batch.
    ``mode``: "int8" (the default 8-bit camera), "exact" or "lightonml"."""
    from opu_kernel import OPU

    camera = "8bit" if mode == "int8" else "exact"
    X = binary_input(batch, n_features)
    if mode == "lightonml":
        lightonml_transform(X[:1], lightonml_matrix(n_features, 8))  # warm BLAS, small
    else:
        try:  # load the GEMM libraries (torch for int8) before the baseline
            from opu_kernel.backends import integer

            integer.int8_gemm_problem()
        except ImportError:  # a baseline revision without the integer path
            pass
        warm = OPU(n_components=8, camera=camera, disable_pbar=True)
        warm.fit1d(n_features=n_features)
        warm.transform(X[:1])
    base = rss_bytes()
    start = time.perf_counter()
    cpu_start = time.process_time()
    if mode == "lightonml":
        out = lightonml_transform(X, lightonml_matrix(n_features, n_components))
    else:
        opu = OPU(n_components=n_components, camera=camera, disable_pbar=True,
                  streaming=streaming)
        opu.fit1d(n_features=n_features)
        out = opu.transform(X)
    seconds = time.perf_counter() - start
    return {"peak": peak_bytes() - base, "seconds": seconds,
            "cpu": time.process_time() - cpu_start, "checksum": float(out[:, :4].sum())}


def measure_memory(mode: str, batch: int, n_features: int, n_components: int,
                   streaming: bool = False, kernel_path: str | None = None) -> dict:
    """``memory_child`` in a fresh process; ``kernel_path``: import opu_kernel from there."""
    here = str(Path(__file__).resolve().parent)
    paths = [here] + ([kernel_path] if kernel_path else [])
    code = (f"import json, sys; sys.path[:0] = {paths!r}; "
            "from bench_simulator import memory_child; "
            f"print(json.dumps(memory_child({mode!r}, {batch}, {n_features}, {n_components}, "
            f"{streaming!r})))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def extract_kernel(rev: str, into: str) -> str:
    """opu_kernel as of git revision ``rev``, unpacked under ``into``; returns its sys.path."""
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "-C", str(root), "archive", rev, "kernel/opu_kernel"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", into], input=archive, check=True)
    return os.path.join(into, "kernel")


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
    from opu_kernel.backends.simulator import SimulatorBackend

    counts = OPU(n_components=n_components, disable_pbar=True).fit1d(X)  # the 8-bit camera
    counts.transform(X[:2])
    # the same counts by float32 GEMMs on the int8 values: what runs where torch cannot
    fallback = OPU(n_components=n_components, disable_pbar=True,
                   opu_device=SimulatorBackend(gemm="numpy")).fit1d(X)
    fallback.transform(X[:2])
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
    # the 8-bit counts of the int8 matrix against the same camera reading the float32 one
    gain = counts.transform(X[:1]).context.exposure_us * 32.0 / 400.0
    float_counts = np.clip(np.rint(ours_out.astype(np.float64) * gain), 0, 255)
    int8_counts = counts.transform(X)
    assert np.array_equal(int8_counts, fallback.transform(X))  # exact on both engines
    diff = np.abs(int8_counts.astype(np.float64) - float_counts)
    runs = {"int8": lambda: counts.transform(X),
            "int8 f32": lambda: fallback.transform(X),
            "ours": lambda: opu.transform(X),
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
    return {"seconds": median, "cpu": cpu_median, "max_rel_diff_vs_lightonml": agreement,
            "counts_differ": [float(np.mean(diff >= k)) for k in (1, 2, 3)],
            "counts_max_diff": float(diff.max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no streaming run")
    parser.add_argument("--baseline-rev", help="also stream with the simulator of this git "
                        "revision (e.g. the one before a change), side by side")
    parser.add_argument("--stream-only", action="store_true", help="only the streaming runs")
    parser.add_argument("--stream-rounds", type=int, default=1, help="streaming runs per "
                        "variant, interleaved (default 1)")
    parser.add_argument("--repeats", type=int, help="timed runs per measure (default 7, "
                        "3 with --quick)")
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 7)
    from threadpoolctl import threadpool_info

    from opu_kernel.backends import integer

    blas = [(i["internal_api"], i.get("architecture"), i["num_threads"]) for i in threadpool_info()]
    problem = integer.int8_gemm_problem()
    print(f"numpy {np.__version__}, BLAS {blas}")
    print(f"int8 GEMM: {'torch._int_mm' if problem is None else 'float32 (' + problem + ')'}")
    print(f"batch {BATCH}, n_features {N_FEATURES}; median of {repeats}, interleaved\n")
    print(f"{'n_components':>12} {'int8 s':>7} {'int8 f32 s':>10} {'exact s':>8} "
          f"{'lightonml s':>11} {'floor s':>8} "
          f"{'int8/floor':>10} {'exact/floor':>11} {'lml/exact':>9} "
          f"{'cpu int8/floor':>14} {'cpu int8 f32/exact':>18} {'cpu lml/exact':>13} "
          f"{'int8 mem':>8} {'exact mem':>9} {'lml mem':>8} {'counts differ >=1/>=2/>=3, max':>32}")
    for n_components in () if args.stream_only else SHAPES:
        result = speed(n_components, repeats)
        s = result["seconds"]
        c = result["cpu"]
        int8_mem = measure_memory("int8", BATCH, N_FEATURES, n_components)["peak"]
        int8_mem /= 2 * N_FEATURES * n_components + BATCH * n_components
        exact_mem = measure_memory("exact", BATCH, N_FEATURES, n_components)["peak"]
        exact_mem /= 2 * 4 * N_FEATURES * n_components + 4 * BATCH * n_components
        lightonml_mem = measure_memory("lightonml", BATCH, N_FEATURES, n_components)["peak"]
        lightonml_mem /= 8 * N_FEATURES * n_components + 4 * BATCH * n_components
        differ = "/".join(f"{100 * f:.2f}%" for f in result["counts_differ"])
        print(f"{n_components:>12} {s['int8']:>7.3f} {s['int8 f32']:>10.3f} {s['ours']:>8.3f} "
              f"{s['lightonml']:>11.3f} "
              f"{s['floor']:>8.3f} {s['int8'] / s['floor']:>9.3f}x {s['ours'] / s['floor']:>10.3f}x "
              f"{s['lightonml'] / s['ours']:>8.2f}x {c['int8'] / c['floor']:>13.3f}x "
              f"{c['int8 f32'] / c['ours']:>17.3f}x "
              f"{c['lightonml'] / c['ours']:>12.2f}x {int8_mem:>7.2f}x {exact_mem:>8.2f}x "
              f"{lightonml_mem:>7.2f}x {differ + ', ' + format(result['counts_max_diff'], 'g'):>32}")
        assert result["max_rel_diff_vs_lightonml"] < 1e-4, result
    print("\nmem = peak RSS growth (matrix build + transform) / (matrix + output bytes); int8: "
          "int8 matrix + uint8 output")
    if not args.quick:
        stream = dict(STREAM)
        print(f"\nstreaming: n_components {stream['n_components']:,} x n_features "
              f"{stream['n_features']}, batch {stream['batch']} (holding float32 H would take "
              f"{2 * 4 * stream['n_features'] * stream['n_components'] / 2**30:.1f} GiB)")
        with tempfile.TemporaryDirectory() as tmp:
            runs = [("int8 (8-bit camera)", "int8", None), ("exact (float32)", "exact", None)]
            if args.baseline_rev:
                runs.append((f"exact at {args.baseline_rev}", "exact",
                             extract_kernel(args.baseline_rev, tmp)))
            for _ in range(args.stream_rounds):
                for label, mode, path in runs:
                    result = measure_memory(mode, *stream.values(), streaming=True,
                                            kernel_path=path)
                    print(f"  {label:<28} {result['seconds']:6.1f} s (CPU {result['cpu']:6.1f} s), "
                          f"peak {result['peak'] / 2**20:.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
