"""Tests of softlib.chapters.ch01.lemmas: the two lemmas of 004 Appendix A as properties.

Everything runs on the CPU: the measured saturation gaps depend on the kernel
(summation order), and the CPU kernel is the one the tolerances are derived for.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from softlib.chapters.ch01.lemmas import (
    DTYPES,
    check_dtypes,
    epsilon_bound,
    gap_spacing,
    lemma22_change,
    lemma22_path,
    saturation_gap,
    saturation_table,
    softmax,
    top_prob_gradient,
    torch_upcasts,
    unit_roundoff,
)
from softlib.validate import SoftlibError

CPU = torch.device("cpu")
FAST = settings(max_examples=150, deadline=None)
logit = st.floats(min_value=-10.0, max_value=10.0, allow_nan=False, allow_infinity=False)


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "call",
    [
        lambda: softmax([1.0, 2.0], "float8"),
        lambda: saturation_gap(10, "half"),
        lambda: epsilon_bound(10, "fp32"),
        lambda: top_prob_gradient([1.0], 10, "double"),
        lambda: check_dtypes(["float32", "int8"]),
    ],
)
def test_unknown_dtype_names_the_value_and_the_allowed_ones(call):
    with pytest.raises(SoftlibError) as info:
        call()
    msg = str(info.value)
    assert "unknown dtype" in msg
    for name in DTYPES:
        assert repr(name) in msg


def test_other_bad_inputs_raise_softlib_errors():
    with pytest.raises(SoftlibError, match="num_classes must be >= 2"):
        saturation_gap(1, "float32")
    with pytest.raises(SoftlibError, match="non-empty list"):
        check_dtypes("float32")
    with pytest.raises(SoftlibError, match="another class than the top class 0"):
        lemma22_change([3.0, 1.0, 0.0], 1.0, 2.0, t=0)
    with pytest.raises(SoftlibError, match="unique largest logit"):
        lemma22_change([3.0, 3.0, 0.0], 1.0, 2.0, t=2)
    with pytest.raises(SoftlibError, match="finite"):
        softmax([1e5, 0.0], "float16")  # 1e5 overflows float16
    with pytest.raises(SoftlibError, match="unknown method"):
        softmax([1.0, 0.0], "float32", method="fast")


# ---------------------------------------------------------------- Lemma 2.1
@FAST
@given(
    others=st.lists(logit, min_size=1, max_size=15),
    gap=st.floats(min_value=5.0, max_value=40.0),
    extra=st.floats(min_value=0.0, max_value=1000.0),
)
def test_lemma21_once_p1_is_one_it_stays_one_with_zero_gradient(others, gap, extra):
    """004 Lemma 2.1 in float32: after p1 == 1.0, a larger z1 changes nothing visible."""
    z = torch.tensor([max(others) + gap, *others], dtype=torch.float32)
    p = softmax(z, "float32", device=CPU)
    assume(p[0].item() == 1.0)
    z2 = z.clone()
    z2[0] += extra
    z2.requires_grad_(True)
    p2 = softmax(z2, "float32", device=CPU)
    (grad,) = torch.autograd.grad(p2[0], z2)
    assert p2[0].item() == 1.0
    assert grad[0].item() == 0.0  # the top logit gets no gradient at all
    # the other outputs can only shrink (towards the exact zeros of the lemma)
    assert bool((p2[1:].detach() <= p[1:]).all())


@FAST
@given(others=st.lists(logit, min_size=1, max_size=15), gap=st.floats(min_value=0.0, max_value=8.0))
def test_lemma21_before_saturation_the_top_logit_still_matters(others, gap):
    """The converse (so the test above can fail): below saturation p1 < 1 and dp1/dz1 > 0."""
    z = torch.tensor([max(others) + gap, *others], dtype=torch.float32, requires_grad=True)
    p = softmax(z, "float32", device=CPU)
    (grad,) = torch.autograd.grad(p[0], z)
    assert p[0].item() < 1.0
    assert grad[0].item() > 0.0


@FAST
@given(others=st.lists(logit, min_size=1, max_size=15), extra=st.floats(min_value=0.0, max_value=500.0))
def test_lemma21_far_enough_the_output_is_exactly_one_hot(others, extra):
    """The lemma's (1, 0, ..., 0) needs e^{-gap} to underflow: gap > 150 ln 2 ~ 104 in float32."""
    z = torch.tensor([max(others) + 110.0 + extra, *others], dtype=torch.float32)
    p = softmax(z, "float32", device=CPU)
    assert p[0].item() == 1.0
    assert bool((p[1:] == 0).all())


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_saturation_is_monotone_and_kills_the_gradient(dtype):
    g = saturation_gap(10, dtype, device=CPU)
    below = torch.nextafter(torch.tensor(g, dtype=DTYPES[dtype]), torch.tensor(0.0, dtype=DTYPES[dtype]))
    gaps = np.concatenate([[float(below)], g + np.linspace(0.0, 50.0, 26)])
    res = top_prob_gradient(gaps, 10, dtype, device=CPU)
    assert res["p1"][0] < 1.0 and res["grad"][0] > 0.0
    assert (res["p1"][1:] == 1.0).all()
    assert (res["grad"][1:] == 0.0).all()
    assert (res["grad_exact"] > 0).all()  # in exact arithmetic the gradient never vanishes


