"""What the scikit-learn and PyTorch ``OPUMap`` wrappers share: building and fitting the OPU."""

from __future__ import annotations

import warnings

from ..inputs import traits_for_fit
from ..opu import OPU


def make_opu(n_components, simulated, max_n_features, verbose_level, seed, camera,
             disable_pbar=False, opu_class=None) -> OPU:
    """A new ``opu_class`` (default ``OPU``); unless ``simulated``, the hardware when there
    is one (backend 'auto'). ``seed`` and ``camera`` None: the class's defaults."""
    options = {} if max_n_features is None else {"max_n_features": max_n_features}
    if seed is not None:
        options["seed"] = seed
    if camera is not None:
        options["camera"] = camera
    return (opu_class or OPU)(n_components=n_components, simulated=bool(simulated),
                              verbose_level=verbose_level, disable_pbar=disable_pbar,
                              **options)


def adopt_opu(opu: OPU, n_components, simulated) -> OPU:
    """A user's OPU, set to ``n_components``; warns when an explicit ``simulated`` says
    otherwise (None: take the OPU as it is)."""
    if simulated is True and not opu.simulated:
        warnings.warn("you passed a hardware OPU and simulated=True; the hardware is used",
                      stacklevel=3)
    # lightonml's OPU standing for the device is not "simulated" in lightonml's sense
    if opu.simulated and simulated is False and not getattr(opu, "stands_for_device", False):
        warnings.warn("you passed a simulated OPU and simulated=False; the simulator is used",
                      stacklevel=3)
    opu.n_components = n_components
    return opu


def check_ndims(ndims) -> None:
    if ndims not in (1, 2):
        raise ValueError(f"ndims must be 1 (vectors) or 2 (2D inputs), got {ndims!r}")


def fit_opu(opu: OPU, ndims, X, n_features, packed, online, n_2d_features,
            grow_max_n_features: bool) -> None:
    """``fit1d``/``fit2d`` the OPU by ``ndims``. With ``grow_max_n_features`` (the user gave
    no max_n_features), the OPU's feature limit is raised to admit the fitted input."""
    check_ndims(ndims)
    is_2d = ndims == 2
    if is_2d and packed and n_features is None and n_2d_features is not None:
        n_features = tuple(n_2d_features)
    if grow_max_n_features:
        n_features_total = traits_for_fit(X, n_features, packed, is_2d).n_features_s
        if n_features_total > opu.max_n_features:
            opu.max_n_features = n_features_total
    fit = opu.fit2d if is_2d else opu.fit1d
    fit(X, n_features=n_features, packed=packed, online=online)
