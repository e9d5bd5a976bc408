"""Where a profile's run spends its time: training, each attack, the rest of each chapter.

Reads what the run left behind, computes nothing again: the cache's metadata (every trained
model and every built set records its own wall time) and the recorded chapters
(``results/<profile>/<chapter>.json``, with the chapter's wall time). A chapter's
"analysis" time is its wall time less the sets it built itself (the set entries whose files
were written while it ran); detectors are trained and scored there (chapter 03).

    python -m softlib.tooling.timebreak --profile paper [--chapters 02 03] [--json results/paper/time-breakdown.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from softlib.validate import SoftlibError, check_choice, check_seed

#: the chapters whose work this module can split (the custom CNN and its sets)
CHAPTERS = ("02_logit_distributions", "03_detectors")


def _entries(folder: Path) -> list[tuple[dict[str, Any], float]]:
    """(metadata, file mtime) of every readable entry in a cache folder."""
    out = []
    for f in sorted(folder.glob("*.json")):
        try:
            out.append((json.loads(f.read_text()), f.stat().st_mtime))
        except (OSError, ValueError):
            continue  # a half-written or foreign file: not ours to judge here
    return out


def _chapter_window(results: Path, profile: str, chapter: str) -> tuple[float, float, float] | None:
    """(start, end, wall seconds) of the recorded run of ``chapter``, or None when there is none."""
    try:
        d = json.loads((results / profile / f"{chapter}.json").read_text())
        end = datetime.fromisoformat(d["when"]).timestamp()
        wall = float(d["wall_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return end - wall, end, wall


def breakdown(profile: str, *, seed: int = 0, cache: Path | None = None, results: Path | None = None,
              chapters: Sequence[str] = CHAPTERS) -> list[dict[str, Any]]:
    """Rows ``{stage, seconds, detail}``: the CNN's training, each set's attack, each chapter's rest.

    Only entries of the profile's custom CNN (seed ``seed``) are counted, whichever run built them.
    """
    from softlib import zoo
    from softlib.cache import cache_root
    from softlib.paths import results_dir

    check_choice("profile", profile, ("smoke", "quick", "paper"))
    seed = check_seed("seed", seed)
    for c in chapters:
        check_choice("chapter", c, CHAPTERS)
    cache = Path(cache) if cache is not None else cache_root()
    results = Path(results) if results is not None else results_dir()
    key = zoo.model_key("cnn", "mnist", profile, seed)
    rows: list[dict[str, Any]] = []
    try:
        model: dict[str, Any] | None = json.loads((cache / "models" / f"{key}.json").read_text())
    except (OSError, ValueError):
        model = None
    if model is not None:
        rows.append({"stage": "training: custom CNN", "seconds": float(model.get("wall_s") or 0.0),
                     "detail": f"{model.get('epochs')} epochs, test accuracy {100 * float(model.get('test_acc', 0)):.2f}%"})
    sets = [(m, t) for m, t in _entries(cache / "sets") if m.get("spec", {}).get("model") == key and m.get("wall_s")]
    by_attack: dict[str, list[float]] = {}
    for m, _ in sets:
        s = m["spec"]
        by_attack.setdefault(f"sets: {s.get('set')} ({s.get('part')})", []).append(float(m["wall_s"]))
    for stage, secs in sorted(by_attack.items()):
        rows.append({"stage": stage, "seconds": sum(secs), "detail": f"{len(secs)} set(s)"})
    for c in chapters:
        window = _chapter_window(results, profile, c)
        if window is None:
            rows.append({"stage": f"chapter {c}: not recorded", "seconds": float("nan"), "detail": ""})
            continue
        start, end, wall = window
        own = sum(float(m["wall_s"]) for m, t in sets if start <= t <= end + 1)
        trained = float(model.get("wall_s") or 0.0) if model is not None and start <= _model_mtime(cache, key) <= end + 1 else 0.0
        rows.append({"stage": f"chapter {c}: wall time", "seconds": wall,
                     "detail": f"of which sets built in this run {own:.0f} s, training {trained:.0f} s"})
        rows.append({"stage": f"chapter {c}: analysis (detectors, figures, claims)", "seconds": max(wall - own - trained, 0.0),
                     "detail": "wall time less the sets and training done in this run"})
    return rows


def _model_mtime(cache: Path, key: str) -> float:
    try:
        return (cache / "models" / f"{key}.json").stat().st_mtime
    except OSError:
        return float("nan")


def main(argv: list[str] | None = None) -> int:
    """``python -m softlib.tooling.timebreak``: print the breakdown, optionally write it as JSON."""
    ap = argparse.ArgumentParser(prog="python -m softlib.tooling.timebreak", description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chapters", nargs="*", default=None, help="02 and/or 03 (default both)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args(argv)
    try:
        chapters = [next((c for c in CHAPTERS if c.startswith(x)), x) for x in args.chapters] if args.chapters else CHAPTERS
        rows = breakdown(args.profile, seed=args.seed, chapters=chapters)
    except SoftlibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for r in rows:
        print(f"{r['stage']:60s} {r['seconds']:9.0f} s  {r['detail']}")
    if args.json is not None:
        from softlib.cache import atomic_write_json

        atomic_write_json(args.json, {"profile": args.profile, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
