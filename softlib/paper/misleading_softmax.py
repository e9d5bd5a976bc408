"""Reference numbers of papers 001 / 004, Ozbulak, De Neve, Van Messem, "How the Softmax
Output is Misleading for Evaluating the Strength of Adversarial Examples".

Source: ``shared/papers/004_64e98d26cdc43e49.txt`` (longer version: figures 1-5,
appendix B) and ``shared/papers/001_d55222418e416c3a.txt`` (workshop version:
figures 1-3, same numbers). Values are the approximate ones the figures print
("~20"); the model of figures 1 and 2 is a pretrained ResNet-50 on ImageNet.

Transcription notes: figure 1 captions print class activations as "~1e2", "~5e2",
"~4e3"; figure 2 prints three activations (CA1 to CA3) per image. The figures 3-5
curves are only plotted, not printed; the text says the multi-class softmax is
"stuck at approximately 0.6" (figure 3b) and that the over-optimised softmax "almost
immediately jumps to 100%" (figure 3a).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

SOURCE = "004"

#: The model of figures 1 and 2 (004 section 2) and the three models of appendix B.
FIGURE_MODEL = "ResNet-50"
MODELS = ("AlexNet", "VGG-16", "ResNet-50")

#: Figure 1: original (arctic fox) and three over-optimised versions (radio), ResNet-50.
#: (label, predicted class, softmax confidence, CA1 = top activation, CA2 = second activation)
FIGURE1: tuple[dict[str, object], ...] = (
    {"panel": "a", "image": "original", "prediction": "arctic fox", "confidence": 0.99, "ca1": 20.0, "ca2": 5.0},
    {"panel": "b", "image": "adversarial", "prediction": "radio", "confidence": 1.0, "ca1": 1e2, "ca2": 10.0},
    {"panel": "c", "image": "adversarial", "prediction": "radio", "confidence": 1.0, "ca1": 5e2, "ca2": 12.0},
    {"panel": "d", "image": "adversarial", "prediction": "radio", "confidence": 1.0, "ca1": 4e3, "ca2": 40.0},
)

#: Figure 2: original (apple) and three multi-class optimised versions (radio), ResNet-50.
FIGURE2: tuple[dict[str, object], ...] = (
    {"panel": "a", "image": "original", "prediction": "apple", "confidence": 0.95, "ca1": 19.0, "ca2": 16.0, "ca3": 4.0},
    {"panel": "b", "image": "adversarial", "prediction": "radio", "confidence": 0.75, "ca1": 39.0, "ca2": 38.0, "ca3": 7.0},
    {"panel": "c", "image": "adversarial", "prediction": "radio", "confidence": 0.71, "ca1": 190.0, "ca2": 189.0, "ca3": 10.0},
    {"panel": "d", "image": "adversarial", "prediction": "radio", "confidence": 0.57, "ca1": 523.0, "ca2": 522.0, "ca3": 14.0},
)

#: 004 section 2 (after Lemma 2.1): highest class activation of any ImageNet validation
#: image on the pretrained ResNet-50, and the highest for the target class "radio".
NATURAL_MAX_ACTIVATION = 52.0
NATURAL_MAX_TARGET_ACTIVATION = 23.0
TARGET_CLASS = "radio"

#: 004 appendix B, over-optimised examples: X_{i+1} = X_i - alpha grad g_c, alpha = 0.15,
#: X in [0, 255] (integers: the "discretization constraint").
ALPHA = 0.15
PIXEL_RANGE = (0, 255)
#: 004 appendix B, multi-class examples: alpha, beta in [0.05, 0.1], the larger on the less likely class.
ALPHA_BETA_RANGE = (0.05, 0.1)
#: Softmax range the multi-class attack keeps (004 appendix B: "between 0.5 and 1").
MULTICLASS_SOFTMAX_RANGE = (0.5, 1.0)
#: 004 section 2 (figure 3b): multi-class softmax "stuck at approximately 0.6".
MULTICLASS_SOFTMAX_PLATEAU = 0.6

#: 004 appendix B experimental settings.
N_IMAGES = 2500  # ImageNet validation images correctly classified by all three models
N_ITERATIONS = 500
#: Data cleaning removed 200 to 500 of the 2500 examples per model-to-model pool ...
FILTERED_RANGE = (200, 500)
#: ... "leaving the results obtained for approximately 2000 adversarial examples" (also figure 3).
N_RETAINED = 2000

#: The paper's claims, as the book tests them (004 section 2 and appendix B, "Experimental Results").
CLAIMS = {
    "softmax_uninformative": "the softmax output is not a good indicator of the transferability "
                             "(i.e., the strength) of adversarial examples",
    "activations_informative": "compared to the output of the softmax function, class activations provide "
                               "better clues on the strength of adversarial examples",
    "overopt_saturates": "the softmax confidence almost immediately jumps to 100%",
    "multiclass_masks": "almost all of the adversarial examples are predicted with less than 100% confidence "
                        "by the generated model for the multi-class case, although all of them transferred",
}


def figure_table(figure: int) -> pd.DataFrame:
    """Figure 1 or 2 as a DataFrame (one row per panel)."""
    import pandas as pd

    from ..validate import check_choice

    check_choice("figure", str(figure), ("1", "2"))
    return pd.DataFrame(FIGURE1 if str(figure) == "1" else FIGURE2)
