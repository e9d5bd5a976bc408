"""What a profile's task graph costs on this device, measured with short probes and extrapolated.

A whole paper-profile build is about an hour of GPU time; a session may have minutes. So each
*class* of task (same architecture and loss, same attack on the same architecture, ...) is run
briefly, twice at two sizes, with the very calls the notebooks make (:func:`softlib.zoo.get_model`,
:func:`softlib.sets.get_set`, chapter 05's ``adversarial_outputs``, chapter 04's
``transfer_experiment``), in a fresh cache of its own. A straight line through the two timings
(fixed seconds + seconds per unit of work) gives every task of that class its projected time:

- a model: units = training images seen (train size x epochs); probes train one epoch on
  ``probe_images`` and one on enough images to take about :data:`MODEL_PROBE_TARGET_S` (at least 4x
  as many, at most the whole training set): shorter probes left the fixed part's noise (model
  set-up, the test-set evaluation) in the slope;
- an adversarial / errors / OOD set and a chapter-05 robustness attack: units = batches of
  ``profile.eval_batch`` images; the probe builds one batch (all of the cost per unit; a second
  batch would cost more than some whole tasks, e.g. DeepFool on the WRN). Probe models are the one-epoch
  probe networks: attack work per batch does not depend on the weights, except DeepFool's early
  stop and how fast an errors set finds errors (a weaker probe model finds them faster), so those
  two are approximate;
- a transfer run: units = iterations; probes run ``transfer_iters`` (two numbers) on the full image
  count with one-epoch probe models.

``python -m softlib.tooling.probe --profile paper --seeds 3 --budget-s 300`` writes
``results/probe-<profile>-<device>.json`` after each probe (a cut-off run keeps what it measured);
``python -m softlib.tooling.plan --costs FILE`` then prints projected hours beside the FLOP estimates.
These are projections from measured probes, not a timed full build: say so wherever they are used.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from softlib.cache import atomic_write_json
from softlib.paths import repo_root
from softlib.profiles import PROFILES, Profile, get_profile
from softlib.tooling.plan import CliParser, Plan, Task, build_plan, cli_int, device_name
from softlib.tooling.record import git_commit
from softlib.validate import SoftlibError, check_choice, check_int

#: Bumped when what a probe measures changes (old files then no longer apply).
PROBE_VERSION = 1


def device_slug(name: str) -> str:
    """A file-name form of a device name (``NVIDIA H200`` -> ``nvidia-h200``)."""
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") or "cpu"


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed(fn: Callable[[], Any]) -> float:
    _sync()
    t0 = time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - t0


# ------------------------------------------------------------------ classes of tasks and their units of work


def _model_spec(call: dict[str, Any], prof: Profile) -> dict[str, Any]:
    from softlib import zoo

    return zoo.model_spec(call["arch"], call["dataset"], prof, call["seed"], **call["kw"])


def _model_class(call: dict[str, Any], prof: Profile) -> str:
    spec = _model_spec(call, prof)
    return "model:" + json.dumps([spec["arch"], spec["options"], spec["dataset"], spec["loss"],
                                  spec["recipe"]["batch_size"]], sort_keys=True)


def task_class(task: Task, prof: Profile) -> tuple[str, float]:
    """The probe class of ``task`` and its units of work in that class (see the module docstring)."""
    c = task.call
    batch = prof.eval_batch
    if task.kind == "model":
        spec = _model_spec(c, prof)
        from softlib.data import load_split

        n = spec["train_size"] or len(load_split(spec["dataset"], train=True)[0])
        return _model_class(c, prof), float(n * spec["epochs"])
    if task.kind == "set":
        owner = _model_class(c["model"], prof) if c["model"] else c["dataset"]
        return f"set:{c['name']}:{owner}", float(math.ceil(c["n"] / batch))
    if task.kind == "robustness":
        return (f"robustness:{c['attack']}:{c['steps']}:{c['loss']}:{_model_class(c['model'], prof)}",
                float(math.ceil(c["n"] / batch)))
    if task.kind == "transfer":
        return f"transfer:{c['setting']}:{c['n']}", float(c["iters"])
    raise SoftlibError(f"unknown task kind {task.kind!r}")  # pragma: no cover - plan.KINDS is closed


# ------------------------------------------------------------------ the probes


def probe_profile(prof: Profile, probe_images: int) -> Profile:
    """``prof`` with every model trained one epoch on ``probe_images`` images (the probe networks)."""
    return replace(prof, cnn_epochs=1, wrn_epochs=1, mlp_epochs=1, resnet_epochs=1, resnet_grid_epochs=1,
                   train_size=probe_images, cnn_train_size=probe_images, grid_train_size=probe_images)


def _probe_model(call: dict[str, Any], prof: Profile, n_img: int) -> Any:
    from softlib import zoo

    kw = {k: v for k, v in call["kw"].items() if k not in ("epochs", "train_size")}
    return zoo.get_model(call["arch"], call["dataset"], prof, 0, epochs=1, train_size=n_img, **kw)


def _runs(task: Task, prof: Profile, probe_images: int, transfer_iters: tuple[int, int]
          ) -> list[tuple[float, Callable[[], Any]]]:
    """(units, thunk) probes of ``task``'s class (two sizes, or one batch); the thunks build in the current cache."""
    c, batch = task.call, prof.eval_batch
    if task.kind == "model":
        raise SoftlibError("model probes size themselves: use _model_runs")  # pragma: no cover - internal
    if task.kind == "set":
        from softlib import sets

        model = (lambda: _probe_model(c["model"], prof, probe_images)) if c["model"] else (lambda: None)

        def build(n: int) -> Any:
            return sets.get_set(c["name"], model(), profile=prof, n=n, part=c["part"], dataset=c["dataset"],
                                seed=c["seed"])
        n = min(c["n"], batch)  # one batch: a second would cost more than some whole tasks (DeepFool on the WRN)
        return [(1.0, lambda: build(n))]
    if task.kind == "robustness":
        from softlib.chapters.ch05 import lambda_grid, outcomes

        def attack(n: int) -> Any:
            m = _probe_model(c["model"], prof, probe_images)
            x, y = lambda_grid.eval_subset(c["dataset"], n, train=False, seed=c["seed"])
            return outcomes.adversarial_outputs(m, x, y, attack=c["attack"], eps=c["eps"], loss=c["loss"],
                                                steps=c["steps"], seed=c["seed"], batch_size=batch)
        n = min(c["n"], batch)
        return [(1.0, lambda: attack(n))]
    if task.kind == "transfer":
        from softlib.chapters.ch04 import runner, settings

        small = probe_profile(prof, probe_images)

        def transfer(iters: int) -> Any:
            st = settings.load_setting(c["setting"], small, seed=c["seed"], n=c["n"], progress=False)
            return runner.transfer_experiment(st, iters=iters, seed=c["seed"], pixel_units=c["pixel_units"],
                                              eval_every=c["eval_every"], progress=False)
        return [(float(k), lambda k=k: transfer(k)) for k in transfer_iters]
    raise SoftlibError(f"unknown task kind {task.kind!r}")  # pragma: no cover


