"""Benchmark: our attacks vs torchattacks on the same model, batch, device and steps.

- DeepFool: ``torchattacks.DeepFool`` (one image at a time, one backward pass per class
  per image) vs :class:`softlib.attacks.BatchedDeepFool` with ``variant="torchattacks"``
  (the same update, the whole batch at once: the like-for-like comparison) and with our
  default settings (reference update + projection onto the eps ball, what the sets use).
  Same success rate and perturbation norms are checked, not only time.
- FGSM, BIM, PGD: ``torchattacks`` called directly vs :func:`softlib.attacks.run_attack`
  (which wraps the same torchattacks objects and adds the bound check and the success
  mask): the overhead of our wrapper.
  Also timed: torchattacks followed by the prediction a user needs for the same output
  (the like-for-like comparison: our success mask is that prediction).
- MaxConfidence: ours only (torchattacks has none): the 9 targeted PGD runs per image as one
  stacked batch (default) vs a plain loop over the targets; same images (max |diff| shown).

torchattacks' DeepFool is timed on ``--n-deepfool`` (16) images only (it takes seconds per
image on a CPU); ours on the same images, then on ``--n`` (128) for the per-image speedup
of a realistic batch (torchattacks' cost per image does not depend on the batch: it loops).

Model: the chapter-02 custom CNN (000 table 1) from the zoo: the quick-profile model if it is
cached, else a stand-in trained here for one epoch on 4096 MNIST images (cached after the
first run). MNIST test images, eps 0.3 (000 section 3.1). Prints a table and merges an
``"attacks"`` key into ``results/bench-<device>.json`` under a file lock (the detectors
benchmark writes the ``"detectors"`` key of the same file). Under 3 minutes on a 2-core CPU.

    python benchmarks/bench_attacks.py [--n 256] [--n-deepfool 64] [--quick] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torchattacks

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from softlib import zoo  # noqa: E402
from softlib.attacks import MaxConfidence, make_attack, run_attack  # noqa: E402
from softlib.data import load_split  # noqa: E402
from softlib.runtime import get_device  # noqa: E402
from softlib.tooling.record import merge_json  # noqa: E402

EPS = 0.3  # 000 section 3.1


def device_slug() -> str:
    """'cpu' or the GPU's name in lower-case-dashes (the results file suffix, as bench_detectors)."""
    if get_device().type == "cuda":
        return torch.cuda.get_device_name().lower().replace(" ", "-")
    return "cpu"


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


#: repetitions of each FGSM / BIM / PGD timing (the median is reported)
REPS = 3


