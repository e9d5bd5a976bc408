"""Shared plotting helpers: one colour per set, violins, min/max scatter plots, image grids.

Used by chapter 02 (000 figures 1-4) and any chapter that shows sets side by side.
Every function draws on matplotlib axes it creates or is given and returns the figure
or axes; notebooks call ``plt.show()``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from .validate import SoftlibError

#: A fixed colour per set name, so a set looks the same in every figure of the book.
_ORDER = ("mnist", "cifar10", "fashion_mnist", "gaussian", "uniform", "natural", "fgsm", "bim", "deepfool",
          "maxconf", "pgd", "errors")
_COLOURS = dict(zip(_ORDER, sns.color_palette("tab10", 10) + sns.color_palette("Dark2", 2)))


#: The book's figure style: one look across chapters (rcParams on top of matplotlib's defaults).
#: Sizes suit a page column about 750 px wide; the colour cycle is the one the set colours use.
BOOK_STYLE: dict[str, object] = {
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.titlelocation": "center",
    "axes.prop_cycle": plt.cycler(color=sns.color_palette("tab10")),
    "lines.linewidth": 1.5,
    "lines.markersize": 4,
    "image.cmap": "viridis",
}


def use_book_style() -> None:
    """Apply :data:`BOOK_STYLE` (every chapter's setup cell calls it after importing pyplot).

    Called after ``import matplotlib.pyplot``, so it wins over the inline backend's own
    defaults (which set a 72 dpi figure and font size 10 when the backend loads).
    """
    plt.rcParams.update(BOOK_STYLE)


def set_colour(name: str) -> tuple[float, float, float]:
    """The colour of set ``name`` (grey for names not in the book's list)."""
    return _COLOURS.get(name, (0.5, 0.5, 0.5))


def palette(names: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """``{name: colour}`` for seaborn's ``palette=``."""
    return {n: set_colour(n) for n in names}


def violins(frame: pd.DataFrame, *, value: str, order: Sequence[str], labels: Mapping[str, str] | None = None,
            ax: plt.Axes | None = None, title: str = "", ylabel: str | None = None) -> plt.Axes:
    """Violin plot of column ``value`` of ``frame`` per ``set`` (000 figure 1 style), sets in ``order``."""
    missing = [s for s in order if s not in set(frame["set"])]
    if missing:
        raise SoftlibError(f"sets {missing} are not in the frame; it has {sorted(set(frame['set']))}")
    ax = ax or plt.subplots(figsize=(1.1 * len(order) + 2, 4))[1]
    sns.violinplot(data=frame, x="set", y=value, hue="set", order=list(order), hue_order=list(order),
                   palette=palette(order), cut=0, inner="quartile", linewidth=0.8, legend=False, ax=ax)
    labels = labels or {}
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels([labels.get(s, s) for s in order], rotation=30, ha="right")
    ax.set_xlabel("")
    ax.set_ylabel(ylabel or value)
    ax.set_title(title)
    return ax


def minmax_scatter(frame: pd.DataFrame, sets: Sequence[str], *, representation: str, ax: plt.Axes,
                   labels: Mapping[str, str] | None = None, max_points: int = 300, seed: int = 0) -> plt.Axes:
    """Scatter of the per-example max (x) against min (y) for ``sets`` (000 figures 2-4).

    At most ``max_points`` random points per set (002 figure 2 shows 300) for visibility.
    """
    rng = np.random.default_rng(seed)
    labels = labels or {}
    sub = frame[frame["representation"] == representation]
    for s in sets:
        part = sub[sub["set"] == s]
        if len(part) > max_points:
            part = part.iloc[np.sort(rng.choice(len(part), max_points, replace=False))]
        ax.scatter(part["max"], part["min"], s=7, alpha=0.55, color=set_colour(s), label=labels.get(s, s),
                   edgecolors="none")
    ax.set_xlabel("max value")
    ax.set_ylabel("min value")
    ax.set_title(representation.upper())
    return ax


def minmax_figure(frame: pd.DataFrame, panels: Mapping[str, Sequence[str]], *,
                  labels: Mapping[str, str] | None = None, max_points: int = 300) -> plt.Figure:
    """One row per panel (e.g. a family of sets, each with the legitimate set), logits left, softmax right."""
    if not panels:
        raise SoftlibError("panels is empty")
    fig, axes = plt.subplots(len(panels), 2, figsize=(10, 3.6 * len(panels)), squeeze=False)
    for row, (title, sets) in enumerate(panels.items()):
        for col, rep in enumerate(("logits", "softmax")):
            ax = minmax_scatter(frame, sets, representation=rep, ax=axes[row, col], labels=labels,
                                max_points=max_points)
            ax.set_title(f"{title}: {rep.upper()}")
        axes[row, 1].legend(loc="best", fontsize=8, markerscale=2, frameon=False)
    fig.tight_layout()
    return fig


def image_grid(images: Mapping[str, torch.Tensor], *, n: int = 8, labels: Mapping[str, str] | None = None,
               captions: Mapping[str, Sequence[str]] | None = None) -> plt.Figure:
    """The first ``n`` images of each set, one row per set (grey or RGB, pixels in [0, 1])."""
    if not images:
        raise SoftlibError("images is empty")
    labels = labels or {}
    fig, axes = plt.subplots(len(images), n, figsize=(1.05 * n + 1.2, 1.15 * len(images)), squeeze=False)
    for r, (name, x) in enumerate(images.items()):
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(x):
                img = x[c].detach().cpu().float()
                if img.shape[0] == 1:
                    ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
                else:
                    ax.imshow(img.permute(1, 2, 0).clamp(0, 1).numpy())
                if captions and name in captions and c < len(captions[name]):
                    ax.set_title(captions[name][c], fontsize=7, pad=2)
        axes[r, 0].set_ylabel(labels.get(name, name), rotation=0, ha="right", va="center", fontsize=9)
    fig.tight_layout()
    return fig
