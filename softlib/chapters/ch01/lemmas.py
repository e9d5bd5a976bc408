"""The softmax in finite precision: the two lemmas of Ozbulak et al. (chapter 01).

Paper 004 (section 2 and Appendix A; short version 001) states two lemmas:

- **Lemma 2.1**: in limited precision, once the top softmax output is mapped to
  one, the softmax no longer reacts to a larger top logit.
- **Lemma 2.2**: raising the top logit by ``v1`` and another logit with a
  non-zero output by ``vt > v1`` lowers the top output (while it stays on top).

This module measures both in the four floating-point formats a network may run
in. Everything is cheap (a few hundred softmaxes of at most 1000 classes), so
nothing here is cached.

Conventions: classes are 0-based here; the paper's class 1 (the top class) is
index 0 in the saturation experiments. The logit *gap* ``g`` is the top logit
minus the largest other logit; the saturation experiments use the logits
``(g, 0, ..., 0)``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from softlib.runtime import get_device
from softlib.validate import SoftlibError, check_choice, check_float, check_int

#: The floating-point formats the chapter compares, by name.
DTYPES: dict[str, torch.dtype] = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}

#: ``"torch"``: ``torch.softmax`` as shipped (whatever it computes internally);
#: ``"pure"``: every elementary operation rounded to the format, sum left to right.
METHODS = ("torch", "pure")

#: Where the rounding that makes ``p1 == 1`` happens (see :func:`epsilon_bound`).
BOUND_MODELS = ("auto", "output", "sum", "sequential")

#: Saturation criteria: the top output is exactly 1, or the whole output is one-hot.
CRITERIA = ("top", "onehot")

_MAX_GAP = 800.0  # exp(-800) underflows to 0 in every format; 800 is finite in float16


def check_dtype(dtype: Any) -> torch.dtype:
    """Return the torch dtype named ``dtype`` (one of :data:`DTYPES`), else raise."""
    check_choice("dtype", dtype, DTYPES)
    return DTYPES[dtype]


def check_dtypes(dtypes: Any) -> list[str]:
    """Validate a non-empty list of dtype names (a notebook parameter)."""
    if isinstance(dtypes, str) or not isinstance(dtypes, Sequence) or len(dtypes) == 0:
        raise SoftlibError(f"dtypes must be a non-empty list of names from {list(DTYPES)}, got {dtypes!r}")
    for name in dtypes:
        check_dtype(name)
    return list(dtypes)


def unit_roundoff(dtype: str) -> float:
    """The unit roundoff ``u = eps / 2`` of the named format (round to nearest).

    ``eps`` is the gap between 1 and the next larger float; the gap *below* 1 is
    ``eps / 2 = u``. So ``1 + x`` rounds back to 1 iff ``x <= u`` (ties go to the
    even neighbour, which is 1), and a number ``p < 1`` rounds up to 1 iff
    ``1 - p <= u / 2 = eps / 4``.
    """
    return float(torch.finfo(check_dtype(dtype)).eps) / 2.0


def gap_spacing(gap: float, dtype: str) -> float:
    """Distance from ``gap`` (cast to ``dtype``) to the next larger representable value.

    The logit itself lives in the format, so a measured saturation gap can only
    be a representable number: it exceeds the exact threshold by at most this.
    """
    t = torch.tensor(float(gap), dtype=check_dtype(dtype))
    nxt = torch.nextafter(t, torch.tensor(math.inf, dtype=t.dtype))
    return float(nxt.double() - t.double())


def _resolve_device(device: str | torch.device | None) -> torch.device:
    return device if isinstance(device, torch.device) else get_device(device)


def softmax(
    z: torch.Tensor | np.ndarray | Sequence[float],
    dtype: str = "float32",
    *,
    method: str = "torch",
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Softmax over the last dimension of ``z``, computed in the format ``dtype``.

    ``z`` is cast to ``dtype`` first (the logits live in that format).
    ``method="torch"`` calls :func:`torch.softmax`, which subtracts the maximum
    and may compute internally in a wider format (on CPU and CUDA torch computes
    float16/bfloat16 softmax in float32 and rounds the result once).
    ``method="pure"`` rounds every elementary step to ``dtype``: ``z - max``,
    ``exp``, a left-to-right running sum and the division. Returns a tensor of
    ``dtype`` on ``device`` (default: :func:`softlib.runtime.get_device`).
    """
    tdt = check_dtype(dtype)
    check_choice("method", method, METHODS)
    dev = _resolve_device(device)
    x = torch.as_tensor(z).to(device=dev, dtype=tdt) if not isinstance(z, torch.Tensor) else z.to(dev, tdt)
    if x.ndim == 0 or x.shape[-1] == 0:
        raise SoftlibError(f"z must have at least one class on its last dimension, got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise SoftlibError(f"z must be finite in {dtype} (max representable {torch.finfo(tdt).max:g})")
    if method == "torch":
        return torch.softmax(x, dim=-1)
    shifted = x - x.max(dim=-1, keepdim=True).values
    e = torch.exp(shifted)
    total = e[..., 0]
    for k in range(1, e.shape[-1]):  # left to right, one rounding per addition
        total = total + e[..., k]
    return e / total.unsqueeze(-1)


@functools.cache
def torch_upcasts(dtype: str, device: str = "cpu") -> bool:
    """Whether ``torch.softmax`` in ``dtype`` computes in float32 and rounds once.

    Checked empirically: on 4096 random 10-class logit vectors and on one
    1000-class vector ``(0, -a, ..., -a)`` whose small terms ``e^{-a} = 0.4 u``
    are each below the unit roundoff ``u`` of ``dtype`` (a computation in
    ``dtype`` would lose them, float32 keeps them: ``p1 ~ 1 / (1 + 400 u)``),
    the torch result must be within one unit in the last place of the float32
    softmax rounded to ``dtype``. True for float16/bfloat16 in current torch
    (aten SoftMaxKernel.cpp converts reduced floating types to float; the CUDA
    kernel accumulates in float). Always False for float32/float64.
    """
    tdt = check_dtype(dtype)
    if tdt in (torch.float32, torch.float64):
        return False
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(4096, 10, generator=gen) * 6).to(tdt)
    a = -math.log(0.4 * unit_roundoff(dtype))
    sig = torch.full((1, 1000), -a, dtype=tdt)
    sig[0, 0] = 0.0
    ok = True
    for batch in (x, sig):
        batch = batch.to(device)
        native = torch.softmax(batch, dim=-1)
        via32 = torch.softmax(batch.float(), dim=-1).to(tdt)
        step = torch.nextafter(via32.abs(), torch.tensor(math.inf, dtype=tdt, device=via32.device)) - via32.abs()
        ok = ok and bool(((native.float() - via32.float()).abs() <= step.float()).all())
    return ok


