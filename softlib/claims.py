"""Claims of the papers as data, and the rules that turn our numbers into verdicts.

A :class:`Claim` quotes one sentence of a paper (file, section), states the criterion
that tests it and where that criterion comes from (the paper's own words or numbers; where
the paper gives none, its own comparison such as "A above B", never a margin of ours), and
holds a function from the chapter's result tables to an :class:`Outcome`.

Verdicts have four values (:data:`VERDICTS`):

- ``held``: the whole 95% interval of the deciding number lies on the claim's side;
- ``not held``: the whole interval lies on the other side;
- ``undetermined``: the interval straddles the criterion, or it is an exact tie;
- ``not testable here``: the data or setting is not available (e.g. CIFAR-10 rows).

Intervals come from :func:`bootstrap` (percentile bootstrap over test examples, 1000
resamples by default) and :func:`paired_bootstrap_diff` (both sides scored on the *same*
resampled examples, so their shared noise cancels), or from several training seeds.

**Training seeds.** A verdict must not hinge on one trained model: the same recipe retrained
(another seed, another machine, another BLAS thread count) moves every number a little. When
a chapter has *replicates* (the same chapter run with further seeds, recorded by
:func:`softlib.tooling.record.record`), :func:`evaluate` decides each claim on intervals pooled over
the seeds (:func:`pool_estimates`): the claim's own test runs unchanged, and every interval
its verdict rules (:func:`greater_than`, :func:`less_than`, :func:`at_least`) see is widened
by the spread of that number over the seeds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .validate import SoftlibError, check_int

HELD, NOT_HELD, UNDETERMINED, NOT_TESTABLE = "held", "not held", "undetermined", "not testable here"
VERDICTS: tuple[str, ...] = (HELD, NOT_HELD, UNDETERMINED, NOT_TESTABLE)
#: the largest bootstrap a caller may ask for (a bound on time and memory)
MAX_BOOT = 100_000


@dataclass(frozen=True)
class Estimate:
    """A number with its 95% interval ``[low, high]`` and how the interval was made."""

    value: float
    low: float
    high: float
    n: int | None = None
    method: str = "bootstrap"

    def __post_init__(self) -> None:
        for name in ("value", "low", "high"):
            v = getattr(self, name)
            if not isinstance(v, (int, float, np.floating, np.integer)) or isinstance(v, bool):
                raise SoftlibError(f"Estimate.{name} must be a real number, got {v!r}")
        if np.isfinite(self.low) and np.isfinite(self.high) and self.low > self.high:
            raise SoftlibError(f"Estimate interval is reversed: low={self.low} > high={self.high}")

    @property
    def finite(self) -> bool:
        """True when value and both ends are finite numbers."""
        return bool(np.isfinite([self.value, self.low, self.high]).all())

    def fmt(self, digits: int = 1, scale: float = 1.0) -> str:
        """``"93.2 [91.0, 95.1]"`` (values times ``scale``)."""
        if not np.isfinite(self.value):
            return "n/a"
        v, lo, hi = (self.value * scale, self.low * scale, self.high * scale)
        return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"

    def as_dict(self) -> dict[str, Any]:
        """JSON-able view (for :func:`softlib.tooling.record.record`)."""
        return {"value": float(self.value), "low": float(self.low), "high": float(self.high),
                "n": self.n, "method": self.method}

    @classmethod
    def exact(cls, value: float, method: str = "exact") -> Estimate:
        """A number without sampling noise (e.g. a count over the whole population)."""
        return cls(float(value), float(value), float(value), method=method)


def _check_boot(n_boot: int, seed: int) -> None:
    check_int("n_boot", n_boot, low=10, high=MAX_BOOT)
    check_int("seed", seed, low=0, high=2**32 - 1)


def _as_arrays(what: str, arrays: Sequence[Any]) -> list[np.ndarray]:
    if not arrays:
        raise SoftlibError(f"{what}: give at least one array")
    out = [np.asarray(a) for a in arrays]
    n = len(out[0]) if out[0].ndim else 0
    if n < 2:
        raise SoftlibError(f"{what}: need at least 2 rows to resample, got {n}")
    for i, a in enumerate(out):
        if a.ndim == 0 or len(a) != n:
            raise SoftlibError(f"{what}: array {i} has {len(a) if a.ndim else 0} rows, array 0 has {n}")
        if np.iscomplexobj(a):
            raise SoftlibError(f"{what}: array {i} is complex; real values only")
    return out


def _indices(n: int, n_boot: int, seed: int, stratify: np.ndarray | None) -> np.ndarray:
    """``(n_boot, n)`` resampled row indices, within each stratum when ``stratify`` is given."""
    rng = np.random.default_rng(seed)
    if stratify is None:
        return rng.integers(0, n, size=(n_boot, n))
    s = np.asarray(stratify)
    if s.shape != (n,):
        raise SoftlibError(f"stratify must have one label per row ({n}), got shape {s.shape}")
    idx = np.empty((n_boot, n), dtype=np.int64)
    col = 0
    for g in np.unique(s):
        members = np.flatnonzero(s == g)
        idx[:, col:col + len(members)] = members[rng.integers(0, len(members), size=(n_boot, len(members)))]
        col += len(members)
    return idx


def _interval(point: float, stats: np.ndarray, n: int, method: str) -> Estimate:
    stats = stats[np.isfinite(stats)]
    if not np.isfinite(point) or stats.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), n=n, method=method)
    lo, hi = np.percentile(stats, [2.5, 97.5])
    # the point estimate lies inside its interval even for skewed, saturated statistics
    return Estimate(float(point), float(min(lo, point)), float(max(hi, point)), n=n, method=method)


def bootstrap(stat_fn: Callable[..., float], *arrays: Any, n_boot: int = 1000, seed: int = 0,
              stratify: Any = None) -> Estimate:
    """Percentile-bootstrap 95% interval of ``stat_fn(*arrays)`` over the rows of ``arrays``.

    All arrays are resampled jointly (the same rows). With ``stratify`` (one label per row,
    e.g. the legit-vs-other label of an AUROC) rows are resampled within each label group, so
    every resample keeps both classes and their sizes.
    """
    _check_boot(n_boot, seed)
    arrs = _as_arrays("bootstrap", arrays)
    n = len(arrs[0])
    point = float(stat_fn(*arrs))
    idx = _indices(n, n_boot, seed, None if stratify is None else np.asarray(stratify))
    stats = np.array([float(stat_fn(*(a[i] for a in arrs))) for i in idx])
    return _interval(point, stats, n, f"bootstrap ({n_boot}, 95%)")


def paired_bootstrap_diff(stat_fn: Callable[..., float], a_arrays: Sequence[Any], b_arrays: Sequence[Any], *,
                          n_boot: int = 1000, seed: int = 0, stratify: Any = None) -> Estimate:
    """Interval of ``stat_fn(*a) - stat_fn(*b)`` where ``a`` and ``b`` score the same examples.

    Each resample draws one set of row indices and applies it to both sides (a paired
    bootstrap): two detectors compared on the same test set share that set's luck.
    """
    _check_boot(n_boot, seed)
    a, b = _as_arrays("paired_bootstrap_diff (a)", a_arrays), _as_arrays("paired_bootstrap_diff (b)", b_arrays)
    n = len(a[0])
    if len(b[0]) != n:
        raise SoftlibError(f"paired_bootstrap_diff: a has {n} rows, b has {len(b[0])}; pairs need the same rows")
    point = float(stat_fn(*a)) - float(stat_fn(*b))
    idx = _indices(n, n_boot, seed, None if stratify is None else np.asarray(stratify))
    stats = np.array([float(stat_fn(*(x[i] for x in a))) - float(stat_fn(*(x[i] for x in b))) for i in idx])
    return _interval(point, stats, n, f"paired bootstrap ({n_boot}, 95%)")


def two_sample_diff(a: Any, b: Any, *, stat: Callable[[np.ndarray], np.ndarray] | None = None, n_boot: int = 1000,
                    seed: int = 0) -> Estimate:
    """Interval of ``stat(a) - stat(b)`` for two independent samples (each resampled on its own).

    ``stat`` maps a ``(B, n)`` array to ``B`` values along axis 1 (default: the mean).
    """
    _check_boot(n_boot, seed)
    x, y = (np.asarray(v, dtype=np.float64).ravel() for v in (a, b))
    if x.size < 2 or y.size < 2 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise SoftlibError(f"two_sample_diff needs >= 2 finite values per sample, got {x.size} and {y.size}")
    f = stat or (lambda m: m.mean(axis=1))
    rng = np.random.default_rng(seed)
    point = float(f(x[None])[0] - f(y[None])[0])
    reps = f(x[rng.integers(0, x.size, (n_boot, x.size))]) - f(y[rng.integers(0, y.size, (n_boot, y.size))])
    return _interval(point, np.asarray(reps, dtype=np.float64), x.size + y.size, f"bootstrap ({n_boot}, 95%)")


def seed_interval(values: Sequence[float]) -> Estimate:
    """Mean over training seeds with a t-based 95% interval (one value: a zero-width interval)."""
    from scipy import stats

    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0 or not np.isfinite(v).all():
        raise SoftlibError(f"seed_interval needs finite values, got {list(v)}")
    if v.size == 1:
        return Estimate(float(v[0]), float(v[0]), float(v[0]), n=1, method="1 seed")
    half = stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return Estimate(float(v.mean()), float(v.mean() - half), float(v.mean() + half), n=int(v.size),
                    method=f"{v.size} seeds (t, 95%)")


def pool_estimates(estimates: Sequence[Estimate]) -> Estimate:
    """One number from its estimates under several training seeds: the mean, with a 95% interval.

    Each side of the interval adds, in quadrature, the seeds' average bootstrap half-width on
    that side (the test-example noise, which the seeds share when they score the same test
    images, so it is not divided by the number of seeds) and the t-based 95% half-width of the
    mean over seeds (:func:`seed_interval`: the training noise). One estimate is returned as it is.
    """
    es = list(estimates)
    if not es or not all(isinstance(e, Estimate) for e in es):
        raise SoftlibError(f"pool_estimates needs one or more Estimates, got {es!r}")
    if len(es) == 1:
        return es[0]
    if not all(e.finite for e in es):
        return Estimate(float("nan"), float("nan"), float("nan"), n=len(es), method=f"{len(es)} seeds (not finite)")
    v = np.array([e.value for e in es])
    seed_half = (seed_interval(v).high - float(v.mean()))
    low_w = float(np.mean([e.value - e.low for e in es]))
    high_w = float(np.mean([e.high - e.value for e in es]))
    m = float(v.mean())
    return Estimate(m, m - float(np.hypot(low_w, seed_half)), m + float(np.hypot(high_w, seed_half)),
                    n=len(es), method=f"{len(es)} seeds: mean; bootstrap and seed spread (t) in quadrature, 95%")


_CODES = {HELD: 0, NOT_HELD: 1, UNDETERMINED: 2}


def _rule_codes(rule: str, threshold: float, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Vectorised :func:`greater_than` / :func:`less_than` / :func:`at_least`: 0 held, 1 not held, 2 undetermined."""
    if rule == "greater_than":
        held, not_held = low > threshold, high < threshold
    elif rule == "less_than":
        held, not_held = high < threshold, low > threshold
    elif rule == "at_least":
        held, not_held = low >= threshold, high < threshold
    else:
        raise SoftlibError(f"unknown verdict rule {rule!r}; allowed: greater_than, less_than, at_least")
    return np.where(held, 0, np.where(not_held, 1, 2))


