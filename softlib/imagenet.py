"""The ImageNet setting of paper 004: AlexNet, VGG-16 and ResNet-50 on validation images.

004 appendix B ("Framework") uses three pretrained ImageNet models, AlexNet,
VGG-16 and ResNet-50, and 2500 validation images correctly classified by all
three. This module provides exactly that, from local files only (no network):

**Weights.** torchvision architectures with the ``IMAGENET1K_V1`` weights,
read from the torch hub cache under torchvision's own file names::

    <torch.hub.get_dir()>/checkpoints/alexnet-owt-7be5be79.pth
    <torch.hub.get_dir()>/checkpoints/vgg16-397923af.pth
    <torch.hub.get_dir()>/checkpoints/resnet50-0676ba61.pth

(``torch.hub.get_dir()`` is ``$TORCH_HOME/hub``, by default ``~/.cache/torch/hub``).
These are the files ``torchvision.models.resnet50(weights="IMAGENET1K_V1")``
downloads; copy them there from a machine with network. They are loaded with
``torch.load(weights_only=True)`` and ``load_state_dict``; nothing is downloaded.

**Images.** An ``ImageFolder`` at ``<data root>/imagenet/val`` (data root:
:func:`softlib.data.data_root`) with one folder per class named by its WordNet
id (``n01440764`` ... ``n15075141``); the 1000 folders sorted alphabetically are
the class indices 0..999 torchvision's weights use (the usual layout made by
``valprep.sh`` from the ILSVRC2012 validation tarball). Images are resized to
256, centre-cropped to 224 and kept in [0, 1]; the ImageNet normalisation is
inside the model wrapper (:class:`Normalized`), like every softlib model.

When a file is missing, :class:`softlib.validate.MissingDataError` says which
and where to put it; chapter 04 then runs its MNIST setting.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torchvision
from torch import nn

from .models import TrainedModel
from .runtime import display_path, get_device
from .validate import MissingDataError, SoftlibError, check_int

#: 004 appendix B: the three models, in the paper's order (display name -> torchvision architecture).
PAPER_MODELS: dict[str, str] = {"AlexNet": "alexnet", "VGG-16": "vgg16", "ResNet-50": "resnet50"}
#: torchvision's ImageNet normalisation (the weights' transforms).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
NUM_CLASSES = 1000
RESIZE, CROP = 256, 224


class Normalized(nn.Module):
    """Wrap a network so it takes [0, 1] images: ``net((x - mean) / std)``."""

    def __init__(self, net: nn.Module, mean: tuple[float, ...] = MEAN, std: tuple[float, ...] = STD) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``x`` (N, 3, H, W) in [0, 1]."""
        return self.net((x - self.mean) / self.std)


def hub_dir() -> Path:
    """Folder of cached weight files: ``torch.hub.get_dir()/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def weights_file(arch: str) -> str:
    """torchvision's file name for ``arch``'s ``IMAGENET1K_V1`` weights (e.g. ``resnet50-0676ba61.pth``)."""
    try:
        enum = torchvision.models.get_model_weights(arch)
    except (ValueError, KeyError) as exc:
        raise SoftlibError(f"unknown torchvision architecture {arch!r}; e.g. {sorted(PAPER_MODELS.values())}") from exc
    return enum["IMAGENET1K_V1"].url.rsplit("/", 1)[-1]


def weights_path(arch: str, folder: Path | None = None) -> Path:
    """Where ``arch``'s weights are expected."""
    return Path(folder or hub_dir()) / weights_file(arch)


def val_dir(root: Path | None = None) -> Path:
    """The ImageFolder of validation images: ``<data root>/imagenet/val``."""
    if root is None:
        from .data import data_root

        root = data_root()
    return Path(root) / "imagenet" / "val"


def missing(archs: tuple[str, ...] = tuple(PAPER_MODELS.values()), *, weights_dir: Path | None = None,
            root: Path | None = None) -> list[str]:
    """What the ImageNet setting lacks, one line each (empty list = everything is there)."""
    out = [f"weights {display_path(weights_path(a, weights_dir))}" for a in archs
           if not weights_path(a, weights_dir).is_file()]
    folder = val_dir(root)
    if not folder.is_dir() or not any(p.is_dir() for p in folder.iterdir()):
        out.append(f"validation images in {display_path(folder)} (one sub-folder per WordNet id, 1000 folders)")
    return out