def _logits(gaps: torch.Tensor, num_classes: int) -> torch.Tensor:
    z = torch.zeros(gaps.shape[0], num_classes, dtype=gaps.dtype, device=gaps.device)
    z[:, 0] = gaps
    return z


def saturation_gap(
    num_classes: int,
    dtype: str,
    *,
    method: str = "torch",
    criterion: str = "top",
    device: str | torch.device | None = None,
) -> float:
    """Smallest logit gap (representable in ``dtype``) at which softmax saturates.

    The logits are ``(g, 0, ..., 0)`` with ``num_classes`` entries. With
    ``criterion="top"`` saturation means the top output is exactly ``1.0``;
    with ``"onehot"`` the whole output is exactly ``(1, 0, ..., 0)`` (the form of
    Lemma 2.1 in 004 Appendix A). Found by bisection over the representable
    values of ``dtype`` in ``[0, 800]``, stopping when the bracket's ends are
    neighbours; assumes saturation is monotone in ``g`` (which Lemma 2.1 says,
    and the tests check).
    """
    c = check_int("num_classes", num_classes, low=2, high=100_000)
    tdt = check_dtype(dtype)
    check_choice("method", method, METHODS)
    check_choice("criterion", criterion, CRITERIA)
    dev = _resolve_device(device)

    def saturated(g: torch.Tensor) -> bool:
        with torch.inference_mode():
            p = softmax(_logits(g.reshape(1), c), dtype, method=method, device=dev)[0]
        if criterion == "top":
            return bool(p[0] == 1.0)
        return bool(p[0] == 1.0) and bool((p[1:] == 0).all())

    lo = torch.tensor(0.0, dtype=tdt, device=dev)
    hi = torch.tensor(_MAX_GAP, dtype=tdt, device=dev)
    if saturated(lo) or not saturated(hi):
        raise SoftlibError(f"no saturation gap in [0, {_MAX_GAP}] for {c} classes in {dtype} ({method})")
    for _ in range(200):
        mid = ((lo.double() + hi.double()) / 2).to(tdt)
        if bool(mid == lo) or bool(mid == hi):
            break
        if saturated(mid):
            hi = mid
        else:
            lo = mid
    return float(hi.double())


