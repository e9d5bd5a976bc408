"""Chapter 04: what the logits and the softmax say about transferability (paper 004, appendix B).

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

**Transfer.** "Transfers" means the other model is fooled the way the attack
intends: criterion ``"target"`` (default) = the other model predicts the target
class :math:`c` (over-optimised) or one of the two optimised classes :math:`c, d`
(multi-class: 001 section 2, the example is "almost surely being predicted as one
of those two classes"); criterion ``"untargeted"`` = the other model's prediction
differs from the true label. The raw predictions are stored, so both are available.

**Transferred by step i.** An example counts as transferred at step i if it
transferred at any step up to i (004 observes that once transferred an example
"more often than not" keeps transferring; the cumulative definition makes the x
axis monotone, from 0% to 100% of the retained examples).

**Confidence interval.** Student-t: :math:`\\bar v \\pm t_{0.975, n-1} s / \\sqrt n`
(``scipy.stats.t``), ``s`` the sample standard deviation (ddof=1); 004 says "95%
confidence interval" without more.

**Rank correlations** (:func:`rank_correlations`, ``scipy.stats.spearmanr``), two
readings of "the softmax says nothing about transferability, activations do":

- *curve*: across the steps of an aggregated curve, Spearman's rho of the
  transfer percentage against the mean top activation and against the mean
  softmax (what the figures show);
- *examples*: at the step where the transfer percentage is closest to 50%,
  across all examples (dropped ones included), Spearman's rho of the top
  activation and of the softmax against the 0/1 "has transferred" flag (does a
  larger activation / softmax at the same step go with transfer?).

A constant series (e.g. a softmax that is 1.0 everywhere) has no rank
correlation: rho and p are NaN and the table says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy import stats
from torch import nn
from tqdm.auto import tqdm

from softlib.cache import cached_arrays
from softlib.chapters.ch04 import overoptimize as oo
from softlib.profiles import Profile, get_profile
from softlib.runtime import get_device
from softlib.validate import SoftlibError, check_choice, check_float, check_int

if TYPE_CHECKING:
    import pandas as pd

#: Bump when anything that changes the cached trajectories changes.
CODE_VERSION = "ch04-1"

SETTINGS = ("auto", "imagenet", "mnist")
ATTACKS = ("overoptimized", "multiclass")
ATTACK_TITLES = {"overoptimized": "over-optimised", "multiclass": "multi-class optimised"}
CRITERIA = ("target", "untargeted")
CLEANING = ("last", "ever")
#: The MNIST setting: display name -> (zoo architecture, needs the profile's WRN depth/width).
MNIST_MODELS = {"CNN": "cnn", "WRN": "wrn", "MLP": "mlp"}
#: The model of figures 1 and 2 per setting (004: a pretrained ResNet-50).
FIGURE_MODEL = {"imagenet": "ResNet-50", "mnist": "CNN"}
#: Units the step multiplier alpha is applied in (see :mod:`softlib.chapters.ch04.overoptimize`): S in x -> x + alpha grad / S^2.
PIXEL_UNITS = {"paper": oo.PAPER_PIXEL_SCALE, "unit": 1.0}


# ----------------------------------------------------------------------------- setting


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


def mnist_models(profile: Profile | str, seed: int = 0) -> dict[str, nn.Module]:
    """The MNIST setting's three families: softlib's CNN, WRN (profile depth/width) and MLP."""
    from softlib import zoo

    prof = get_profile(profile) if isinstance(profile, str) else profile
    return {
        "CNN": zoo.get_model("cnn", "mnist", prof, seed),
        "WRN": zoo.get_model("wrn", "mnist", prof, seed, depth=prof.wrn_depth, width=prof.wrn_width),
        "MLP": zoo.get_model("mlp", "mnist", prof, seed),
    }


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
                right += (m.eval()(xd).argmax(dim=1) == yd).long()
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
                       note="004's setting: AlexNet, VGG-16, ResNet-50 on ImageNet validation images")
    from softlib import data

    models = mnist_models(prof, seed)
    xt, yt = data.load_split("mnist", train=False)
    strict = prof.name != "smoke"  # smoke models are barely trained: fill up with the best-classified images
    x, y, idx = select_correct(models, torch.utils.data.TensorDataset(xt, yt), n, seed=seed, progress=progress,
                               strict=strict, max_scan=None if strict else max(20 * n, 1000))
    accs = {k: m.meta.get("test_acc") for k, m in models.items() if hasattr(m, "meta")}
    note = "stand-in for 004's ImageNet models: softlib's CNN, WRN and MLP trained on MNIST"
    n_all = _count_all_correct(models, x, y)
    if n_all < len(x):
        note += (f" (smoke profile: only {n_all} of the {len(x)} images are correctly classified by all three;"
                 " the others by fewer)")
    return Setting("mnist", models, x, y, idx, 10, meta={"test_acc": accs, "n_all_correct": n_all}, note=note)


def _count_all_correct(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor) -> int:
    device = get_device()
    ok = torch.ones(len(x), dtype=torch.bool)
    with torch.inference_mode():
        for m in models.values():
            ok &= (m.eval()(x.to(device)).argmax(dim=1).cpu() == y)
    return int(ok.sum())


def random_targets(y: torch.Tensor | np.ndarray, num_classes: int, seed: int) -> np.ndarray:
    """A random wrong class per image, seeded: ``(y + U{1..C-1}) mod C``."""
    y = np.asarray(y, dtype=np.int64)
    num_classes = check_int("num_classes", num_classes, low=2)
    rng = np.random.default_rng(seed)
    return (y + rng.integers(1, num_classes, size=len(y))) % num_classes


def pixel_scale(units: str | float) -> float:
    """``"paper"`` -> 255 (004's [0, 255] scale taken literally), ``"unit"`` -> 1, or a positive number."""
    if isinstance(units, str):
        return PIXEL_UNITS[check_choice("pixel_units", units, PIXEL_UNITS)]
    return check_float("pixel_units", units, low=1e-6)


# ----------------------------------------------------------------------------- running


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
                with torch.inference_mode():
                    z0 = torch.cat([model.eval().to(device)(x[s].to(device)).float().cpu()
                                    for s in _slices(len(x), batch_size)])
                d = oo.second_target(z0, c, y_t)
                rec = oo.multiclass_optimize(model, x, c, d, **common)
            wall[f"{a}/{src}"] = time.perf_counter() - t0
            for k, v in rec.items():
                out[f"{a}/{src}/{k}"] = v
    return out, {"wall_s": wall, "device": str(device)}


def _slices(n: int, b: int) -> list[slice]:
    return [slice(i, min(i + b, n)) for i in range(0, n, b)]


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

    Cache key: the models' ``cache_key`` s, the image indices, targets seed,
    attack parameters, iterations and :data:`CODE_VERSION`.
    """
    iters = check_int("iterations", iters, low=1)
    targets = random_targets(setting.y, setting.num_classes, seed)
    spec = {
        "code_version": CODE_VERSION,
        "setting": setting.name,
        "models": {k: getattr(m, "cache_key", type(m).__name__) for k, m in setting.models.items()},
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


# ----------------------------------------------------------------------------- cleaning and aggregation (pure numpy)


def transfer_flags(observer_pred: np.ndarray, y: np.ndarray, targets: np.ndarray, criterion: str = "target") -> np.ndarray:
    """Did each example transfer at each evaluated step? bool (N, E).

    ``observer_pred`` (N, E): the other model's predictions; ``targets`` (N,) or
    (N, k): the attack's target classes. ``"target"``: prediction is one of the
    targets; ``"untargeted"``: prediction differs from ``y``.
    """
    check_choice("criterion", criterion, CRITERIA)
    pred = np.asarray(observer_pred)
    y = np.asarray(y)
    if criterion == "untargeted":
        return pred != y[:, None]
    t = np.asarray(targets)
    t = t[:, None] if t.ndim == 1 else t
    return (pred[:, :, None] == t[:, None, :]).any(axis=2)


def cumulative(flags: np.ndarray) -> np.ndarray:
    """Transferred *by* each step: ``logical_or`` accumulated along the steps (axis 1)."""
    return np.logical_or.accumulate(np.asarray(flags, dtype=bool), axis=1)


def clean(flags: np.ndarray, rule: str = "last") -> np.ndarray:
    """Which examples to keep (N,) bool: 004's data cleaning.

    ``"last"`` (004): transferred at the last step; ``"ever"``: at any step.
    """
    check_choice("cleaning rule", rule, CLEANING)
    flags = np.asarray(flags, dtype=bool)
    return flags[:, -1] if rule == "last" else flags.any(axis=1)


def mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column means of ``values`` (n, S) and their Student-t ``level`` confidence interval.

    Half-width :math:`t_{(1+level)/2,\\,n-1}\\, s / \\sqrt{n}` with ``s`` the sample
    standard deviation (ddof=1). With n < 2 the interval is NaN.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    level = check_float("level", level, low=0.0, high=1.0)
    n = v.shape[0]
    if n == 0:
        nan = np.full(v.shape[1], np.nan)
        return nan, nan, nan
    mean = v.mean(axis=0)
    if n < 2:
        nan = np.full(v.shape[1], np.nan)
        return mean, nan, nan
    half = stats.t.ppf(0.5 + level / 2, n - 1) * v.std(axis=0, ddof=1) / np.sqrt(n)
    return mean, mean - half, mean + half


def aggregate(values: dict[str, np.ndarray], flags: np.ndarray, keep: np.ndarray | None = None,
              level: float = 0.95) -> dict[str, np.ndarray]:
    """004's data aggregation for one (source, other) pair.

    Args:
        values: name -> (N, S) per-example series at the evaluated steps (e.g.
            ``{"act": top activation, "soft": top softmax}``).
        flags: (N, S) bool, transferred at each step (not yet cumulative).
        keep: (N,) bool, the retained examples (default: :func:`clean` ``"last"``).

    Returns:
        ``pct`` (S,): percent of retained examples transferred by each step; for each
        value name ``<name>_mean``, ``<name>_lo``, ``<name>_hi`` (S,); ``n`` (retained count).
    """
    flags = np.asarray(flags, dtype=bool)
    keep = clean(flags) if keep is None else np.asarray(keep, dtype=bool)
    if keep.shape != (flags.shape[0],):
        raise SoftlibError(f"keep must have shape ({flags.shape[0]},), got {keep.shape}")
    kept = cumulative(flags[keep])
    out: dict[str, np.ndarray] = {
        "pct": 100.0 * kept.mean(axis=0) if len(kept) else np.full(flags.shape[1], np.nan),
        "n": np.array(int(keep.sum())),
    }
    for name, v in values.items():
        v = np.asarray(v)
        if v.shape != flags.shape:
            raise SoftlibError(f"values[{name!r}] has shape {v.shape}, flags {flags.shape}")
        out[f"{name}_mean"], out[f"{name}_lo"], out[f"{name}_hi"] = mean_ci(v[keep], level)
    return out


def pair_data(arrays: dict[str, np.ndarray], attack: str, src: str, dst: str,
              criterion: str = "target") -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Per-example series at the evaluated steps for ``src`` -> ``dst``: (values, flags, steps)."""
    check_choice("attack", attack, ATTACKS)
    pre = f"{attack}/{src}"
    if f"{pre}/observer/{dst}" not in arrays:
        raise SoftlibError(f"no trajectories for {attack} {src} -> {dst}; have {sorted({k.split('/')[1] for k in arrays if '/' in k})}")
    steps = arrays[f"{pre}/eval_steps"]
    flags = transfer_flags(arrays[f"{pre}/observer/{dst}"], arrays["y"], arrays[f"{pre}/targets"], criterion)
    values = {"act": arrays[f"{pre}/top_act"][:, steps], "soft": arrays[f"{pre}/top_soft"][:, steps]}
    return values, flags, steps


def model_names(arrays: dict[str, np.ndarray]) -> list[str]:
    """Source model names present in ``arrays`` (in insertion order)."""
    names: list[str] = []
    for k in arrays:
        parts = k.split("/")
        if len(parts) >= 3 and parts[0] in ATTACKS and parts[1] not in names:
            names.append(parts[1])
    return names


def pair_curves(arrays: dict[str, np.ndarray], attack: str, *, criterion: str = "target", rule: str = "last",
                level: float = 0.95) -> pd.DataFrame:
    """Long table of the aggregated curves of every ordered pair (004 figures 4 and 5).

    Columns: source, other, step, pct, act_mean/lo/hi, soft_mean/lo/hi, n_kept, n_total.
    """
    import pandas as pd

    rows = []
    names = model_names(arrays)
    for src in names:
        for dst in names:
            if dst == src:
                continue
            values, flags, steps = pair_data(arrays, attack, src, dst, criterion)
            agg = aggregate(values, flags, clean(flags, rule), level)
            rows.append(pd.DataFrame({
                "source": src, "other": dst, "step": steps, "pct": agg["pct"],
                **{k: agg[k] for k in agg if k.startswith(("act_", "soft_"))},
                "n_kept": int(agg["n"]), "n_total": len(flags),
            }))
    return pd.concat(rows, ignore_index=True)


def _spearman(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan"), float("nan")
    res = stats.spearmanr(a, b)
    return float(res.statistic), float(res.pvalue)


def rank_correlations(arrays: dict[str, np.ndarray], attack: str, *, criterion: str = "target",
                      rule: str = "last") -> pd.DataFrame:
    """Spearman correlations of activation / softmax with transfer, per ordered pair (see module docstring).

    Columns: source, other, n_kept, rho/p of the curve (``curve_act_rho``,
    ``curve_act_p``, ``curve_soft_rho``, ``curve_soft_p``), the step used for the
    example-level test (``mid_step``, its ``mid_pct`` over all examples) and
    ``ex_act_rho``, ``ex_act_p``, ``ex_soft_rho``, ``ex_soft_p``;
    ``soft_constant`` flags a softmax with no variation across examples at ``mid_step``
    (e.g. all 1.0), where no rank correlation exists.
    """
    import pandas as pd

    rows = []
    names = model_names(arrays)
    for src in names:
        for dst in names:
            if dst == src:
                continue
            values, flags, steps = pair_data(arrays, attack, src, dst, criterion)
            keep = clean(flags, rule)
            agg = aggregate(values, flags, keep)
            ca, pa = _spearman(agg["pct"], agg["act_mean"])
            cs, ps = _spearman(agg["pct"], agg["soft_mean"])
            cum = cumulative(flags)
            frac = cum.mean(axis=0)
            j = int(np.argmin(np.abs(frac - 0.5)))
            ea, epa = _spearman(values["act"][:, j], cum[:, j])
            es, eps = _spearman(values["soft"][:, j], cum[:, j])
            rows.append({
                "source": src, "other": dst, "n_kept": int(keep.sum()), "n_total": len(keep),
                "curve_act_rho": ca, "curve_act_p": pa, "curve_soft_rho": cs, "curve_soft_p": ps,
                "mid_step": int(steps[j]), "mid_pct": 100.0 * float(frac[j]),
                "ex_act_rho": ea, "ex_act_p": epa, "ex_soft_rho": es, "ex_soft_p": eps,
                "soft_constant": bool(np.ptp(values["soft"][:, j]) == 0),
            })
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- reference points


def softmax_saturation(arrays: dict[str, np.ndarray], attack: str, src: str) -> dict[str, float]:
    """Where the float32 softmax first reads exactly 1.0 along the trajectories of ``src``.

    Returns the fraction of examples that reach 1.0, and the median / minimum top
    activation and top-minus-second gap at the first such step (NaN if none).
    Theory (chapter 01): with one competitor the float32 softmax rounds to 1 once
    the gap exceeds :math:`\\ln 2^{24} \\approx 16.6`.
    """
    top = arrays[f"{attack}/{src}/top_act"]
    sec = arrays[f"{attack}/{src}/second_act"]
    soft = arrays[f"{attack}/{src}/top_soft"]
    hit = soft == 1.0
    reached = hit.any(axis=1)
    first = hit.argmax(axis=1)
    rows = np.flatnonzero(reached)
    act = top[rows, first[rows]]
    gap = act - sec[rows, first[rows]]
    nan = float("nan")
    return {
        "fraction": float(reached.mean()) if len(reached) else nan,
        "act_median": float(np.median(act)) if len(act) else nan,
        "act_min": float(act.min()) if len(act) else nan,
        "gap_median": float(np.median(gap)) if len(gap) else nan,
        "gap_min": float(gap.min()) if len(gap) else nan,
        "first_step_median": float(np.median(first[rows])) if len(rows) else nan,
    }


def natural_activations(model: nn.Module, x: torch.Tensor, *, batch_size: int = 512,
                        device: torch.device | None = None) -> dict[str, Any]:
    """Highest class activations natural images reach (001 section 2's point of reference).

    Returns ``max`` (highest top activation over ``x``), ``per_class`` (C,) the
    highest activation of each class over ``x``, ``soft_one`` the fraction of
    images whose float32 softmax already reads exactly 1.0 and ``min_act_soft_one``
    the smallest top activation among them.
    """
    device = device or get_device()
    model = model.eval().to(device)
    zs = []
    with torch.inference_mode():
        for s in _slices(len(x), batch_size):
            zs.append(model(x[s].to(device)).float().cpu())
    z = torch.cat(zs)
    soft1 = torch.softmax(z, dim=1).max(dim=1).values == 1.0
    return {
        "max": float(z.max()),
        "per_class": z.max(dim=0).values.numpy(),
        "soft_one": float(soft1.float().mean()),
        "min_act_soft_one": float(z.max(dim=1).values[soft1].min()) if bool(soft1.any()) else float("nan"),
    }


# ----------------------------------------------------------------------------- figures


def describe_images(model: nn.Module, x: torch.Tensor, k: int = 3, *, device: torch.device | None = None) -> pd.DataFrame:
    """Top-``k`` classes, class activations (CA1..CAk) and the float32 softmax of the top class, per image."""
    import pandas as pd

    device = device or get_device()
    with torch.inference_mode():
        z = model.eval().to(device)(x.to(device)).float().cpu()
    top = z.topk(k, dim=1)
    soft = torch.softmax(z, dim=1).max(dim=1).values
    data: dict[str, Any] = {"prediction": top.indices[:, 0].numpy(), "confidence": soft.numpy()}
    for j in range(k):
        data[f"ca{j + 1}"] = top.values[:, j].numpy()
    data["class2"] = top.indices[:, 1].numpy()
    return pd.DataFrame(data)


def pick_example(arrays: dict[str, np.ndarray], attack: str, src: str) -> int:
    """The example to show in figure 1 / 2 for ``src``.

    Over-optimised: among examples predicted as the target with softmax 1.0 at the
    end, the one with the largest final activation. Multi-class: among examples
    predicted as one of the two targets with softmax < 1 at the end, the one with
    the largest final activation. Falls back to the largest final activation.
    """
    pre = f"{attack}/{src}"
    top, soft, pred, tg = (arrays[f"{pre}/{k}"] for k in ("top_act", "top_soft", "pred", "targets"))
    on_target = (pred[:, -1:] == tg).any(axis=1)
    ok = on_target & ((soft[:, -1] == 1.0) if attack == "overoptimized" else (soft[:, -1] < 1.0))
    cand = np.flatnonzero(ok) if ok.any() else np.arange(len(top))
    return int(cand[np.argmax(top[cand, -1])])



def figure_steps(rec: dict[str, np.ndarray], attack: str, k: int = 3) -> list[int]:
    """``k`` steps of one example's trajectory to show (004 figures 1 and 2).

    Over-optimised: steps where the source predicts the target with softmax 1.0,
    spread geometrically in activation between the first such step and the last
    step. Multi-class: steps where the prediction is one of the two targets,
    evenly spread from the first such step to the last step. Falls back to evenly
    spread steps when the condition never holds.
    """
    pred, tgt = rec["pred"][0], rec["targets"][0]
    top, soft = rec["top_act"][0], rec["top_soft"][0]
    last = len(top) - 1
    if attack == "overoptimized":
        ok = np.flatnonzero((pred == tgt[0]) & (soft == 1.0))
        if len(ok) == 0:
            return [int(s) for s in np.linspace(1, last, k).round()]
        lo, hi = top[ok[0]], top[ok].max()
        wanted = np.geomspace(max(lo, 1e-3), max(hi, lo + 1e-3), k) if lo > 0 else np.linspace(lo, hi, k)
        steps = [int(ok[np.argmin(np.abs(top[ok] - w))]) for w in wanted]
    else:
        ok = np.flatnonzero(np.isin(pred, tgt))
        start = int(ok[0]) if len(ok) else 1
        steps = [int(s) for s in np.linspace(start, last, k).round()]
    return sorted(dict.fromkeys(steps))


def plot_snapshots(images: np.ndarray, titles: list[str], *, cmap: str | None = None):
    """A row of images (K, C, H, W) in [0, 1] with titles; returns the figure."""
    import matplotlib.pyplot as plt

    k = len(images)
    fig, axes = plt.subplots(1, k, figsize=(2.6 * k, 3.2))
    axes = np.atleast_1d(axes)
    for ax, img, title in zip(axes, images, titles):
        if img.shape[0] == 1:
            ax.imshow(img[0], cmap=cmap or "gray", vmin=0, vmax=1)
        else:
            ax.imshow(np.transpose(img, (1, 2, 0)).clip(0, 1))
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_pairs(curves: pd.DataFrame, title: str = ""):
    """004 figures 4 / 5: one panel per ordered pair; mean top activation (left axis)
    and mean softmax (right axis) with 95% CI bands against the transfer percentage."""
    import matplotlib.pyplot as plt

    pairs = list(dict.fromkeys(zip(curves["source"], curves["other"])))
    cols = min(3, len(pairs))
    rows = int(np.ceil(len(pairs) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, (src, dst) in zip(axes.flat, pairs):
        d = curves[(curves["source"] == src) & (curves["other"] == dst)].sort_values("step")
        ax.plot(d["pct"], d["act_mean"], color="C0", label="top activation")
        ax.fill_between(d["pct"], d["act_lo"], d["act_hi"], color="C0", alpha=0.25)
        ax.set_xlabel("transferred (%)")
        ax.set_ylabel("top class activation", color="C0")
        ax2 = ax.twinx()
        ax2.plot(d["pct"], d["soft_mean"], color="C3", label="softmax")
        ax2.fill_between(d["pct"], d["soft_lo"], d["soft_hi"], color="C3", alpha=0.25)
        ax2.set_ylim(0, 1.05)
        ax2.set_ylabel("softmax of top class", color="C3")
        n = int(d["n_kept"].iloc[0]) if len(d) else 0
        ax.set_title(f"{src} to {dst} (kept {n}/{int(d['n_total'].iloc[0]) if len(d) else 0})", fontsize=9)
        ax.set_xlim(0, 100)
    for ax in list(axes.flat)[len(pairs):]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
