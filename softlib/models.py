"""The papers' networks, all taking pixels in [0, 1] and returning logits.

- ``cnn``: the custom network of table 1 in 000 (and table 1 of 002), layer for
  layer; the flatten is 6x6x128 = 4608 wide for 28x28 input.
- ``wrn``: Wide ResNet WRN-d-k (Zagoruyko & Komodakis 2016; 000 uses WRN-28-8).
- ``resnet``: the CIFAR ResNet-(6n+2) of He et al.; 003 uses ResNet-32 with
  leaky ReLU 0.1 and pixels in [-0.5, 0.5] (003 table 1).
- ``mlp``: a small fully connected net, a third architecture family for chapter 04.

Every model has ``forward(x) -> logits``, ``features(x) -> last hidden layer`` and
``forward_with_features(x) -> (hidden, logits)``: the detectors need both. Any
input normalisation happens inside the model, so attacks work in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .runtime import batched
from .validate import SoftlibError, check_alloc, check_choice, check_float, check_int

ARCHS = ("cnn", "wrn", "resnet", "mlp")
#: Bump when a change here changes what a given seed trains into.
CODE_VERSION = "models-1"


class SoftlibModel(nn.Module):
    """Base class: subclasses implement :meth:`forward_with_features`."""

    num_classes: int

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_features(x)[1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer (the input of the final dense layer)."""
        return self.forward_with_features(x)[0]


