"""The plan of the book's cache entries (softlib.tooling.plan): structure, keys, CLI, validation.

That every planned key is the key the code really uses is checked where the entries are
built: a prebuild task fails when its planned entry did not appear, and tests/test_notebooks.py
builds the book on a prebuilt cache, where the notebooks must build nothing (set keys:
tests/test_sets.py, test_plan_keys_a_set_as_get_set_does).
"""

from __future__ import annotations

import pytest

from softlib import zoo
from softlib.profiles import grid_axes
from softlib.tooling import plan as P
from softlib.validate import SoftlibError


@pytest.fixture(scope="module")
def smoke_plan() -> P.Plan:
    return P.build_plan("smoke")


def test_smoke_plan_is_a_dag_in_dependency_order(smoke_plan):
    seen: set[str] = set()
    for t in smoke_plan.tasks:
        assert t.id not in seen, f"duplicate task {t.id}"
        assert all(d in seen for d in t.deps), f"{t.id} comes before one of its deps {t.deps}"
        seen.add(t.id)
        assert t.kind in P.KINDS and t.chapters
        if t.kind in ("robustness", "transfer"):
            assert t.deps and all(d.startswith("model-") for d in t.deps)
    counts = smoke_plan.counts()
    prof = P.get_profile("smoke")
    # 02-04: CNN, WRN, MLP per training seed (the seed replicates: cnn_seeds in all); 05: CE / RCE / OVM, the LS
    # model and the grid
    assert counts["model"] == 3 * prof.cnn_seeds + 4 + len(grid_axes(prof)[0]) * len(grid_axes(prof)[1])
    assert counts["transfer"] == prof.cnn_seeds
    # 05: 3 losses x 3 attacks x (eps > 0 of the curve), plus one PGD per grid cell
    assert counts["robustness"] == 9 * sum(e > 0 for e in prof.eps_curve) + len(grid_axes(prof)[0]) * len(grid_axes(prof)[1])


def test_entries_shared_by_chapters_are_planned_once(smoke_plan):
    cnn = [t for t in smoke_plan.tasks if t.kind == "model" and t.call["arch"] == "cnn" and t.call["seed"] == 0]
    assert len(cnn) == 1 and set(cnn[0].chapters) == {"02", "03", "04"}
    # chapter 03's test sets are 02's figure sets when the profile sizes agree (smoke: 48 = 48),
    # for seed 0 and for each seed replicate of the two chapters (cnn_seeds in all)
    shared = [t for t in smoke_plan.tasks if t.kind == "set" and set(t.chapters) == {"02", "03"}]
    assert len(shared) == 10 * P.get_profile("smoke").cnn_seeds


def test_planned_keys_are_the_keys_get_model_and_get_set_use(smoke_plan):
    from softlib import sets

    model_task = next(t for t in smoke_plan.tasks if t.kind == "model" and t.call["arch"] == "cnn" and t.call["seed"] == 0)
    model = zoo.get_model("cnn", "mnist", "smoke", 0)  # trains a smoke CNN (seconds) unless cached
    assert model.cache_key == model_task.key
    wanted = {("mnist", "test"), ("gaussian", "test"), ("fgsm", "test"), ("uniform", "train")}
    tasks = [t for t in smoke_plan.tasks if t.kind == "set" and (t.call["name"], t.call["part"]) in wanted
             and t.deps in ((), (model_task.id,)) and t.call["seed"] == 0]
    assert len(tasks) == len(wanted)
    for t in tasks:
        c = t.call
        ls = sets.get_set(c["name"], model, profile="smoke", n=c["n"], part=c["part"], dataset=c["dataset"],
                          seed=c["seed"])
        assert ls.meta["cache_key"] == t.key, f"plan and softlib.sets disagree on the key of {t.label}"


def test_seeds_multiply_the_per_seed_entries():
    # chapter 02 always plans its cnn_seeds replicates (2 in smoke); --seeds 3 adds a third
    one, three = P.build_plan("smoke", 1, ["02"]), P.build_plan("smoke", 3, ["02"])
    n_seeds = P.get_profile("smoke").cnn_seeds
    assert {t.call.get("seed") for t in one.tasks} == set(range(n_seeds))
    assert len(three.tasks) == 3 * len(one.tasks) // n_seeds
    assert {t.call.get("seed") for t in three.tasks} == {0, 1, 2}
    assert {t.call.get("seed") for t in P.build_plan("smoke", 1, ["04"]).tasks} == set(range(n_seeds))  # pools too
    assert {t.call.get("seed") for t in P.build_plan("smoke", 1, ["05"]).tasks} == {0}


