"""The simulated OPU: y = |Hx|² with H a seeded complex Gaussian matrix.

Speed: inputs are binary, so Hx is a real matrix product. Re(Hx) and Im(Hx) are two float32
GEMMs (half the arithmetic of lightonml's complex64 product). Memory: rows are processed in
blocks so that scratch space stays small next to the matrix and the output.

H is built from column blocks of ``BLOCK_COMPONENTS`` components, each drawn from its own
generator seeded with (seed, n_features, block index). So the matrix can be regenerated block
by block (streaming mode, for n_components too large to hold), gives identical results held or
streamed, and growing ``n_components`` keeps the first components unchanged.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import camera as cameras
from .base import Acquisition, Backend

log = logging.getLogger(__name__)

BLOCK_COMPONENTS = 4096
#: Scratch space per row block; small next to the matrix, large enough for efficient GEMMs.
SCRATCH_BYTES = 32 * 2**20
MIN_ROW_BLOCK = 16


def matrix_block(seed: int, n_features: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Real and imaginary parts of column block ``block`` of H, each N(0, 1/n_features)."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, n_features, block])))
    shape = (n_features, BLOCK_COMPONENTS)
    scale = np.float32(1.0 / np.sqrt(n_features))
    real = rng.standard_normal(shape, dtype=np.float32)
    real *= scale
    imag = rng.standard_normal(shape, dtype=np.float32)
    imag *= scale
    return real, imag


def n_blocks(n_components: int) -> int:
    return -(-n_components // BLOCK_COMPONENTS)


def build_matrix(seed: int, n_features: int, n_components: int, workers: int | None = None):
    """H as two C-contiguous float32 arrays (n_features × n_components), built in parallel."""
    real = np.empty((n_features, n_components), dtype=np.float32)
    imag = np.empty((n_features, n_components), dtype=np.float32)

    def fill(block: int) -> None:
        start = block * BLOCK_COMPONENTS
        stop = min(start + BLOCK_COMPONENTS, n_components)
        re_b, im_b = matrix_block(seed, n_features, block)
        real[:, start:stop] = re_b[:, : stop - start]
        imag[:, start:stop] = im_b[:, : stop - start]

    # numpy's generators release the GIL while filling arrays, so threads scale.
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        list(pool.map(fill, range(n_blocks(n_components))))
    return real, imag


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


def row_block_size(n_rows: int, n_columns: int, n_buffers: int) -> int:
    rows = SCRATCH_BYTES // max(1, 4 * n_columns * n_buffers)
    return int(max(MIN_ROW_BLOCK, min(n_rows, rows)))


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
        n_components = self._shape[1]
        camera = cameras.ExactCamera() if linear else self._camera
        out = np.empty((n_rows, n_components), dtype=np.float32 if linear else camera.dtype)
        if not X.flags.c_contiguous or X.dtype != np.float32:
            X = np.ascontiguousarray(X, dtype=np.float32)
        if self.streams:
            saturated = self._transform_streaming(X, out, linear, camera, progress)
        else:
            saturated = self._transform_held(X, out, linear, camera, progress)
        return Acquisition(
            output=out,
            exposure_us=None if linear else camera.exposure_us,
            frametime_us=cameras.FRAMETIME_US,
            saturated=None if camera.exposure_us is None else saturated / max(1, out.size),
            extra={"streaming": self.streams},
        )

    def _transform_held(self, X, out, linear, camera, progress):
        real, imag = self.matrix()
        n_rows, n_components = out.shape
        exact_in_place = out.dtype == np.float32
        rows = row_block_size(n_rows, n_components, 1 if exact_in_place else 2)
        scratch = np.empty((rows, n_components), dtype=np.float32)
        second = None if exact_in_place else np.empty_like(scratch)
        saturated = 0
        for start in range(0, n_rows, rows):
            stop = min(start + rows, n_rows)
            x = X[start:stop]
            # Write Re(Hx) straight into the output when it is float32: one scratch less.
            first = out[start:stop] if exact_in_place else second[: stop - start]
            np.matmul(x, real, out=first)
            if not linear:
                im = scratch[: stop - start]
                np.matmul(x, imag, out=im)
                np.square(first, out=first)
                np.square(im, out=im)
                first += im
                saturated += camera.expose(first, out[start:stop])
            if progress is not None:
                progress((stop - start) / n_rows)
        return saturated

    def _transform_streaming(self, X, out, linear, camera, progress):
        n_rows, n_components = out.shape
        n_features = self._shape[0]
        saturated = 0
        re_out = np.empty((n_rows, BLOCK_COMPONENTS), dtype=np.float32)
        im_out = np.empty_like(re_out)
        total = n_blocks(n_components)
        # Draw the next block on a worker thread while this one multiplies.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(matrix_block, self.seed, n_features, 0)
            for block in range(total):
                real, imag = pending.result()
                if block + 1 < total:
                    pending = pool.submit(matrix_block, self.seed, n_features, block + 1)
                start = block * BLOCK_COMPONENTS
                stop = min(start + BLOCK_COMPONENTS, n_components)
                np.matmul(X, real, out=re_out)
                if linear:
                    out[:, start:stop] = re_out[:, : stop - start]
                else:
                    np.matmul(X, imag, out=im_out)
                    np.square(re_out, out=re_out)
                    np.square(im_out, out=im_out)
                    re_out += im_out
                    saturated += camera.expose(re_out[:, : stop - start], out[:, start:stop])
                del real, imag
                if progress is not None:
                    progress(1.0 / total)
        return saturated

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
