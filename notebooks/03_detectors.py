# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # 03. Detectors: logits against softmax
#
# Chapter 02 showed that legitimate images, adversarial examples and out-of-distribution (OOD)
# inputs have visibly different *logits*, and that the softmax hides much of the difference.
# This chapter asks the quantitative question of the ICLR 2020 submission "How the Softmax Activation
# Hinders the Detection of Adversarial and Out-of-Distribution Examples" {cite}`softmax_hinders_2020`
# (section 4; *the submission* below) and of its workshop predecessor by Aigrain & Detyniecki,
# "Detecting Adversarial Examples and Other Misclassifications in Neural Networks by
# Introspection" {cite}`aigrain2019introspection`:
#
# > **Does a detector fed with logits beat the same detector fed with softmax probabilities,
# > and how do logit-based detectors compare with the literature?**
#
# The detectors (all in `softlib.detectors`, one scikit-learn interface, score = higher is
# more legitimate):
#
# - **Softmax Baseline** (SB, {cite:t}`hendrycks2017baseline`): the max softmax probability.
# - **Trust Score** (TS, {cite:t}`jiang2018trust`): distance to the closest other class over
#   distance to the predicted class, in some feature space (neither paper says which; we
#   use the logits, and show the softmax too).
# - **KDE** (the submission, section 4.2): a Gaussian kernel density of *legitimate* features only,
#   Scott's rule bandwidth as in scipy; unsupervised.
# - **NN** (the submission, section 4.1) = **Introspection-Net** (Aigrain & Detyniecki, section 3.1): a 3-layer regression
#   network (128 ReLU units each, dropout 0.2, batch norm) trained with MSE and RMSprop to output
#   1 for legitimate and 0 for other inputs; *supervised*: it sees the OOD and adversarial sets
#   during training.
#
# Metrics (the submission, section 4.3, after Hendrycks & Gimpel): AUROC, AUPR-In (legitimate = positive),
# AUPR-Out (the others positive, score negated) and the FPR at 95% TPR "as in Liang et al.":
# legitimate inputs are the positive class, the threshold accepts 95% of them, and the FPR is
# the share of OOD / adversarial inputs it accepts too (`softlib.metrics`, convention
# `positive="legit"`; OpenOOD's convention, OOD positive, gives other FPR numbers). All in percent.

# %% tags=["parameters", "hide-cell"]
profile = "quick"  # "smoke" (seconds, tests only), "quick" (CPU, minutes), "paper" (GPU)
in_distribution = "mnist"  # "mnist" or "cifar10" (000 uses both)
arch = "cnn"  # "cnn" (000 table 1, "custom network") or "wrn" (WRN-28-8 in the paper profile)
seed = 0
detectors = ["sb", "ts", "kde", "nn"]  # the detectors of 000 table 2
modern = ["maxlogit", "energy", "mahalanobis"]  # beyond the papers

# %% tags=["remove-input"]
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from softlib import detectors as D
from softlib import models, sets, tables, zoo
from softlib.metrics import roc_points
from softlib.paper import introspection as p002
from softlib.paper import softmax_hinders as p000
from softlib.profiles import get_profile
from softlib.record import record
from softlib.runtime import get_device, seed_everything
from softlib.validate import SoftlibError, check_choice, check_int
from softlib.plots import use_book_style

use_book_style()  # one figure style for the whole book (softlib.plots.BOOK_STYLE)
t_start = time.perf_counter()
prof = get_profile(profile)
check_choice("in_distribution", in_distribution, ("mnist", "cifar10"))
check_choice("arch", arch, tuple(p000.ARCH_TO_MODEL))
paper_model = p000.model_key(arch)
seed = check_int("seed", seed, low=0)
detectors = [check_choice("detector", d, p000.TABLE2_DETECTORS) for d in detectors]
modern = [check_choice("modern detector", d, ("maxlogit", "energy", "mahalanobis")) for d in modern]
if "nn" not in detectors:
    raise SoftlibError("detectors must include 'nn': tables 2-3 and the Introspection-Net table are built around it")
