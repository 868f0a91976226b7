"""``lightonml.types``: the same enum as ``opu_kernel.types`` (values 1, 2, 3 as lightonml's)."""

from ..types import OutputRescaling

__all__ = ["OutputRescaling"]
