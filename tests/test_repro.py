"""The reproducibility comparison: verdict flips and numbers outside the other run's interval."""

import json

import pytest

from softlib.tooling.repro import compare, main
from softlib.validate import SoftlibError


def _write(root, verdict, value, low, high):
    (root / "quick").mkdir(parents=True)
    claim = {"id": "03.x", "verdict": verdict, "numbers": {"d": {"value": value, "low": low, "high": high}}}
    (root / "quick" / "03_detectors.json").write_text(json.dumps({"numbers": {"claims": [claim]}}))


def test_same_verdicts_and_numbers_inside(tmp_path):
    _write(tmp_path / "a", "held", 1.0, 0.5, 1.5)
    _write(tmp_path / "b", "held", 1.1, 0.6, 1.6)
    t = compare(tmp_path / "a", tmp_path / "b", "quick")
    assert t["same verdict"].all() and t["A in B's interval"].all() and t["B in A's interval"].all()


def test_flip_and_outside_are_reported(tmp_path):
    _write(tmp_path / "a", "held", 1.0, 0.5, 1.5)
    _write(tmp_path / "b", "undetermined", 2.0, -0.1, 2.5)
    t = compare(tmp_path / "a", tmp_path / "b", "quick")
    assert not t["same verdict"].any()
    assert t["A in B's interval"].all() and not t["B in A's interval"].any()


def test_nothing_recorded_is_an_error(tmp_path):
    with pytest.raises(SoftlibError, match="no recorded claims"):
        compare(tmp_path / "a", tmp_path / "b", "quick")


@pytest.mark.parametrize("argv", [["--profile", "fast"], ["--threads", "0", "1"], ["--only", "99"]])
def test_cli_refuses_bad_arguments_before_running(argv, tmp_path):
    with pytest.raises(SoftlibError):
        main([*argv, "--work", str(tmp_path)])
