"""Dense CRF refinement: pull a coarse, upsampled map onto the object's edges in the RGB image.

A fully connected CRF (Kraehenbuehl & Koltun, NIPS 2011) over the pixels of one image, with the labels
object/background (a saliency map, LID Track 3) or ``K`` classes (a segmentation, LID Track 1). Mean-field
inference alternates, ``iterations`` times::

    Q_i(l) = softmax_l( -U_i(l) + w_g * sum_j kg(i, j) Q_j(l) + w_b * sum_j kb(i, j) Q_j(l) )

    U_i(l)   = -log(max(c * P_i(l) + (1 - c) / K, epsilon))         unary from the map's probabilities P
    kg(i, j) = exp(-|p_i - p_j|^2 / (2 gaussian_sxy^2))                  smoothness (position only)
    kb(i, j) = exp(-|p_i - p_j|^2 / (2 bilateral_sxy^2) - |I_i - I_j|^2 / (2 bilateral_srgb^2))   appearance

starting from ``Q = softmax(-U)``; ``p`` is the pixel position, ``I`` its RGB colour, ``c`` the ``confidence``
and ``w_g``, ``w_b`` the Potts weights ``gaussian_compat``, ``bilateral_compat``. Each kernel is normalised
symmetrically, ``k(i, j) / sqrt(n_i n_j)`` with ``n_i = sum_j k(i, j)``, and the sums run over all pixels
(``j = i`` included) through pydensecrf's permutohedral lattice, which approximates the Gaussian filtering.

A saliency map ``s`` has no second class: :func:`saliency_scores` turns it into the two scores ``P`` (background,
object), and where they are equal is the CRF's *operating point*, the map value that the unary alone would put
on the object/background boundary. It is an explicit argument of every saliency function (``threshold``, or
PSA's ``alpha``) because it, more than any pairwise parameter, decides the result: with the strong default
appearance kernel the refined map is nearly binary, and its mask is close to the input map thresholded at the
operating point, pulled onto the image's edges.

The LID 2020 paper runs such a CRF after CAM (Peak IoU 0.5254 -> 0.5461 from the CRF alone, its Table 1) but
gives neither its parameters nor its unary, and the authors' public code (won-bae/rethinkingCAM) has no CRF; the
pairwise defaults here are the ones common in weakly supervised segmentation (see :class:`DenseCRFParams`).

pydensecrf is an optional dependency (``pip install "camfix[crf]"``); it is imported only when a function here
runs, through :func:`load_pydensecrf`.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from types import ModuleType
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from ._validation import (
    check_array,
    check_dtype,
    check_finite,
    check_in_range,
    check_int,
    check_number,
    check_tensor,
)
from .parallel import worker_count

__all__ = [
    "DenseCRFParams",
    "MAX_CRF_ITERATIONS",
    "MAX_KERNEL_WEIGHT",
    "MIN_KERNEL_WIDTH",
    "load_pydensecrf",
    "dense_crf",
    "refine_saliency",
    "refine_labels",
    "saliency_scores",
    "alpha_boundary",
    "refine_saliency_batch",
    "refine_saliency_sweep",
    "refine_labels_batch",
]

#: An RGB image: a uint8 numpy array ``(H, W, 3)`` or a uint8 tensor ``(3, H, W)``.
Image = Union[np.ndarray, Tensor]

#: How far the class probabilities of a pixel may sum from 1 (float rounding of a softmax).
PROBABILITY_SUM_TOLERANCE = 1e-3

INSTALL_HINT = (
    'install it with  pip install "camfix[crf]"  (or  pip install pydensecrf2 ); it builds from source and needs a '
    "C++ compiler. Never install both pydensecrf and pydensecrf2: both provide the module 'pydensecrf' and "
    "overwrite each other's files."
)


def load_pydensecrf() -> ModuleType:
    """Import and return ``pydensecrf.densecrf``, or raise an ``ImportError`` that says what to install.

    Call it early (e.g. when a user asks for ``crf=True``) to fail before any expensive work.

    Returns:
        The ``pydensecrf.densecrf`` module (from the ``pydensecrf2`` distribution), which holds ``DenseCRF2D``.

    Raises:
        ImportError: pydensecrf cannot be imported; the message says what to install.
    """
    try:
        import pydensecrf.densecrf as densecrf
    except ImportError as error:
        raise ImportError(
            f"camfix.crf needs the optional dependency pydensecrf2 (module 'pydensecrf'), which could not be "
            f"imported ({error}); {INSTALL_HINT}"
        ) from error
    return densecrf


#: The most mean-field iterations :class:`DenseCRFParams` accepts.
MAX_CRF_ITERATIONS = 1000
#: The narrowest kernel width (``gaussian_sxy``, ``bilateral_sxy``, ``bilateral_srgb``) :class:`DenseCRFParams` accepts.
MIN_KERNEL_WIDTH = 1e-3
#: The largest kernel weight (``gaussian_compat``, ``bilateral_compat``) :class:`DenseCRFParams` accepts.
MAX_KERNEL_WEIGHT = 1e6


@dataclass(frozen=True)
class DenseCRFParams:
    """Parameters of the dense CRF's pairwise terms and inference; the defaults are the usual ones in WSSS.

    The pairwise defaults (Gaussian ``sxy=3, compat=3``; bilateral ``sxy=80, srgb=13, compat=10``) and the 10
    mean-field iterations are those of AffinityNet/PSA's ``crf_inference`` (Ahn & Kwak, CVPR 2018,
    jiwoon-ahn/psa ``tool/imutils.py``), reused by most WSSS code after it, and of pydensecrf's README example.
    The unary ``epsilon`` is ``pydensecrf.utils.unary_from_softmax``'s ``clip``. Only these are PSA's: PSA's
    saliency unary is not ``1 - map`` (see :func:`saliency_scores`, whose ``alpha`` is PSA's). The LID 2020 paper
    does not give its own values, and its authors' public code has no CRF. Lengths are in pixels of the image
    given to the CRF; PSA's ``crf_inference`` divides both ``sxy`` by a ``scale_factor`` for resized images
    (DeepLab's VOC values, ``sxy=1, compat=3`` and ``sxy=67, srgb=3, compat=4``, are the other common set).

    Args:
        iterations: mean-field iterations, an int in ``[0, 1000]``; 0 returns ``softmax(-U)``, i.e. the clamped input.
        gaussian_sxy: spatial standard deviation of the smoothness kernel in pixels, ``> 0``.
        gaussian_compat: Potts weight of the smoothness kernel, ``>= 0`` (0 switches it off).
        bilateral_sxy: spatial standard deviation of the appearance kernel in pixels, ``> 0``.
        bilateral_srgb: colour standard deviation of the appearance kernel in uint8 RGB units, ``> 0``.
        bilateral_compat: Potts weight of the appearance kernel, ``>= 0`` (0 switches it off).
        confidence: how much the unary trusts the map, in ``(0, 1]``: the probabilities are mixed with the
            uniform distribution, ``c * P + (1 - c) / K``, before ``-log`` (pydensecrf's ``scale``). 1 (default,
            the common practice) uses the map as it is; smaller values let the pairwise terms move more pixels,
            e.g. for a min-max normalised CAM, whose 0 and 1 are not calibrated certainties.
        epsilon: probabilities are clamped to ``>= epsilon`` before ``-log``, in ``(0, 1)``; the largest unary is
            ``-log(epsilon)`` (11.5 for the default 1e-5).
    """

    iterations: int = 10
    gaussian_sxy: float = 3.0
    gaussian_compat: float = 3.0
    bilateral_sxy: float = 80.0
    bilateral_srgb: float = 13.0
    bilateral_compat: float = 10.0
    confidence: float = 1.0
    epsilon: float = 1e-5

    def __post_init__(self) -> None:
        # Mean field settles within tens of iterations (PSA uses 10); the bound turns a typo into an error instead of
        # an hours-long run or pydensecrf's C int overflow.
        check_int("iterations", self.iterations, 0, MAX_CRF_ITERATIONS)
        # pydensecrf divides pixel positions and colours by the kernel widths in float32: a width near 0 overflows
        # its lattice and crashes the interpreter (measured at 1e-10; 1e-3 still runs), and a weight beyond float32
        # turns the energies into NaN. The bounds sit far outside any useful setting (PSA: 3 to 80, weights 3 and 10).
        for name in ("gaussian_sxy", "bilateral_sxy", "bilateral_srgb"):
            check_number(name, getattr(self, name), MIN_KERNEL_WIDTH, float("inf"), high_inclusive=False)
        for name in ("gaussian_compat", "bilateral_compat"):
            check_number(name, getattr(self, name), 0.0, MAX_KERNEL_WEIGHT)
        check_number("confidence", self.confidence, 0.0, 1.0, low_inclusive=False)
        check_number("epsilon", self.epsilon, 0.0, 1.0, low_inclusive=False, high_inclusive=False)


def _unary_energy(probs: np.ndarray, params: DenseCRFParams) -> np.ndarray:
    """``-log(max(c * P + (1 - c) / K, epsilon))`` of ``probs (K, H, W)`` as a C-contiguous float32 ``(K, H*W)``."""
    num_classes = probs.shape[0]
    mixed = params.confidence * probs.astype(np.float64) + (1.0 - params.confidence) / num_classes
    energy = -np.log(np.maximum(mixed, params.epsilon))
    return np.ascontiguousarray(energy.reshape(num_classes, -1), dtype=np.float32)


def _dense_crf_numpy(image: np.ndarray, probs: np.ndarray, params: DenseCRFParams) -> np.ndarray:
    """Mean-field inference on one validated image: uint8 ``(H, W, 3)`` C-contiguous, float ``(K, H, W)`` probs.

    Returns the refined probabilities, float32 ``(K, H, W)``. Module level, so that worker processes can run it.
    """
    num_classes, height, width = probs.shape
    crf = _new_crf(image, probs, params)
    refined = np.asarray(crf.inference(params.iterations), dtype=np.float32)
    return refined.reshape(num_classes, height, width)


def _new_crf(image: np.ndarray, probs: np.ndarray, params: DenseCRFParams) -> Any:
    """A pydensecrf ``DenseCRF2D`` of ``image`` (uint8 ``(H, W, 3)``) with the unary of ``probs`` ``(K, H, W)`` and
    the pairwise kernels of ``params``."""
    densecrf = load_pydensecrf()
    num_classes, height, width = probs.shape
    crf = densecrf.DenseCRF2D(width, height, num_classes)
    crf.setUnaryEnergy(_unary_energy(probs, params))
    # A zero weight would add a kernel that costs a filtering pass per iteration and contributes nothing.
    if params.gaussian_compat > 0:
        crf.addPairwiseGaussian(sxy=params.gaussian_sxy, compat=params.gaussian_compat)
    if params.bilateral_compat > 0:
        crf.addPairwiseBilateral(
            sxy=params.bilateral_sxy, srgb=params.bilateral_srgb, rgbim=image, compat=params.bilateral_compat
        )
    return crf


def _dense_crf_sweep_numpy(image: np.ndarray, scores: np.ndarray, params: DenseCRFParams) -> np.ndarray:
    """Object probability ``(T, H, W)`` float32 of one image for each of the two-class scores ``(T, 2, H, W)``.

    The pairwise kernels (the permutohedral lattice of the image) are built once and the inference is rerun for
    each unary: pydensecrf's ``inference`` starts from ``softmax(-U)`` every time, so each result is exactly the
    one :func:`_dense_crf_numpy` gives for that unary alone.
    """
    count, height, width = scores.shape[0], scores.shape[2], scores.shape[3]
    crf = _new_crf(image, scores[0], params)
    refined = np.empty((count, height, width), dtype=np.float32)
    for index in range(count):
        if index:
            crf.setUnaryEnergy(_unary_energy(scores[index], params))
        refined[index] = np.asarray(crf.inference(params.iterations), dtype=np.float32)[1].reshape(height, width)
    return refined


def _image_shape(name: str, images: object, batched: bool) -> Tuple[int, int, int]:
    """Validate RGB image(s) without copying them; return their ``(N, H, W)`` (``N = 1`` for one image)."""
    if isinstance(images, Tensor):
        shape_hint = "(N, 3, H, W)" if batched else "(3, H, W)"
        check_tensor(name, images, 4 if batched else 3, shape_hint=shape_hint, floating=False)
        check_dtype(name, images, torch.uint8)
        channels = images.shape[-3]
    elif isinstance(images, np.ndarray):
        shape_hint = "(N, H, W, 3)" if batched else "(H, W, 3)"
        check_array(name, images, 4 if batched else 3, shape_hint=shape_hint)
        check_dtype(name, images, np.uint8)
        channels = images.shape[-1]
    else:
        layouts = "(N, H, W, 3) / (N, 3, H, W)" if batched else "(H, W, 3) / (3, H, W)"
        raise TypeError(
            f"{name} must be a uint8 RGB numpy array or torch tensor of shape {layouts}, "
            f"got {type(images).__name__}"
        )
    if channels != 3:
        raise ValueError(
            f"{name} must have 3 colour channels (RGB) in the layout {shape_hint}, got {channels} channels "
            f"(shape {tuple(images.shape)})"
        )
    height, width = images.shape[-2:] if isinstance(images, Tensor) else images.shape[-3:-1]
    return (images.shape[0] if batched else 1), int(height), int(width)


def _images_to_numpy(images: Union[Tensor, np.ndarray]) -> np.ndarray:
    """Checked RGB image(s) (:func:`_image_shape`) as a C-contiguous, writable uint8 array ``(N, H, W, 3)``."""
    if isinstance(images, Tensor):
        images = images.reshape(-1, *images.shape[-3:]).permute(0, 2, 3, 1).cpu().numpy()
    # pydensecrf's Cython buffers need writable memory: a read-only image (a memory map, a frozen array) is copied.
    return np.require(images.reshape(-1, *images.shape[-3:]), requirements=("C_CONTIGUOUS", "WRITEABLE"))


def _check_probability_map(name: str, value: object, ndims: int, shape_hint: str) -> Tensor:
    """A floating, finite tensor of rank ``ndims`` with values in ``[0, 1]``."""
    probability = check_tensor(name, value, ndims, shape_hint=shape_hint)
    check_finite(name, probability)
    check_in_range(name, probability, 0.0, 1.0)
    return probability


def _check_class_probs(name: str, value: object, ndims: int, shape_hint: str) -> Tensor:
    """A probability map with at least 2 classes on dim -3 that sum to 1 at every pixel."""
    probs = _check_probability_map(name, value, ndims, shape_hint)
    num_classes = probs.shape[-3]
    if num_classes < 2:
        raise ValueError(f"{name} must have at least 2 classes (K in {shape_hint}), got {num_classes}")
    deviation = float((probs.double().sum(dim=-3) - 1.0).abs().max())
    if deviation > PROBABILITY_SUM_TOLERANCE:
        raise ValueError(
            f"{name} must sum to 1 over the classes (K in {shape_hint}) at every pixel, within "
            f"{PROBABILITY_SUM_TOLERANCE:g}; got a deviation of {deviation:.3g} (normalise the scores, e.g. with a "
            f"softmax or by dividing by their sum over the classes)"
        )
    return probs


def _check_sizes(
    image_name: str, image_shape: Tuple[int, int, int], map_name: str, maps: Tensor, batched: bool
) -> None:
    """Check that image(s) of :func:`_image_shape` ``(N, H, W)`` and map(s) agree in batch size and ``(H, W)``, before
    the images are copied."""
    if batched and image_shape[0] != maps.shape[0]:
        raise ValueError(
            f"{image_name} and {map_name} must have the same batch size N, got {image_shape[0]} and {maps.shape[0]}"
        )
    if tuple(image_shape[1:]) != tuple(maps.shape[-2:]):
        raise ValueError(
            f"{image_name} and {map_name} must have the same size (H, W), got {tuple(image_shape[1:])} and "
            f"{tuple(maps.shape[-2:])}; resize the map to the image first"
        )


def _pool_context() -> multiprocessing.context.BaseContext:
    # The workers run numpy and pydensecrf only, never torch, so forking is safe, and it starts them in
    # milliseconds; spawn and forkserver re-import camfix, hence torch, in every worker, which costs more than
    # refining a typical batch.
    if "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def _refine_all(
    images: np.ndarray,
    probs: np.ndarray,
    params: Optional[DenseCRFParams],
    workers: Optional[int],
    function: Callable[[np.ndarray, np.ndarray, DenseCRFParams], np.ndarray] = _dense_crf_numpy,
) -> np.ndarray:
    """``function(image, probs[i], params)`` for every image of ``images (N, H, W, 3)``, in ``workers`` processes;
    the results, stacked, stay in input order."""
    if params is None:
        params = DenseCRFParams()
    elif not isinstance(params, DenseCRFParams):
        raise TypeError(f"params must be a DenseCRFParams or None, got {type(params).__name__}")
    count = images.shape[0]
    workers = worker_count(workers, count)
    load_pydensecrf()
    # pydensecrf's inference holds the GIL (it has no nogil sections), so threads would run one at a time.
    if workers == 1:
        refined: List[np.ndarray] = [function(image, prob, params) for image, prob in zip(images, probs)]
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context()) as pool:
            refined = list(pool.map(function, images, probs, repeat(params)))
    return np.stack(refined)


#: The default operating point of a saliency map: the symmetric unary, object ``s`` and background ``1 - s``.
DEFAULT_SALIENCY_THRESHOLD = 0.5


def _check_operating_point(
    threshold: Optional[float], alpha: Optional[float], prefix: str = ""
) -> Tuple[Optional[float], Optional[float]]:
    """Validate ``threshold`` / ``alpha`` (at most one given; the caller named them ``{prefix}threshold`` and
    ``{prefix}alpha``); return both, the default threshold filled in."""
    if threshold is not None and alpha is not None:
        raise ValueError(
            f"give {prefix}threshold or {prefix}alpha, not both (got {prefix}threshold={threshold!r}, "
            f"{prefix}alpha={alpha!r}): each sets the operating point of the saliency unary"
        )
    if alpha is not None:
        return None, check_number(f"{prefix}alpha", alpha, 0.0, float("inf"), low_inclusive=False, high_inclusive=False)
    if threshold is None:
        return DEFAULT_SALIENCY_THRESHOLD, None
    return check_number(f"{prefix}threshold", threshold, 0.0, 1.0, low_inclusive=False, high_inclusive=False), None


def alpha_boundary(alpha: float) -> float:
    """The map value at which PSA's power unary is undecided: the ``s`` in ``(0, 1)`` with ``s = (1 - s) ** alpha``.

    ``refine_saliency(..., alpha=a)`` starts from the same decision as ``threshold=alpha_boundary(a)``, though with
    other unary strengths away from it: PSA's ``alpha = 4`` gives 0.2755, ``alpha = 32`` 0.0770, ``alpha = 1``
    0.5.

    Args:
        alpha: the exponent, a number ``> 0``.

    Returns:
        The boundary, a float in ``(0, 1)`` (found by bisection to within 1e-12); it decreases as ``alpha`` grows.
    """
    alpha = check_number("alpha", alpha, 0.0, float("inf"), low_inclusive=False, high_inclusive=False)
    low, high = 0.0, 1.0  # s - (1 - s) ** alpha increases from -1 at 0 to 1 at 1
    while high - low > 1e-12:
        middle = 0.5 * (low + high)
        if middle - (1.0 - middle) ** alpha > 0:
            high = middle
        else:
            low = middle
    return 0.5 * (low + high)


def _scores_numpy(foreground: np.ndarray, threshold: Optional[float], alpha: Optional[float]) -> np.ndarray:
    """Two-class scores ``(N, 2, H, W)`` float32 (background, object) of float64 maps ``(N, H, W)`` in ``[0, 1]``."""
    if alpha is not None:
        # PSA (jiwoon-ahn/psa, infer_cls.py, _crf_with_alpha): object score = the map, background (1 - map)^alpha,
        # not normalised (pydensecrf's unary_from_softmax takes -log of each score as it is).
        background = (1.0 - foreground) ** alpha
        return np.stack([background, foreground], axis=1).astype(np.float32)
    if threshold == DEFAULT_SALIENCY_THRESHOLD:
        remapped = foreground  # the identity, bit for bit
    else:
        # Piecewise linear, increasing, 0 -> 0, threshold -> 0.5, 1 -> 1.
        # Each part is computed where it is bounded: foreground / threshold alone overflows for a subnormal
        # threshold (numpy warns), even where np.where would discard it.
        below = 0.5 * (np.minimum(foreground, threshold) / threshold)
        above = 0.5 * (np.maximum(foreground, threshold) - threshold) / (1.0 - threshold)
        remapped = below + above
    return np.stack([1.0 - remapped, remapped], axis=1).astype(np.float32)


def saliency_scores(
    saliency: Tensor, *, threshold: Optional[float] = None, alpha: Optional[float] = None
) -> Tensor:
    """The two-class scores (background, object) that the saliency functions give the CRF's unary.

    The operating point is the map value where the two scores are equal, so that the unary alone (and the CRF
    with ``iterations=0``) calls a pixel object exactly where the map is above it. Two forms:

    - ``threshold=t`` (default 0.5): the map is remapped piecewise linearly so that ``t`` becomes 0.5 (``0 -> 0``,
      ``t -> 0.5``, ``1 -> 1``), then object ``r`` and background ``1 - r``. ``t = 0.5`` is the symmetric unary
      ``s`` / ``1 - s``, a common default with no particular source; it puts the boundary at half the map's
      maximum, which for a min-max normalised CAM that peaks on a discriminative part leaves most of the object
      out. Pass the threshold you would otherwise apply to the map, e.g. the PaS ``theta_loc`` for a
      percentile-normalised map, chosen on held-out data.
    - ``alpha=a``: PSA's power unary (Ahn & Kwak, CVPR 2018; jiwoon-ahn/psa ``infer_cls.py``, ``_crf_with_alpha``,
      ``alpha`` 4 and 32 there): object ``s``, background ``(1 - s) ** a``, not normalised; the boundary is
      :func:`alpha_boundary` ``(a)`` (0.2755 at ``a = 4``). PSA applies it to maps divided by their maximum.

    Args:
        saliency: ``(H, W)`` or ``(N, H, W)`` floating tensor in ``[0, 1]``.
        threshold: the operating point in ``(0, 1)``; ``None`` for 0.5 (unless ``alpha`` is given).
        alpha: PSA's exponent, ``> 0``, instead of ``threshold`` (give at most one of the two).

    Returns:
        float32 ``(2, H, W)`` or ``(N, 2, H, W)`` on ``saliency``'s device: background then object score, each in
        ``[0, 1]`` (with ``threshold`` they sum to 1).

    Raises:
        TypeError, ValueError: bad arguments, or both ``threshold`` and ``alpha`` given.
    """
    threshold, alpha = _check_operating_point(threshold, alpha)
    batched = isinstance(saliency, Tensor) and saliency.dim() == 3
    saliency = _check_probability_map("saliency", saliency, 3 if batched else 2, "(N, H, W)" if batched else "(H, W)")
    foreground = saliency.detach().to(torch.float64).cpu().numpy().reshape(-1, *saliency.shape[-2:])
    scores = torch.from_numpy(_scores_numpy(foreground, threshold, alpha)).to(saliency.device)
    return scores if batched else scores[0]


def _saliency_inputs(
    images: object, saliency: object, batched: bool, threshold: Optional[float], alpha: Optional[float]
) -> Tuple[np.ndarray, np.ndarray, Tensor]:
    """Validate; return images ``(N, H, W, 3)`` uint8, two-class scores ``(N, 2, H, W)`` float32 and the map.

    float32 halves what is sent to the worker processes and is what pydensecrf computes in anyway.
    """
    threshold, alpha = _check_operating_point(threshold, alpha)
    image_name = "images" if batched else "image"
    image_shape = _image_shape(image_name, images, batched)
    saliency, foreground = _foreground(image_name, image_shape, saliency, batched)
    return _images_to_numpy(images), _scores_numpy(foreground, threshold, alpha), saliency


def _foreground(
    image_name: str, image_shape: Tuple[int, int, int], saliency: object, batched: bool
) -> Tuple[Tensor, np.ndarray]:
    """``saliency`` checked against the images' ``(N, H, W)``, and its values as float64 ``(N, H, W)``."""
    saliency = _check_probability_map("saliency", saliency, 3 if batched else 2, "(N, H, W)" if batched else "(H, W)")
    _check_sizes(image_name, image_shape, "saliency", saliency, batched)
    return saliency, saliency.detach().to(torch.float64).cpu().numpy().reshape(-1, *saliency.shape[-2:])


def _class_inputs(images: object, probs: object, batched: bool) -> Tuple[np.ndarray, np.ndarray, Tensor]:
    """Validate; return images ``(N, H, W, 3)`` uint8, probs ``(N, K, H, W)`` float32 and the probs tensor."""
    image_name = "images" if batched else "image"
    image_shape = _image_shape(image_name, images, batched)
    probs = _check_class_probs("probs", probs, 4 if batched else 3, "(N, K, H, W)" if batched else "(K, H, W)")
    _check_sizes(image_name, image_shape, "probs", probs, batched)
    probs_np = probs.detach().to(torch.float32).cpu().numpy().reshape(-1, *probs.shape[-3:])
    return _images_to_numpy(images), probs_np, probs


def dense_crf(image: Image, probs: Tensor, params: Optional[DenseCRFParams] = None) -> Tensor:
    """Refine the class probabilities of one image with a dense CRF (the functional form).

    Args:
        image: the RGB image the map belongs to, uint8 in ``[0, 255]``: a numpy array ``(H, W, 3)`` or a tensor
            ``(3, H, W)`` (any device). Not mean/std normalised: the bilateral kernel compares raw colours.
        probs: class probabilities of shape ``(K, H, W)``, ``K >= 2``, floating, in ``[0, 1]``, summing to 1
            over ``K`` at every pixel (within 1e-3), e.g. a softmax. Same ``(H, W)`` as ``image``.
        params: CRF parameters; ``None`` uses :class:`DenseCRFParams`'s defaults.

    Returns:
        Refined probabilities, float32 ``(K, H, W)`` on ``probs``' device, summing to 1 over ``K``. The result is
        deterministic: the same input gives the same output.

    Raises:
        ImportError: pydensecrf is not installed (the message says what to install).
        TypeError, ValueError: an argument has the wrong type, dtype, shape or values.
    """
    images_np, probs_np, probs = _class_inputs(image, probs, batched=False)
    refined = _refine_all(images_np, probs_np, params, workers=1)
    return torch.from_numpy(refined[0]).to(probs.device)


def refine_labels(
    image: Image, probs: Tensor, params: Optional[DenseCRFParams] = None
) -> Tuple[Tensor, Tensor]:
    """Refine a ``K``-class segmentation of one image (LID Track 1): refined probabilities and their labels.

    Args:
        image: the RGB image, uint8 in ``[0, 255]``: a numpy array ``(H, W, 3)`` or a tensor ``(3, H, W)`` (any
            device), as in :func:`dense_crf`.
        probs: class probabilities ``(K, H, W)``, ``K >= 2``, floating, in ``[0, 1]``, summing to 1 over ``K``
            at every pixel (within 1e-3); class 0 is usually background. Same ``(H, W)`` as ``image``.
        params: CRF parameters; ``None`` uses :class:`DenseCRFParams`'s defaults.

    Returns:
        ``(refined, labels)``: refined probabilities, float32 ``(K, H, W)``, and ``labels = refined.argmax(0)``,
        int64 ``(H, W)`` in ``[0, K - 1]``, both on ``probs``' device.

    Raises:
        ImportError: pydensecrf is not installed (the message says what to install).
        TypeError, ValueError: an argument has the wrong type, dtype, shape or values.
    """
    refined = dense_crf(image, probs, params)
    return refined, refined.argmax(dim=0)


def refine_saliency(
    image: Image,
    saliency: Tensor,
    params: Optional[DenseCRFParams] = None,
    *,
    threshold: Optional[float] = None,
    alpha: Optional[float] = None,
) -> Tensor:
    """Refine one foreground (saliency) map with a two-class, object/background dense CRF (LID Track 3).

    The map becomes the two scores of :func:`saliency_scores`, whose operating point (``threshold`` or ``alpha``)
    is the map value the unary leaves undecided; the pairwise terms then move the boundary onto the image's
    edges. Choose the operating point as you would choose a threshold for the map itself, on held-out data: the
    default 0.5 is a convention, not a calibrated value, and it usually decides the result more than the
    pairwise parameters do.

    Args:
        image: the RGB image, uint8 numpy ``(H, W, 3)`` or uint8 tensor ``(3, H, W)``, as in :func:`dense_crf`.
        saliency: foreground map ``(H, W)``, floating, in ``[0, 1]`` (e.g. a min-max or percentile normalised
            CAM upsampled to the image size); same ``(H, W)`` as ``image``.
        params: CRF parameters; ``None`` uses :class:`DenseCRFParams`'s defaults.
        threshold: the operating point, a map value in ``(0, 1)``; ``None`` for 0.5. See :func:`saliency_scores`.
        alpha: PSA's power unary ``(1 - s) ** alpha`` for the background instead of ``threshold``, ``> 0``.

    Returns:
        The refined object probability, float32 ``(H, W)`` in ``[0, 1]`` on ``saliency``'s device: the CRF's
        marginal, not thresholded. With the default pairwise weights it is nearly binary (in the camfix demo
        under 1% of pixels lie between 0.02 and 0.98), so threshold it at 0.5 for the mask, and do not expect a
        threshold sweep over it to sweep anything; to trace the CRF over operating points, refine once per
        ``threshold``.

    Raises:
        ImportError: pydensecrf is not installed. TypeError, ValueError: bad arguments.
    """
    images_np, probs_np, saliency = _saliency_inputs(image, saliency, False, threshold, alpha)
    refined = _refine_all(images_np, probs_np, params, workers=1)
    return torch.from_numpy(refined[0, 1]).to(saliency.device)


def refine_saliency_batch(
    images: Image,
    saliency: Tensor,
    params: Optional[DenseCRFParams] = None,
    *,
    workers: Optional[int] = None,
    threshold: Optional[float] = None,
    alpha: Optional[float] = None,
) -> Tensor:
    """Refine a batch of saliency maps, one image per worker process; see :func:`refine_saliency`.

    Args:
        images: RGB images, uint8: a numpy array ``(N, H, W, 3)`` or a tensor ``(N, 3, H, W)`` (any device).
        saliency: foreground maps ``(N, H, W)``, floating, in ``[0, 1]``; same ``N, H, W`` as ``images``.
        params: CRF parameters; ``None`` uses :class:`DenseCRFParams`'s defaults.
        workers: processes refining images in parallel, an int ``>= 1``; ``None`` uses
            ``min(N, camfix.parallel.usable_cpus())``. Never more than ``N`` are started; 1 runs in this
            process. The result does not depend on it.
        threshold: the operating point of every map, in ``(0, 1)``; ``None`` for 0.5 (:func:`saliency_scores`).
        alpha: PSA's power unary instead of ``threshold``, ``> 0``.

    Returns:
        Refined object probabilities, float32 ``(N, H, W)`` on ``saliency``'s device, in input order; nearly
        binary, see :func:`refine_saliency`.
    """
    images_np, probs_np, saliency = _saliency_inputs(images, saliency, True, threshold, alpha)
    refined = _refine_all(images_np, probs_np, params, workers)
    return torch.from_numpy(refined[:, 1]).to(saliency.device)


def _threshold_lists(thresholds: object, count: int) -> List[List[float]]:
    """``count`` validated lists of operating points, one per map, all of the same length ``T >= 1``."""

    def as_list(value: object) -> List[object]:
        if isinstance(value, np.ndarray) and value.ndim == 1:
            return value.tolist()
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) == 0:
            raise TypeError(
                f"thresholds must be a non-empty sequence of numbers in (0, 1) (or one such sequence per map), got "
                f"{thresholds!r}"
            )
        return list(value)

    outer = as_list(thresholds)
    nested = all(isinstance(item, (Sequence, np.ndarray)) and not isinstance(item, (str, bytes)) for item in outer)
    lists = [as_list(item) for item in outer] if nested else [outer] * count
    if len(lists) != count or len({len(points) for points in lists}) != 1:
        raise ValueError(
            f"thresholds must be one sequence for every map or {count} sequences of the same length (one per map), "
            f"got {thresholds!r}"
        )
    return [
        [
            check_number(
                f"thresholds[{n}][{i}]" if nested else f"thresholds[{i}]", point, 0.0, 1.0,
                low_inclusive=False, high_inclusive=False,
            )
            for i, point in enumerate(points)
        ]
        for n, points in enumerate(lists)
    ]


