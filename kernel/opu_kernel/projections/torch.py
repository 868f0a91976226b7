"""The OPU as a PyTorch module (``lightonml.projections.torch.OPUMap``)."""

from __future__ import annotations

try:
    import torch
    from torch import nn
except ImportError as exc:  # PyTorch is an optional extra
    raise ImportError("opu_kernel.projections.torch needs PyTorch: "
                      "pip install opu-kernel[torch]") from exc

from ._shared import adopt_opu, check_ndims, fit_opu, make_opu


class OPUMap(nn.Module):
    """Random features of binary tensors from an OPU (or its simulator), as a layer.

    ``forward`` is ``OPU.transform`` (or ``OPU.linear_transform`` with ``linear=True``) and
    returns a tensor on the input's device, detached from the autograd graph: the OPU has no
    gradient. The first ``forward`` fits the OPU to its batch unless ``fit`` was called.
    Non-binary input raises ``ValueError``, in online mode too (lightonml truncated it).

    Parameters are those of ``opu_kernel.projections.sklearn.OPUMap``; the OPU is created
    here (``opu``) when none is passed, as in lightonml.
    """

    #: The OPU class created when none is passed (the lightonml names' OPUMap: lightonml's).
    _opu_class = None

    def __init__(self, n_components, opu=None, ndims=1, n_2d_features=None, packed=False,
                 simulated=None, max_n_features=None, verbose_level=-1, linear=False,
                 seed=None, camera="8bit", disable_pbar=False):
        super().__init__()
        check_ndims(ndims)
        if opu is None:
            opu = make_opu(n_components, simulated, max_n_features, verbose_level, seed, camera,
                           disable_pbar, self._opu_class)
        else:
            opu = adopt_opu(opu, n_components, simulated)
        self.opu = opu
        self.ndims = ndims
        self.n_2d_features = n_2d_features
        self.packed = packed
        self.simulated = simulated
        self.disable_pbar = disable_pbar
        self.max_n_features = max_n_features
        self.verbose_level = verbose_level
        self.linear = linear
        self.fitted = False
        self.online = False

    @property
    def n_components(self) -> int:
        return self.opu.n_components

    @n_components.setter
    def n_components(self, value: int) -> None:
        self.opu.n_components = value

    def fit(self, X=None, y=None, n_features=None, packed=False, online=False):
        """Fit the OPU to inputs like ``X``, or to ``n_features``; ``online`` transforms the
        inputs of a batch one at a time (lightonml's online mode)."""
        packed = self.packed or packed
        fit_opu(self.opu, self.ndims, X, n_features, packed, online,
                self.n_2d_features, grow_max_n_features=self.max_n_features is None)
        # dimensions of one input: online mode tells one input from a batch by them
        self._input_ndim = 1 if packed else self.ndims
        self.online = bool(online)
        self.fitted = True
        return self

    def reset_parameters(self, input, y, n_features, packed, online):
        """lightonml's name for ``fit``."""
        self.fit(input, y, n_features, packed, online)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.fitted:
            self.fit(input)
        transform = self.opu.linear_transform if self.linear else self.opu.transform
        if self.online and input.dim() > self._input_ndim:
            # each output keeps the transform's dtype (float for linear, uint8 otherwise)
            output = torch.stack([torch.as_tensor(transform(row)) for row in input])
        else:
            output = torch.as_tensor(transform(input))
        return output.detach().to(input.device)

    def extra_repr(self) -> str:
        return (f"n_components={self.n_components}, ndims={self.ndims}, packed={self.packed}, "
                f"simulated={self.simulated}, linear={self.linear}, online={self.online}")

    def open(self):
        self.opu.open()

    def close(self):
        self.opu.close()

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc_info):
        self.close()
