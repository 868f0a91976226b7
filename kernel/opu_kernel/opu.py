"""The OPU proxy: lightonml's ``OPU`` API over our simulator or the real device."""

from __future__ import annotations

import inspect
import math
import os
import warnings

import numpy as np

from . import __version__, backends, limits
from . import camera as cameras
from .backends.simulator import SimulatorBackend
from .context import Context, ContextArray, now
from .encoding.base import NoDecoding, NoEncoding
from .errors import DeviceClosedError, NotFittedError
from .inputs import InputTraits, prepare, too_many_features, traits_for_fit
from .tensors import to_torch
from .types import FeaturesFormat, InputRoiStrategy, OutputRescaling, as_enum

DEFAULT_SEED = 0


class OPU:
    """An Optical Processing Unit, or its simulator: random projections y = |Hx|².

    Parameters are those of ``lightonml.opu.OPU`` plus:

    seed: int
        Seed of the simulator's random matrix H (default 0, so results are reproducible).
    backend: "auto", "simulator" or "hardware"
        "auto" (default, or env ``OPU_BACKEND``) uses the hardware when a device node
        (``opu_device``, env ``OPU_DEVICE`` or ``/dev/opu0``) and LightOn's driver exist.
    camera: "8bit" or "exact"
        Simulator output: uint8 counts like the device's camera (default: H quantized to int8,
        exact integer sums, so the same bytes on every CPU), or float32 |Hx|² (lightonml's
        Gaussian H).
    camera_noise: bool
        Simulator only: add shot and read noise to the 8-bit camera.
    streaming: True, False or "auto"
        Simulator only: regenerate H block by block instead of holding it ("auto": when
        holding it would take over 40 % of the available memory).

    On the simulator, a server may cap ``n_components`` and the work of one transform (env
    ``OPU_SIMULATOR_MAX_N_COMPONENTS``, ``OPU_SIMULATOR_MAX_WORK``; see ``opu_kernel.limits``):
    larger requests raise ``SimulatorLimitError`` (a ``ValueError``) before computing.
    """

    def __init__(self, n_components: int = 200000, opu_device=None,
                 max_n_features: int = 1000, config_file: str = "",
                 config_override: dict | None = None, verbose_level: int = -1,
                 input_roi_strategy=InputRoiStrategy.full, open_at_init: bool | None = None,
                 disable_pbar: bool = False, simulated: bool = False,
                 rescale=OutputRescaling.variance, *, seed: int | None = None,
                 backend: str | None = None, camera: str = "8bit", camera_noise: bool = False,
                 streaming="auto"):
        if verbose_level != -1:
            warnings.warn("verbose_level is deprecated and ignored; configure the "
                          "'opu_kernel' logger instead", DeprecationWarning, stacklevel=2)
        self.rescale = rescale
        self.input_roi_strategy = as_enum(InputRoiStrategy, input_roi_strategy,
                                          "input_roi_strategy")
        self.disable_pbar = bool(disable_pbar)
        self.config_file = config_file
        self.config_override = dict(config_override or {})
        self.seed = DEFAULT_SEED if seed is None else int(seed)
        self.camera = camera
        self.camera_noise = bool(camera_noise)
        self.streaming = streaming
        self.max_n_features = max_n_features
        self.n_components = n_components
        self._traits: InputTraits | None = None
        self._fit_override: dict = {}
        self._ones_fraction: float | None = None
        self._configured = False
        #: Context of the last acquisition (None before the first transform).
        self.last_context: Context | None = None

        if isinstance(opu_device, backends.Backend):
            if simulated and not isinstance(opu_device, SimulatorBackend):
                raise ValueError("simulated=True conflicts with the given opu_device")
            self.device = opu_device
        else:
            if opu_device is not None and not isinstance(opu_device, str | os.PathLike):
                raise TypeError("opu_device must be a device node path (e.g. '/dev/opu0') "
                                f"or an opu_kernel backend, got {type(opu_device).__name__}")
            device_node = os.fspath(opu_device) if opu_device is not None else None
            if simulated:
                if backend not in (None, "auto", "simulator"):
                    raise ValueError(f"simulated=True conflicts with backend={backend!r}")
                backend = "simulator"
            name = backends.choose_backend(backend, device_node)
            self.device = backends.make_backend(
                name, device=device_node, seed=self.seed, camera=camera,
                camera_noise=self.camera_noise, streaming=streaming,
                config_file=config_file, config_override=self.config_override)
        self._check_n_components(self.n_components)
        if open_at_init is None:
            open_at_init = True
        if open_at_init:
            self.open()

    # -- properties -------------------------------------------------------------------
    @property
    def backend(self) -> str:
        """Name of the backend in use: "simulator" or "hardware"."""
        return self.device.name

    @property
    def simulated(self) -> bool:
        return self.device.name == "simulator"

    @property
    def rescale(self) -> OutputRescaling:
        """How ``linear_transform`` rescales: an ``OutputRescaling``; its name as a string
        ("norm", any case) is accepted, as in lightonml."""
        return self._rescale

    @rescale.setter
    def rescale(self, value) -> None:
        self._rescale = as_enum(OutputRescaling, value, "rescale")

    @property
    def config(self) -> dict:
        """The device configuration (lightonml's ``OPU.config``): the hardware's, read from
        ``/etc/lighton`` like lightonml, or the simulator's stand-in with the same keys."""
        device_config = getattr(self.device, "config", None)
        if device_config is not None:
            return device_config
        from .backends.hardware import load_config

        return load_config(self.config_file, self.config_override)

    @property
    def max_n_components(self) -> int:
        """The largest ``n_components``: the camera's pixels, or this server's simulator cap
        (``OPU_SIMULATOR_MAX_N_COMPONENTS``) when one is set."""
        if self.simulated:
            cap = limits.SimulatorLimits.from_env().max_n_components
            if cap is not None:
                return cap
        return int(np.prod(self.device.output_shape_max))

    @property
    def n_components(self) -> int:
        return self._n_components

    @n_components.setter
    def n_components(self, value: int) -> None:
        value = positive_int(value, "n_components")
        if "device" in self.__dict__:  # the constructor checks once the backend is known
            self._check_n_components(value)
        self._n_components = value
        self._configured = False

    @property
    def max_n_features(self) -> int:
        return self._max_n_features

    @max_n_features.setter
    def max_n_features(self, value: int) -> None:
        self._max_n_features = positive_int(value, "max_n_features")

    @property
    def n_features(self):
        """Features per input fixed by the last fit (None before any fit)."""
        return None if self._traits is None else self._traits.n_features

    @property
    def is_open(self) -> bool:
        return self.device.is_open

    # -- life cycle -------------------------------------------------------------------
    def open(self) -> None:
        """Acquire the device (the hardware lock; nothing costly for the simulator)."""
        self.device.open()

    def close(self) -> None:
        """Release the device so another process can use it; the fit is kept."""
        self.device.close()
        self._configured = False

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown: nothing left to report to
            pass

    # -- fit --------------------------------------------------------------------------
    def fit1d(self, X=None, n_features: int | None = None, packed: bool = False,
              online: bool = False, **override):
        """Prepare for 1D inputs of ``n_features`` (or the shape of the sample ``X``)."""
        self._fit(X, n_features, packed, False, online, override)
        return self

    def fit2d(self, X=None, n_features: tuple[int, int] | None = None, packed: bool = False,
              online: bool = False, **override):
        """Prepare for 2D inputs of shape ``n_features`` (or of the sample ``X``)."""
        self._fit(X, n_features, packed, True, online, override)
        return self

    def _fit(self, X, n_features, packed, is_2d, online, override):
        self._check_n_components(self.n_components)
        traits = traits_for_fit(X, n_features, packed, is_2d)
        if traits.n_features_s > self.max_n_features:
            raise ValueError(too_many_features(traits.n_features_s, self.max_n_features))
        ones_fraction = None if X is None else self._fit_sample_ones(X, traits)
        self._traits = traits
        self._online = bool(online)
        self._fit_override = dict(override)
        self._ones_fraction = ones_fraction
        self._configured = False

    def _fit_sample_ones(self, X, traits) -> float | None:
        """The fraction of ones in the fit sample ``X`` (it sets the camera's exposure)."""
        try:
            sample = prepare(X, traits, self.max_n_features)
        except ValueError as exc:
            if "not binary" in str(exc) or "NaN" in str(exc):
                raise ValueError(
                    f"{exc}. To prepare for real-valued data that an encoder binarizes in "
                    "transform/linear_transform, fit with its number of features instead: "
                    "opu.fit1d(n_features=X.shape[-1])") from None
            raise
        return float(sample.n_ones.mean()) / traits.n_features_s

    def _matrix_scale_features(self) -> int | None:
        """Features that set the simulated H's scale (None: the fitted number)."""
        return None

    def fit_transform1d(self, X, packed: bool = False, **override):
        self.fit1d(X, None, packed, False, **override)
        return self.transform(X)

    def fit_transform2d(self, X, packed: bool = False, n_2d_features=None, **override):
        self.fit2d(X, n_2d_features, packed, False, **override)
        return self.transform(X)

    def transform1d(self, *args, **kwargs):
        raise RuntimeError("transform1d was removed in lightonml 1.2: call fit1d, then transform")

    def transform2d(self, *args, **kwargs):
        raise RuntimeError("transform2d was removed in lightonml 1.2: call fit2d, then transform")

    # -- transform --------------------------------------------------------------------
    def transform(self, X, encoder_cls=NoEncoding, decoder_cls=NoDecoding):
        """Random features |Hx|² of the binary input(s) ``X``.

        Output shape is ``X``'s batch shape + (n_components,): uint8 with the 8-bit camera,
        float32 with ``camera="exact"``. numpy in → ContextArray out; torch in → torch out.
        """
        return self._run(X, encoder_cls, decoder_cls, linear=False)

    def linear_transform(self, X, encoder_cls=NoEncoding, decoder_cls=NoDecoding):
        """Re(Hx), rescaled as ``rescale`` says (lightonml's convention)."""
        if self._traits is not None and self._traits.packed:
            raise ValueError("linear_transform takes unpacked input; refit with packed=False")
        output = self._run(X, encoder_cls, decoder_cls, linear=True)
        if self.rescale is OutputRescaling.variance:
            output = output / math.sqrt(self._traits.n_features_s)
        elif self.rescale is OutputRescaling.norm:
            output = output / math.sqrt(self.n_components)
        return output

    def _run(self, X, encoder_cls, decoder_cls, linear):
        if self._traits is None:
            raise NotFittedError("call opu.fit1d(...) or opu.fit2d(...) before transform, to "
                                 "set the number of features")
        if not self.is_open:
            raise DeviceClosedError("the OPU is closed; call opu.open() (or use "
                                    "'with OPU(...) as opu:') before transforming")
        encoder = encoder_cls() if inspect.isclass(encoder_cls) else encoder_cls
        X_encoded = encoder.transform(X)
        prepared = prepare(X_encoded, self._traits, self.max_n_features)
        self._check_work(prepared.rows.shape[0])
        self._configure()
        start = now()
        try:
            with self._progress(prepared.rows.shape[0]) as advance:
                acquisition = self.device.transform(prepared.rows, linear=linear,
                                                    progress=advance)
        except KeyboardInterrupt:
            # An acquisition cut short leaves the device in an unknown state: release it, so
            # that the next use starts clean and other users are not blocked meanwhile.
            if not self.simulated:
                self.close()
            raise
        end = now()
        if not linear and acquisition.output.dtype == np.uint8:
            advice = cameras.exposure_advice(acquisition.output, acquisition.saturated)
            if advice:
                warnings.warn(advice, UserWarning, stacklevel=3)
        context = self._context(prepared, acquisition, start, end, linear)
        self.last_context = context
        output = ContextArray(acquisition.output.reshape(prepared.batch_shape
                                                         + (self.n_components,)), context)
        decoder = make_decoder(decoder_cls, encoder)
        output = decoder.transform(output)
        if isinstance(output, np.ndarray) and not isinstance(output, ContextArray):
            output = ContextArray(output, context)
        if prepared.is_tensor:
            tensor = to_torch(np.asarray(output))
            tensor.context = context
            return tensor
        return output

    # -- the simulator's caps (limits.py): checked before anything is drawn or computed ----
    def _check_n_components(self, n_components: int) -> None:
        if self.simulated:
            limits.check_n_components(n_components, limits.SimulatorLimits.from_env())

    def _check_work(self, n_rows: int) -> None:
        if not self.simulated:
            return
        caps = limits.SimulatorLimits.from_env()
        limits.check_n_components(self.n_components, caps)
        n_features = self._traits.n_features_s
        draws = getattr(self.device, "draws_matrix", None)
        limits.check_work(n_rows, n_features, self.n_components,
                          draws is None or draws(n_features, self.n_components), caps)

    def _configure(self):
        if self._configured:
            return
        override = {}
        exposure = self.config_override.get("output", {}).get("exposure_us")
        if exposure is not None:
            override["exposure_us"] = exposure
        override.update(self._fit_override)
        scale = self._matrix_scale_features()
        if scale is not None:
            override["scale_features"] = scale
        self.device.configure(self._traits.n_features_s, self.n_components,
                              self._ones_fraction, **override)
        self._configured = True

    def _progress(self, n_rows):
        return Progress(disabled=self.disable_pbar, label=f"OPU {n_rows} inputs")

    def _context(self, prepared, acquisition, start, end, linear) -> Context:
        traits = self._traits
        roi = tuple(traits.n_features) if isinstance(traits.n_features, tuple) else (
            1, traits.n_features_s)
        return Context(
            acquisition.frametime_us, acquisition.exposure_us, ((0, 0), (1, self.n_components)),
            start, end, 0.0, ((0, 0), roi), int(round(float(prepared.n_ones.mean()))),
            FeaturesFormat.macro_2d if traits.is_2d else FeaturesFormat.lined, 1,
            backend=self.backend, camera=getattr(self.device, "camera_name", "device"),
            n_features=traits.n_features, n_components=self.n_components,
            input_shape=prepared.input_shape, saturated=acquisition.saturated,
            linear=linear, **acquisition.extra)

    # -- information ------------------------------------------------------------------
    def version(self, devices: bool = False) -> str:
        parts = [f"opu_kernel version {__version__}", f"backend {self.backend}",
                 f"numpy {np.__version__}"]
        if devices or not self.simulated:
            parts += [f"{k} {v}" for k, v in self.device.version().items()]
        return "; ".join(parts)

    def describe(self) -> dict:
        """Backend, device, shape and state, for ``%opu`` and dashboards."""
        info = dict(self.device.describe())
        info.update(open=self.is_open, n_components=self.n_components,
                    max_n_features=self.max_n_features, n_features=self.n_features)
        if self.simulated:
            try:
                info.update(limits.SimulatorLimits.from_env().describe())
            except limits.SimulatorLimitError as exc:  # a bad setting: show it, don't fail
                info["limits"] = str(exc)
        return info

    def __repr__(self) -> str:
        info = self.describe()
        state = "open" if info["open"] else "closed"
        fitted = "" if self.n_features is None else f", n_features={self.n_features}"
        return (f"<OPU {info['backend']} device={info.get('device')} "
                f"n_components={self.n_components} max_n_features={self.max_n_features}"
                f"{fitted} {state}>")

    # -- pickling: parameters, seed and shape only; the matrix is regenerated -----------
    def __getstate__(self):
        return {
            "params": dict(n_components=self.n_components, max_n_features=self.max_n_features,
                           config_file=self.config_file, config_override=self.config_override,
                           input_roi_strategy=self.input_roi_strategy,
                           disable_pbar=self.disable_pbar, rescale=self.rescale,
                           seed=self.seed, backend=self.backend, camera=self.camera,
                           camera_noise=self.camera_noise, streaming=self.streaming),
            "device": getattr(self.device, "device", None) if not self.simulated else None,
            "open": self.is_open,
            "traits": self._traits,
            "fit": (self._online if self._traits else False, self._fit_override,
                    self._ones_fraction),
        }

    def __setstate__(self, state):
        self.__init__(opu_device=state["device"], open_at_init=state["open"],
                      **state["params"])
        self._traits = state["traits"]
        self._online, self._fit_override, self._ones_fraction = state["fit"]


def positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def make_decoder(decoder_cls, encoder):
    """The decoder instance; a class gets the encoder's parameters it accepts (lightonml passes
    e.g. a bit-plane encoder's precision and magnitudes on to its decoder this way)."""
    if not inspect.isclass(decoder_cls):
        return decoder_cls
    params = encoder.get_params() if hasattr(encoder, "get_params") else {}
    accepted = inspect.signature(decoder_cls).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        params = {k: v for k, v in params.items() if k in accepted}
    return decoder_cls(**params)


class Progress:
    """A tqdm bar that shows up only when a transform lasts more than a second."""

    def __init__(self, disabled: bool, label: str):
        self.disabled = disabled
        self.label = label
        self._bar = None

    def __enter__(self):
        if self.disabled:
            return None
        # The text bar: tqdm.auto's notebook bar needs ipywidgets and warns on every kernel
        # without it; the text bar renders in notebooks and terminals alike.
        from tqdm.std import tqdm

        self._done = 0.0
        self._bar = tqdm(total=1.0, desc=self.label, delay=1.0, leave=False,
                         bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")
        return self._advance

    def _advance(self, fraction: float) -> None:
        # fractions of many small blocks can sum to a hair above 1: tqdm would warn
        step = min(fraction, max(0.0, 1.0 - self._done))
        self._done += step
        self._bar.update(step)

    def __exit__(self, *exc_info):
        if self._bar is not None:
            self._bar.close()
