"""The scaling study: hitting times over a grid of W, K and L, growth fits, and the paper's bounds.

``sweep`` evaluates six variants on a *star* grid: three lines through a base point
``(W0, K0, L0)``, each varying one parameter with the other two held at the base. That is what a
fit per parameter needs, at a fraction of the cost of the full product. At every cell it takes the
exact expected hitting time wherever the exact solver applies (every variant without the search
wrapper) and runs Monte Carlo wherever the run is estimated (``engine.plan``) to fit in the
per-cell budget. ``fit_study`` then fits the growth of the expected hitting time along each
parameter and sets each fit beside the bound the paper states; ``compare_with_exact`` tests every
Monte Carlo mean against its exact value. ``write`` and ``read`` keep the whole study (every
histogram, the cells and the fits) in one HDF5 file, written atomically.

Variants (MODEL.md sections 3 and 6)::

    pretrained    uniform world model; stated curve: the paper's exact formula
                  (2W-1)(1+K+K/L)(1+K(L+1))
    sft           converged SFT; stated Theta(W L^K)
    sft+search    converged SFT in the no-revisit wrapper (mask); stated Theta(WKL)
    rlvr          converged RLVR; stated Theta(WK)
    rlvr+search   converged RLVR in the wrapper; stated Theta(WK) (the wrapper cannot make it worse)
    distilled     the converged distilled policy of MODEL.md section 3 (a = b = c = d = 1: the same
                  table as RLVR); stated Theta(WK)

With ``policies = "trained"`` the SFT, RLVR and distilled variants (with and without the wrapper)
use policies trained on each graph by ``edgewalk.training`` instead of the converged limits.

Fits. Along each parameter x the fit is *exponential* where the stated bound is exponential in x
(only SFT in K): log(T) is regressed on x over the last ``tail`` points (the asymptotic regime) and
the estimate is the growth base per unit of x. Otherwise it is *linear*: T is regressed on x over
all points and the estimate is the slope; R^2 shows when growth is not linear. Exact values are
fitted by ordinary least squares, so their interval measures only how far the data are from the
fitted form (and the solver's rounding); Monte Carlo means by weighted least squares with weights
1/stderr^2, the covariance scaled by the reduced chi-square when that exceeds 1. Intervals are
95%, from the t-distribution on the residual degrees of freedom. Linear fits also report the
*growth exponent* p of T = a + b x^p (the offset a absorbs constant lower-order terms).

Verdicts (what "agrees" means). Exponential fits: the interval covers the stated base (L for
Theta(W L^K)). Linear fits with a stated slope (the pretrained formula's own slope on the same
points, or 0 where the bound does not depend on x): the interval covers it. Other linear fits: a
Theta bound fixes growth only up to a constant and lower-order terms, so the exponent p is compared
with the bound's exponent in x (1 for Theta(WK) in W; K0 for Theta(W L^K) in L) and agrees if its
interval comes within ``EXPONENT_TOLERANCE`` of it. A disagreement is stated with its relative size.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import ContextManager

import h5py
import numpy as np
from scipy import optimize, stats

from . import io
from .engine import MASK64, RunPlan, plan, simulate
from .graph import Graph, path_star
from .policy import Policy, parametric, pretrained, rlvr, sft
from .result import HittingTimes

__all__ = [
    "Bound", "Variant", "VARIANTS", "Grid", "Cell", "Fit", "Study", "Comparison", "fit_line",
    "fit_growth", "fit_study", "sweep", "compare_with_exact", "bonferroni_threshold", "write",
    "read", "cell_seed", "parse_list", "run_name", "PlannedCell", "plan_cells", "study_parameters",
    "assemble",
]

STUDY_FORMAT = "edgewalk.study"
STUDY_FORMAT_VERSION = 1
PARAMETERS = ("W", "K", "L")
LEVEL = 0.95  # confidence level of every interval
EXPONENT_TOLERANCE = 0.25  # lower-order terms may move a fitted exponent this far on a finite range
EXACT_SLACK = 1e-6  # relative: exact values carry solver rounding, not noise
DISTILLED_NOTE = ("distilled = the converged distilled policy of MODEL.md section 3 "
                  "(a = b = c = d = 1, the same table as RLVR); policies = trained uses the trained one")


# --- variants and their stated bounds -------------------------------------------------------

@dataclass(frozen=True)
class Bound:
    """A stated growth law. ``shape(W, K, L)`` is the bound without its constant (or, if
    ``is_formula``, the exact stated value); ``exponential_in`` names the parameter, if any, in
    which the bound grows exponentially."""

    label: str
    shape: Callable[[float, float, float], float]
    exponential_in: str | None = None
    is_formula: bool = False


def _pretrained_formula(W: float, K: float, L: float) -> float:
    return (2 * W - 1) * (1 + K + K / L) * (1 + K * (L + 1))


THETA_WK = Bound("Theta(WK)", lambda W, K, L: W * K)
THETA_WKL = Bound("Theta(WKL)", lambda W, K, L: W * K * L)
THETA_W_L_K = Bound("Theta(W L^K)", lambda W, K, L: W * float(L) ** K, exponential_in="K")
PRETRAINED_FORMULA = Bound("(2W-1)(1+K+K/L)(1+K(L+1))", _pretrained_formula, is_formula=True)


def distilled(graph: Graph) -> Policy:
    """The converged distilled policy (paper Thm 5): a = b = c = d = 1, named "distilled"."""
    return parametric(graph, a=1.0, b=1.0, c=1.0, d=1.0, name="distilled")


@dataclass(frozen=True)
class Variant:
    """A policy, whether it runs inside the no-revisit search wrapper, and its stated bound."""

    policy: Callable[[Graph], Policy]
    search: str  # "none" or "mask"
    bound: Bound
    trained_by: str | None = None  # with policies = "trained": the training that replaces policy


VARIANTS: dict[str, Variant] = {
    "pretrained": Variant(pretrained, "none", PRETRAINED_FORMULA),
    "sft": Variant(sft, "none", THETA_W_L_K, "sft"),
    "sft+search": Variant(sft, "mask", THETA_WKL, "sft"),
    "rlvr": Variant(rlvr, "none", THETA_WK, "rlvr"),
    "rlvr+search": Variant(rlvr, "mask", THETA_WK, "rlvr"),
    "distilled": Variant(distilled, "none", THETA_WK, "distill"),
}

POLICY_SOURCES = ("converged", "trained")
# The trainings of policies = "trained" (edgewalk.training; the CLI's defaults).
TRAINING = {"sft_steps": 500, "sft_lr": 100.0, "rlvr_iterations": 1000, "rlvr_lr": 0.01,
            "distill_steps": 500, "distill_lr": 100.0, "distill_rollouts": 20_000}


def variant_policies(point: tuple[int, int, int], variants: Sequence[str], policies: str = "converged",
                     seed: int = 0, threads: int | None = None) -> dict[str, Policy]:
    """The policy of each variant on ``path_star(*point)``. ``converged``: the limits of MODEL.md
    section 3. ``trained``: SFT trained by exact gradient descent, RLVR by exact sign gradient
    ascent, and the distilled policy by cross-entropy on traces of that RLVR policy (seeded from
    ``seed``), each trained once per graph with the settings in ``TRAINING``; the pretrained
    policy is the same either way."""
    if policies not in POLICY_SOURCES:
        raise ValueError(f"--policies must be one of {', '.join(POLICY_SOURCES)}, got {policies!r}")
    graph = path_star(*point)
    if policies == "converged":
        return {v: VARIANTS[v].policy(graph) for v in variants}
    from . import training

    trained: dict[str, Policy] = {}

    def get(method: str) -> Policy:
        if method not in trained:
            if method == "sft":
                run = training.train_sft(graph, TRAINING["sft_steps"], TRAINING["sft_lr"],
                                         record_every=TRAINING["sft_steps"])
            elif method == "rlvr":
                run = training.train_rlvr(graph, TRAINING["rlvr_iterations"], TRAINING["rlvr_lr"],
                                          record_every=TRAINING["rlvr_iterations"])
            else:
                run = training.train_distill(
                    graph, get("rlvr"), TRAINING["distill_steps"], TRAINING["distill_lr"],
                    TRAINING["distill_rollouts"], cell_seed(seed, f"distill_W{point[0]}_K{point[1]}_L{point[2]}"),
                    threads=threads, record_every=TRAINING["distill_steps"])
            trained[method] = run.policy
        return trained[method]

    return {v: get(VARIANTS[v].trained_by) if VARIANTS[v].trained_by else VARIANTS[v].policy(graph)
            for v in variants}


# --- the grid -------------------------------------------------------------------------------

def parse_list(text: str, option: str) -> tuple[int, ...]:
    """Whole numbers >= 1 from ``"2,4,6"``, ``"1-6"`` or a mix (``"1-3,5"``), sorted and
    deduplicated. Raises ValueError naming ``option``."""
    values: set[int] = set()
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            low_value = int(low)
            high_value = int(high) if high else low_value
            if low_value < 1 or high_value < low_value:
                raise ValueError
            values.update(range(low_value, high_value + 1))
    except ValueError:
        raise ValueError(f"{option} must be comma-separated whole numbers >= 1 or ranges a-b "
                         f"(e.g. 2,4,6 or 1-6), got {text!r}") from None
    return tuple(sorted(values))


@dataclass(frozen=True)
class Grid:
    """A star design: ``W``, ``K`` and ``L`` are the values each parameter takes while the other
    two are held at ``base`` = (W0, K0, L0). The base values are always part of their axis."""

    W: tuple[int, ...]
    K: tuple[int, ...]
    L: tuple[int, ...]
    base: tuple[int, int, int]

    def __post_init__(self) -> None:
        for name, values, base in zip(PARAMETERS, (self.W, self.K, self.L), self.base):
            if isinstance(base, bool) or not isinstance(base, int) or base < 1:
                raise ValueError(f"--base: {name}0 must be a whole number >= 1, got {base!r}")
            if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
                raise ValueError(f"--{name}: every value must be a whole number >= 1, got {values!r}")
            object.__setattr__(self, name, tuple(sorted(set(values) | {base})))

    def axis(self, parameter: str) -> list[tuple[int, int, int]]:
        """The cells (W, K, L) along one parameter, in increasing order of it."""
        i = PARAMETERS.index(parameter)
        cells = []
        for value in getattr(self, parameter):
            cell = list(self.base)
            cell[i] = value
            cells.append(tuple(cell))
        return cells

    def cells(self) -> list[tuple[int, int, int]]:
        """Every cell of the star, each once, sorted."""
        return sorted({cell for p in PARAMETERS for cell in self.axis(p)})


def cell_seed(seed: int, run: str) -> int:
    """The seed of one Monte Carlo cell: the first 8 bytes (little-endian) of
    sha256(f"{seed}/{run}"). Cells draw independent streams, and a cell's seed does not depend on
    the rest of the grid."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{run}".encode()).digest()[:8], "little") & MASK64


