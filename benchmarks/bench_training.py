"""Benchmark: CPU training and evaluation throughput of the 000 table-1 CNN.

Rows (same images, same initial weights, batch 64 = 000 section 3.1's recipe, RMSprop):

- ``softlib.train.train_model`` (the book's loop: affine augmentation, finite-loss check, tqdm);
- a plain PyTorch loop with the same augmentation (the loop's own overhead), and without it
  (what the augmentation costs);
- the plain loop with model and batches in channels-last memory format;
- the plain loop with ``torch.compile`` (compile time reported apart);
- evaluation (``softlib.models.predict``) at batch 512 (the profiles' ``eval_batch``) and 2048;
- a peak estimate: float32 GEMM throughput of this CPU on the threads torch uses, against the
  CNN's counted FLOPs (forward + backward ~ 3x forward), i.e. the share of peak the loop reaches.

Variants must reach the same weights as the plain loop within float tolerance (reported as
``max_param_diff``). Prints a table and merges a ``"training"`` key into
``results/bench-<device>.json``. A few minutes on a 2-core CPU.

    python benchmarks/bench_training.py [--n 2048] [--no-compile] [--quick] [--no-write]
"""

from __future__ import annotations

import argparse
import copy
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from softlib.data import load_split  # noqa: E402
from softlib.models import build_model, predict  # noqa: E402
from softlib.runtime import generator, get_device  # noqa: E402
from softlib.tooling.record import merge_json  # noqa: E402
from softlib.train import RECIPES, augment_batch, train_model  # noqa: E402

BATCH = 64  # 000 section 3.1


def cnn_flops_per_image(model: torch.nn.Module) -> float:
    """Multiply-adds x 2 of one forward pass (convolutions and linear layers), counted with hooks."""
    total = [0.0]

    def hook(mod: torch.nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        if isinstance(mod, torch.nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            total[0] += 2 * out[0].numel() * k
        elif isinstance(mod, torch.nn.Linear):
            total[0] += 2 * mod.in_features * mod.out_features

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 1, 28, 28))
    for h in hs:
        h.remove()
    return total[0]