def refine_saliency_sweep(
    images: Image,
    saliency: Tensor,
    thresholds: Sequence[object],
    params: Optional[DenseCRFParams] = None,
    *,
    workers: Optional[int] = None,
) -> Tensor:
    """Refine a batch of saliency maps once per operating point: the CRF traced over ``thresholds``.

    Because the CRF's output is nearly binary, a threshold sweep over one refined map finds little to sweep; the
    way to see the CRF at several operating points is to refine at each, which this does for less than separate
    :func:`refine_saliency_batch` calls: each image's pairwise kernels are built once (per operating point, 0.7
    of a separate refinement at 64 pixels, 0.9 at 224, by ``benchmarks/bench_crf.py``), also for several maps of
    the same images (``(R, N, H, W)``, e.g. the rows of an ablation). ``result[k]`` (``result[r, k]``) is exactly
    ``refine_saliency_batch(images, saliency[r], params, threshold=thresholds[k])`` (``thresholds[r][k]``).

    Args:
        images: RGB images, uint8: a numpy array ``(N, H, W, 3)`` or a tensor ``(N, 3, H, W)`` (any device).
        saliency: foreground maps ``(N, H, W)``, or ``R`` maps of each image ``(R, N, H, W)``, floating, in
            ``[0, 1]``; same ``N, H, W`` as ``images``.
        thresholds: operating points, each in ``(0, 1)`` (see :func:`saliency_scores`): a non-empty sequence (or
            1-D numpy array) used for every map, or, for ``(R, N, H, W)`` maps, ``R`` such sequences of one length
            ``T``, one per map.
        params: CRF parameters; ``None`` uses :class:`DenseCRFParams`'s defaults.
        workers: processes, as in :func:`refine_saliency_batch`.

    Returns:
        Refined object probabilities, float32 on ``saliency``'s device: ``(T, N, H, W)`` for ``(N, H, W)`` maps,
        ``(R, T, N, H, W)`` for ``(R, N, H, W)`` maps.
    """
    several = isinstance(saliency, Tensor) and saliency.dim() == 4
    if several:
        check_tensor("saliency", saliency, 4, shape_hint="(R, N, H, W)")
        maps = list(saliency.unbind(0))
    else:
        maps = [saliency]
    lists = _threshold_lists(thresholds, len(maps))
    image_shape = _image_shape("images", images, True)
    per_map = []
    for points, one in zip(lists, maps):
        foreground = _foreground("images", image_shape, one, True)[1]
        per_map += [_scores_numpy(foreground, point, None) for point in points]
    # (N, R * T, 2, H, W): every map and operating point of an image goes to the same worker, which builds the
    # image's kernels once.
    images_np = _images_to_numpy(images)
    refined = _refine_all(images_np, np.stack(per_map, axis=1), params, workers, _dense_crf_sweep_numpy)
    count, height, width = refined.shape[0], refined.shape[-2], refined.shape[-1]
    refined = refined.reshape(count, len(maps), len(lists[0]), height, width).transpose(1, 2, 0, 3, 4)
    result = torch.from_numpy(np.ascontiguousarray(refined)).to(saliency.device)
    return result if several else result[0]


def refine_labels_batch(
    images: Image,
    probs: Tensor,
    params: Optional[DenseCRFParams] = None,
    *,
    workers: Optional[int] = None,
) -> Tuple[Tensor, Tensor]:
    """Refine a batch of ``K``-class segmentations, one image per worker process; see :func:`refine_labels`.

    Args:
        images: RGB images, uint8: a numpy array ``(N, H, W, 3)`` or a tensor ``(N, 3, H, W)`` (any device).
        probs: class probabilities ``(N, K, H, W)``, ``K >= 2``, floating, in ``[0, 1]``, summing to 1 over
            ``K`` (within 1e-3); same ``N, H, W`` as ``images``.
        params: CRF parameters; ``None`` uses :class:`DenseCRFParams`'s defaults.
        workers: processes refining images in parallel, as in :func:`refine_saliency_batch`.

    Returns:
        ``(refined, labels)``: float32 ``(N, K, H, W)`` and int64 ``(N, H, W)``, on ``probs``' device, in input
        order.
    """
    images_np, probs_np, probs = _class_inputs(images, probs, batched=True)
    refined = torch.from_numpy(_refine_all(images_np, probs_np, params, workers)).to(probs.device)
    return refined, refined.argmax(dim=1)