def run_name(variant: str, cell: tuple[int, int, int]) -> str:
    W, K, L = cell
    return f"{variant}_W{W}_K{K}_L{L}"


# --- results --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cell:
    """One variant at one grid point. ``exact`` is nan where the exact solver does not apply
    (the search wrapper); ``run`` names the Monte Carlo run in ``Study.runs``, "" if the cell was
    over budget; ``estimated_seconds`` is the plan's cost estimate of the Monte Carlo run."""

    variant: str
    W: int
    K: int
    L: int
    exact: float
    run: str
    estimated_seconds: float

    @property
    def point(self) -> tuple[int, int, int]:
        return (self.W, self.K, self.L)


@dataclass(frozen=True)
class Fit:
    """The growth of the expected hitting time of one variant along one parameter.

    ``kind`` "exponential": ``estimate`` is the growth base per unit of the parameter;
    "linear": the slope. ``points`` are the parameter values fitted, ``source`` "exact" or
    "monte carlo". ``stated`` describes the paper's bound; ``stated_value`` is what it implies for
    ``estimate`` where it implies a number (else nan). Linear fits also give ``exponent``, the p
    of T = a + b x^p fitted over all points, with its interval, and ``stated_exponent``, the
    bound's p (nan for exponential fits and where the bound is constant in x). ``agrees`` is None
    where there are too few points for an interval."""

    variant: str
    parameter: str
    kind: str
    estimate: float
    ci_low: float
    ci_high: float
    stated: str
    stated_value: float
    r2: float
    exponent: float
    exponent_ci_low: float
    exponent_ci_high: float
    stated_exponent: float
    source: str
    points: tuple[int, ...]
    held: str  # the other two parameters, e.g. "K=3, L=5"
    agrees: bool | None
    verdict: str

    def to_json(self) -> dict[str, object]:
        """The fit as plain JSON-able values (nan stays nan: the caller decides how to print it)."""
        record = {k: v.item() if isinstance(v, np.generic) else v for k, v in asdict(self).items()}
        record["points"] = [int(v) for v in self.points]
        return record


