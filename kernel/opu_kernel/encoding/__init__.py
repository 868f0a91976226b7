"""Encoders and decoders for OPU input and output (lightonml's ``lightonml.encoding``)."""

from .base import (
    BaseTransformer,
    BinaryThresholdEncoder,
    ConcatenatedBitPlanEncoder,
    ConcatenatingBitPlanDecoder,
    MultiThresholdEncoder,
    NoDecoding,
    NoEncoding,
    SeparatedBitPlanDecoder,
    SeparatedBitPlanEncoder,
    SequentialBaseTwoEncoder,
)

__all__ = [
    "BaseTransformer",
    "BinaryThresholdEncoder",
    "ConcatenatedBitPlanEncoder",
    "ConcatenatingBitPlanDecoder",
    "MultiThresholdEncoder",
    "NoDecoding",
    "NoEncoding",
    "SeparatedBitPlanDecoder",
    "SeparatedBitPlanEncoder",
    "SequentialBaseTwoEncoder",
]