def rebuild_agreement(seeds_inputs: Sequence[Sequence[Mapping[str, Any]]], verdict: str, *,
                      n_sim: int = 4000, seed: int = 0, redraw: int | None = None) -> float | None:
    """How often an independent rebuild with as many training seeds would reach ``verdict`` again.

    ``seeds_inputs[s][k]``: the k-th rule input of seed s as recorded (value, low, high, and the
    ``rule`` and ``threshold`` it was tested against). A parametric bootstrap over training seeds:
    each rebuild draws every rule input's value for each of its seeds from a normal with the
    recorded seeds' mean and standard deviation, keeps the recorded average bootstrap widths,
    pools as :func:`pool_estimates` does, applies the rules, and combines them with :func:`all_of`.
    The answer is itself an estimate from few seeds (the spread is estimated from them): it says
    which verdicts sit near their criterion, where a rebuild on another machine may well say
    "undetermined" instead. None when it cannot be computed: one seed, a rule input without its
    rule, seeds that tested different things, a not-finite input, or a verdict that is not the
    :func:`all_of` of its rules' verdicts (a claim that combines them otherwise).

    ``redraw``: how many seeds the rebuild trains again, the first ones (None: all of them). A
    fresh clone's ``make book`` trains seed 0 and pools the other seeds as recorded in
    ``results/<profile>/seeds/``: ``redraw=1`` estimates how often *it* agrees with the record.
    """
    runs = [list(r) for r in seeds_inputs]
    n = len(runs)
    if redraw is not None:
        redraw = check_int("redraw", redraw, low=1, high=max(n, 1))
    if n < 2 or verdict not in _CODES or not runs[0] or any(len(r) != len(runs[0]) for r in runs):
        return None
    try:
        v = np.array([[float(e["value"]) for e in r] for r in runs])  # (seeds, inputs)
        lo_w = np.array([[float(e["value"]) - float(e["low"]) for e in r] for r in runs]).mean(axis=0)
        hi_w = np.array([[float(e["high"]) - float(e["value"]) for e in r] for r in runs]).mean(axis=0)
        rules = [(str(e["rule"]), float(e["threshold"])) for e in runs[0]]
    except (KeyError, TypeError, ValueError):
        return None
    if not (np.isfinite(v).all() and np.isfinite(lo_w).all() and np.isfinite(hi_w).all()):
        return None
    # the recorded verdict must be what all_of over the rules gives on the recorded seeds
    if pooled_verdict_codes(v, lo_w, hi_w, rules) != _CODES[verdict]:
        return None
    m, sd = v.mean(axis=0), v.std(axis=0, ddof=1)
    rng = np.random.default_rng(seed)
    sims = rng.normal(m, sd, size=(n_sim, n, len(rules)))  # (rebuilds, seeds, inputs)
    if redraw is not None and redraw < n:  # the seeds not trained again keep their recorded values
        sims[:, redraw:, :] = v[redraw:]
    return float((pooled_verdict_codes(sims, lo_w, hi_w, rules) == _CODES[verdict]).mean())