def epsilon_bound(num_classes: int, dtype: str, *, model: str = "auto", device: str = "cpu") -> float:
    """The logit gap at which machine epsilon predicts ``p1 == 1.0`` exactly.

    With logits ``(g, 0, ..., 0)`` and ``C = num_classes``, torch first subtracts
    the maximum, so it computes ``p1 = 1 / s`` with ``s = 1 + (C-1) e^{-g}``.
    With unit roundoff ``u = eps / 2`` of ``dtype``:

    - ``"output"``: the softmax is computed in a wider format (float16 and
      bfloat16 in torch) and only the result is rounded. ``p1`` rounds to 1 iff
      ``1 - p1 <= u / 2`` (the spacing just below 1 is ``u``), i.e.
      ``g >= ln((C-1) (1 - u/2) / (u/2))``.
    - ``"sum"``: everything in ``dtype`` and the ``C-1`` small terms are summed
      before the 1 is added: ``s`` rounds to 1 iff ``(C-1) e^{-g} <= u``, i.e.
      ``g >= ln((C-1) / u)``. Once ``s == 1``, ``p1 = 1/1 = 1``; if ``s > 1``
      then ``s >= 1 + eps`` and ``1/s <= 1 - eps + eps^2``, which rounds to
      ``1 - eps < 1``. This is the *largest* gap any summation order needs.
    - ``"sequential"``: everything in ``dtype``, summed left to right starting
      with the top term 1: each small term is swallowed alone iff
      ``e^{-g} <= u``: ``g >= ln(1 / u)``, whatever ``C``. The *smallest* gap.
    - ``"auto"``: ``"output"`` if :func:`torch_upcasts` says torch computes this
      format in float32, else ``"sum"`` (the upper end: vectorised kernels add
      partial sums of the small terms to 1, landing between the two ends).
    """
    c = check_int("num_classes", num_classes, low=2, high=100_000)
    u = unit_roundoff(dtype)
    check_choice("model", model, BOUND_MODELS)
    if model == "auto":
        model = "output" if torch_upcasts(dtype, str(device)) else "sum"
    if model == "output":
        return math.log((c - 1) * (1 - u / 2) / (u / 2))
    if model == "sum":
        return math.log((c - 1) / u)
    return math.log(1 / u)


