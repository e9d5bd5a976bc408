"""Chapter 05's feature spaces: t-SNE pictures and a compactness number (paper 003 figures 2-3)."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from softlib.cache import cached_arrays
from softlib.chapters.ch05.outcomes import CODE_VERSION
from softlib.validate import SoftlibError, check_features, check_float, check_int


def tsne_embedding(
    features: Any, labels: Any, *, n: int = 1000, seed: int = 0, perplexity: float = 30.0
) -> tuple[np.ndarray, np.ndarray]:
    """2-D t-SNE (van der Maaten & Hinton 2008) of a seeded subsample of ``features``.

    Returns ``(embedding (m, 2), labels (m,))`` with ``m = min(n, N)``; PCA initialisation,
    ``random_state=seed``; perplexity capped at ``(m - 1) / 3``. Cached on a hash of the input.
    """
    from sklearn.manifold import TSNE

    X = check_features("features", features)
    labels = np.asarray(labels)
    if labels.shape != (len(X),):
        raise SoftlibError(f"labels must have shape ({len(X)},), got {labels.shape}")
    n = check_int("n", n, low=5)
    perplexity = check_float("perplexity", perplexity, low=1.0)
    if len(X) < 5:
        raise SoftlibError(f"t-SNE needs at least 5 points, got {len(X)}")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(X), size=min(n, len(X)), replace=False))
    sub, lab = X[idx].astype(np.float32), labels[idx]
    perp = min(perplexity, (len(sub) - 1) / 3)

    def build() -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        emb = TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed).fit_transform(sub)
        return {"embedding": emb.astype(np.float32)}, {}

    spec = {"code": CODE_VERSION, "what": "tsne", "sha": hashlib.sha256(sub.tobytes()).hexdigest()[:20],
            "seed": seed, "perplexity": perp}
    arrays, _ = cached_arrays("tsne", spec, build)
    return arrays["embedding"], lab


def class_compactness(hidden: Any, labels: Any) -> float:
    """How tight the classes are in a feature space: mean distance of a point to its class
    mean divided by the mean distance between class means (scale-free; lower = more compact).

    A number for what 003 figures 2-3 show with t-SNE ("more compact distributions").
    """
    H = check_features("hidden", hidden)
    labels = np.asarray(labels)
    if labels.shape != (len(H),):
        raise SoftlibError(f"labels must have shape ({len(H)},), got {labels.shape}")
    classes = np.unique(labels)
    if len(classes) < 2:
        raise SoftlibError("class_compactness needs at least 2 classes")
    means = np.stack([H[labels == c].mean(0) for c in classes])
    within = np.mean(np.linalg.norm(H - means[np.searchsorted(classes, labels)], axis=1))
    between = np.mean([np.linalg.norm(a - b) for i, a in enumerate(means) for b in means[i + 1:]])
    return float(within / between) if between > 0 else float("inf")
