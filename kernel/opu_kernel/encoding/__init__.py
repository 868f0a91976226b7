"""Encoders and decoders for OPU input and output (lightonml's ``lightonml.encoding``)."""

from .base import (
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

__all__ = [
    "BaseTransformer",
    "BinaryThresholdEncoder",
    "ConcatenatedBitPlanEncoder",
    "ConcatenatedFloat32Encoder",
    "ConcatenatingBitPlanDecoder",
    "Float32Encoder",
    "MixingBitPlanDecoder",
    "MultiThresholdEncoder",
    "NoDecoding",
    "NoEncoding",
    "SeparatedBitPlanDecoder",
    "SeparatedBitPlanEncoder",
    "SequentialBaseTwoEncoder",
    "preserve_type",
]
