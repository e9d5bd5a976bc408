"""The Claims page: one table from the recorded runs, with the paper-settings column."""

import json

import pytest

from softlib import claims
from softlib.chapters.ch03.claims import CLAIMS
from softlib.tooling import claimspage
from softlib.validate import SoftlibError


def _write(root, profile, chapter, rows):
    (root / profile).mkdir(parents=True, exist_ok=True)
    (root / profile / f"{chapter}.json").write_text(json.dumps(
        {"chapter": chapter, "profile": profile, "commit": "abc1234", "device": "cpu (2 cores)", "when": "2026-11-25",
         "numbers": {"claims": rows}}))


def _rows(verdict):
    c = CLAIMS[0]
    return [{"id": c.id, "paper": c.paper, "section": c.section, "claim": c.quote, "criterion": c.criterion,
             "source": c.source, "verdict": verdict, "why": "a | pipe",
             "numbers": {"diff": claims.Estimate(1.5, 0.5, 2.5).as_dict()}}]


def test_page_lists_quick_and_paper_verdicts(tmp_path):
    _write(tmp_path, "quick", "03_detectors", _rows("held"))
    _write(tmp_path, "paper", "03_detectors", _rows("undetermined"))
    text = claimspage.page(tmp_path)
    row = next(line for line in text.splitlines() if CLAIMS[0].quote[:30] in line)
    assert "| held |" in row and "*undetermined*" in row and "1.50 [0.50, 2.50]" in row
    assert "a \\| pipe" in row  # table cells are escaped
    assert "{cite:p}`softmax_hinders_2020`" in row
    assert "Quick run in total: 1 held" in text


def test_page_says_when_no_paper_run_exists(tmp_path):
    _write(tmp_path, "quick", "03_detectors", _rows("not held"))
    text = claimspage.page(tmp_path)
    assert "no run recorded yet" in text and "**not held**" in text


def test_page_with_nothing_recorded(tmp_path):
    assert "No recorded run holds claims yet" in claimspage.page(tmp_path)


def test_corrupt_record_names_the_file(tmp_path):
    (tmp_path / "quick").mkdir()
    (tmp_path / "quick" / "03_detectors.json").write_text("{not json")
    with pytest.raises(SoftlibError, match="03_detectors.json"):
        claimspage.page(tmp_path)


def test_page_marks_verdicts_that_flip_with_the_thread_count(tmp_path):
    _write(tmp_path, "quick", "03_detectors", _rows("held"))
    (tmp_path / "repro-quick.json").write_text(json.dumps({
        "threads": [1, 2], "chapters": ["03"], "claims": 1, "commit": "abc", "numbers": 1,
        "numbers_outside_other_interval": 1, "verdict_flips": [CLAIMS[0].id],
        "rows": [{"claim": CLAIMS[0].id, "same verdict": False, "verdict A": "held", "verdict B": "undetermined"}]}))
    text = claimspage.page(tmp_path)
    row = next(line for line in text.splitlines() if CLAIMS[0].quote[:30] in line)
    assert "**flips**: held / undetermined" in row
    assert "1 of 1 verdicts differ" in text


def test_page_shows_both_rebuild_estimates(tmp_path):
    rows = _rows("held")
    rows[0].update(rebuild_agreement=0.46, clone_agreement=0.97, why="no pipe here")
    _write(tmp_path, "quick", "03_detectors", rows)
    text = claimspage.page(tmp_path)
    header = next(line for line in text.splitlines() if line.startswith("| paper | claim"))
    row = next(line for line in text.splitlines() if CLAIMS[0].quote[:30] in line)
    cols = [c.strip() for c in header.split("|")]
    cells = [c.strip() for c in row.split("|")]
    assert len(cols) == len(cells)
    assert cells[cols.index("a rebuild agrees")] == "46% (borderline)"
    assert cells[cols.index("a fresh clone agrees")] == "97%"


def test_page_names_the_stricter_every_seed_check_when_recorded(tmp_path):
    _write(tmp_path, "quick", "03_detectors", _rows("held"))
    (tmp_path / "repro-quick-every-seed.json").write_text(json.dumps({
        "commit": "abc", "claims": 21, "numbers": 50, "numbers_outside_other_interval": 0,
        "verdict_flips": ["03.a", "03.b"]}))
    text = claimspage.page(tmp_path)
    assert "every seed trained again (`results/repro-quick-every-seed.json`, commit `abc`): 2 of 21 verdicts differ" in text


def test_page_names_the_checks_on_another_device_when_recorded(tmp_path):
    _write(tmp_path, "quick", "03_detectors", _rows("held"))
    assert "another device" not in claimspage.page(tmp_path)
    (tmp_path / "repro-quick-gpu-06.json").write_text(json.dumps({
        "commit": "abc", "device": "NVIDIA H100", "chapters": ["06"], "claims": 8, "numbers": 20,
        "numbers_outside_other_interval": 8, "verdict_flips": ["06-logits-nn"], "contradictions": [],
        "note": "before seeds"}))
    (tmp_path / "repro-quick-gpu-01-05.json").write_text(json.dumps({
        "commit": "def", "device": "NVIDIA H100", "chapters": ["01", "02"], "claims": 34, "numbers": 84,
        "numbers_outside_other_interval": 6, "verdict_flips": [], "contradictions": []}))
    text = claimspage.page(tmp_path)
    assert "another device (NVIDIA H100" in text
    assert "chapters 01, 02 (`results/repro-quick-gpu-01-05.json`, commit `def`): 0 of 34 verdicts differ" in text
    assert "chapter 06 (`results/repro-quick-gpu-06.json`, commit `abc`): 1 of 8 verdicts differ (06-logits-nn)" in text
    assert "outside the other run's interval (before seeds)" in text


@pytest.mark.parametrize("name", ["repro-quick.json", "repro-quick-every-seed.json", "repro-quick-gpu-06.json",
                                  "quick/03_detectors.json"])
def test_page_names_an_unreadable_check_or_record(tmp_path, name):
    _write(tmp_path, "quick", "03_detectors", _rows("held"))
    (tmp_path / name).write_text("{oops")
    with pytest.raises(SoftlibError, match=name.split("/")[-1]):
        claimspage.page(tmp_path)


def test_page_says_the_clone_check_pooled_the_recorded_seeds(tmp_path):
    _write(tmp_path, "quick", "03_detectors", _rows("held"))
    (tmp_path / "repro-quick.json").write_text(json.dumps({
        "threads": ["2", 1], "claims": 1, "commit": "abc", "numbers": 1, "numbers_outside_other_interval": 0,
        "verdict_flips": [], "contradictions": [], "cnn_seeds": 10, "as_make_book": True, "description": "a fresh build",
        "rows": [{"claim": CLAIMS[0].id, "same verdict": True, "verdict A": "held", "verdict B": "held"}]}))
    text = claimspage.page(tmp_path)
    assert "`make verify-repro RECORDED=1 CLONE=1`" in text and "0 of 1 verdicts differ (0 of them from held" in text
    assert "trained seed 0 and pooled the record's other 9" in text and "of its own" not in text
