"""Out-of-distribution images and the occlusion patch of the "errors" set.

000 section 3.1 and 002 section 2.2 use "random normal and uniform noise images" and
images of CIFAR-10 and Fashion-MNIST as OOD data for an MNIST model. The papers do
not give the noise distributions; we use the definitions of ODIN (Liang et al.,
cited in 000 section 2.2), the usual ones for these sets:

- ``gaussian``: every pixel (every channel) i.i.d. :math:`\\mathcal N(0.5, 1)`, then
  clipped to [0, 1] (so about 31% of the pixels are exactly 0 and 31% exactly 1).
- ``uniform``: every pixel (every channel) i.i.d. :math:`\\mathcal U[0, 1]`.

:func:`gaussian_noise` takes ``mean``, ``std`` and ``clip`` so that chapter 02 can show
how much its conclusions depend on this unstated choice (e.g. unclipped N(0.5, 1), or a
narrower N(0.5, 0.25^2) that rarely leaves [0, 1]); :data:`NOISE_VARIANTS` lists the readings
it compares and :func:`noise_reading_table` runs the comparison.

Image data sets are converted to the in-distribution format: colour -> grey with
the ITU-R BT.601 luma weights (0.299, 0.587, 0.114), grey -> colour by repeating
the channel, size changed by bilinear interpolation with antialiasing
(CIFAR-10 32x32 -> 28x28 for MNIST models; MNIST / Fashion 28x28 -> 32x32x3 for
CIFAR-10 models).

``natural`` is a *stand-in* for CIFAR-10 when CIFAR-10 is not on disk: random square
crops (side 48-200 px) of the two photos scikit-learn ships
(``sklearn.datasets.load_sample_images``: china.jpg, flower.jpg, 427x640), downscaled to
the in-distribution size (grey for MNIST). Natural-image statistics, but only two
scenes: it is labelled as a stand-in wherever it is used. Training and test crops come
from *disjoint regions* (:data:`NATURAL_REGIONS`): ``part="train"`` crops lie in the left
half of each photo, ``part="test"`` crops in the right half, so no test pixel was seen in
training (before ``ood-2`` both parts cropped the whole photos, and a supervised detector
could score the test crops by memory). They still show the same two scenes: these are the
only photos installed here (scikit-image, which ships more, is not a dependency, and
``scipy.datasets`` downloads its images).

:func:`add_black_patch` puts one k x k black (0) square per image at a uniformly
random position fully inside the image (002 section 2.2: 7x7, after DeVries & Taylor 2018).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .runtime import generator
from .stats import ttest_table
from .validate import MissingDataError, SoftlibError, check_choice, check_float, check_int

#: Bump when any generated image for the same arguments changes.
CODE_VERSION = "ood-2"  # ood-2: natural train / test crops from disjoint photo halves

NOISE = ("gaussian", "uniform")
IMAGE_SETS = ("mnist", "fashion_mnist", "cifar10")
#: Gaussian noise parameters (ODIN's definition), before clipping to [0, 1].
GAUSSIAN_MEAN, GAUSSIAN_STD = 0.5, 1.0
#: Crop side range (pixels of the 427x640 photos) for the natural stand-in.
NATURAL_CROP = (48, 200)
#: Column range (fractions of the width) each part's natural crops are drawn from: disjoint.
NATURAL_REGIONS = {"train": (0.0, 0.5), "test": (0.5, 1.0)}
#: ITU-R BT.601 luma weights (colour -> grey).
LUMA = (0.299, 0.587, 0.114)

#: Image format (channels, size) of each in-distribution data set.
FORMAT = {"mnist": (1, 28), "fashion_mnist": (1, 28), "cifar10": (3, 32)}


def gaussian_noise(n: int, channels: int, size: int, *, seed: int, mean: float = GAUSSIAN_MEAN,
                   std: float = GAUSSIAN_STD, clip: bool = True) -> torch.Tensor:
    """``n`` images with i.i.d. N(``mean``, ``std``^2) pixels, clipped to [0, 1] unless ``clip``
    is False (float32, N x C x H x W). Defaults: ODIN's N(0.5, 1), clipped (the ``gaussian`` set)."""
    n = check_int("n", n, low=0)
    mean = check_float("mean", mean)
    std = check_float("std", std, low=0.0)
    if not isinstance(clip, bool):
        raise SoftlibError(f"clip must be True or False, got {clip!r}")
    g = generator(seed)
    x = torch.randn((n, channels, size, size), generator=g) * std + mean
    return x.clamp_(0.0, 1.0) if clip else x


def uniform_noise(n: int, channels: int, size: int, *, seed: int) -> torch.Tensor:
    """``n`` images with i.i.d. U[0, 1] pixels (float32, N x C x H x W)."""
    n = check_int("n", n, low=0)
    return torch.rand((n, channels, size, size), generator=generator(seed))