def _timed(fn: Callable[[], Any], reps: int = 1) -> tuple[float, Any]:
    """Wall time of ``fn()`` (the median of ``reps`` runs: one slow run on a shared machine is not the answer)."""
    times, out = [], None
    for _ in range(reps):
        _sync()
        t0 = time.perf_counter()
        out = fn()
        _sync()
        times.append(time.perf_counter() - t0)
    return float(sorted(times)[len(times) // 2]), out


def get_bench_model(quick_run: bool) -> tuple[torch.nn.Module, str]:
    """The quick-profile CNN if cached, else a one-epoch stand-in (trained and cached now)."""
    if not quick_run and zoo.cached_meta("cnn", "mnist", "quick", 0) is not None:
        m = zoo.get_model("cnn", "mnist", "quick", 0)
        return m, "quick-profile CNN (000 table 1)"
    m = zoo.get_model("cnn", "mnist", "smoke", 0, epochs=1, train_size=4096)
    return m, "000 table-1 CNN, 1 epoch on 4096 MNIST images (stand-in: quick-profile model not cached)"


def _stats(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor) -> dict[str, float]:
    """Success rate, ties (true-class logit within 1e-4 of the best other one), mean L2, max L-inf."""
    with torch.inference_mode():
        logits = model(x_adv.to(next(model.parameters()).device)).cpu()
    rows = torch.arange(len(y))
    other = logits.clone()
    other[rows, y] = -float("inf")
    wrong = logits.argmax(1) != y
    tie = (other.max(1).values - logits[rows, y]).abs() < 1e-4
    d = (x_adv.cpu() - x).flatten(1)
    return {"success_rate": float(wrong.float().mean()), "clear_success_rate": float((wrong & ~tie).float().mean()),
            "tie_rate": float(tie.float().mean()), "l2_mean": float(d.norm(dim=1).mean()),
            "linf_max": float(d.abs().amax())}


def bench(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, xd: torch.Tensor, yd: torch.Tensor,
          steps: int, df_steps: int, n_maxconf: int, deepfool: bool = True) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def row(attack: str, impl: str, n: int, wall: float, st: dict[str, float], ref_wall: float | None) -> None:
        rows.append({"attack": attack, "impl": impl, "n": n, "wall_s": round(wall, 3),
                     "per_image_ms": round(1000 * wall / n, 2), **{k: float(f"{v:.4g}") for k, v in st.items()},
                     "speedup_vs_torchattacks": None if ref_wall is None else round(ref_wall / wall, 2)})

    # --- DeepFool: the per-image reference vs the batched version
    if deepfool:
        _bench_deepfool(model, x, y, xd, yd, df_steps, row)
    _bench_gradient_attacks(model, x, y, steps, n_maxconf, row, rows)
    return rows


def _bench_deepfool(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, xd: torch.Tensor, yd: torch.Tensor,
                    df_steps: int, row: Callable[..., None]) -> None:
    dev = next(model.parameters()).device
    ta = torchattacks.DeepFool(model, steps=df_steps, overshoot=0.02)
    t_ref, a_ref = _timed(lambda: ta(xd.to(dev), yd.to(dev)).cpu())
    row("deepfool", "torchattacks.DeepFool (per image)", len(xd), t_ref, _stats(model, xd, yd, a_ref), None)
    ours = make_attack("deepfool", model, eps=1.0, steps=df_steps, project=False, variant="torchattacks")
    t_b, a_b = _timed(lambda: ours(xd.to(dev), yd.to(dev)).cpu())
    st = _stats(model, xd, yd, a_b)
    st["max_abs_diff_vs_torchattacks"] = float((a_b - a_ref).abs().max())
    row("deepfool", "ours BatchedDeepFool(variant=torchattacks)", len(xd), t_b, st, t_ref)
    t_bl, a_bl = _timed(lambda: torch.cat([ours(x[s:s + 256].to(dev), y[s:s + 256].to(dev)).cpu()
                                           for s in range(0, len(x), 256)]))
    row("deepfool", "ours BatchedDeepFool(variant=torchattacks), larger batch", len(x), t_bl,
        _stats(model, x, y, a_bl), t_ref / len(xd) * len(x))
    t_d, (a_d, _) = _timed(lambda: run_attack("deepfool", model, xd, yd, eps=EPS, steps=df_steps,
                                              batch_size=len(xd)))
    row("deepfool", f"ours default (box-aware update, projected to eps {EPS})", len(xd), t_d,
        _stats(model, xd, yd, a_d), t_ref)
    t_l, (a_l, _) = _timed(lambda: run_attack("deepfool", model, x, y, eps=EPS, steps=df_steps, batch_size=256))
    row("deepfool", "ours default, larger batch", len(x), t_l, _stats(model, x, y, a_l),
        t_ref / len(xd) * len(x))


def _bench_gradient_attacks(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, n_maxconf: int,
                            row: Callable[..., None], rows: list[dict[str, Any]]) -> None:
    dev = next(model.parameters()).device

    # --- FGSM / BIM / PGD: torchattacks directly vs our wrapper (same objects, same seed)
    for name in ("fgsm", "bim", "pgd"):
        n_steps = None if name == "fgsm" else steps
        atk = make_attack(name, model, eps=EPS, steps=n_steps)

        def direct(atk: Any = atk) -> torch.Tensor:
            torch.manual_seed(0)
            return torch.cat([atk(x[s:s + 256].to(dev), y[s:s + 256].to(dev)).cpu() for s in range(0, len(x), 256)])

        def wrapped(name: str = name, n_steps: int | None = n_steps) -> tuple[torch.Tensor, torch.Tensor]:
            return run_attack(name, model, x, y, eps=EPS, steps=n_steps, batch_size=256)

        def direct_pred(atk: Any = atk) -> tuple[torch.Tensor, torch.Tensor]:
            """What a torchattacks user does to get the same output: the attack, then a prediction."""
            torch.manual_seed(0)
            advs, preds = [], []
            for s in range(0, len(x), 256):
                adv = atk(x[s:s + 256].to(dev), y[s:s + 256].to(dev))
                with torch.inference_mode():
                    preds.append(model(adv).argmax(1).cpu())
                advs.append(adv.cpu())
            return torch.cat(advs), torch.cat(preds)

        run_attack(name, model, x[:8], y[:8], eps=EPS, steps=n_steps)  # warm-up (oneDNN primitives)
        t_ta, a_ta = _timed(direct, REPS)
        row(name, f"torchattacks.{atk.attack}", len(x), t_ta, _stats(model, x, y, a_ta), None)
        t_tp, (a_tp, _) = _timed(direct_pred, REPS)
        row(name, f"torchattacks.{atk.attack} + prediction (same output as ours)", len(x), t_tp,
            _stats(model, x, y, a_tp), t_ta)
        t_o, (a_o, _) = _timed(wrapped, REPS)
        st = _stats(model, x, y, a_o)
        st["max_abs_diff_vs_torchattacks"] = float((a_o - a_ta).abs().max())
        row(name, "ours run_attack (bound check + success mask)", len(x), t_o, st, t_ta)
        rows[-1]["speedup_vs_torchattacks_with_prediction"] = round(t_tp / t_o, 2)
        # the same work as torchattacks alone: the attack and the bound check, no success mask
        t_n, (a_n, _) = _timed(lambda name=name, n_steps=n_steps: run_attack(
            name, model, x, y, eps=EPS, steps=n_steps, batch_size=256, success=False), REPS)
        st = _stats(model, x, y, a_n)
        st["max_abs_diff_vs_torchattacks"] = float((a_n - a_ta).abs().max())
        row(name, "ours run_attack(success=False) (bound check only)", len(x), t_n, st, t_ta)

    # --- MaxConfidence: the C-1 targeted PGDs as one stacked batch vs a loop over the targets
    xm, ym = x[:n_maxconf].to(dev), y[:n_maxconf].to(dev)
    loop = MaxConfidence(model, eps=EPS, alpha=EPS / 6, steps=steps, batched=False)
    stacked = MaxConfidence(model, eps=EPS, alpha=EPS / 6, steps=steps, batched=True)
    torch.manual_seed(0)
    t_loop, a_loop = _timed(lambda: loop(xm, ym).cpu())
    row("maxconf", "ours MaxConfidence, loop over the 9 targets", len(xm), t_loop,
        _stats(model, xm.cpu(), ym.cpu(), a_loop), None)
    torch.manual_seed(0)
    t_st, a_st = _timed(lambda: stacked(xm, ym).cpu())
    st = _stats(model, xm.cpu(), ym.cpu(), a_st)
    st["max_abs_diff_vs_loop"] = float((a_st - a_loop).abs().max())
    row("maxconf", "ours MaxConfidence, targets stacked in one batch (default)", len(xm), t_st, st, None)
    rows[-1]["speedup_vs_loop"] = round(t_loop / t_st, 2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=128, help="images for FGSM / BIM / PGD (and batched DeepFool)")
    ap.add_argument("--n-deepfool", type=int, default=16,
                    help="images for the like-for-like DeepFool comparison (torchattacks is per image: slow)")
    ap.add_argument("--n-maxconf", type=int, default=32, help="images for MaxConfidence")
    ap.add_argument("--steps", type=int, default=10, help="BIM / PGD / MaxConfidence iterations")
    ap.add_argument("--deepfool-steps", type=int, default=50)
    ap.add_argument("--no-deepfool", action="store_true",
                    help="skip DeepFool (minutes on a CPU); its rows of the last run are kept, marked carried_over")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run of this script)")
    ap.add_argument("--no-write", action="store_true", help="print only, do not touch results/")
    args = ap.parse_args(argv)
    n, n_df, n_mc = (32, 4, 8) if args.quick else (args.n, args.n_deepfool, args.n_maxconf)
    t0 = time.perf_counter()
    model, model_desc = get_bench_model(args.quick)
    xt, yt = load_split("mnist", train=False)
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(xt), generator=g)[: max(n, n_df)]
    x, y = xt[idx[:n]].contiguous(), yt[idx[:n]].contiguous()
    xd, yd = xt[idx[:n_df]].contiguous(), yt[idx[:n_df]].contiguous()
    rows = bench(model, x, y, xd, yd, args.steps, args.deepfool_steps, n_mc, deepfool=not args.no_deepfool)
    out = ROOT / "results" / f"bench-{device_slug()}.json"
    if args.no_deepfool and out.exists():
        old = json.loads(out.read_text()).get("attacks", {}).get("rows", [])
        rows = [{**r, "carried_over": True} for r in old if r.get("attack") == "deepfool"] + rows
    total = time.perf_counter() - t0
    print(f"device: {get_device()} ({device_slug()}), torch threads: {torch.get_num_threads()}")
    print(f"model: {model_desc}; test accuracy {100 * model.meta['test_acc']:.2f}%; eps {EPS}")
    print(f"{'attack':9s} {'implementation':56s} {'n':>4s} {'wall s':>7s} {'ms/img':>7s} {'success':>7s} "
          f"{'ties':>5s} {'L2 mean':>7s} {'speedup':>7s}")
    for r in rows:
        sp = "" if r["speedup_vs_torchattacks"] is None else f"{r['speedup_vs_torchattacks']:.1f}x"
        print(f"{r['attack']:9s} {r['impl']:56s} {r['n']:4d} {r['wall_s']:7.2f} {r['per_image_ms']:7.1f} "
              f"{r['success_rate']:7.3f} {r['tie_rate']:5.2f} {r['l2_mean']:7.3f} {sp:>7s}")
    df = [r for r in rows if r["attack"] == "deepfool"]
    if len(df) == 5:
        print(f"DeepFool batched vs torchattacks, same {len(xd)} images: {df[1]['speedup_vs_torchattacks']:.1f}x faster, "
          f"success {df[1]['success_rate']:.3f} vs {df[0]['success_rate']:.3f} (clear, not a tie: "
          f"{df[1]['clear_success_rate']:.3f} vs {df[0]['clear_success_rate']:.3f}), max |diff| of the images "
          f"{df[1]['max_abs_diff_vs_torchattacks']:.1e}; per image on a batch of {len(x)}: "
          f"{df[2]['speedup_vs_torchattacks']:.1f}x (same update), {df[4]['speedup_vs_torchattacks']:.1f}x (our default)")
        print("ties: true-class logit within 1e-4 of the best other class. torchattacks' per-step overshoot, clipped by the [0, 1] box, creeps onto "
          "the boundary, so its 'success' there is decided by rounding noise")
    print(f"total {total:.1f} s")
    if not args.no_write:
        merge_json(out, "attacks", {
            "rows": rows, "model": model_desc, "model_cache_key": model.cache_key,
            "test_acc": model.meta["test_acc"], "eps": EPS, "device": str(get_device()),
            "platform": platform.platform(), "torch": torch.__version__,
            "torchattacks": torchattacks.__version__, "threads": torch.get_num_threads(),
            "quick": bool(args.quick), "wall_s": round(total, 1)})
        print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
