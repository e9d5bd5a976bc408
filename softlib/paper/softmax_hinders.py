"""Reference numbers of paper 000, "How the Softmax Activation Hinders the Detection
of Adversarial and Out-of-Distribution Examples in Neural Networks" (ICLR 2020 submission).

Source: ``shared/papers/000_195f4c6c33619176.txt``, section 4.3 (accuracies),
table 2 (four detectors on logits vs the literature) and table 3 (KDE / NN on
softmax vs logits). All metric values are in percent, as printed.

Keys used throughout:

- ``model``: ``"custom"`` (000 table 1, softlib arch ``"cnn"``) or ``"wrn"`` (WRN-28-8,
  printed "WR-28-8").
- ``dataset``: the in-distribution data, ``"mnist"`` or ``"cifar10"``.
- ``group``: ``"adversarial"``, ``"ood"`` or ``"all"``; 000 section 4.3: "we only display
  the average of these metrics over OOD and adversarial datasets".
- ``detector``: ``"sb"`` (Softmax Baseline), ``"ts"`` (Trust Score), ``"kde"``, ``"nn"``
  (the names of :data:`softlib.detectors.DETECTORS`).
- ``metric``: ``"fpr95"``, ``"auroc"``, ``"aupr_in"``, ``"aupr_out"``.
- ``feature`` (table 3 only): ``"softmax"`` or ``"logits"``.

Transcription notes (the text file is OCR of the PDF; the values below were read
one by one, fixing only spacing artefacts, never digits):

- spaces inside numbers were removed: ``"5 1.4"`` -> 51.4, ``"64. 8"`` -> 64.8,
  ``"90. 1"`` -> 90.1, ``"45. 1"`` -> 45.1, ``"93. 1"`` -> 93.1, ``"5 1.9"`` -> 51.9,
  ``"8 1.7"`` -> 81.7, ``"56. 1"`` -> 56.1;
- ``"^^65.8"`` and ``"^^53.9"`` are OCR debris before the AUROC of the Softmax
  Baseline (WRN rows): 65.8 and 53.9;
- "CIFAR- 1 0" is CIFAR-10.

Known inconsistency in the paper itself: table 2 prints 41.4 for the FPR of the KDE
detector, custom network / MNIST / All, while table 3 prints 41.6 for the same cell
(KDE logits). Both are kept as printed; 41.6 is the mean of the adversarial (59.0)
and OOD (24.2) cells, so table 3 is probably right. :data:`KNOWN_DISCREPANCIES`
lists it and the tests check that it is the only one. Every "All" cell is the mean of
its adversarial and OOD cells to print rounding except that one and the Trust Score
AUROC on custom / CIFAR-10 (:data:`NOT_GROUP_MEANS`).

The text disagrees with the tables once (:data:`TEXT_VS_TABLES`): section 4.5 contrasts
"an average AUROC of 99.2%" with "an average of 90.2%" for the NN detector on softmax,
custom network / MNIST / All, where table 3 prints 90.9 (the FPR it quotes beside it,
55.1%, is table 3's). The section's "+9%" relative gain fits 90.9 (99.2 / 90.9 = +9.1%),
not 90.2 (+10.0%), so 90.2 is probably the typo.
"""

from __future__ import annotations

from typing import Any

from ..validate import SoftlibError, check_choice

SOURCE = "000"

MODELS = ("custom", "wrn")
DATASETS = ("mnist", "cifar10")
GROUPS = ("adversarial", "ood", "all")
METRICS = ("fpr95", "auroc", "aupr_in", "aupr_out")
TABLE2_DETECTORS = ("sb", "ts", "kde", "nn")
TABLE3_DETECTORS = ("kde", "nn")
FEATURES = ("softmax", "logits")

#: softlib architecture name -> model key of the tables.
ARCH_TO_MODEL = {"cnn": "custom", "wrn": "wrn"}

#: Printed names, for table headers.
MODEL_NAMES = {"custom": "Custom network", "wrn": "WRN-28-8"}
DETECTOR_NAMES = {"sb": "Softmax Baseline", "ts": "Trust Score", "kde": "KDE", "nn": "NN"}
METRIC_NAMES = {"fpr95": "FPR (95% TPR)", "auroc": "AUROC", "aupr_in": "AUPR In", "aupr_out": "AUPR Out"}