#: Readings of the papers' unstated "random normal and uniform noise images" (000 section
#: 3.1, 002 section 2.2) that chapter 02 compares: label -> (``"gaussian"`` or ``"uniform"``,
#: keyword arguments of :func:`gaussian_noise`). The first and last are the book's sets.
NOISE_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "N(0.5, 1), clipped (ODIN; our gaussian)": ("gaussian", {}),
    "N(0.5, 1), unclipped": ("gaussian", {"clip": False}),
    "N(0.5, 0.25²), clipped": ("gaussian", {"std": 0.25}),
    "N(0.5, 0.1²), clipped": ("gaussian", {"std": 0.1}),
    "U[0, 1] (our uniform)": ("uniform", {}),
}


def noise_variants(n: int, channels: int, size: int, *, seed: int,
                   variants: Mapping[str, tuple[str, dict[str, Any]]] | None = None) -> dict[str, torch.Tensor]:
    """``n`` images of every noise reading of ``variants`` (default :data:`NOISE_VARIANTS`), same ``seed``."""
    variants = NOISE_VARIANTS if variants is None else variants
    out = {}
    for label, (kind, kw) in variants.items():
        check_choice(f"noise kind of variant {label!r}", kind, NOISE)
        out[label] = (gaussian_noise(n, channels, size, seed=seed, **kw) if kind == "gaussian"
                      else uniform_noise(n, channels, size, seed=seed))
    return out


def average_logit(model: nn.Module, x: torch.Tensor, *, batch_size: int = 512) -> np.ndarray:
    """Average of the logits ``model(x)`` per image (float64), batched on the model's device.

    Unlike :func:`softlib.models.predict` this takes pixels outside [0, 1]: the unclipped
    noise reading is not an image the network was made for, and that is what it shows.
    """
    if not isinstance(model, nn.Module):
        raise SoftlibError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not torch.is_floating_point(x):
        raise SoftlibError(f"x must be a float tensor (N, C, H, W), got {getattr(x, 'shape', type(x).__name__)}")
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise SoftlibError("x contains NaN or inf")
    batch_size = check_int("batch_size", batch_size, low=1)
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            out.append(model(x[i:i + batch_size].to(dev)).double().mean(dim=1).cpu())
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros(0)


def noise_reading_table(model: nn.Module, reference_mean: np.ndarray, *, dataset: str, n: int, seed: int,
                        batch_size: int = 512) -> pd.DataFrame:
    """Chapter 02's claim 1 (legitimate images have a higher average logit than noise, p < 1e-4)
    under every reading of :data:`NOISE_VARIANTS`.

    ``reference_mean``: the average logit of each legitimate image. Returns
    :func:`softlib.stats.ttest_table` (set = the reading) plus ``% pixels clipped`` (share of
    pixels a clip to [0, 1] moves, or would move for the unclipped reading) and ``legit higher``
    (difference > 0 and both tests significant: the claim's criterion).
    """
    check_choice("data set", dataset, FORMAT)
    n = check_int("n", n, low=2)
    channels, size = FORMAT[dataset]
    images = noise_variants(n, channels, size, seed=seed)
    means = {k: average_logit(model, x, batch_size=batch_size) for k, x in images.items()}
    table = ttest_table(reference_mean, means, reference_name="legit")
    raw = {k: (gaussian_noise(n, channels, size, seed=seed, **{**kw, "clip": False}) if kind == "gaussian"
               else images[k]) for k, (kind, kw) in NOISE_VARIANTS.items()}
    table["% pixels clipped"] = [100 * float(((raw[k] < 0) | (raw[k] > 1)).double().mean()) for k in table["set"]]
    table["legit higher"] = (table["difference"] > 0) & table["significant"]
    return table


def convert_images(x: torch.Tensor, channels: int, size: int) -> torch.Tensor:
    """Convert (N, C, H, W) images in [0, 1] to ``channels`` (1 or 3) and ``size`` x ``size``."""
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise SoftlibError(f"images must have shape (N, 1|3, H, W), got {tuple(x.shape)}")
    check_choice("channels", str(channels), ("1", "3"))
    if x.shape[1] == 3 and channels == 1:
        w = torch.tensor(LUMA, dtype=x.dtype).view(1, 3, 1, 1)
        x = (x * w).sum(dim=1, keepdim=True)
    elif x.shape[1] == 1 and channels == 3:
        x = x.repeat(1, 3, 1, 1)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.clamp(0.0, 1.0).contiguous()


@functools.lru_cache(maxsize=1)
def _sample_photos() -> tuple[np.ndarray, ...]:
    try:
        from sklearn.datasets import load_sample_images

        return tuple(np.array(im, copy=True) for im in load_sample_images().images)
    except ImportError as exc:  # pillow missing
        raise MissingDataError(
            f"the 'natural' stand-in needs scikit-learn's sample photos, which need pillow: {exc}. "
            "Install pillow (pip install pillow)."
        ) from exc


def natural_available() -> bool:
    """True if scikit-learn's sample photos load (needs pillow)."""
    try:
        _sample_photos()
        return True
    except MissingDataError:
        return False


