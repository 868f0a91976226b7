"""The simulated OPU: y = |Hx|² with H a seeded complex Gaussian matrix.

Speed: inputs are binary, so Hx is a real matrix product. Re(Hx) and Im(Hx) are two float32
GEMMs (half the arithmetic of lightonml's complex64 product). Memory and cache: the output is
computed in tiles (ROW_TILE inputs × COLUMN_TILE components), squared while in cache, so
scratch space is a few MiB whatever the shape.

H is built from column blocks of ``BLOCK_COMPONENTS`` components, each drawn from its own
generator seeded with (seed, n_features, block index). So the matrix can be regenerated block
by block (streaming mode, for n_components too large to hold), gives identical results held or
streamed, and growing ``n_components`` keeps the first components unchanged.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from .. import camera as cameras
from .base import Acquisition, Backend

BLOCK_COMPONENTS = 4096
#: Output tile computed at once: ROW_TILE inputs × COLUMN_TILE components (4 MiB of float32).
#: Large enough that the GEMMs run at full speed (packing is amortized), small enough that the
#: squaring reads them from cache and scratch stays a few MiB per thread. Measured
#: single-threaded, these tiles cost 0.96–0.97× two plain GEMMs writing the full outputs.
ROW_TILE = 1024
COLUMN_TILE = 1024


def block_rng(seed: int, n_features: int, block: int, part: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, n_features,
                                                                       block, part])))


def fill_block(seed: int, n_features: int, block: int, real_t: np.ndarray,
               imag_t: np.ndarray) -> None:
    """Draw components ``block*BLOCK_COMPONENTS ...`` of H into ``real_t``/``imag_t``.

    Both are (components × n_features) C-contiguous: H is stored transposed so that a block
    of components is a contiguous slab, drawn in place. Generators fill row by row, so a
    partial last block holds the first rows of the full one.
    """
    scale = np.float32(1.0 / np.sqrt(n_features))
    for part, target in enumerate((real_t, imag_t)):
        block_rng(seed, n_features, block, part).standard_normal(dtype=np.float32, out=target)
        target *= scale


def matrix_block(seed: int, n_features: int, block: int, width: int = BLOCK_COMPONENTS):
    """Real and imaginary parts of H's component block ``block`` (width × n_features)."""
    real_t = np.empty((width, n_features), dtype=np.float32)
    imag_t = np.empty_like(real_t)
    fill_block(seed, n_features, block, real_t, imag_t)
    return real_t, imag_t


