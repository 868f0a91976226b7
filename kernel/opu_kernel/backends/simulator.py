"""The simulated OPU: y = |Hx|² with H a seeded complex Gaussian matrix.

Speed: inputs are binary, so Hx is a real matrix product. Re(Hx) and Im(Hx) are two float32
GEMMs (half the arithmetic of lightonml's complex64 product). Memory and cache: the output is
computed in tiles (ROW_TILE inputs × COLUMN_TILE components), squared while in cache, so
scratch space is a few MiB whatever the shape.

For the 8-bit camera (the default) H is quantized to int8 and the sums are exact integers
(``integer.py``): the counts depend only on the seed and the input, on every CPU.

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
from . import integer
from .base import Acquisition, Backend

ARITHMETICS = ("auto", "int8", "float32")
BLOCK_COMPONENTS = 4096
#: Entries of one part (real or imaginary) of a block of H: 4096 components up to 4096
#: features (64 MiB); beyond, blocks get narrower, so that streaming a hardware-sized input
#: (1140 × 912 features) draws 64 MiB at a time, not 32 GiB.
BLOCK_ENTRIES = 4096 * 4096
#: Output tile computed at once: ROW_TILE inputs × COLUMN_TILE components (4 MiB of float32).
#: Large enough that the GEMMs run at full speed (packing is amortized), small enough that the
#: squaring reads them from cache and scratch stays a few MiB per thread. Measured
#: single-threaded, these tiles cost 0.96–0.97× two plain GEMMs writing the full outputs.
ROW_TILE = 1024
COLUMN_TILE = 1024
#: Inputs converted to float32 at once are at most this many entries (64 MiB) per thread:
#: ROW_TILE rows up to 16,384 features, fewer rows for wider inputs.
ROW_TILE_ENTRIES = 2**24
#: Blocks drawn ahead while streaming take at most this much memory (at least one block).
DRAW_AHEAD_BYTES = 256 * 2**20


def block_components(n_features: int) -> int:
    """Components per block of H for inputs of ``n_features``: 4096, or the largest power of
    two that keeps a block within ``BLOCK_ENTRIES``. Fixed per ``n_features``, so that held
    and streamed matrices are identical."""
    if n_features <= BLOCK_ENTRIES // BLOCK_COMPONENTS:
        return BLOCK_COMPONENTS
    return max(1, 1 << (BLOCK_ENTRIES // n_features).bit_length() - 1)


def block_rng(seed: int, n_features: int, block: int, part: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, n_features,
                                                                       block, part])))


def fill_block(seed: int, n_features: int, block: int, real_t: np.ndarray,
               imag_t: np.ndarray, scale_features: int | None = None) -> None:
    """Draw block ``block`` of H (its ``block_components(n_features)`` components) into
    ``real_t``/``imag_t``, with entries of variance 1/``scale_features`` (default
    ``n_features``) per part.

    Both are (components × n_features) C-contiguous: H is stored transposed so that a block
    of components is a contiguous slab, drawn in place. Generators fill row by row, so a
    partial last block holds the first rows of the full one.
    """
    scale = np.float32(1.0 / np.sqrt(scale_features or n_features))
    for part, target in enumerate((real_t, imag_t)):
        block_rng(seed, n_features, block, part).standard_normal(dtype=np.float32, out=target)
        target *= scale


def matrix_block(seed: int, n_features: int, block: int, width: int | None = None,
                 scale_features: int | None = None):
    """Real and imaginary parts of H's component block ``block`` (width × n_features)."""
    width = block_components(n_features) if width is None else width
    real_t = np.empty((width, n_features), dtype=np.float32)
    imag_t = np.empty_like(real_t)
    fill_block(seed, n_features, block, real_t, imag_t, scale_features)
    return real_t, imag_t


