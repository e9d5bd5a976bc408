"""Chapter 05's models seen through their loss' prediction rule (paper 003, Lemesle & Vernade).

- **The RCE prediction rule.** An RCE model predicts ``argmax(-Z)`` (Pang et al. 2018;
  see :mod:`softlib.losses`). :class:`PredictionView` wraps a model so that its output is
  ``-Z`` for RCE (unchanged otherwise): torchattacks' cross-entropy attacks then push
  away from the class the model actually predicts, and argmax accuracy is right. The
  hidden layer is not affected.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from softlib.losses import LOSSES, prediction_logits
from softlib.models import model_loss, predict
from softlib.validate import check_choice, check_images


class PredictionView(nn.Module):
    """``model`` seen through the prediction rule of the loss it was trained with.

    ``forward`` returns :func:`softlib.losses.prediction_logits` (``-Z`` for ``"rce"``, ``Z``
    otherwise), so argmax is the prediction and the softmax / cross-entropy of the output
    mean what attacks assume. ``features`` and ``forward_with_features`` keep the model's
    last hidden layer. The view is not a :class:`softlib.models.TrainedModel`, so
    :func:`softlib.models.model_loss` reads ``"ce"`` for it: the rule is never applied twice.
    """

    def __init__(self, model: nn.Module, loss: str) -> None:
        super().__init__()
        self.model = model
        self.loss = check_choice("loss", loss, LOSSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return prediction_logits(self.loss, self.model(x))

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, z = self.model.forward_with_features(x)
        return h, prediction_logits(self.loss, z)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.features(x)


def hidden_and_predictions(
    model: nn.Module, x: torch.Tensor, *, loss: str | None = None, batch_size: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Last hidden layer (N, H) float32 and predicted labels (N,) int64 (the loss' rule), batched.

    ``loss``: default the model's (:func:`softlib.models.model_loss`).
    """
    check_images("x", x)
    view = model if isinstance(model, PredictionView) else PredictionView(model, model_loss(model, loss))
    if not len(x):
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    out = predict(view, x, batch_size=batch_size)
    return out["hidden"], out["logits"].argmax(axis=1).astype(np.int64)