@dataclass(frozen=True, eq=False)
class Study:
    """A finished sweep: its parameters (grid, rollouts, seed, budget, ...), every cell, every
    fit, and the Monte Carlo runs by name."""

    parameters: dict
    cells: list[Cell]
    fits: list[Fit]
    runs: dict[str, HittingTimes] = field(repr=False)

    def mc(self, cell: Cell) -> HittingTimes | None:
        return self.runs.get(cell.run) if cell.run else None


# --- fitting --------------------------------------------------------------------------------

@dataclass(frozen=True)
class LineFit:
    """y = intercept + slope * x; ``ci_low``/``ci_high`` bound the slope (nan if n < 3)."""

    slope: float
    intercept: float
    ci_low: float
    ci_high: float
    r2: float


def fit_line(x: Sequence[float], y: Sequence[float], sigma: Sequence[float] | None = None,
             level: float = LEVEL) -> LineFit:
    """Least-squares line through (x, y). Without ``sigma`` (exact values): ordinary least squares,
    the slope's interval from the residual variance and the t-distribution with n - 2 degrees of
    freedom. With ``sigma`` (standard errors of Monte Carlo means): weighted least squares with
    weights 1/sigma^2, covariance (X'WX)^-1 times max(1, reduced chi-square), same t quantile."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    n = len(x)
    if n < 2 or len(y) != n:
        raise ValueError(f"a line needs at least 2 points, got {n}")
    if sigma is None:
        w = np.ones(n)
    else:
        s = np.asarray(sigma, float)
        s = np.maximum(s, 1e-12 * np.maximum(np.abs(y), 1e-300))  # a noiseless mean: huge weight
        w = 1.0 / s**2
    X = np.column_stack([np.ones(n), x])
    XtWX = X.T @ (w[:, None] * X)
    intercept, slope = np.linalg.solve(XtWX, X.T @ (w * y))
    residual = y - (intercept + slope * x)
    chi2 = float(np.sum(w * residual**2))
    y_mean = np.sum(w * y) / np.sum(w)
    total = float(np.sum(w * (y - y_mean) ** 2))
    r2 = 1.0 - chi2 / total if total > 1e-20 * float(np.sum(w * y**2)) else math.nan  # nan: y constant
    if n < 3:
        return LineFit(float(slope), float(intercept), math.nan, math.nan, r2)
    dof = n - 2
    scale = chi2 / dof if sigma is None else max(1.0, chi2 / dof)
    se = math.sqrt(np.linalg.inv(XtWX)[1, 1] * scale)
    t = stats.t.ppf(0.5 + level / 2, dof)
    return LineFit(float(slope), float(intercept), float(slope - t * se), float(slope + t * se), r2)


def fit_growth(x: Sequence[float], y: Sequence[float], sigma: Sequence[float] | None, kind: str
               ) -> tuple[float, float, float, float]:
    """(estimate, ci_low, ci_high, R^2) of ``kind`` "linear" (the slope of y on x) or
    "exponential" (exp of the slope of log y on x: the growth base per unit of x; R^2 of the log)."""
    if kind == "linear":
        f = fit_line(x, y, sigma)
        return f.slope, f.ci_low, f.ci_high, f.r2
    if kind == "exponential":
        y = np.asarray(y, float)
        f = fit_line(x, np.log(y), None if sigma is None else np.asarray(sigma) / y)
        return math.exp(f.slope), math.exp(f.ci_low), math.exp(f.ci_high), f.r2
    raise ValueError(f"kind must be 'linear' or 'exponential', got {kind!r}")


@dataclass(frozen=True)
class PowerFit:
    """y = a + b * x**exponent; ``ci_low``/``ci_high`` bound the exponent (nan if n < 4)."""

    exponent: float
    ci_low: float
    ci_high: float
    a: float
    b: float


def fit_power(x: Sequence[float], y: Sequence[float], sigma: Sequence[float] | None = None,
              level: float = LEVEL) -> PowerFit:
    """Least-squares fit of y = a + b * x**p (x > 0), weighted as in :func:`fit_line`. The offset
    a absorbs a constant lower-order term, so p is the growth exponent a Theta bound speaks of
    (1 for growth linear in x). p minimises the (weighted) residual over [-2, 12] with a and b
    solved exactly for each p; its interval uses the linearised covariance, scaled as in
    :func:`fit_line`, and the t-distribution with n - 3 degrees of freedom."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    n = len(x)
    w = np.ones(n) if sigma is None else 1.0 / np.maximum(np.asarray(sigma, float), 1e-12 * np.abs(y)) ** 2
    scale_y = max(np.abs(y).max(), 1e-300)  # keeps the squares in range

    def solve(p: float) -> tuple[float, float, float]:
        X = np.column_stack([np.ones(n), x**p])
        coef, *_ = np.linalg.lstsq(X * np.sqrt(w)[:, None], (y / scale_y) * np.sqrt(w), rcond=None)
        residual = y / scale_y - X @ coef
        return float(np.sum(w * residual**2)), coef[0] * scale_y, coef[1] * scale_y

    best = optimize.minimize_scalar(lambda p: solve(p)[0], bounds=(-2.0, 12.0), method="bounded",
                                    options={"xatol": 1e-10})
    p = float(best.x)
    chi2, a, b = solve(p)
    chi2 *= scale_y**2
    if n < 4:
        return PowerFit(p, math.nan, math.nan, a, b)
    J = np.column_stack([np.ones(n), x**p, b * x**p * np.log(x)])
    dof = n - 3
    scale = chi2 / dof if sigma is None else max(1.0, chi2 / dof)
    try:
        se = math.sqrt(max(np.linalg.inv(J.T @ (w[:, None] * J))[2, 2] * scale, 0.0))
    except np.linalg.LinAlgError:
        se = math.inf
    t = stats.t.ppf(0.5 + level / 2, dof)
    return PowerFit(p, p - t * se, p + t * se, a, b)


