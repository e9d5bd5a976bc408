"""Chapter 04's claims (softlib.chapters.ch04.claims) on small synthetic trajectories: every outcome of every claim."""

from __future__ import annotations

import numpy as np
import pytest

from softlib import claims
from softlib.chapters.ch04 import claims as c4

N, E = 80, 25


def trajectories(*, lead: int = 2, act_signal: float = 1.0, mc_below: float = 0.9, ov_below: float = 0.1,
                 mc_soft_signal: float = 0.0, mc_act_signal: float = 1.0, seed: int = 0) -> dict:
    """Two models A and B, both attacks; every example transfers at a random step ``tr``.

    Over-optimised: the softmax reads 1.0 from step ``tr - lead`` on; the activation slope grows
    with ``act_signal`` for early-transferring examples (negative: for late ones, 0: unrelated).
    Multi-class: softmax ``0.6 + mc_soft_signal * (early-ness)`` (plus noise), activation with
    ``mc_act_signal``; a share ``mc_below`` (``ov_below`` for over-optimised) ends below 1.0.
    """
    rng = np.random.default_rng(seed)
    steps = np.arange(E)
    arr = {"y": np.zeros(N, np.int64), "targets": np.ones(N, np.int64)}
    for src, dst in (("A", "B"), ("B", "A")):
        tr = rng.integers(4, E - 4, N)
        early = (E - tr) / E  # larger = transfers earlier
        noise = rng.normal(size=N)
        pred = np.where(steps[None] >= tr[:, None], 1, 0).astype(np.int16)
        # over-optimised
        slope = 1.0 + act_signal * early + (0.3 * noise if act_signal == 0 else 0.0)
        soft = np.where(steps[None] >= (tr - lead)[:, None], 1.0, 0.9).astype(np.float32)
        below = rng.random(N) < ov_below
        soft[below, -1] = 0.99
        pre = f"overoptimized/{src}"
        arr.update({f"{pre}/top_act": (slope[:, None] * (steps[None] + 1)).astype(np.float32),
                    f"{pre}/top_soft": soft, f"{pre}/eval_steps": steps, f"{pre}/targets": np.ones((N, 1), np.int64),
                    f"{pre}/observer/{dst}": pred})
        # multi-class
        mslope = 1.0 + mc_act_signal * early + 0.1 * noise
        msoft = np.clip(0.6 + mc_soft_signal * early + 0.05 * rng.normal(size=N), 0.5, 0.99)
        msoft = np.repeat(msoft[:, None], E, axis=1).astype(np.float32)
        mbelow = rng.random(N) < mc_below
        msoft[~mbelow, -1] = 1.0
        pre = f"multiclass/{src}"
        arr.update({f"{pre}/top_act": (mslope[:, None] * (steps[None] + 1)).astype(np.float32),
                    f"{pre}/top_soft": msoft, f"{pre}/eval_steps": steps,
                    f"{pre}/targets": np.tile([1, 2], (N, 1)), f"{pre}/observer/{dst}": pred})
    return arr


def res(arrays: dict, natural: float = 10.0) -> dict:
    return {"arrays": arrays, "natural_max": {"A": natural, "B": natural}, "n_boot": 80}


def test_helpers():
    assert c4.first_true(np.array([[0, 1, 1], [0, 0, 0]], bool)).tolist() == [1, 3]
    assert np.isnan(c4.spearman(np.ones(5), np.arange(5)))
    assert c4.pairs(trajectories()) == [("A", "B"), ("B", "A")]
    assert c4.combine([]) == "undetermined"


def test_saturates_first_all_outcomes():
    assert c4.check_saturates_first(res(trajectories(lead=3))).verdict == "held"
    assert c4.check_saturates_first(res(trajectories(lead=-3))).verdict == "not held"
    tie = c4.check_saturates_first(res(trajectories(lead=0)))  # saturates at the very step it transfers
    assert tie.verdict == "undetermined"


def test_multiclass_below_one_all_outcomes():
    assert c4.check_multiclass_below_one(res(trajectories(mc_below=0.9, ov_below=0.1))).verdict == "held"
    assert c4.check_multiclass_below_one(res(trajectories(mc_below=0.1, ov_below=0.9))).verdict == "not held"
    same = c4.check_multiclass_below_one(res(trajectories(mc_below=0.5, ov_below=0.5, seed=3)))
    assert same.verdict in ("undetermined",)
    assert any("multi-class share" in k for k in same.numbers)


def test_activation_saturated_all_outcomes():
    assert c4.check_activation_saturated(res(trajectories(act_signal=2.0))).verdict == "held"
    assert c4.check_activation_saturated(res(trajectories(act_signal=-0.9))).verdict == "not held"
    assert c4.check_activation_saturated(res(trajectories(act_signal=0.0, seed=1))).verdict == "undetermined"
    # no example in the saturated regime at the mid step: nothing to test
    none = c4.check_activation_saturated(res(trajectories(lead=-E)))
    assert none.verdict == "undetermined" and "too few" in none.why


def test_activation_multiclass_all_outcomes():
    assert c4.check_activation_multiclass(res(trajectories(mc_act_signal=2.0))).verdict == "held"
    worse = trajectories(mc_act_signal=-0.9, mc_soft_signal=0.3)
    assert c4.check_activation_multiclass(res(worse)).verdict == "not held"
    same = trajectories()
    for src in ("A", "B"):  # softmax ranks exactly like the activation: a tie
        same[f"multiclass/{src}/top_soft"] = same[f"multiclass/{src}/top_act"] / 1e3
    assert c4.check_activation_multiclass(res(same)).verdict == "undetermined"


def test_beyond_natural_all_outcomes():
    arr = trajectories()
    assert c4.check_beyond_natural(res(arr, natural=5.0)).verdict == "held"
    assert c4.check_beyond_natural(res(arr, natural=500.0)).verdict == "not held"
    final = np.median(arr["overoptimized/A/top_act"][:, -1])
    edge = {"arrays": arr, "natural_max": {"A": float(final), "B": 5.0}, "n_boot": 80}
    assert c4.check_beyond_natural(edge).verdict == "undetermined"


def test_evaluate_and_pair_table():
    tab = claims.evaluate(list(c4.CLAIMS), res(trajectories()))
    assert list(tab["id"]) == [c.id for c in c4.CLAIMS]
    assert set(tab["verdict"]) <= set(claims.VERDICTS)
    assert all(c.paper == "004" and c.quote and c.source for c in c4.CLAIMS)
    pt = c4.pair_table(res(trajectories()))
    assert len(pt) == 2 and "rho(act), saturated" in pt.columns
    missing = {c.id: c.evaluate({}).verdict for c in c4.CLAIMS}
    assert set(missing.values()) == {"not testable here"}


@pytest.mark.parametrize("lead", [3])
def test_saturation_lead_value(lead):
    e = c4.saturation_lead(res(trajectories(lead=lead)), "A", "B")
    assert e.value == lead and e.low <= lead <= e.high
