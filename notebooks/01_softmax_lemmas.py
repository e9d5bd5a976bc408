# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # 01. The softmax lemmas: saturation and masking in finite precision
#
# A classifier's "confidence" is usually its top softmax output. Ozbulak, De Neve and
# Van Messem {cite}`ozbulak2018misleadinglong` (section 2 and appendix A; short version
# {cite}`ozbulak2018misleading`) argue that this
# number hides how strongly an input (an adversarial example, say) drives the network,
# and back the argument with two lemmas about the softmax in limited precision.
# This chapter asks: **do the lemmas hold in the floating-point formats networks actually
# run in (float16, bfloat16, float32, float64), and exactly where does the softmax stop
# listening?** Chapter 04 then watches both effects on real networks during adversarial
# optimisation.

# %% tags=["parameters", "hide-cell"]
profile = "quick"  # this chapter is cheap in every profile; the profile changes nothing here
num_classes = 10  # C: classes of the saturation experiment (logits (g, 0, ..., 0))
dtypes = ["float16", "bfloat16", "float32", "float64"]

# %% tags=["remove-input"]
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display
from myst_nb import glue

from softlib.chapters.ch01.lemmas import (
    check_dtypes,
    epsilon_bound,
    lemma22_change,
    lemma22_path,
    saturation_table,
    top_prob_gradient,
    unit_roundoff,
)
from softlib.plots import use_book_style
from softlib.profiles import get_profile
from softlib.runtime import get_device, seed_everything
from softlib.validate import check_int, check_notebook_parameters

check_notebook_parameters()  # refuses parameters this notebook does not declare
use_book_style()  # one figure style for the whole book (softlib.plots.BOOK_STYLE)
prof = get_profile(profile)
num_classes = check_int("num_classes", num_classes, low=2, high=100_000)
dtypes = check_dtypes(dtypes)
seed_everything(0)
device = get_device()
for key, value in {"profile": prof.name, "C": num_classes, "dtypes": ", ".join(dtypes), "device": str(device),
                   "C_minus_1": num_classes - 1, "C_minus_2": num_classes - 2}.items():
    glue(f"ch01_{key}", value, display=False)

# %% [markdown]
# Profile **{glue:text}`ch01_profile`** (no effect in this chapter), {glue:text}`ch01_C` classes,
# formats {glue:text}`ch01_dtypes`, computed on **{glue:text}`ch01_device`**.

# %% [markdown]
# ## The two lemmas (appendix A of Ozbulak et al.)
#
# The softmax of $\mathbf u=(u_1,\dots,u_M)^T\in\mathbb R^M$ is
# $P(\mathbf u)_k = e^{u_k}/\sum_{m=1}^M e^{u_m}$ (section 2 of {cite:t}`ozbulak2018misleadinglong`).
#
# **Lemma 2.1.** *When the softmax function is used in settings with limited decimal
# precision, it is no longer sensitive to positive changes in the magnitude of the largest
# input once the corresponding output has been mapped to one.*
#
# *Proof ({cite:t}`ozbulak2018misleadinglong`, appendix A).* Take $\mathbf u=(u_1,u_2,\dots,u_M)^T\in\mathbb R^M$ with
# $u_1\in\mathbb R^+$ such that $P(\mathbf u)=(p_1,p_2,\dots,p_M)^T$,
# $p_1>p_i\ \forall i\in\{2,\dots,M\}$, and assume that the calculation is performed under a
# limited decimal precision where the smallest positive number that can be represented is
# $\delta$, $\delta\in(0,0.1)$. Under these conditions, if $p_1>1-\delta$, then $p_1\equiv 1$,
# and $\forall v_1\in\mathbb R^+$ with $v_1>u_1$, $P(v_1,u_2,\dots,u_M)^T=(1,0,\dots,0)^T$. $\square$
#
# **Lemma 2.2.** *When the softmax function is used in settings with limited decimal
# precision, increasing the input which corresponds to the highest output after softmax
# function does not result in an increase in that output when the input of any other
# non-zero output has a larger increase.*
#
# *Proof (appendix A).* Take $\mathbf u\in\mathbb R^M$ such that
# $P(u_1,\dots,u_M)^T=(p_1,\dots,p_M)^T$ with $p_1>p_i\ \forall i\in\{2,\dots,M\}$, and assume
# the same limited precision $\delta\in(0,0.1)$. If $p_n<\delta$, $n\in\{1,\dots,M\}$, then
# $p_n\equiv 0$, and if $p_n>1-\delta$, then $p_n\equiv 1$. For any $t\in\{2,\dots,M\}$ with
# $p_t>0$, take $\mathbf v\in\mathbb R^M$ such that $v_t>v_1>0$, $u_1+v_1>u_t+v_t$, and
# $v_k=0$ for $k\notin\{1,t\}$; then $P(\mathbf u+\mathbf v)^T=(l_1,\dots,l_M)^T$ with
# $l_1>l_t$, but $l_1<p_1$. $\square$
#
# The paper's precision model is *fixed point*: one absolute resolution $\delta$ near 0
# and near 1. Floating point is different: the spacing of numbers just below 1 is
# $\varepsilon/2$ (with $\varepsilon$ the machine epsilon), while numbers near 0 go down to
# the smallest subnormal. We test both lemmas in that setting, and we make the
# arithmetic explicit, because the proofs above state the conclusions rather than derive them.

