"""How long a unit of simulator work takes here: the figure behind OPU_SIMULATOR_MAX_WORK.

``OPU_SIMULATOR_MAX_WORK`` caps one transform at a number of multiply-adds (n_samples ×
n_features × n_components, plus ``limits.DRAW_COST`` per entry of H when the call draws H).
This prints, for the default 8-bit camera and n_features 1000:

- seconds per 1e12 multiply-adds of a transform on a held matrix (n_components 10,000 and
  100,000), and of ``linear_transform``;
- how fast H is drawn (held: all cores; streamed: one thread, while the previous block
  multiplies), and the ratio "multiply-adds per entry of H" that ``DRAW_COST`` stands for;
- a check of the whole estimate: predicted vs measured seconds of a streamed call.

    python benchmarks/bench_work.py [--repeat 3]

Medians of ``--repeat`` runs; the machine is shared, so the load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from opu_kernel import OPU
from opu_kernel.backends import simulator
from opu_kernel.limits import DRAW_COST, transform_work

N_FEATURES = 1000


def timed(call, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{os.cpu_count()} cores, {load()}")

    rates = []
    for n_components, rows in ((10_000, 1000), (10_000, 4000), (100_000, 1000)):
        X = rng.integers(0, 2, (rows, N_FEATURES), dtype=np.uint8)
        opu = OPU(n_components=n_components, max_n_features=N_FEATURES, disable_pbar=True,
                  streaming=False)
        opu.fit1d(X[:100])
        opu.transform(X[:1])  # draws and holds H
        work = rows * N_FEATURES * n_components
        seconds = timed(lambda: opu.transform(X), args.repeat)  # noqa: B023
        linear = timed(lambda: opu.linear_transform(X), args.repeat)  # noqa: B023
        rates.append(work / seconds)
        print(f"transform  {rows:>5} × {N_FEATURES} × {n_components:>7,}: {seconds:6.2f} s "
              f"→ 1e12 multiply-adds ≈ {1e12 * seconds / work:5.1f} s "
              f"(linear_transform ≈ {1e12 * linear / work:5.1f} s)  [{load()}]")
        opu.close()

    n_components = 40_960
    held = timed(lambda: simulator.build_matrix(0, N_FEATURES, n_components), args.repeat)
    block = timed(lambda: simulator.matrix_block(0, N_FEATURES, 0), args.repeat)
    held_rate = N_FEATURES * n_components / held
    stream_rate = N_FEATURES * simulator.BLOCK_COMPONENTS / block
    madd_rate = statistics.median(rates)
    print(f"drawing H: held (all cores) {held_rate:.3g} entries/s, streamed (one thread) "
          f"{stream_rate:.3g} entries/s")
    print(f"multiply-adds per entry of H: held {madd_rate / held_rate:.0f}, streamed "
          f"{madd_rate / stream_rate:.0f} (DRAW_COST = {DRAW_COST})")

    rows, n_components = 10, 200_000
    X = rng.integers(0, 2, (rows, N_FEATURES), dtype=np.uint8)
    opu = OPU(n_components=n_components, max_n_features=N_FEATURES, disable_pbar=True,
              streaming=True)
    opu.fit1d(X)
    seconds = timed(lambda: opu.transform(X), args.repeat)
    work = transform_work(rows, N_FEATURES, n_components, draws=True)
    print(f"streamed {rows} × {N_FEATURES} × {n_components:,}: counted {work:.3g} "
          f"multiply-adds, predicted {work / madd_rate:.1f} s, measured {seconds:.1f} s  "
          f"[{load()}]")
    print(f"SUMMARY: 1e12 multiply-adds ≈ {1e12 / madd_rate:.0f} s here "
          f"(median transform rate {madd_rate:.3g}/s)")


if __name__ == "__main__":
    main()
