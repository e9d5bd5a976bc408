# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # 05. Detection vs robustness
#
# Lemesle & Vernade, "From investigating detection of adversarial examples to achieving better
# adversarial robustness" {cite}`lemesle2021detection`, start from a detection method and end with a
# robustness method. Their question: **do the training losses that make adversarial examples
# easy to *detect* also make a network *robust* to them, or do the two goals pull apart?**
#
# Three losses are compared (their sections 3.1-3.2):
#
# - cross-entropy, $CE(x, y) = -\log F(x)_y$ (eq. 1);
# - reverse cross-entropy {cite}`pang2018rce`, $RCE(x, y) = -R_y^\top \log F(x)$ with
#   $R_y^y = 0$, $R_y^{i \neq y} = \frac{1}{N-1}$: it trains a *reverse* classifier, "the true
#   class has the minimal probability". An RCE model therefore predicts
#   $\hat y = \arg\max_i (-Z(x))_i$, the rule of Pang et al.'s test phase (their code:
#   `np.argmin(predictions)` when `RCE_train`); every accuracy and every attack below uses it;
# - output variance minimisation (OVM, the paper's proposal),
#   $CE + \lambda \frac{1}{|X|}\sum_i \sum_{x \in X_i} \|\log F(x) - \overline{\log F(X_i)}\|_2$, $\lambda = 1$.
#
# Detection is a class-conditional kernel density estimate on the last hidden layer
# {cite}`feinman2017artifacts`, $\hat f_\sigma(x) = \frac{1}{|X|}\sum_{x_i \in X_t} \exp(-\|x_i - x\|^2/\sigma^2)$ (eq. 2),
# evaluated under the KDE of the predicted class; robustness is accuracy under FGSM, BIM and
# PGD. Finally a grid of models trained with label smoothing ($\lambda_1$) and logit squeezing
# ($\lambda_2$), eq. 3, asks whether robustness and detectability are inversely related.

# %% tags=["parameters", "hide-cell"]
profile = "quick"  # "smoke" (seconds, tests only), "quick" (CPU, minutes), "paper" (GPU)
dataset = "auto"  # "auto": cifar10 when it is on disk (as in 003), else mnist; or "mnist" / "cifar10"
seed = 0
grid = None  # lambda values of the lambda1 x lambda2 grid (None: the profile grid)
eps_table = None  # eps of the detection table (None: 0.3 on MNIST, 8/255 on CIFAR-10)
epochs = None  # epochs of the CE / RCE / OVM models (None: the profile's resnet_epochs)
grid_epochs = None  # epochs of each grid model (None: the profile's resnet_grid_epochs)
grid_eps = 0.1  # PGD eps of the MNIST grid (003 gives none; 0.3 leaves ~0% accuracy everywhere)

# %% tags=["remove-input"]
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display

from softlib import data, robustness as rob, zoo
from softlib.attacks import default_eps
from softlib.paper import detection_vs_robustness as p003
from softlib.profiles import get_profile
from softlib.runtime import get_device, seed_everything
from softlib.train import recipe_for
from softlib.validate import SoftlibError, check_choice, check_float, check_int, check_list, check_notebook_parameters, check_seed

from softlib.plots import use_book_style

check_notebook_parameters()  # refuses parameters this notebook does not declare
use_book_style()  # one figure style for the whole book (softlib.plots.BOOK_STYLE)
t_start = time.perf_counter()
prof = get_profile(profile)
seed = check_seed("seed", seed)
check_choice("dataset", dataset, ("auto", "mnist", "cifar10"))
if dataset == "auto":
    dataset = "cifar10" if data.available("cifar10") else "mnist"
    dataset_note = ("CIFAR-10 found on disk: the paper's data set" if dataset == "cifar10" else
                    "**CIFAR-10 is not on disk, so this run uses MNIST** (003 uses CIFAR-10 for tables 2-3 "
                    "and figures 3-4); see `python -m softlib.data status` for how to add it")
else:
    dataset_note = f"{dataset} chosen by the `dataset` parameter"
grid_values = tuple(prof.grid if grid is None else (check_float("grid value", v, low=0.0)
                                                    for v in check_list("grid", grid, item="lambda value", min_len=2)))
if len(grid_values) < 2:
    raise SoftlibError(f"grid needs at least 2 values, got {grid_values}")