# %% [markdown]
# ## Lemma 2.1: when does $p_1$ become exactly 1?
#
# Take $C$ classes with logits $(g,0,\dots,0)$: the top class leads by the *gap* $g$. In exact
# arithmetic
#
# $$p_1=\frac{1}{1+(C-1)e^{-g}},\qquad 1-p_1=\frac{q}{1+q}\approx q,\quad q=(C-1)e^{-g},$$
#
# never 1. In a format with machine epsilon $\varepsilon$ and unit roundoff $u=\varepsilon/2$
# (round to nearest), two facts decide when the computed $p_1$ is exactly 1:
#
# * the floats just **above** 1 are $\varepsilon$ apart, so $1+x$ rounds back to 1 iff $x\le u$;
# * the floats just **below** 1 are $\varepsilon/2=u$ apart, so a number $p<1$ rounds up to 1
#   iff $1-p\le u/2=\varepsilon/4$ (half the spacing; the tie goes to the even neighbour, 1).
#
# Which fact applies depends on *where* the rounding happens. `torch.softmax` subtracts the
# maximum first, computing $e^{0}=1$ for the top class, $e^{-g}$ for the others, the sum
# $s=1+\sum e^{-g}$ and $p_1=1/s$:
#
# 1. **Result rounded once** (the softmax is computed in a wider format and only $p_1$ is
#    rounded): $p_1=1$ iff $q/(1+q)\le\varepsilon/4$, i.e.
#    $g\ \ge\ \ln\frac{(C-1)(1-\varepsilon/4)}{\varepsilon/4}\approx\ln\frac{C-1}{\varepsilon/4}$.
# 2. **Everything in the format**: $p_1=1$ iff the computed sum $s$ is exactly 1. (If
#    $s>1$ then $s\ge1+\varepsilon$ and $1/s\le 1-\varepsilon+\varepsilon^2$ rounds to
#    $1-\varepsilon<1$.) Whether $s$ rounds to 1 depends on the **order of summation**:
#    if all $C-1$ small terms are added up first, $s=1$ iff $(C-1)e^{-g}\le u$, so
#    $g\ge\ln\frac{C-1}{u}$ (the largest gap any order needs); if the 1 comes first and
#    each small term is swallowed on its own, $s=1$ iff $e^{-g}\le u$, so $g\ge\ln\frac1u$
#    for every $C$ (the smallest). A vectorised kernel lands in between: it effectively adds
#    some number $k\le C-1$ of small terms to the 1 at once, and saturates at $g=\ln\frac ku$.
#
# So the prediction is $g_\text{pred}=\ln\frac{C-1}{u'}$ with $u'=\varepsilon/4$ for case 1 and
# $u'=\varepsilon/2$ (an upper end) for case 2. Which case is torch? We check it empirically
# (`torch_upcasts`: torch's float16/bfloat16 result agrees to one unit in the last place with
# a float32 softmax rounded once, also on a vector whose small terms a float16 sum would lose;
# torch's CPU kernel `SoftMaxKernel.cpp` converts reduced floating types to float, the CUDA
# kernel accumulates in float). To see the format itself at work we also run a **pure**
# implementation that rounds every step to the format and sums left to right, top class first.
#
# We find the measured gap by bisection over the values representable in the format (the
# logit lives in the format too, so the answer is the first representable gap that saturates),
# for $C$ = 2, the chosen `num_classes`, and 1000.

# %%
cs = sorted({2, num_classes, 1000})
table = saturation_table(cs, dtypes, device=device)
show = table[["dtype", "num_classes", "torch_computes_in", "gap_measured", "gap_predicted", "predicted_kind", "difference",
              "spacing", "gap_sequential", "gap_sum_bound", "effective_terms", "gap_pure", "gap_onehot"]]