def available(archs: tuple[str, ...] = tuple(PAPER_MODELS.values()), *, weights_dir: Path | None = None,
              root: Path | None = None) -> bool:
    """True when the weights of ``archs`` and the validation ImageFolder are all present."""
    return not missing(archs, weights_dir=weights_dir, root=root)


def _missing_error(what: list[str]) -> MissingDataError:
    return MissingDataError(
        "the ImageNet setting of chapter 04 needs: " + "; ".join(what) + ". "
        "Weights: on a machine with network run e.g. "
        "`python -c \"import torchvision; torchvision.models.resnet50(weights='IMAGENET1K_V1')\"` "
        f"and copy the .pth files into {hub_dir()} (torchvision's file names). Images: extract the "
        "ILSVRC2012 validation set into <data root>/imagenet/val/<wnid>/*.JPEG (e.g. with valprep.sh). "
        "Without them the chapter runs its MNIST setting."
    )


def load_model(arch: str, *, num_classes: int = NUM_CLASSES, weights_dir: Path | None = None,
               device: torch.device | None = None) -> TrainedModel:
    """A torchvision ``arch`` with its cached ``IMAGENET1K_V1`` weights, eval mode, [0, 1] inputs.

    A :class:`softlib.models.TrainedModel` like softlib's zoo models: its ``key`` is the
    architecture + weight file name, size and the SHA-256 of its first MiB.
    """
    num_classes = check_int("num_classes", num_classes, low=2)
    path = weights_path(arch, weights_dir)
    if not path.is_file():
        raise _missing_error([f"weights {path}"])
    net = torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    except (RuntimeError, OSError, EOFError) as exc:
        raise SoftlibError(f"could not load {path} into torchvision {arch} ({num_classes} classes): {exc}") from exc
    with open(path, "rb") as f:
        head = hashlib.sha256(f.read(1 << 20)).hexdigest()[:12]
    key = f"imagenet-{arch}-{path.name}-{path.stat().st_size}-{head}-{num_classes}"
    meta = {"arch": arch, "weights": str(path), "num_classes": num_classes}
    return TrainedModel(Normalized(net), key, meta).eval().to(device or get_device())


def paper_models(*, archs: dict[str, str] | None = None, num_classes: int = NUM_CLASSES,
                 weights_dir: Path | None = None, device: torch.device | None = None) -> dict[str, nn.Module]:
    """004's three models, ``{"AlexNet": ..., "VGG-16": ..., "ResNet-50": ...}`` (or ``archs``)."""
    archs = dict(archs or PAPER_MODELS)
    lacking = [f"weights {weights_path(a, weights_dir)}" for a in archs.values() if not weights_path(a, weights_dir).is_file()]
    if lacking:
        raise _missing_error(lacking)
    return {name: load_model(a, num_classes=num_classes, weights_dir=weights_dir, device=device) for name, a in archs.items()}


def val_dataset(*, root: Path | None = None, num_classes: int = NUM_CLASSES, resize: int = RESIZE,
                crop: int = CROP) -> torchvision.datasets.ImageFolder:
    """The validation ImageFolder (resize, centre crop, [0, 1] tensors); checks the class count."""
    folder = val_dir(root)
    if not folder.is_dir():
        raise _missing_error([f"validation images in {folder}"])
    from torchvision import transforms

    tf = transforms.Compose([transforms.Resize(resize), transforms.CenterCrop(crop), transforms.ToTensor()])
    try:
        ds = torchvision.datasets.ImageFolder(str(folder), transform=tf)
    except (FileNotFoundError, RuntimeError) as exc:
        raise _missing_error([f"validation images in {folder} ({exc})"]) from exc
    if len(ds.classes) != num_classes:
        raise SoftlibError(
            f"{folder} has {len(ds.classes)} class folders, expected {num_classes} (one per WordNet id, "
            "sorted = class index); a partial folder would shift every class index"
        )
    return ds


def class_names() -> list[str]:
    """Human-readable class names for indices 0..999 (torchvision's weight metadata)."""
    return list(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
