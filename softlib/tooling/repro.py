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
import contextlib
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
    return sorted({c for c, a, b in zip(table["claim"], table["verdict A"], table["verdict B"]) if {a, b} == pair})


def seed_inputs(results: Path, profile: str, chapters: list[str]) -> dict[str, list[list[dict[str, Any]]]]:
    """Per claim, the rule inputs recorded for each training seed (seed 0 first, then the replicates).

    Only claims whose every recorded seed has rule inputs with their rule are kept (what
    :func:`softlib.claims.rebuild_agreement` needs).
    """
    out: dict[str, list[list[dict[str, Any]]]] = {}
    for f in sorted((results / profile).glob("[0-9][0-9]_*.json")):
        if f.name[:2] not in chapters:
            continue
        reps = sorted((results / profile / "seeds").glob(f"{f.stem}-seed*.json"))
        runs = [json.loads(x.read_text()).get("numbers", {}).get("claims") or [] for x in [f, *reps]]
        by_id = [{c["id"]: c for c in run if isinstance(c, dict) and "id" in c} for run in runs]
        for cid in by_id[0]:
            inputs = [b.get(cid, {}).get("rule_inputs") for b in by_id]
            if len(runs) > 1 and all(isinstance(i, list) and i and all("rule" in e for e in i) for i in inputs):
                out[cid] = inputs
    return out


def simulate_seeds(inputs: dict[str, list[list[dict[str, Any]]]], n_seeds: int, *, draws: int = 60,
                   n_sim: int = 500, seed: int = 0) -> dict[str, dict[str, float]]:
    """Expected verdict changes of a rebuild if the record pooled ``n_seeds`` training seeds.

    For each claim, ``draws`` records of ``n_seeds`` seeds are drawn from normals with the recorded
    seeds' mean and spread per rule input (the recorded bootstrap widths kept); for each such record,
    its verdict and :func:`softlib.claims.rebuild_agreement` for a full rebuild and for a fresh clone
    (``redraw=1``: seed 0 trained again, the others as recorded). Returns, per claim, the mean chance
    that each kind of rebuild changes the verdict.
    """
    import numpy as np

    from softlib import claims as C

    n_seeds = check_int("n_seeds", n_seeds, low=2, high=100)
    draws = check_int("draws", draws, low=1, high=10_000)
    rng = np.random.default_rng(seed)
    names = {0: C.HELD, 1: C.NOT_HELD, 2: C.UNDETERMINED}
    out = {}
    for cid, runs in inputs.items():
        v = np.array([[float(e["value"]) for e in r] for r in runs])
        lo = np.array([[float(e["value"]) - float(e["low"]) for e in r] for r in runs]).mean(axis=0)
        hi = np.array([[float(e["high"]) - float(e["value"]) for e in r] for r in runs]).mean(axis=0)
        rules = [(str(e["rule"]), float(e["threshold"])) for e in runs[0]]
        m, sd = v.mean(axis=0), v.std(axis=0, ddof=1)
        full, clone = [], []
        for _ in range(draws):
            vals = rng.normal(m, sd, size=(n_seeds, len(rules)))
            verdict = names[int(C.pooled_verdict_codes(vals, lo, hi, rules))]
            record = [[{"value": float(x), "low": float(x - lo[k]), "high": float(x + hi[k]), "rule": r, "threshold": thr}
                       for k, (x, (r, thr)) in enumerate(zip(row, rules))] for row in vals]
            a = C.rebuild_agreement(record, verdict, n_sim=n_sim)
            b = C.rebuild_agreement(record, verdict, n_sim=n_sim, redraw=1)
            if a is not None and b is not None:
                full.append(1 - a)
                clone.append(1 - b)
        if full:
            out[cid] = {"full_rebuild": float(np.mean(full)), "fresh_clone": float(np.mean(clone))}
    return out


def _recorded_runs(results: Path, profile: str, chapters: list[str], replicates: bool = True) -> dict[str, Any]:
    """The commits and thread count of the committed records of ``chapters`` (seed 0, and the replicates unless
    ``replicates`` is False: a fresh build's replicates are the record's, copied)."""
    commits, threads = [], set()
    files = [f for f in sorted((results / profile).glob("[0-9][0-9]_*.json")) if f.name[:2] in chapters]
    if replicates:
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
    from softlib.tooling.notebooks import THREAD_VARS

    root = root.absolute()  # the kernels run in notebooks/: relative paths would land there
    for sub in ("cache", "results", "notebooks"):  # a previous check's models would make this one no check at all
        shutil.rmtree(root / sub, ignore_errors=True)
    env = {**os.environ, **{v: str(threads) for v in THREAD_VARS}, "SOFTLIB_CACHE": str(root / "cache"),
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
    from softlib.tooling.record import device_label, git_commit

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
    parser.add_argument("--simulate-seeds", nargs="+", type=int, metavar="N",
                        help="no run: from the recorded seeds, the expected number of verdicts a full rebuild and a "
                             "fresh clone would change if the record pooled N seeds (softlib.tooling.repro.simulate_seeds)")
    args = parser.parse_args(argv)
    if args.simulate_seeds:
        return _simulate(args.profile, args.only, args.simulate_seeds)
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
    built: list[str] = []
    if args.compare_only and args.against_recorded:  # the compared build's commit, not this checkout's
        with contextlib.suppress(SoftlibError):  # no seed-0 record there: the compare above says what is missing
            built = _recorded_runs(args.work / f"threads-{args.threads[0]}" / "results", args.profile, chapters,
                                   replicates=False)["commits"]
    summary = {"profile": args.profile, "chapters": args.only, "threads": args.threads,
               "commit": ", ".join(built) or git_commit(), "compare_only": bool(args.compare_only),
               "cnn_seeds": PROFILES[args.profile].cnn_seeds,
               "wall_s": walls, "claims": int(table["claim"].nunique()), "verdict_flips": flips,
               "contradictions": contradictions, "device": device_label(),
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


def _simulate(profile: str, only: list[str], seeds_list: list[int]) -> int:
    from softlib.cache import atomic_write_json
    from softlib.paths import results_dir
    from softlib.profiles import PROFILES
    from softlib.tooling.notebooks import notebook_paths

    check_choice("profile", profile, PROFILES)
    ns = [check_int("--simulate-seeds", n, low=2, high=100) for n in seeds_list]
    chapters = [p.stem[:2] for p in notebook_paths(only)]
    inputs = seed_inputs(results_dir(), profile, chapters)
    if not inputs:
        raise SoftlibError(f"--simulate-seeds: no claims with recorded seed replicates under {results_dir() / profile}")
    rows = {}
    for n in ns:
        per = simulate_seeds(inputs, n)
        rows[str(n)] = {"full_rebuild": sum(d["full_rebuild"] for d in per.values()),
                        "fresh_clone": sum(d["fresh_clone"] for d in per.values()), "per_claim": per}
        print(f"{n:3d} seeds: a full rebuild changes {rows[str(n)]['full_rebuild']:.2f} of {len(per)} verdicts, "
              f"a fresh clone {rows[str(n)]['fresh_clone']:.2f} (expected)")
    atomic_write_json(results_dir() / f"repro-{profile}-seeds-sim.json",
                      {"profile": profile, "chapters": chapters, "recorded_seeds": len(next(iter(inputs.values()))),
                       "claims": len(inputs), "how": "softlib.tooling.repro.simulate_seeds (60 records per claim and "
                       "seed count, 500 rebuilds each)", "seeds": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