#: 000 section 4.3: test accuracy (percent) per (model, dataset).
ACCURACY: dict[tuple[str, str], float] = {
    ("custom", "mnist"): 99.6,
    ("custom", "cifar10"): 80.2,
    ("wrn", "mnist"): 99.7,
    ("wrn", "cifar10"): 95.2,
}

#: 000 sections 3.1 and 4.3: the sets of each group (each "All" cell averages 8 sets).
ADVERSARIAL_SETS = ("fgsm", "bim", "deepfool", "maxconf")
OOD_SETS = {"mnist": ("gaussian", "uniform", "cifar10", "fashion_mnist"),
            "cifar10": ("gaussian", "uniform", "mnist", "fashion_mnist")}

#: 000 section 4.3 (data): sizes of the detector training / test sets.
N_FIT_LEGIT = 5000
N_TRAIN_OTHER = 1000
N_TEST = 2000
VALIDATION_SPLIT = 0.10
DETECTOR_EPOCHS = 60  # 000 section 4.1

# ---------------------------------------------------------------------------
# Table 2, one line per printed row: metric -> (SB, TS, KDE, NN), in percent.
_T2: dict[tuple[str, str, str], dict[str, tuple[float, float, float, float]]] = {
    ("custom", "mnist", "adversarial"): {
        "fpr95": (54.2, 47.3, 59.0, 6.4), "auroc": (72.8, 90.4, 83.0, 98.4),
        "aupr_in": (80.2, 92.6, 85.3, 98.5), "aupr_out": (73.0, 86.3, 78.6, 98.0)},
    ("custom", "mnist", "ood"): {
        "fpr95": (58.1, 43.5, 24.2, 0.2), "auroc": (59.5, 92.8, 96.4, 99.9),
        "aupr_in": (73.7, 95.0, 97.0, 99.9), "aupr_out": (62.1, 87.2, 95.2, 99.9)},
    ("custom", "mnist", "all"): {
        "fpr95": (56.2, 45.4, 41.4, 3.3), "auroc": (66.2, 91.6, 89.7, 99.2),
        "aupr_in": (76.9, 93.8, 91.2, 99.2), "aupr_out": (67.6, 86.7, 86.9, 99.0)},
    ("wrn", "mnist", "adversarial"): {
        "fpr95": (63.5, 23.2, 20.3, 3.3), "auroc": (65.8, 96.8, 96.9, 99.3),  # OCR "^^65.8"
        "aupr_in": (78.6, 97.6, 97.6, 99.5), "aupr_out": (64.8, 95.5, 95.8, 98.8)},  # OCR "64. 8"
    ("wrn", "mnist", "ood"): {
        "fpr95": (60.6, 3.0, 3.4, 0.1), "auroc": (65.5, 99.1, 99.1, 99.9),
        "aupr_in": (79.4, 99.3, 99.3, 99.9), "aupr_out": (60.0, 98.9, 98.9, 99.9)},
    ("wrn", "mnist", "all"): {
        "fpr95": (62.0, 13.1, 11.9, 1.7), "auroc": (65.6, 98.0, 98.0, 99.6),
        "aupr_in": (79.0, 98.5, 98.4, 99.7), "aupr_out": (62.4, 97.2, 97.4, 99.4)},
    ("custom", "cifar10", "adversarial"): {
        "fpr95": (90.9, 90.1, 36.7, 35.7), "auroc": (35.2, 63.7, 87.7, 94.1),  # OCR "90. 1"
        "aupr_in": (52.9, 71.2, 87.9, 95.0), "aupr_out": (45.1, 56.8, 85.7, 91.2)},  # OCR "45. 1"
    ("custom", "cifar10", "ood"): {
        "fpr95": (87.5, 83.5, 69.1, 5.4), "auroc": (78.0, 79.6, 71.6, 98.6),
        "aupr_in": (83.5, 83.5, 77.8, 98.6), "aupr_out": (69.4, 72.9, 71.7, 98.7)},
    ("custom", "cifar10", "all"): {
        "fpr95": (89.2, 86.8, 52.9, 20.6), "auroc": (56.6, 71.1, 79.7, 96.4),
        "aupr_in": (68.2, 77.3, 82.9, 96.8), "aupr_out": (57.3, 64.8, 78.7, 95.0)},
    ("wrn", "cifar10", "adversarial"): {
        "fpr95": (67.2, 76.6, 33.5, 30.4), "auroc": (53.9, 71.2, 91.2, 95.7),  # OCR "^^53.9"
        "aupr_in": (69.8, 76.9, 91.9, 96.6), "aupr_out": (57.8, 66.6, 89.3, 93.4)},
    ("wrn", "cifar10", "ood"): {
        "fpr95": (51.4, 33.4, 49.1, 1.2), "auroc": (91.7, 94.0, 74.3, 99.6),  # OCR "5 1.4"
        "aupr_in": (93.8, 94.9, 76.2, 99.7), "aupr_out": (87.5, 92.8, 73.0, 99.6)},
    ("wrn", "cifar10", "all"): {
        "fpr95": (59.3, 55.0, 41.3, 15.8), "auroc": (72.8, 82.6, 82.7, 97.7),
        "aupr_in": (81.8, 85.9, 84.0, 98.1), "aupr_out": (72.7, 79.7, 81.2, 96.5)},
}

