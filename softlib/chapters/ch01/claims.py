"""Chapter 01's claims (Ozbulak et al., 004 section 2: Lemmas 2.1 and 2.2) and their tests.

These are statements about arithmetic, not about samples: the numbers are exact (no interval
is needed, :meth:`~softlib.claims.Estimate.exact`). The tests read the chapter's results:

- ``"first_zero"``: ``{dtype: (gap where the top output's gradient first is exactly 0, stays 0 afterwards)}``
  from a grid of gaps (:func:`softlib.chapters.ch01.lemmas.top_prob_gradient`);
- ``"saturation"``: ``{dtype: gap at which the top output first equals 1.0}`` (bisection,
  :func:`softlib.chapters.ch01.lemmas.saturation_table`);
- ``"lemma22_fall_share"``: ``{case: share of the grid points satisfying the lemma's hypotheses
  where the top output falls}``, with cases ``"negligible"`` (other outputs ~ 0, the proof's
  assumption) and ``"present"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from softlib.claims import HELD, NOT_HELD, Claim, Estimate, Outcome, all_of

CHAPTER = "01_softmax_lemmas"


def lemma21(r: Mapping[str, Any]) -> Outcome:
    nums, verdicts, notes = {}, [], []
    for dtype, gap in r["saturation"].items():
        zero_gap, stays = r["first_zero"][dtype]
        ok = bool(np.isfinite(gap)) and bool(np.isfinite(zero_gap)) and bool(stays)
        nums[f"{dtype}: saturation gap"] = Estimate.exact(float(gap))
        verdicts.append(HELD if ok else NOT_HELD)
        if not ok:
            notes.append(f"{dtype}: " + ("never saturates" if not np.isfinite(gap) else "gradient not 0 beyond"))
    return Outcome(all_of(verdicts), nums, "; ".join(notes) or "every format saturates, and its gradient stays exactly 0")


def lemma22_negligible(r: Mapping[str, Any]) -> Outcome:
    share = float(r["lemma22_fall_share"]["negligible"])
    return Outcome(HELD if share == 1.0 else NOT_HELD, {"share of grid points where p1 falls": Estimate.exact(share)},
                   "other outputs at -30 (the proof's assumption p_n = 0)")


def lemma22_general(r: Mapping[str, Any]) -> Outcome:
    share = float(r["lemma22_fall_share"]["present"])
    return Outcome(HELD if share == 1.0 else NOT_HELD, {"share of grid points where p1 falls": Estimate.exact(share)},
                   "other outputs at 0: raising the top logit also takes their share")


CLAIMS: list[Claim] = [
    Claim("01.lemma21", CHAPTER, "004", "section 2, Lemma 2.1", "for a large enough top logit the softmax output "
          "of that class becomes 1 in finite precision, and stays 1 as the logit grows",
          "in float16, bfloat16, float32 and float64: a finite gap where p1 == 1.0, with an exactly-0 gradient beyond",
          "the lemma's statement", lemma21),
    Claim("01.lemma22", CHAPTER, "004", "section 2, Lemma 2.2", "increasing the top logit by less than another class's "
          "logit lowers the top softmax output (other outputs p_n < delta treated as 0)",
          "other outputs negligible: p1 falls at every grid point with 0 < v1 < vt where class 1 stays on top",
          "the lemma's statement and its proof's assumption", lemma22_negligible),
    Claim("01.lemma22_general", CHAPTER, "004", "section 2, Lemma 2.2 (read without its assumption)",
          "increasing the top logit by less than another class's logit lowers the top softmax output",
          "other outputs present (at 0): p1 falls at every grid point with 0 < v1 < vt where class 1 stays on top",
          "the lemma's statement; not the paper's claim beyond its assumption, shown as the limit of the lemma",
          lemma22_general),
]
