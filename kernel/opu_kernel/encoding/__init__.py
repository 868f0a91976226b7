"""Encoders and decoders for OPU input and output (lightonml's ``lightonml.encoding``)."""

from .base import BaseTransformer, NoDecoding, NoEncoding

__all__ = ["BaseTransformer", "NoDecoding", "NoEncoding"]