# Table 3, one line per printed row: metric -> (KDE softmax, KDE logits, NN softmax, NN logits).
_T3: dict[tuple[str, str, str], dict[str, tuple[float, float, float, float]]] = {
    ("custom", "mnist", "adversarial"): {
        "fpr95": (67.8, 59.0, 58.9, 6.4), "auroc": (67.3, 83.0, 86.6, 98.4),
        "aupr_in": (69.8, 85.3, 88.9, 98.5), "aupr_out": (66.0, 78.6, 81.8, 98.0)},
    ("custom", "mnist", "ood"): {
        "fpr95": (72.6, 24.2, 51.4, 0.2), "auroc": (45.1, 96.4, 95.2, 99.9),  # OCR "45. 1"
        "aupr_in": (56.5, 97.0, 97.3, 99.9), "aupr_out": (53.0, 95.2, 79.6, 99.9)},
    ("custom", "mnist", "all"): {
        "fpr95": (70.2, 41.6, 55.1, 3.3), "auroc": (56.2, 89.7, 90.9, 99.2),
        "aupr_in": (63.1, 91.2, 93.1, 99.2), "aupr_out": (59.5, 86.9, 80.7, 99.0)},  # OCR "93. 1"
    ("wrn", "mnist", "adversarial"): {
        "fpr95": (66.2, 20.3, 60.0, 3.3), "auroc": (65.3, 96.9, 80.4, 99.3),
        "aupr_in": (64.9, 97.6, 83.5, 99.5), "aupr_out": (67.4, 95.8, 75.9, 98.8)},
    ("wrn", "mnist", "ood"): {
        "fpr95": (74.9, 3.4, 3.6, 0.1), "auroc": (48.3, 99.1, 97.1, 99.9),
        "aupr_in": (59.6, 99.3, 97.8, 99.9), "aupr_out": (58.9, 98.9, 84.5, 99.9)},
    ("wrn", "mnist", "all"): {
        "fpr95": (70.6, 11.9, 31.8, 1.7), "auroc": (56.8, 98.0, 88.7, 99.6),
        "aupr_in": (62.3, 98.4, 90.7, 99.7), "aupr_out": (63.2, 97.4, 80.2, 99.4)},
    ("custom", "cifar10", "adversarial"): {
        "fpr95": (85.8, 36.7, 85.3, 35.7), "auroc": (49.7, 87.7, 75.2, 94.1),
        "aupr_in": (57.3, 87.9, 79.9, 95.0), "aupr_out": (51.9, 85.7, 69.2, 91.2)},  # OCR "5 1.9"
    ("custom", "cifar10", "ood"): {
        "fpr95": (77.7, 69.1, 26.8, 5.4), "auroc": (70.6, 71.6, 93.6, 98.6),
        "aupr_in": (72.5, 77.8, 93.0, 98.6), "aupr_out": (69.1, 71.7, 94.1, 98.7)},
    ("custom", "cifar10", "all"): {
        "fpr95": (81.7, 52.9, 56.1, 20.6), "auroc": (60.1, 79.7, 84.4, 96.4),  # OCR "8 1.7", "56. 1"
        "aupr_in": (64.9, 82.9, 86.5, 96.8), "aupr_out": (60.5, 78.7, 81.6, 95.0)},
    ("wrn", "cifar10", "adversarial"): {
        "fpr95": (67.7, 33.5, 68.7, 30.4), "auroc": (62.4, 91.2, 79.1, 95.7),
        "aupr_in": (68.3, 91.9, 81.9, 96.6), "aupr_out": (62.5, 89.3, 67.3, 93.4)},
    ("wrn", "cifar10", "ood"): {
        "fpr95": (64.8, 49.1, 14.4, 1.2), "auroc": (76.0, 74.3, 96.8, 99.6),
        "aupr_in": (77.3, 76.2, 96.7, 99.7), "aupr_out": (76.6, 73.0, 96.3, 99.6)},
    ("wrn", "cifar10", "all"): {
        "fpr95": (66.2, 41.3, 41.5, 15.8), "auroc": (69.2, 82.7, 87.9, 97.7),
        "aupr_in": (72.8, 84.0, 89.3, 98.1), "aupr_out": (69.6, 81.2, 81.8, 96.5)},
}