def gemm_peak(seconds: float = 2.0) -> float:
    """Float32 FLOP/s of a 1024^2 GEMM (best of repeated runs): a practical peak of this CPU."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    best, t_end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * 1024**3 / best


def plain_loop(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, augment: bool,
               channels_last: bool = False, step: Any = None) -> float:
    """One epoch of the minimal loop; returns its wall time."""
    r = RECIPES["cnn"]
    opt = torch.optim.RMSprop(model.parameters(), lr=r.lr, alpha=0.9, eps=1e-7)
    g = generator(0)
    torch.manual_seed(0)
    model.train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    fwd = step or model
    t0 = time.perf_counter()
    order = torch.randperm(len(x), generator=g)
    for s in range(0, len(x), BATCH):
        idx = order[s:s + BATCH]
        xb = augment_batch(x[idx], "affine", g) if augment else x[idx]
        xb = xb.contiguous(memory_format=fmt)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(fwd(xb), y[idx]).backward()
        opt.step()
    return time.perf_counter() - t0


def _diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max(float((p - q).abs().max()) for p, q in zip(a.state_dict().values(), b.state_dict().values())
               if p.is_floating_point())


def bench(n: int, compile_: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    xt, yt = load_split("mnist", train=True)
    x, y = xt[:n].contiguous(), yt[:n].contiguous()
    torch.manual_seed(0)
    init = build_model("cnn")
    rows: list[dict[str, Any]] = []

    def row(name: str, wall: float, images: int, ref: float | None, **extra: Any) -> None:
        rows.append({"variant": name, "images": images, "wall_s": round(wall, 3),
                     "images_per_s": round(images / wall, 1),
                     "speedup_vs_plain": None if ref is None else round(ref / wall, 2), **extra})

    # warm-up (oneDNN primitive creation) on a throw-away copy
    plain_loop(copy.deepcopy(init), x[:256], y[:256], augment=True)
    ref_model = copy.deepcopy(init)
    t_plain = plain_loop(ref_model, x, y, augment=True)
    m = copy.deepcopy(init)
    t0 = time.perf_counter()
    train_model(m, x, y, epochs=1, recipe=RECIPES["cnn"], seed=0, desc="bench")
    row("softlib train_model (augmentation, checks, tqdm)", time.perf_counter() - t0, n, t_plain)
    row("plain PyTorch loop, same augmentation", t_plain, n, t_plain)
    m = copy.deepcopy(init)
    row("plain loop, no augmentation", plain_loop(m, x, y, augment=False), n, t_plain)
    m = copy.deepcopy(init).to(memory_format=torch.channels_last)
    t_cl = plain_loop(m, x, y, augment=True, channels_last=True)
    row("plain loop, channels-last", t_cl, n, t_plain, max_param_diff=float(f"{_diff(m, ref_model):.3g}"))
    if compile_:
        m = copy.deepcopy(init)
        try:
            step = torch.compile(m)
            t0 = time.perf_counter()
            plain_loop(step, x[:2 * BATCH], y[:2 * BATCH], augment=True)  # compiles forward and backward
            t_compile = time.perf_counter() - t0
            m = copy.deepcopy(init)
            step = torch.compile(m)
            plain_loop(step, x[:BATCH], y[:BATCH], augment=True)
            m.load_state_dict(init.state_dict())
            t_c = plain_loop(step, x, y, augment=True)
            row("plain loop, torch.compile", t_c, n, t_plain, compile_s=round(t_compile, 1),
                max_param_diff=float(f"{_diff(m, ref_model):.3g}"))
        except Exception as exc:  # no compiler, unsupported op: say so, keep the other rows
            rows.append({"variant": "plain loop, torch.compile", "error": f"{type(exc).__name__}: {exc}"[:300]})
    xe = load_split("mnist", train=False)[0][:max(n, 4096)]
    model = copy.deepcopy(init).eval()
    predict(model, xe[:512], batch_size=512)
    t0 = time.perf_counter()
    p512 = predict(model, xe, batch_size=512)["logits"]
    t512 = time.perf_counter() - t0
    t0 = time.perf_counter()
    p2048 = predict(model, xe, batch_size=2048)["logits"]
    t2048 = time.perf_counter() - t0
    row("evaluation, predict batch 512", t512, len(xe), None)
    row("evaluation, predict batch 2048", t2048, len(xe), t512, max_logit_diff=float(f"{abs(p512 - p2048).max():.3g}"))
    flops = cnn_flops_per_image(init)
    peak = gemm_peak()
    train_flops = 3 * flops  # forward + backward (input and weight gradients ~ 2x forward)
    info = {"forward_gflop_per_image": round(flops / 1e9, 4), "gemm_peak_gflops": round(peak / 1e9, 1),
            "peak_train_images_per_s": round(peak / train_flops, 1),
            "plain_loop_share_of_peak": round((n / t_plain) * train_flops / peak, 3)}
    return rows, info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2048, help="training images (one epoch)")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile row")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run of this script)")
    ap.add_argument("--no-write", action="store_true", help="print only, do not touch results/")
    ap.add_argument("--on-gpu-machine", action="store_true",
                    help="run on a machine with a GPU anyway (it measures that machine's CPU)")
    args = ap.parse_args(argv)
    if torch.cuda.is_available() and not args.on_gpu_machine:
        # this benchmark is of CPU training (models and data stay on the CPU): on a GPU node it would time
        # the node's CPU under the GPU's name; benchmarks/bench_gpu_training.py is the GPU one
        print("bench_training: a CPU benchmark; this machine has a GPU, see bench_gpu_training.py "
              "(--on-gpu-machine to time this CPU anyway)")
        return 0
    n = 256 if args.quick else args.n
    t0 = time.perf_counter()
    rows, info = bench(n, not args.no_compile and not args.quick)
    print(f"device: {get_device()}, torch threads: {torch.get_num_threads()}, torch {torch.__version__}")
    print(f"{'variant':50s} {'images':>6s} {'wall s':>7s} {'img/s':>7s} {'vs plain':>8s}  notes")
    for r in rows:
        if "error" in r:
            print(f"{r['variant']:50s} failed: {r['error']}")
            continue
        sp = "" if r["speedup_vs_plain"] is None else f"{r['speedup_vs_plain']:.2f}x"
        notes = ", ".join(f"{k} {r[k]}" for k in ("compile_s", "max_param_diff", "max_logit_diff") if k in r)
        print(f"{r['variant']:50s} {r['images']:6d} {r['wall_s']:7.2f} {r['images_per_s']:7.1f} {sp:>8s}  {notes}")
    print(f"peak estimate: {info['gemm_peak_gflops']} GFLOP/s (1024^2 GEMM), CNN forward "
          f"{info['forward_gflop_per_image']} GFLOP/image -> at most {info['peak_train_images_per_s']} training "
          f"images/s; the plain loop reaches {100 * info['plain_loop_share_of_peak']:.0f} % of that")
    total = time.perf_counter() - t0
    print(f"total {total:.1f} s")
    if not args.no_write:
        out = ROOT / "results" / "bench-cpu.json"  # models and data stay on the CPU whatever the machine has
        merge_json(out, "training", {"rows": rows, **info, "n": n, "platform": platform.platform(),
                                     "torch": torch.__version__, "threads": torch.get_num_threads(),
                                     "quick": bool(args.quick), "wall_s": round(total, 1)})
        print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
