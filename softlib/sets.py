"""The evaluation sets every chapter uses: legitimate, OOD, adversarial, errors.

``get_set(name, model, profile=..., n=..., part=..., dataset=..., seed=...)`` returns a
:class:`LabeledSet`; every set is cached (:func:`softlib.cache.cached_arrays`), so chapter
03 reuses what chapter 02 built.

========================  ===========  ==================================================================
name                      family       content
========================  ===========  ==================================================================
the data set's own name   ``legit``    in-distribution images of the split (all of them, correct or not;
(``"mnist"``...)                       ``meta["source_index"]`` says which)
``fgsm`` ``bim``          adversarial  000 section 3.1: the attack on *correctly classified* source images,
``deepfool`` ``maxconf``               keeping only the examples the model then misclassifies
``pgd``                                (settings: :func:`attack_settings`)
``gaussian`` ``uniform``  ood          noise images (:mod:`softlib.ood`: N(0.5, 1) clipped, U[0, 1])
``mnist``                 ood          other image data sets in the in-distribution format (e.g. CIFAR-10
``fashion_mnist``                      in 28x28 grey for an MNIST model; MNIST in 32x32x3 for CIFAR-10)
``cifar10``                            ``cifar10`` only when it is on disk
``natural``               ood          STAND-IN for CIFAR-10 (crops of scikit-learn's sample photos)
``errors``                errors       002 section 2.2: images with a random 7x7 black patch that the
                                       model misclassifies (``errors_rule``: see :data:`ERRORS_RULES`)
========================  ===========  ==================================================================

``part="test"`` draws source images from the test split, ``part="train"`` from the
training split (detector training data; disjoint from test by construction). Source
order is a permutation seeded by ``seed``; attacks with random starts are seeded too.
When an attack or the patch does not always succeed, more source images are drawn
until the set holds ``n`` examples or the budget of tries (:data:`MAX_TRY_FACTOR` x ``n``,
and the size of the split for attacks and the strict errors set) is spent; a set may then be
smaller than ``n``: ``meta`` records it (``n_tried``, ``success_rate``) and a warning says so.

The errors set has two rules (``get_set(..., errors_rule=...)``):

``"strict"`` (default; 002 section 2.2 read literally)
    "We generate misclassified images by adding 7x7 black patches to test set images. We
    only keep the ones that are not classified correctly by the NN." Each source image the
    model classifies *correctly* gets one 7x7 black patch at a uniformly random position,
    once; it is kept when the patched image is misclassified. Every image of the split is
    tried at most once, so with an accurate model the set can hold fewer than ``n`` images.
``"loose"`` (this package before issue 18)
    Every source image, correct or not, is tried with a new random patch position in each
    round, up to :data:`ERRORS_TRY_FACTOR` x ``n`` tries (up to ~100 positions per image):
    a patch position that fools the model is searched for, and images the model already
    got wrong without a patch are kept too (``meta["already_wrong_without_patch"]``).
"""

from __future__ import annotations

import hashlib
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from . import attacks as _attacks
from . import ood as _ood
from .cache import cached_arrays
from .profiles import Profile, get_profile
from .runtime import generator
from .validate import MissingDataError, SoftlibError, check_alloc, check_choice, check_int, check_seed

#: Bump when a set's content for the same arguments changes (part of every cache key).
CODE_VERSION = "sets-1"
#: Bump when the errors set's content changes (part of its cache key only, so that adversarial
#: sets, slow to build, are not rebuilt). errors-2: the strict rule (issue 18).
ERRORS_CODE_VERSION = "errors-2"

ADVERSARIAL = ("fgsm", "bim", "deepfool", "maxconf", "pgd")
OOD = ("gaussian", "uniform", "fashion_mnist", "mnist", "cifar10", "natural")
FAMILIES = ("legit", "ood", "adversarial", "errors")
DATASETS = ("mnist", "fashion_mnist", "cifar10")
PARTS = ("train", "test")
#: Attack / patch tries allowed per requested example before giving up.
MAX_TRY_FACTOR = 20
#: The same for the errors set (a patch try costs one forward pass; error rates can be ~2%).
ERRORS_TRY_FACTOR = 100
#: 002 section 2.2: the errors set's black patch is 7x7.
ERRORS_PATCH = 7
#: How the errors set is built (module docstring): 002 read literally, or the older search.
ERRORS_RULES = ("strict", "loose")