def natural_crops(n: int, channels: int, size: int, *, seed: int, part: str = "test") -> torch.Tensor:
    """``n`` random square crops of scikit-learn's two sample photos, as ``channels`` x ``size`` x ``size``.

    Photo, crop side (uniform in :data:`NATURAL_CROP`) and position are drawn from a
    generator seeded with ``seed``; each crop lies inside the ``part``'s region of the photo
    (:data:`NATURAL_REGIONS`: train and test crops share no pixel) and is downscaled with
    antialiasing.
    """
    n = check_int("n", n, low=0)
    check_choice("part", part, tuple(NATURAL_REGIONS))
    lo, hi = NATURAL_REGIONS[part]
    photos = []
    for p in _sample_photos():
        w = p.shape[1]
        photos.append(torch.from_numpy(p[:, int(round(lo * w)):int(round(hi * w))]).permute(2, 0, 1).float().div(255.0))
    g = generator(seed)
    which = torch.randint(len(photos), (n,), generator=g)
    sides = torch.randint(NATURAL_CROP[0], NATURAL_CROP[1] + 1, (n,), generator=g)
    u = torch.rand((n, 2), generator=g)
    out = torch.empty((n, channels, size, size))
    for i in range(n):  # n crops of different sizes; cheap (a few ms per 100)
        p = photos[int(which[i])]
        s = int(sides[i])
        top = int(u[i, 0] * (p.shape[1] - s + 1))
        left = int(u[i, 1] * (p.shape[2] - s + 1))
        crop = p[:, top:top + s, left:left + s].unsqueeze(0)
        out[i] = convert_images(crop, channels, size)[0]
    return out


def add_black_patch(x: torch.Tensor, *, size: int = 7, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Copy of ``x`` with one ``size`` x ``size`` black square per image, and the (row, col) of each.

    Positions are uniform over the places where the square fits entirely (002
    section 2.2 / DeVries & Taylor 2018: 7x7 black patches); every channel is set to 0.
    """
    size = check_int("patch size", size, low=1)
    if x.ndim != 4 or x.shape[-1] < size or x.shape[-2] < size:
        raise SoftlibError(f"images must be (N, C, H, W) with H, W >= {size}, got {tuple(x.shape)}")
    n, _, h, w = x.shape
    g = generator(seed)
    rows = torch.randint(h - size + 1, (n,), generator=g)
    cols = torch.randint(w - size + 1, (n,), generator=g)
    r = torch.arange(h).view(1, h, 1)
    c = torch.arange(w).view(1, 1, w)
    mask = ((r >= rows.view(n, 1, 1)) & (r < rows.view(n, 1, 1) + size)
            & (c >= cols.view(n, 1, 1)) & (c < cols.view(n, 1, 1) + size))
    out = x.masked_fill(mask.unsqueeze(1), 0.0)
    return out, torch.stack([rows, cols], dim=1)


def ood_images(name: str, n: int, *, dataset: str, part: str, seed: int) -> tuple[torch.Tensor, dict]:
    """``n`` OOD images ``name`` in the format of ``dataset``, with facts for the set's meta.

    ``name``: ``"gaussian"``, ``"uniform"``, ``"natural"``, or an image data set other
    than ``dataset`` (``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``), drawn without
    replacement from its training split (``part="train"``) or test split (``"test"``).
    """
    check_choice("data set", dataset, FORMAT)
    check_choice("part", part, ("train", "test"))
    allowed = (*NOISE, "natural", *(d for d in IMAGE_SETS if d != dataset))
    check_choice(f"OOD set for {dataset}", name, allowed)
    n = check_int("n", n, low=0)
    channels, size = FORMAT[dataset]
    if name == "gaussian":
        return gaussian_noise(n, channels, size, seed=seed), {
            "note": f"i.i.d. N({GAUSSIAN_MEAN}, {GAUSSIAN_STD}^2) pixels clipped to [0, 1] (ODIN's definition)",
            "stand_in": False}
    if name == "uniform":
        return uniform_noise(n, channels, size, seed=seed), {"note": "i.i.d. U[0, 1] pixels", "stand_in": False}
    if name == "natural":
        lo, hi = NATURAL_REGIONS[part]
        return natural_crops(n, channels, size, seed=seed, part=part), {
            "note": (f"STAND-IN for CIFAR-10: random crops of scikit-learn's 2 sample photos, from columns "
                     f"{lo:.0%}-{hi:.0%} of each ({part} region; train and test regions are disjoint)"),
            "stand_in": True}
    from .data import load_split

    x, _ = load_split(name, train=(part == "train"))
    if n > len(x):
        raise SoftlibError(f"asked for {n} {name} images but its {part} split has {len(x)}")
    idx = torch.randperm(len(x), generator=generator(seed))[:n]
    note = f"{name} {part} images converted to {channels}x{size}x{size}"
    return convert_images(x[idx], channels, size), {"note": note, "stand_in": False, "source_index": idx.numpy()}