def _percent(measured: float, stated: float) -> str:
    return f"{100 * (measured / stated - 1):+.3g}%"


def _describe_fit(variant: str, parameter: str, base: tuple[int, int, int], x: list[int],
                  y: list[float], sigma: list[float] | None, tail: int) -> Fit:
    """Fit one variant along one parameter (``sigma`` None: exact values) and judge the fit
    against the variant's stated bound, as the module docstring describes."""
    bound = VARIANTS[variant].bound
    i = PARAMETERS.index(parameter)
    held = ", ".join(f"{p}={v}" for j, (p, v) in enumerate(zip(PARAMETERS, base)) if j != i)
    shape = [bound.shape(*base[:i], v, *base[i + 1:]) for v in x]  # the bound along this axis
    constant = len(set(shape)) == 1

    kind = "exponential" if bound.exponential_in == parameter else "linear"
    n = tail if kind == "exponential" else len(x)  # exponential: the asymptotic regime only
    fit_x, fit_y, fit_s = x[-n:], y[-n:], None if sigma is None else sigma[-n:]
    estimate, low, high, r2 = fit_growth(fit_x, fit_y, fit_s, kind)
    power = PowerFit(math.nan, math.nan, math.nan, math.nan, math.nan)
    stated_exponent = math.nan
    if kind == "linear" and not constant and len(x) >= 3:
        power = fit_power(x, y, sigma)
        stated_exponent = fit_power(x, shape).exponent

    # What the bound says, and what it implies for the estimate where it implies a number.
    stated_value = math.nan
    if kind == "exponential":
        stated_value = fit_growth(fit_x, shape[-n:], None, kind)[0]
        stated = f"{bound.label}: base {'L = ' if bound is THETA_W_L_K else ''}{stated_value:.6g}"
    elif bound.is_formula:
        stated_value = fit_line(x, shape).slope
        stated = f"exact formula {bound.label}: slope {stated_value:.6g} on these points"
    elif constant:
        stated_value = 0.0
        stated = f"{bound.label}: constant in {parameter}"
    elif abs(stated_exponent - 1) < 1e-6:
        stated = f"{bound.label}: linear in {parameter}"
    else:
        stated = f"{bound.label}: like {parameter}^{stated_exponent:.4g} at {held}"

    if not math.isnan(stated_value):
        scale = abs(stated_value) or max(map(abs, y)) / max(x[-1] - x[0], 1)
        slack = EXACT_SLACK * scale if sigma is None else 0.0
        agrees, verdict = _judge_value("base" if kind == "exponential" else "slope", estimate, low,
                                       high, stated_value, slack, parameter)
        if bound is THETA_W_L_K and kind == "exponential":
            asymptote = (base[2] + 1) ** 2 / base[2]
            verdict += (f"; the exact asymptote (L+1)^2/L = {asymptote:.6g} is "
                        f"{'inside' if low <= asymptote <= high else 'outside'} the interval")
    else:
        agrees, verdict = _judge_exponent(power, stated_exponent, parameter)
    if kind == "linear" and not constant and r2 < 0.99:
        verdict += f"; not linear (R^2 = {r2:.4f})"
    numbers = [float(v) for v in (estimate, low, high, stated_value, r2, power.exponent,
                                  power.ci_low, power.ci_high, stated_exponent)]
    return Fit(variant, parameter, kind, *numbers[:3], stated, *numbers[3:],
               "exact" if sigma is None else "monte carlo", tuple(int(v) for v in fit_x), held,
               agrees, verdict)