eps_table = default_eps(dataset) if eps_table is None else check_float("eps_table", eps_table, low=0.0, high=1.0)
grid_eps = check_float("grid_eps", grid_eps, low=0.0, high=1.0)
epochs = prof.resnet_epochs if epochs is None else check_int("epochs", epochs, low=1)
grid_epochs = prof.resnet_grid_epochs if grid_epochs is None else check_int("grid_epochs", grid_epochs, low=1)
# figure 4's eps range: the profile's MNIST range, rescaled to the data set's budget on CIFAR-10
eps_scale = eps_table / 0.3 if dataset == "cifar10" else 1.0
eps_curve = sorted({round(e * eps_scale, 6) for e in prof.eps_curve} | {0.0, eps_table})
steps = min(p003.ATTACK_SETTINGS["pgd"]["steps"], prof.attack_steps)  # 003 section 4.3: n = 10
seed_everything(seed)
device = get_device()

display(Markdown(f"""
**Run settings.** Profile `{prof.name}` ({prof.description}). Data: **{dataset}** ({dataset_note}).
Device: `{device}`. Model: ResNet-{prof.resnet_depth} (003: ResNet-32), batch {prof.resnet_batch or 256}, {epochs} epoch(s)
(003 table 1: 200) on {prof.train_size or 'all'} training images. Evaluation on {prof.n_test} test
images; the KDE is fitted on {prof.n_fit} training images. Attacks: L-inf FGSM, BIM and PGD with
n = {steps} iterations of size eps/{steps} (003 section 4.3: n = 10, step eps/10; PGD with a random
start). Detection table at eps = {eps_table:.4g} (**003 does not give the eps of table 3**: we use
{'0.3, the usual MNIST budget' if dataset != 'cifar10' else '8/255, the usual CIFAR-10 budget'}).
Grid: {len(grid_values)} x {len(grid_values)} values {list(grid_values)} (003 section 4.4: 6 x 6,
{list(p003.GRID)}), ResNet-{prof.resnet_depth} on MNIST, {grid_epochs} epoch(s) each on {prof.grid_train_size or prof.train_size or 'all'} training images,
PGD at eps = {grid_eps:.4g}.
Profile shortcuts: {prof.shortcuts}.
"""))

# %% [markdown]
# ## Training setup (the paper's table 1)
#
# The models come from `softlib.zoo` (trained once, then cached). Its ResNet recipe beside the paper's
# table 1:

# %% tags=["hide-input"]
recipe = recipe_for("resnet", dataset)
ours_setup = {
    "optimizer": recipe.optimizer, "momentum": recipe.momentum, "weight_decay": recipe.weight_decay,
    "lr": recipe.lr, "lr_schedule": "cosine" if recipe.cosine else "constant", "epochs": epochs,
    "batch_size": prof.resnet_batch or recipe.batch_size, "augmentation": recipe.augment, "pixel_range": "[-0.5, 0.5] (inside the model)",
    "relu_leakiness": 0.1,
}
display(pd.DataFrame({"003 table 1": {k: str(v) for k, v in p003.TRAINING.items()},
                      "ours": {k: str(ours_setup[k]) for k in p003.TRAINING}}))

# %% [markdown]
# ## Three losses, three ResNets: accuracy (the paper's table 2)

# %%
LOSS_PARAMS = {"ce": None, "rce": None, "ovm": {"lambda_": p003.OVM_LAMBDA}}  # 003 section 4.1: lambda = 1
models = {
    loss: zoo.get_model("resnet", dataset, prof, seed, loss=loss, loss_params=LOSS_PARAMS[loss],
                        depth=prof.resnet_depth, epochs=epochs)
    for loss in p003.LOSSES
}
test_acc = {loss: m.meta["test_acc"] for loss, m in models.items()}
acc_table = rob.accuracy_table(test_acc)
display(acc_table.style.format({"paper": "{:.2f}", "ours": "{:.2f}", "diff": "{:+.2f}"}).hide(axis="index"))
# a model far below CE has not converged in this budget (RCE's logit gradients are ~N-1 times smaller
# than CE's at initialisation; OVM's unsquared norm pulls every output toward its class mean)
undertrained = [p003.LOSS_NAMES[k] for k, v in test_acc.items() if v < 0.9 * test_acc["ce"]]
display(Markdown(
    f"Test accuracy (%) on {models['ce'].meta.get('test_acc_n', 'all')} images of the {dataset} test set, "
    f"each model with its own prediction rule; "
    f"paper values: 003 table 2 (CIFAR-10, ResNet-32, 200 epochs)"
    + (" — **not comparable in level here: different data set and training budget**." if dataset != "cifar10"
       or prof.name != "paper" else ".")
    + (f"\n\n**Warning: {', '.join(undertrained)} reached less than 90% of CE's accuracy in {epochs} epoch(s): "
       "not converged, so the comparisons below that involve it say more about the training budget than "
       "about the loss.** Raise `epochs` (or use the paper profile) for a fair comparison." if undertrained else "")
))

