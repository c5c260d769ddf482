"""Classifiers with timm's ResNet structure, for CAM-based localization.

``resnet50`` and ``seresnet50`` match timm's module paths and state_dict keys exactly, ``seresnet_small`` is a
narrow variant for the CPU demo, and :func:`load_torchvision_resnet` fills a model's trunk from a torchvision
ResNet checkpoint. :func:`read_state_dict` reads the weights out of a training checkpoint (a file is loaded
with :func:`read_checkpoint`, whose errors name it) and :func:`check_state_dict` says which keys and shapes do not
fit a model. None of this imports timm or torchvision; :func:`import_torchvision` imports the latter
for tests and examples where its compiled operators do not match the installed torch.
"""

from camfix.models.layers import SEModule, SelectAdaptivePool2d, se_channels
from camfix.models.resnet import Bottleneck, ResNet, resnet50, seresnet50, seresnet_small
from camfix.models.checkpoint import Checkpoint, check_state_dict, read_checkpoint, read_state_dict
from camfix.models.torchvision_weights import LoadResult, load_torchvision_resnet
from camfix.models.compat import import_torchvision

__all__ = [
    "Bottleneck",
    "Checkpoint",
    "LoadResult",
    "ResNet",
    "SEModule",
    "SelectAdaptivePool2d",
    "check_state_dict",
    "import_torchvision",
    "load_torchvision_resnet",
    "read_checkpoint",
    "read_state_dict",
    "resnet50",
    "se_channels",
    "seresnet50",
    "seresnet_small",
]