seed_everything(seed)
device = get_device()
FEATURES = ("softmax", "logits")
display(Markdown(f"""
**Run settings.** Profile `{prof.name}` ({prof.description}); device `{device}`; model `{arch}`
(000: {p000.MODEL_NAMES[paper_model]}) on **{in_distribution}**, seed {seed}. Detectors are fitted on
{prof.n_fit} legitimate training images (000: {p000.N_FIT_LEGIT}); the NN detector also sees
{prof.n_train_other} training examples of each other set (000: {p000.N_TRAIN_OTHER}), Introspection-Net
{prof.n_train_other_introspection} (002: {p002.N_TRAIN_OTHER}), for {prof.detector_epochs} epochs
(papers: {p000.DETECTOR_EPOCHS}); every test set holds up to {prof.n_test} images (000: {p000.N_TEST}).
Profile shortcuts: {prof.shortcuts}.
"""))

# %% [markdown]
# ## The classifier and the sets
#
# The classifier comes from `softlib.zoo` (trained once, then cached) and the sets from
# `softlib.sets`, the same ones chapter 02 uses: adversarial examples (FGSM, BIM, DeepFool,
# MaxConfidence; L∞, only the misclassified results kept), OOD sets (Gaussian and uniform noise,
# CIFAR-10, Fashion-MNIST) and Aigrain & Detyniecki's *errors* (images with a 7×7 black patch that the model gets
# wrong). Detector training data comes from the training split, test data from the test split.

# %% tags=["hide-input"]
model = zoo.get_model(arch, in_distribution, prof, seed)
available = sets.available_sets(in_distribution)
groups000 = tables.paper_sets(in_distribution, available, paper="000")
groups002 = tables.paper_sets(in_distribution, available, paper="002")
stand_in = "natural" in groups000["ood"]
other_sets = list(dict.fromkeys(s for g in (groups000, groups002) for ss in g.values() for s in ss))


def load(name: str, part: str, n: int) -> sets.LabeledSet:
    """One set of this chapter (cached by softlib.sets)."""
    return sets.get_set(name, model, profile=prof, n=n, part=part, dataset=in_distribution, seed=seed)


def views(ls: sets.LabeledSet) -> dict[str, np.ndarray]:
    """logits / softmax / hidden / pred of a set, from one batched forward pass."""
    return D.feature_views(models.predict(model, ls.x, batch_size=prof.eval_batch))


fit_set = load(in_distribution, "train", prof.n_fit)
train_sets = {s: load(s, "train", prof.n_train_other) for s in other_sets}
test_sets = {s: load(s, "test", prof.n_test) for s in [in_distribution, *other_sets]}
fit_v = views(fit_set)
train_v = {s: views(ls) for s, ls in train_sets.items()}
test_v = {s: views(ls) for s, ls in test_sets.items()}

acc = 100 * model.meta["test_acc"]
set_rows = []
for s in [in_distribution, *other_sets]:
    ls = test_sets[s]
    set_rows.append({"set": sets.SET_NAMES.get(s, s), "family": ls.family, "n test": len(ls),
                     "n train": len(train_sets[s]) if s in train_sets else len(fit_set),
                     "attack success %": 100 * ls.meta.get("success_rate", np.nan),
                     "stand-in": bool(ls.meta.get("stand_in", False))})
display(pd.DataFrame(set_rows).style.format({"attack success %": "{:.1f}"}, na_rep="").hide(axis="index"))
display(Markdown(
    f"Test accuracy of the classifier: **{acc:.2f}%** (000 section 4.3: "
    f"{p000.ACCURACY[(paper_model, in_distribution)]}% for the {p000.MODEL_NAMES[paper_model]} on {in_distribution})."
    + (" **CIFAR-10 is not on disk: the OOD natural-image set is the `natural` stand-in** (crops of two "
       "photos, see `softlib.ood`); its rows play CIFAR-10's in the paper tables below." if stand_in else "")
))

# %% [markdown]
# ## Fitting and scoring every detector on softmax and on logits
#
# Each detector is fitted once per input representation and scores every test set. The
# unsupervised ones (SB, KDE) and the Trust Score see only legitimate training images (the Trust
# Score with their labels); the NN detector is trained on those plus the training examples of the
# 8 adversarial and OOD sets (the submission, section 4.3: one detector for all sets, 10% held out for
# validation; the weights of the best validation epoch are kept).