# %% [markdown]
# ## Detection with a KDE on the last hidden layer (table 3) and robustness (figure 4)
#
# For each model: the per-class KDE is fitted on the last hidden layer of training images
# (bandwidth $\sigma = 1/0.26$ for CE, $0.1/0.26$ for RCE and OVM, the paper's section 4.2); negatives are
# the correctly classified clean test images, positives the *successful* adversarial examples made
# from them; the score is $-\log \hat f_\sigma$ under the predicted class. The same attacks at every
# eps of the curve give the robustness curves.

# %%
x_test, y_test = rob.eval_subset(dataset, prof.n_test, train=False, seed=seed)
x_fit, y_fit = rob.eval_subset(dataset, prof.n_fit, train=True, seed=seed)
results = pd.concat(
    [rob.evaluate_model(m, x_test, y_test, fit_x=x_fit, fit_y=y_fit, loss=loss, attacks=p003.ATTACKS,
                        eps_list=eps_curve, steps=steps, seed=seed, batch_size=prof.eval_batch)
     for loss, m in models.items()],
    ignore_index=True,
)
auc_tab = rob.auc_table(results, eps_table)
display(auc_tab.style.format({"paper": "{:.1f}", "ours": "{:.1f}", "diff": "{:+.1f}"}).hide(axis="index"))
display(Markdown(
    f"Detection AUC (%) at eps = {eps_table:.4g}; `n_adv` = successful adversarial examples among "
    f"{prof.n_test} test images. Paper: 003 table 3 (CIFAR-10, eps not given). Since the eps is our "
    "choice, the AUC at every eps of the robustness curve follows (large eps on MNIST can saturate it):"
))
auc_by_eps = (100 * results[results.eps > 0].pivot_table(index=["attack", "eps"], columns="loss", values="auc"))
display(auc_by_eps.rename(columns=p003.LOSS_NAMES).round(1))

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=True)
for ax, att in zip(axes, p003.ATTACKS):
    for loss in p003.LOSSES:
        sub = results[(results.loss == loss) & (results.attack == att)].sort_values("eps")
        ax.plot(sub.eps, 100 * sub.accuracy, marker="o", label=p003.LOSS_NAMES[loss])
    ax.set_title(f"{att.upper()}")
    ax.set_xlabel(r"$\epsilon$ ($L_\infty$)")
    ax.grid(alpha=0.3)
axes[0].set_ylabel("accuracy on adversarial images (%)")
axes[0].legend()
fig.suptitle(f"Robustness of CE / RCE / OVM ResNet-{prof.resnet_depth} on {dataset} (cf. 003 figure 4)")
fig.tight_layout()
plt.show()

# %% tags=["hide-input"]
curve = results[results.eps > 0].groupby(["attack", "loss"])["accuracy"].mean().unstack("loss")
ovm_most_robust = {att: bool(curve.loc[att, "ovm"] >= curve.loc[att].max() - 1e-12) for att in p003.ATTACKS}
display((100 * curve.rename(columns=p003.LOSS_NAMES)).round(1).rename_axis(
    "mean accuracy (%) over eps > 0", axis=1))

# %% [markdown]
# ## What the last hidden layer looks like (the paper's figures 3 and 2)
#
# Lemesle & Vernade read compact class clusters in a t-SNE of the last hidden layer as a sign of good KDE
# detection (figure 3: CE, RCE, OVM) and shows that label smoothing
# $J^\lambda_{CE} = CE - \lambda R_y^\top \log F(x)$ compacts them as $\lambda$ grows (figure 2;
# $\lambda = \infty$ *is* RCE, their section 3.1). Beside each panel: a scale-free compactness number
# (mean distance to the class mean / mean distance between class means; lower = more compact).

# %% tags=["hide-input"]
x_fig, y_fig = x_test[: prof.n_figure], y_test[: prof.n_figure].numpy()