def n_blocks(n_components: int, n_features: int = 1) -> int:
    return -(-n_components // block_components(n_features))


def block_bounds(block: int, n_components: int, n_features: int = 1) -> tuple[int, int]:
    width = block_components(n_features)
    start = block * width
    return start, min(start + width, n_components)


def build_matrix(seed: int, n_features: int, n_components: int, workers: int | None = None,
                 scale_features: int | None = None):
    """Hᵀ as two float32 arrays (n_components × n_features), drawn in parallel, in place."""
    real_t = np.empty((n_components, n_features), dtype=np.float32)
    imag_t = np.empty_like(real_t)

    def fill(block: int) -> None:
        start, stop = block_bounds(block, n_components, n_features)
        fill_block(seed, n_features, block, real_t[start:stop], imag_t[start:stop],
                   scale_features)

    # numpy's generators release the GIL while filling arrays, so threads scale.
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        list(pool.map(fill, range(n_blocks(n_components, n_features))))
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


def matrix_bytes(n_features: int, n_components: int, itemsize: int = 4) -> int:
    return 2 * itemsize * n_features * n_components


def should_stream(n_features: int, n_components: int, itemsize: int = 4) -> bool:
    """Stream when holding H would take more than 40 % of the memory available now."""
    return matrix_bytes(n_features, n_components, itemsize) > 0.4 * available_memory_bytes()


def blocks_ahead(workers: int, block_bytes: int) -> int:
    """Blocks drawn at once while streaming: one per worker, within ``DRAW_AHEAD_BYTES``."""
    return max(1, min(workers, DRAW_AHEAD_BYTES // max(1, block_bytes)))


def draw_ahead(n_features: int, n_components: int, draw, workers: int | None = None,
               block_bytes: int = 0):
    """Yield (start, stop, *draw(block, width)) for consecutive blocks, drawing ahead on every
    core: up to ``workers`` blocks beyond the one being multiplied are drawn at once (fewer
    when blocks of ``block_bytes`` would take more than ``DRAW_AHEAD_BYTES``). With a small
    batch, drawing, not multiplying, is the bulk of a streamed transform."""
    total = n_blocks(n_components, n_features)
    workers = blocks_ahead(workers or os.cpu_count() or 1, block_bytes)

    def submit(block):
        start, stop = block_bounds(block, n_components, n_features)
        return pool.submit(draw, block, stop - start)

    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        pending = [submit(block) for block in range(min(workers + 1, total))]
        for block in range(total):
            drawn = pending.pop(0).result()
            if block + workers + 1 < total:
                pending.append(submit(block + workers + 1))
            yield (*block_bounds(block, n_components, n_features), *drawn)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def project(X: np.ndarray, blocks, out: np.ndarray, linear: bool, camera, progress=None,
            workers: int | None = None) -> int:
    """Fill ``out`` with |XH|² (or Re(XH)) tile by tile; returns the saturated count.

    ``X`` holds 0/1 values in any numeric dtype; it is converted to float32 one row tile at a
    time, so a batch of hardware-sized uint8 inputs never exists as float32 as a whole.
    ``blocks`` yields (start, stop, real_t, imag_t) for consecutive component blocks. Tiles run
    on ``workers`` threads (default: one per core), each with single-threaded BLAS: the
    squaring and quantization are parallel too, and no BLAS thread spins waiting for another
    on a shared machine.
    """
    n_rows, n_components = out.shape
    n_features = X.shape[1]
    rows = max(1, min(ROW_TILE, n_rows, ROW_TILE_ENTRIES // n_features))
    if X.dtype != np.float32 and X.size <= ROW_TILE_ENTRIES:
        X = X.astype(np.float32)  # small: convert once rather than once per tile
    scratch = threading.local()

    def tile(real_t, imag_t, column, end_column, out_start, row) -> int:
        end = min(row + rows, n_rows)
        x = X[row:end]
        if x.dtype != np.float32:
            if getattr(scratch, "x", None) is None:
                scratch.x = np.empty((rows, n_features), dtype=np.float32)
            x = scratch.x[: end - row]
            np.copyto(x, X[row:end], casting="unsafe")
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
                 streaming: bool | str = "auto", gemm: str = "auto", arithmetic: str = "auto"):
        """``arithmetic``: "int8" (H quantized, exact integer sums: ``integer.py``),
        "float32" (lightonml's Gaussian H in float32) or "auto" (default): int8 for the 8-bit
        camera, float32 for the exact one.

        ``gemm`` (int8 only): what sums the int8 products — "torch" (its int8 GEMM), "numpy"
        (float32 GEMMs, exact on int8 values) or "auto": torch when it is installed, the CPU
        has int8 dot-product instructions and the transform is large or torch already
        imported. All give identical results."""
        if camera not in cameras.CAMERAS:
            cameras.make_camera(camera, 1.0, False, 0)  # raises the explanatory error
        if streaming not in (True, False, "auto"):
            raise ValueError(f"streaming={streaming!r} is not valid; use True, False or 'auto'")
        if gemm not in integer.ENGINES:
            raise ValueError(f"gemm={gemm!r} is not valid; choose one of "
                             + ", ".join(repr(e) for e in integer.ENGINES))
        if arithmetic not in ARITHMETICS:
            raise ValueError(f"arithmetic={arithmetic!r} is not valid; choose one of "
                             + ", ".join(repr(a) for a in ARITHMETICS))
        self.gemm = gemm
        self.arithmetic = arithmetic
        self.seed = int(seed)
        self.camera_name = camera
        self.camera_noise = camera_noise
        self.streaming = streaming
        self._open = False
        self._shape = None  # (n_features, n_components) configured
        self._matrix = None  # held: (real_t, imag_t) float32, or the int8 tile layout
        self._matrix_shape = None  # (n_features, n_components, scale_features) held
        self._camera = None
        #: Variance 1/scale_features per part of H's entries; None: 1/n_features (see
        #: ``configure``).
        self.scale_features = None
        self.exposure_us = cameras.REFERENCE_EXPOSURE_US
        self.frametime_us = cameras.FRAMETIME_US

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

    def configure(self, n_features, n_components, ones_fraction=None, scale_features=None,
                  **override):
        """``scale_features``: draw H with entries of variance 1/scale_features per part
        instead of 1/n_features (lightonml's simulator scales by ``max_n_features``)."""
        unknown = set(override) - {"exposure_us", "frametime_us", "input_roi", "raw_output_size"}
        if unknown:
            raise ValueError(f"unknown override(s) {sorted(unknown)}; lightonml accepts "
                             "exposure_us, frametime_us, input_roi, raw_output_size")
        self._shape = (int(n_features), int(n_components))
        self.scale_features = None if scale_features is None else int(scale_features)
        if "exposure_us" in override:
            self.exposure_us = float(override["exposure_us"])
        else:
            # Expected |Hx|² for k ones is 2k/scale (scale: n_features unless told); fit data
            # tells the typical k.
            fraction = 0.5 if ones_fraction is None else ones_fraction
            relative = n_features / (self.scale_features or n_features)
            self.exposure_us = cameras.auto_exposure_us(2.0 * fraction * relative)
        self._camera = cameras.make_camera(self.camera_name, self.exposure_us,
                                           self.camera_noise, self.seed)

    @property
    def int8(self) -> bool:
        """Whether H is the int8 one with exact integer sums (by default: for the 8-bit
        camera), not float32."""
        if self.arithmetic == "auto":
            return self.camera_name == "8bit"
        return self.arithmetic == "int8"

    @property
    def streams(self) -> bool:
        if self.streaming == "auto":
            return self._shape is not None and self.streams_at(*self._shape)
        return bool(self.streaming)

    def streams_at(self, n_features: int, n_components: int) -> bool:
        if self.streaming == "auto":
            return should_stream(n_features, n_components, 1 if self.int8 else 4)
        return bool(self.streaming)

    def draws_matrix(self, n_features: int, n_components: int) -> bool:
        """Whether a transform at this shape draws H: streamed, every call; held, unless it
        is held at this shape already."""
        key = (int(n_features), int(n_components), self.scale_features)
        return (self.streams_at(*key[:2]) or self._matrix is None
                or self._matrix_shape != key)

    def held_matrix(self):
        """H for the configured shape as the transform uses it (float32 (real_t, imag_t), or
        int8 in the tile layout for the 8-bit camera), built on first use, kept while open."""
        key = (*self._shape, self.scale_features)
        if self._matrix_shape != key:
            self._matrix = None  # free the old one before building the new one
            if self.int8:
                self._matrix = integer.build_matrix(self.seed, *self._shape)
            else:
                self._matrix = build_matrix(self.seed, *self._shape,
                                            scale_features=self.scale_features)
            self._matrix_shape = key
        return self._matrix

    def matrix(self):
        """H's real and imaginary parts, transposed (n_components × n_features float32): the
        held arrays, or for the 8-bit camera the values its int8 entries stand for (a copy)."""
        held = self.held_matrix()
        if not self.int8:
            return held
        return integer.dequantize(held, self._shape[0], self._scale())

    def integer_matrix(self):
        """8-bit camera: H's int8 levels (real, imag), each n_components × n_features (a copy);
        an entry is worth ``integer.dequantization_scale(scale)`` in H."""
        return integer.split_parts(self.held_matrix(), self._shape[0])

    def _scale(self) -> int:
        return self.scale_features or self._shape[0]

    # -- transform ------------------------------------------------------------------
    def transform(self, X, linear=False, progress=None):
        n_rows = X.shape[0]
        n_features, n_components = self._shape
        camera = cameras.ExactCamera() if linear else self._camera
        out = np.empty((n_rows, n_components), dtype=np.float32 if linear else camera.dtype)
        # 0/1 values in any numeric dtype: converted to float32 tile by tile in project()
        X = np.ascontiguousarray(X)
        if X.dtype == np.bool_:
            X = X.view(np.uint8)
        streams = self.streams
        blocks = self._streamed_blocks() if streams else self._held_blocks()
        if self.int8:
            work = n_rows * n_features * n_components * (1 if linear else 2)
            engine = integer.choose_engine(self.gemm, work)
            saturated = integer.project(X, blocks, out, linear, camera, self._scale(), engine,
                                        progress)
        else:
            saturated = project(X, blocks, out, linear, camera, progress)
        return Acquisition(
            output=out,
            exposure_us=camera.exposure_us,
            frametime_us=cameras.FRAMETIME_US,
            saturated=None if camera.exposure_us is None else saturated / max(1, out.size),
            extra={"streaming": streams},
        )

    def _held_blocks(self):
        held = self.held_matrix()
        n_features, n_components = self._shape
        for block in range(n_blocks(n_components, n_features)):
            start, stop = block_bounds(block, n_components, n_features)
            if self.int8:
                yield start, stop, held[2 * start:2 * stop]
            else:
                yield start, stop, held[0][start:stop], held[1][start:stop]

    def _streamed_blocks(self):
        """Regenerate H block by block, the next blocks drawn on every core while this one
        multiplies."""
        n_features, n_components = self._shape
        if self.int8:
            def draw(block, width):
                return (integer.matrix_block(self.seed, n_features, block, width),)
        else:
            def draw(block, width):
                return matrix_block(self.seed, n_features, block, width, self.scale_features)
        block_bytes = matrix_bytes(n_features, block_components(n_features),
                                   1 if self.int8 else 4)
        return draw_ahead(n_features, n_components, draw, block_bytes=block_bytes)

    # -- what lightonml's SimulatedOpuDevice offers, for code that reads opu.device ---------
    @property
    def random_matrix(self):
        """H for the fitted shape as lightonml lays it out (n_features × n_components,
        complex64), or None before the first transform. Built on request: a copy."""
        if self._shape is None:
            return None
        if not self.streams:
            real_t, imag_t = self.matrix()
        elif self.int8:
            real_t, imag_t = integer.dequantize(integer.build_matrix(self.seed, *self._shape),
                                                self._shape[0], self._scale())
        else:
            real_t, imag_t = build_matrix(self.seed, *self._shape,
                                          scale_features=self.scale_features)
        matrix = np.empty(real_t.shape[::-1], dtype=np.complex64)
        matrix.real = real_t.T
        matrix.imag = imag_t.T
        return matrix

    @property
    def nb_features(self):
        return None if self._shape is None else self._shape[0]

    @property
    def output_roi(self):
        n_components = 0 if self._shape is None else self._shape[1]
        return (0, 0), (1, n_components)

    @property
    def gain_dB(self) -> float:  # noqa: N802 - lightonml's name
        return 0.0

    def describe(self) -> dict:
        return {
            "backend": self.name,
            "device": "simulated",
            "seed": self.seed,
            "camera": self.camera_name,
            "camera_noise": self.camera_noise,
            "streaming": self.streams,
            "arithmetic": "int8, exact" if self.int8 else "float32",
            "matrix_allocated": self.matrix_allocated,
            "exposure_us": self.exposure_us,
        }