def pooled_verdict_codes(values: np.ndarray, low_w: np.ndarray, high_w: np.ndarray,
                         rules: Sequence[tuple[str, float]]) -> np.ndarray:
    """:func:`all_of` the rules on intervals pooled over seeds, as :func:`pool_estimates` pools them.

    ``values``: shape ``(..., seeds, inputs)``, the rule inputs' values per seed; ``low_w``, ``high_w``:
    the average bootstrap half-widths per input; ``rules``: (rule, threshold) per input. Returns the
    verdict codes (0 held, 1 not held, 2 undetermined) with shape ``values.shape[:-2]``.
    """
    from scipy import stats

    n = values.shape[-2]
    m = values.mean(axis=-2)
    half = stats.t.ppf(0.975, n - 1) * values.std(axis=-2, ddof=1) / np.sqrt(n)
    cols = [_rule_codes(r, thr, m[..., k] - np.hypot(low_w[k], half[..., k]), m[..., k] + np.hypot(high_w[k], half[..., k]))
            for k, (r, thr) in enumerate(rules)]
    return _all_of_codes(np.stack(cols, axis=-1))


def _all_of_codes(codes: np.ndarray) -> np.ndarray:
    """:func:`all_of` along the last axis of rule codes (0 held, 1 not held, 2 undetermined)."""
    return np.where((codes == 1).any(axis=-1), 1, np.where((codes == 0).all(axis=-1), 0, 2))


