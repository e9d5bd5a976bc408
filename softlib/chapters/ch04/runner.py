"""Chapter 04's runs: both attacks from every source model, watching the others, cached (004 appendix B).

Step 2 of the experiment described in :mod:`softlib.chapters.ch04.settings`: each model in
turn is the source of the over-optimised and the multi-class attacks of
:mod:`softlib.chapters.ch04.overoptimize`; after every step the source's top class
activation, its softmax and the other models' predictions are recorded.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from softlib.cache import cached_arrays
from softlib.chapters.ch04 import overoptimize as oo
from softlib.chapters.ch04.settings import Setting, random_targets
from softlib.models import TrainedModel, predict
from softlib.runtime import get_device
from softlib.validate import SoftlibError, check_choice, check_float, check_int

if TYPE_CHECKING:
    pass


#: Bump when anything that changes the cached trajectories changes.
CODE_VERSION = "ch04-1"


ATTACKS = ("overoptimized", "multiclass")


ATTACK_TITLES = {"overoptimized": "over-optimised", "multiclass": "multi-class optimised"}


#: Units the step multiplier alpha is applied in (see :mod:`softlib.chapters.ch04.overoptimize`): S in x -> x + alpha grad / S^2.
PIXEL_UNITS = {"paper": oo.PAPER_PIXEL_SCALE, "unit": 1.0}


def pixel_scale(units: str | float) -> float:
    """``"paper"`` -> 255 (004's [0, 255] scale taken literally), ``"unit"`` -> 1, or a positive number."""
    if isinstance(units, str):
        return PIXEL_UNITS[check_choice("pixel_units", units, PIXEL_UNITS)]
    return check_float("pixel_units", units, low=1e-6)


def run_transfer(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    targets: np.ndarray,
    *,
    iters: int,
    attacks: tuple[str, ...] = ATTACKS,
    pixel_units: str | float = "paper",
    quantize: bool | str = True,
    eval_every: int = 1,
    batch_size: int = 256,
    device: torch.device | None = None,
    progress: bool = True,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Run both attacks from every source model, watching the others; flat dict of arrays.

    Keys: ``y`` (N,), ``targets`` (N,), and for each attack ``a`` and source ``s``:
    ``a/s/<record>`` (records of :func:`softlib.chapters.ch04.overoptimize.over_optimize`:
    ``top_act``, ``top_soft``, ``second_act``, ``target_act``, ``target_soft``,
    ``pred``, ``eval_steps``, ``targets``) and ``a/s/observer/<other>``.
    Returns ``(arrays, meta)`` with wall times.
    """
    if len(models) < 2:
        raise SoftlibError(f"transferability needs at least two models, got {list(models)}")
    for a in attacks:
        check_choice("attack", a, ATTACKS)
    scale = pixel_scale(pixel_units)
    device = device or get_device()
    y_t = torch.as_tensor(np.asarray(y), dtype=torch.long)
    c = torch.as_tensor(np.asarray(targets), dtype=torch.long)
    if bool((c == y_t).any()):
        raise SoftlibError("targets must differ from the labels (the attack is targeted to a wrong class)")
    out: dict[str, np.ndarray] = {"y": y_t.numpy(), "targets": c.numpy()}
    wall: dict[str, float] = {}
    for a in attacks:
        for src, model in models.items():
            observers = {k: m for k, m in models.items() if k != src}
            t0 = time.perf_counter()
            common = dict(iters=iters, pixel_scale=scale, quantize=quantize, observers=observers,
                          eval_every=eval_every, batch_size=batch_size, device=device, progress=progress)
            if a == "overoptimized":
                rec = oo.over_optimize(model, x, c, **common)
            else:
                z0 = torch.from_numpy(predict(model, x, batch_size=batch_size, device=device, features=False)["logits"])
                d = oo.second_target(z0, c, y_t)
                rec = oo.multiclass_optimize(model, x, c, d, **common)
            wall[f"{a}/{src}"] = time.perf_counter() - t0
            for k, v in rec.items():
                out[f"{a}/{src}/{k}"] = v
    return out, {"wall_s": wall, "device": str(device)}


def transfer_experiment(
    setting: Setting,
    *,
    iters: int,
    seed: int = 0,
    pixel_units: str | float = "paper",
    quantize: bool | str = True,
    eval_every: int = 1,
    attacks: tuple[str, ...] = ATTACKS,
    batch_size: int = 256,
    progress: bool = True,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """:func:`run_transfer` on ``setting`` with seeded random targets, cached.

    Cache key: the models' keys (:class:`softlib.models.TrainedModel`), the image indices, targets seed,
    attack parameters, iterations and :data:`CODE_VERSION`.
    """
    iters = check_int("iterations", iters, low=1)
    targets = random_targets(setting.y, setting.num_classes, seed)
    spec = {
        "code_version": CODE_VERSION,
        "setting": setting.name,
        "models": {k: m.key if isinstance(m, TrainedModel) else type(m).__name__ for k, m in setting.models.items()},
        "index": setting.index.tolist(),
        "n": len(setting.x),
        "iters": iters,
        "seed": seed,
        "pixel_scale": pixel_scale(pixel_units),
        "quantize": oo.quantize_mode(quantize),
        "alpha": oo.ALPHA_OVER,
        "alpha_high": oo.ALPHA_HIGH,
        "alpha_low": oo.ALPHA_LOW,
        "eval_every": eval_every,
        "attacks": list(attacks),
    }

    def build() -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, meta = run_transfer(setting.models, setting.x, setting.y, targets, iters=iters, attacks=attacks,
                                    pixel_units=pixel_units, quantize=quantize, eval_every=eval_every,
                                    batch_size=batch_size, progress=progress)
        arrays["index"] = setting.index
        return arrays, meta

    return cached_arrays("transfer", spec, build)