def saturation_table(
    num_classes: Sequence[int] = (2, 10, 1000),
    dtypes: Sequence[str] = tuple(DTYPES),
    *,
    device: str | torch.device | None = None,
):
    """Measured saturation gaps next to the epsilon predictions, one row per (dtype, C).

    Columns: ``dtype``, ``num_classes``, ``eps``, ``torch_computes_in`` (the
    format torch's kernel works in), ``gap_measured`` (torch.softmax, top output
    == 1), ``gap_predicted`` (:func:`epsilon_bound`, ``model="auto"``),
    ``predicted_kind`` (``"estimate"`` where torch rounds once, case 1, so the value is
    the threshold itself; ``"upper bound"`` where torch computes in the format, case 2:
    ``ln((C-1)/u)`` is then only the largest gap any summation order needs, e.g. float32 with
    C = 10 saturates at 16.64 against a bound of 18.83), ``difference`` (measured - predicted), ``spacing`` (representable step of the
    gap at the prediction), ``gap_sum_bound`` (``ln((C-1)/u)``, the upper end for
    native kernels), ``gap_sequential`` (``ln(1/u)``, the lower end),
    ``effective_terms`` (``u e^{g_measured}``: how many small terms the kernel
    effectively adds to 1 at once; ``C-1`` means "all of them first"),
    ``gap_pure`` (the pure-``dtype`` implementation), ``gap_onehot`` (torch, whole
    output exactly one-hot). Returns a pandas DataFrame.
    """
    import pandas as pd

    cs = [check_int("num_classes", c, low=2, high=100_000) for c in num_classes]
    names = check_dtypes(list(dtypes))
    dev = _resolve_device(device)
    rows = []
    for name in names:
        u = unit_roundoff(name)
        upcast = torch_upcasts(name, str(dev))
        for c in cs:
            measured = saturation_gap(c, name, device=dev)
            predicted = epsilon_bound(c, name, device=str(dev))
            rows.append(
                {
                    "dtype": name,
                    "num_classes": c,
                    "eps": 2 * u,
                    "torch_computes_in": "float32" if upcast else name,
                    "gap_measured": measured,
                    "gap_predicted": predicted,
                    "predicted_kind": "estimate" if upcast else "upper bound",
                    "difference": measured - predicted,
                    "spacing": gap_spacing(predicted, name),
                    "gap_sum_bound": epsilon_bound(c, name, model="sum"),
                    "gap_sequential": epsilon_bound(c, name, model="sequential"),
                    "effective_terms": u * math.exp(measured),
                    "gap_pure": saturation_gap(c, name, method="pure", device=dev),
                    "gap_onehot": saturation_gap(c, name, criterion="onehot", device=dev),
                }
            )
    return pd.DataFrame(rows)


def top_prob_gradient(
    gaps: np.ndarray | Sequence[float],
    num_classes: int,
    dtype: str,
    *,
    method: str = "torch",
    device: str | torch.device | None = None,
) -> dict[str, np.ndarray]:
    """``p1`` and ``dp1/dz1`` by autograd in ``dtype`` along logits ``(g, 0, ..., 0)``.

    Returns float64 numpy arrays: ``gap`` (the gaps as represented in
    ``dtype``), ``p1``, ``grad`` (autograd in ``dtype``: torch's softmax backward
    computes ``p1 (1 - p1)``, exactly 0 once ``p1 == 1``), and the exact values
    ``p1_exact`` / ``one_minus_p1_exact`` / ``grad_exact`` (closed form in
    float64: ``1 - p1 = q / (1 + q)`` with ``q = (C-1) e^{-g}``, gradient
    ``q / (1 + q)^2``; never 0).
    """
    c = check_int("num_classes", num_classes, low=2, high=100_000)
    tdt = check_dtype(dtype)
    g = np.asarray(gaps, dtype=np.float64).reshape(-1)
    if g.size == 0 or not np.isfinite(g).all():
        raise SoftlibError("gaps must be a non-empty array of finite numbers")
    dev = _resolve_device(device)
    gt = torch.as_tensor(g).to(dev, tdt)
    z = _logits(gt, c).detach().requires_grad_(True)
    p = softmax(z, dtype, method=method, device=dev)
    (grad,) = torch.autograd.grad(p[:, 0].sum(), z)
    gr = gt.double().cpu().numpy()
    q = (c - 1) * np.exp(-gr)
    return {
        "gap": gr,
        "p1": p[:, 0].detach().double().cpu().numpy(),
        "grad": grad[:, 0].double().cpu().numpy(),
        "p1_exact": 1.0 / (1.0 + q),
        "one_minus_p1_exact": q / (1.0 + q),
        "grad_exact": q / (1.0 + q) ** 2,
    }


def _check_lemma22_inputs(u: Any, t: int) -> tuple[torch.Tensor, int, int]:
    uu = torch.as_tensor(np.asarray(u, dtype=np.float64))
    if uu.ndim != 1 or uu.numel() < 2 or not bool(torch.isfinite(uu).all()):
        raise SoftlibError(f"u must be a finite 1-D vector of at least 2 logits, got {u!r}")
    m = uu.numel()
    top = int(uu.argmax())
    if int((uu == uu[top]).sum()) > 1:
        raise SoftlibError(f"u must have a unique largest logit (the lemma's top class), got {u!r}")
    t = check_int("t", t, low=0, high=m - 1)
    if t == top:
        raise SoftlibError(f"t must be another class than the top class {top}, got {t}")
    return uu, top, t