@dataclass
class _Pool:
    """The rule inputs of the other seeds for one claim, consumed in call order."""

    others: list[list[Estimate]]
    calls: int = 0
    mismatch: bool = False


_TRACE: ContextVar[list[tuple[Estimate, str, float]] | None] = ContextVar("softlib_claims_trace", default=None)
_POOL: ContextVar[_Pool | None] = ContextVar("softlib_claims_pool", default=None)


def _decided_on(e: Estimate, rule: str = "", threshold: float = 0.0) -> Estimate:
    """The estimate a verdict rule decides on: ``e`` itself, or pooled with the other seeds' k-th one.

    The trace keeps each rule input with its rule and threshold, so a recorded run says what each
    number was tested against (:func:`rebuild_agreement` needs it).
    """
    trace = _TRACE.get()
    if trace is not None:
        trace.append((e, rule, float(threshold)))
    pool = _POOL.get()
    if pool is None:
        return e
    k = pool.calls
    pool.calls += 1
    if any(k >= len(o) for o in pool.others):
        pool.mismatch = True
        return e
    return pool_estimates([e, *(o[k] for o in pool.others)])


@contextmanager
def _seeds_context(others: list[list[Estimate]] | None) -> Iterator[tuple[list[tuple[Estimate, str, float]], _Pool | None]]:
    trace: list[tuple[Estimate, str, float]] = []
    pool = _Pool(others) if others else None
    t1, t2 = _TRACE.set(trace), _POOL.set(pool)
    try:
        yield trace, pool
    finally:
        _TRACE.reset(t1)
        _POOL.reset(t2)