def n_blocks(n_components: int) -> int:
    return -(-n_components // BLOCK_COMPONENTS)


def block_bounds(block: int, n_components: int) -> tuple[int, int]:
    start = block * BLOCK_COMPONENTS
    return start, min(start + BLOCK_COMPONENTS, n_components)


def build_matrix(seed: int, n_features: int, n_components: int, workers: int | None = None):
    """Hᵀ as two float32 arrays (n_components × n_features), drawn in parallel, in place."""
    real_t = np.empty((n_components, n_features), dtype=np.float32)
    imag_t = np.empty_like(real_t)

    def fill(block: int) -> None:
        start, stop = block_bounds(block, n_components)
        fill_block(seed, n_features, block, real_t[start:stop], imag_t[start:stop])

    # numpy's generators release the GIL while filling arrays, so threads scale.
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        list(pool.map(fill, range(n_blocks(n_components))))
    return real_t, imag_t


def available_memory_bytes() -> int:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2**30


def matrix_bytes(n_features: int, n_components: int) -> int:
    return 2 * 4 * n_features * n_components


def should_stream(n_features: int, n_components: int) -> bool:
    """Stream when holding H would take more than 40 % of the memory available now."""
    return matrix_bytes(n_features, n_components) > 0.4 * available_memory_bytes()


def project(X: np.ndarray, blocks, out: np.ndarray, linear: bool, camera, progress=None,
            workers: int | None = None) -> int:
    """Fill ``out`` with |XH|² (or Re(XH)) tile by tile; returns the saturated count.

    ``blocks`` yields (start, stop, real_t, imag_t) for consecutive component blocks. Tiles run
    on ``workers`` threads (default: one per core), each with single-threaded BLAS: the
    squaring and quantization are parallel too, and no BLAS thread spins waiting for another
    on a shared machine.
    """
    n_rows, n_components = out.shape
    rows = min(ROW_TILE, n_rows)
    scratch = threading.local()

    def tile(real_t, imag_t, column, end_column, out_start, row) -> int:
        end = min(row + rows, n_rows)
        x = X[row:end]
        re_t = real_t[column:end_column].T
        target = out[row:end, out_start + column:out_start + end_column]
        if linear:
            np.matmul(x, re_t, out=target)
            return 0
        if not hasattr(scratch, "re"):
            scratch.re = np.empty((rows, COLUMN_TILE), dtype=np.float32)
            scratch.im = np.empty_like(scratch.re)
        width = end_column - column
        re = scratch.re[: end - row, :width]
        im = scratch.im[: end - row, :width]
        np.matmul(x, re_t, out=re)
        np.matmul(x, imag_t[column:end_column].T, out=im)
        np.square(re, out=re)
        np.square(im, out=im)
        if camera.exposure_us is None:  # exact: sum straight into the output
            np.add(re, im, out=target)
            return 0
        re += im
        return camera.expose(re, target, tile=(row, out_start + column))

    camera.start_frame()
    saturated = 0
    pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            for start, stop, real_t, imag_t in blocks:
                tasks = [pool.submit(tile, real_t, imag_t, column,
                                     min(column + COLUMN_TILE, stop - start), start, row)
                         for column in range(0, stop - start, COLUMN_TILE)
                         for row in range(0, n_rows, rows)]
                saturated += sum(task.result() for task in tasks)
                if progress is not None:
                    progress((stop - start) / n_components)
    finally:
        # On an interrupt, drop the queued tiles; the running ones end within milliseconds.
        pool.shutdown(wait=True, cancel_futures=True)
    return saturated


class SimulatorBackend(Backend):
    """A fast, physically faithful stand-in for the OPU."""

    name = "simulator"

    def __init__(self, seed: int = 0, camera: str = "8bit", camera_noise: bool = False,
                 streaming: bool | str = "auto"):
        if camera not in cameras.CAMERAS:
            cameras.make_camera(camera, 1.0, False, 0)  # raises the explanatory error
        if streaming not in (True, False, "auto"):
            raise ValueError(f"streaming={streaming!r} is not valid; use True, False or 'auto'")
        self.seed = int(seed)
        self.camera_name = camera
        self.camera_noise = camera_noise
        self.streaming = streaming
        self._open = False
        self._shape = None  # (n_features, n_components) configured
        self._matrix = None  # (real, imag) when held
        self._matrix_shape = None
        self._camera = None
        self.exposure_us = cameras.REFERENCE_EXPOSURE_US

    # -- life cycle -----------------------------------------------------------------
    def open(self) -> None:
        self._open = True

    def close(self) -> None:
        self._open = False
        self._matrix = None
        self._matrix_shape = None

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def matrix_allocated(self) -> bool:
        return self._matrix is not None

    def configure(self, n_features, n_components, ones_fraction=None, **override):
        unknown = set(override) - {"exposure_us", "frametime_us", "input_roi", "raw_output_size"}
        if unknown:
            raise ValueError(f"unknown override(s) {sorted(unknown)}; lightonml accepts "
                             "exposure_us, frametime_us, input_roi, raw_output_size")
        self._shape = (int(n_features), int(n_components))
        if "exposure_us" in override:
            self.exposure_us = float(override["exposure_us"])
        else:
            # Expected |Hx|² for k ones is 2k/n_features; fit data tells the typical k.
            fraction = 0.5 if ones_fraction is None else ones_fraction
            self.exposure_us = cameras.auto_exposure_us(2.0 * fraction)
        self._camera = cameras.make_camera(self.camera_name, self.exposure_us,
                                           self.camera_noise, self.seed)

    @property
    def streams(self) -> bool:
        if self.streaming == "auto":
            return self._shape is not None and should_stream(*self._shape)
        return bool(self.streaming)

    def streams_at(self, n_features: int, n_components: int) -> bool:
        if self.streaming == "auto":
            return should_stream(n_features, n_components)
        return bool(self.streaming)

    def draws_matrix(self, n_features: int, n_components: int) -> bool:
        """Whether a transform at this shape draws H: streamed, every call; held, unless it
        is held at this shape already."""
        shape = (int(n_features), int(n_components))
        return self.streams_at(*shape) or self._matrix is None or self._matrix_shape != shape

    def matrix(self):
        """H for the configured shape, built on first use and kept while open."""
        if self._matrix_shape != self._shape:
            self._matrix = None  # free the old one before building the new one
            self._matrix = build_matrix(self.seed, *self._shape)
            self._matrix_shape = self._shape
        return self._matrix

    # -- transform ------------------------------------------------------------------
    def transform(self, X, linear=False, progress=None):
        n_rows = X.shape[0]
        n_features, n_components = self._shape
        camera = cameras.ExactCamera() if linear else self._camera
        out = np.empty((n_rows, n_components), dtype=np.float32 if linear else camera.dtype)
        if not X.flags.c_contiguous or X.dtype != np.float32:
            X = np.ascontiguousarray(X, dtype=np.float32)
        streams = self.streams
        blocks = self._streamed_blocks() if streams else self._held_blocks()
        saturated = project(X, blocks, out, linear, camera, progress)
        return Acquisition(
            output=out,
            exposure_us=camera.exposure_us,
            frametime_us=cameras.FRAMETIME_US,
            saturated=None if camera.exposure_us is None else saturated / max(1, out.size),
            extra={"streaming": streams},
        )

    def _held_blocks(self):
        real_t, imag_t = self.matrix()
        n_components = self._shape[1]
        for block in range(n_blocks(n_components)):
            start, stop = block_bounds(block, n_components)
            yield start, stop, real_t[start:stop], imag_t[start:stop]

    def _streamed_blocks(self):
        """Regenerate H block by block, drawing the next block while this one multiplies."""
        n_features, n_components = self._shape
        total = n_blocks(n_components)

        def draw(block):
            start, stop = block_bounds(block, n_components)
            return matrix_block(self.seed, n_features, block, stop - start)

        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(draw, 0)
            for block in range(total):
                real_t, imag_t = pending.result()
                if block + 1 < total:
                    pending = pool.submit(draw, block + 1)
                yield (*block_bounds(block, n_components), real_t, imag_t)

    def describe(self) -> dict:
        return {
            "backend": self.name,
            "device": "simulated",
            "seed": self.seed,
            "camera": self.camera_name,
            "camera_noise": self.camera_noise,
            "streaming": self.streams,
            "matrix_allocated": self.matrix_allocated,
            "exposure_us": self.exposure_us,
        }