#: Names for tables and figures.
SET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "gaussian": "Gaussian",
             "uniform": "Uniform", "natural": "Natural (stand-in)", "errors": "Errors", **_attacks.ATTACK_NAMES}


@dataclass
class LabeledSet:
    """One evaluation set.

    ``x``: (N, C, H, W) float32 in [0, 1]; ``y``: the original label (-1 for OOD);
    ``meta``: ``success_rate``, ``n_tried``, ``eps``, ``wall_s``, ``stand_in``, ``note``,
    ``n_requested``, ``cache_key``, ``source_index`` (indices into the source split) and
    set-specific facts.
    """

    name: str
    family: str
    x: torch.Tensor
    y: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.x)

    def __repr__(self) -> str:
        return (f"LabeledSet({self.name!r}, family={self.family!r}, n={len(self)}, "
                f"shape={tuple(self.x.shape[1:])}, stand_in={self.meta.get('stand_in', False)})")


def set_family(name: str, dataset: str = "mnist") -> str:
    """``"legit"``, ``"ood"``, ``"adversarial"`` or ``"errors"`` for set ``name`` of a ``dataset`` model."""
    check_choice("data set", dataset, DATASETS)
    if name == dataset:
        return "legit"
    if name in ADVERSARIAL:
        return "adversarial"
    if name == "errors":
        return "errors"
    if name in OOD:
        return "ood"
    raise SoftlibError(f"unknown set {name!r}; allowed: {', '.join(map(repr, all_sets(dataset)))}")


def all_sets(dataset: str = "mnist") -> list[str]:
    """Every set name defined for a ``dataset`` model (available on this machine or not)."""
    check_choice("data set", dataset, DATASETS)
    ood = [s for s in OOD if s != dataset]
    return [dataset, *ADVERSARIAL, *ood, "errors"]


def available_sets(dataset: str = "mnist") -> list[str]:
    """The set names that can be built here for a ``dataset`` model (data on disk, pillow present)."""
    from .data import available

    out = []
    for name in all_sets(dataset):
        if name in _ood.IMAGE_SETS and name != dataset and not available(name):
            continue
        if name == "natural" and not _ood.natural_available():
            continue
        out.append(name)
    return out


def attack_settings(name: str, *, dataset: str, profile: Profile | str) -> dict[str, Any]:
    """The chapter-02 settings of attack ``name`` (eps, steps, step size...), fully resolved.

    eps: :func:`softlib.attacks.default_eps` (0.3 MNIST, 8/255 CIFAR-10). Iterations:
    the attack's default (:data:`softlib.attacks.DEFAULT_STEPS`: CleverHans's 10 for
    BIM / MaxConfidence, 003's 10 for PGD, CleverHans's 50 for DeepFool), capped by the
    profile (``attack_steps``, ``deepfool_steps``). Step sizes: attack defaults (eps/6, eps/10).
    """
    prof = get_profile(profile) if isinstance(profile, str) else profile
    check_choice("attack", name, ADVERSARIAL)
    cap = prof.deepfool_steps if name == "deepfool" else prof.attack_steps
    steps = min(_attacks.DEFAULT_STEPS[name], cap)
    return _attacks.attack_params(name, eps=_attacks.default_eps(dataset), steps=steps)


def _subseed(*parts: Any) -> int:
    """A 31-bit seed derived from ``parts`` (stable across runs and machines)."""
    blob = "|".join(map(str, parts)).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "little") & 0x7FFFFFFF