# ------------------------------------------- measured gaps vs machine epsilon
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("c", [2, 10, 1000])
def test_upcast_formats_saturate_where_the_output_rounding_predicts(dtype, c):
    """torch computes these in float32 and rounds p1 once: 1 - p1 <= eps/4 <=> g >= ln(4(C-1)/eps).

    The measured gap is the first representable gap past the threshold, so it
    exceeds the prediction by at most one spacing of the format at that gap. The
    float32 intermediates are off by a few float32 ulps (2^-24 relative), which
    moves a threshold of size eps/4 >= 2^-12 by about 2^-24 / 2^-12 relative,
    i.e. the gap by < 1e-3: the tolerance below.
    """
    assert torch_upcasts(dtype, "cpu")
    measured = saturation_gap(c, dtype, device=CPU)
    predicted = epsilon_bound(c, dtype, model="auto")
    eps = torch.finfo(DTYPES[dtype]).eps
    # exact threshold ln((C-1)(1 - eps/4)/(eps/4)) differs from ln(4(C-1)/eps) by ~eps/4
    assert predicted == pytest.approx(math.log(4 * (c - 1) / eps), abs=eps)
    assert -1e-3 <= measured - predicted <= gap_spacing(predicted, dtype) + 1e-3


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("c", [2, 10, 1000])
def test_native_formats_saturate_between_the_sequential_and_the_sum_bound(dtype, c):
    """In-format sums: s == 1 somewhere between ln(1/u) (top added first, each tiny term
    swallowed alone) and ln((C-1)/u) (all tiny terms summed first). Tolerance 1e-4:
    representable gaps near 40 are 1e-14 (float64) / 4e-6 (float32) apart and exp is
    accurate to an ulp, which moves ln of the threshold by ~1e-7."""
    assert not torch_upcasts(dtype, "cpu")
    measured = saturation_gap(c, dtype, device=CPU)
    low = epsilon_bound(c, dtype, model="sequential")
    high = epsilon_bound(c, dtype, model="sum")
    assert low - 1e-4 <= measured <= high + 1e-4
    if c == 2:  # one small term: every order is the same, the bound is exact
        assert measured == pytest.approx(high, abs=1e-4)


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_pure_implementation_saturates_at_ln_one_over_u_for_any_c(dtype):
    for c in (2, 50):
        measured = saturation_gap(c, dtype, method="pure", device=CPU)
        predicted = epsilon_bound(c, dtype, model="sequential")
        assert predicted == pytest.approx(-math.log(unit_roundoff(dtype)))
        assert -1e-4 <= measured - predicted <= gap_spacing(predicted, dtype) + 1e-4


def test_one_hot_gaps_are_where_e_to_minus_g_underflows():
    # float32 / float64 results are rounded in-format: e^{-g} < 2^-150 / 2^-1075 rounds to 0
    assert saturation_gap(10, "float32", criterion="onehot", device=CPU) == pytest.approx(150 * math.log(2), abs=1e-4)
    assert saturation_gap(10, "float64", criterion="onehot", device=CPU) == pytest.approx(1075 * math.log(2), abs=1e-9)
    for name in DTYPES:
        assert saturation_gap(10, name, criterion="onehot", device=CPU) > saturation_gap(10, name, device=CPU)


def test_saturation_table_has_computed_rows():
    table = saturation_table([2, 10], ["float16", "float32"], device=CPU)
    assert len(table) == 4
    assert list(table["torch_computes_in"]) == ["float32", "float32", "float32", "float32"]
    assert (table["gap_measured"] > 5).all()
    assert np.allclose(table["difference"], table["gap_measured"] - table["gap_predicted"])
    # float16 is computed in float32 and rounded once (an estimate); float32 natively (a bound)
    assert list(table["predicted_kind"]) == ["estimate", "estimate", "upper bound", "upper bound"]


