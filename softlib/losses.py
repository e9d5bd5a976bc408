"""Training losses of chapter 05 (paper 003, Lemesle & Vernade) and their prediction rules.

Four losses, each a function ``loss(logits (N, C), labels (N,)) -> scalar mean``:

- ``"ce"``: cross-entropy, 003 eq. (1): :math:`CE(x, y) = -\\log F(x)_y`.
- ``"rce"``: reverse cross-entropy, 003 section 3.1 (from Pang et al. 2018,
  "Towards Robust Detection of Adversarial Examples"):
  :math:`RCE(x, y) = -R_y^\\top \\log F(x)` with :math:`R_y^y = 0`,
  :math:`R_y^{i \\ne y} = 1/(N-1)`. Training with it gives a *reverse* classifier:
  "the true class has the minimal probability while the other classes are
  equiprobable" (003 section 3.1).
- ``"ovm"``: output variance minimisation, 003 section 3.2:
  :math:`CE + \\lambda \\frac{1}{|X|}\\sum_i \\sum_{x \\in X_i} \\|\\log F(x) - \\overline{\\log F(X_i)}\\|_2`
  with per-class means taken within the batch, the L2 norm not squared (as
  written in 003), :math:`\\lambda = 1` (003 section 4.1).
- ``"ls_lsq"``: label smoothing + logit squeezing, 003 eq. (3):
  :math:`CE - \\lambda_1 R_y^\\top \\log F(x) + \\lambda_2 \\|Z(x)\\|_2`.

Prediction rule (:func:`predict_labels`): ``argmax`` of the logits for every
loss except ``"rce"``, which predicts ``argmin`` of the softmax, i.e.
``argmax(-Z)``. This follows Pang et al. 2018 (test phase: the final logits are
negated before the softmax) and their code (github.com/P2333/Reverse-Cross-Entropy,
``test_nor.py``: ``if FLAGS.RCE_train: predictions = np.argmin(predictions, axis=1)``);
003 section 3.1 states the same property ("the true class has the minimal
probability"). :func:`prediction_logits` returns the logits whose argmax /
softmax / cross-entropy have the usual meaning (``-Z`` for RCE), which is what
attacks and accuracy must use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from .validate import SoftlibError, check_choice, check_float

#: Loss names accepted by :func:`get_loss` and :func:`predict_labels`.
LOSSES: tuple[str, ...] = ("ce", "rce", "ovm", "ls_lsq")

#: Parameters each loss accepts, with their defaults (003 section 4.1: lambda = 1 for OVM;
#: 003 eq. 3 gives no default for lambda1/lambda2, 0 makes ls_lsq equal to CE).
LOSS_PARAMS: dict[str, dict[str, float]] = {
    "ce": {},
    "rce": {},
    "ovm": {"lambda_": 1.0},
    "ls_lsq": {"lambda1": 0.0, "lambda2": 0.0},
}

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_inputs(logits: torch.Tensor, labels: torch.Tensor) -> None:
    """Raise SoftlibError unless logits is (N, C>=2) float and labels (N,) ints in [0, C)."""
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or not torch.is_floating_point(logits):
        raise SoftlibError(
            f"logits must be a float tensor of shape (N, C), got "
            f"{type(logits).__name__} {tuple(getattr(logits, 'shape', ()))}"
        )
    if logits.shape[1] < 2:
        raise SoftlibError(f"logits need at least 2 classes, got shape {tuple(logits.shape)}")
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or labels.shape[0] != logits.shape[0]:
        raise SoftlibError(
            f"labels must be a tensor of shape ({logits.shape[0]},), got {tuple(getattr(labels, 'shape', ()))}"
        )
    if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise SoftlibError(f"labels must be integer class indices, got dtype {labels.dtype}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= logits.shape[1]):
        raise SoftlibError(
            f"labels must be in [0, {logits.shape[1] - 1}], got range [{int(labels.min())}, {int(labels.max())}]"
        )


def _reverse_term(logp: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample :math:`-R_y^\\top \\log F(x)`: mean of ``-log p`` over the wrong classes."""
    n_classes = logp.shape[1]
    total = logp.sum(dim=1)
    own = logp.gather(1, labels.long().unsqueeze(1)).squeeze(1)
    return -(total - own) / (n_classes - 1)


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy :math:`-\\log F(x)_y` (003 eq. 1)."""
    _check_inputs(logits, labels)
    return F.cross_entropy(logits, labels.long())


def reverse_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean reverse cross-entropy :math:`-R_y^\\top \\log F(x)` (003 section 3.1)."""
    _check_inputs(logits, labels)
    return _reverse_term(F.log_softmax(logits, dim=1), labels).mean()


