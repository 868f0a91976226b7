"""Kernel start to first executed cell: the OPU kernel vs plain ipykernel, side by side.

Starts each kernel N times (alternating, so machine noise hits both alike), measures the wall
time from start request to the reply of a first cell (`1 + 1`), and prints medians and the ratio.

    python benchmarks/bench_kernel_start.py [--runs 10]
"""

from __future__ import annotations

import argparse
import statistics
import time

from jupyter_client.manager import start_new_kernel


def start_to_first_cell(kernel_name: str) -> float:
    start = time.perf_counter()
    manager, client = start_new_kernel(kernel_name=kernel_name, startup_timeout=60)
    try:
        reply = client.execute_interactive("1 + 1", timeout=60, store_history=False,
                                           output_hook=lambda msg: None)
        assert reply["content"]["status"] == "ok", reply
        return time.perf_counter() - start
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    kernels = ("opu", "python3")
    times = {name: [] for name in kernels}
    start_to_first_cell("python3")  # warm the file cache before measuring
    for _ in range(args.runs):
        for name in kernels:
            times[name].append(start_to_first_cell(name))
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name in kernels:
        print(f"{name:>8}: median {medians[name]:.3f} s over {args.runs} "
              f"(min {min(times[name]):.3f}, max {max(times[name]):.3f})")
    print(f"ratio opu / python3: {medians['opu'] / medians['python3']:.3f}x")


if __name__ == "__main__":
    main()
