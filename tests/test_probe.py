"""Probing what a profile's task graph costs (softlib.tooling.probe): the line fit, task classes, a real
smoke probe of chapter 04's tasks, the budget, the report's checks and the plan's --costs column."""

from __future__ import annotations

import json

import pytest

from softlib.tooling import plan as P
from softlib.tooling import probe
from softlib.validate import SoftlibError


def test_fit_line_two_points_and_fallbacks():
    assert probe.fit_line([(10.0, 3.0), (20.0, 5.0)]) == pytest.approx((1.0, 0.2))
    # one point: all of it per unit
    assert probe.fit_line([(4.0, 2.0)]) == pytest.approx((0.0, 0.5))
    # the larger run faster (noise): no fixed part, the larger run's rate (never a negative cost)
    assert probe.fit_line([(10.0, 3.0), (20.0, 2.0)]) == pytest.approx((0.0, 0.1))
    with pytest.raises(SoftlibError, match="at least one"):
        probe.fit_line([])


def test_every_smoke_task_has_a_class_and_units():
    plan = P.build_plan("smoke")
    prof = P.get_profile("smoke")
    classes = {}
    for t in plan.tasks:
        cls, units = probe.task_class(t, prof)
        assert cls.startswith(t.kind + ":") and units > 0
        classes.setdefault(t.kind, set()).add(cls)
    # the 2x2 grid's ResNets share a class per loss; CE / RCE / OVM / LS differ
    assert len(classes["model"]) < sum(t.kind == "model" for t in plan.tasks)
    # seeds do not make a class: seed 1's CNN costs what seed 0's does
    cnn = [t for t in plan.tasks if t.kind == "model" and t.call["arch"] == "cnn"]
    assert len(cnn) >= 2 and len({probe.task_class(t, prof)[0] for t in cnn}) == 1


def test_probe_chapter_04_on_smoke_projects_every_task(tmp_path):
    out = tmp_path / "probe.json"
    # seeds 1 and 3: chapter 04 pools the profile's cnn_seeds (2 in smoke) either way, so 3 is the first that adds tasks
    rep = probe.run_probes("smoke", (1, 3), probe_images=64, transfer_iters=(1, 2), budget_s=600, out=out,
                           chapters=("04",), progress=False)
    on_disk = json.loads(out.read_text())
    assert on_disk["plans"] == json.loads(json.dumps(rep["plans"]))
    for cls, p in rep["probes"].items():
        assert "per_unit_s" in p and p["per_unit_s"] >= 0 and p["fixed_s"] >= 0, (cls, p)
        assert len(p["runs"]) == 2  # models and the transfer run: two sizes each
    one, two = rep["plans"]["1"], rep["plans"]["3"]
    assert not one["not_probed"] and one["projected_s"] > 0
    assert two["tasks"] > one["tasks"] and two["projected_s"] >= one["projected_s"]
    plan = P.build_plan("smoke", 1, ("04",))
    costs, device = probe.load_costs(out, plan)
    assert device == rep["device"] and set(costs["task_s"]) == {t.id for t in plan.tasks}


def test_a_spent_budget_skips_the_rest_and_says_so(tmp_path):
    rep = probe.run_probes("smoke", (1,), probe_images=64, transfer_iters=(1, 2), budget_s=1e-9,
                           chapters=("04",), progress=False)
    assert all(p.get("skipped") == "budget spent" for p in rep["probes"].values())
    assert sum(rep["plans"]["1"]["not_probed"].values()) == rep["plans"]["1"]["tasks"]


@pytest.mark.parametrize("kw, match", [
    ({"probe_images": 5}, "probe_images"),
    ({"transfer_iters": (3, 3)}, "transfer_iters"),
    ({"budget_s": 0}, "budget_s"),
    ({"seeds": (0,)}, "seeds"),
])
def test_bad_arguments_are_refused_before_any_work(kw, match):
    args = {"probe_images": 64, "transfer_iters": (1, 2), "budget_s": 10.0, "seeds": (1,)} | kw
    seeds = args.pop("seeds")
    with pytest.raises(SoftlibError, match=match):
        probe.run_probes("smoke", seeds, progress=False, **args)
    with pytest.raises(SoftlibError, match="profile"):
        probe.run_probes("laptop", (1,))


def test_load_costs_checks_the_file(tmp_path):
    plan = P.build_plan("smoke", 1, ("04",))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SoftlibError, match="bad.json"):
        probe.load_costs(bad, plan)
    bad.write_text(json.dumps({"probe_version": 0, "probes": {}}))
    with pytest.raises(SoftlibError, match="version"):
        probe.load_costs(bad, plan)
    bad.write_text(json.dumps({"probe_version": probe.PROBE_VERSION, "probes": {}, "profile": "paper"}))
    with pytest.raises(SoftlibError, match="paper"):
        probe.load_costs(bad, plan)


def test_plan_cli_prints_projected_hours(tmp_path, capsys):
    plan = P.build_plan("smoke", 1, ("04",))
    prof = P.get_profile("smoke")
    probes = {probe.task_class(t, prof)[0]: {"fixed_s": 1.0, "per_unit_s": 0.0} for t in plan.tasks}
    f = tmp_path / "costs.json"
    f.write_text(json.dumps({"probe_version": probe.PROBE_VERSION, "profile": "smoke", "device": "NVIDIA X",
                             "probes": probes}))
    assert P.main(["--profile", "smoke", "--chapters", "04", "--costs", str(f)]) == 0
    text = capsys.readouterr().out
    assert "Projected from probes on NVIDIA X" in text
    assert f"{len(plan.tasks) / 3600:.2f} h" in text.split("Projected")[1]
    assert P.main(["--profile", "smoke", "--costs", str(tmp_path / "none.json")]) == 2


def test_cli_refuses_bad_flags(capsys):
    assert probe.main(["--profile", "smoke", "--probe-images", "x"]) == 2
    assert "--probe-images" in capsys.readouterr().err
    assert probe.main(["--profile", "smoke", "--budget-s", "0"]) == 2


def test_model_probes_size_the_larger_run_to_the_target(monkeypatch):
    """The second model probe aims at MODEL_PROBE_TARGET_S (at least 4x the images, at most the training set)."""
    plan = P.build_plan("smoke", 1, ("04",))
    prof = P.get_profile("smoke")
    task = next(t for t in plan.tasks if t.kind == "model" and t.call["arch"] == "cnn")
    seen: list[int] = []
    monkeypatch.setattr(probe, "_probe_model", lambda c, p, n: seen.append(n))

    def fake_timed(fn):
        fn()
        return 0.5 + seen[-1] * 1e-2  # 0.5 s fixed, 10 ms per image

    monkeypatch.setattr(probe, "_timed", fake_timed)
    runs = probe._model_runs(task, prof, 16)  # t1 = 0.66 s -> 8 s needs ~194 images, 4x is 64
    assert seen == [16, int(probe.MODEL_PROBE_TARGET_S * 16 / 0.66)] and runs[0] == (16.0, 0.66)
    fixed, per = probe.fit_line(runs)
    assert fixed == pytest.approx(0.5) and per == pytest.approx(1e-2)
    seen.clear()
    runs = probe._model_runs(task, prof, 10_000)  # more than the smoke training set: one run of all of it
    assert seen == [prof.cnn_train_size] and len(runs) == 1
