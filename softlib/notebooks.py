"""Running the book's notebooks: execute with papermill, time, pair with jupytext.

``python -m softlib.notebooks run --profile quick --out book/chapters`` executes
every ``notebooks/NN_*.ipynb`` headless with ``-p profile <profile>``, writes the
executed copies where the Jupyter Book picks them up, prints a per-notebook
timing table and writes it to ``results/timings-<profile>.json``. A notebook
that fails stops the build with the notebook's name and the failing cell.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .profiles import PROFILES
from .validate import SoftlibError, check_choice

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"


def notebook_paths(only: list[str] | None = None) -> list[Path]:
    """The chapter notebooks (``NN_*.ipynb``), optionally only those whose number or name is in ``only``."""
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if only:
        wanted = [str(o).zfill(2) if str(o).isdigit() else str(o) for o in only]
        chosen = [p for p in paths if any(p.stem.startswith(w) or p.stem == w for w in wanted)]
        if not chosen:
            raise SoftlibError(f"no notebook matches {only!r}; available: {[p.stem for p in paths]}")
        return chosen
    return paths


@dataclass
class Timing:
    """Wall time of one executed notebook."""

    notebook: str
    seconds: float
    ok: bool


class NotebookFailed(SoftlibError):
    """A notebook raised: carries its name and the failing cell."""


def execute(path: Path, out: Path, parameters: dict[str, Any], *, cwd: Path | None = None,
            timeout: int | None = None) -> float:
    """Execute one notebook with papermill; return its wall time in seconds."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    out.parent.mkdir(parents=True, exist_ok=True)
    # the kernel inherits our environment: make `import softlib` find this checkout
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if str(REPO) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), *[p for p in paths if p]])
    # figures must be captured as outputs: an inherited MPLBACKEND=Agg would silence plt.show()
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    t0 = time.perf_counter()
    try:
        # the kernel's stderr (tqdm bars, warnings) streams to this terminal as it comes ...
        pm.execute_notebook(str(path), str(out), parameters=parameters, kernel_name="python3",
                            cwd=str(cwd or path.parent), progress_bar=False, execution_timeout=timeout,
                            log_output=False, stderr_file=sys.stderr)
    except PapermillExecutionError as exc:
        raise NotebookFailed(
            f"notebook {path.name} failed in cell {exc.exec_count} ({exc.ename}: {exc.evalue}); "
            f"the executed copy with the traceback is {out}"
        ) from None
    seconds = time.perf_counter() - t0
    tidy_outputs(out)  # ... and stays out of the page
    return seconds


#: Output types a reader's page does not show: text on stderr (progress bars, warnings,
#: which carry absolute paths) and widget progress bars (tqdm.auto when ipywidgets is installed).
_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def tidy_outputs(path: Path) -> int:
    """Drop stderr and widget outputs from an executed notebook; hide papermill's injected cell.

    The terminal that ran the notebook has already shown them (``execute`` streams the
    kernel's stderr there). Papermill's ``injected-parameters`` cell gets the ``remove-cell``
    tag: the page says which profile ran in its own words. Returns the number of outputs dropped.
    """
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    dropped = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
        kept = [o for o in cell.get("outputs", [])
                if not (o.get("output_type") == "stream" and o.get("name") == "stderr")
                and _WIDGET_MIME not in o.get("data", {})]
        dropped += len(cell.get("outputs", [])) - len(kept)
        cell.outputs = kept
    nbformat.write(nb, str(path))
    return dropped


def run_all(profile: str, out_dir: Path, only: list[str] | None = None,
            extra: dict[str, Any] | None = None) -> list[Timing]:
    """Execute the chapters in order; stop at the first failure (re-raised after timings are written)."""
    check_choice("profile", profile, PROFILES)
    write_status_pages(out_dir)
    timings: list[Timing] = []
    failure: Exception | None = None
    for path in notebook_paths(only):
        print(f"[{profile}] executing {path.name} ...", flush=True)
        try:
            secs = execute(path, out_dir / path.name, {"profile": profile, **(extra or {})})
            timings.append(Timing(path.stem, secs, True))
            print(f"[{profile}] {path.name}: {secs:.1f} s", flush=True)
        except NotebookFailed as exc:
            timings.append(Timing(path.stem, float("nan"), False))
            failure = exc
            break
    _report(profile, timings)
    if failure is not None:
        raise failure
    return timings


