"""Training loops, as the papers train.

Recipes (one per architecture, :data:`RECIPES`):

- ``cnn`` and ``mlp`` (000 section 3.1, 002 section 2.1): RMSprop, batch 64, data
  augmentation "slight rotations, zooms and shifts" (we use +-10 degrees, +-10 %
  zoom, +-10 % shifts: the Keras ``ImageDataGenerator`` values such papers use;
  000 gives no numbers). Keras' RMSprop defaults: lr 1e-3, rho 0.9, eps 1e-7.
- ``wrn``: SGD with Nesterov momentum 0.9, lr 0.1 cosine, weight decay 5e-4,
  batch 128 (Zagoruyko & Komodakis 2016; 000 does not give its recipe).
- ``resnet`` (003 table 1): SGD momentum 0.9, weight decay 5e-4, lr 0.1 cosine,
  batch 256, random crops (and horizontal flips on CIFAR-10 only: flipped digits
  are other digits).

The loss comes from :mod:`softlib.losses` (chapter 05), CE by default.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .runtime import batched, generator
from .validate import check_choice, check_int

#: Bump when a change here changes what a given seed trains into.
CODE_VERSION = "train-1"


@dataclass(frozen=True)
class Recipe:
    """Optimiser and augmentation of one architecture."""

    optimizer: str  # "rmsprop" | "sgd"
    lr: float
    batch_size: int
    weight_decay: float = 0.0
    momentum: float = 0.0
    nesterov: bool = False
    cosine: bool = False
    augment: str = "affine"  # "affine" | "crop" | "crop_flip" | "none"


RECIPES: dict[str, Recipe] = {
    "cnn": Recipe("rmsprop", 1e-3, 64, augment="affine"),
    "mlp": Recipe("rmsprop", 1e-3, 64, augment="affine"),
    "wrn": Recipe("sgd", 0.1, 128, weight_decay=5e-4, momentum=0.9, nesterov=True, cosine=True, augment="crop"),
    "resnet": Recipe("sgd", 0.1, 256, weight_decay=5e-4, momentum=0.9, cosine=True, augment="crop"),
}


def recipe_for(arch: str, dataset: str) -> Recipe:
    """The recipe of ``arch``; ResNet/WRN also flip on CIFAR-10 (003 table 1)."""
    r = RECIPES[check_choice("architecture", arch, RECIPES)]
    if dataset == "cifar10" and r.augment == "crop":
        r = Recipe(**{**asdict(r), "augment": "crop_flip"})
    return r


def augment_batch(x: torch.Tensor, kind: str, g: torch.Generator) -> torch.Tensor:
    """Random augmentation of a whole batch at once (one affine grid, no per-image loop)."""
    n = x.shape[0]
    if kind == "none":
        return x
    if kind == "affine":
        ang = (torch.rand(n, generator=g) * 2 - 1) * math.radians(10)
        zoom = 1 + (torch.rand(n, generator=g) * 2 - 1) * 0.10
        shift = (torch.rand(n, 2, generator=g) * 2 - 1) * 0.10 * 2  # grid units span 2
        cos, sin = torch.cos(ang) / zoom, torch.sin(ang) / zoom
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False).clamp_(0, 1)
    # random crop with 4 px (CIFAR) / 2 px (28x28) zero padding, done as integer shifts
    pad = 4 if x.shape[-1] >= 32 else 2
    xp = F.pad(x, (pad, pad, pad, pad))
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    h, w = x.shape[-2:]
    rows = (dy[:, None] + torch.arange(h)[None]).to(x.device)
    cols = (dx[:, None] + torch.arange(w)[None]).to(x.device)
    out = xp[torch.arange(n, device=x.device)[:, None, None, None], torch.arange(x.shape[1], device=x.device)[None, :, None, None],
             rows[:, None, :, None], cols[:, None, None, :]]
    if kind == "crop_flip":
        flip = (torch.rand(n, generator=g) < 0.5).to(x.device)
        out[flip] = out[flip].flip(-1)
    return out


def _optimizer(model: nn.Module, r: Recipe) -> torch.optim.Optimizer:
    if r.optimizer == "rmsprop":
        return torch.optim.RMSprop(model.parameters(), lr=r.lr, alpha=0.9, eps=1e-7, weight_decay=r.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=r.lr, momentum=r.momentum, nesterov=r.nesterov,
                           weight_decay=r.weight_decay)


def _rng_state(g: torch.Generator) -> dict[str, Any]:
    state = {"data": g.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    return state


def _set_rng_state(g: torch.Generator, state: dict[str, Any]) -> None:
    g.set_state(state["data"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


def save_checkpoint(path: Path, *, epoch: int, model: nn.Module, opt: torch.optim.Optimizer,
                    sched: Any, g: torch.Generator, history: dict[str, Any]) -> None:
    """Atomically write everything a resumed run needs to continue bit for bit after ``epoch``."""
    from .cache import atomic_write

    state = {"epoch": epoch, "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
             "opt": opt.state_dict(), "sched": sched.state_dict() if sched is not None else None,
             "rng": _rng_state(g), "loss": list(history["loss"])}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """A checkpoint written by :func:`save_checkpoint` (``weights_only=True``: no code runs), or None.

    An unreadable checkpoint is removed with a warning: training then starts from scratch.
    """
    import warnings

    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or not {"epoch", "model", "opt", "rng", "loss"} <= set(state):
            raise ValueError("missing fields")
        return state
    except Exception as exc:  # a truncated or foreign file: never trust it
        warnings.warn(f"checkpoint {path} is unreadable ({exc}); it is removed and training starts over", stacklevel=2)
        path.unlink(missing_ok=True)
        return None


def train_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, recipe: Recipe,
                seed: int, loss: str = "ce", loss_params: dict[str, Any] | None = None,
                device: torch.device | None = None, desc: str = "training",
                checkpoint: Path | None = None) -> dict[str, Any]:
    """Train ``model`` in place on ``(x, y)``; returns a small history (loss per epoch, wall time).

    Data order, augmentation and dropout are seeded by ``seed``. With ``checkpoint`` (a file
    path) the model, optimiser, scheduler and every random state are saved atomically after each
    epoch, and a run that finds the file resumes after its last epoch: an interrupted and resumed
    run gives the same weights as an uninterrupted one (tested). The caller removes the file
    once the result is safe.
    """
    from .losses import get_loss
    from .models import model_device

    check_int("epochs", epochs, low=1)
    loss_fn = get_loss(loss, **(loss_params or {}))
    device = device or model_device(model)
    model.to(device).train()
    opt = _optimizer(model, recipe)
    steps_per_epoch = math.ceil(len(x) / recipe.batch_size)
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
             if recipe.cosine else None)
    g = generator(seed)
    torch.manual_seed(seed)
    history: dict[str, Any] = {"loss": []}
    start = 0
    state = load_checkpoint(checkpoint) if checkpoint is not None else None
    if state is not None and state["epoch"] <= epochs:  # == epochs: trained, but not yet published
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        if sched is not None and state.get("sched") is not None:
            sched.load_state_dict(state["sched"])
        _set_rng_state(g, state["rng"])
        history["loss"] = list(state["loss"])
        start = int(state["epoch"])
        model.train()
    t0 = time.perf_counter()
    bar = tqdm(total=epochs * steps_per_epoch, initial=start * steps_per_epoch, desc=desc, unit="batch",
               mininterval=2.0, leave=False)
    # the data on the device once, and the loss read back once per epoch: on a GPU a per-step copy and
    # read-back make every step wait for the last (benchmarks/bench_gpu_training.py: 1.12x on ResNet-32,
    # H200). Same arithmetic as before: the sum is float64, in the same order.
    xd, yd = x.to(device), y.to(device)
    for epoch in range(start, epochs):
        order = torch.randperm(len(x), generator=g)
        total = torch.zeros((), dtype=torch.float64, device=device)
        count = 0
        for sl in batched(len(x), recipe.batch_size):
            idx = order[sl]
            xb = augment_batch(xd[idx], recipe.augment, g)
            yb = yd[idx]
            opt.zero_grad(set_to_none=True)
            loss_val = loss_fn(model(xb), yb)
            loss_val.backward()
            opt.step()
            if sched is not None:
                sched.step()
            total += loss_val.detach().double() * len(idx)
            count += len(idx)
            bar.update(1)
        epoch_loss = float(total) / max(count, 1)
        if not math.isfinite(epoch_loss):  # checked per epoch: nothing of a diverged epoch is checkpointed
            raise FloatingPointError(f"{desc}: the loss of epoch {epoch + 1} is {epoch_loss} (diverged); "
                                     f"lower the learning rate ({recipe.lr:g}) or check the data")
        history["loss"].append(epoch_loss)
        bar.set_postfix(loss=f"{history['loss'][-1]:.4f}")
        if checkpoint is not None:  # after the last epoch too: a failed publish must not lose the training
            save_checkpoint(checkpoint, epoch=epoch + 1, model=model, opt=opt, sched=sched, g=g, history=history)
            _test_stop_hook(epoch + 1)
    bar.close()
    model.eval()
    history["wall_s"] = time.perf_counter() - t0
    return history


def _test_stop_hook(epoch: int) -> None:
    """Tests only: ``SOFTLIB_TEST_STOP_AFTER_EPOCH=k`` interrupts training right after epoch k's checkpoint.

    A deterministic interruption point (no timing race): the process raises KeyboardInterrupt,
    exactly what a Ctrl-C between two epochs would do.
    """
    import os

    stop = os.environ.get("SOFTLIB_TEST_STOP_AFTER_EPOCH")
    if stop is not None and stop.strip().isdigit() and int(stop) == epoch:
        raise KeyboardInterrupt(f"SOFTLIB_TEST_STOP_AFTER_EPOCH={stop}")


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, loss: str = "ce",
             batch_size: int = 1024) -> float:
    """Share of ``x`` classified as ``y``, with the loss' own prediction rule (RCE differs)."""
    from .losses import predict_labels
    from .models import predict

    logits = torch.from_numpy(predict(model, x, batch_size=batch_size)["logits"])
    return float((predict_labels(loss, logits) == y).float().mean())