def greater_than(diff: Estimate, threshold: float = 0.0) -> str:
    """Verdict for "the number is above ``threshold``": held / not held / undetermined."""
    diff = _decided_on(diff, "greater_than", threshold)
    if not diff.finite:
        return UNDETERMINED
    if diff.low > threshold:
        return HELD
    if diff.high < threshold:
        return NOT_HELD
    return UNDETERMINED


def less_than(diff: Estimate, threshold: float = 0.0) -> str:
    """Verdict for "the number is below ``threshold``"."""
    diff = _decided_on(diff, "less_than", threshold)
    if not diff.finite:
        return UNDETERMINED
    if diff.high < threshold:
        return HELD
    if diff.low > threshold:
        return NOT_HELD
    return UNDETERMINED


def at_least(est: Estimate, threshold: float) -> str:
    """Verdict for "the number is at least ``threshold``" (a number the paper states).

    Held when the whole interval is at or above it, not held when the whole interval is
    below it; undetermined otherwise.
    """
    est = _decided_on(est, "at_least", threshold)
    if not est.finite:
        return UNDETERMINED
    if est.low >= threshold:
        return HELD
    if est.high < threshold:
        return NOT_HELD
    return UNDETERMINED


def all_of(verdicts: Sequence[str]) -> str:
    """A conjunction: held if all held, not held if any is not held, else undetermined."""
    vs = list(verdicts)
    if not vs:
        raise SoftlibError("all_of needs at least one verdict")
    bad = [v for v in vs if v not in VERDICTS]
    if bad:
        raise SoftlibError(f"unknown verdict(s) {bad}; allowed: {list(VERDICTS)}")
    if any(v == NOT_HELD for v in vs):
        return NOT_HELD
    if any(v == NOT_TESTABLE for v in vs):
        return NOT_TESTABLE
    if all(v == HELD for v in vs):
        return HELD
    return UNDETERMINED


def combine(verdicts: Sequence[str]) -> str:
    """:func:`all_of` over per-pair or per-attack parts; "undetermined" when there is no part to combine."""
    v = list(verdicts)
    return all_of(v) if v else UNDETERMINED


def boot_args(results: Mapping[str, Any]) -> dict[str, int]:
    """``n_boot`` and ``seed`` for the bootstrap helpers, from a chapter's results (defaults 1000 and 0)."""
    return {"n_boot": int(results.get("n_boot", 1000)), "seed": int(results.get("seed", 0))}


@dataclass(frozen=True)
class Outcome:
    """A verdict, the numbers (with intervals) that decided it, and a one-line why."""

    verdict: str
    numbers: dict[str, Estimate] = field(default_factory=dict)
    why: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise SoftlibError(f"verdict {self.verdict!r} is not one of {list(VERDICTS)}")


@dataclass(frozen=True)
class Claim:
    """One sentence of a paper, the criterion that tests it, and the test."""

    id: str
    chapter: str
    paper: str  # the file id in shared/papers, e.g. "000"
    section: str  # e.g. "section 4.5" or "table 3"
    quote: str  # the paper's words
    criterion: str  # the test in words
    source: str  # where the criterion comes from (the paper's words or numbers)
    test: Callable[[Mapping[str, Any]], Outcome]

    def evaluate(self, results: Mapping[str, Any]) -> Outcome:
        """Run the test; a missing table or key makes the claim "not testable here"."""
        try:
            out = self.test(results)
        except KeyError as exc:
            return Outcome(NOT_TESTABLE, {}, f"not in this run: {exc.args[0]!r}")
        if not isinstance(out, Outcome):
            raise SoftlibError(f"claim {self.id}: its test returned {type(out).__name__}, not an Outcome")
        return out


