"""The simulator's integer arithmetic, behind the 8-bit camera.

The camera reads 8-bit counts, and the inputs are binary: float32 precision in H buys nothing
the camera can see. So for the 8-bit camera H is quantized to int8 and Re(Hx), Im(Hx) are
summed exactly as integers. The result then depends only on the seed and the input — the same
bytes on every CPU, with any number of threads, whichever GEMM computes the sums.

Quantization: H's entries are drawn exactly as for the float32 matrix (the same per-block
generators, ``simulator.block_rng``), as standard normals g, then stored as
``clip(rint(32 g), -127, 127)``: 32 levels per standard deviation, clipped at 3.97 σ (7e-5 of
the entries). Scaling by a power of two is exact and ``rint`` is IEEE round-half-to-even, so the
int8 matrix is a pure function of the drawn values. Its entries have the variance of g to 1e-4;
the speckle statistics (exponential intensities, correlation law, mean growth) are those of
the Gaussian matrix (the statistics tests of tests/kernel/backends/test_simulator.py run on
both).

Sums: |Re| ≤ 127 × n_features, exact in int32 up to 16.9 million features. Two engines compute
them, with identical results:

- ``torch``: ``torch._int_mm``, int8 × int8 → int32 (oneDNN, VNNI/AMX instructions): about a
  third of the time of two float32 GEMMs here;
- ``numpy``: float32 GEMMs on the int8 values. Every partial sum is an integer of magnitude at
  most 127 × 131,072 < 2**24, so float32 holds it exactly, whatever the summation order; wider
  inputs are summed in chunks of 131,072 features, accumulated in float64.

Then |Hx|² = (Re² + Im²) / (32² · n) times the camera's gain, in float64: the squares and
their sum are exact below 2**53 (any readable count is far below), the product by the one
float64 factor is the one rounding; then the 8-bit camera clips and rounds. IEEE operations,
correctly rounded, so identical everywhere.

Layout: the int8 matrix is held transposed, tile by tile: for each tile of ``tile_width``
components, its real rows then its imaginary rows (2 × width × n_features contiguous), so one
GEMM call yields both parts of an output tile. Blocks start on tile boundaries, so a block drawn
alone (streaming) has the layout of its slice of the held matrix.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from . import simulator as sim

log = logging.getLogger("opu_kernel")

#: Quantization levels per standard deviation of an entry (a power of two: exact scaling).
LEVELS_PER_STD = 32
LIMIT = 127
#: Float32 scratch for drawing (entries): the draw, scale, round and store stay in cache.
DRAW_CHUNK_ENTRIES = 2**16
#: Features summed in one float32 GEMM by the numpy engine: 127 × 2**17 < 2**24, so exact.
FLOAT32_EXACT_FEATURES = 2**17
#: Output tile: ROW_TILE inputs × COLUMN_TILE components, smaller than the float path's. Its
#: int32 products and the GEMM's packed copy of the tile's H (2 × COLUMN_TILE × n_features)
#: are scratch per thread, which counts against the memory target (1.3 × matrix + output)
#: at 10,000 components; int8 GEMMs run at the same speed on these tiles (measured). Counts
#: are made ROW_TILE rows at a time whatever the engine (the noise of a tile is seeded by
#: its place).
ROW_TILE = 128
COLUMN_TILE = 512
#: Rows one task takes for a column tile: the tile's H is prepared once for them (the float32
#: engine converts it to float32).
ROW_GROUP = 1024
#: Multiply-adds of a transform from which torch is imported to run it (importing torch
#: takes ~1.5 s and 200 MiB; below this the float32 engine is about as quick). Once torch is
#: imported, it runs everything.
TORCH_MIN_WORK = 2**33
ENGINES = ("auto", "torch", "numpy")
#: CPU flags of int8 dot-product instructions, where int8 GEMMs beat float32 ones.
INT8_DOT_FLAGS = {"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"}


def tile_width(n_features: int) -> int:
    """Components per tile: ``COLUMN_TILE``, or a whole block when blocks are narrower."""
    return min(COLUMN_TILE, sim.block_components(n_features))


def dequantization_scale(scale_features: int) -> float:
    """What an int8 entry is worth in H (entries of variance 1/scale_features per part)."""
    return 1.0 / (LEVELS_PER_STD * float(np.sqrt(scale_features)))


def quantize(drawn: np.ndarray, out: np.ndarray) -> None:
    """int8 levels of standard normals ``drawn`` (float32, overwritten) into ``out``."""
    np.multiply(drawn, np.float32(LEVELS_PER_STD), out=drawn)
    np.rint(drawn, out=drawn)
    np.clip(drawn, -LIMIT, LIMIT, out=drawn)
    np.copyto(out, drawn, casting="unsafe")


def fill_block(seed: int, n_features: int, block: int, out: np.ndarray) -> None:
    """Draw component block ``block`` of H into ``out`` (2 × width rows × n_features, int8),
    in the tile layout. The generators are the float path's, filled in cache-sized chunks
    (a generator's stream does not depend on how its output is cut)."""
    width = out.shape[0] // 2
    tile = tile_width(n_features)
    chunk = 1 << max(0, min(tile, DRAW_CHUNK_ENTRIES // n_features, width).bit_length() - 1)
    scratch = np.empty((chunk, n_features), dtype=np.float32)
    for part in (0, 1):
        rng = sim.block_rng(seed, n_features, block, part)
        for first in range(0, width, chunk):
            rows = min(chunk, width - first)
            drawn = scratch[:rows]
            rng.standard_normal(dtype=np.float32, out=drawn)
            k, within = divmod(first, tile)
            this_tile = min(tile, width - k * tile)
            row = 2 * k * tile + part * this_tile + within
            quantize(drawn, out[row:row + rows])


def matrix_block(seed: int, n_features: int, block: int, width: int) -> np.ndarray:
    out = np.empty((2 * width, n_features), dtype=np.int8)
    fill_block(seed, n_features, block, out)
    return out


def build_matrix(seed: int, n_features: int, n_components: int,
                 workers: int | None = None) -> np.ndarray:
    """The int8 H for the shape, in the tile layout, its blocks drawn on every core."""
    matrix = np.empty((2 * n_components, n_features), dtype=np.int8)

    def fill(block: int) -> None:
        start, stop = sim.block_bounds(block, n_components, n_features)
        fill_block(seed, n_features, block, matrix[2 * start:2 * stop])

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        list(pool.map(fill, range(sim.n_blocks(n_components, n_features))))
    return matrix


def split_parts(matrix: np.ndarray, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """(real, imag) int8 parts, each n_components × n_features, from the tile layout."""
    n_components = matrix.shape[0] // 2
    tile = tile_width(n_features)
    real = np.empty((n_components, n_features), dtype=np.int8)
    imag = np.empty_like(real)
    for start in range(0, n_components, tile):
        width = min(tile, n_components - start)
        real[start:start + width] = matrix[2 * start:2 * start + width]
        imag[start:start + width] = matrix[2 * start + width:2 * (start + width)]
    return real, imag


def dequantize(matrix: np.ndarray, n_features: int, scale_features: int):
    """(real_t, imag_t) float32 as the float path lays them out: the H this matrix stands for."""
    scale = np.float32(dequantization_scale(scale_features))
    return tuple(part.astype(np.float32) * scale for part in split_parts(matrix, n_features))


# -- engines ---------------------------------------------------------------------------------
_torch_problem: list = []  # memo of int8_gemm_problem(): [reason or None]
_fallback_logged = threading.Event()


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key = line.split(":", 1)[0].strip().lower()
                if key in ("flags", "features"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def int8_gemm_problem() -> str | None:
    """Why torch's int8 GEMM cannot serve on this machine, or None when it can (imports torch)."""
    if _torch_problem:
        return _torch_problem[0]
    problem = None
    if not INT8_DOT_FLAGS & cpu_flags():
        problem = ("this CPU has no int8 dot-product instructions (AVX-512 VNNI, AVX-VNNI, AMX, "
                   "Arm dot product), so int8 GEMMs would not be faster")
    else:
        try:
            import torch

            ones = torch.ones((32, 32), dtype=torch.int8)
            if int(torch._int_mm(ones, ones)[0, 0]) != 32:
                problem = "torch._int_mm gave a wrong result"
        except ImportError:
            problem = "torch is not installed"
        except Exception as exc:  # noqa: BLE001 - any failure means: not usable here
            problem = f"torch._int_mm failed ({type(exc).__name__}: {exc})"
    _torch_problem.append(problem)
    return problem


def choose_engine(requested: str, work: int) -> str:
    """The engine for a transform of ``work`` multiply-adds: torch's int8 GEMM when it is usable
    and worth importing, else float32 GEMMs (identical results). Logs once why torch is not
    used, when it would have been."""
    if requested not in ENGINES:
        raise ValueError(f"gemm={requested!r} is not valid; choose one of "
                         + ", ".join(repr(e) for e in ENGINES))
    if requested != "auto":
        if requested == "torch" and int8_gemm_problem() is not None:
            raise RuntimeError(f"gemm='torch' is not available: {int8_gemm_problem()}")
        return requested
    if "torch" not in sys.modules and work < TORCH_MIN_WORK:
        return "numpy"
    problem = int8_gemm_problem()
    if problem is None:
        return "torch"
    if not _fallback_logged.is_set():
        _fallback_logged.set()
        log.info("OPU simulator: int8 GEMMs not used (%s); the 8-bit camera's exact integer "
                 "sums run as float32 GEMMs instead: same results, slower", problem)
    return "numpy"


class NumpyProducts:
    """x @ hᵀ exactly, by float32 GEMMs (single-threaded BLAS, one per worker)."""

    name = "numpy"
    #: Rows per GEMM call: float32 GEMMs want tall tiles (128-row ones ran 1.5× slower).
    gemm_rows = 1024

    def __init__(self, n_features: int):
        self.n_features = n_features
        self.local = threading.local()

    def rows(self, X: np.ndarray, start: int, stop: int) -> np.ndarray:
        x = X[start:stop]
        if x.dtype == np.float32:
            return x
        return self._float32_copy("x", x)

    def prepare(self, h: np.ndarray):
        """A tile's H (r × n int8) as ``products`` takes it: float32 values, or left int8 for
        inputs wider than ``FLOAT32_EXACT_FEATURES`` (converted chunk by chunk there)."""
        if h.shape[1] > FLOAT32_EXACT_FEATURES:
            return h
        return self._float32_copy("h", h)

    def products(self, x: np.ndarray, h: np.ndarray) -> np.ndarray:
        """x (rows × n, float32 0/1) times a prepared h (r × n) transposed: exact integers."""
        n_features = h.shape[1]
        if n_features <= FLOAT32_EXACT_FEATURES:
            return np.matmul(x, h.T, out=self._out(x.shape[0], h.shape[0], np.float32))
        # wider: exact float32 sums of 131,072 features at a time, accumulated in float64
        total = self._out(x.shape[0], h.shape[0], np.float64)
        total[...] = 0.0
        for k in range(0, n_features, FLOAT32_EXACT_FEATURES):
            end = min(k + FLOAT32_EXACT_FEATURES, n_features)
            total += np.matmul(x[:, k:end], self._float32_copy("h_chunk", h[:, k:end]).T)
        return total

    def _float32_copy(self, name: str, a: np.ndarray) -> np.ndarray:
        """``a`` as float32, in this thread's scratch buffer ``name``."""
        copy = self._buffer(name, a.shape, np.float32)
        np.copyto(copy, a, casting="unsafe")
        return copy

    def _out(self, rows: int, cols: int, dtype) -> np.ndarray:
        return self._buffer(f"out_{np.dtype(dtype).name}", (rows, cols), dtype)

    def _buffer(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        """This thread's scratch array ``name`` of ``shape``: kept between tiles, grown when
        a larger one is asked for (a tile's rows and columns vary at the edges)."""
        size = math.prod(shape)
        buffer = getattr(self.local, name, None)
        if buffer is None or buffer.size < size:
            buffer = np.empty(size, dtype)
            setattr(self.local, name, buffer)
        return buffer[:size].reshape(shape)

    def worker_setup(self) -> None:
        """Nothing per worker: BLAS is limited to one thread around the whole projection."""

    def limits(self):
        return threadpool_limits(limits=1, user_api="blas")

    def finish(self) -> None:
        """Nothing to restore."""


class TorchProducts(NumpyProducts):
    """x @ hᵀ by ``torch._int_mm`` (int8 × int8 → int32), one thread per worker."""

    name = "torch"
    gemm_rows = ROW_TILE

    def __init__(self, n_features: int):
        super().__init__(n_features)
        import torch

        self.torch = torch
        self.threads = torch.get_num_threads()

    def rows(self, X: np.ndarray, start: int, stop: int):
        x = X[start:stop]
        if x.dtype in (np.uint8, np.int8):
            x = x.view(np.int8)  # 0/1: the same bytes
        else:
            scratch = getattr(self.local, "x", None)
            if scratch is None or scratch.shape[0] < stop - start:
                scratch = self.local.x = np.empty((stop - start, self.n_features), np.int8)
            np.copyto(scratch[:stop - start], x, casting="unsafe")
            x = scratch[:stop - start]
        return self.torch.from_numpy(x)

    def prepare(self, h: np.ndarray):
        return self.torch.from_numpy(h).T

    def products(self, x, h) -> np.ndarray:
        out = self._out(x.shape[0], h.shape[1], np.int32)
        self.torch._int_mm(x, h, out=self.torch.from_numpy(out))
        return out

    def worker_setup(self) -> None:
        # torch's thread count is per thread (OpenMP); the tiles are the parallelism
        self.torch.set_num_threads(1)

    def finish(self) -> None:
        # set_num_threads in a worker also changes the default of threads created later
        self.torch.set_num_threads(self.threads)


def make_products(engine: str, n_features: int):
    return TorchProducts(n_features) if engine == "torch" else NumpyProducts(n_features)


# -- projection ------------------------------------------------------------------------------
def project(X: np.ndarray, blocks, out: np.ndarray, linear: bool, camera, scale_features: int,
            engine: str, progress=None, workers: int | None = None) -> int:
    """Fill ``out`` with the camera's reading of |XH|² (or float32 Re(XH) when ``linear``) for
    the int8 H that ``blocks`` yields as (start, stop, block matrix in the tile layout);
    returns the number of saturated counts. Output tiles run on ``workers`` threads."""
    n_rows, n_components = out.shape
    n_features = X.shape[1]
    # rows per task, per count slice (engine-independent: noise seeds), per GEMM call
    group = max(1, min(ROW_GROUP, n_rows, sim.ROW_TILE_ENTRIES // n_features))
    rows = min(ROW_TILE, group)
    tile = tile_width(n_features)
    products = make_products(engine, n_features)
    gemm_rows = min(group, rows * max(1, products.gemm_rows // rows))
    unit = dequantization_scale(scale_features)
    # counts = (Re² + Im²) × unit² × gain: one float64 factor, computed once, the same everywhere
    # (an exact camera gets the float32 intensities (Re² + Im²) × unit²)
    exact = camera.exposure_us is None
    factor = unit * unit * (1.0 if exact else camera.gain)
    scratch = threading.local()

    def run_task(matrix, column, width, out_start, first_row) -> int:
        h = products.prepare(matrix[2 * column:2 * column + (width if linear else 2 * width)])
        saturated = 0
        last_row = min(first_row + group, n_rows)
        for row in range(first_row, last_row, gemm_rows):
            end = min(row + gemm_rows, last_row)
            sums = products.products(products.rows(X, row, end), h)
            for first in range(0, end - row, rows):
                part = sums[first:first + rows]
                saturated += read_tile(part, width, row + first, out_start + column)
        return saturated

    def read_tile(sums, width, row, column) -> int:
        target = out[row:row + sums.shape[0], column:column + width]
        if linear:
            np.multiply(sums, unit, out=target, dtype=np.float64, casting="unsafe")
            return 0
        if getattr(scratch, "counts", None) is None:  # float64 scratch, in L2 (2 × 512 KiB)
            scratch.counts = np.empty(rows * tile, np.float64)
            scratch.other = np.empty_like(scratch.counts)
        size = sums.shape[0] * width
        counts = intensity(sums[:, :width], sums[:, width:], factor,
                           scratch.counts[:size].reshape(sums.shape[0], width),
                           scratch.other[:size].reshape(sums.shape[0], width))
        if exact:
            np.copyto(target, counts, casting="unsafe")
            return 0
        # the tile's place seeds its noise (when enabled), whichever thread computes it
        return camera.read(counts, target, tile=(row, column))

    camera.start_frame()
    saturated = 0
    workers = workers or os.cpu_count() or 1
    pool = ThreadPoolExecutor(max_workers=workers, initializer=products.worker_setup)
    try:
        with products.limits():
            for start, stop, matrix in blocks:
                tasks = [pool.submit(run_task, matrix, column, min(tile, stop - start - column),
                                     start, row)
                         for column in range(0, stop - start, tile)
                         for row in range(0, n_rows, group)]
                saturated += sum(task.result() for task in tasks)
                if progress is not None:
                    progress((stop - start) / n_components)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        products.finish()
    return saturated


def intensity(real: np.ndarray, imag: np.ndarray, factor: float, counts: np.ndarray,
              other: np.ndarray) -> np.ndarray:
    """(real² + imag²) × factor into the float64 scratch ``counts``, from exact integer sums
    (int32, or integral floats): the conversions and squares are exact, so the one rounding
    is the product's."""
    counts[...] = real
    other[...] = imag
    counts *= counts
    other *= other
    counts += other
    counts *= factor
    return counts

