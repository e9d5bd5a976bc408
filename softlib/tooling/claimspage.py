"""The book's Claims page: every claim of every chapter in one table, built from recorded runs.

``python -m softlib.tooling.claimspage [--out book/chapters/claims.md]`` reads the verdicts each chapter
recorded (``results/<profile>/<chapter>.json``, key ``claims``, written through
:func:`softlib.claims.for_record`) and writes one MyST page: paper, section, the claim, its
criterion, our numbers with intervals and the verdict from the quick run, and the verdict at the
papers' settings where a paper-profile run is recorded. The results folder is
``$SOFTLIB_RESULTS`` when set, else ``results/`` next to the package's checkout.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from softlib.claims import agreement_label
from softlib.validate import SoftlibError

CITE = {"000": "softmax_hinders_2020", "002": "aigrain2019introspection", "001": "ozbulak2018misleading",
        "004": "ozbulak2018misleading", "003": "lemesle2021detection"}
ICON = {"held": "held", "not held": "**not held**", "undetermined": "*undetermined*",
        "not testable here": "not testable here"}


def _read_json(path: Path, what: str = "") -> Any:
    """The parsed JSON in ``path``, None when there is no such file; unreadable JSON is an error naming the file."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise SoftlibError(f"{what}{path} is not readable JSON ({exc}); fix or delete it") from None


def _load(results: Path, profile: str) -> dict[str, dict[str, Any]]:
    return {f.stem: _read_json(f, "recorded run ") for f in sorted((results / profile).glob("[0-9][0-9]_*.json"))}


def _numbers(c: dict[str, Any]) -> str:
    parts = []
    for name, e in (c.get("numbers") or {}).items():
        if not isinstance(e, dict) or e.get("value") is None:
            continue
        v, lo, hi = e["value"], e.get("low"), e.get("high")
        span = max(abs(x) for x in (v, lo if lo is not None else v, hi if hi is not None else v))
        d = 3 if span < 1 else 2 if span < 10 else 1
        parts.append(f"{name}: {v:.{d}f}" + ("" if lo is None or hi is None or lo == hi else f" [{lo:.{d}f}, {hi:.{d}f}]"))
    return "; ".join(parts)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _provenance(d: dict[str, Any]) -> str:
    return f"commit `{d.get('commit', '?')}`, {d.get('device', '?')}, {d.get('when', '?')}"


def _repro(results: Path) -> tuple[dict[str, str], str]:
    """Per claim, how its verdict fared in ``make verify-repro`` (results/repro-quick.json), and a summary line.

    The check is either two fresh builds with different thread counts, or (``RECORDED=1``, the JSON has a
    ``description``) one fresh build against the committed record.
    """
    d = _read_json(results / "repro-quick.json")
    if d is None:
        return {}, ("No reproducibility check is recorded yet (`make verify-repro`)." + _strict_line(results)
                    + _device_line(results))
    out: dict[str, str] = {}
    for r in d.get("rows", []):
        if r.get("same verdict"):
            out.setdefault(r["claim"], "same")
        else:
            out[r["claim"]] = f"**flips**: {r.get('verdict A')} / {r.get('verdict B')}"
    a, b = d.get("threads", ["?", "?"])
    flips = d.get("verdict_flips", [])
    cmd = ("python -m softlib.tooling.repro --against-recorded" + (" --as-make-book" if d.get("as_make_book") else "")
           + " --compare-only" if d.get("compare_only") else
           "make verify-repro RECORDED=1" + (" CLONE=1" if d.get("as_make_book") else ""))
    how = (f"Reproducibility (`{cmd}`): {d['description']}" if d.get("description") else
           f"Reproducibility (`make verify-repro`, commit `{d.get('commit', '?')}`): chapters "
           f"{', '.join(d.get('chapters', []))} run twice from empty caches with {a} and {b} BLAS threads")
    contra = d.get("contradictions")
    line = (f"{how}; {len(flips)} of {d.get('claims', '?')} verdicts differ"
            + (f" ({len(contra)} of them from held to not held or back)" if contra is not None else "")
            + f", {d.get('numbers_outside_other_interval', '?')} of {d.get('numbers', '?')} deciding numbers fall outside "
            "the other run's interval"
            + ("" if not d.get("cnn_seeds") else
               f"; the fresh build trained seed 0 and pooled the record's other {d['cnn_seeds'] - 1}" if d.get("as_make_book")
               else f"; each run pooled {d['cnn_seeds']} training seeds of its own")
            + ". A different thread count trains slightly different weights, as another machine would. A verdict whose "
            "interval ends near its criterion can change between *held* (or *not held*) and *undetermined* from one "
            "such build to the next however many seeds are pooled: the `a rebuild agrees` column estimates how often, "
            "and a verdict marked *flips* should be read as undetermined.")
    return out, line + _strict_line(results) + _device_line(results)


def _device_line(results: Path) -> str:
    """One sentence per recorded check of the quick book on another device (``results/repro-quick-gpu-*.json``)."""
    checks = [(f, _read_json(f)) for f in sorted(results.glob("repro-quick-gpu-*.json"))]
    parts = []
    for f, e in checks:
        flips = e.get("verdict_flips", [])
        chs = e.get("chapters", [])
        parts.append(f"chapter{'s' if len(chs) > 1 else ''} {', '.join(chs)} (`results/{f.name}`, commit `{e.get('commit', '?')}`): "
                     f"{len(flips)} of {e.get('claims', '?')} verdicts differ{' (' + ', '.join(flips) + ')' if flips else ''}, "
                     f"{len(e.get('contradictions', []))} held against not held, "
                     f"{e.get('numbers_outside_other_interval', '?')} of {e.get('numbers', '?')} numbers outside the other "
                     "run's interval" + (f" ({e['note']})" if isinstance(e.get("note"), str) else ""))
    if not parts:
        return ""
    from softlib.tooling.notebooks import SEED_REPLICATED, notebook_paths

    dev = checks[0][1].get("device", "a GPU")
    single = [p.stem[:2] for p in notebook_paths(None) if p.stem not in SEED_REPLICATED]
    return (f" The same check on another device ({dev}, another torch build), against the record made on a CPU: "
            + "; ".join(parts) + f". Chapters {', '.join(single)} decide on one trained network, so their intervals "
            "cover test examples, not training runs; the others pool the training seeds.")