def estimate_from(d: Mapping[str, Any]) -> Estimate:
    """An :class:`Estimate` back from its :meth:`Estimate.as_dict` (e.g. read from a recorded run)."""
    def num(v: Any) -> float:  # JSON writes a not-finite number (e.g. no AUROC without two successes) as null
        return float("nan") if v is None else float(v)

    try:
        return Estimate(num(d["value"]), num(d["low"]), num(d["high"]), n=d.get("n"),
                        method=str(d.get("method", "bootstrap")))
    except (KeyError, TypeError, ValueError) as exc:
        raise SoftlibError(f"not a recorded estimate (needs value, low, high): {d!r} ({exc})") from None


def evaluate(claims: Sequence[Claim], results: Mapping[str, Any],
             replicates: Sequence[Sequence[Mapping[str, Any]]] | None = None) -> pd.DataFrame:
    """One row per claim: paper, section, claim, criterion, numbers, verdict, why.

    ``replicates``: the recorded claims (:func:`for_record`) of the same chapter run with other
    training seeds. Each claim's verdict is then decided on intervals pooled over all seeds
    (:func:`pool_estimates`); a claim whose runs tested different things (e.g. a set too small
    under one seed) is "undetermined". Without replicates, intervals are over test examples only.
    """
    reps = [{c["id"]: c for c in rep if isinstance(c, Mapping) and "id" in c} for rep in (replicates or [])]
    rows = []
    for c in claims:
        have = [r[c.id] for r in reps if c.id in r and isinstance(r[c.id].get("rule_inputs"), list)]
        others = [[estimate_from(e) for e in r["rule_inputs"]] for r in have] if have and len(have) == len(reps) else None
        with _seeds_context(others) as (trace, pool):
            out = c.evaluate(results)
        verdict, why, numbers, n_seeds = out.verdict, out.why, dict(out.numbers), 1
        agreement: float | None = None
        clone_agreement: float | None = None
        mine = [{**e.as_dict(), "rule": rule, "threshold": thr} for e, rule, thr in trace]
        if reps and others is None:
            why += f" (1 seed: {len(reps) - len(have)} seed replicate(s) lack this claim)"
        elif others is not None and pool is not None:
            n_seeds = 1 + len(others)
            if pool.mismatch or any(len(o) != pool.calls for o in others):
                verdict = verdict if verdict == NOT_TESTABLE else UNDETERMINED
                why += f" (the {n_seeds} seeds' runs tested different things, so they cannot be pooled)"
            else:
                rules = [(e["rule"], e["threshold"]) for e in mine]
                theirs = [[{**e, "rule": r, "threshold": t} for e, (r, t) in zip(rep["rule_inputs"], rules)]
                          for rep in have]
                agreement = rebuild_agreement([mine, *theirs], verdict)
                clone_agreement = rebuild_agreement([mine, *theirs], verdict, redraw=1)
                own = [r.get("own_numbers", r.get("numbers", {})) for r in have]
                numbers = {k: pool_estimates([e, *(estimate_from(o[k]) for o in own)])
                           if all(k in o for o in own) else e for k, e in numbers.items()}
                why += f" (pooled over {n_seeds} training seeds{_each_seed(c.evaluate(results).verdict, have)})"
        rows.append({"id": c.id, "chapter": c.chapter, "paper": c.paper, "section": c.section, "claim": c.quote,
                     "criterion": c.criterion, "source": c.source,
                     "numbers": "; ".join(f"{k} {v.fmt(_digits(v))}" for k, v in numbers.items()),
                     "verdict": verdict, "why": why, "seeds": n_seeds,
                     "rebuild agrees": float("nan") if agreement is None else agreement,
                     "clone agrees": float("nan") if clone_agreement is None else clone_agreement,
                     "_numbers": {k: v.as_dict() for k, v in numbers.items()},
                     "_own_numbers": {k: v.as_dict() for k, v in out.numbers.items()},
                     "_rule_inputs": mine})
    return pd.DataFrame(rows)


