"""Chapter 04's figures: 004 figures 1, 2 (snapshots of one example), 4 and 5 (curves per pair)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from softlib.chapters.ch04 import overoptimize as oo
from softlib.models import predict
from softlib.runtime import get_device

if TYPE_CHECKING:
    import pandas as pd


def describe_images(model: nn.Module, x: torch.Tensor, k: int = 3, *, device: torch.device | None = None) -> pd.DataFrame:
    """Top-``k`` classes, class activations (CA1..CAk) and the float32 softmax of the top class, per image."""
    import pandas as pd

    z = torch.from_numpy(predict(model, x, device=device or get_device(), features=False)["logits"])
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


def snapshot_run(model: nn.Module, x1: torch.Tensor, targets: np.ndarray, attack: str, *, iters: int,
                 pixel_scale: float, device: torch.device | None = None) -> tuple[np.ndarray, pd.DataFrame]:
    """One example's attack replayed and kept at the steps :func:`figure_steps` picks (004 figures 1, 2).

    ``x1`` (1, C, H, W); ``targets`` the example's target classes (one for ``"overoptimized"``,
    two for ``"multiclass"``). The attack is deterministic, so a first run finds the steps and a
    second keeps their images. Returns the images (K, C, H, W) at step 0 and those steps, and
    their :func:`describe_images` table with a ``step`` column first.
    """
    c = torch.as_tensor(np.asarray(targets), dtype=torch.long)
    kw = dict(iters=iters, pixel_scale=pixel_scale, device=device, progress=False)

    def run(**extra: Any) -> dict[str, np.ndarray]:
        if attack == "overoptimized":
            return oo.over_optimize(model, x1, c[:1], **kw, **extra)
        return oo.multiclass_optimize(model, x1, c[:1], c[1:2], **kw, **extra)

    steps = [0] + [s for s in figure_steps(run(), attack) if s > 0]
    imgs = run(keep_steps=steps)["images"][0]
    desc = describe_images(model, torch.from_numpy(imgs), device=device)
    desc.insert(0, "step", steps)
    return imgs, desc