show.style.format({"gap_measured": "{:.4f}", "gap_predicted": "{:.4f}", "difference": "{:+.4f}",
                   "spacing": "{:.2g}", "gap_sequential": "{:.4f}", "gap_sum_bound": "{:.4f}",
                   "effective_terms": "{:.1f}", "gap_pure": "{:.4f}", "gap_onehot": "{:.2f}"}).hide(axis="index")

# %% [markdown]
# Columns: `gap_measured` is the smallest gap (representable in the format) at which
# `torch.softmax` returns $p_1=1.0$ exactly; `gap_predicted` is $\ln\frac{C-1}{u'}$ for the
# case torch is in, and `predicted_kind` says what it is: an *estimate* of the threshold in
# case 1 (torch computes in float32 and rounds once), only an *upper bound* in case 2
# (float32 and float64 are computed in the format; the measured gap falls anywhere between
# `gap_sequential` and this bound, depending on the kernel's summation order, so a large
# negative `difference` there is not a failed prediction);
# `spacing` is the distance between representable gaps there; `gap_sequential` $=\ln\frac1u$
# and `gap_sum_bound` $=\ln\frac{C-1}u$ bracket any in-format summation order;
# `effective_terms` $=u\,e^{g_\text{measured}}$ is the $k$ of case 2; `gap_pure` is the
# pure-format implementation; `gap_onehot` is where the *whole* output becomes $(1,0,\dots,0)$.

# %% tags=["remove-input"]
def _row(name: str, c: int):
    return table[(table.dtype == name) & (table.num_classes == c)].iloc[0]


lines = []
for name in dtypes:
    r = _row(name, num_classes)
    if r.torch_computes_in != name:
        lines.append(
            f"* **{name}**: torch computes in {r.torch_computes_in} and rounds once; saturation at "
            f"$g={r.gap_measured:.4f}$ vs predicted $\\ln\\frac{{C-1}}{{\\varepsilon/4}}={r.gap_predicted:.4f}$ "
            f"(difference {r.difference:+.4f}, one representable step is {r.spacing:.2g}). The pure "
            f"{name} implementation saturates much earlier, at $g={r.gap_pure:.4f}$ "
            f"($\\ln\\frac1u={r.gap_sequential:.4f}$)."
        )
    else:
        lines.append(
            f"* **{name}**: computed in {name}; saturation at $g={r.gap_measured:.4f}$, between "
            f"$\\ln\\frac1u={r.gap_sequential:.4f}$ and $\\ln\\frac{{C-1}}u={r.gap_sum_bound:.4f}$: the kernel "
            f"effectively adds $k={r.effective_terms:.2f}$ of the {num_classes - 1} small terms to the 1 at once "
            f"(its vector lanes and reduction tree). The pure implementation: $g={r.gap_pure:.4f}$."
        )
glue("ch01_saturation_lines", Markdown("\n".join(lines)), display=False)

# %% [markdown]
# With $C$ = {glue:text}`ch01_C`:
#
# ```{glue:md} ch01_saturation_lines
# :format: myst
# ```

# %% [markdown]
# What this shows. For float16 and bfloat16 the prediction of case 1 holds to within one
# representable step: torch never computes these formats' softmax *in* them, so the threshold
# is where $1-p_1$ drops below half the spacing under 1. For float32 and float64 (computed
# in-format) the measured gap lies inside the bracket derived above and depends on the
# summation order of the kernel, not only on $\varepsilon$: with $C=2$ there is one small term
# and the bound $\ln\frac1u$ is exact; with more classes the kernel's partial sums set the
# effective $k$ (on another machine or on a GPU the kernel, and $k$, can differ; the bracket
# cannot). The pure implementation swallows each $e^{-g}\le u$ alone and saturates at
# $\ln\frac1u$ whatever $C$. Either way the saturation gaps are small: a top logit only
# 10 to 45 units above the rest already gives a confidence of exactly 1, in every format.
#
# The lemma's stronger form, the output $(1,0,\dots,0)$, needs much more: the small outputs
# $e^{-g}/s$ become 0 only when they underflow (`gap_onehot`: about $150\ln2\approx104$ in
# float32 and $1075\ln 2\approx745$ in float64, which are the halves of the smallest subnormals).
# Between the two gaps the computed output has $p_1=1$ exactly while the other outputs are
# still positive, so it sums to more than 1. The fixed-point $\delta$ of the proof puts both
# thresholds at the same place; floating point separates them.