def write_status_pages(out_dir: Path) -> None:
    """Markdown tables the intro page includes: the profiles, and which data sets are present."""
    from .data import status_rows

    out_dir.mkdir(parents=True, exist_ok=True)
    lines = ["| profile | what it is for | shortcuts against the papers |", "|---|---|---|"]
    for p in PROFILES.values():
        lines.append(f"| `{p.name}` | {p.description} | {p.shortcuts} |")
    (out_dir / "profiles.md").write_text("\n".join(lines) + "\n")
    rows = status_rows()
    lines = ["| data set | state | how it is obtained |", "|---|---|---|"]
    lines += [f"| {r['data set']} | {r['state']} | {r['source']} |" for r in rows]
    (out_dir / "data_status.md").write_text("\n".join(lines) + "\n")
    (out_dir / "recorded_runs.md").write_text(recorded_runs_page())


def recorded_runs_page() -> str:
    """A page listing the recorded key numbers per profile (``results/<profile>/*.json``), with provenance.

    The paper profile is meant for a GPU: its files are recorded there and committed, and
    this page (built on any machine) says where each number came from, or that none exist yet.
    """
    lines = ["# Recorded runs", "",
             "Each chapter writes its key numbers to `results/<profile>/<chapter>.json` "
             "(`softlib.record`). The chapters of this copy were executed live in the profile "
             "named on each page; the files below are the runs recorded in the repository, with "
             "the commit, device and wall time that produced them.", ""]
    for profile in ("paper", "quick"):
        files = sorted((REPO / "results" / profile).glob("*.json"))
        lines.append(f"## Profile `{profile}`")
        lines.append("")
        if not files:
            lines.append(f"No `{profile}`-profile run is recorded yet"
                         + (" (it needs a GPU: `make book PROFILE=paper`, then commit `results/paper/`)."
                            if profile == "paper" else "."))
            lines.append("")
            continue
        lines += ["| chapter | commit | device | when | wall time (s) |", "|---|---|---|---|---|"]
        for f in files:
            d = json.loads(f.read_text())
            wall = d.get("wall_s")
            lines.append(f"| {d.get('chapter', f.stem)} | `{d.get('commit', '?')}` | {d.get('device', '?')} | "
                         f"{d.get('when', '?')} | {'' if wall is None else f'{wall:.0f}'} |")
        lines.append("")
    timing = REPO / "results" / "timings-quick.json"
    if timing.exists():
        t = json.loads(timing.read_text())
        lines += [f"Latest recorded quick build: {t['total_s']:.0f} s of notebook execution on {t['device']} "
                  f"(commit `{t['commit']}`).", ""]
    return "\n".join(lines)


def _report(profile: str, timings: list[Timing]) -> None:
    from .cache import atomic_write_json
    from .record import device_label, git_commit, results_dir

    total = sum(t.seconds for t in timings if t.ok)
    print(f"\n{'notebook':40s} {'seconds':>9s}")
    for t in timings:
        print(f"{t.notebook:40s} {t.seconds:9.1f}" + ("" if t.ok else "  FAILED"))
    print(f"{'total':40s} {total:9.1f}\n")
    record = {"profile": profile, "commit": git_commit(), "device": device_label(), "platform": platform.platform(),
              "when": time.strftime("%Y-%m-%dT%H:%M:%S"), "total_s": total,
              "notebooks": [t.__dict__ for t in timings]}
    atomic_write_json(results_dir() / f"timings-{profile}.json", record)


def sync() -> None:
    """Re-pair every ``notebooks/NN_*.py`` into an output-free ``.ipynb`` with the python3 kernelspec."""
    for py in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py")):
        subprocess.run([sys.executable, "-m", "jupytext", "--to", "ipynb", "--set-kernel", "python3",
                        "--quiet", str(py)], check=True)
        print(f"paired {py.name} -> {py.with_suffix('.ipynb').name}")


def bench() -> None:
    """Run every ``benchmarks/bench_*.py`` (each prints its table and writes results/bench-<device>.json)."""
    for script in sorted((REPO / "benchmarks").glob("bench_*.py")):
        print(f"== {script.name}", flush=True)
        subprocess.run([sys.executable, str(script)], check=True, cwd=REPO)


def main(argv: list[str] | None = None) -> int:
    """``python -m softlib.notebooks {run,sync,bench}``."""
    parser = argparse.ArgumentParser(prog="python -m softlib.notebooks")
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="execute the chapter notebooks with papermill")
    r.add_argument("--profile", default="quick")
    r.add_argument("--out", type=Path, default=REPO / "book" / "chapters")
    r.add_argument("--only", nargs="*", default=None, help="chapter numbers or names (default: all)")
    sub.add_parser("sync", help="pair notebooks/*.py -> *.ipynb")
    sub.add_parser("bench", help="run the benchmarks")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "run":
            only = [o for o in (args.only or []) if o] or None
            run_all(args.profile, args.out, only)
        elif args.cmd == "sync":
            sync()
        else:
            bench()
    except SoftlibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