#: TABLE2[(model, dataset, group)][detector][metric] -> percent.
TABLE2: dict[tuple[str, str, str], dict[str, dict[str, float]]] = {
    key: {det: {m: row[m][i] for m in METRICS} for i, det in enumerate(TABLE2_DETECTORS)}
    for key, row in _T2.items()
}

#: TABLE3[(model, dataset, group)][(detector, feature)][metric] -> percent.
TABLE3: dict[tuple[str, str, str], dict[tuple[str, str], dict[str, float]]] = {
    key: {
        (det, feat): {m: row[m][2 * j + k] for m in METRICS}
        for j, det in enumerate(TABLE3_DETECTORS)
        for k, feat in enumerate(FEATURES)
    }
    for key, row in _T3.items()
}

#: Cells where table 2 (KDE / NN on logits) and table 3 (the same on logits) disagree.
KNOWN_DISCREPANCIES: dict[tuple[str, str, str, str, str], tuple[float, float]] = {
    # (model, dataset, group, detector, metric): (table 2, table 3)
    ("custom", "mnist", "all", "kde", "fpr95"): (41.4, 41.6),
}

#: "All" cells that are not the mean of the adversarial and OOD cells (to print rounding):
#: (table, model, dataset, detector, metric) -> (printed All, mean of the group rows).
NOT_GROUP_MEANS: dict[tuple[str, str, str, str, str], tuple[float, float]] = {
    ("table2", "custom", "mnist", "kde", "fpr95"): (41.4, 41.6),  # the typo above
    ("table2", "custom", "cifar10", "ts", "auroc"): (71.1, 71.65),  # also 71.1 in section 4.4's text
}

#: Numbers of the text that differ from the tables: (model, dataset, group, detector, metric,
#: feature) -> (text, table 3). Section 4.5: "an average of 90.2%" vs table 3's 90.9.
TEXT_VS_TABLES: dict[tuple[str, str, str, str, str, str], tuple[float, float]] = {
    ("custom", "mnist", "all", "nn", "auroc", "softmax"): (90.2, 90.9),
}

#: Claims of the text, as numbers (sections 4.4 and 4.5, abstract), for the notebook.
CLAIMS: dict[str, Any] = {
    # abstract: "from 98.0% average AUROC to 56.8% in some settings" (WRN / MNIST / All, KDE)
    "abstract_auroc_logits_vs_softmax": (98.0, 56.8),
    # section 4.5: relative AUROC gain (All) of logits over softmax, percent
    "kde_relative_gain": {("custom", "mnist"): 59, ("custom", "cifar10"): 32,
                          ("wrn", "mnist"): 72, ("wrn", "cifar10"): 19},
    "nn_relative_gain": {("custom", "mnist"): 9, ("custom", "cifar10"): 14,
                         ("wrn", "mnist"): 12, ("wrn", "cifar10"): 10},
    # (the table 3 AUROCs give +11.1% for the NN on WRN / CIFAR-10, where the text says +10%)
}