# %% [markdown]
# ## The gradient dies with the confidence
#
# An attack (or a training step) that pushes the top logit reads $\partial p_1/\partial z_1
# = p_1(1-p_1)$. torch's softmax backward computes exactly this product from the rounded
# $p_1$, so once $p_1=1.0$ the gradient is **exactly 0** while in exact arithmetic it is
# $q/(1+q)^2>0$ for every gap. Below: $1-p_1$ (how far the computed confidence is from 1)
# and the gradient, by autograd in each format, as the gap grows; exact zeros are drawn as
# crosses on the bottom edge of the log axis.

# %% tags=["hide-input"]
gaps = np.linspace(0.0, 50.0, 1001)
colors = dict(zip(["float16", "bfloat16", "float32", "float64"], plt.cm.viridis(np.linspace(0, 0.85, 4))))
floor = 1e-22
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharex=True)
grad_curves = {}
for i, name in enumerate(dtypes):
    res = top_prob_gradient(gaps, num_classes, name, device=device)
    grad_curves[name] = res
    for ax, key in ((axes[0], "one_minus_p1"), (axes[1], "grad")):
        y = 1.0 - res["p1"] if key == "one_minus_p1" else res["grad"]
        pos = y > 0
        ax.semilogy(res["gap"][pos], y[pos], color=colors[name], label=name)
        ax.plot(res["gap"][~pos], np.full((~pos).sum(), floor * 10 ** (1.5 * i)), "x", color=colors[name], ms=3)
exact = grad_curves[dtypes[0]]
axes[0].semilogy(gaps, (num_classes - 1) * np.exp(-gaps) / (1 + (num_classes - 1) * np.exp(-gaps)), "k--",
                 lw=1, label="exact")
axes[1].semilogy(gaps, (num_classes - 1) * np.exp(-gaps) / (1 + (num_classes - 1) * np.exp(-gaps)) ** 2, "k--",
                 lw=1, label="exact")
axes[0].set(xlabel="logit gap $g$", ylabel="$1 - p_1$ (computed)", ylim=(floor / 3, 2),
            title=f"distance of the confidence from 1 ({num_classes} classes)")
axes[1].set(xlabel="logit gap $g$", ylabel=r"$\partial p_1 / \partial z_1$ (autograd)", ylim=(floor / 3, 2),
            title="gradient of the confidence w.r.t. the top logit")
axes[1].legend(title="x = exactly 0", fontsize=8)
plt.tight_layout()
plt.show()

# %% tags=["remove-input"]
first_zero = {}
for name in dtypes:
    r = grad_curves[name]
    zero = r["grad"] == 0
    after = zero[np.argmax(zero):] if zero.any() else np.array([False])
    first_zero[name] = (float(r["gap"][np.argmax(zero)]) if zero.any() else float("nan"), bool(after.all()))
glue("ch01_first_zero", "; ".join(f"{n}: from g = {g:.2f} (stays 0 afterwards: {'yes' if ok else 'no'})"
                                  for n, (g, ok) in first_zero.items()), display=False)
glue("ch01_exact_grad_50", float(exact["grad_exact"][-1]), display=False)

# %% [markdown]
# On this grid the gradient is exactly 0 from the first gap with $p_1=1$ onwards:
# {glue:text}`ch01_first_zero`. The exact gradient at $g=50$ is still {glue:text}`ch01_exact_grad_50:.1e`.

# %% [markdown]
# **The paper's claim and whether it held.** Lemma 2.1 holds in all four formats, in the
# sense that matters: past a gap of roughly $\ln\frac{C-1}{u'}$ the confidence is exactly 1.0,
# stays 1.0 for every larger top logit, and its gradient with respect to that logit is exactly 0
# (the tests check this on random logits). Confidence cannot tell an input at gap 20 from one at
# gap 2000 (Ozbulak et al.'s figure 1: activations of about 100, 500 and 4000 all shown as confidence 1).
# Two refinements: the whole output becomes $(1,0,\dots,0)$ only much later, when $e^{-g}$
# underflows, and the exact saturation point depends on where the kernel rounds
# (float16/bfloat16 are computed in float32 by torch) and on its summation order.

