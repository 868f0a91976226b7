"""The OPU as a scikit-learn transformer (``lightonml.projections.sklearn.OPUMap``)."""

from __future__ import annotations

import warnings

import numpy as np

try:
    from sklearn.base import BaseEstimator, TransformerMixin
except ImportError as exc:  # scikit-learn is an optional extra
    raise ImportError("opu_kernel.projections.sklearn needs scikit-learn: "
                      "pip install opu-kernel[sklearn]") from exc

from ._shared import adopt_opu, check_ndims, fit_opu, make_opu


class OPUMap(BaseEstimator, TransformerMixin):
    """Random features of binary inputs from an OPU (or its simulator), for scikit-learn.

    ``transform`` is ``OPU.transform`` (or ``OPU.linear_transform`` with ``linear=True``) and
    returns a plain numpy array. Works in ``Pipeline``, ``clone`` and ``GridSearchCV``.

    Unlike lightonml, the constructor only stores its parameters: the OPU is created by
    ``fit`` and kept in ``opu_`` (``opu`` stays what you passed, None by default). Clones
    share a passed ``opu`` instead of copying it, so one device serves a grid search.

    Parameters
    ----------
    n_components : int
        Number of random features.
    opu : OPU or None
        The OPU to use; by default ``fit`` creates one.
    ndims : 1 or 2
        Whether an input is a vector (1) or a 2D array (2).
    n_2d_features : (height, width) or None
        The unpacked shape of an input, needed with ``ndims=2, packed=True``.
    packed : bool
        Whether inputs are bit-packed (``np.packbits``) along their last axis.
    simulated : bool or None
        True: the simulator. False: the hardware when there is one (falling back to the
        simulator). None (default): the given ``opu`` as it is, else like False.
    max_n_features : int or None
        Feature limit of the created OPU; None sizes it to the fitted input.
    verbose_level : int
        Deprecated in lightonml, ignored.
    linear : bool
        Use the linear transform Re(Hx) instead of |Hx|².
    seed : int or None
        Seed of the simulator's random matrix (None: the OPU's default, 0).
    camera : '8bit' or 'exact'
        Simulator output: uint8 like the camera, or exact float32.
    disable_pbar : bool
        No progress bar for the created OPU's long transforms.
    """

    #: The OPU class ``fit`` creates (the lightonml names' OPUMap creates lightonml's).
    _opu_class = None

    def __init__(self, n_components, opu=None, ndims=1, n_2d_features=None, packed=False,
                 simulated=None, max_n_features=None, verbose_level=-1, linear=False,
                 seed=None, camera="8bit", disable_pbar=False):
        self.n_components = n_components
        self.opu = opu
        self.ndims = ndims
        self.n_2d_features = n_2d_features
        self.packed = packed
        self.simulated = simulated
        self.disable_pbar = disable_pbar
        self.max_n_features = max_n_features
        self.verbose_level = verbose_level
        self.linear = linear
        self.seed = seed
        self.camera = camera

    def fit(self, X=None, y=None, n_features=None, packed=False, online=False):
        """Create (or take) the OPU and fit it to inputs like ``X``, or to ``n_features``.

        ``packed`` here or in the constructor says the inputs are bit-packed; ``online``
        prepares for transforming one input at a time.
        """
        check_ndims(self.ndims)
        if self.opu is not None:
            self.opu_ = adopt_opu(self.opu, self.n_components, self.simulated)
        else:
            # close the OPU of a previous fit first: on hardware only one may hold the device
            previous = getattr(self, "opu_", None)
            if previous is not None:
                previous.close()
            self.opu_ = make_opu(self.n_components, self.simulated, self.max_n_features,
                                 self.verbose_level, getattr(self, "seed", None),
                                 getattr(self, "camera", None),
                                 getattr(self, "disable_pbar", False), self._opu_class)
        fit_opu(self.opu_, self.ndims, X, n_features, self.packed or packed, online,
                self.n_2d_features, grow_max_n_features=self.max_n_features is None)
        self.n_features_ = self.opu_.n_features
        self._fit_arguments = dict(packed=self.packed or packed, online=online)
        return self

    @property
    def fitted(self) -> bool:
        """Whether ``fit`` ran (lightonml's attribute)."""
        return hasattr(self, "n_features_")

    def transform(self, X, y=None):
        """The random features of ``X``, a numpy array of shape (n_samples, n_components)."""
        if not hasattr(self, "opu_"):
            warnings.warn("OPUMap was not fitted: fitting it to this input", stacklevel=2)
            self.fit(X)
        self._restore_opu_fit()
        transform = self.opu_.linear_transform if self.linear else self.opu_.transform
        return np.asarray(transform(X))

    def _restore_opu_fit(self):
        """A shared OPU may have been refitted by another OPUMap: put back this map's number
        of components and features. (Without the fit's sample, the 8-bit camera's exposure is
        set as for a fit by n_features.)"""
        if self.opu_.n_components != self.n_components:
            self.opu_.n_components = self.n_components
        if self.opu_.n_features != self.n_features_:
            fit_opu(self.opu_, self.ndims, None, self.n_features_, n_2d_features=None,
                    grow_max_n_features=False, **self._fit_arguments)

    def __sklearn_clone__(self):
        # Share the OPU rather than deep-copying it: a copy would open the device again.
        return type(self)(**self.get_params(deep=False))

    def open(self):
        self._current_opu().open()

    def close(self):
        self._current_opu().close()

    def _current_opu(self):
        opu = getattr(self, "opu_", None)
        if opu is None:
            opu = self.opu
        if opu is None:
            raise RuntimeError("this OPUMap has no OPU yet: call fit first")
        return opu

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc_info):
        self.close()