def _each_seed(own: str, replicates: Sequence[Mapping[str, Any]]) -> str:
    """``; each seed alone: 2 held, 1 undetermined``: the verdicts of the seeds one by one (a pooled
    *undetermined* where every seed alone agrees says the seeds are too few for their spread), or "" when a
    replicate's record has no verdict of its own."""
    alone = [own, *(r.get("verdict") for r in replicates)]
    if not all(isinstance(v, str) for v in alone):
        return ""
    counts = Counter(alone)
    return "; each seed alone: " + ", ".join(f"{counts[v]} {v}" for v in sorted(counts, key=alone.index))


def _digits(e: Estimate) -> int:
    span = max(abs(e.value), abs(e.low), abs(e.high)) if e.finite else 1.0
    return 3 if span < 1 else 2 if span < 10 else 1


def for_record(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The claims table as JSON-able rows for :func:`softlib.tooling.record.record` (interval and criterion kept)."""
    need = {"id", "verdict", "criterion", "_numbers"}
    if not need <= set(table.columns):
        raise SoftlibError(f"for_record needs a table from claims.evaluate (columns {sorted(need)})")
    # "own_numbers" and "rule_inputs" are this seed's alone: a later run pools them as a replicate
    return [{"id": r["id"], "paper": r["paper"], "section": r["section"], "claim": r["claim"],
             "criterion": r["criterion"], "source": r["source"], "verdict": r["verdict"], "why": r["why"],
             "numbers": r["_numbers"], "seeds": int(r.get("seeds", 1)),
             "rebuild_agreement": _maybe(r.get("rebuild agrees")),
             "clone_agreement": _maybe(r.get("clone agrees")),
             "own_numbers": r.get("_own_numbers", r["_numbers"]), "rule_inputs": r.get("_rule_inputs", [])}
            for _, r in table.iterrows()]


def _maybe(x: Any) -> float | None:
    return None if x is None or pd.isna(x) else float(x)


def recorded_run(chapter: str, profile: str = "paper") -> dict[str, Any] | None:
    """The run of ``chapter`` recorded in the repository's ``results/<profile>/`` (None if there is none)."""
    import json

    from .paths import repo_root

    path = repo_root() / "results" / profile / f"{chapter}.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SoftlibError(f"recorded run {path} is not readable JSON ({exc}); fix or delete it") from None


def recorded_note(chapter: str, profile: str = "paper") -> str:
    """One line on the recorded run of ``chapter`` at ``profile``: its provenance, or that none exists."""
    run = recorded_run(chapter, profile)
    if run is None:
        return f"No run of this chapter at the `{profile}` profile is recorded yet."
    wall = run.get("wall_s")
    return (f"Recorded `{profile}`-profile run: commit `{run.get('commit', '?')}`, {run.get('device', '?')}, "
            f"{run.get('when', '?')}" + (f", {wall / 60:.0f} min" if isinstance(wall, (int, float)) else "") + ".")


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The reader's view of :func:`evaluate`'s table, with the verdict of the recorded paper-settings run.

    The last column comes from ``results/paper/<chapter>.json`` in the repository ("no run
    recorded" when there is none), so a reader sees both verdicts side by side.
    """
    out = table[["paper", "section", "claim", "criterion", "numbers", "verdict", "why"]].copy()
    if "rebuild agrees" in table.columns and table["rebuild agrees"].notna().any():  # seeds pooled
        out.insert(6, "a rebuild agrees", [agreement_label(a) for a in table["rebuild agrees"]])
        if "clone agrees" in table.columns:
            out.insert(7, "a fresh clone agrees", [agreement_label(a) for a in table["clone agrees"]])
    recorded: dict[str, str] = {}
    for chapter in table["chapter"].unique() if "chapter" in table.columns else []:
        run = recorded_run(str(chapter))
        for c in (run or {}).get("numbers", {}).get("claims") or []:
            if isinstance(c, dict) and "id" in c:
                recorded[c["id"]] = c.get("verdict", "")
    out.insert(len(out.columns) - 1, "verdict (papers' settings, recorded)",
               [recorded.get(i, "no run recorded") for i in table["id"]] if "id" in table.columns else "no run recorded")
    return out


def agreement_label(a: Any) -> str:
    """``rebuild_agreement`` for a reader: a percentage, "borderline" under 90%, or a dash."""
    if a is None or not isinstance(a, (int, float)) or not np.isfinite(a):
        return "—"
    return f"{100 * a:.0f}%" + (" (borderline)" if a < 0.9 else "")
