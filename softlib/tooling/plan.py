"""The book's work as a dependency graph of cache entries, enumerated without computing anything.

At the papers' settings the book is many independent GPU jobs: the models of chapters 02-04,
the CE / RCE / OVM ResNets and the lambda grid of chapter 05, the attack and OOD sets of every
model, the robustness attacks of chapter 05 and the transferability runs of chapter 04. The
notebooks then only read the cache. :func:`build_plan` lists every such entry for a profile
and a number of seeds, each with its cache folder, its cache key (when it can be known before
anything is built) and the entries it depends on; :mod:`softlib.tooling.prebuild` runs the graph on
Dask.

What each chapter needs is written out in the ``_needs_NN`` functions below, one per chapter,
mirroring the notebook's own ``get_model`` / ``get_set`` / ... calls with its default
parameters. When a notebook changes what it asks for, change its function here:
``tests/test_notebooks.py`` builds the book on a prebuilt cache (smoke profile) and fails when a
notebook builds anything the plan did not, and every prebuilt entry is checked to land under the
planned key (so a key that drifted from :mod:`softlib.zoo` is caught; set keys come from
:func:`softlib.sets.set_spec`, the spec ``get_set`` itself keys by).

Not in the plan: chapter 03's detectors (fitted in the notebook, not cached), chapter 05's
t-SNE embeddings (CPU, seconds; their key hashes hidden activations, which differ between
devices) and chapter 01 (no models).

``python -m softlib.tooling.plan --profile paper --seeds 3`` prints counts per kind and chapter, the
estimated H100 time (see :func:`estimate_seconds` for the cost model and its assumptions) and
what is already cached.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from softlib.cache import Entry, spec_key
from softlib.profiles import PROFILES, Profile, get_profile, grid_axes
from softlib.validate import SoftlibError, check_choice, check_int

#: Chapters that have cache entries (01 trains nothing).
CHAPTERS = ("02", "03", "04", "05")
#: Kinds of task, in build order, and their cache folders / payload suffixes.
KINDS = {"model": ("models", ".safetensors"), "set": ("sets", ".npz"), "robustness": ("robustness", ".npz"),
         "transfer": ("transfer", ".npz")}

# --- cost model (estimates, not measurements: this repository has no GPU benchmark yet) -------------
#: Sustained FLOP/s assumed for fp32/TF32 training and attacks of these small nets on one H100.
H100_FLOPS = 40e12
#: Floor per optimizer or attack step on one batch (kernel launches dominate tiny MNIST nets).
STEP_FLOOR_S = 1.5e-3


@dataclass(frozen=True)
class Task:
    """One cache entry of the book and how to build it.

    ``id``: unique and deterministic (the Dask key); ``key``: the cache key, or None when it
    depends on built results (chapter 04's image selection); ``call``: JSON-able arguments for
    :func:`softlib.tooling.prebuild.execute`; ``deps``: ids of the tasks whose entries it reads.
    """

    id: str
    kind: str
    key: str | None
    call: dict[str, Any]
    deps: tuple[str, ...] = ()
    chapters: tuple[str, ...] = ()
    label: str = ""
    cost_s: float | None = None

    @property
    def folder(self) -> str:
        """The cache folder (``models``, ``sets``...)."""
        return KINDS[self.kind][0]

    def entry(self) -> Entry | None:
        """The cache entry when its key is known."""
        return None if self.key is None else Entry(self.folder, self.key, KINDS[self.kind][1])

    def is_cached(self) -> bool | None:
        """True / False when the key is known (sidecar and payload present; hashes not read), else None."""
        e = self.entry()
        return None if e is None else (e.sidecar.exists() and e.payload.exists())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Plan:
    """The tasks of a profile, in dependency order (every task after its deps)."""

    profile: str
    seeds: tuple[int, ...]
    tasks: list[Task] = field(default_factory=list)

    def by_id(self) -> dict[str, Task]:
        return {t.id: t for t in self.tasks}

    def counts(self) -> dict[str, int]:
        return dict(Counter(t.kind for t in self.tasks))

    def select(self, kinds: tuple[str, ...] | None = None, chapters: tuple[str, ...] | None = None) -> Plan:
        """The tasks of some kinds / chapters and everything they depend on."""
        chosen = {t.id for t in self.tasks if (kinds is None or t.kind in kinds)
                  and (chapters is None or set(t.chapters) & set(chapters))}
        index = self.by_id()
        stack = list(chosen)
        while stack:
            for d in index[stack.pop()].deps:
                if d not in chosen:
                    chosen.add(d)
                    stack.append(d)
        return Plan(self.profile, self.seeds, [t for t in self.tasks if t.id in chosen])


class _Builder:
    """Collects tasks, de-duplicating entries several chapters need."""

    def __init__(self, prof: Profile, chapter: str = "") -> None:
        self.prof, self.chapter = prof, chapter
        self.tasks: dict[str, Task] = {}
        self.flops: dict[str, float] = {}  # model task id -> forward FLOPs per image

    def _add(self, task: Task) -> str:
        old = self.tasks.get(task.id)
        if old is None:
            self.tasks[task.id] = task
        elif self.chapter not in old.chapters:
            self.tasks[task.id] = Task(**{**old.as_dict(), "chapters": (*old.chapters, self.chapter)})
        return task.id

    def model(self, arch: str, dataset: str, seed: int, **kw: Any) -> str:
        """What ``zoo.get_model(arch, dataset, profile, seed, **kw)`` trains."""
        from softlib import zoo

        spec = zoo.model_spec(arch, dataset, self.prof, seed, **kw)
        key = spec_key({"kind": "model", **spec})
        label = f"{arch} {dataset} {kw.get('loss', 'ce')}{kw.get('loss_params') or ''} seed {seed}"
        call = {"arch": arch, "dataset": dataset, "seed": seed, "kw": kw}
        self.flops[f"model-{key}"] = _spec_flops(spec)
        return self._add(Task(f"model-{key}", "model", key, call, (), (self.chapter,), label,
                              _model_cost(spec, self.prof)))

    def set(self, name: str, model: str | None, *, n: int, part: str, dataset: str, seed: int) -> str:
        """What ``sets.get_set(name, model, profile=..., n=n, part=part, dataset=dataset, seed=seed)`` builds.

        The key comes from :func:`softlib.sets.set_spec`, the spec ``get_set`` itself keys by.
        """
        from softlib import sets

        family = sets.set_family(name, dataset)
        deps: tuple[str, ...] = ()
        cost = 0.0
        model_task = self.tasks[model] if model else None
        if family in ("adversarial", "errors"):
            if model_task is None:
                raise SoftlibError(f"set {name!r} needs a model")
            deps = (model_task.id,)
        # get_set's default errors_rule (strict), the one every notebook uses
        spec = sets.set_spec(name, model_task.key if (model_task and deps) else None, profile=self.prof, n=n,
                             part=part, dataset=dataset, seed=seed)
        if family == "adversarial":
            cost = self._attack_cost(model_task, n, spec["attack"]["steps"] * _ATTACK_GRADS.get(name, 1))
        elif family == "errors":
            cost = self._attack_cost(model_task, 3 * n, 0)  # forward passes only (error rate unknown)
        key = spec_key({"kind": "sets", **spec})
        call = {"name": name, "n": n, "part": part, "dataset": dataset, "seed": seed,
                "model": model_task.call if (model_task and deps) else None}
        return self._add(Task(f"set-{key}", "set", key, call, deps, (self.chapter,),
                              f"{name} {part} n={n} ({model_task.label if deps else dataset})", cost))

    def robustness(self, model: str, *, dataset: str, n: int, loss: str, attack: str, eps: float, steps: int,
                   seed: int) -> str:
        """What ``robustness.adversarial_outputs`` caches for ``eval_subset(dataset, n, train=False, seed)``."""
        from softlib.chapters.ch05 import outcomes

        m = self.tasks[model]
        x_sha, y_sha, n_real = _eval_subset_shas(dataset, n, seed)
        spec = {"code": outcomes.CODE_VERSION, "model": m.key, "loss": loss, "attack": attack, "eps": eps,
                "steps": steps, "seed": seed, "x_sha": x_sha, "y_sha": y_sha, "n": n_real}
        key = spec_key({"kind": "robustness", **spec})
        call = {"model": m.call, "dataset": dataset, "n": n, "loss": loss, "attack": attack, "eps": eps,
                "steps": steps, "seed": seed}
        cost = self._attack_cost(m, n_real, 1 if attack == "fgsm" else steps)
        return self._add(Task(f"robustness-{key}", "robustness", key, call, (m.id,), (self.chapter,),
                              f"{attack} eps={eps:g} on {m.label}", cost))

    def _attack_cost(self, model: Task | None, n: int, grads_per_image: int) -> float:
        """``grads_per_image`` forward-backward passes on each of ``n`` images (plus one forward), batched."""
        if model is None:
            return 0.0
        batches = math.ceil(n / self.prof.eval_batch)
        passes = 3 * grads_per_image + 1
        return max(n * passes * self.flops[model.id] / H100_FLOPS, batches * (grads_per_image + 1) * STEP_FLOOR_S)

    def transfer(self, models: dict[str, str], *, setting: str, n: int, iters: int, seed: int,
                 pixel_units: str, eval_every: int) -> str:
        """``runner.transfer_experiment(load_setting(...))``: its key hashes the selected images, known later."""
        call = {"setting": setting, "n": n, "iters": iters, "seed": seed, "pixel_units": pixel_units,
                "eval_every": eval_every, "models": {k: self.tasks[v].key for k, v in models.items()}}
        tid = "transfer-" + hashlib.sha256(json.dumps(call, sort_keys=True).encode()).hexdigest()[:20]
        ms = [self.tasks[v] for v in models.values()]
        # 2 attacks x each source: one forward-backward on the source, a forward on each observer, per step
        cost = None
        if ms:
            fl = [self.flops[m.id] for m in ms]
            per_img = sum(3 * f + sum(fl) - f for f in fl)
            batches = 2 * len(ms) * iters * math.ceil(n / 256)
            cost = max(2 * iters * n * per_img / H100_FLOPS, batches * STEP_FLOOR_S * len(ms))
        return self._add(Task(tid, "transfer", None, call, tuple(models.values()), (self.chapter,),
                              f"transfer {setting} {n} images x {iters} iterations seed {seed}", cost))


# ------------------------------------------------------------------ what each chapter needs (edit here)


def _natural_image_set(dataset: str) -> str:
    """The natural-image OOD set the notebooks use: CIFAR-10 (MNIST for a CIFAR-10 model), else the stand-in."""
    from softlib.data import available

    if dataset == "cifar10":
        return "mnist"
    return "cifar10" if available("cifar10") else "natural"


#: chapter 02 shows the first crops of the natural-image stand-in's train and test parts (n=8 in its get_set calls)
STAND_IN_GRID = 8
#: the chapters whose notebooks also run as seed replicates (softlib.tooling.notebooks.SEED_REPLICATED; chapter 06's
#: replicates read chapter 03's entries of the same seed, so they need no tasks of their own)
SEED_POOLED = ("02", "03", "04")


def _needs_02(b: _Builder, seed: int) -> None:
    """notebooks/02: the CNN on MNIST and its figure sets; in the paper profile the other models too."""
    from softlib.data import available

    p = b.prof
    attacks = ["fgsm", "bim", "deepfool", "maxconf"]
    m = b.model("cnn", "mnist", seed)
    for s in ["mnist", "gaussian", "uniform", _natural_image_set("mnist"), "fashion_mnist", *attacks, "errors"]:
        b.set(s, m, n=p.n_figure, part="test", dataset="mnist", seed=seed)
    if _natural_image_set("mnist") == "natural":  # the grid of the stand-in's first crops of each part
        for part in ("train", "test"):
            b.set("natural", None, n=STAND_IN_GRID, part=part, dataset="mnist", seed=seed)
    if p.name == "paper" and seed == 0:  # "Other models": the WRN, and CIFAR-10 when on disk (not in replicates)
        for d in ("mnist", "cifar10"):
            for a in ("cnn", "wrn"):
                if (a, d) == ("cnn", "mnist") or (d == "cifar10" and not available("cifar10")):
                    continue
                mo = b.model(a, d, seed)
                for s in [d, "gaussian", "uniform", _natural_image_set(d), "fashion_mnist", *attacks]:
                    b.set(s, mo, n=p.n_figure, part="test", dataset=d, seed=seed)


def _needs_03(b: _Builder, seed: int) -> None:
    """notebooks/03: the CNN's fit, detector-training and test sets (000 tables 2-3, 002 table 2)."""
    from softlib import sets, tables

    p, d = b.prof, "mnist"
    m = b.model("cnn", d, seed)
    avail = sets.available_sets(d)
    groups = [tables.paper_sets(d, avail, paper=pp) for pp in ("000", "002")]
    others = list(dict.fromkeys(s for g in groups for ss in g.values() for s in ss))
    b.set(d, m, n=p.n_fit, part="train", dataset=d, seed=seed)
    for s in others:
        b.set(s, m, n=p.n_train_other, part="train", dataset=d, seed=seed)
    for s in [d, *others]:
        b.set(s, m, n=p.n_test, part="test", dataset=d, seed=seed)


def _needs_04(b: _Builder, seed: int) -> None:
    """notebooks/04: three model families and the transferability runs (004 appendix B)."""
    from softlib.chapters.ch04.settings import resolve_setting

    p = b.prof
    setting = resolve_setting("auto")
    models = {} if setting == "imagenet" else {
        "CNN": b.model("cnn", "mnist", seed), "WRN": b.model("wrn", "mnist", seed, depth=p.wrn_depth, width=p.wrn_width),
        "MLP": b.model("mlp", "mnist", seed)}
    b.transfer(models, setting=setting, n=p.transfer_images, iters=p.transfer_iters, seed=seed,
               pixel_units="unit", eval_every=1)


def _needs_05(b: _Builder, seed: int) -> None:
    """notebooks/05: CE / RCE / OVM ResNets and their attacks (003 tables 2-3, figure 4), LS model, the grid."""
    from softlib import data
    from softlib.attacks import default_eps
    from softlib.chapters.ch05 import outcomes
    from softlib.paper import detection_vs_robustness as p003

    p = b.prof
    d = "cifar10" if data.available("cifar10") else "mnist"
    eps_table = default_eps(d)
    scale = eps_table / 0.3 if d == "cifar10" else 1.0
    eps_curve = sorted({round(e * scale, 6) for e in p.eps_curve} | {0.0, eps_table})
    steps = min(p003.ATTACK_SETTINGS["pgd"]["steps"], p.attack_steps)
    params = {"ce": None, "rce": None, "ovm": {"lambda_": p003.OVM_LAMBDA}}
    # "Training seeds": the profile's `seeds` models per loss (seed .. seed + seeds - 1), each attacked
    # on the same test images with the same attack seed as the first (the notebook's `seed`)
    for s_ in range(seed, seed + int(p.seeds)):
        for loss in p003.LOSSES:
            m = b.model("resnet", d, s_, loss=loss, loss_params=params[loss], depth=p.resnet_depth,
                        epochs=p.resnet_epochs)
            for attack in p003.ATTACKS:
                for eps in eps_curve:
                    if eps > 0:
                        b.robustness(m, dataset=d, n=p.n_test, loss=loss, attack=attack, eps=float(eps), steps=steps,
                                     seed=seed)
    b.model("resnet", d, seed, loss="ls_lsq", loss_params={"lambda1": 1.0, "lambda2": 0.0}, depth=p.resnet_depth,
            epochs=p.resnet_epochs)
    grid_steps = min(outcomes.DEFAULT_STEPS, int(p.attack_steps))
    lambdas1, lambdas2 = grid_axes(p)
    for l1 in lambdas1:
        for l2 in lambdas2:
            # robustness.run_grid: the cell lambda1 = lambda2 = 0 is plain CE (003 eq. 3 reduces to eq. 1)
            loss, params = ("ce", None) if l1 == 0 and l2 == 0 else \
                ("ls_lsq", {"lambda1": float(l1), "lambda2": float(l2)})
            m = b.model("resnet", "mnist", seed, loss=loss, loss_params=params, depth=p.resnet_depth,
                        epochs=p.resnet_grid_epochs, train_size=p.grid_train_size)
            b.robustness(m, dataset="mnist", n=p.n_test, loss=loss, attack="pgd", eps=0.1, steps=grid_steps,
                         seed=seed)  # eps: the notebook's grid_eps default


NEEDS: dict[str, Callable[[_Builder, int], None]] = {"02": _needs_02, "03": _needs_03, "04": _needs_04,
                                                     "05": _needs_05}


def build_plan(profile: str, seeds: int = 1, chapters: tuple[str, ...] | list[str] | None = None) -> Plan:
    """Every cache entry the notebooks of ``chapters`` (default all) need for seeds ``0..seeds-1``."""
    check_choice("profile", profile, PROFILES)
    seeds = check_int("seeds", seeds, low=1, high=100)
    chapters = tuple(CHAPTERS if chapters is None else chapters)
    for c in chapters:
        check_choice("chapter", c, CHAPTERS)
    b = _Builder(get_profile(profile))
    for c in chapters:
        b.chapter = c
        # the SEED_POOLED chapters pool cnn_seeds trained networks into their verdicts (the runner's seed replicates)
        for seed in range(max(seeds, b.prof.cnn_seeds) if c in SEED_POOLED else seeds):
            NEEDS[c](b, seed)
    order = {k: i for i, k in enumerate(KINDS)}  # models, then sets / attacks, then transfer: deps first
    tasks = sorted(b.tasks.values(), key=lambda t: order[t.kind])
    return Plan(profile, tuple(range(seeds)), tasks)


# ------------------------------------------------------------------ cost estimates and helpers


@functools.cache
def _eval_subset_shas(dataset: str, n: int, seed: int) -> tuple[str, str, int]:
    """The hashes ``robustness.adversarial_outputs`` puts in its key for ``eval_subset(dataset, n, train=False)``."""
    from softlib.chapters.ch05 import lambda_grid, outcomes

    x, y = lambda_grid.eval_subset(dataset, n, train=False, seed=seed)
    return outcomes._sha(x), outcomes._sha(y), len(x)


_ATTACK_GRADS = {"maxconf": 9, "deepfool": 10}  # MaxConfidence: one targeted run per wrong class; DeepFool: all classes


@functools.cache
def _fwd_flops(arch: str, options: str, in_ch: int, size: int, classes: int) -> float:
    """FLOPs of one forward pass on one image (torch's flop counter on the real architecture)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from softlib.models import build_model

    model = build_model(arch, num_classes=classes, in_channels=in_ch, image_size=size, **json.loads(options)).eval()
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(torch.zeros(1, in_ch, size, size))
    return float(fc.get_total_flops())


def _spec_flops(spec: dict[str, Any]) -> float:
    return _fwd_flops(spec["arch"], json.dumps(spec["options"], sort_keys=True), spec["in_channels"],
                      spec["image_size"], spec["num_classes"])


def _model_cost(spec: dict[str, Any], prof: Profile) -> float:
    """Training: 3 forward-equivalents per image per epoch, or the per-step floor, whichever is larger."""
    from softlib.data import load_split

    n = spec["train_size"] or len(load_split(spec["dataset"], train=True)[0])
    batch = spec["recipe"]["batch_size"]
    steps = math.ceil(n / batch) * spec["epochs"]
    step_s = max(3 * _spec_flops(spec) * batch / H100_FLOPS, STEP_FLOOR_S)
    return steps * step_s


def estimate_seconds(plan: Plan, measured: dict[str, float] | None = None) -> dict[str, float]:
    """Seconds on one H100 per kind: a measured time where ``measured`` has the task, else :attr:`Task.cost_s`.

    ``measured`` maps :func:`cost_signature` to seconds (:func:`measured_seconds`). Cost model
    where nothing is measured (an estimate; this repository has no H100 benchmark of these
    tasks yet): FLOPs per image from torch's flop counter on each real architecture;
    training = 3 forward-equivalents per image per epoch; an attack = one forward-backward per
    image per step (MaxConfidence x 9 target classes, DeepFool x 10 class gradients);
    transferability = per step a forward-backward on the source and a forward on each
    observer; all at :data:`H100_FLOPS` sustained, and never less than :data:`STEP_FLOOR_S`
    per batch step (small nets are launch-bound).
    """
    measured = measured or {}
    out: dict[str, float] = Counter()
    for t in plan.tasks:
        out[t.kind] += measured.get(cost_signature(t), t.cost_s or 0.0)
    return dict(out)


def cost_signature(task: Task) -> str:
    """What determines a task's cost: its kind and call with every seed left out (seed 1 costs what seed 0 did)."""
    def strip(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if k != "seed"}
        return v

    return task.kind + ":" + json.dumps(strip(task.call), sort_keys=True, default=str)


#: Device names whose timings count as measured H100 costs.
MEASURED_DEVICE = "H100"


def device_name() -> str:
    """``cpu`` or the CUDA device's name: what measured and projected task costs hold for."""
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def measured_seconds(plan: Plan, log: Path) -> dict[str, float]:
    """Median wall time per :func:`cost_signature` of the plan's tasks that a prebuild ran on an H100.

    ``log`` is a prebuild log (:data:`softlib.tooling.prebuild.LOG_NAME`: one JSON line per task with its
    wall time and device); a missing log gives ``{}``. Lines it cannot read are skipped.
    """
    if not log.is_file():
        return {}
    sig = {t.id: cost_signature(t) for t in plan.tasks}
    times: dict[str, list[float]] = {}
    for line in log.read_text(errors="replace").splitlines():
        try:
            r = json.loads(line)
            if r.get("record") != "task" or MEASURED_DEVICE not in str(r.get("device", "")) or r["task"] not in sig \
                    or not r.get("built"):
                continue
            times.setdefault(sig[r["task"]], []).append(float(r["wall_s"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return {k: sorted(v)[len(v) // 2] for k, v in times.items()}


# ------------------------------------------------------------------ CLI


def summary_table(plan: Plan, *, check_cache: bool = True, measured: dict[str, float] | None = None) -> str:
    """Counts per kind and chapter, H100 hours (measured where ``measured`` has the task), cached / missing / unknown."""
    measured = measured or {}
    rows = []
    for kind in KINDS:
        ts = [t for t in plan.tasks if t.kind == kind]
        if not ts:
            continue
        per_ch = Counter(c for t in ts for c in t.chapters)
        status = Counter({True: "cached", False: "missing", None: "unknown"}[t.is_cached()] for t in ts) \
            if check_cache else Counter()
        hours = sum(measured.get(cost_signature(t), t.cost_s or 0.0) for t in ts) / 3600
        n_measured = sum(cost_signature(t) in measured for t in ts)
        rows.append((kind, len(ts), " ".join(f"{c}:{per_ch[c]}" for c in sorted(per_ch)), hours, n_measured,
                     status.get("cached", 0), status.get("missing", 0), status.get("unknown", 0)))
    head = f"{'kind':<11}{'tasks':>6}  {'per chapter (shared entries counted in each)':<46}{'H100 h':>9}" \
           f"{'measured':>9}{'cached':>8}{'missing':>9}{'unknown':>9}"
    lines = [head, "-" * len(head)]
    for kind, n, ch, h, nm, c, m, u in rows:
        lines.append(f"{kind:<11}{n:>6}  {ch:<46}{h:>9.2f}{nm:>9}{c:>8}{m:>9}{u:>9}")
    lines.append("-" * len(head))
    lines.append(f"{'total':<11}{len(plan.tasks):>6}  {'':<46}{sum(r[3] for r in rows):>9.2f}"
                 + "".join(f"{sum(r[i] for r in rows):>{w}}" for i, w in ((4, 9), (5, 8), (6, 9), (7, 9))))
    return "\n".join(lines)


class CliParser(argparse.ArgumentParser):
    """An argument parser whose errors are :class:`SoftlibError` (named option, bad value), not a bare exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise SoftlibError(f"{self.prog}: {message}")


def cli_int(option: str, text: str, *, low: int, high: int) -> int:
    """An integer command-line option, or a SoftlibError naming it, the value and the range."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise SoftlibError(f"{option} must be an integer in [{low}, {high}], got {text!r}") from None
    return check_int(option, value, low=low, high=high)


def main(argv: list[str] | None = None) -> int:
    from softlib.cache import cache_root

    ap = CliParser(prog="python -m softlib.tooling.plan", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="quick", help=f"one of {sorted(PROFILES)}")
    ap.add_argument("--seeds", default="1", help="seeds 0..N-1 (default 1)")
    ap.add_argument("--chapters", nargs="*", default=None, help=f"subset of {list(CHAPTERS)}")
    ap.add_argument("--timings", default=None,
                    help="a prebuild log with H100 timings (default: the cache's prebuild-log.jsonl)")
    ap.add_argument("--costs", default=None,
                    help="a probe report (python -m softlib.tooling.probe): projected time per task on its device")
    ap.add_argument("--tasks", action="store_true", help="also list every task (id, deps, label)")
    ap.add_argument("--json", action="store_true", help="print the plan as JSON instead")
    try:
        args = ap.parse_args(argv)
        check_choice("--profile", args.profile, PROFILES)
        seeds = cli_int("--seeds", args.seeds, low=1, high=100)
        log = Path(args.timings).expanduser() if args.timings else cache_root() / "prebuild-log.jsonl"
        if args.timings and not log.is_file():
            raise SoftlibError(f"--timings {args.timings!r}: no such file (a prebuild-log.jsonl of a prebuild run)")
        plan = build_plan(args.profile, seeds, args.chapters)
        measured = measured_seconds(plan, log)
        projected, costs_device = None, None
        if args.costs:
            from softlib.tooling.probe import load_costs

            projected, costs_device = load_costs(Path(args.costs).expanduser(), plan)
    except SoftlibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"profile": plan.profile, "seeds": list(plan.seeds),
                          "tasks": [{**t.as_dict(), "cached": t.is_cached(),
                                     "measured_s": measured.get(cost_signature(t))} for t in plan.tasks]},
                         indent=1, default=str))
        return 0
    n_measured = sum(cost_signature(t) in measured for t in plan.tasks)
    print(f"Plan for profile {plan.profile!r}, seeds {list(plan.seeds)}; cache {cache_root()}")
    print(summary_table(plan, measured=measured))
    print(f"\nH100 h: hours on one H100 GPU. Per-task costs: {n_measured} of {len(plan.tasks)} tasks measured on an "
          f"H100 (wall time of a prebuild task on a device named *{MEASURED_DEVICE}*, from {log}"
          f"{'' if log.is_file() else ': none yet'}); the others are estimates, not measurements: FLOP counts "
          f"at {H100_FLOPS / 1e12:.0f} TFLOP/s sustained and at least {STEP_FLOOR_S * 1e3:.1f} ms per batch step "
          "(softlib.tooling.plan.estimate_seconds); --costs results/gpu-h200/probe-paper.json adds probes measured on an H200.\n"
          "cached / missing: the entry is / is not in the cache. unknown: the key hashes results of its dependencies "
          "(chapter 04 selects images all three models classify correctly), so it is known only once they are built.")
    if projected is not None:
        print(f"\nProjected from probes on {costs_device} ({args.costs}; short probes per task class extrapolated "
              "along a straight line, not a timed full build):")
        missing = sum(projected["not_probed"].values())
        for kind, s in projected["per_kind_s"].items():
            print(f"  {kind:<11}{s / 3600:>8.2f} h")
        print(f"  {'total':<11}{projected['projected_s'] / 3600:>8.2f} h"
              + (f"  ({missing} task(s) of classes not probed left out)" if missing else ""))
    if args.tasks:
        for t in plan.tasks:
            print(f"{t.id:<32} {t.kind:<10} deps={len(t.deps)} {','.join(t.chapters):<9} {t.label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