def _judge_value(name: str, estimate: float, low: float, high: float, stated: float,
                 slack: float, parameter: str) -> tuple[bool | None, str]:
    """Does the interval [low - slack, high + slack] cover the stated value?"""
    if math.isnan(low):
        return None, f"{name} {estimate:.6g}: too few points for an interval"
    interval = f"{name} {estimate:.6g} [{low:.6g}, {high:.6g}]"
    if low - slack <= stated <= high + slack:
        return True, f"agrees: {interval} covers the stated {stated:.6g}"
    if stated == 0:
        return False, f"disagrees: {interval}, stated 0 (T is not constant in {parameter})"
    return False, f"disagrees: {interval}, stated {stated:.6g}: off by {_percent(estimate, stated)}"


def _judge_exponent(power: PowerFit, stated: float, parameter: str) -> tuple[bool | None, str]:
    """Does the exponent's interval come within EXPONENT_TOLERANCE of the stated exponent?"""
    fitted = f"T = a + b {parameter}^p with p = {power.exponent:.3g} [{power.ci_low:.3g}, {power.ci_high:.3g}]"
    if math.isnan(power.ci_low):
        return None, f"{fitted}: too few points for an interval"
    if power.ci_low - EXPONENT_TOLERANCE <= stated <= power.ci_high + EXPONENT_TOLERANCE:
        return True, f"agrees: {fitted}, stated p = {stated:.4g}"
    return False, f"disagrees: {fitted}, stated p = {stated:.4g}: off by {_percent(power.exponent, stated)}"