def output_variance(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """OVM regulariser: :math:`\\frac{1}{|X|}\\sum_i\\sum_{x\\in X_i}\\|\\log F(x) - \\overline{\\log F(X_i)}\\|_2`.

    Per-class means are taken over the samples of that class in the batch (003
    section 3.2); vectorised with a one-hot matrix, no loop over classes.
    """
    _check_inputs(logits, labels)
    logp = F.log_softmax(logits, dim=1)
    onehot = F.one_hot(labels.long(), logits.shape[1]).to(logp.dtype)  # (N, C)
    counts = onehot.sum(dim=0).clamp_min(1.0)  # (C,)
    means = (onehot.T @ logp) / counts.unsqueeze(1)  # (C, C): row i = mean log F over X_i
    dev = logp - means[labels.long()]
    return _safe_norm(dev).mean()


def _safe_norm(v: torch.Tensor) -> torch.Tensor:
    """Row-wise L2 norm whose gradient is 0 (not NaN) at a zero row.

    A class with a single sample in the batch has zero deviation from its own
    mean; the plain norm has an undefined gradient there.
    """
    sq = (v * v).sum(dim=1)
    zero = sq <= 0
    safe = torch.where(zero, torch.ones_like(sq), sq)
    return torch.where(zero, torch.zeros_like(sq), safe.sqrt())


def make_ce() -> LossFn:
    """Cross-entropy loss (003 eq. 1)."""
    return cross_entropy


def make_rce() -> LossFn:
    """Reverse cross-entropy loss (003 section 3.1; Pang et al. 2018)."""
    return reverse_cross_entropy


def make_ovm(lambda_: float = 1.0) -> LossFn:
    """CE + ``lambda_`` * OVM regulariser (003 section 3.2; lambda = 1 in 003 section 4.1)."""
    lam = check_float("ovm lambda_", lambda_, low=0.0)

    def ovm(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return cross_entropy(logits, labels) + lam * output_variance(logits, labels)

    return ovm


def make_ls_lsq(lambda1: float = 0.0, lambda2: float = 0.0) -> LossFn:
    """003 eq. 3: CE - ``lambda1`` R_y^T log F(x) + ``lambda2`` ||Z(x)||_2 (batch mean)."""
    l1 = check_float("ls_lsq lambda1", lambda1, low=0.0)
    l2 = check_float("ls_lsq lambda2", lambda2, low=0.0)

    def ls_lsq(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        _check_inputs(logits, labels)
        logp = F.log_softmax(logits, dim=1)
        ce = F.nll_loss(logp, labels.long(), reduction="none")
        per = ce + l1 * _reverse_term(logp, labels) + l2 * _safe_norm(logits)
        return per.mean()

    return ls_lsq


_FACTORIES: dict[str, Callable[..., LossFn]] = {
    "ce": make_ce,
    "rce": make_rce,
    "ovm": make_ovm,
    "ls_lsq": make_ls_lsq,
}


def get_loss(name: str, **params: Any) -> LossFn:
    """Return the loss ``name`` (one of :data:`LOSSES`) with ``params``.

    Parameters: ``"ovm"`` takes ``lambda_`` (alias ``lambda``, default 1);
    ``"ls_lsq"`` takes ``lambda1`` and ``lambda2`` (default 0). ``"ce"`` and
    ``"rce"`` take none. The returned callable maps ``(logits (N, C), labels (N,))``
    to the batch-mean loss.

    >>> get_loss("ls_lsq", lambda1=0.4, lambda2=0.1)  # doctest: +ELLIPSIS
    <function make_ls_lsq.<locals>.ls_lsq at ...>
    """
    check_choice("loss", name, LOSSES)
    params = dict(params)
    if name == "ovm" and "lambda" in params:
        params["lambda_"] = params.pop("lambda")
    allowed = LOSS_PARAMS[name]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise SoftlibError(
            f"unknown parameter(s) {unknown} for loss {name!r}; allowed: {sorted(allowed) or 'none'}"
        )
    return _FACTORIES[name](**params)


def prediction_logits(name: str, logits: torch.Tensor) -> torch.Tensor:
    """Logits whose argmax is the prediction: ``-logits`` for ``"rce"``, else ``logits``.

    For an RCE-trained model the softmax of ``-Z`` puts the largest probability
    on the predicted class (Pang et al. 2018, test phase), so cross-entropy-based
    attacks (FGSM, BIM, PGD) and argmax accuracy are meaningful on these.
    """
    check_choice("loss", name, LOSSES)
    return -logits if name == "rce" else logits


def predict_labels(name: str, logits: torch.Tensor) -> torch.LongTensor:
    """Predicted class per row of ``logits`` for a model trained with loss ``name``.

    ``argmax(logits)`` except for ``"rce"``: ``argmin(logits)`` = ``argmax(-logits)``
    (Pang et al. 2018; P2333/Reverse-Cross-Entropy ``test_nor.py``).
    """
    check_choice("loss", name, LOSSES)
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        raise SoftlibError(f"logits must be a tensor of shape (N, C), got {tuple(getattr(logits, 'shape', ()))}")
    return prediction_logits(name, logits).argmax(dim=1)