def lemma22_change(
    u: np.ndarray | Sequence[float],
    v1: float | np.ndarray,
    vt: float | np.ndarray,
    t: int,
    *,
    dtype: str = "float64",
    method: str = "torch",
) -> dict[str, np.ndarray]:
    """Lemma 2.2 (004 Appendix A): change of the top probability when logits move.

    ``u`` are the logits (the top class is ``argmax u``, unique); the top logit
    rises by ``v1`` and logit ``t`` (0-based, not the top) by ``vt``; ``v1`` and
    ``vt`` may be arrays (broadcast together). Returns numpy arrays:

    - ``p1_before``, ``p1_after``, ``change`` = after - before (computed in ``dtype``),
    - ``applies``: the lemma's hypotheses ``vt > v1 > 0`` and ``u1+v1 > ut+vt``,
    - ``margin``: the exact (float64) sign of the decrease. From
      ``l1 < p1  <=>  e^{ut} (e^{vt} - e^{v1}) > R (e^{v1} - 1)`` with
      ``R = sum_{k not in {top, t}} e^{uk}``, ``margin`` is the left minus the
      right side divided by the old normaliser, i.e.
      ``pt (e^{vt} - e^{v1}) - (1 - p1 - pt)(e^{v1} - 1)``: positive means the
      top probability falls. With the other outputs at 0 (the paper's
      ``pn < delta => pn = 0``) it is positive exactly when ``vt > v1``.
    """
    uu, top, t = _check_lemma22_inputs(u, t)
    tdt = check_dtype(dtype)
    a1 = np.asarray(v1, dtype=np.float64)
    at = np.asarray(vt, dtype=np.float64)
    if not (np.isfinite(a1).all() and np.isfinite(at).all()):
        raise SoftlibError("v1 and vt must be finite")
    a1, at = np.broadcast_arrays(a1, at)
    shape = a1.shape
    n = a1.size
    z = uu.to(tdt).repeat(n, 1)
    z[:, top] = z[:, top] + torch.as_tensor(a1.reshape(-1)).to(tdt)
    z[:, t] = z[:, t] + torch.as_tensor(at.reshape(-1)).to(tdt)
    dev = torch.device("cpu")
    with torch.inference_mode():
        before = softmax(uu, dtype, method=method, device=dev)
        after = softmax(z, dtype, method=method, device=dev)
    p1 = float(before[top].double())
    l1 = after[:, top].double().numpy().reshape(shape)
    # exact margin, in float64 on the old probabilities
    pe = torch.softmax(uu, dim=-1).numpy()
    pt = float(pe[t])
    rest = float(np.delete(pe, [top, t]).sum())
    margin = pt * (np.exp(at) - np.exp(a1)) - rest * np.expm1(a1)
    applies = (at > a1) & (a1 > 0) & (uu[top].item() + a1 > uu[t].item() + at)
    return {
        "p1_before": np.full(shape, p1),
        "p1_after": l1,
        "change": l1 - p1,
        "applies": applies,
        "margin": margin,
    }


def lemma22_path(
    u: np.ndarray | Sequence[float],
    t: int,
    *,
    rate_top: float,
    rate_t: float,
    steps: int,
    dtype: str = "float64",
) -> dict[str, np.ndarray]:
    """Logits along a path like 004 figure 2: top and class ``t`` both rise.

    Step ``s = 0..steps`` adds ``s * rate_top`` to the top logit and
    ``s * rate_t`` to logit ``t``. Returns ``step``, ``top_logit``, ``t_logit``,
    ``p1`` (top probability in ``dtype``) and ``top_still_top``.
    """
    uu, top, t = _check_lemma22_inputs(u, t)
    r1 = check_float("rate_top", rate_top, low=0.0)
    rt = check_float("rate_t", rate_t, low=0.0)
    n = check_int("steps", steps, low=1, high=100_000)
    s = np.arange(n + 1, dtype=np.float64)
    res = lemma22_change(uu.numpy(), s * r1, s * rt, t, dtype=dtype)
    top_logit = uu[top].item() + s * r1
    t_logit = uu[t].item() + s * rt
    return {
        "step": s,
        "top_logit": top_logit,
        "t_logit": t_logit,
        "p1": res["p1_after"],
        "top_still_top": top_logit > t_logit,
    }