def tsne_panel(ax, model, loss, title):
    """t-SNE of the last hidden layer of ``model`` on the figure images, coloured by label."""
    hidden, _ = rob.hidden_and_predictions(model, x_fig, loss=loss, batch_size=prof.eval_batch)
    emb, lab = rob.tsne_embedding(hidden, y_fig, n=prof.n_figure, seed=seed)
    comp = rob.class_compactness(hidden, y_fig)
    ax.scatter(emb[:, 0], emb[:, 1], c=lab, cmap="tab10", s=6)
    ax.set_title(f"{title}\ncompactness {comp:.2f}")
    ax.set_xticks([])
    ax.set_yticks([])
    return comp


fig, axes = plt.subplots(1, 3, figsize=(12, 4))
compactness = {loss: tsne_panel(ax, models[loss], loss, p003.LOSS_NAMES[loss]) for ax, loss in zip(axes, p003.LOSSES)}
fig.suptitle("t-SNE of the last hidden layer (cf. 003 figure 3)")
fig.tight_layout()
plt.show()

# %% tags=["hide-input"]
ls1 = zoo.get_model("resnet", dataset, prof, seed, loss="ls_lsq", loss_params={"lambda1": 1.0, "lambda2": 0.0},
                    depth=prof.resnet_depth, epochs=epochs)
