"""Reference numbers and settings of paper 003, Lemesle & Vernade, "From investigating
detection of adversarial examples to achieving better adversarial robustness".

Source: ``shared/papers/003_a8978a23480017fc.txt``: table 1 (training hyper-parameters),
table 2 (CIFAR-10 test accuracy), table 3 (KDE detection AUC), section 4.1 (ResNet-32,
OVM lambda), section 4.2 (KDE bandwidths), section 4.3 (attack settings), section 4.4
(the MNIST lambda1 x lambda2 grid, eq. 3).

Losses are named as in :mod:`softlib.losses`: ``"ce"``, ``"rce"``, ``"ovm"``; attacks
``"fgsm"``, ``"bim"``, ``"pgd"``. Accuracies and AUCs in percent.

Not given by 003 (chosen by the book and stated where used): the eps of table 3 and of
the grid's PGD attack, the norm of the attacks (we use L-infinity, the torchattacks
default for FGSM/BIM/PGD), the epochs of the MNIST grid models, the number of test
images, the eps range of figure 4 (read off a figure without numbers).
"""

from __future__ import annotations

import pandas as pd

SOURCE = "003"

LOSSES = ("ce", "rce", "ovm")
ATTACKS = ("fgsm", "bim", "pgd")
LOSS_NAMES = {"ce": "CE", "rce": "RCE", "ovm": "OVM"}

#: Table 1: training hyper-parameters (CIFAR-10 ResNet-32).
TRAINING: dict[str, object] = {
    "optimizer": "sgd",
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "lr": 0.1,
    "lr_schedule": "cosine",
    "epochs": 200,
    "batch_size": 256,
    "augmentation": ("random_horizontal_flip", "random_crop"),
    "pixel_range": (-0.5, 0.5),
    "relu_leakiness": 0.1,
}

#: Section 4.1: ResNet-32 on CIFAR-10; OVM balancing parameter lambda = 1.
ARCH = "resnet"
DEPTH = 32
DATASET = "cifar10"
OVM_LAMBDA = 1.0

#: Table 2: classification accuracy (%) on the CIFAR-10 test set.
TABLE2: dict[str, float] = {"ce": 93.13, "rce": 92.94, "ovm": 91.5}

#: Table 3: AUC-scores (%) of KDE detection on the last hidden layer, per model and attack.
TABLE3: dict[str, dict[str, float]] = {
    "ce": {"fgsm": 88.4, "bim": 99.9, "pgd": 99.9},
    "rce": {"fgsm": 85.7, "bim": 99.6, "pgd": 98.4},
    "ovm": {"fgsm": 73.1, "bim": 83.9, "pgd": 77.2},
}

#: Section 4.2: KDE bandwidth sigma = 1/0.26 for CE and 0.1/0.26 for RCE/OVM (eq. 2:
#: exp(-||x_i - x||^2 / sigma^2)).
KDE_BANDWIDTH: dict[str, float] = {"ce": 1.0 / 0.26, "rce": 0.1 / 0.26, "ovm": 0.1 / 0.26}

#: Section 4.3: BIM with n = 10 iterations (step eps/n); PGD with n = 10 iterations,
#: D_total = eps, D_step = eps/10. FGSM is single-step.
ATTACK_SETTINGS: dict[str, dict[str, float]] = {
    "fgsm": {"steps": 1, "step_fraction": 1.0},
    "bim": {"steps": 10, "step_fraction": 0.1},
    "pgd": {"steps": 10, "step_fraction": 0.1},
}

#: Section 4.4: values of lambda1 (label smoothing) and lambda2 (logit squeezing), 6 x 6 grid,
#: ResNet-32 on MNIST, loss of eq. 3, PGD "using the same parameters as in section 4.3".
GRID: tuple[float, ...] = (0.0, 0.1, 0.2, 0.4, 0.8, 1.0)
GRID_DATASET = "mnist"
GRID_ATTACK = "pgd"

#: The paper's qualitative claims that chapter 05 tests (section, wording).
CLAIMS: dict[str, str] = {
    "accuracy": "4.1: OVM's accuracy is lower but 'does not seem to have been significantly affected'",
    "detection": "4.2 / table 3: OVM has the worst KDE detection of the three models",
    "robustness": "4.3 / figure 4: OVM is 'significantly more robust than the other methods for all "
    "three attacks, especially for the most powerful PGD attack'",
    "inverse_correlation": "4.4 / figure 5: 'an inverse correlation between adversarial robustness "
    "and adversarial detection'",
}


def table2() -> pd.DataFrame:
    """Table 2 as a frame: columns loss, accuracy, source."""
    return pd.DataFrame(
        [{"loss": k, "accuracy": v, "source": "003 table 2"} for k, v in TABLE2.items()]
    )


def table3() -> pd.DataFrame:
    """Table 3 in long form: columns loss, attack, auc, source."""
    return pd.DataFrame(
        [
            {"loss": loss, "attack": att, "auc": auc, "source": "003 table 3"}
            for loss, row in TABLE3.items()
            for att, auc in row.items()
        ]
    )
