"""``lightonml.internal.types``: enums and type aliases of lightonml's OPU."""

from typing import Union

import numpy as np

from ...context import ContextArray
from ...types import AcqState, FeaturesFormat, InputRoiStrategy, OutputRoiStrategy

IntList = Union[list[int], np.ndarray]  # noqa: UP007 - aliases as lightonml spells them
Tuple2D = tuple[int, int]
Roi = tuple[Tuple2D, Tuple2D]
IntOrTuple = Union[int, tuple[int, ...]]  # noqa: UP007
TransformOutput = Union[ContextArray, "Tensor"]  # noqa: UP007, F821

__all__ = ["AcqState", "FeaturesFormat", "InputRoiStrategy", "IntList", "IntOrTuple",
           "OutputRoiStrategy", "Roi", "TransformOutput", "Tuple2D"]
