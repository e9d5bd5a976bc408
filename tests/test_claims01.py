"""Chapter 01's claims: each outcome on small synthetic results."""

from softlib.chapters.ch01 import claims as K
from softlib.claims import HELD, NOT_HELD


def results(gap=16.6, stays=True, neg=1.0, pres=0.7):
    return {"saturation": {"float32": gap, "float16": 10.5}, "first_zero": {"float32": (gap, stays), "float16": (10.5, True)},
            "lemma22_fall_share": {"negligible": neg, "present": pres}}


def verdict(cid, r):
    return next(c for c in K.CLAIMS if c.id == cid).evaluate(r).verdict


def test_lemma21():
    assert verdict("01.lemma21", results()) == HELD
    assert verdict("01.lemma21", results(gap=float("inf"))) == NOT_HELD
    assert verdict("01.lemma21", results(stays=False)) == NOT_HELD


def test_lemma22():
    assert verdict("01.lemma22", results()) == HELD
    assert verdict("01.lemma22", results(neg=0.999)) == NOT_HELD
    assert verdict("01.lemma22_general", results()) == NOT_HELD
    assert verdict("01.lemma22_general", results(pres=1.0)) == HELD