# %%
legit = in_distribution
adv_ood = groups000["adversarial"] + groups000["ood"]
scores000: dict[tuple[str, str], dict[str, np.ndarray]] = {}
nn_info = {}
for det_name in detectors:
    for feat in (("softmax",) if det_name == "sb" else FEATURES):
        opts = {"feature": feat}
        if det_name == "nn":
            opts.update(epochs=prof.detector_epochs, seed=seed)
        det = D.make_detector(det_name, **opts)
        train_x = np.concatenate([fit_v[feat]] + [train_v[s][feat] for s in adv_ood])
        train_t = np.concatenate([np.ones(len(fit_v[feat]), int)] + [np.zeros(len(train_v[s][feat]), int) for s in adv_ood])
        D.fit_on(det, fit_x=fit_v[feat], fit_labels=fit_set.y.numpy(), train_x=train_x, train_target=train_t)
        if det_name == "nn":
            nn_info[feat] = {"best epoch": det.best_epoch_, "val MSE": det.val_loss_, "fit s": det.fit_seconds_}
        if det_name == "kde" and det.ridge_ > 0:
            nn_info.setdefault("kde ridge", {})[feat] = det.ridge_
        scores000[(det_name, feat)] = D.score_sets(det, {s: v[feat] for s, v in test_v.items()},
                                                   {s: v["pred"] for s, v in test_v.items()})

per_set = tables.metrics_frame(scores000, legit, groups000)
grouped = tables.group_means(per_set)
display(Markdown(
    "NN detector training: " + "; ".join(
        f"on {f}: best epoch {i['best epoch']} of {prof.detector_epochs}, validation MSE {i['val MSE']:.4f}, "
        f"{i['fit s']:.1f} s" for f, i in nn_info.items() if f in FEATURES)
    + (f". The KDE on softmax needed a ridge on its covariance (softmax rows sum to 1, so the covariance "
       f"is singular; scipy would fail): {nn_info['kde ridge']}." if "kde ridge" in nn_info else ".")
))

# %% [markdown]
# ## The submission's table 2: four detectors, logits for KDE and NN
#
# As in the paper, each cell is the average of the metric over the 4 adversarial sets, the 4 OOD
# sets, or all 8 ("All"). SB works on softmax by definition; TS, KDE and NN on logits.
# `paper` is the submission's table 2 for the same network and data set, `diff` = ours − paper.

# %% tags=["hide-input"]
TABLE2_CELLS = {("sb", "softmax"), ("ts", "logits"), ("kde", "logits"), ("nn", "logits")}
ours_t2 = grouped[[(d, f) in TABLE2_CELLS for d, f in zip(grouped["detector"], grouped["feature"])]]
paper_t2 = p000.table2().query("model == @paper_model and dataset == @in_distribution")
t2 = tables.side_by_side(ours_t2, paper_t2, rows=["group", "detector"])
display(t2.style.format("{:.1f}", na_rep=""))
display(Markdown(
    f"Paper: 000 table 2, {p000.MODEL_NAMES[paper_model]} on {in_distribution}"
    + (" (the OOD group contains the `natural` stand-in instead of CIFAR-10)" if stand_in else "")
    + ". Per-set values (ours) follow."
))
detail = per_set[[(d, f) in TABLE2_CELLS for d, f in zip(per_set["detector"], per_set["feature"])]]
display(detail.pivot_table(index=["group", "set"], columns=["metric", "detector"], values="value", sort=False)
        .reindex(columns=["auroc", "fpr95"], level=0).style.format("{:.1f}"))

# %% [markdown]
# ## The submission's table 3: the same detectors on softmax and on logits
#
# The KDE (unsupervised) and the NN (supervised, the "best case" that can learn its own features
# from the input) are each run on both representations; the Trust Score is added as a third
# detector (not in the paper: `paper` stays empty).
#
# One methodological difference matters for the KDE on softmax: softmax rows sum to 1, so
# their covariance is singular, and scipy's `gaussian_kde` (which the submission used) either fails or,
# in float arithmetic, works with a covariance whose smallest direction is pure rounding noise.
# `softlib.detectors.KDE` adds a tiny ridge instead (reported in the training summary above).
# The submission does not say how it got around this, so its softmax-KDE numbers may partly reflect
# that numerical noise rather than the information content of the softmax.

# %% tags=["hide-input"]
ours_t3 = grouped[grouped["detector"].isin(["ts", "kde", "nn"])]
paper_t3 = p000.table3().query("model == @paper_model and dataset == @in_distribution")
t3 = tables.side_by_side(ours_t3, paper_t3, rows=["group", "detector", "feature"])
display(t3.style.format("{:.1f}", na_rep=""))

