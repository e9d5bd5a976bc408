"""Chapter 04's setting: three models and the images all of them classify correctly (paper 004, appendix B).

The experiment, as in 004 appendix B ("Experimental Settings"):

1. three models of different families and images correctly classified by all
   three (004: AlexNet, VGG-16, ResNet-50 and 2500 ImageNet validation images,
   see :mod:`softlib.imagenet`; here also an MNIST setting: softlib's CNN, WRN
   and MLP), a random wrong target class per image (seeded);
2. each model in turn is the *source*: the over-optimised and the multi-class
   attacks of :mod:`softlib.chapters.ch04.overoptimize` run on it for ``iters`` steps (004:
   500) and after every step we record the source's top class activation, its
   softmax and whether the example *transfers* to each of the other two models;
3. data cleaning: examples that have not transferred by the last step are
   dropped (004: "we filtered out all adversarial examples that did not transfer
   after 500 iterations", 200-500 of 2500 per pair);
4. data aggregation: each step becomes a point whose x is the percentage of the
   retained examples that have transferred by that step and whose y is the mean
   (with a 95% confidence interval) over the retained examples of the top
   activation and of the softmax, for every ordered pair of models (004 figures
   4 and 5, six panels each).

This module does step 1; :mod:`softlib.chapters.ch04.runner` step 2,
:mod:`softlib.chapters.ch04.aggregation` steps 3 and 4.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from softlib.models import TrainedModel, predict, prediction_rule
from softlib.profiles import Profile, get_profile
from softlib.runtime import get_device
from softlib.validate import SoftlibError, check_choice, check_int

if TYPE_CHECKING:
    pass


SETTINGS = ("auto", "imagenet", "mnist")


#: The MNIST setting: display name -> (zoo architecture, needs the profile's WRN depth/width).
MNIST_MODELS = {"CNN": "cnn", "WRN": "wrn", "MLP": "mlp"}


#: The model of figures 1 and 2 per setting (004: a pretrained ResNet-50).
FIGURE_MODEL = {"imagenet": "ResNet-50", "mnist": "CNN"}


@dataclass
class Setting:
    """Models and images of one run of the experiment."""

    name: str  # "imagenet" | "mnist"
    models: dict[str, nn.Module]
    x: torch.Tensor  # (N, C, H, W) in [0, 1], correctly classified by every model
    y: torch.Tensor  # (N,) labels
    index: np.ndarray  # positions of the images in their split / ImageFolder
    num_classes: int
    note: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


def resolve_setting(setting: str) -> str:
    """``"auto"`` -> ``"imagenet"`` when :func:`softlib.imagenet.available`, else ``"mnist"``."""
    check_choice("setting", setting, SETTINGS)
    if setting != "auto":
        return setting
    from softlib import imagenet

    return "imagenet" if imagenet.available() else "mnist"


def _mnist_calls(prof: Profile) -> dict[str, tuple[str, dict[str, Any]]]:
    """The MNIST setting's three families: softlib's CNN, WRN (profile depth/width) and MLP."""
    return {"CNN": ("cnn", {}), "WRN": ("wrn", {"depth": prof.wrn_depth, "width": prof.wrn_width}), "MLP": ("mlp", {})}


def mnist_models(profile: Profile | str, seed: int = 0) -> dict[str, nn.Module]:
    """The MNIST setting's three families, trained with ``seed`` (or read from the cache)."""
    from softlib import zoo

    prof = get_profile(profile) if isinstance(profile, str) else profile
    return {name: zoo.get_model(arch, "mnist", prof, seed, **kw) for name, (arch, kw) in _mnist_calls(prof).items()}


def models_key(setting: str, profile: Profile | str, seed: int = 0) -> str:
    """One key for the networks a run of this chapter uses (nothing is trained): what its seed replicates are
    recorded for (:func:`softlib.tooling.record.pooled_claims`). MNIST: the three models' cache keys; ImageNet:
    the pretrained weights, the same for every seed."""
    from softlib import zoo
    from softlib.cache import spec_key

    prof = get_profile(profile) if isinstance(profile, str) else profile
    setting = resolve_setting(setting)
    if setting == "imagenet":
        return spec_key({"kind": "ch04-models", "setting": "imagenet", "weights": "torchvision pretrained"})
    keys = {name: zoo.model_key(arch, "mnist", prof, seed, **kw) for name, (arch, kw) in _mnist_calls(prof).items()}
    return spec_key({"kind": "ch04-models", "setting": setting, **keys})