def test_saturation_prediction_is_a_bound_for_native_formats():
    # float32 / float64 are computed in the format: ln((C-1)/u) only bounds the measured gap
    table = saturation_table([10, 1000], ["float32", "float64"], device=CPU)
    assert (table["predicted_kind"] == "upper bound").all()
    assert (table["gap_measured"] <= table["gap_predicted"] + table["spacing"]).all()
    assert (table["gap_measured"] >= table["gap_sequential"] - table["spacing"]).all()


# ---------------------------------------------------------------- Lemma 2.2
@FAST
@given(
    u1=st.floats(min_value=-20.0, max_value=20.0),
    d=st.floats(min_value=0.02, max_value=25.0),
    v1=st.floats(min_value=0.01, max_value=50.0),
    frac=st.floats(min_value=0.0, max_value=1.0),
)
def test_lemma22_two_classes_top_probability_falls(u1, d, v1, frac):
    """004 Lemma 2.2 with M = 2 in float64: 0 < v1 < vt, top stays on top => l1 < p1.

    vt - v1 ranges over [0.01, d - 0.01], so u1 + v1 > u2 + vt always holds.
    Gaps stay below 25 so that 1 - p1 >= e^-25 is far above float64's 1e-16.
    """
    vt = v1 + 0.01 + frac * (d - 0.02)
    res = lemma22_change([u1, u1 - d], v1, vt, t=1, dtype="float64")
    assert bool(res["applies"])
    assert res["margin"] > 0
    assert res["change"] < 0


@FAST
@given(
    u1=st.floats(min_value=-20.0, max_value=20.0),
    d=st.floats(min_value=0.02, max_value=25.0),
    v1=st.floats(min_value=0.02, max_value=50.0),
    frac=st.floats(min_value=0.01, max_value=1.0),
)
def test_lemma22_reversed_increments_raise_the_top_probability(u1, d, v1, frac):
    """Swap the hypothesis (v1 > vt): the top probability rises, so the test above can fail."""
    vt = v1 - frac * min(v1, 0.5)
    res = lemma22_change([u1, u1 - d], v1, vt, t=1, dtype="float64")
    assert not bool(res["applies"])
    assert res["change"] > 0


@FAST
@given(
    others=st.lists(logit, min_size=1, max_size=12),
    top_gap=st.floats(min_value=0.5, max_value=15.0),
    t_gap=st.floats(min_value=0.1, max_value=15.0),
    v1=st.floats(min_value=0.01, max_value=5.0),
    dv=st.floats(min_value=0.01, max_value=5.0),
)
def test_lemma22_many_classes_sign_follows_the_exact_margin(others, top_gap, t_gap, v1, dv):
    """With M > 2 the decrease holds iff pt (e^vt - e^v1) > (1 - p1 - pt)(e^v1 - 1) (float64)."""
    ut = max(others) + t_gap  # class t is second, the top class first
    u = [ut + top_gap, ut, *others]
    vt = v1 + dv
    assume(u[0] + v1 > ut + vt)
    res = lemma22_change(u, v1, vt, t=1, dtype="float64")
    assert bool(res["applies"])
    assume(abs(res["margin"]) * math.exp(-v1) > 1e-9)  # resolvable in float64
    assert np.sign(res["change"]) == -np.sign(res["margin"])


def test_lemma22_counterexample_when_other_outputs_are_not_zero():
    """vt > v1 and the top stays on top, yet p1 rises: 8 other classes at 0 lose weight."""
    res = lemma22_change([1.0] + [0.0] * 9, 1.0, 1.01, t=1)
    assert bool(res["applies"]) and res["margin"] < 0 and res["change"] > 0
    # with the other outputs negligible (the paper's p_n -> 0) the lemma holds again
    res = lemma22_change([1.0, 0.0] + [-60.0] * 8, 1.0, 1.01, t=1)
    assert res["margin"] > 0 and res["change"] < 0


def test_lemma22_path_confidence_falls_while_both_logits_rise():
    path = lemma22_path([4.0, 1.0] + [-30.0] * 8, 1, rate_top=1.0, rate_t=1.2, steps=12)
    assert path["top_still_top"].all()
    assert (np.diff(path["top_logit"]) > 0).all()
    assert (np.diff(path["p1"]) < 0).all()
    assert path["p1"][-1] > 0.5