# %% [markdown]
# ## ROC curves, softmax against logits, all 8 sets pooled

# %% tags=["hide-input"]
roc_dets = [d for d in ("ts", "kde", "nn") if d in detectors]
fig, axes = plt.subplots(1, len(roc_dets) + 1, figsize=(3.6 * (len(roc_dets) + 1), 3.5), sharey=True)
pooled = {}
for ax, det_name in zip(axes, ["sb", *roc_dets]):
    for feat, style in (("logits", "-"), ("softmax", "--")):
        if (det_name, feat) not in scores000:
            continue
        by_set = scores000[(det_name, feat)]
        other = np.concatenate([by_set[s] for s in adv_ood])
        fpr, tpr = roc_points(by_set[legit], other)
        pooled[(det_name, feat)] = tables.pooled_frame({(det_name, feat): by_set}, legit, adv_ood)
        auc = tables.value(pooled[(det_name, feat)], metric="auroc")
        ax.plot(fpr, tpr, style, label=f"{feat} (AUROC {auc:.1f})")
    ax.plot([0, 1], [0, 1], ":", color="grey", lw=0.8)
    ax.set(title=D.DETECTOR_NAMES[det_name], xlabel="FPR (other sets accepted)")
    ax.legend(loc="lower right", fontsize=8)
axes[0].set_ylabel("TPR (legitimate accepted)")
fig.suptitle(f"{in_distribution} vs its 8 adversarial and OOD sets pooled" + (" (natural stand-in for CIFAR-10)" if stand_in else ""))
fig.tight_layout()
plt.show()

# %% [markdown]
# A curve hugging the top-left corner separates legitimate inputs from all others at every
# threshold. The dashed (softmax) curve of each detector against its solid (logits) curve is the
# information the softmax throws away, for that detector. (The pooled AUROC weighs sets by size and
# so differs slightly from the "All" column above, which averages per-set AUROCs like the paper.)

# %% [markdown]
# ## Aigrain & Detyniecki's table 2: Introspection-Net against SB and TS, per set
#
# Aigrain & Detyniecki train the same network on logits, with 700 images of each other set (its errors set
# included) and the *correctly classified* in-distribution images as positives: it predicts
# whether the classifier is right. We rebuild that regime (`D.introspection_net`): positives
# are the correctly classified legitimate images (training and test), every other set is negative.

# %%
sets002 = [s for ss in groups002.values() for s in ss]
n_intro = prof.n_train_other_introspection
fit_ok = fit_v["pred"] == fit_set.y.numpy()
test_ok = test_v[legit]["pred"] == test_sets[legit].y.numpy()
intro = D.introspection_net(epochs=prof.detector_epochs, seed=seed)
intro_x = np.concatenate([fit_v["logits"]] + [train_v[s]["logits"][:n_intro] for s in sets002])
intro_t = np.concatenate([fit_ok.astype(int)] + [np.zeros(len(train_v[s]["logits"][:n_intro]), int) for s in sets002])
intro.fit(intro_x, intro_t)
correct = f"{legit}_correct"
feats002 = {correct: test_v[legit]["logits"][test_ok], **{s: test_v[s]["logits"] for s in sets002}}
preds002 = {correct: test_v[legit]["pred"][test_ok], **{s: test_v[s]["pred"] for s in sets002}}
scores002 = {("proposed", "logits"): D.score_sets(intro, feats002)}
for det_name, feat in (("sb", "softmax"), ("ts", "logits")):
    det = D.fit_on(D.make_detector(det_name, feature=feat), fit_x=fit_v[feat], fit_labels=fit_set.y.numpy())
    scores002[(det_name, feat)] = D.score_sets(det, {correct: test_v[legit][feat][test_ok],
                                                    **{s: test_v[s][feat] for s in sets002}}, preds002)
per_set002 = tables.metrics_frame(scores002, correct, groups002).assign(
    set=lambda f: f["set"].map(tables.paper_set_name))
exp002 = (paper_model, in_distribution)
paper002 = (p002.table2().query("model == @paper_model and dataset == @in_distribution")
            if exp002 in p002.TABLE2 else pd.DataFrame(columns=["set", "detector", "metric", "value"]))
