"""Does the trained classifier show the paper's situation? Measurements of its class activation maps.

Per classifier, on the evaluation images, for the ground-truth class ``k`` of each image:

- *The discriminative part dominates* (paper, sections 2.2 and 2.4): where the CAM ``M_k`` (no NWC, min-max
  normalised, at image size) has its maximum: near the head, near the object at all (within a Euclidean
  distance of half a feature-map cell, the precision an upsampled map has), or elsewhere; and its mean value on the head, the rest of the
  body and the background.
- *Negative-weight features fire inside objects* (section 2.3, Figure 3): the CAM splits into
  ``M_k = P_k - Q_k`` with ``P_k = sum_c max(w_kc, 0) F_c`` and ``Q_k = sum_c max(-w_kc, 0) F_c``; the share of
  the mass of ``Q_k`` (and of ``P_k``) that lies inside the object, to compare with the object's share of the
  image area (what a map spread evenly would give).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict

import cv2
import numpy as np
import torch
from torch import nn

import camfix
from camfix.demo.data import SyntheticWSOL
from camfix.demo.train import to_model_input

__all__ = ["MapDiagnostics", "diagnose"]


@dataclass(frozen=True)
class MapDiagnostics:
    """Measurements of one classifier's GT-class maps, in percent.

    Attributes:
        peak_near_head: images whose CAM maximum lies within half a feature cell of the head (the discriminative
            part).
        peak_near_object: images whose CAM maximum lies within half a feature cell of the object (head or body).
        mean_on_head, mean_on_body, mean_on_background: mean of the min-max normalised CAM (values in percent
            of the map's range) over the head, body and background pixels of all images.
        positive_inside: share of the mass of ``P_k`` (positive-weight features) inside the objects.
        negative_inside: share of the mass of ``Q_k`` (negative-weight features) inside the objects.
        object_area: share of all pixels inside the objects.
        negative_weights: share of the classifier's weights that are negative.
    """

    peak_near_head: float
    peak_near_object: float
    mean_on_head: float
    mean_on_body: float
    mean_on_background: float
    positive_inside: float
    negative_inside: float
    object_area: float
    negative_weights: float

    def as_dict(self) -> Dict[str, float]:
        return asdict(self)


@torch.no_grad()
def diagnose(model: nn.Module, data: SyntheticWSOL, batch_size: int = 200) -> MapDiagnostics:
    """Measure ``model``'s GT-class maps on ``data``; see the module docstring.

    Args:
        model: a trained :class:`camfix.models.ResNet` (``forward_features`` and ``fc``).
        data: the evaluation split, with its object and head masks.
        batch_size: images per forward pass.

    Returns:
        A :class:`MapDiagnostics`.
    """
    model.eval()
    weight = model.get_classifier().weight
    size = data.images.shape[1:3]
    cams, positive, negative = [], [], []
    for start in range(0, len(data), batch_size):
        features = model.forward_features(to_model_input(data.images[start : start + batch_size]))
        labels = torch.from_numpy(data.labels[start : start + batch_size])
        raw = camfix.cam(features, weight, clamp_negative=False, classes=labels)
        cams.append(camfix.normalize_maps(camfix.resize_maps(raw, size)))
        # Bilinear keeps the signs of the non-negative parts.
        positive.append(camfix.resize_maps(camfix.cam(features, weight, classes=labels), size, mode="bilinear"))
        negative.append(camfix.resize_maps(camfix.cam(features, -weight, classes=labels), size, mode="bilinear"))
    cam, pos, neg = (torch.cat(parts).numpy().astype(np.float64) for parts in (cams, positive, negative))
    head = data.part_masks
    body = data.masks & ~data.part_masks
    inside = data.masks
    # Half the stride of the feature map, in image pixels: how far an upsampled map's peak can sit off its cause.
    radius = max(1, size[0] // features.shape[2] // 2)
    offsets = np.arange(-radius, radius + 1)
    disc = (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2).astype(np.uint8)
    near_head = np.stack([cv2.dilate(m.astype(np.uint8), disc) for m in head]).astype(bool)
    near_object = np.stack([cv2.dilate(m.astype(np.uint8), disc) for m in inside]).astype(bool)
    flat_peak = cam.reshape(len(data), -1).argmax(axis=1)
    every = np.arange(len(data))
    return MapDiagnostics(
        peak_near_head=100.0 * float(near_head.reshape(len(data), -1)[every, flat_peak].mean()),
        peak_near_object=100.0 * float(near_object.reshape(len(data), -1)[every, flat_peak].mean()),
        mean_on_head=100.0 * float(cam[head].mean()),
        mean_on_body=100.0 * float(cam[body].mean()),
        mean_on_background=100.0 * float(cam[~inside].mean()),
        positive_inside=100.0 * float(pos[inside].sum() / pos.sum()),
        negative_inside=100.0 * float(neg[inside].sum() / neg.sum()),
        object_area=100.0 * float(inside.mean()),
        negative_weights=100.0 * float((weight < 0).double().mean()),
    )