#: Seconds the larger model probe aims at: long enough that the fixed part's noise (model set-up, the
#: test-set evaluation, the first cuDNN calls) is small beside it (run 2 on an H200 probed at 2x the
#: images, ~1 s, and under-stated a timed 10-epoch task by 1.55x).
MODEL_PROBE_TARGET_S = 8.0


def _model_runs(task: Task, prof: Profile, probe_images: int) -> list[tuple[float, float]]:
    """Time one epoch on ``probe_images`` images, then on enough to take ~:data:`MODEL_PROBE_TARGET_S`
    (at least 4x as many, at most the task's whole training set): (images, seconds) each."""
    from softlib.data import load_split

    c = task.call
    spec = _model_spec(c, prof)
    n_full = spec["train_size"] or len(load_split(spec["dataset"], train=True)[0])
    n1 = min(probe_images, n_full)
    t1 = _timed(lambda: _probe_model(c, prof, n1))
    n2 = min(n_full, max(4 * n1, int(MODEL_PROBE_TARGET_S * n1 / max(t1, 1e-3))))
    if n2 <= n1:
        return [(float(n1), t1)]
    return [(float(n1), t1), (float(n2), _timed(lambda: _probe_model(c, prof, n2)))]


def _warm_device() -> None:
    """A few forward-backward passes first: the first probe must not pay for CUDA / cuDNN start-up."""
    import torch

    from softlib.models import build_model
    from softlib.runtime import get_device

    dev = get_device()
    m = build_model("cnn").to(dev)
    x = torch.rand(64, 1, 28, 28, device=dev)
    for _ in range(3):
        m(x).sum().backward()
    _sync()


def _warm_models(task: Task, prof: Profile, probe_images: int) -> None:
    """Train (untimed) the probe networks a set / robustness / transfer probe attacks."""
    c = task.call
    if task.kind in ("set", "robustness") and c.get("model"):
        _probe_model(c["model"], prof, probe_images)
    elif task.kind == "transfer":
        from softlib.chapters.ch04 import settings

        settings.load_setting(c["setting"], probe_profile(prof, probe_images), seed=c["seed"], n=c["n"],
                              progress=False)