def fit_study(cells: Sequence[Cell], runs: Mapping[str, HittingTimes], grid: Grid, tail: int = 4
              ) -> list[Fit]:
    """One Fit per variant and parameter with at least 2 points: on the exact values where the
    variant has them, else on the Monte Carlo means (cells without either are left out)."""
    by_point = {(c.variant, c.point): c for c in cells}
    fits = []
    for variant in dict.fromkeys(c.variant for c in cells):
        for parameter in PARAMETERS:
            x, y, sigma = [], [], []
            for point in grid.axis(parameter):
                cell = by_point.get((variant, point))
                if cell is None:
                    continue
                result = runs.get(cell.run) if cell.run else None
                if math.isfinite(cell.exact):
                    value, error = cell.exact, None
                elif result is not None and result.hits >= 2:
                    value, error = result.mean, result.stderr
                else:
                    continue
                x.append(point[PARAMETERS.index(parameter)])
                y.append(value)
                sigma.append(error)
            if len(x) < 2:
                continue
            exact_data = all(s is None for s in sigma)
            if not exact_data and any(s is None for s in sigma):  # cannot happen: one source per variant
                raise AssertionError(f"{variant}: mixed exact and Monte Carlo values along {parameter}")
            fits.append(_describe_fit(variant, parameter, grid.base, x, y, None if exact_data else sigma, tail))
    return fits


# --- the sweep ------------------------------------------------------------------------------

ProgressFactory = Callable[[str, int], ContextManager[Callable[[int, int], None] | None]]


@contextlib.contextmanager
def _no_progress(name: str, rollouts: int) -> Iterator[None]:
    yield None


@dataclass(frozen=True)
class PlannedCell:
    """One variant at one grid point, planned: its policy, the engine's plan of its Monte Carlo
    run (``run.max_steps`` and ``run.bins`` fix the histogram layout) and whether that run fits
    the budget (``simulated``)."""

    variant: str
    point: tuple[int, int, int]
    policy: Policy
    run: RunPlan
    simulated: bool

    @property
    def name(self) -> str:
        """The run's name in ``Study.runs`` (see :func:`run_name`)."""
        return run_name(self.variant, self.point)


def plan_cells(
    grid: Grid,
    variants: Sequence[str] = tuple(VARIANTS),
    rollouts: int = 50_000,
    seed: int = 0,
    budget: float = 20.0,
    backend: str = "numba",
    threads: int | None = None,
    tail: int = 4,
    policies: str = "converged",
) -> list[PlannedCell]:
    """Check every parameter and plan every cell (sorted cells, variants in the given order)
    before any simulation. A cell is ``simulated`` if ``engine.plan`` estimates its run of
    ``rollouts`` rollouts on ``threads`` threads at no more than ``budget`` seconds. Raises
    ValueError naming the bad option."""
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise ValueError(f"--variants: unknown {', '.join(unknown) or '(none given)'}; allowed: {', '.join(VARIANTS)}")
    if isinstance(tail, bool) or not isinstance(tail, int) or tail < 3:
        raise ValueError(f"--tail must be a whole number >= 3 (a line with an interval needs 3 points), got {tail!r}")
    if isinstance(budget, bool) or not (isinstance(budget, (int, float)) and budget >= 0 and math.isfinite(budget)):
        raise ValueError(f"--budget must be a number of seconds >= 0, got {budget!r}")

    if policies not in POLICY_SOURCES:
        raise ValueError(f"--policies must be one of {', '.join(POLICY_SOURCES)}, got {policies!r}")
    planned = []
    for point in grid.cells():
        by_variant = variant_policies(point, variants, policies, seed, threads)
        for variant in variants:
            v = VARIANTS[variant]
            policy = by_variant[variant]
            run = plan(policy, None, rollouts, cell_seed(seed, run_name(variant, point)), None,
                       backend, threads, None, True, v.search)
            planned.append(PlannedCell(variant, point, policy, run, run.estimated_seconds <= budget))
    return planned


