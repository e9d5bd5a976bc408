"""Trained models on demand: from the cache, or trained now and cached.

``get_model(arch, dataset, profile, seed)`` is the one call notebooks make. The
cache key hashes everything that determines the weights: architecture and its
options, data set and training-subset size, loss and its parameters, epochs, the
training recipe, the seed and the code versions of :mod:`softlib.models` and
:mod:`softlib.train`. The profile's *name* is not part of it: two profiles with
the same settings share models.

Weights are stored as safetensors with a JSON sidecar (test accuracy, epochs,
wall time, device, package versions); see :mod:`softlib.cache` for the atomic,
locked, hash-checked publication.
"""

from __future__ import annotations

import os
import platform
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from . import __version__
from .cache import Entry, cache_root, entry_lock, spec_key
from .data import DATASETS, load_split, num_classes
from .models import ARCHS, TrainedModel, build_model
from .models import CODE_VERSION as MODELS_VERSION
from .profiles import PROFILES, Profile, get_profile
from .runtime import get_device, seed_everything
from .train import CODE_VERSION as TRAIN_VERSION
from .train import Recipe, accuracy, recipe_for, train_model
from .validate import CorruptEntryError, SoftlibError, check_choice, check_int, check_seed

_EPOCHS_FIELD = {"cnn": "cnn_epochs", "wrn": "wrn_epochs", "resnet": "resnet_epochs", "mlp": "mlp_epochs"}


def _arch_options(arch: str, prof: Profile, options: dict[str, Any]) -> dict[str, Any]:
    opts = dict(options)
    if arch == "wrn":
        opts.setdefault("depth", prof.wrn_depth)
        opts.setdefault("width", prof.wrn_width)
    elif arch == "resnet":
        opts.setdefault("depth", prof.resnet_depth)
        opts.setdefault("leaky", 0.1)  # 003 table 1
    return opts


def model_spec(arch: str, dataset: str, profile: Profile | str, seed: int = 0, *, loss: str = "ce",
               loss_params: dict[str, Any] | None = None, epochs: int | None = None,
               train_size: int | None = None, **options: Any) -> dict[str, Any]:
    """Everything that determines the weights of ``get_model(...)`` with these arguments."""
    from .losses import LOSSES

    prof = get_profile(profile) if isinstance(profile, str) else profile
    if not isinstance(prof, Profile):
        raise SoftlibError(f"profile must be a profile name ({', '.join(PROFILES)}) or a Profile, got {profile!r}")
    check_choice("architecture", arch, ARCHS)
    check_choice("data set", dataset, DATASETS)
    check_choice("loss", loss, LOSSES)
    check_seed("seed", seed)
    epochs = check_int("epochs", epochs if epochs is not None else getattr(prof, _EPOCHS_FIELD[arch]), low=1)
    default_n = prof.cnn_train_size if arch == "cnn" else prof.train_size
    n_train = train_size if train_size is not None else default_n
    if n_train is not None:
        check_int("train_size", n_train, low=10)
    in_ch, size = (3, 32) if dataset == "cifar10" else (1, 28)
    return {
        "arch": arch, "options": _arch_options(arch, prof, options), "dataset": dataset,
        "in_channels": in_ch, "image_size": size, "num_classes": num_classes(dataset),
        "train_size": n_train, "epochs": epochs, "loss": loss,
        "loss_params": dict(sorted((loss_params or {}).items())), "seed": seed,
        "recipe": _recipe(arch, dataset, prof),
        "code": [MODELS_VERSION, TRAIN_VERSION],
    }


def _recipe(arch: str, dataset: str, prof: Profile) -> dict[str, Any]:
    recipe = asdict(recipe_for(arch, dataset))
    if arch == "resnet" and prof.resnet_batch:
        recipe["batch_size"] = prof.resnet_batch  # a quick-profile shortcut, named in profiles.py
    if arch == "cnn" and prof.cnn_cosine:
        recipe["cosine"] = True  # quick profile: decay to converge in 3 epochs (000 trains 30 at a constant rate)
    return recipe


def _build(spec: dict[str, Any]) -> torch.nn.Module:
    return build_model(spec["arch"], num_classes=spec["num_classes"], in_channels=spec["in_channels"],
                       image_size=spec["image_size"], **spec["options"])