# %% [markdown]
# ## Lemma 2.2: raising the top logit can lower the confidence
#
# Raise the top logit by $v_1$ and the logit of another class $t$ by $v_t$. Write
# $S=\sum_m e^{u_m}$ and $R=\sum_{k\notin\{1,t\}}e^{u_k}$ (the other classes). Then
#
# $$l_1<p_1\iff e^{v_1}S< e^{u_1+v_1}+e^{u_t+v_t}+R\iff
#   e^{u_t}\bigl(e^{v_t}-e^{v_1}\bigr)>R\,\bigl(e^{v_1}-1\bigr),$$
#
# or, dividing by $S$: $\;p_t\,(e^{v_t}-e^{v_1})>(1-p_1-p_t)(e^{v_1}-1)$ (the *margin*
# `lemma22_change` returns). If the other outputs are 0, as the proof assumes
# ("$p_n<\delta\Rightarrow p_n\equiv0$"), the right side vanishes and $l_1<p_1$ iff
# $v_t>v_1$: the lemma (in exact arithmetic, too; precision is not what drives it).
# If the other classes still carry probability, raising the top logit also takes
# their share, and $p_1$ can **rise** although $v_t>v_1$. The condition $u_1+v_1>u_t+v_t$ only
# keeps class 1 on top.
#
# The heat maps show the change $l_1-p_1$ (float64) over $(v_1,v_t)$ for the top class at 4 and
# class $t$ at 2, with the remaining classes either negligible (at $-30$) or present (at 0);
# grey: the top class is no longer on top. The dashed line is $v_t=v_1$; the black contour is
# where the exact margin is 0.

# %% tags=["hide-input"]
v = np.linspace(0.0, 6.0, 241)
V1, VT = np.meshgrid(v, v)
cases = {
    "other classes negligible (at -30)": [4.0, 2.0] + [-30.0] * (num_classes - 2),
    "other classes present (at 0)": [4.0, 2.0] + [0.0] * (num_classes - 2),
}
fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
maps = {}
for ax, (title, u) in zip(axes, cases.items()):
    res = lemma22_change(u, V1, VT, t=1, dtype="float64")
    maps[title] = res
    change = np.where(VT < 2.0 + V1, res["change"], np.nan)  # u1 + v1 > ut + vt
    lim = np.nanmax(np.abs(change))
    im = ax.pcolormesh(V1, VT, change, cmap="RdBu_r", vmin=-lim, vmax=lim, shading="auto")
    ax.set_facecolor("0.8")
    ax.plot(v, v, "k--", lw=1)
    if res["margin"].min() < 0 < res["margin"].max():
        ax.contour(V1, VT, np.where(VT < 2.0 + V1, res["margin"], np.nan), levels=[0.0], colors="k", linewidths=1.5)
    ax.set(xlabel="$v_1$ (added to the top logit)", title=title)
    fig.colorbar(im, ax=ax, label="$l_1 - p_1$")
axes[0].set_ylabel("$v_t$ (added to logit $t$)")
plt.tight_layout()
plt.show()

# %% tags=["remove-input"]
summary = []
for title, res in maps.items():
    applies = res["applies"]
    frac_fall = float((res["change"][applies] < 0).mean())
    agree = float((np.sign(res["change"][applies]) == -np.sign(res["margin"][applies])).mean())
    summary.append(f"* {title}: where the lemma's hypotheses hold ($0<v_1<v_t$, top stays top; "
                   f"{int(applies.sum())} grid points) the top probability falls at "
                   f"**{100 * frac_fall:.1f}%** of them; the sign of the exact margin predicts the "
                   f"direction at {100 * agree:.1f}%.")
glue("ch01_lemma22_summary", Markdown("\n".join(summary)), display=False)

# %% [markdown]
# ```{glue:md} ch01_lemma22_summary
# :format: myst
# ```

# %% [markdown]
# The paper's figure 2 shows the same effect along an attack: two class activations rise
# together (19/16 to 523/522 on ResNet-50) while the confidence drops from 0.95 to 0.57.
# Below, a path of that kind: at each step the top logit rises by 1 and logit $t$ by 1.2,
# starting from 4 and 1, with the other classes negligible or present. Computed in float32.

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(7, 4))
ax2 = ax.twinx()
paths = {}
for (title, rest), ls in zip({"negligible (at -30)": -30.0, "present (at 0)": 0.0}.items(), ["-", ":"]):
    path = lemma22_path([4.0, 1.0] + [rest] * (num_classes - 2), 1, rate_top=1.0, rate_t=1.2,
                        steps=12, dtype="float32")
    paths[title] = path
    ax.plot(path["step"], path["p1"], ls, color="C0", marker="o", ms=3, label=f"$p_1$, others {title}")
