"""Benchmark: several trainings sharing one GPU, as several Dask workers on one GPU would run them.

The paper profile trains many small networks (chapter 05: ResNet-32s, 36 grid cells) that use a
large GPU poorly one at a time (benchmarks/bench_gpu_training.py). This starts N processes
(N = 1, 2, 4, 8), each training ResNet-32 (batch 256, the book's ``train_model``) on ``steps`` x 256
MNIST images after a common start time, and reports the aggregate images per second: the
speedup available from running independent tasks side by side on one GPU.

    python benchmarks/bench_gpu_concurrency.py [--steps 120] [--procs 1 2 4 8]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, sys, time, torch
from softlib.data import load_split
from softlib.models import build_model
from softlib.runtime import seed_everything
from softlib.train import RECIPES, train_model
steps, start = int(sys.argv[1]), float(sys.argv[2])
seed_everything(0)
dev = torch.device("cuda")
x, y = load_split("mnist", train=True)
n = 256 * steps
x, y = x[:n].contiguous(), y[:n].contiguous()
m = build_model("resnet", depth=32).to(dev)
train_model(m, x[:768], y[:768], epochs=1, recipe=RECIPES["resnet"], seed=0, device=dev)  # warm-up
torch.cuda.synchronize()
time.sleep(max(0.0, start - time.time()))
t0 = time.time()
train_model(m, x, y, epochs=1, recipe=RECIPES["resnet"], seed=0, device=dev)
torch.cuda.synchronize()
print(json.dumps({"t0": t0, "t1": time.time(), "images": n}))
"""


def round_(n_procs: int, steps: int) -> dict[str, float]:
    start = time.time() + 15.0  # every child has imported torch and warmed up by then
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(steps), str(start)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for _ in range(n_procs)]
    outs = [json.loads(p.communicate(timeout=300)[0].strip().splitlines()[-1]) for p in procs]
    t0, t1 = min(o["t0"] for o in outs), max(o["t1"] for o in outs)
    images = sum(o["images"] for o in outs)
    late = max(o["t0"] for o in outs) - start
    return {"procs": n_procs, "images": images, "wall_s": round(t1 - t0, 3),
            "images_per_s": round(images / (t1 - t0), 1), "latest_start_s": round(late, 3)}


def main(argv: list[str] | None = None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_gpu_concurrency: no CUDA device here; nothing to measure")
        return 0
    rows = []
    for n in args.procs:
        try:
            r = round_(n, args.steps)
        except Exception as exc:  # noqa: BLE001 - report and go on
            r = {"procs": n, "error": f"{type(exc).__name__}: {exc}"[:300]}
        rows.append(r)
        print(json.dumps(r), flush=True)
    base = next((r["images_per_s"] for r in rows if r.get("procs") == 1 and "images_per_s" in r), None)
    for r in rows:
        if base and "images_per_s" in r:
            r["speedup_vs_1"] = round(r["images_per_s"] / base, 2)
    print(f"{'procs':>5s} {'img/s':>9s} {'vs 1':>6s}")
    for r in rows:
        print(f"{r['procs']:5d} {r.get('images_per_s', float('nan')):9.0f} {r.get('speedup_vs_1', float('nan')):6.2f}")
    if not args.no_write:
        from softlib.tooling.record import merge_json

        out = ROOT / "results" / f"bench-{torch.cuda.get_device_name().lower().replace(' ', '-')}.json"
        merge_json(out, "gpu_concurrency", {"rows": rows, "net": "resnet-32, batch 256, train_model",
                                            "steps": args.steps, "platform": platform.platform(),
                                            "torch": torch.__version__})
        print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
