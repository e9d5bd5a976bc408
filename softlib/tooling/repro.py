"""Reproducibility across machines, checked: the same chapters twice, different BLAS threads.

``python -m softlib.tooling.repro --profile quick --only 01 02 03 --threads 1 2`` executes the chapters
once per thread count, each with its own empty cache and results folder (so every model and
set is rebuilt under that thread count: a different summation order, as on another machine),
then compares what they recorded: every claim's verdict must be the same, and every deciding
number of one run must lie inside the other run's 95% interval. It prints the comparison,
writes it to ``results/repro-<profile>.json`` and exits 1 when a verdict differs.
``make verify-repro`` runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from softlib.validate import SoftlibError, check_choice, check_int


def _claims(folder: Path, profile: str, chapters: list[str] | None = None) -> dict[str, dict[str, Any]]:
    out = {}
    for f in sorted((folder / profile).glob("[0-9][0-9]_*.json")):
        if chapters is not None and f.name[:2] not in chapters:
            continue
        for c in json.loads(f.read_text()).get("numbers", {}).get("claims") or []:
            if isinstance(c, dict) and "id" in c:
                out[c["id"]] = c
    return out


def compare(a: Path, b: Path, profile: str, chapters: list[str] | None = None) -> pd.DataFrame:
    """One row per (claim, number): both verdicts, both values, and whether each lies in the other's interval.

    ``chapters`` (two-digit numbers) restricts both sides to those chapters' records.
    """
    ca, cb = _claims(a, profile, chapters), _claims(b, profile, chapters)
    if not ca and not cb:
        raise SoftlibError(f"no recorded claims under {a / profile} or {b / profile}")
    rows = []
    for cid in sorted(set(ca) | set(cb)):
        x, y = ca.get(cid, {}), cb.get(cid, {})
        names = sorted(set(x.get("numbers") or {}) | set(y.get("numbers") or {})) or [""]
        for name in names:
            ex, ey = (x.get("numbers") or {}).get(name), (y.get("numbers") or {}).get(name)

            def inside(e: Any, f: Any) -> bool | None:
                if not e or not f or e.get("value") is None or f.get("low") is None or f.get("high") is None:
                    return None
                return bool(f["low"] <= e["value"] <= f["high"])

            rows.append({"claim": cid, "verdict A": x.get("verdict", "missing"), "verdict B": y.get("verdict", "missing"),
                         "same verdict": x.get("verdict") == y.get("verdict"), "number": name,
                         "A": None if not ex else ex.get("value"), "B": None if not ey else ey.get("value"),
                         "A in B's interval": inside(ex, ey), "B in A's interval": inside(ey, ex)})
    return pd.DataFrame(rows)


def contradicting(table: pd.DataFrame) -> list[str]:
    """The claims of a :func:`compare` table held in one run and not held in the other.

    A verdict that moves between *held* (or *not held*) and *undetermined* sits near its criterion; one
    that moves from *held* to *not held* would mean the intervals did not cover what a rebuild finds.
    """
    pair = {"held", "not held"}
    rows = table[table.apply(lambda r: {r["verdict A"], r["verdict B"]} == pair, axis=1)] if len(table) else table
    return sorted(rows["claim"].unique().tolist()) if len(rows) else []


def _recorded_runs(results: Path, profile: str, chapters: list[str]) -> dict[str, Any]:
    """The commits and thread count of the committed records of ``chapters`` (seed 0 and replicates)."""
    commits, threads = [], set()
    files = [f for f in sorted((results / profile).glob("[0-9][0-9]_*.json")) if f.name[:2] in chapters]
    files += [f for f in sorted((results / profile / "seeds").glob("[0-9][0-9]_*.json")) if f.name[:2] in chapters]
    if not files:
        raise SoftlibError(f"--against-recorded: nothing recorded for chapters {chapters} under {results / profile}")
    for f in files:
        d = json.loads(f.read_text())
        if d.get("commit") and d["commit"] not in commits:
            commits.append(d["commit"])
        # records before the thread count was written: the device line says what the default was
        threads.add(str(d["threads"]) if d.get("threads") else f"the default on {d.get('device', '?')}")
    return {"commits": commits, "threads": " / ".join(sorted(threads)), "files": len(files)}


def _run(profile: str, only: list[str], threads: int, root: Path, recorded_seeds: Path | None = None) -> float:
    """Run the chapters under ``threads`` BLAS threads with an empty cache; return the wall time.

    ``recorded_seeds``: a ``results/<profile>/seeds`` folder whose replicates are pooled as recorded (what
    ``make book`` does on a fresh clone: only seed 0 is trained here); None trains every seed here.
    """
    root = root.absolute()  # the kernels run in notebooks/: relative paths would land there
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": str(threads), "SOFTLIB_CACHE": str(root / "cache"),
           "SOFTLIB_RESULTS": str(root / "results")}
    if recorded_seeds is not None:
        dest = root / "results" / profile / "seeds"
        dest.mkdir(parents=True, exist_ok=True)
        for f in sorted(recorded_seeds.glob("[0-9][0-9]_*-seed*.json")):
            shutil.copy2(f, dest / f.name)
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "softlib.tooling.notebooks", "run", "--profile", profile, "--out", str(root / "notebooks"),
           "--only", *only, *([] if recorded_seeds is not None else ["--fresh-seeds"])]
    subprocess.run(cmd, env=env, check=True)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    """``python -m softlib.tooling.repro``: see the module docstring."""
    from softlib.cache import atomic_write_json
    from softlib.paths import results_dir
    from softlib.profiles import PROFILES
    from softlib.tooling.notebooks import notebook_paths
    from softlib.tooling.record import git_commit

    parser = argparse.ArgumentParser(prog="python -m softlib.tooling.repro")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--only", nargs="+", default=["01", "02", "03"], help="chapters to run twice")
    parser.add_argument("--threads", nargs=2, type=int, default=[1, 2], metavar=("A", "B"))
    parser.add_argument("--work", type=Path, default=Path("build/repro"), help="folder for the two runs")
    parser.add_argument("--compare-only", action="store_true", help="compare the two runs already in --work")
    parser.add_argument("--against-recorded", action="store_true",
                        help="one fresh run (the first --threads count, every seed trained here) against the "
                             "committed record in results/<profile>/: what a fresh clone on another machine checks")
    parser.add_argument("--as-make-book", action="store_true",
                        help="with --against-recorded: train seed 0 here and pool the other seeds as recorded in "
                             "results/<profile>/seeds/, as `make book` on a fresh clone does")
    args = parser.parse_args(argv)
    if args.as_make_book and not args.against_recorded:
        raise SoftlibError("--as-make-book goes with --against-recorded (it is a check against the committed record)")
    check_choice("profile", args.profile, PROFILES)
    for t in args.threads:
        check_int("--threads", t, low=1, high=os.cpu_count() or 1)
    chapters = [p.stem[:2] for p in notebook_paths(args.only)]  # refuses unknown chapters before any work
    walls: dict[str, float] = {}
    if args.against_recorded:
        recorded = _recorded_runs(results_dir(), args.profile, chapters)
        if not args.compare_only:
            walls["B"] = _run(args.profile, args.only, args.threads[0], args.work / f"threads-{args.threads[0]}",
                              results_dir() / args.profile / "seeds" if args.as_make_book else None)
        table = compare(results_dir(), args.work / f"threads-{args.threads[0]}" / "results", args.profile, chapters)
    else:
        for label, t in zip("AB", args.threads):
            if not args.compare_only:
                walls[label] = _run(args.profile, args.only, t, args.work / f"threads-{t}")
        table = compare(args.work / f"threads-{args.threads[0]}" / "results",
                        args.work / f"threads-{args.threads[1]}" / "results", args.profile)
    with pd.option_context("display.width", 200, "display.max_rows", 500, "display.max_colwidth", 40):
        print(table.to_string(index=False))
    flips = table.loc[~table["same verdict"], "claim"].unique().tolist()
    contradictions = contradicting(table)
    outside = table[(table["A in B's interval"] == False) | (table["B in A's interval"] == False)]  # noqa: E712
    summary = {"profile": args.profile, "chapters": args.only, "threads": args.threads, "commit": git_commit(),
               "cnn_seeds": PROFILES[args.profile].cnn_seeds,
               "wall_s": walls, "claims": int(table["claim"].nunique()), "verdict_flips": flips,
               "contradictions": contradictions,
               "numbers": int(table["A"].notna().sum()), "numbers_outside_other_interval": len(outside),
               "rows": table.to_dict("records")}
    if args.against_recorded:
        summary["threads"] = [recorded["threads"], args.threads[0]]
        summary["against_recorded"] = recorded
        summary["as_make_book"] = bool(args.as_make_book)
        seeds = ("seed 0 trained here, the other seeds pooled as recorded, as `make book` on a fresh clone does"
                 if args.as_make_book else f"its own {summary['cnn_seeds']} training seeds")
        summary["description"] = (
            f"a fresh build (commit `{summary['commit']}`, {args.threads[0]} BLAS thread(s), {seeds}, an empty "
            f"cache) of chapters {', '.join(chapters)} against the recorded run in `results/{args.profile}/` "
            f"(commits {', '.join(recorded['commits'])}; threads: {recorded['threads']})")
    atomic_write_json(results_dir() / f"repro-{args.profile}.json", summary)
    print(f"\n{summary['claims']} claims, {len(flips)} verdict flips {flips} ({len(contradictions)} from held to not "
          f"held or back); {summary['numbers']} numbers, {len(outside)} outside the other run's interval")
    return 1 if flips else 0


if __name__ == "__main__":
    raise SystemExit(main())