t002 = tables.side_by_side(per_set002, paper002, rows=["set", "detector"])
display(t002.style.format("{:.1f}", na_rep=""))
display(Markdown(
    (f"Paper: 002 table 2, experiment {exp002}." if exp002 in p002.TABLE2 else
     f"002 has no experiment for {exp002} (only {list(p002.TABLE2)}): `paper` is empty.")
    + (" The `cifar10` rows are the `natural` stand-in." if stand_in else "")
    + f" Positives: the {int(test_ok.sum())} correctly classified of {len(test_ok)} legitimate test images."
))

# %% [markdown]
# ## Beyond the papers: MaxLogit, Energy and Mahalanobis
#
# Three later detectors that need no OOD data for training: the max logit (Hendrycks et al.,
# 2022), the energy score $T \log \sum_i e^{z_i/T}$ with $T = 1$ {cite}`liu2020energy`, both
# functions of the logits alone, and the Mahalanobis distance to the closest class mean in the
# last hidden layer with a shared covariance ({cite:t}`lee2018mahalanobis`, without its input pre-processing).
# The supervised NN detector on logits is repeated for reference.

# %%
scores_modern = {}
for det_name in modern:
    feat = "hidden" if det_name == "mahalanobis" else "logits"
    det = D.fit_on(D.make_detector(det_name, feature=feat), fit_x=fit_v[feat], fit_labels=fit_set.y.numpy())
    scores_modern[(det_name, feat)] = D.score_sets(det, {s: v[feat] for s, v in test_v.items()})
for key in (("kde", "logits"), ("nn", "logits")):
    if key in scores000:
        scores_modern[key] = scores000[key]
grouped_modern = tables.group_means(tables.metrics_frame(scores_modern, legit, groups000))
modern_table = (grouped_modern[grouped_modern["metric"].isin(["auroc", "fpr95"])]
                .pivot_table(index=["detector", "feature"], columns=["metric", "group"], values="value", sort=False))
display(modern_table.style.format("{:.1f}"))

# %% [markdown]
# ## The papers' claims against our numbers
#
# Every verdict below is computed from the tables above (AUROC, the metric 000 section 4.4
# focuses on, unless stated).

# %%
def verdict(ok: bool, criterion: str = "") -> str:
    """Markdown verdict of a claim, with the numeric criterion used when there is one."""
    return ("**supported**" if ok else "**not supported**") + (f" (criterion: {criterion})" if criterion else "")


def auroc(frame: pd.DataFrame, det: str, feat: str, group: str) -> float:
    return tables.value(frame, detector=det, feature=feat, group=group, metric="auroc")


T2 = {"sb": "softmax", "ts": "logits", "kde": "logits", "nn": "logits"}
t2_dets = [d for d in T2 if d in detectors]
best_t2 = {g: max(t2_dets, key=lambda d: auroc(grouped, d, T2[d], g)) for g in ("adversarial", "ood", "all")}
paper_best = {g: max(T2, key=lambda d: p000.lookup(paper_model, in_distribution, g, d, "auroc")) for g in best_t2}
# logits vs softmax, per detector x group x metric (higher is better except FPR)
cmp_rows = []
for d in [d for d in ("ts", "kde", "nn") if d in detectors]:
    for g in ("adversarial", "ood", "all"):
        for m in p000.METRICS:
            lo = tables.value(grouped, detector=d, feature="logits", group=g, metric=m)
            so = tables.value(grouped, detector=d, feature="softmax", group=g, metric=m)
            better = lo < so if m == "fpr95" else lo > so
            cmp_rows.append({"detector": d, "group": g, "metric": m, "logits_better": better})
cmp = pd.DataFrame(cmp_rows)
paper_cmp = [(p000.lookup(paper_model, in_distribution, g, d, m, feature="logits"),
              p000.lookup(paper_model, in_distribution, g, d, m, feature="softmax"), m)
             for d in ("kde", "nn") for g in ("adversarial", "ood", "all") for m in p000.METRICS]
paper_share = np.mean([(lo < so) if m == "fpr95" else (lo > so) for lo, so, m in paper_cmp])
ours_share_paper_dets = cmp[cmp["detector"].isin(["kde", "nn"])]["logits_better"].mean()
gain = {g: auroc(grouped, "nn", "logits", g) - auroc(grouped, "nn", "softmax", g) for g in ("adversarial", "ood")}
paper_gain = {g: p000.lookup(paper_model, in_distribution, g, "nn", "auroc", feature="logits")
              - p000.lookup(paper_model, in_distribution, g, "nn", "auroc", feature="softmax") for g in gain}
