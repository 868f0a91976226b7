"""Camera models of the simulator: what turns |Hx|² into numbers.

The OPU reads the speckle with an 8-bit camera: intensities are scaled by the exposure,
rounded, and saturate at 255. ``ExactCamera`` returns the float intensities themselves
(lightonml's simulator). The 8-bit model's units are chosen so that an input whose
expected intensity is 1 (half of the pixels on, with the simulator's matrix scaling) reads
a mean of ``TARGET_MEAN_COUNTS`` at the reference exposure of 400 µs.
"""

from __future__ import annotations

import numpy as np

REFERENCE_EXPOSURE_US = 400.0
FRAMETIME_US = 500.0
#: Mean count aimed at by auto-exposure: an exponential intensity with this mean saturates
#: 255 with probability exp(-255/32) ≈ 0.03 % (< 0.5 %) and stays well above a mean of 11.
TARGET_MEAN_COUNTS = 32.0
COUNTS_PER_US = TARGET_MEAN_COUNTS / REFERENCE_EXPOSURE_US
#: Photo-electrons per count and read noise (electrons), used only when noise is enabled.
ELECTRONS_PER_COUNT = 4.0
READ_NOISE_ELECTRONS = 2.0
SATURATION_WARNING = 0.005
LOW_MEAN_WARNING = 11.0
CAMERAS = ("8bit", "exact")


def auto_exposure_us(mean_intensity: float) -> float:
    """Exposure that maps ``mean_intensity`` to ``TARGET_MEAN_COUNTS``."""
    if not mean_intensity > 0:
        return REFERENCE_EXPOSURE_US
    return TARGET_MEAN_COUNTS / (COUNTS_PER_US * mean_intensity)


class ExactCamera:
    """float32 intensities, no quantization, no noise."""

    name = "exact"
    dtype = np.float32
    exposure_us = None

    def start_frame(self) -> None:
        """Nothing to prepare: exact intensities carry no noise."""

    def expose(self, intensity: np.ndarray, out: np.ndarray, tile=(0, 0)) -> int:
        if out is not intensity:
            out[...] = intensity
        return 0


class EightBitCamera:
    """uint8 counts = round(intensity × gain [+ noise]), clipped to 0..255."""

    name = "8bit"
    dtype = np.uint8

    def __init__(self, exposure_us: float, noise: bool = False, seed: int = 0):
        if not exposure_us > 0:
            raise ValueError(f"exposure_us must be positive, got {exposure_us!r}")
        self.exposure_us = float(exposure_us)
        self.noise = bool(noise)
        self.seed = int(seed)
        self._frames = 0

    @property
    def gain(self) -> float:
        return self.exposure_us * COUNTS_PER_US

    def start_frame(self) -> None:
        """A new acquisition: its noise differs from the previous one's, reproducibly."""
        self._frames += 1

    def expose(self, intensity: np.ndarray, out: np.ndarray, tile=(0, 0)) -> int:
        """Quantize ``intensity`` (float32 scratch, modified in place) into ``out`` (uint8).

        ``tile`` (first row, first component) seeds the noise of this part of the frame, so
        noise does not depend on which thread computes which tile. Returns the number of
        saturated values.
        """
        intensity *= np.float32(self.gain)
        return self.read(intensity, out, tile)

    def read(self, counts: np.ndarray, out: np.ndarray, tile=(0, 0)) -> int:
        """Counts already scaled by the gain (float scratch, modified in place) into ``out``
        (uint8): noise when enabled, then rounded and clipped to 0..255. Returns the number
        of saturated values. Clipping before rounding gives what rounding first gives."""
        if self.noise:
            rng = np.random.default_rng([self.seed, 0x0E1F, self._frames, *tile])
            electrons = rng.poisson(counts * ELECTRONS_PER_COUNT).astype(np.float32)
            electrons += rng.normal(0.0, READ_NOISE_ELECTRONS,
                                    counts.shape).astype(np.float32)
            np.multiply(electrons, 1.0 / ELECTRONS_PER_COUNT, out=counts,
                        casting="unsafe")
        np.clip(counts, 0.0, 255.0, out=counts)
        np.rint(counts, out=out, casting="unsafe")
        return int(np.count_nonzero(out == 255))


def make_camera(camera: str, exposure_us: float, noise: bool, seed: int):
    if camera == "exact":
        return ExactCamera()
    if camera == "8bit":
        return EightBitCamera(exposure_us, noise=noise, seed=seed)
    raise ValueError(f"camera={camera!r} is not valid; choose '8bit' (like the device) or 'exact'")


def exposure_advice(counts: np.ndarray, saturated_fraction: float | None) -> str | None:
    """What the device would warn about an 8-bit acquisition, or None when it looks right."""
    if saturated_fraction is not None and saturated_fraction > SATURATION_WARNING:
        return (f"{100 * saturated_fraction:.1f}% of the outputs saturated at 255; lower the "
                "exposure (fit with exposure_us=...) or refit on representative inputs")
    if counts.size and counts.dtype == np.uint8:
        mean = float(counts.mean())
        if mean < LOW_MEAN_WARNING:
            return (f"the mean output is {mean:.1f} (< {LOW_MEAN_WARNING:g}): the signal is "
                    "weak; raise the exposure or use inputs with more ones")
    return None
