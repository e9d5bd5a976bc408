"""softlib.tooling.record.pooled_claims: the claims of chapters 02-03 pooled over recorded seed replicates."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from softlib import claims, zoo
from softlib.claims import HELD, Claim, Estimate, Outcome, greater_than
from softlib.profiles import get_profile
from softlib.tooling.record import pooled_claims, record, seed_replicates
from softlib.validate import SoftlibError

CHAPTER = "99_pooled"
PROF = dataclasses.replace(get_profile("smoke"), cnn_seeds=3)  # seeds 1 and 2 are replicates


def _diff(r) -> Outcome:  # type: ignore[no-untyped-def]
    e = r["diff"]
    return Outcome(greater_than(e), {"A - B": e}, "A against B")


CLAIMS = [Claim("x.diff", CHAPTER, "000", "section 1", "A is above B", "A - B > 0", "the paper's comparison", _diff)]


def _record_replicate(seed: int, value: float, *, dataset: str = "mnist") -> None:
    """A seed replicate on disk, as the chapter's run with training seed ``seed`` would record it."""
    table = claims.evaluate(CLAIMS, {"diff": Estimate(value, value - 0.1, value + 0.1)})
    record(CHAPTER, PROF.name, {"model_key": zoo.model_key("cnn", dataset, PROF, seed),
                                "claims": claims.for_record(table)}, seed=seed)


@pytest.fixture
def results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SOFTLIB_RESULTS", str(tmp_path))
    return tmp_path


def test_pooled_claims_is_the_notebooks_block(results: Path) -> None:
    """Same table and line as chapters 02-03's former inline block (keys -> seed_replicates -> evaluate)."""
    _record_replicate(1, 0.5)
    _record_replicate(2, 0.7)
    ours = {"diff": Estimate(0.6, 0.5, 0.7)}
    table, line = pooled_claims(CHAPTER, CLAIMS, ours, arch="cnn", dataset="mnist", profile=PROF, seed=0)
    keys = {k: zoo.model_key("cnn", "mnist", PROF, k) for k in range(1, PROF.cnn_seeds)}
    reps, want_line = seed_replicates(CHAPTER, PROF.name, keys)
    want = claims.evaluate(CLAIMS, ours, reps)
    assert line == want_line and "seed(s) 1" in line and "2 (commit" in line
    pd.testing.assert_frame_equal(table, want)
    assert table.loc[0, "seeds"] == 3 and table.loc[0, "verdict"] == HELD


def test_a_replicate_of_another_model_or_a_missing_seed_is_not_pooled(results: Path) -> None:
    _record_replicate(1, 0.5, dataset="fashion_mnist")  # recorded for another model: its key differs
    table, line = pooled_claims(CHAPTER, CLAIMS, {"diff": Estimate(0.6, 0.5, 0.7)}, arch="cnn", dataset="mnist",
                                profile=PROF, seed=0)
    assert table.loc[0, "seeds"] == 1
    assert "one trained model" in line and "another model" in line and "seed 2 not run" in line


def test_a_replicate_run_pools_nothing(results: Path) -> None:
    _record_replicate(2, 0.7)
    table, line = pooled_claims(CHAPTER, CLAIMS, {"diff": Estimate(0.6, 0.5, 0.7)}, arch="cnn", dataset="mnist",
                                profile=PROF, seed=1)
    assert table.loc[0, "seeds"] == 1 and line.startswith("Verdicts from one trained model") and "Not pooled" not in line


def test_pooled_claims_refuses_bad_arguments(results: Path) -> None:
    args = {"arch": "cnn", "dataset": "mnist", "profile": PROF, "seed": 0}
    with pytest.raises(SoftlibError, match="profile"):
        pooled_claims(CHAPTER, CLAIMS, {}, **{**args, "profile": "smoke"})
    with pytest.raises(SoftlibError, match="chapter"):
        pooled_claims("../x", CLAIMS, {}, **args)
    with pytest.raises(SoftlibError, match="seed"):
        pooled_claims(CHAPTER, CLAIMS, {}, **{**args, "seed": -1})
    with pytest.raises(SoftlibError, match="arch"):
        pooled_claims(CHAPTER, CLAIMS, {}, **{**args, "arch": "vgg"})


def test_recorded_runs_page_lists_chapters_only() -> None:
    """results/paper/ also holds the time breakdown and a model record: they are not chapter rows."""
    from softlib.tooling.notebooks import recorded_runs_page

    page = recorded_runs_page()
    assert "| 01_softmax_lemmas |" in page or "No `paper`-profile run" in page
    assert "time-breakdown" not in page and "model_cnn_mnist" not in page and "| ? |" not in page


def test_git_commit_in_an_offline_kit_reads_kit_commit(tmp_path, monkeypatch):
    """A kit's source has no .git: the recorded commit is the one the kit was built from, marked as such."""
    from softlib.tooling import record as R

    def no_git(*a, **k):
        raise OSError("git: not found")

    monkeypatch.setattr(R.subprocess, "run", no_git)
    monkeypatch.setattr(R, "repo_root", lambda: tmp_path)
    assert R.git_commit() == "unknown"
    (tmp_path / "KIT_COMMIT").write_text("abc1234+dirty\n")
    assert R.git_commit() == "abc1234+dirty (kit)"