nn_all = auroc(grouped, "nn", "logits", "all")
has = set(detectors).issuperset
claims = [
    ("000 4.4: the NN detector is best in every setting (AUROC)",
     f"best per group: {', '.join(f'{g}: {D.DETECTOR_NAMES[d]}' for g, d in best_t2.items())} "
     f"(paper: {', '.join(sorted(set(D.DETECTOR_NAMES[d] for d in paper_best.values())))})",
     verdict(all(d == "nn" for d in best_t2.values()))),
    ("000 4.4: the NN detector averages over 99% AUROC on MNIST" if in_distribution == "mnist"
     else "000 4.4: the NN detector is close to 95% AUROC on CIFAR-10 adversarial sets",
     f"NN All AUROC {nn_all:.2f} (paper {p000.lookup(paper_model, in_distribution, 'all', 'nn', 'auroc'):.1f})",
     verdict(nn_all > 99.0, "> 99") if in_distribution == "mnist"
     else verdict(auroc(grouped, "nn", "logits", "adversarial") > 90, "adversarial AUROC > 90")),
]
if has({"ts", "kde"}):
    ts_all, kde_all = auroc(grouped, "ts", "logits", "all"), auroc(grouped, "kde", "logits", "all")
    claims.append((
        "000 4.4: Trust Score and KDE are comparable overall",
        f"All AUROC: TS {ts_all:.1f}, KDE {kde_all:.1f} (paper {p000.lookup(paper_model, in_distribution, 'all', 'ts', 'auroc'):.1f} "
        f"/ {p000.lookup(paper_model, in_distribution, 'all', 'kde', 'auroc'):.1f})",
        verdict(abs(ts_all - kde_all) < 5.0, "within 5 points")))
if has({"kde"}) and (in_distribution == "mnist" or has({"sb"})):
    ood_rank = sorted(t2_dets, key=lambda d: -auroc(grouped, d, T2[d], "ood"))
    claims.append((
        "000 4.4: on MNIST the KDE is second best on OOD sets" if in_distribution == "mnist"
        else "000 4.4: on CIFAR-10 the Softmax Baseline beats the KDE on OOD sets",
        "OOD AUROC ranking: " + " > ".join(D.DETECTOR_NAMES[d] for d in ood_rank),
        verdict(len(ood_rank) > 1 and ood_rank[1] == "kde") if in_distribution == "mnist"
        else verdict(auroc(grouped, "sb", "softmax", "ood") > auroc(grouped, "kde", "logits", "ood"))))
claims.append((
    "000 4.5: logits beat softmax in the vast majority of settings (KDE and NN, every group and metric)",
    f"logits better in {100 * ours_share_paper_dets:.0f}% of {int(cmp['detector'].isin(['kde', 'nn']).sum())} "
    f"cells (paper: {100 * paper_share:.0f}%); with every detector we ran on both: {100 * cmp['logits_better'].mean():.0f}%",
    verdict(ours_share_paper_dets >= 0.75, "logits better in ≥ 75% of the cells")))
claims.append((
    "000 4.5: softmax hurts the NN detector more on adversarial than on OOD sets",
    f"AUROC gain of logits over softmax: adversarial {gain['adversarial']:+.1f}, OOD {gain['ood']:+.1f} "
    f"(paper {paper_gain['adversarial']:+.1f} / {paper_gain['ood']:+.1f})",
    verdict(gain["adversarial"] > gain["ood"])))
if has({"kde"}):
    kde_lo_adv, nn_so_adv = auroc(grouped, "kde", "logits", "adversarial"), auroc(grouped, "nn", "softmax", "adversarial")
    kde_all = auroc(grouped, "kde", "logits", "all")
    kde_rel = 100 * (kde_all / auroc(grouped, "kde", "softmax", "all") - 1)
    claims.append((
        "000 4.5: the KDE on logits (no OOD data seen) rivals the NN on softmax on adversarial sets",
        f"adversarial AUROC: KDE logits {kde_lo_adv:.1f}, NN softmax {nn_so_adv:.1f} (paper "
        f"{p000.lookup(paper_model, in_distribution, 'adversarial', 'kde', 'auroc', feature='logits'):.1f} / "
        f"{p000.lookup(paper_model, in_distribution, 'adversarial', 'nn', 'auroc', feature='softmax'):.1f})",
        verdict(kde_lo_adv >= nn_so_adv - 5.0, "KDE at most 5 points below")))
    claims.append((
        "000 abstract / 4.5: the KDE loses a large share of its AUROC on softmax",
        f"All AUROC, KDE logits / softmax: {kde_all:.1f} / {auroc(grouped, 'kde', 'softmax', 'all'):.1f}, "
        f"relative gain {kde_rel:+.0f}% (paper {p000.CLAIMS['kde_relative_gain'][(paper_model, in_distribution)]:+d}%)",
        verdict(kde_rel > 10.0, "relative gain > 10%")))
