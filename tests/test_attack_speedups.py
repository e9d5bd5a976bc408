"""The speed-ups of softlib.attacks give the results of the plain versions.

- MaxConfidence with its C-1 targeted PGDs stacked into one batch vs the loop over targets
  (same random starts, so the same images up to float rounding).
- run_attack freezes the model's weights while it attacks and gives them back.
"""

from __future__ import annotations

import torch
from test_attacks import EPS, make_toy, toy_data

from softlib.attacks import MaxConfidence, run_attack


def test_batched_maxconfidence_matches_the_loop():
    model = make_toy(1)
    x, y = toy_data(40, seed=5)
    for rows in (4096, 37):  # one stacked batch; chunks that split targets
        torch.manual_seed(0)
        loop = MaxConfidence(model, eps=EPS, alpha=EPS / 6, steps=5, batched=False)(x, y)
        torch.manual_seed(0)
        batched = MaxConfidence(model, eps=EPS, alpha=EPS / 6, steps=5, batched=True, max_rows=rows)(x, y)
        diff = (loop - batched).abs()
        # a pixel may differ only where a gradient component sits at rounding level (sign flip)
        assert float((diff > 1e-6).float().mean()) < 1e-3, float(diff.max())
        with torch.no_grad():
            assert torch.equal(model(loop).argmax(1), model(batched).argmax(1))
        assert float((batched - x).abs().max()) <= EPS + 1e-6


def test_maxconfidence_keeps_lowest_target_on_ties():
    """A model that ignores its input: every target gives the same score, the loop keeps target 0's run."""

    class Constant(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1)[:, :10] * 0 + self.w

    x, y = toy_data(12, seed=2)
    for batched in (False, True):
        torch.manual_seed(0)
        out = MaxConfidence(Constant(), eps=EPS, alpha=EPS / 6, steps=1, batched=batched)(x, y)
        torch.manual_seed(0)
        first_start = torch.clamp(x[y != 0] + torch.empty_like(x[y != 0]).uniform_(-EPS, EPS), 0, 1)
        assert torch.equal(out[y != 0], first_start)


def test_run_attack_gives_the_weights_back():
    model = make_toy(0)
    x, y = toy_data(16, seed=1)
    before = [p.requires_grad for p in model.parameters()]
    run_attack("pgd", model, x, y, eps=EPS, steps=2)
    assert [p.requires_grad for p in model.parameters()] == before and all(before)