class TrainedModel(nn.Module):
    """A trained network with its identity: cache key, sidecar and training loss, as typed fields.

    What :func:`softlib.zoo.get_model` and :func:`softlib.imagenet.load_model` return. It *is* a
    module (``forward`` is the network's: raw logits ``Z``), so attacks, detectors and
    ``model(x)`` take it as they are; the identity travels with it instead of being patched onto
    the network. ``key`` is the content hash the caches key on (:func:`softlib.zoo.model_spec`),
    ``meta`` the cache sidecar (test accuracy, training loss per epoch, versions), ``loss`` the
    training loss, whose prediction rule :func:`prediction_rule` applies (RCE: ``argmax(-Z)``).
    """

    def __init__(self, net: nn.Module, key: str, meta: Mapping[str, Any] | None = None, loss: str = "ce") -> None:
        from .losses import LOSSES

        super().__init__()
        if not isinstance(net, nn.Module):
            raise SoftlibError(f"net must be a torch.nn.Module, got {type(net).__name__}")
        if not isinstance(key, str) or not key:
            raise SoftlibError(f"key must be a non-empty string, got {key!r}")
        self.net = net
        self.key: str = key
        self.meta: dict[str, Any] = dict(meta or {})
        self.loss: str = check_choice("loss", loss, LOSSES)

    @property
    def cache_key(self) -> str:
        """``key``, under the name the set caches read (:func:`softlib.sets.get_set`)."""
        return self.key

    @property
    def num_classes(self) -> int | None:
        return getattr(self.net, "num_classes", None)

    @property
    def image_size(self) -> int | None:
        return getattr(self.net, "image_size", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not hasattr(self.net, "forward_with_features"):
            raise SoftlibError(f"{type(self.net).__name__} does not expose its last hidden layer")
        return self.net.forward_with_features(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_features(x)[0]


def model_loss(model: nn.Module, loss: str | None = None) -> str:
    """The training loss of ``model``: ``loss`` if given, else a :class:`TrainedModel`'s, else ``"ce"``."""
    from .losses import LOSSES

    if loss is None:
        loss = model.loss if isinstance(model, TrainedModel) else "ce"
    return check_choice("loss", loss, LOSSES)


def prediction_rule(model: nn.Module, loss: str | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """Logits -> labels with the rule of ``model``'s loss (:func:`model_loss`): argmax, RCE's argmax(-Z)."""
    from .losses import predict_labels

    loss = model_loss(model, loss)
    if loss == "ce":
        return lambda logits: logits.argmax(dim=1)
    return lambda logits: predict_labels(loss, logits)


def model_device(model: nn.Module) -> torch.device:
    """Where ``model``'s weights are (CPU for a model without parameters)."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _glorot(module: nn.Module) -> None:
    """Keras' defaults (000 and 002 trained in Keras): Glorot-uniform weights, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class CustomCNN(SoftlibModel):
    """Table 1 of 000 (= table 1 of 002). Keras BatchNorm: momentum 0.99, eps 1e-3."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, image_size: int = 28) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3), nn.ReLU(),  # 26x26x32
            nn.Conv2d(32, 32, 3), nn.ReLU(),  # 24x24x32
            nn.MaxPool2d(2), nn.Dropout(0.20),  # 12x12x32
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),  # 12x12x64
            nn.MaxPool2d(2), nn.Dropout(0.25),  # 6x6x64
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.Dropout(0.25),  # 6x6x128
            nn.Flatten(),  # 4608 for 28x28 input
        )
        side = (image_size - 4) // 2 // 2
        self.flatten_dim = 128 * side * side
        self.hidden = nn.Sequential(
            nn.Linear(self.flatten_dim, 128), nn.ReLU(),
            nn.BatchNorm1d(128, momentum=0.01, eps=1e-3),
        )
        self.drop = nn.Dropout(0.25)
        self.head = nn.Linear(128, num_classes)
        _glorot(self)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.hidden(self.body(x))
        return h, self.head(self.drop(h))


class _Normalize(nn.Module):
    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class _WideBlock(nn.Module):
    """Pre-activation wide basic block (BN-ReLU-conv x2)."""

    def __init__(self, cin: int, cout: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.dropout = dropout
        self.short = None if cin == cout and stride == 1 else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = F.relu(self.bn1(x))
        y = self.conv1(o)
        y = F.relu(self.bn2(y))
        if self.dropout:
            y = F.dropout(y, self.dropout, self.training)
        y = self.conv2(y)
        return y + (x if self.short is None else self.short(o))


class WideResNet(SoftlibModel):
    """WRN-depth-width (Zagoruyko & Komodakis 2016); 000 section 4.3 uses WRN-28-8."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, image_size: int = 28, *,
                 depth: int = 28, width: int = 8, dropout: float = 0.0,
                 mean: float = 0.5, std: float = 0.5) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise SoftlibError(f"WRN depth must be 6n+4 (10, 16, 22, 28, ...), got {depth}")
        n = (depth - 4) // 6
        self.num_classes = num_classes
        widths = [16, 16 * width, 32 * width, 64 * width]
        self.norm = _Normalize(mean, std)
        self.stem = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        layers: list[nn.Module] = []
        cin = widths[0]
        for stage, stride in zip(widths[1:], (1, 2, 2)):
            for i in range(n):
                layers.append(_WideBlock(cin, stage, stride if i == 0 else 1, dropout))
                cin = stage
        self.blocks = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(cin)
        self.head = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = F.relu(self.bn(self.blocks(self.stem(self.norm(x)))))
        h = F.adaptive_avg_pool2d(y, 1).flatten(1)
        return h, self.head(h)


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, slope: float) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.slope = slope
        self.short = (nn.Identity() if cin == cout and stride == 1 else
                      nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.bn1(self.conv1(x)), self.slope)
        y = self.bn2(self.conv2(y))
        return F.leaky_relu(y + self.short(x), self.slope)


class CifarResNet(SoftlibModel):
    """ResNet-(6n+2) for 32x32 (or 28x28) inputs; 003 table 1: ResNet-32, leaky ReLU 0.1,
    pixels shifted to [-0.5, 0.5] inside the model. Projection (1x1 conv) shortcuts."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, image_size: int = 28, *,
                 depth: int = 32, leaky: float = 0.1) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise SoftlibError(f"ResNet depth must be 6n+2 (8, 14, 20, 32, ...), got {depth}")
        n = (depth - 2) // 6
        self.num_classes = num_classes
        self.slope = leaky
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16))
        layers: list[nn.Module] = []
        cin = 16
        for stage, stride in zip((16, 32, 64), (1, 2, 2)):
            for i in range(n):
                layers.append(_BasicBlock(cin, stage, stride if i == 0 else 1, leaky))
                cin = stage
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="leaky_relu", a=leaky)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = F.leaky_relu(self.stem(x - 0.5), self.slope)  # 003 table 1: pixels in [-0.5, 0.5]
        h = F.adaptive_avg_pool2d(self.blocks(y), 1).flatten(1)
        return h, self.head(h)


class MLP(SoftlibModel):
    """784-512-256-C ReLU network: a family unlike the convolutional ones (chapter 04)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, image_size: int = 28, *,
                 hidden: tuple[int, ...] = (512, 256)) -> None:
        super().__init__()
        self.num_classes = num_classes
        dims = [in_channels * image_size * image_size, *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(dims[-1], num_classes)
        _glorot(self)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return h, self.head(h)


_BUILDERS = {"cnn": CustomCNN, "wrn": WideResNet, "resnet": CifarResNet, "mlp": MLP}
_OPTIONS = {"cnn": set(), "wrn": {"depth", "width", "dropout", "mean", "std"},
            "resnet": {"depth", "leaky"}, "mlp": {"hidden"}}


def build_model(arch: str, *, num_classes: int = 10, in_channels: int = 1, image_size: int = 28,
                **opts: object) -> SoftlibModel:
    """A fresh (untrained) model. ``opts`` are the architecture's options (e.g. ``depth``)."""
    check_choice("architecture", arch, ARCHS)
    check_int("num_classes", num_classes, low=2)
    check_int("in_channels", in_channels, low=1)
    check_int("image_size", image_size, low=8 if arch != "cnn" else 12)
    unknown = set(opts) - _OPTIONS[arch]
    if unknown:
        raise SoftlibError(f"unknown option(s) {sorted(unknown)} for {arch!r}; allowed: {sorted(_OPTIONS[arch]) or 'none'}")
    opts = _check_options(arch, opts)
    check_alloc(f"the weights of {arch} {opts}", 4 * _param_estimate(arch, num_classes, in_channels, image_size, opts))
    return _BUILDERS[arch](num_classes, in_channels, image_size, **opts)  # type: ignore[arg-type]


def _check_options(arch: str, opts: dict[str, object]) -> dict[str, object]:
    """Type and range of each architecture option (a wrong type fails here, not inside torch)."""
    out = dict(opts)
    if "depth" in out:
        out["depth"] = check_int(f"{arch} option depth", out["depth"], low=10 if arch == "wrn" else 8)
    if "width" in out:
        out["width"] = check_int("wrn option width", out["width"], low=1)
    if "dropout" in out:
        out["dropout"] = check_float("wrn option dropout", out["dropout"], low=0.0, high=0.99)
    if "mean" in out:
        out["mean"] = check_float("wrn option mean", out["mean"])
    if "std" in out:
        out["std"] = check_float("wrn option std", out["std"], low=1e-6)
    if "leaky" in out:
        out["leaky"] = check_float("resnet option leaky", out["leaky"], low=0.0, high=1.0)
    if "hidden" in out:
        h = out["hidden"]
        if isinstance(h, (str, bytes)) or not isinstance(h, (list, tuple)) or not h:
            raise SoftlibError(f"mlp option hidden must be a non-empty list of layer widths, got {h!r}")
        out["hidden"] = tuple(check_int("mlp option hidden entry", v, low=1) for v in h)
    return out


def _param_estimate(arch: str, num_classes: int, in_channels: int, image_size: int, opts: dict) -> float:
    """Roughly how many weights ``build_model`` would create (to refuse absurd sizes before allocating)."""
    w = int(opts.get("width", 1)) if arch == "wrn" else 1
    return _body_estimate(arch, num_classes, in_channels, image_size, opts) + 9.0 * 64 * w * in_channels \
        + 128.0 * w * num_classes


def _body_estimate(arch: str, num_classes: int, in_channels: int, image_size: int, opts: dict) -> float:
    if arch == "wrn":
        n, w = (int(opts.get("depth", 28)) - 4) // 6, int(opts.get("width", 8))
        return 18.0 * max(n, 1) * w * w * (16**2 + 32**2 + 64**2) + 64.0 * w * num_classes
    if arch == "resnet":
        return 18.0 * max((int(opts.get("depth", 32)) - 2) // 6, 1) * (16**2 + 32**2 + 64**2)
    if arch == "mlp":
        dims = [in_channels * image_size * image_size, *opts.get("hidden", (512, 256)), num_classes]
        return float(sum(a * b for a, b in zip(dims[:-1], dims[1:])))
    side = max((image_size - 4) // 4, 1)
    return 128.0 * side * side * 128 + 200_000.0 * in_channels


def predict(model: nn.Module, x: torch.Tensor, *, batch_size: int = 512,
            device: torch.device | str | None = None, features: bool = True) -> dict[str, np.ndarray]:
    """Logits (and, with ``features``, the last hidden layer) of ``x`` as float32 numpy, batched, in
    inference mode: the one batched-inference loop of softlib.

    ``device``: where to run (default: where the model is; the model is moved there). Without
    ``features`` only ``model(x)`` is called, so any module works (e.g. torchvision's networks);
    ``hidden`` is then an empty (N, 0) array.
    """
    from .runtime import get_device
    from .validate import check_model_input

    check_model_input("x", x, model)
    batch_size = check_int("batch_size", batch_size, low=1)
    dev = get_device(device) if device is not None else model_device(model)
    model.to(dev)
    was_training = model.training
    model.eval()
    hidden, logits = [], []
    try:
        with torch.inference_mode():
            for sl in batched(len(x), batch_size):
                xb = x[sl].to(dev, non_blocking=True)
                if features:
                    h, z = model.forward_with_features(xb)
                    hidden.append(h.float().cpu())
                else:
                    z = model(xb)
                logits.append(z.float().cpu())
    finally:
        model.train(was_training)
    if not logits:
        return {"logits": np.zeros((0, getattr(model, "num_classes", None) or 0), np.float32),
                "hidden": np.zeros((0, 0), np.float32)}
    z = torch.cat(logits).numpy()
    return {"logits": z, "hidden": torch.cat(hidden).numpy() if hidden else np.zeros((len(z), 0), np.float32)}
