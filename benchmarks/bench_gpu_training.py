"""Benchmark: where GPU training time goes for the paper profile's networks, and what would cut it.

On a GPU the paper profile is dominated by training (``python -m softlib.tooling.probe``): ResNet-32
for 200 epochs (003 table 1) and WRN-28-8 (000 section 4.3). For each of ResNet-32 (batch 256),
WRN-28-8 (batch 128) and the 000 table-1 CNN (batch 64), on MNIST, same initial weights, this times
``steps`` optimizer steps of:

- ``softlib train_model``: the book's loop as it trains today (deterministic kernels, batches
  indexed on the CPU and copied, a finite-loss check and the running loss read back every step);
- ``plain``: the same recipe and augmentation with the data already on the GPU and no read-back
  inside the epoch (deterministic kernels still on);
- ``+ cudnn.benchmark``: deterministic kernels off and cuDNN's autotuner on;
- ``+ channels-last``, ``+ bf16 autocast`` and both.

Images per second and the speedup over ``softlib train_model``. A GPU only (exits on a CPU).
Merges a ``"gpu_training"`` key into ``results/bench-<device>.json``.

    python benchmarks/bench_gpu_training.py [--steps 30]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from softlib.data import load_split  # noqa: E402
from softlib.losses import get_loss  # noqa: E402
from softlib.models import build_model  # noqa: E402
from softlib.runtime import generator, seed_everything  # noqa: E402
from softlib.tooling.record import merge_json  # noqa: E402
from softlib.train import RECIPES, _optimizer, augment_batch, train_model  # noqa: E402

NETS = {"resnet-32": ("resnet", {"depth": 32}), "wrn-28-8": ("wrn", {"depth": 28, "width": 8}), "cnn": ("cnn", {})}


def _sync() -> None:
    torch.cuda.synchronize()


def plain(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, arch: str, steps: int, *,
          channels_last: bool = False, bf16: bool = False) -> float:
    """``steps`` steps of the recipe with data on the GPU and no per-step read-back; returns seconds."""
    r = RECIPES[arch]
    opt = _optimizer(model, r)
    loss_fn = get_loss("ce")
    g = generator(0)
    model.train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        model.to(memory_format=torch.channels_last)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    total = torch.zeros((), device=x.device)

    def step(i: int) -> None:
        nonlocal total
        sl = slice((i * r.batch_size) % len(x), (i * r.batch_size) % len(x) + r.batch_size)
        xb = augment_batch(x[sl], r.augment, g).contiguous(memory_format=fmt)
        opt.zero_grad(set_to_none=True)
        with amp:
            loss = loss_fn(model(xb), y[sl])
        loss.backward()
        opt.step()
        total = total + loss.detach()

    for i in range(3):  # warm-up: cuDNN autotuning, allocator
        step(i)
    _sync()
    t0 = time.perf_counter()
    for i in range(steps):
        step(i)
    _sync()
    wall = time.perf_counter() - t0
    if not torch.isfinite(total):
        raise FloatingPointError("loss diverged")
    return wall


def bench(steps: int) -> list[dict[str, Any]]:
    dev = torch.device("cuda")
    xt, yt = load_split("mnist", train=True)
    rows: list[dict[str, Any]] = []
    for name, (arch, opts) in NETS.items():
        batch = RECIPES[arch].batch_size
        n = batch * steps
        x, y = xt[:n].contiguous(), yt[:n].contiguous()
        torch.manual_seed(0)
        init = build_model(arch, num_classes=10, in_channels=1, image_size=28, **opts)
        base = None

        def row(variant: str, wall: float, name: str = name, batch: int = batch, n: int = n, **extra: Any) -> None:
            nonlocal base
            base = base or wall
            rows.append({"net": name, "batch": batch, "variant": variant, "images": n, "wall_s": round(wall, 3),
                         "images_per_s": round(n / wall, 1), "speedup": round(base / wall, 2), **extra})

        try:
            seed_everything(0)  # what the book sets: deterministic kernels, no cuDNN autotuning
            m = copy.deepcopy(init).to(dev)
            train_model(m, x[:batch * 3], y[:batch * 3], epochs=1, recipe=RECIPES[arch], seed=0, device=dev)  # warm-up
            m = copy.deepcopy(init).to(dev)
            _sync()
            t0 = time.perf_counter()
            train_model(m, x, y, epochs=1, recipe=RECIPES[arch], seed=0, device=dev)
            _sync()
            row("softlib train_model (as the book trains)", time.perf_counter() - t0)
            xg, yg = x.to(dev), y.to(dev)
            row("plain: data on the GPU, no per-step read-back", plain(copy.deepcopy(init).to(dev), xg, yg, arch, steps))
            torch.use_deterministic_algorithms(False)
            torch.backends.cudnn.benchmark = True
            for label, kw in (("+ cudnn.benchmark, deterministic off", {}),
                              ("+ cudnn.benchmark + channels-last", {"channels_last": True}),
                              ("+ cudnn.benchmark + bf16 autocast", {"bf16": True}),
                              ("+ cudnn.benchmark + channels-last + bf16", {"channels_last": True, "bf16": True})):
                row(label, plain(copy.deepcopy(init).to(dev), xg, yg, arch, steps, **kw))
        except Exception as exc:  # noqa: BLE001 - one net failing must not lose the others' rows
            rows.append({"net": name, "variant": "error", "error": f"{type(exc).__name__}: {exc}"[:300]})
        finally:
            seed_everything(0)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30, help="timed optimizer steps per variant (>= 5)")
    ap.add_argument("--no-write", action="store_true", help="print only, do not touch results/")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_gpu_training: no CUDA device here; nothing to measure")
        return 0
    if args.steps < 5:
        print(f"--steps must be >= 5, got {args.steps}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    rows = bench(args.steps)
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print(f"{'net':10s} {'variant':48s} {'images':>6s} {'wall s':>7s} {'img/s':>8s} {'speedup':>7s}")
    for r in rows:
        if "error" in r:
            print(f"{r['net']:10s} failed: {r['error']}")
            continue
        print(f"{r['net']:10s} {r['variant']:48s} {r['images']:6d} {r['wall_s']:7.2f} {r['images_per_s']:8.0f} "
              f"{r['speedup']:6.2f}x")
    total = time.perf_counter() - t0
    print(f"total {total:.1f} s")
    if not args.no_write:
        out = ROOT / "results" / f"bench-{torch.cuda.get_device_name().lower().replace(' ', '-')}.json"
        merge_json(out, "gpu_training", {"rows": rows, "steps": args.steps, "platform": platform.platform(),
                                         "torch": torch.__version__, "wall_s": round(total, 1)})
        print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