def test_select_keeps_dependencies(smoke_plan):
    sub = smoke_plan.select(kinds=("transfer",))
    n_seeds = P.get_profile("smoke").cnn_seeds  # chapter 04 pools its seeds: three models and a run per seed
    assert sub.counts() == {"model": 3 * n_seeds, "transfer": n_seeds}


def test_bad_arguments_are_named():
    with pytest.raises(SoftlibError, match="profile"):
        P.build_plan("huge")
    with pytest.raises(SoftlibError, match="seeds"):
        P.build_plan("smoke", 0)
    with pytest.raises(SoftlibError, match="chapter"):
        P.build_plan("smoke", 1, ["07"])
    assert P.main(["--profile", "huge"]) == 2


@pytest.mark.parametrize("argv, name", [(["--profile", "huge"], "--profile"), (["--seeds", "three"], "--seeds"),
                                        (["--seeds", "0"], "--seeds"), (["--chapters", "07"], "chapter"),
                                        (["--timings", "/nonexistent/log.jsonl"], "--timings"),
                                        (["--no-such-option"], "unrecognized")])
def test_cli_refuses_bad_input_with_a_named_error(argv, name, capsys):
    assert P.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and name in err and "Traceback" not in err


def test_seeds_of_chapter_05_follow_the_profile():
    """The paper profile's chapter 05 trains `seeds` models per loss, all attacked on seed 0's test images."""
    from softlib.paper import detection_vs_robustness as p003

    prof = P.get_profile("paper")
    plan = P.build_plan("paper", 1, ["05"])
    resnets = [t for t in plan.tasks if t.kind == "model" and t.call["kw"].get("loss") in p003.LOSSES]
    assert sorted({t.call["seed"] for t in resnets}) == list(range(prof.seeds))
    assert {t.call["seed"] for t in plan.tasks if t.kind == "robustness"} == {0}


def test_measured_h100_timings_replace_the_estimate(tmp_path):
    import json

    plan = P.build_plan("smoke", 2, ["02"])
    cnn0, cnn1 = [t for t in plan.tasks if t.kind == "model"]
    log = tmp_path / "prebuild-log.jsonl"
    lines = [{"record": "task", "task": cnn0.id, "built": True, "wall_s": 100.0, "device": "NVIDIA H100 80GB HBM3"},
             {"record": "task", "task": cnn0.id, "built": False, "wall_s": 0.1, "device": "NVIDIA H100 80GB HBM3"},
             {"record": "task", "task": plan.tasks[-1].id, "built": True, "wall_s": 9.0, "device": "cpu"}]
    log.write_text("\n".join(json.dumps(r) for r in lines) + "\nnot json\n")
    measured = P.measured_seconds(plan, log)
    # a cache hit and a CPU run are no H100 costs; seed 1's CNN costs what seed 0's did
    assert measured == {P.cost_signature(cnn0): 100.0} and P.cost_signature(cnn1) == P.cost_signature(cnn0)
    est, mixed = P.estimate_seconds(plan), P.estimate_seconds(plan, measured)
    assert mixed["model"] == 200.0 and mixed["set"] == est["set"]
    table = P.summary_table(plan, check_cache=False, measured=measured)
    assert [line.split()[4] for line in table.splitlines() if line.startswith("model")] == ["2"]
    assert P.measured_seconds(plan, tmp_path / "absent.jsonl") == {}


def test_cli_prints_counts_cost_and_cache_status(capsys):
    assert P.main(["--profile", "paper", "--seeds", "3"]) == 0
    out = capsys.readouterr().out
    assert "seeds [0, 1, 2]" in out
    plan = P.build_plan("paper", 3)
    total = [line for line in out.splitlines() if line.startswith("total")][0].split()
    assert int(total[1]) == len(plan.tasks)
    hours = sum(P.estimate_seconds(plan).values()) / 3600
    assert float(total[2]) == pytest.approx(hours, abs=0.01) and hours > 0


def test_the_grid_axes_can_differ_and_the_plan_follows_them() -> None:
    from softlib.profiles import get_profile

    assert grid_axes(get_profile("smoke", grid_lambda2=None)) == ((0.0, 1.0), (0.0, 1.0))
    assert grid_axes(get_profile("smoke", grid=[0.0, 0.5, 1.0], grid_lambda2=[0.0])) == ((0.0, 0.5, 1.0), (0.0,))
    # quick: lambda1 in (0, 0.4, 1) x lambda2 in (0, 0.4); no cell with lambda2 = 1 is planned
    ls = [t.call["kw"]["loss_params"] for t in P.build_plan("quick", chapters=["05"]).tasks
          if t.kind == "model" and t.call["kw"]["loss"] == "ls_lsq"]
    assert {p["lambda2"] for p in ls} == {0.0, 0.4} and {p["lambda1"] for p in ls} == {0.0, 0.4, 1.0}
