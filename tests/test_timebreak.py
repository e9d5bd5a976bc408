"""softlib.tooling.timebreak: the time split of a run, from the cache's metadata and the recorded chapters."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from softlib import zoo
from softlib.tooling import timebreak
from softlib.validate import SoftlibError


def _write(path: Path, data: dict, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    os.utime(path, (mtime, mtime))


def test_breakdown_splits_training_sets_and_the_rest(tmp_path: Path) -> None:
    cache, results = tmp_path / "cache", tmp_path / "results"
    key = zoo.model_key("cnn", "mnist", "smoke", 0)
    end = time.time() - 100
    _write(cache / "models" / f"{key}.json", {"wall_s": 30.0, "epochs": 1, "test_acc": 0.5}, end - 200)
    _write(cache / "sets" / "a.json", {"spec": {"model": key, "set": "fgsm", "part": "test"}, "wall_s": 4.0}, end - 50)
    _write(cache / "sets" / "b.json", {"spec": {"model": key, "set": "fgsm", "part": "train"}, "wall_s": 6.0}, end - 500)
    _write(cache / "sets" / "c.json", {"spec": {"model": "other", "set": "bim", "part": "test"}, "wall_s": 99.0}, end - 50)
    _write(results / "smoke" / "03_detectors.json",
           {"when": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(end)), "wall_s": 100.0}, end)
    rows = {r["stage"]: r for r in timebreak.breakdown("smoke", cache=cache, results=results, chapters=["03_detectors"])}
    assert rows["training: custom CNN"]["seconds"] == 30.0
    assert rows["sets: fgsm (test)"]["seconds"] == 4.0 and rows["sets: fgsm (train)"]["seconds"] == 6.0
    assert not any("bim" in s for s in rows)  # another model's set is not ours
    # the chapter ran for the last 100 s: it built set a (4 s), not b nor the model
    assert rows["chapter 03_detectors: analysis (detectors, figures, claims)"]["seconds"] == pytest.approx(96.0)


def test_breakdown_without_a_recorded_chapter_says_so(tmp_path: Path) -> None:
    rows = timebreak.breakdown("smoke", cache=tmp_path, results=tmp_path, chapters=["02_logit_distributions"])
    assert rows == [{"stage": "chapter 02_logit_distributions: not recorded", "seconds": pytest.approx(float("nan"), nan_ok=True),
                     "detail": ""}]


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(SoftlibError, match="profile"):
        timebreak.breakdown("fast", cache=tmp_path, results=tmp_path)
    with pytest.raises(SoftlibError, match="chapter"):
        timebreak.breakdown("smoke", cache=tmp_path, results=tmp_path, chapters=["05"])
    assert timebreak.main(["--profile", "fast"]) == 1