def study_parameters(grid: Grid, variants: Sequence[str], rollouts: int, seed: int, budget: float,
                     backend: str, threads: int | None, tail: int, policies: str = "converged") -> dict:
    """The ``Study.parameters`` of a sweep (JSON-able)."""
    return {
        "policies": policies,
        **({"training": dict(TRAINING)} if policies == "trained" else {}),
        "design": "star", "W": list(grid.W), "K": list(grid.K), "L": list(grid.L),
        "base": list(grid.base), "variants": list(variants), "rollouts": rollouts, "seed": seed,
        "budget_seconds": budget, "backend": backend, "threads": threads, "tail": tail,
        "target": "t1", "search_mode": "mask", "level": LEVEL,
        "exponent_tolerance": EXPONENT_TOLERANCE,
        "bounds": {name: VARIANTS[name].bound.label for name in variants},
        "notes": [DISTILLED_NOTE] if policies == "converged" else [],
    }


def assemble(planned: Sequence[PlannedCell], runs: Mapping[str, HittingTimes], grid: Grid,
             parameters: dict, tail: int = 4) -> Study:
    """The study of planned cells whose Monte Carlo runs are ``runs`` (by run name; every
    simulated cell must have one): cells with their exact values, and the fits."""
    missing = [c.name for c in planned if c.simulated and c.name not in runs]
    if missing:
        raise ValueError(f"no Monte Carlo result for {', '.join(missing)}")
    cells = [Cell(c.variant, *c.point, float(c.run.exact_mean), c.name if c.simulated else "",
                  float(c.run.estimated_seconds)) for c in planned]
    kept = {c.name: runs[c.name] for c in planned if c.simulated}
    return Study(parameters, cells, fit_study(cells, kept, grid, tail), kept)


def sweep(
    grid: Grid,
    variants: Sequence[str] = tuple(VARIANTS),
    rollouts: int = 50_000,
    seed: int = 0,
    budget: float = 20.0,
    backend: str = "numba",
    threads: int | None = None,
    tail: int = 4,
    progress: ProgressFactory = _no_progress,
    policies: str = "converged",
) -> Study:
    """Evaluate every variant at every cell of ``grid``: the exact expected hitting time where the
    solver applies, and ``rollouts`` Monte Carlo rollouts (target t1, seed from :func:`cell_seed`)
    where ``engine.plan`` estimates the run at no more than ``budget`` seconds. Every parameter is
    checked and every cell planned before any simulation. ``progress(run, rollouts)`` gives a
    context manager yielding a progress callback for one run (or None). (``edgewalk.batch`` runs
    the same study split into rollout blocks, sharded, resumable or on Dask, bit for bit equal.)
    ``policies``: "converged" (MODEL.md section 3) or "trained" (see :func:`variant_policies`)."""
    planned = plan_cells(grid, variants, rollouts, seed, budget, backend, threads, tail, policies)
    runs = {}
    for cell in planned:
        if cell.simulated:
            run = cell.run
            with progress(cell.name, rollouts) as update:
                runs[cell.name] = simulate(cell.policy, None, rollouts, run.seed, None, backend,
                                           threads, None, True, update, run.search,
                                           known_mean=run.exact_mean)
    threads_used = planned[0].run.threads if planned else threads
    parameters = study_parameters(grid, variants, rollouts, seed, budget, backend, threads_used, tail,
                                  policies)
    return assemble(planned, runs, grid, parameters, tail)


def grid_of(study: Study) -> Grid:
    p = study.parameters
    return Grid(tuple(p["W"]), tuple(p["K"]), tuple(p["L"]), tuple(p["base"]))


# --- Monte Carlo against exact --------------------------------------------------------------

@dataclass(frozen=True)
class Comparison:
    """One Monte Carlo mean against the exact value of its cell."""

    variant: str
    W: int
    K: int
    L: int
    mean: float
    stderr: float
    exact: float
    z: float
    censored: int


def compare_with_exact(study: Study) -> list[Comparison]:
    """z = (Monte Carlo mean - exact) / stderr for every cell that has both (the means are
    recomputed from each run's exact integer sums)."""
    found = []
    for cell in study.cells:
        result = study.mc(cell)
        if result is None or not math.isfinite(cell.exact):
            continue
        if result.hits >= 2 and result.variance < 0:
            raise ValueError(f"run {cell.run}: its sums of hitting times and of their squares are "
                             "inconsistent (negative variance); the file is corrupt")
        difference = result.mean - cell.exact
        if result.stderr > 0:
            z = difference / result.stderr
        else:
            z = 0.0 if difference == 0 else math.copysign(math.inf, difference)
        found.append(Comparison(cell.variant, cell.W, cell.K, cell.L, result.mean, result.stderr,
                                cell.exact, z, result.censored))
    return found