def _training_subset(dataset: str, n: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = load_split(dataset, train=True)
    if n is None or n >= len(x):
        return x, y
    # a seeded random subset (not the first n: MNIST's file order is not shuffled by writer)
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(10_000 + seed))[:n]
    return x[idx], y[idx]


def _versions() -> dict[str, str]:
    import numpy
    import torchvision

    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "numpy": numpy.__version__, "softlib": __version__}


def model_key(arch: str, dataset: str, profile: Profile | str, seed: int = 0, **kw: Any) -> str:
    """The cache key of the model :func:`get_model` returns for these arguments (nothing is trained)."""
    prof = get_profile(profile) if isinstance(profile, str) else profile
    return spec_key({"kind": "model", **model_spec(arch, dataset, prof, seed, **kw)})


def get_model(arch: str, dataset: str, profile: Profile | str, seed: int = 0, *, loss: str = "ce",
              loss_params: dict[str, Any] | None = None, epochs: int | None = None,
              train_size: int | None = None, device: torch.device | str | None = None,
              **options: Any) -> TrainedModel:
    """A trained model in eval mode, from the cache or trained now (then cached).

    A :class:`softlib.models.TrainedModel`: the network with ``key`` (hash of
    :func:`model_spec`), ``meta`` (test accuracy on ``profile.test_eval_size`` test images
    (all by default; the number is recorded as ``test_acc_n``), epochs, wall time, device,
    versions) and ``loss`` (the training loss, whose prediction rule applies).
    """
    prof = get_profile(profile) if isinstance(profile, str) else profile
    spec = model_spec(arch, dataset, prof, seed, loss=loss, loss_params=loss_params, epochs=epochs,
                      train_size=train_size, **options)
    dev = get_device(device)
    key = spec_key({"kind": "model", **spec})
    entry = Entry("models", key, ".safetensors")
    meta = entry.read_valid()
    if meta is None:
        with entry_lock("models", key):
            meta = entry.read_valid()  # another process may have trained it meanwhile
            if meta is None:
                meta = _train_and_publish(spec, entry, dev, prof.test_eval_size, key)
    model = _build(spec)
    try:
        state = load_file(str(entry.payload))
        model.load_state_dict(state)
    except Exception as exc:  # hash matched but content unusable: never use it
        entry.remove()
        raise CorruptEntryError(f"cached model {key} could not be loaded ({exc}); it was removed, run again") from exc
    return TrainedModel(model, key, meta, loss=spec["loss"]).to(dev).eval()


def checkpoint_path(key: str) -> Path:
    """Where the per-epoch training checkpoint of model ``key`` lives while it trains."""
    return cache_root() / "checkpoints" / f"{key}.pt"


def _train_and_publish(spec: dict[str, Any], entry: Entry, dev: torch.device,
                       eval_size: int | None, key: str) -> dict[str, Any]:
    seed_everything(spec["seed"])
    model = _build(spec).to(dev)
    x, y = _training_subset(spec["dataset"], spec["train_size"], spec["seed"])
    desc = f"{spec['arch']} on {spec['dataset']} ({spec['loss']})"
    t0 = time.perf_counter()
    history = train_model(model, x, y, epochs=spec["epochs"], recipe=Recipe(**spec["recipe"]),
                          seed=spec["seed"], loss=spec["loss"], loss_params=spec["loss_params"], device=dev,
                          desc=desc, checkpoint=checkpoint_path(key))
    xt, yt = load_split(spec["dataset"], train=False)
    n_eval = eval_size if eval_size is not None else len(xt)
    acc = accuracy(model, xt[:n_eval], yt[:n_eval], loss=spec["loss"])
    meta = {"spec": spec, "test_acc": acc, "test_acc_n": int(min(n_eval, len(xt))), "train_loss": history["loss"], "epochs": spec["epochs"],
            "wall_s": time.perf_counter() - t0, "device": str(dev),
            "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
            "versions": _versions(), "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "trained_by_pid": os.getpid()}
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    published = entry.publish(lambda tmp: save_file(state, str(tmp)), meta)
    checkpoint_path(key).unlink(missing_ok=True)  # the entry is safe now
    return published


def cached_meta(arch: str, dataset: str, profile: Profile | str, seed: int = 0, **kw: Any) -> dict[str, Any] | None:
    """The sidecar of a cached model, or None when it is not trained yet (never trains)."""
    spec = model_spec(arch, dataset, profile, seed, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Entry("models", spec_key({"kind": "model", **spec}), ".safetensors").read_valid()