def _predict(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Predicted labels of ``x`` (CPU tensor), batched on the model's device."""
    dev = _attacks._model_device(model)
    rule = _attacks.default_predict(model)
    was_training = model.training
    model.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, len(x), batch_size):
            out.append(rule(model(x[s:s + batch_size].to(dev))).cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def _source(dataset: str, part: str) -> tuple[torch.Tensor, torch.Tensor]:
    from .data import load_split

    return load_split(dataset, train=(part == "train"))


def _build_legit(dataset: str, n: int, part: str, seed: int) -> tuple[dict, dict]:
    x, y = _source(dataset, part)
    if n > len(x):
        raise SoftlibError(f"asked for {n} {dataset} images but the {part} split has {len(x)}")
    idx = torch.randperm(len(x), generator=generator(_subseed(seed, dataset, part, "order")))[:n]
    return ({"x": x[idx].numpy(), "y": y[idx].numpy(), "source_index": idx.numpy()},
            {"success_rate": float("nan"), "n_tried": n, "eps": 0.0, "stand_in": False,
             "note": f"{dataset} {part} images (all, whether the model gets them right or not)"})


def _attack_chunk(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor,
                  settings: dict[str, Any], opts: dict[str, Any], batch_size: int, chunk_seed: int,
                  chunk_spec: dict[str, Any] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One chunk of an adversarial set; with ``chunk_spec`` it is cached, so an interrupted build resumes."""
    def attack() -> tuple[dict, dict]:
        adv, success = _attacks.run_attack(name, model, x[idx], y[idx], eps=settings["eps"], batch_size=batch_size,
                                           seed=chunk_seed, **opts)
        assert success is not None  # run_attack's default: the mask is computed
        return {"adv": adv.numpy(), "success": success.numpy()}, {}

    if chunk_spec is None:
        arrays, _ = attack()
    else:
        ids = hashlib.sha256(idx.numpy().astype(np.int64).tobytes()).hexdigest()[:16]
        arrays, _ = cached_arrays("set-chunks", {**chunk_spec, "chunk_seed": chunk_seed, "source_ids": ids}, attack)
    return torch.from_numpy(np.asarray(arrays["adv"], dtype=np.float32)), torch.from_numpy(np.asarray(arrays["success"], dtype=bool))


def _build_adversarial(name: str, model: nn.Module, dataset: str, n: int, part: str, seed: int,
                       settings: dict[str, Any], batch_size: int,
                       chunk_spec: dict[str, Any] | None = None) -> tuple[dict, dict]:
    """Attack correctly classified source images chunk by chunk until ``n`` successes.

    With ``chunk_spec`` (the set's cache spec) every chunk's result is cached as it is made
    (kind ``set-chunks``): a long build (the paper profile's MaxConfidence sets take an hour on a
    CPU) that is interrupted resumes from its last finished chunk and gives the same set.
    """
    x, y = _source(dataset, part)
    perm = torch.randperm(len(x), generator=generator(_subseed(seed, dataset, part, "order")))
    budget = min(len(x), MAX_TRY_FACTOR * max(n, 1))
    opts = {k: settings[k] for k in ("steps", "step_size", "random_start", "overshoot", "project", "variant")
            if k in settings}
    kept_x, kept_y, kept_i = [], [], []
    drawn = attacked = succeeded = src_wrong = have = chunk_no = 0
    while have < n and drawn < budget:
        rate = have / drawn if drawn else 1.0
        size = min(budget - drawn, max(64, math.ceil((n - have) / max(rate, 0.05) * 1.1)))
        idx = perm[drawn:drawn + size]
        drawn += len(idx)
        ok = _predict(model, x[idx], batch_size) == y[idx]  # attack only what the model gets right
        src_wrong += int((~ok).sum())
        idx = idx[ok]
        if len(idx) == 0:
            continue
        adv, success = _attack_chunk(name, model, x, y, idx, settings, opts, batch_size,
                                     _subseed(seed, name, part, chunk_no), chunk_spec)
        chunk_no += 1
        attacked += len(idx)
        succeeded += int(success.sum())
        kept_x.append(adv[success])
        kept_y.append(y[idx][success])
        kept_i.append(idx[success])
        have += int(success.sum())
    xs = torch.cat(kept_x)[:n] if kept_x else torch.zeros((0, *x.shape[1:]))
    ys = torch.cat(kept_y)[:n] if kept_y else torch.zeros(0, dtype=torch.long)
    ii = torch.cat(kept_i)[:n] if kept_i else torch.zeros(0, dtype=torch.long)
    meta = {"success_rate": succeeded / attacked if attacked else float("nan"), "n_tried": attacked,
            "n_drawn": drawn, "source_errors": src_wrong, "eps": settings["eps"], "attack": settings,
            "stand_in": False,
            "note": (f"{_attacks.ATTACK_NAMES[name]} (L-inf eps {settings['eps']:.4g}, {settings['steps']} step(s)) "
                     f"on correctly classified {dataset} {part} images; only misclassified results kept")}
    return {"x": xs.numpy(), "y": ys.numpy(), "source_index": ii.numpy()}, meta


def _build_errors_strict(model: nn.Module, dataset: str, n: int, part: str, seed: int,
                         batch_size: int) -> tuple[dict, dict]:
    """002 section 2.2 literally: one random 7x7 black patch on each correctly classified
    source image (each image once), keep the ones the patch makes the model misclassify."""
    x, y = _source(dataset, part)
    perm = torch.randperm(len(x), generator=generator(_subseed(seed, dataset, part, "order")))
    kept_x, kept_y, kept_i, kept_pos = [], [], [], []
    drawn = tried = have = src_wrong = chunk_no = 0
    while have < n and drawn < len(x):
        rate = have / tried if tried else 0.05
        size = min(len(x) - drawn, max(256, math.ceil((n - have) / max(rate, 0.005) * 1.1)))
        idx = perm[drawn:drawn + size]
        drawn += len(idx)
        ok = _predict(model, x[idx], batch_size) == y[idx]  # 002: misclassifications *generated* by the patch
        src_wrong += int((~ok).sum())
        idx = idx[ok]
        if len(idx) == 0:
            continue
        patched, where = _ood.add_black_patch(x[idx], size=ERRORS_PATCH, seed=_subseed(seed, "errors", part, chunk_no))
        chunk_no += 1
        tried += len(idx)
        wrong = _predict(model, patched, batch_size) != y[idx]
        kept_x.append(patched[wrong])
        kept_y.append(y[idx][wrong])
        kept_i.append(idx[wrong])
        kept_pos.append(where[wrong])
        have += int(wrong.sum())
    cat = lambda parts, empty: torch.cat(parts)[:n] if parts else empty  # noqa: E731
    meta = {"success_rate": have / tried if tried else float("nan"), "n_tried": tried, "n_drawn": drawn,
            "source_errors": src_wrong, "eps": 0.0, "stand_in": False, "patch": ERRORS_PATCH,
            "errors_rule": "strict", "already_wrong_without_patch": 0.0,
            "note": (f"correctly classified {dataset} {part} images, each with one random {ERRORS_PATCH}x"
                     f"{ERRORS_PATCH} black patch (one position per image), kept when the model then "
                     "misclassifies them (002 section 2.2)")}
    arrays = {"x": cat(kept_x, torch.zeros((0, *x.shape[1:]))).numpy(),
              "y": cat(kept_y, torch.zeros(0, dtype=torch.long)).numpy(),
              "source_index": cat(kept_i, torch.zeros(0, dtype=torch.long)).numpy(),
              "patch_pos": cat(kept_pos, torch.zeros((0, 2), dtype=torch.long)).numpy()}
    return arrays, meta


def _build_errors_loose(model: nn.Module, dataset: str, n: int, part: str, seed: int,
                        batch_size: int) -> tuple[dict, dict]:
    """Patch source images (one random 7x7 black square each, new positions each round), keep errors."""
    x, y = _source(dataset, part)
    perm = torch.randperm(len(x), generator=generator(_subseed(seed, dataset, part, "order")))
    budget = ERRORS_TRY_FACTOR * max(n, 1)
    kept_x, kept_y, kept_i, kept_pos, kept_orig_wrong = [], [], [], [], []
    tried = have = chunk_no = 0
    while have < n and tried < budget:
        if tried:
            size = max(256, math.ceil((n - have) / max(have / tried, 0.005) * 1.1))
        else:
            size = max(256, n)  # unknown error rate: start with n tries
        size = min(budget - tried, size)
        pos = tried % len(x)
        idx = perm[pos:pos + size]  # round r gives image i a new patch
        patched, where = _ood.add_black_patch(x[idx], size=ERRORS_PATCH, seed=_subseed(seed, "errors", part, chunk_no))
        chunk_no += 1
        tried += len(idx)
        wrong = _predict(model, patched, batch_size) != y[idx]
        if bool(wrong.any()):
            orig_wrong = _predict(model, x[idx][wrong], batch_size) != y[idx][wrong]
            kept_x.append(patched[wrong])
            kept_y.append(y[idx][wrong])
            kept_i.append(idx[wrong])
            kept_pos.append(where[wrong])
            kept_orig_wrong.append(orig_wrong)
            have += int(wrong.sum())
    cat = lambda parts, empty: torch.cat(parts)[:n] if parts else empty  # noqa: E731
    xs = cat(kept_x, torch.zeros((0, *x.shape[1:])))
    orig = cat(kept_orig_wrong, torch.zeros(0, dtype=torch.bool))
    meta = {"success_rate": have / tried if tried else float("nan"), "n_tried": tried, "eps": 0.0,
            "stand_in": False, "patch": ERRORS_PATCH, "errors_rule": "loose",
            "already_wrong_without_patch": float(orig.float().mean()) if len(orig) else float("nan"),
            "note": (f"{dataset} {part} images with one random {ERRORS_PATCH}x{ERRORS_PATCH} black patch that the "
                     "model misclassifies (loose rule: an image may be tried with several patch positions, "
                     "and images already misclassified without a patch are kept)")}
    arrays = {"x": xs.numpy(), "y": cat(kept_y, torch.zeros(0, dtype=torch.long)).numpy(),
              "source_index": cat(kept_i, torch.zeros(0, dtype=torch.long)).numpy(),
              "patch_pos": cat(kept_pos, torch.zeros((0, 2), dtype=torch.long)).numpy()}
    return arrays, meta


def _build_ood(name: str, dataset: str, n: int, part: str, seed: int) -> tuple[dict, dict]:
    x, info = _ood.ood_images(name, n, dataset=dataset, part=part, seed=_subseed(seed, name, part, "ood"))
    arrays = {"x": x.numpy(), "y": np.full(len(x), -1, dtype=np.int64),
              "source_index": np.asarray(info.pop("source_index", np.arange(len(x))), dtype=np.int64)}
    return arrays, {"success_rate": float("nan"), "n_tried": n, "eps": 0.0, **info}


def set_spec(name: str, model_key: str | None, *, profile: Profile | str, n: int, part: str = "test",
             dataset: str = "mnist", seed: int = 0, errors_rule: str = "strict") -> dict[str, Any]:
    """The spec :func:`get_set` keys set ``name`` by (its cache key: ``cache.spec_key({"kind": "sets", **spec})``).

    ``model_key``: the ``cache_key`` of the model the set depends on (adversarial and errors
    sets; :func:`softlib.zoo.get_model` models carry it), ignored for legit and OOD sets, which
    do not depend on the model. Nothing is built: :mod:`softlib.tooling.plan` calls this to know a
    set's key before its model exists, so the plan and :func:`get_set` cannot disagree.
    """
    check_choice("data set", dataset, DATASETS)
    check_choice("set", name, all_sets(dataset))
    check_choice("part", part, PARTS)
    check_choice("errors_rule", errors_rule, ERRORS_RULES)
    prof = get_profile(profile) if isinstance(profile, str) else profile
    family = set_family(name, dataset)
    spec: dict[str, Any] = {"set": name, "dataset": dataset, "part": part, "n": n, "seed": seed,
                            "code": CODE_VERSION}
    if family in ("adversarial", "errors"):
        if not isinstance(model_key, str):
            raise SoftlibError(f"set {name!r} depends on a model: model_key must be its cache key (a string), "
                               f"got {model_key!r}")
        spec["model"] = model_key
    if family == "errors":
        spec.update(errors_rule=errors_rule, errors_code=ERRORS_CODE_VERSION)
    if family == "adversarial":
        spec["attack"] = attack_settings(name, dataset=dataset, profile=prof)
    if family == "ood":
        spec["ood_code"] = _ood.CODE_VERSION
    return spec


def get_set(name: str, model: nn.Module | None, *, profile: Profile | str, n: int, part: str = "test",
            dataset: str = "mnist", seed: int = 0, errors_rule: str = "strict") -> LabeledSet:
    """The set ``name`` (see the module docstring) for ``model``, built or loaded from the cache.

    ``model`` must carry ``cache_key`` (as :func:`softlib.zoo.get_model` models do) for
    sets that depend on it (adversarial, errors); legit and OOD sets do not depend on
    the model and may pass ``None``. ``profile`` sets the attacks' iteration caps and
    the batch size; ``n`` the number of examples wanted. ``errors_rule``
    (:data:`ERRORS_RULES`) says how the errors set is built; other sets ignore it.
    """
    check_choice("data set", dataset, DATASETS)
    check_choice("set", name, all_sets(dataset))
    check_choice("part", part, PARTS)
    check_choice("errors_rule", errors_rule, ERRORS_RULES)
    n = check_int("n", n, low=1)
    seed = check_seed("seed", seed)
    # the images (float32) are held at least twice while a set is built and cached
    check_alloc(f"set {name!r} with n={n}", 2 * 4 * n * (3 * 32 * 32 if dataset == "cifar10" else 28 * 28))
    prof = get_profile(profile) if isinstance(profile, str) else profile
    if not isinstance(prof, Profile):
        raise SoftlibError(f"profile must be a profile name or a Profile, got {type(profile).__name__}")
    family = set_family(name, dataset)
    if name == "cifar10" and family == "ood":
        from .data import available

        if not available("cifar10"):
            raise MissingDataError("CIFAR-10 is not on disk, so the 'cifar10' OOD set cannot be built; "
                                   "use the 'natural' stand-in (see softlib.ood) or add CIFAR-10 "
                                   "(python -m softlib.data status)")
    needs_model = family in ("adversarial", "errors")
    if needs_model:
        key = getattr(model, "cache_key", None)
        if not isinstance(model, nn.Module) or not isinstance(key, str):
            raise SoftlibError(f"set {name!r} needs a model with a 'cache_key' string attribute "
                               "(a model from softlib.zoo.get_model)")
    spec = set_spec(name, key if needs_model else None, profile=prof, n=n, part=part, dataset=dataset, seed=seed,
                    errors_rule=errors_rule)
    settings = spec.get("attack")
    built = {"now": False}

    def build() -> tuple[dict, dict]:
        built["now"] = True
        t0 = time.perf_counter()
        if family == "legit":
            arrays, meta = _build_legit(dataset, n, part, seed)
        elif family == "adversarial":
            arrays, meta = _build_adversarial(name, model, dataset, n, part, seed, settings, prof.eval_batch,
                                              chunk_spec=spec)
        elif family == "errors":
            build_errors = _build_errors_strict if errors_rule == "strict" else _build_errors_loose
            arrays, meta = build_errors(model, dataset, n, part, seed, prof.eval_batch)
        else:
            arrays, meta = _build_ood(name, dataset, n, part, seed)
        meta["wall_s"] = time.perf_counter() - t0
        meta["device"] = str(_attacks._model_device(model)) if needs_model else "cpu"
        if len(arrays["x"]) < n:
            warnings.warn(f"set {name!r} ({part}) has {len(arrays['x'])} examples, fewer than the {n} asked for: "
                          f"success rate {meta['success_rate']:.3g} over {meta['n_tried']} tries", stacklevel=3)
        return arrays, meta

    arrays, meta = cached_arrays("sets", spec, build)
    extra = {k: v for k, v in arrays.items() if k not in ("x", "y")}
    info = {k: v for k, v in meta.items() if k not in ("spec", "sha256", "kind")}
    info.update(extra)
    info.update({"n_requested": n, "cache_key": meta.get("key"), "from_cache": not built["now"], "part": part,
                 "dataset": dataset})
    return LabeledSet(name=name, family=family, x=torch.from_numpy(np.asarray(arrays["x"], dtype=np.float32)),
                      y=torch.from_numpy(np.asarray(arrays["y"], dtype=np.int64)), meta=info)
