"""``lightonml.encoding.base``: opu_kernel's encoders and decoders under lightonml's names.

They are element for element lightonml's, with the differences listed in
``opu_kernel.encoding.base`` (``fit`` learns, ``transform`` does not; NaN and out-of-range
values raise). ``MixingBitPlanDecoder`` left lightonml in 1.4 but its 1.4.3 notebooks use it.
"""

# the same names as opu_kernel.encoding: one list of them, kept there
from ...encoding import *  # noqa: F403
from ...encoding import __all__  # noqa: F401
