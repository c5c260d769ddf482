"""Import torchvision's pure-Python model classes where its compiled operators cannot load.

A torchvision wheel built for another torch (a CUDA torchvision next to a CPU-only torch, say) fails at import:
its Python code registers fake kernels for ``torchvision::nms`` and ``torchvision::qnms``, operators its own C++
library should have defined. The model classes (``torchvision.models.*``) use neither operator, so declaring
the two schemas is enough for them to import and run. camfix itself never imports torchvision; this serves the
tests and examples that compare against real torchvision and timm models.
"""

from __future__ import annotations

import importlib
import types

import torch

__all__ = ["import_torchvision"]

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
# The Library object must outlive the import: the schemas are removed when it is garbage collected.
_fragment: "torch.library.Library | None" = None


def import_torchvision() -> types.ModuleType:
    """``import torchvision``, declaring its two operator schemas first if its compiled library is unusable.

    Returns:
        The ``torchvision`` module.

    Raises:
        ImportError: torchvision is not installed, or fails to import for another reason.
    """
    global _fragment
    try:
        return importlib.import_module("torchvision")
    except RuntimeError as error:
        if "torchvision::" not in str(error):
            raise ImportError(f"torchvision failed to import: {error}") from error
    if _fragment is None:
        _fragment = torch.library.Library("torchvision", "FRAGMENT")
        for name, schema in _SCHEMAS.items():
            if not _op_exists(name):
                _fragment.define(schema)
    try:
        return importlib.import_module("torchvision")
    except RuntimeError as error:
        raise ImportError(f"torchvision failed to import even with its operator schemas declared: {error}") from error


def _op_exists(name: str) -> bool:
    try:
        torch._C._dispatch_find_schema_or_throw(f"torchvision::{name}", "")
    except RuntimeError:
        return False
    return True