ax2.plot(path["step"], path["top_logit"], color="C3", label="top logit")
ax2.plot(path["step"], path["t_logit"], color="C3", ls="--", label="logit $t$")
ax.set(xlabel="optimisation step", ylabel="top softmax output $p_1$ (float32)")
ax2.set_ylabel("logit")
ax.legend(loc="lower left", fontsize=8)
ax2.legend(loc="upper center", fontsize=8)
plt.tight_layout()
plt.show()

# %% tags=["remove-input"]
neg, pres = paths["negligible (at -30)"], paths["present (at 0)"]
peak = int(np.argmax(pres["p1"]))
glue("ch01_neg_falls", "falls at every step" if (np.diff(neg["p1"]) < 0).all() else "does not fall at every step",
     display=False)
for key, value in {"neg_p1_first": neg["p1"][0], "neg_p1_last": neg["p1"][-1], "neg_top_first": neg["top_logit"][0],
                   "neg_top_last": neg["top_logit"][-1], "pres_p1_first": pres["p1"][0],
                   "pres_p1_peak": pres["p1"][peak], "peak": peak}.items():
    glue(f"ch01_{key}", value.item() if hasattr(value, "item") else value, display=False)

# %% [markdown]
# With the other classes negligible, $p_1$ {glue:text}`ch01_neg_falls`, from
# {glue:text}`ch01_neg_p1_first:.3f` to {glue:text}`ch01_neg_p1_last:.3f`, while the top logit climbs
# from {glue:text}`ch01_neg_top_first:.0f` to {glue:text}`ch01_neg_top_last:.0f` and stays on top. With
# {glue:text}`ch01_C_minus_2` other classes at 0, $p_1$ first **rises** from
# {glue:text}`ch01_pres_p1_first:.3f` to {glue:text}`ch01_pres_p1_peak:.3f` (step {glue:text}`ch01_peak`)
# before it falls: the increments alone do not decide, the margin does.

# %% [markdown]
# **The paper's claim and whether it held.** Lemma 2.2 holds when the other outputs are
# (numerically) zero, which is its proof's assumption and the situation of Ozbulak et al.'s figure 2
# (ImageNet, two classes far above the other 998): raising the top logit less than a rival's
# lowers the confidence, and an attacker can therefore raise activations and lower confidence at
# the same time. It is not true as stated for a softmax whose other outputs are still
# non-negligible; the exact condition is the margin above, and the tests check its sign on random
# logits. Nor does it need limited precision: it is a property of the exact softmax.
#
# Both lemmas say the same thing: the softmax output is a lossy view of the logits. In
# finite precision the loss is total (Lemma 2.1: the confidence and its gradient freeze);
# in any precision it can be steered (Lemma 2.2). **Chapter 04** measures both on trained
# networks: over-optimised adversarial examples whose confidence sits at 1.0 while their
# logits, and their transferability, keep growing (Ozbulak et al.'s figures 3 to 5).

# %% [markdown]
# ## The claims, decided
#
# The lemmas are statements about arithmetic, so their numbers are exact (no sampling, no
# interval) and the same in every profile: this chapter has no paper-settings run to compare
# with. The claims and their tests live in `softlib.chapters.ch01.claims`.

# %%
from softlib import claims
from softlib.chapters.ch01 import claims as claims01

fall_share = {("negligible" if "negligible" in k else "present"): float((m["change"][m["applies"]] < 0).mean())
              for k, m in maps.items()}
c10 = table[table.num_classes == num_classes]
results01 = {"saturation": dict(zip(c10.dtype, c10.gap_measured)), "first_zero": first_zero,
             "lemma22_fall_share": fall_share}
claim_table = claims.evaluate(claims01.CLAIMS, results01)
display(claims.display_table(claim_table).style.hide(axis="index").set_table_attributes('class="wrap"'))

# %% tags=["remove-cell"]
from softlib.tooling.record import record

glue("n_held_01", int((claim_table["verdict"] == "held").sum()), display=False)
glue("n_claims_01", len(claim_table), display=False)
record("01_softmax_lemmas", prof.name, {
    "saturation": table[["dtype", "num_classes", "gap_measured", "gap_predicted"]].to_dict("records"),
    "claims": claims.for_record(claim_table),
})

# %% [markdown]
# {glue:text}`n_held_01` of {glue:text}`n_claims_01` rows held: both lemmas hold under their own
# assumptions; the third row reads Lemma 2.2 without its assumption, and shows where it stops.
