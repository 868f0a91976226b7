"""``lightonml.context``: opu_kernel's ``Context`` and ``ContextArray`` take lightonml's
constructor arguments and offer its helpers."""

from ..context import Context, ContextArray, from_epoch

__all__ = ["Context", "ContextArray", "from_epoch"]