def select_correct(
    models: dict[str, nn.Module],
    dataset: torch.utils.data.Dataset,
    n: int,
    *,
    seed: int = 0,
    batch_size: int = 256,
    device: torch.device | None = None,
    progress: bool = True,
    strict: bool = True,
    max_scan: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """The first ``n`` images, in a seeded random order, correctly classified by every model.

    004 appendix B: "making sure that a selected image is initially correctly
    predicted by all three models". Reads the data set lazily in batches and stops
    as soon as ``n`` are found (ImageNet: 50,000 files). Raises if fewer exist,
    unless ``strict=False``: then the rest are the images correctly classified by
    the most models (for the smoke profile's barely trained models; callers say so).
    ``max_scan`` caps how many images are looked at (default: all).
    """
    n = check_int("n", n, low=1)
    device = device or get_device()
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).numpy()
    if max_scan is not None:
        order = order[: check_int("max_scan", max_scan, low=1)]
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, order.tolist()), batch_size=batch_size,
                                         shuffle=False)
    xs, ys, idx = [], [], []
    counts = np.zeros(len(order), np.int64)  # models right, in the permuted order (strict=False)
    found, seen = 0, 0
    bar = tqdm(total=n, desc="selecting images", disable=not progress)
    with torch.inference_mode():
        for xb, yb in loader:
            xd, yd = xb.to(device), yb.to(device)
            right = torch.zeros(len(xb), dtype=torch.long, device=device)
            for m in models.values():
                right += (prediction_rule(m)(m.eval()(xd)) == yd).long()
            right = right.cpu().numpy()
            counts[seen : seen + len(xb)] = right
            take = np.flatnonzero(right == len(models))[: n - found]
            xs.append(xb[take])
            ys.append(yb[take])
            idx.append(order[seen + take])
            found += len(take)
            seen += len(xb)
            bar.update(len(take))
            if found >= n:
                break
    bar.close()
    if found < n:
        if strict:
            raise SoftlibError(
                f"only {found} of {len(order)} images are correctly classified by all models; asked for n={n}")
        if len(order) < n:
            raise SoftlibError(f"asked for n={n} images but only {len(order)} were looked at (max_scan / data set size)")
        rank = np.argsort(-counts, kind="stable")[:n]  # all-correct first, then the most models right
        xy = [dataset[int(order[j])] for j in rank]
        return (torch.stack([torch.as_tensor(a) for a, _ in xy]), torch.as_tensor([int(b) for _, b in xy]).long(),
                order[rank].astype(np.int64))
    return torch.cat(xs), torch.cat(ys).long(), np.concatenate(idx).astype(np.int64)


def load_setting(setting: str, profile: Profile | str, *, seed: int = 0, n: int | None = None,
                 progress: bool = True) -> Setting:
    """Models and ``n`` (default ``profile.transfer_images``) images of ``setting``.

    ``"imagenet"``: 004's AlexNet / VGG-16 / ResNet-50 and validation images
    (:mod:`softlib.imagenet`; MissingDataError if absent). ``"mnist"``: softlib's
    CNN / WRN / MLP trained on MNIST (:mod:`softlib.zoo`) and MNIST test images.
    """
    prof = get_profile(profile) if isinstance(profile, str) else profile
    name = resolve_setting(setting)
    n = prof.transfer_images if n is None else check_int("n_images", n, low=1)
    if name == "imagenet":
        from softlib import imagenet

        models = imagenet.paper_models()
        ds = imagenet.val_dataset()
        x, y, idx = select_correct(models, ds, n, seed=seed, batch_size=64, progress=progress)
        return Setting("imagenet", models, x, y, idx, imagenet.NUM_CLASSES,
                       note="the paper's setting: AlexNet, VGG-16, ResNet-50 on ImageNet validation images")  # 004 section 4
    from softlib import data

    models = mnist_models(prof, seed)
    xt, yt = data.load_split("mnist", train=False)
    strict = prof.name != "smoke"  # smoke models are barely trained: fill up with the best-classified images
    x, y, idx = select_correct(models, torch.utils.data.TensorDataset(xt, yt), n, seed=seed, progress=progress,
                               strict=strict, max_scan=None if strict else max(20 * n, 1000))
    accs = {k: m.meta.get("test_acc") for k, m in models.items() if isinstance(m, TrainedModel)}
    note = "stand-in for the paper's ImageNet models: softlib's CNN, WRN and MLP trained on MNIST"  # 004 section 4
    n_all = _count_all_correct(models, x, y)
    if n_all < len(x):
        note += (f" (smoke profile: only {n_all} of the {len(x)} images are correctly classified by all three;"
                 " the others by fewer)")
    return Setting("mnist", models, x, y, idx, 10, meta={"test_acc": accs, "n_all_correct": n_all}, note=note)


def _count_all_correct(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor) -> int:
    ok = torch.ones(len(x), dtype=torch.bool)
    for m in models.values():
        z = torch.from_numpy(predict(m, x, device=get_device(), features=False)["logits"])
        ok &= prediction_rule(m)(z) == y
    return int(ok.sum())


def random_targets(y: torch.Tensor | np.ndarray, num_classes: int, seed: int) -> np.ndarray:
    """A random wrong class per image, seeded: ``(y + U{1..C-1}) mod C``."""
    y = np.asarray(y, dtype=np.int64)
    num_classes = check_int("num_classes", num_classes, low=2)
    rng = np.random.default_rng(seed)
    return (y + rng.integers(1, num_classes, size=len(y))) % num_classes