def fit_line(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """(fixed seconds, seconds per unit) through two (units, seconds) points; one point: all per unit.

    A negative slope (timing noise on a tiny probe) falls back to the larger run's seconds per unit
    with no fixed part, which over- rather than under-states the cost.
    """
    if not runs:
        raise SoftlibError("fit_line needs at least one (units, seconds) run")
    pts = sorted(runs)
    (u1, s1), (u2, s2) = pts[0], pts[-1]
    if u2 > u1 and s2 >= s1:
        per = (s2 - s1) / (u2 - u1)
        return max(s1 - per * u1, 0.0), per
    return 0.0, s2 / u2 if u2 > 0 else 0.0


def project(plan: Plan, probes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Projected seconds per task of ``plan`` from probe fits; totals per kind and chapter; unprobed counts."""
    prof = get_profile(plan.profile)
    per_kind: dict[str, float] = {}
    per_chapter: dict[str, float] = {}
    missing: dict[str, int] = {}
    estimate = 0.0
    tasks = {}
    for t in plan.tasks:
        cls, units = task_class(t, prof)
        p = probes.get(cls)
        estimate += t.cost_s or 0.0
        if p is None or "per_unit_s" not in p:
            missing[t.kind] = missing.get(t.kind, 0) + 1
            continue
        s = p["fixed_s"] + p["per_unit_s"] * units
        tasks[t.id] = round(s, 3)
        per_kind[t.kind] = per_kind.get(t.kind, 0.0) + s
        first = t.chapters[0] if t.chapters else "?"  # a shared entry is counted once, in its first chapter
        per_chapter[first] = per_chapter.get(first, 0.0) + s
    return {"seeds": len(plan.seeds), "tasks": len(plan.tasks), "projected_s": round(sum(per_kind.values()), 1),
            "per_kind_s": {k: round(v, 1) for k, v in per_kind.items()},
            "per_chapter_s": {k: round(v, 1) for k, v in sorted(per_chapter.items())},
            "not_probed": missing, "flop_estimate_s": round(estimate, 1), "task_s": tasks}


def run_probes(profile: str, seeds: tuple[int, ...] = (1,), *, probe_images: int = 6400,
               transfer_iters: tuple[int, int] = (3, 9), budget_s: float = 600.0, out: Path | None = None,
               chapters: tuple[str, ...] | None = None, kinds: tuple[str, ...] | None = None,
               progress: bool = True) -> dict[str, Any]:
    """Probe every task class of ``profile``'s plan (largest projected cost first, within ``budget_s``).

    Builds into fresh temporary caches, one per class (``SOFTLIB_CACHE`` is set for the duration). Writes ``out``
    (JSON) after each probe when given. Returns the report (module docstring).
    """
    check_choice("profile", profile, PROFILES)
    probe_images = check_int("probe_images", probe_images, low=10, high=60_000)
    if len(transfer_iters) != 2 or not 1 <= transfer_iters[0] < transfer_iters[1] <= 10_000:
        raise SoftlibError(f"transfer_iters must be two iteration counts 1 <= a < b <= 10000, got {transfer_iters!r}")
    if not (isinstance(budget_s, (int, float)) and 0 < budget_s <= 86_400):
        raise SoftlibError(f"budget_s must be seconds in (0, 86400], got {budget_s!r}")
    seeds = tuple(check_int("seeds", s, low=1, high=100) for s in seeds)
    prof = get_profile(profile)
    plans = {s: build_plan(profile, s, chapters) for s in seeds}
    big = plans[max(seeds)]
    first: dict[str, Task] = {}
    est: dict[str, float] = {}
    for t in big.tasks:
        cls, _ = task_class(t, prof)
        first.setdefault(cls, t)
        est[cls] = est.get(cls, 0.0) + (t.cost_s or 0.0)
    if kinds is not None:
        from softlib.tooling.plan import KINDS

        for k in kinds:
            check_choice("kind", k, KINDS)
    order = sorted((k for k in first if kinds is None or first[k].kind in kinds), key=lambda k: -est[k])
    deadline = time.monotonic() + budget_s
    report: dict[str, Any] = {
        "probe_version": PROBE_VERSION, "profile": profile, "device": device_name(), "commit": git_commit(dirty=True),
        "platform": platform.platform(), "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "probe_images": probe_images, "transfer_iters": list(transfer_iters), "budget_s": budget_s,
        "what": "projections from short probes (two sizes per task class, a straight line), not a timed full build",
        "probes": {}, "plans": {}}
    import torch

    report["versions"] = {"torch": torch.__version__, "python": platform.python_version()}
    old = os.environ.get("SOFTLIB_CACHE")
    with tempfile.TemporaryDirectory(prefix="softlib-probe-") as tmp:
        os.environ["SOFTLIB_CACHE"] = tmp
        try:
            if order:
                _warm_device()
            for i, cls in enumerate(order, 1):
                t = first[cls]
                if time.monotonic() > deadline:
                    report["probes"][cls] = {"kind": t.kind, "label": t.label, "skipped": "budget spent"}
                    continue
                # a fresh cache per class: a probe network another probe trained would be a cache hit, not a cost
                os.environ["SOFTLIB_CACHE"] = str(Path(tmp) / f"c{i}")
                try:
                    _warm_models(t, prof, probe_images)
                    runs = _model_runs(t, prof, probe_images) if t.kind == "model" else \
                        [(u, _timed(fn)) for u, fn in _runs(t, prof, probe_images, transfer_iters)]
                except Exception as exc:  # noqa: BLE001 - a probe that fails is reported, the others still run
                    import traceback

                    report["probes"][cls] = {"kind": t.kind, "label": t.label,
                                             "failed": f"{type(exc).__name__}: {str(exc)[:300]}",
                                             "where": traceback.format_exc().splitlines()[-6:]}
                    if progress:
                        print(f"[probe {i}/{len(order)}] {t.kind:<10} {t.label[:60]:<60} FAILED "
                              f"{type(exc).__name__}: {str(exc)[:200]}", flush=True)
                    if out is not None:
                        atomic_write_json(out, report)
                    continue
                fixed, per = fit_line(runs)
                report["probes"][cls] = {"kind": t.kind, "label": t.label, "runs": [[u, round(s, 4)] for u, s in runs],
                                         "fixed_s": round(fixed, 4), "per_unit_s": per}
                if progress:
                    print(f"[probe {i}/{len(order)}] {t.kind:<10} {t.label[:60]:<60} "
                          f"{' '.join(f'{s:.2f}s@{u:g}' for u, s in runs)}", flush=True)
                report["plans"] = {str(s): project(plans[s], report["probes"]) for s in seeds}
                if out is not None:
                    atomic_write_json(out, report)
        finally:
            if old is None:
                os.environ.pop("SOFTLIB_CACHE", None)
            else:
                os.environ["SOFTLIB_CACHE"] = old
    report["plans"] = {str(s): project(plans[s], report["probes"]) for s in seeds}
    if out is not None:
        atomic_write_json(out, report)
    return report


def load_costs(path: Path, plan: Plan) -> tuple[dict[str, Any], str]:
    """:func:`project` of ``plan`` from a probe report, and its device (checked: profile, version)."""
    try:
        rep = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise SoftlibError(f"costs file {str(path)!r} could not be read as JSON ({exc})") from None
    if not isinstance(rep, dict) or rep.get("probe_version") != PROBE_VERSION or "probes" not in rep:
        raise SoftlibError(f"costs file {str(path)!r} is not a probe report of version {PROBE_VERSION} "
                           "(python -m softlib.tooling.probe writes one)")
    if rep.get("profile") != plan.profile:
        raise SoftlibError(f"costs file {str(path)!r} probes profile {rep.get('profile')!r}, the plan is "
                           f"{plan.profile!r}")
    return project(plan, rep["probes"]), str(rep.get("device", "?"))


def main(argv: list[str] | None = None) -> int:
    ap = CliParser(prog="python -m softlib.tooling.probe", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="paper", help=f"one of {sorted(PROFILES)}")
    ap.add_argument("--seeds", nargs="+", default=["1"], help="plan sizes to project (seeds 0..N-1 each)")
    ap.add_argument("--probe-images", default="6400", help="training images of the smaller model probe")
    ap.add_argument("--budget-s", default="600", help="stop starting probes after this many seconds")
    ap.add_argument("--chapters", nargs="*", default=None, help="subset of 02 03 04 05")
    ap.add_argument("--kinds", nargs="*", default=None, help="probe only these kinds (model set robustness transfer)")
    ap.add_argument("--out", default=None, help="default results/probe-<profile>-<device>.json")
    try:
        args = ap.parse_args(argv)
        check_choice("--profile", args.profile, PROFILES)
        seeds = tuple(cli_int("--seeds", s, low=1, high=100) for s in args.seeds)
        images = cli_int("--probe-images", args.probe_images, low=10, high=60_000)
        budget = cli_int("--budget-s", args.budget_s, low=1, high=86_400)
        out = Path(args.out) if args.out else \
            repo_root() / "results" / f"probe-{args.profile}-{device_slug(device_name())}.json"
        rep = run_probes(args.profile, seeds, probe_images=images, budget_s=float(budget), out=out,
                         chapters=tuple(args.chapters) if args.chapters else None,
                         kinds=tuple(args.kinds) if args.kinds else None)
    except SoftlibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for s, p in rep["plans"].items():
        print(f"seeds={s}: {p['tasks']} tasks, projected {p['projected_s'] / 60:.1f} min on {rep['device']} "
              f"(FLOP estimate {p['flop_estimate_s'] / 60:.1f} min); per kind "
              + ", ".join(f"{k} {v / 60:.1f} min" for k, v in p["per_kind_s"].items())
              + (f"; not probed: {p['not_probed']}" if p["not_probed"] else ""))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