def _strict_line(results: Path) -> str:
    """One sentence on the stricter check (every seed trained again), when one is recorded."""
    strict = results / "repro-quick-every-seed.json"
    e = _read_json(strict)
    if e is None:
        return ""
    return (f" The stricter check, every seed trained again (`results/{strict.name}`, commit "
            f"`{e.get('commit', '?')}`): {len(e.get('verdict_flips', []))} of {e.get('claims', '?')} verdicts differ, "
            f"{e.get('numbers_outside_other_interval', '?')} of {e.get('numbers', '?')} numbers fall outside the "
            "other run's interval.")


def page(results: Path) -> str:
    """The Claims page as MyST Markdown."""
    quick, paper = _load(results, "quick"), _load(results, "paper")
    repro, repro_line = _repro(results)
    repro_col = "fresh build vs record" if "fresh build" in repro_line else "1 vs 2 threads"
    lines = ["# Claims: what held", "",
             "Every claim the chapters test, in one table. A verdict is **held** when the 95% interval of the "
             "deciding number lies wholly on the claim's side of its criterion, **not held** when it lies wholly "
             "on the other side, *undetermined* when it straddles the criterion (a tie is never a win), and "
             "*not testable here* when the data or setting is missing. Criteria come from the papers' own words "
             "or numbers (the `criterion` column says which). `ours` gives the deciding numbers of the quick run "
             "with their intervals; `paper settings` the verdict of the run recorded at the papers' settings "
             "(`results/paper/`), where one exists. Where the quick verdict pools several training seeds, "
             "`a rebuild agrees` estimates how often an independent rebuild (every seed trained again, on another "
             "machine) would reach the same verdict (`softlib.claims.rebuild_agreement`, a bootstrap over the seeds), "
             "and `a fresh clone agrees` how often `make book` on a fresh clone would: it trains seed 0 again and "
             "pools the other seeds as recorded in `results/quick/seeds/`. Under 90% the verdict sits near its "
             "criterion and is marked *borderline*: another build may well call it undetermined.", "", repro_line, ""]
    if not quick and not paper:
        return "\n".join([*lines, "No recorded run holds claims yet: run `make book` and commit `results/quick/`.", ""])
    for chapter in sorted(set(quick) | set(paper)):
        q, p = quick.get(chapter), paper.get(chapter)
        claims_q = {c["id"]: c for c in ((q or {}).get("numbers", {}).get("claims") or []) if isinstance(c, dict) and "id" in c}
        claims_p = {c["id"]: c for c in ((p or {}).get("numbers", {}).get("claims") or []) if isinstance(c, dict) and "id" in c}
        if not claims_q and not claims_p:
            continue
        lines += [f"## Chapter {chapter[:2]}: {chapter[3:].replace('_', ' ')}", ""]
        lines.append("Quick run: " + (_provenance(q) if q else "none recorded") + ". Papers' settings: "
                     + (_provenance(p) if claims_p else "no run recorded yet") + ".")
        lines += ["", "| paper | claim | criterion | ours (quick) | verdict (quick) | a rebuild agrees | a fresh clone agrees "
                  f"| {repro_col} | verdict (paper settings) | why |", "|---|---|---|---|---|---|---|---|---|---|"]
        for cid in list(claims_q) + [c for c in claims_p if c not in claims_q]:
            c = claims_q.get(cid) or claims_p[cid]
            cite = f"{{cite:p}}`{CITE[c['paper']]}`" if c.get("paper") in CITE else _cell(c.get("paper", ""))
            vq = ICON.get(claims_q[cid]["verdict"], claims_q[cid]["verdict"]) if cid in claims_q else "(not run)"
            vp = ICON.get(claims_p[cid]["verdict"], claims_p[cid]["verdict"]) if cid in claims_p else "no run recorded"
            lines.append(f"| {cite}, {_cell(c.get('section', ''))} | {_cell(c.get('claim', ''))} | "
                         f"{_cell(c.get('criterion', ''))} ({_cell(c.get('source', ''))}) | "
                         f"{_cell(_numbers(claims_q.get(cid, {})))} | {vq} | "
                         f"{agreement_label(claims_q.get(cid, {}).get('rebuild_agreement'))} | "
                         f"{agreement_label(claims_q.get(cid, {}).get('clone_agreement'))} | {repro.get(cid, 'not checked')} | {vp} | "
                         f"{_cell(c.get('why', ''))} |")
        lines.append("")
    counts: dict[str, int] = {}
    for d in quick.values():
        for c in d.get("numbers", {}).get("claims") or []:
            if isinstance(c, dict) and "id" in c and "verdict" in c:
                counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
    if counts:
        lines += ["Quick run in total: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) + ".", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m softlib.tooling.claimspage [--out PATH]``."""
    from softlib.paths import results_dir

    parser = argparse.ArgumentParser(prog="python -m softlib.tooling.claimspage")
    parser.add_argument("--out", type=Path, default=Path("book/chapters/claims.md"))
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page(results_dir()))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