ls_models = {"λ = 0 (CE)": (models["ce"], "ce"), "λ = 1": (ls1, "ls_lsq"), "λ = ∞ (RCE)": (models["rce"], "rce")}
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
ls_compactness = {name: tsne_panel(ax, m, loss, name) for ax, (name, (m, loss)) in zip(axes, ls_models.items())}
fig.suptitle("t-SNE of the last hidden layer under label smoothing (cf. 003 figure 2)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Robustness against detectability: the $\lambda_1 \times \lambda_2$ grid (the paper's figure 5)
#
# One ResNet per cell, trained on MNIST with the paper's eq. 3,
# $J^{\lambda_1,\lambda_2}(x, y) = CE(x, y) - \lambda_1 R_y^\top \log F(x) + \lambda_2 \|Z(x)\|_2$,
# and scored with PGD (the paper: "the same parameters as in section 4.3", i.e. n = 10, step eps/10):
# robust accuracy, and the KDE detection AUC of the same PGD examples. The paper gives neither the eps
# nor a KDE bandwidth for these models. We use eps = `grid_eps` (default 0.1: at 0.3 short-trained
# MNIST models sit at ~0% robust accuracy in every cell, and a rank correlation with a constant is
# undefined) and the CE bandwidth $1/0.26$ (the cell $\lambda_1 = \lambda_2 = 0$ is a CE model).

# %% tags=["hide-input"]
grid_df = rob.run_grid(grid_values, grid_values, prof, dataset="mnist", seed=seed, eps=grid_eps, epochs=grid_epochs)
fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
panels = ("clean_acc", "robust_acc", "auc")
titles = ("clean accuracy (%), for reference", "PGD robust accuracy (%)", "KDE detection AUC (%)")
for ax, col, title in zip(axes, panels, titles):
    table = 100 * grid_df.pivot(index="lambda1", columns="lambda2", values=col)
    sns.heatmap(table, annot=True, fmt=".1f", cmap="viridis", ax=ax, cbar=False)
    ax.set_title(title)
    ax.set_xlabel(r"$\lambda_2$ (logit squeezing)")
    ax.set_ylabel(r"$\lambda_1$ (label smoothing)")
fig.suptitle(f"{len(grid_values)} x {len(grid_values)} grid on MNIST, PGD eps = {grid_eps} (cf. 003 figure 5, 6 x 6)")
fig.tight_layout()
plt.show()
corr = rob.grid_correlation(grid_df)
display(Markdown(
    f"Spearman rank correlation between robust accuracy and detection AUC over the {corr['n']} cells: "
    f"$\\rho$ = {corr['rho']:.2f}, two-sided p = {corr['p_value']:.3g}. Clean accuracy of the grid models "
    f"(on the {prof.n_test} evaluation images): {100 * grid_df.clean_acc.min():.1f}% to "
    f"{100 * grid_df.clean_acc.max():.1f}% after {grid_epochs} epoch(s)."
))

# %% [markdown]
# ## The paper's claims against our numbers

# %%
def verdict(ok: bool | None) -> str:
    """Markdown verdict; None = the numbers cannot decide (e.g. too few grid cells)."""
    return "**undetermined**" if ok is None else "**supported**" if ok else "**not supported**"


acc = {k: 100 * v for k, v in test_acc.items()}
ovm_lowest_acc = acc["ovm"] <= min(acc.values())
ovm_drop = acc["ce"] - acc["ovm"]
auc_ours = auc_tab.set_index(["loss", "attack"])["ours"].unstack("attack")
ovm_worst = {att: bool(auc_ours.loc["OVM", att.upper()] <= auc_ours[att.upper()].min() + 1e-12)
             for att in p003.ATTACKS if att.upper() in auc_ours.columns}
inverse = None if not np.isfinite(corr["rho"]) else bool(corr["rho"] < 0 and corr["p_value"] < 0.05)
mean_auc = auc_by_eps.mean()  # per loss, over attacks and eps > 0
ovm_worst_mean = bool(mean_auc["ovm"] <= mean_auc.min() + 1e-12) if mean_auc.notna().all() else None
grid_converged = bool(grid_df.clean_acc.min() >= 0.9)
ls_order = list(ls_compactness.values())
wall = time.perf_counter() - t_start
display(Markdown(f"""
| 003's claim | our numbers | verdict |
|---|---|---|
| {p003.CLAIMS['accuracy']} | OVM {acc['ovm']:.2f}% vs CE {acc['ce']:.2f}% and RCE {acc['rce']:.2f}% (drop vs CE {ovm_drop:+.2f} points; paper 1.63) | lowest: {verdict(ovm_lowest_acc)}; within 2 points of CE: {verdict(abs(ovm_drop) <= 2)} |
| {p003.CLAIMS['detection']} | OVM has the lowest AUC for {sum(ovm_worst.values())} of {len(ovm_worst)} attacks ({', '.join(a.upper() for a, v in ovm_worst.items() if v) or 'none'}) | {verdict(all(ovm_worst.values()))} |
| same, averaged over all attacks and eps > 0 | mean AUC CE {mean_auc['ce']:.1f}%, RCE {mean_auc['rce']:.1f}%, OVM {mean_auc['ovm']:.1f}% | {verdict(ovm_worst_mean)} |
| 3.1 / figure 2: label smoothing compacts the hidden layer as λ grows | compactness {', '.join(f'{k}: {v:.2f}' for k, v in ls_compactness.items())} | {verdict(ls_order[0] > ls_order[1] > ls_order[2])} |
| 4.2 / figure 3: OVM's representations are more compact than CE's | compactness CE {compactness['ce']:.2f}, RCE {compactness['rce']:.2f}, OVM {compactness['ovm']:.2f} | {verdict(compactness['ovm'] < compactness['ce'])} |
| {p003.CLAIMS['robustness']} | mean accuracy over eps > 0: {'; '.join(f"{a.upper()} OVM {100 * curve.loc[a, 'ovm']:.1f}% vs best other {100 * curve.loc[a].drop('ovm').max():.1f}%" for a in p003.ATTACKS)} | OVM most robust for {sum(ovm_most_robust.values())} of 3 attacks: {verdict(all(ovm_most_robust.values()))} |
| {p003.CLAIMS['inverse_correlation']} | Spearman ρ = {corr['rho']:.2f}, p = {corr['p_value']:.3g} over {corr['n']} cells | {verdict(inverse)} (needs ρ < 0 and p < 0.05; undetermined with fewer than 3 cells or a constant column) |

Data set: {dataset}; profile `{prof.name}`; {epochs} training epoch(s) per model.
{('**Not converged in this budget: ' + ', '.join(undertrained) + '** (see the accuracy table); verdicts involving them are about the budget.') if undertrained else 'All three models reached at least 90% of CE accuracy.'}
{'' if grid_converged else f'**The grid models are far from converged** (clean accuracy {100 * grid_df.clean_acc.min():.0f}% to {100 * grid_df.clean_acc.max():.0f}% after {grid_epochs} epoch(s)): the grid correlation mostly reflects how far each loss got in training; raise `grid_epochs` for a meaningful test.'}
Chapter wall time: {wall:.0f} s (models and attacks are
cached: a second run is much faster).
"""))

# %% tags=["remove-cell"]
from softlib.record import record

record("05_detection_vs_robustness", prof.name, {
    "dataset": dataset, "test_acc": test_acc, "kde_auc": auc_tab.to_dict("records"),
    "mean_accuracy_over_eps": curve.to_dict(), "grid": grid_df.to_dict("records"),
    "grid_correlation": {"rho": corr["rho"], "p_value": corr["p_value"], "n": corr["n"]},
}, wall_s=wall)
