"""Growth fits of the expected hitting time along one parameter, judged against a stated bound.

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

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import optimize, stats

from ..result import HittingTimes
from .grid import PARAMETERS, Grid
from .variants import THETA_W_L_K, VARIANTS

if TYPE_CHECKING:
    from .sweep import Cell

LEVEL = 0.95  # confidence level of every interval
EXPONENT_TOLERANCE = 0.25  # lower-order terms may move a fitted exponent this far on a finite range
EXACT_SLACK = 1e-6  # relative: exact values carry solver rounding, not noise


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
    # least squares on the rows scaled by sqrt(w), not the normal equations: a Monte Carlo mean
    # of a few equal hitting times has standard error 0 and a weight some 1e24 times its
    # neighbours', which makes X'WX numerically singular (np.linalg.solve raised)
    root = np.sqrt(w)
    (intercept, slope), *_ = np.linalg.lstsq(root[:, None] * X, root * y, rcond=None)
    residual = y - (intercept + slope * x)
    chi2 = float(np.sum(w * residual**2))
    y_mean = np.sum(w * y) / np.sum(w)
    total = float(np.sum(w * (y - y_mean) ** 2))
    r2 = 1.0 - chi2 / total if total > 1e-20 * float(np.sum(w * y**2)) else math.nan  # nan: y constant
    if n < 3:
        return LineFit(float(slope), float(intercept), math.nan, math.nan, r2)
    dof = n - 2
    scale = chi2 / dof if sigma is None else max(1.0, chi2 / dof)
    inverse = np.linalg.pinv(root[:, None] * X)  # its product with its transpose is (X'WX)^-1
    se = math.sqrt((inverse @ inverse.T)[1, 1] * scale)
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
        stated_value = fit_line(x, shape, sigma).slope  # the same weights as the fit
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
    """One Fit per variant and parameter with at least 2 points: on the Monte Carlo means where
    every point of the axis has one from a run without censored rollouts (weighted by their
    standard errors), else on the exact values where every point has one, else on the points
    with such Monte Carlo means."""
    by_point = {(c.variant, c.point): c for c in cells}
    fits = []
    for variant in dict.fromkeys(c.variant for c in cells):
        for parameter in PARAMETERS:
            simulated, solved = [], []
            axis = [by_point[(variant, p)] for p in grid.axis(parameter) if (variant, p) in by_point]
            for cell in axis:
                x = cell.point[PARAMETERS.index(parameter)]
                result = runs.get(cell.run) if cell.run else None
                if result is not None and result.hits >= 2 and result.censored == 0:
                    simulated.append((x, result.mean, result.stderr))
                if math.isfinite(cell.exact):
                    solved.append((x, cell.exact, None))
            points = (simulated if len(simulated) == len(axis) else
                      solved if len(solved) == len(axis) else simulated)
            if len(points) < 2:
                continue
            x, y, sigma = (list(v) for v in zip(*points))
            exact_data = points is solved
            fits.append(_describe_fit(variant, parameter, grid.base, x, y, None if exact_data else sigma, tail))
    return fits
