"""The reproducibility comparison: verdict flips and numbers outside the other run's interval."""

import json

import pytest

from softlib.tooling.record import git_commit
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


def test_compare_restricted_to_chapters_ignores_the_others(tmp_path):
    _write(tmp_path / "a", "held", 1.0, 0.5, 1.5)
    _write(tmp_path / "b", "held", 1.1, 0.6, 1.6)
    (tmp_path / "a" / "quick" / "05_detection_vs_robustness.json").write_text(
        json.dumps({"numbers": {"claims": [{"id": "05.y", "verdict": "held", "numbers": {}}]}}))
    assert "05.y" in set(compare(tmp_path / "a", tmp_path / "b", "quick")["claim"])
    t = compare(tmp_path / "a", tmp_path / "b", "quick", chapters=["03"])
    assert set(t["claim"]) == {"03.x"} and t["same verdict"].all()


def test_against_recorded_compares_a_fresh_run_with_the_record(tmp_path, monkeypatch):
    """RECORDED=1: the committed record is side A, one fresh run (here already in --work) side B."""
    from softlib.tooling import claimspage

    results = tmp_path / "results"
    _write(results, "held", 1.0, 0.5, 1.5)
    rec = json.loads((results / "quick" / "03_detectors.json").read_text())
    (results / "quick" / "03_detectors.json").write_text(json.dumps({**rec, "commit": "abc1234", "threads": 2}))
    _write(tmp_path / "work" / "threads-1" / "results", "undetermined", 1.2, 0.4, 2.0)
    monkeypatch.setenv("SOFTLIB_RESULTS", str(results))
    assert main(["--only", "03", "--threads", "1", "2", "--work", str(tmp_path / "work"), "--against-recorded",
                 "--compare-only"]) == 1  # a verdict differs
    d = json.loads((results / "repro-quick.json").read_text())
    assert d["verdict_flips"] == ["03.x"] and d["threads"] == ["2", 1]
    assert d["against_recorded"]["commits"] == ["abc1234"] and "recorded run" in d["description"]
    marks, line = claimspage._repro(results)
    assert marks["03.x"].startswith("**flips**")
    # compared only: the page names the command that compared, and the commit is the build's, not this checkout's
    assert line.startswith("Reproducibility (`python -m softlib.tooling.repro --against-recorded --compare-only`): "
                           "a fresh build (commit `")
    assert d["compare_only"] and d["commit"] == git_commit()  # the fresh records name no commit: this checkout's
    fresh = tmp_path / "work" / "threads-1" / "results" / "quick" / "03_detectors.json"
    fresh.write_text(json.dumps({**json.loads(fresh.read_text()), "commit": "f00d123"}))
    main(["--only", "03", "--threads", "1", "2", "--work", str(tmp_path / "work"), "--against-recorded", "--compare-only"])
    d = json.loads((results / "repro-quick.json").read_text())
    assert d["commit"] == "f00d123" and "commit `f00d123`" in d["description"]
    with pytest.raises(SoftlibError, match="nothing recorded"):
        main(["--only", "02", "--work", str(tmp_path / "work"), "--against-recorded", "--compare-only"])


def test_contradictions_are_only_held_against_not_held(tmp_path):
    from softlib.tooling.repro import contradicting

    _write(tmp_path / "a", "held", 1.0, 0.5, 1.5)
    _write(tmp_path / "b", "not held", -1.0, -1.5, -0.5)
    assert contradicting(compare(tmp_path / "a", tmp_path / "b", "quick")) == ["03.x"]
    _write(tmp_path / "c", "undetermined", 0.2, -0.5, 0.9)
    assert contradicting(compare(tmp_path / "a", tmp_path / "c", "quick")) == []


def test_as_make_book_needs_against_recorded(tmp_path):
    with pytest.raises(SoftlibError, match="--as-make-book goes with --against-recorded"):
        main(["--only", "03", "--work", str(tmp_path), "--as-make-book"])


def test_as_make_book_pools_the_recorded_seeds(tmp_path, monkeypatch):
    """The fresh run gets the committed seed replicates (and no --fresh-seeds): only seed 0 is trained."""
    from softlib.tooling import repro

    seeds = tmp_path / "results" / "quick" / "seeds"
    seeds.mkdir(parents=True)
    (seeds / "03_detectors-seed1.json").write_text("{}")
    (seeds / "notes.txt").write_text("not a replicate")
    calls = []
    monkeypatch.setattr(repro.subprocess, "run", lambda cmd, env, check: calls.append((cmd, env)))
    repro._run("quick", ["03"], 1, tmp_path / "work", recorded_seeds=seeds)
    (cmd, env), = calls
    assert "--fresh-seeds" not in cmd and env["OMP_NUM_THREADS"] == "1"
    copied = tmp_path / "work" / "results" / "quick" / "seeds"
    assert sorted(p.name for p in copied.iterdir()) == ["03_detectors-seed1.json"]
    repro._run("quick", ["03"], 2, tmp_path / "work2")
    assert "--fresh-seeds" in calls[-1][0] and not (tmp_path / "work2" / "results").exists()
    # a second check in the same folder starts from an empty cache again (the first one's models are gone)
    (tmp_path / "work" / "cache" / "models").mkdir(parents=True)
    (tmp_path / "work" / "cache" / "models" / "old.safetensors").write_text("x")
    repro._run("quick", ["03"], 1, tmp_path / "work", recorded_seeds=seeds)
    assert not (tmp_path / "work" / "cache").exists()
    assert sorted(p.name for p in copied.iterdir()) == ["03_detectors-seed1.json"]


def _seed_record(root, name, claims_):
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(json.dumps({"numbers": {"claims": claims_}}))


def _claim_with(value, cid="03.x", rule="greater_than"):
    return {"id": cid, "verdict": "held", "numbers": {},
            "rule_inputs": [{"value": value, "low": value - 0.1, "high": value + 0.1, "rule": rule, "threshold": 0.0}]}


def test_simulated_seed_counts_make_a_fresh_clone_agree_more_often(tmp_path, monkeypatch):
    from softlib.tooling.repro import seed_inputs, simulate_seeds

    quick = tmp_path / "quick"
    near = [0.9, 0.2, 1.1, -0.1, 0.7]  # a claim whose seeds straddle its criterion: borderline
    _seed_record(quick, "03_detectors.json", [_claim_with(near[0]), _claim_with(5.0, "03.far")])
    for k, v in enumerate(near[1:], start=1):
        _seed_record(quick / "seeds", f"03_detectors-seed{k}.json", [_claim_with(v), _claim_with(5.0 + 0.1 * k, "03.far")])
    inputs = seed_inputs(tmp_path, "quick", ["03"])
    assert set(inputs) == {"03.x", "03.far"} and len(inputs["03.x"]) == 5
    assert inputs == seed_inputs(tmp_path, "quick", ["03", "05"]) and seed_inputs(tmp_path, "quick", ["02"]) == {}
    few, many = (simulate_seeds(inputs, n, draws=40, n_sim=300) for n in (3, 15))
    assert few["03.far"]["fresh_clone"] < 0.01 and few["03.far"]["full_rebuild"] < 0.01
    assert many["03.x"]["fresh_clone"] < few["03.x"]["fresh_clone"]
    assert 0.05 < few["03.x"]["full_rebuild"] < 0.95
    with pytest.raises(SoftlibError, match="n_seeds"):
        simulate_seeds(inputs, 1)
    monkeypatch.setenv("SOFTLIB_RESULTS", str(tmp_path))
    with pytest.raises(SoftlibError, match="--simulate-seeds"):
        main(["--only", "03", "--simulate-seeds", "1"])