def bonferroni_threshold(comparisons: int, alpha: float = 1e-3) -> float:
    """The |z| beyond which one of ``comparisons`` two-sided tests fails at family-wise ``alpha``."""
    return float(stats.norm.isf(alpha / (2 * max(comparisons, 1))))


# --- the file -------------------------------------------------------------------------------

_CELL_COLUMNS = [("variant", "str"), ("W", "i8"), ("K", "i8"), ("L", "i8"), ("exact", "f8"),
                 ("run", "str"), ("estimated_seconds", "f8")]
_FIT_COLUMNS = [("variant", "str"), ("parameter", "str"), ("kind", "str"), ("estimate", "f8"),
                ("ci_low", "f8"), ("ci_high", "f8"), ("stated", "str"), ("stated_value", "f8"),
                ("r2", "f8"), ("exponent", "f8"), ("exponent_ci_low", "f8"),
                ("exponent_ci_high", "f8"), ("stated_exponent", "f8"), ("source", "str"),
                ("points", "str"), ("held", "str"), ("agrees", "i1"), ("verdict", "str")]


def _table(columns) -> np.dtype:
    return np.dtype([(name, h5py.string_dtype() if kind == "str" else kind) for name, kind in columns])


def _write_table(group: h5py.Group, name: str, columns, rows: list[tuple]) -> None:
    group.create_dataset(name, data=np.array(rows, dtype=_table(columns)), dtype=_table(columns))


def _read_table(dataset: h5py.Dataset) -> list[dict]:
    data = dataset[()]
    rows = []
    for record in data:
        row = {}
        for name in data.dtype.names:
            value = record[name]
            row[name] = value.decode() if isinstance(value, bytes) else value.item()
        rows.append(row)
    return rows


def write(path: str | os.PathLike[str], study: Study) -> None:
    """Write the study to one HDF5 file at ``path``, atomically (the complete file, or on any
    error the previous one untouched and no temporary file left). Layout::

        /runs/<variant>_W<W>_K<K>_L<L>   every Monte Carlo run, exactly as edgewalk.write stores it
                                         (edgewalk.read opens the file)
        /study                           attrs: study_format, study_format_version, parameters (JSON)
        /study/cells                     table: variant, W, K, L, exact (nan: no exact solver),
                                         run ("" : over budget), estimated_seconds
        /study/fits                      table: one row per Fit (points as JSON, agrees 1/0/-1 for
                                         yes/no/unknown)
    """
    with io.atomic_file(path) as f:
        io.write_runs(f, study.runs)
        group = f.create_group("study")
        group.attrs["study_format"] = STUDY_FORMAT
        group.attrs["study_format_version"] = STUDY_FORMAT_VERSION
        group.attrs["parameters"] = json.dumps(study.parameters)
        _write_table(group, "cells", _CELL_COLUMNS, [
            (c.variant, c.W, c.K, c.L, c.exact, c.run, c.estimated_seconds) for c in study.cells])
        _write_table(group, "fits", _FIT_COLUMNS, [
            (f.variant, f.parameter, f.kind, f.estimate, f.ci_low, f.ci_high, f.stated,
             f.stated_value, f.r2, f.exponent, f.exponent_ci_low, f.exponent_ci_high,
             f.stated_exponent, f.source, json.dumps(list(f.points)), f.held,
             -1 if f.agrees is None else int(f.agrees), f.verdict) for f in study.fits])


def read(path: str | os.PathLike[str]) -> Study:
    """The study in a file written by :func:`write` (runs through edgewalk.read)."""
    try:
        with h5py.File(path, "r") as f:
            group = f.get("study")
            if group is None or group.attrs.get("study_format") != STUDY_FORMAT:
                raise ValueError(f"{path}: not an edgewalk study file (written by `edgewalk sweep`)")
            parameters = json.loads(group.attrs["parameters"])
            cells = [Cell(**row) for row in _read_table(group["cells"])]
            fits = []
            for row in _read_table(group["fits"]):
                row["points"] = tuple(json.loads(row["points"]))
                row["agrees"] = None if row["agrees"] < 0 else bool(row["agrees"])
                fits.append(Fit(**row))
    except OSError as error:
        raise ValueError(f"{path}: cannot read an HDF5 file: {error}") from None
    return Study(parameters, cells, fits, io.read(path))