# 002
a002 = per_set002[per_set002["metric"] == "auroc"].pivot_table(index="set", columns="detector", values="value")
intro_wins = int((a002["proposed"] >= a002[["sb", "ts"]].max(axis=1)).sum())
ood002 = [tables.paper_set_name(s) for s in groups002["ood"]]
claims += [
    ("002 3.3: Introspection-Net gives overall better confidence values than SB and TS",
     f"mean AUROC over the {len(a002)} sets: Introspection-Net {a002['proposed'].mean():.1f}, SB {a002['sb'].mean():.1f}, "
     f"TS {a002['ts'].mean():.1f}; best on {intro_wins} of {len(a002)} sets",
     verdict(a002["proposed"].mean() > a002[["sb", "ts"]].mean().max())),
    ("002 3.3: close to perfect on every OOD set",
     "OOD AUROCs: " + ", ".join(f"{s} {a002.loc[s, 'proposed']:.1f}" for s in ood002),
     verdict(a002.loc[ood002, "proposed"].min() >= 99.0, "every OOD AUROC ≥ 99")),
    ("002 3.3: errors are the hardest task for Introspection-Net",
     f"lowest AUROC: {a002['proposed'].idxmin()} ({a002['proposed'].min():.1f}); errors {a002.loc['errors', 'proposed']:.1f}",
     verdict(a002["proposed"].idxmin() == "errors")),
]
# modern detectors
nn_modern = auroc(grouped_modern, "nn", "logits", "all")
best_modern = max(modern, key=lambda d: auroc(grouped_modern, d, "hidden" if d == "mahalanobis" else "logits", "all")) if modern else None
if best_modern:
    bm_auc = auroc(grouped_modern, best_modern, "hidden" if best_modern == "mahalanobis" else "logits", "all")
display(Markdown(
    "| claim | our numbers | verdict |\n|---|---|---|\n"
    + "\n".join(f"| {c} | {n} | {v} |" for c, n, v in claims)
    + (f"\n\nBeyond the papers: the best unsupervised modern detector here is **{D.DETECTOR_NAMES[best_modern]}** "
       f"with All AUROC {bm_auc:.1f}, against {nn_modern:.1f} for the supervised NN detector on logits "
       f"({'above' if bm_auc > nn_modern else 'below'} it by {abs(bm_auc - nn_modern):.1f} points) and "
       + (f"{auroc(grouped_modern, 'kde', 'logits', 'all'):.1f} for the unsupervised KDE on logits." if "kde" in detectors
          else "") if best_modern else "")
    + ("\n\n**Stand-in:** CIFAR-10 is not on disk; the natural-image OOD set is the `natural` stand-in "
       "(crops of two photos), so the OOD group differs from the paper's." if stand_in else "")
    + f"\n\nProfile `{prof.name}`: " + ("the papers' sizes." if prof.name == "paper" else
       "smaller sets, shorter training and fewer detector epochs than the papers (see the run settings); "
       "levels differ from the paper, the comparisons between detectors and representations are the point.")
))

# %% tags=["remove-cell"]
wall = time.perf_counter() - t_start
record("03_detectors", prof.name, {
    "in_distribution": in_distribution, "arch": arch, "seed": seed, "stand_in": stand_in, "test_acc": acc,
    "table2": ours_t2[["group", "detector", "metric", "value"]].to_dict("records"),
    "table3": ours_t3[["group", "detector", "feature", "metric", "value"]].to_dict("records"),
    "introspection": per_set002[["set", "detector", "metric", "value"]].to_dict("records"),
    "modern": grouped_modern[["group", "detector", "feature", "metric", "value"]].to_dict("records"),
    "claims": [{"claim": c, "numbers": n, "verdict": v} for c, n, v in claims],
}, wall_s=wall)
display(Markdown(f"Chapter wall time: {wall:.0f} s (the model and the sets are cached: a second run is faster)."))
