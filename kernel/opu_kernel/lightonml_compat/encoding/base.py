"""``lightonml.encoding.base``: opu_kernel's encoders and decoders under lightonml's names.

They are element for element lightonml's, with the differences listed in
``opu_kernel.encoding.base`` (``fit`` learns, ``transform`` does not; NaN and out-of-range
values raise). ``MixingBitPlanDecoder`` left lightonml in 1.4 but its 1.4.3 notebooks use it.
"""

from ...encoding.base import (
    BaseTransformer,
    BinaryThresholdEncoder,
    ConcatenatedBitPlanEncoder,
    ConcatenatedFloat32Encoder,
    ConcatenatingBitPlanDecoder,
    Float32Encoder,
    MixingBitPlanDecoder,
    MultiThresholdEncoder,
    NoDecoding,
    NoEncoding,
    SeparatedBitPlanDecoder,
    SeparatedBitPlanEncoder,
    SequentialBaseTwoEncoder,
    preserve_type,
)

__all__ = ["BaseTransformer", "BinaryThresholdEncoder", "ConcatenatedBitPlanEncoder",
           "ConcatenatedFloat32Encoder", "ConcatenatingBitPlanDecoder", "Float32Encoder",
           "MixingBitPlanDecoder", "MultiThresholdEncoder", "NoDecoding", "NoEncoding",
           "SeparatedBitPlanDecoder", "SeparatedBitPlanEncoder", "SequentialBaseTwoEncoder",
           "preserve_type"]