def _check_key(model: str, dataset: str, group: str) -> tuple[str, str, str]:
    check_choice("model", model, MODELS)
    check_choice("dataset", dataset, DATASETS)
    check_choice("group", group, GROUPS)
    return model, dataset, group


def lookup(
    model: str, dataset: str, group: str, detector: str, metric: str, *, feature: str | None = None
) -> float:
    """One printed value (percent).

    Without ``feature`` the value comes from table 2 (detectors sb, ts, kde, nn; kde and
    nn on logits); with ``feature`` ("softmax" or "logits") from table 3 (kde, nn).

    >>> lookup("custom", "mnist", "all", "nn", "auroc")
    99.2
    >>> lookup("wrn", "mnist", "all", "kde", "auroc", feature="softmax")
    56.8
    """
    key = _check_key(model, dataset, group)
    check_choice("metric", metric, METRICS)
    if feature is None:
        check_choice("table 2 detector", detector, TABLE2_DETECTORS)
        return TABLE2[key][detector][metric]
    check_choice("feature", feature, FEATURES)
    check_choice("table 3 detector", detector, TABLE3_DETECTORS)
    return TABLE3[key][(detector, feature)][metric]


def model_key(arch: str) -> str:
    """The table's model key for a softlib architecture name ("cnn" -> "custom")."""
    if arch not in ARCH_TO_MODEL:
        raise SoftlibError(
            f"paper 000 has no results for architecture {arch!r}; allowed: {', '.join(map(repr, ARCH_TO_MODEL))}"
        )
    return ARCH_TO_MODEL[arch]


def table2():
    """Table 2 in long format: columns model, dataset, group, detector, metric, value, source."""
    import pandas as pd

    rows = [
        {"model": m, "dataset": d, "group": g, "detector": det, "metric": met, "value": v,
         "source": "000 table 2"}
        for (m, d, g), dets in TABLE2.items()
        for det, mets in dets.items()
        for met, v in mets.items()
    ]
    return pd.DataFrame(rows)


def table3():
    """Table 3 in long format: model, dataset, group, detector, feature, metric, value, source."""
    import pandas as pd

    rows = [
        {"model": m, "dataset": d, "group": g, "detector": det, "feature": feat, "metric": met,
         "value": v, "source": "000 table 3"}
        for (m, d, g), cells in TABLE3.items()
        for (det, feat), mets in cells.items()
        for met, v in mets.items()
    ]
    return pd.DataFrame(rows)


def inconsistencies():
    """Every place 000 disagrees with itself, one row each, for the chapter: columns where,
    cell (model / dataset / group, detector, metric), printed, other (the value it should agree
    with) and which (the likelier value, from the module docstring's reasoning).

    Rows: :data:`KNOWN_DISCREPANCIES` (table 2 vs table 3), the other cells of
    :data:`NOT_GROUP_MEANS` ("All" cell vs the mean of its group cells) and
    :data:`TEXT_VS_TABLES` (section 4.5's "an average of 90.2%" vs table 3's 90.9).
    """
    import pandas as pd

    rows = [{"where": "table 2 vs table 3", "cell": f"{m} / {d} / {g}, {DETECTOR_NAMES[det]}, {METRIC_NAMES[met]}",
             "printed": a, "other": b, "likelier": "table 3 (the mean of its group cells)"}
            for (m, d, g, det, met), (a, b) in KNOWN_DISCREPANCIES.items()]
    rows += [{"where": f"{t}: All cell vs its group cells",
              "cell": f"{m} / {d} / all, {DETECTOR_NAMES[det]}, {METRIC_NAMES[met]}",
              "printed": a, "other": round(b, 2), "likelier": "undecided (also in the text)"}
             for (t, m, d, det, met), (a, b) in NOT_GROUP_MEANS.items()
             if (m, d, "all", det, met) not in KNOWN_DISCREPANCIES]
    rows += [{"where": "section 4.5 text vs table 3",
              "cell": f"{m} / {d} / {g}, {DETECTOR_NAMES[det]} on {feat}, {METRIC_NAMES[met]}",
              "printed": a, "other": b, "likelier": "table 3 (the text's +9% gain fits it)"}
             for (m, d, g, det, met, feat), (a, b) in TEXT_VS_TABLES.items()]
    return pd.DataFrame(rows)
