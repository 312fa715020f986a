"""BG/NBD purchase-count model and Gamma-Gamma spend model, fitted by maximum likelihood.

Why our own ~250 lines instead of a library:

* ``lifetimes`` (the reference implementation) installs, but has been unmaintained since 2020:
  its ``datasets`` module still imports the deprecated ``pkg_resources``, and nobody fixes it
  against new numpy, pandas or setuptools releases.
* ``pymc-marketing`` pulls in pymc and pytensor, which compile C at runtime: a compiler in the
  asset's critical path, minutes of first-run compilation and a cache directory per worker, for
  four parameters that scipy fits in well under a second.

The models, in the notation of the papers:

* BG/NBD (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way", Marketing Science
  24(2)). While alive a customer buys as a Poisson process with rate λ ~ Gamma(r, α); after
  every *repeat* purchase they drop out for good with probability p ~ Beta(a, b). A customer is
  summarised by x (repeat purchases), t_x (time of the last purchase, measured from the first)
  and T (time from the first purchase to the observation date). Likelihood: paper eq. 6;
  expected purchases in the next t given (x, t_x, T): eq. 10 (Gaussian hypergeometric 2F1);
  P(alive): eq. 11 of the accompanying note.
* Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV: Using Iso-Value Curves for Customer
  Base Analysis", J. Marketing Research 42(4); Fader & Hardie 2013 note "The Gamma-Gamma Model
  of Monetary Value"). The value of each transaction is Gamma(p, ν) with ν ~ Gamma(q, γ), so a
  customer's mean spend per transaction is shrunk towards the population mean γp/(q-1) the
  less history they have. Assumes spend is independent of purchase frequency.

All times are in days. Parameters are optimised on the log scale (all are positive) with
L-BFGS-B; identical (x, t_x, T) rows are collapsed into weights first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1, roots_jacobi

__all__ = [
    "BGNBDParams",
    "GammaGammaParams",
    "bgnbd_expected_purchases",
    "bgnbd_log_likelihood",
    "bgnbd_p_alive",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "gamma_gamma_expected_spend",
    "gamma_gamma_log_likelihood",
    "simulate_bgnbd",
    "simulate_gamma_gamma",
]


@dataclass(frozen=True)
class BGNBDParams:
    """Fitted BG/NBD parameters (time unit: days) and the fit's diagnostics."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float = float("nan")
    n_customers: int = 0
    converged: bool = True

    def as_dict(self) -> dict[str, float | int | bool]:
        return asdict(self)


@dataclass(frozen=True)
class GammaGammaParams:
    """Fitted Gamma-Gamma parameters (spend in the data's currency) and diagnostics."""

    p: float
    q: float
    gamma: float
    log_likelihood: float = float("nan")
    n_customers: int = 0
    converged: bool = True

    @property
    def population_mean_spend(self) -> float:
        """E[spend per transaction] for a customer with no repeat history: γp / (q - 1)."""
        return self.gamma * self.p / (self.q - 1) if self.q > 1 else float("inf")

    def as_dict(self) -> dict[str, float | int | bool]:
        return asdict(self)


def _arrays(*values: npt.ArrayLike) -> list[np.ndarray]:
    return [np.asarray(v, dtype=float) for v in values]


def bgnbd_log_likelihood(
    r: float,
    alpha: float,
    a: float,
    b: float,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
) -> np.ndarray:
    """Per-customer log-likelihood, paper eq. 6, in log space for large x:

    L = Γ(r+x) α^r / Γ(r) · [ B(a, b+x)/B(a, b) · (α+T)^-(r+x)
                              + 1{x>0} · B(a+1, b+x-1)/B(a, b) · (α+t_x)^-(r+x) ]
    """
    x, t_x, T = _arrays(x, t_x, T)
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    survived = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + T)
    has_repeat = x > 0
    dropped = np.full_like(x, -np.inf)
    xr = x[has_repeat]
    dropped[has_repeat] = (
        betaln(a + 1, b + xr - 1) - betaln(a, b) - (r + xr) * np.log(alpha + t_x[has_repeat])
    )
    return common + np.logaddexp(survived, dropped)


def bgnbd_p_alive(
    params: BGNBDParams, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike
) -> np.ndarray:
    """P(still alive at T | x, t_x, T) = 1 / (1 + 1{x>0} · a/(b+x-1) · ((α+T)/(α+t_x))^(r+x))."""
    x, t_x, T = _arrays(x, t_x, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    with np.errstate(divide="ignore", invalid="ignore"):
        log_odds = (
            np.log(a)
            - np.log(np.maximum(b + x - 1, 1e-300))
            + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
        )
    return np.where(x > 0, 1.0 / (1.0 + np.exp(np.minimum(log_odds, 700))), 1.0)


def _expected_purchases_closed_form(
    params: BGNBDParams, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """Paper eq. 10 (valid for a ≠ 1; analytic continuation covers a < 1)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    with np.errstate(all="ignore"):
        hyp = hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t))
        survive_term = 1 - np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t))) * hyp
        return (a + b + x - 1) / (a - 1) * survive_term * bgnbd_p_alive(params, x, t_x, T)


def _expected_purchases_quadrature(
    params: BGNBDParams, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, n: int = 64
) -> np.ndarray:
    """The same expectation as a 1-D integral, used where 2F1 is not finite (and in tests).

    Given alive at T: λ ~ Gamma(r+x, α+T), p ~ Beta(a, b+x), and an alive customer makes
    (1/p)(1 - e^{-λpt}) purchases in expectation over the next t. Integrating λ out leaves
    E_p[(1/p)(1 - ((α+T)/(α+T+pt))^(r+x))], done by Gauss-Jacobi quadrature on the Beta.
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    out = np.empty_like(x)
    for value in np.unique(x):
        rows = x == value
        u, w = roots_jacobi(n, b + value - 1, a - 1)
        p = (1 + u) / 2
        w = w / w.sum()
        base = (alpha + T[rows])[:, None]
        g = (1 - (base / (base + p[None, :] * t)) ** (r + value)) / p[None, :]
        out[rows] = g @ w
    return out * bgnbd_p_alive(params, x, t_x, T)


def bgnbd_expected_purchases(
    params: BGNBDParams, t: float, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike
) -> np.ndarray:
    """E[purchases in (T, T+t] | x, t_x, T]: closed form, quadrature where 2F1 misbehaves."""
    x, t_x, T = _arrays(x, t_x, T)
    if t <= 0:
        return np.zeros_like(x)
    values = _expected_purchases_closed_form(params, t, x, t_x, T)
    bad = ~np.isfinite(values) | (values < 0)
    if abs(params.a - 1) < 1e-6:
        bad[:] = True
    if bad.any():
        values[bad] = _expected_purchases_quadrature(params, t, x[bad], t_x[bad], T[bad])
    return values


def _collapse(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique rows of the stacked columns and their counts (many customers share a summary)."""
    stacked = np.column_stack(columns)
    unique, counts = np.unique(stacked, axis=0, return_counts=True)
    return unique, counts.astype(float)


def fit_bgnbd(
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    *,
    initial: tuple[float, float, float, float] | None = None,
) -> BGNBDParams:
    """Maximum-likelihood (r, α, a, b) from per-customer (x, t_x, T), times in days."""
    x, t_x, T = _arrays(x, t_x, T)
    if len(x) == 0:
        raise ValueError("cannot fit BG/NBD on zero customers")
    if np.any(t_x > T) or np.any(x < 0) or np.any((x == 0) & (t_x != 0)):
        raise ValueError("BG/NBD summary must satisfy x >= 0, 0 <= t_x <= T and t_x = 0 when x = 0")
    rows, weights = _collapse(x, t_x, T)
    ux, ut, uT = rows[:, 0], rows[:, 1], rows[:, 2]
    total = weights.sum()

    def objective(theta: np.ndarray) -> float:
        r, alpha, a, b = np.exp(theta)
        ll = bgnbd_log_likelihood(r, alpha, a, b, ux, ut, uT)
        value = -float(weights @ ll) / total
        return value if np.isfinite(value) else 1e100

    start = initial or (1.0, max(float(np.mean(T)) / 10, 1.0), 1.0, 1.0)
    result = minimize(objective, np.log(start), method="L-BFGS-B", bounds=[(-12, 12)] * 4)
    # A second start from the first optimum polishes flat directions (a, b often trade off).
    result = minimize(objective, result.x, method="L-BFGS-B", bounds=[(-12, 12)] * 4)
    r, alpha, a, b = (float(v) for v in np.exp(result.x))
    return BGNBDParams(
        r=r,
        alpha=alpha,
        a=a,
        b=b,
        log_likelihood=-float(result.fun) * float(total),
        n_customers=len(x),
        converged=bool(result.success),
    )


def gamma_gamma_log_likelihood(
    p: float, q: float, gamma: float, x: npt.ArrayLike, mean_spend: npt.ArrayLike
) -> np.ndarray:
    """Per-customer log density of the observed mean spend m̄ over x transactions:

    f(m̄) = Γ(px+q) / (Γ(px) Γ(q)) · γ^q · m̄^(px-1) · x^(px) / (γ + m̄x)^(px+q)
    """
    x, m = _arrays(x, mean_spend)
    px = p * x
    return (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(gamma)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(gamma + m * x)
    )


def fit_gamma_gamma(x: npt.ArrayLike, mean_spend: npt.ArrayLike) -> GammaGammaParams:
    """Maximum-likelihood (p, q, γ) from customers with x >= 1 repeat purchases and m̄ > 0."""
    x, m = _arrays(x, mean_spend)
    keep = (x > 0) & (m > 0)
    if keep.sum() < 3:
        raise ValueError("Gamma-Gamma needs at least 3 customers with repeat purchases and spend")
    rows, weights = _collapse(x[keep], m[keep])
    ux, um = rows[:, 0], rows[:, 1]
    total = weights.sum()

    def objective(theta: np.ndarray) -> float:
        p, q, gamma = np.exp(theta)
        value = -float(weights @ gamma_gamma_log_likelihood(p, q, gamma, ux, um)) / total
        return value if np.isfinite(value) else 1e100

    start = np.log([1.0, 2.0, float(np.median(um))])
    result = minimize(objective, start, method="L-BFGS-B", bounds=[(-12, 15)] * 3)
    result = minimize(objective, result.x, method="L-BFGS-B", bounds=[(-12, 15)] * 3)
    p, q, gamma = (float(v) for v in np.exp(result.x))
    return GammaGammaParams(
        p=p,
        q=q,
        gamma=gamma,
        log_likelihood=-float(result.fun) * float(total),
        n_customers=int(keep.sum()),
        converged=bool(result.success),
    )


def gamma_gamma_expected_spend(
    params: GammaGammaParams, x: npt.ArrayLike, mean_spend: npt.ArrayLike
) -> np.ndarray:
    """E[spend per future transaction | x, m̄] = (γ + m̄x) p / (px + q - 1).

    A weighted average of the population mean γp/(q-1) and the customer's own m̄, with weight
    px / (px + q - 1) on m̄: no repeat history (x = 0) gives the population mean.
    """
    x, m = _arrays(x, mean_spend)
    if params.q <= 1:
        raise ValueError(f"Gamma-Gamma q = {params.q:.3f} <= 1: the mean spend is not finite")
    m = np.where(x > 0, np.maximum(m, 0.0), 0.0)
    return (params.gamma + m * x) * params.p / (params.p * x + params.q - 1)


def simulate_bgnbd(
    params: BGNBDParams, T: npt.ArrayLike, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Draw (x, t_x) and the repeat-purchase times of customers observed for T days each.

    Follows the generative story exactly: first purchase at 0, exponential gaps at rate λ,
    a coin with probability p after each repeat purchase decides whether the customer leaves.
    """
    T = np.asarray(T, dtype=float)
    lam = rng.gamma(params.r, 1 / params.alpha, size=len(T))
    drop = rng.beta(params.a, params.b, size=len(T))
    x = np.zeros(len(T))
    t_x = np.zeros(len(T))
    times: list[np.ndarray] = []
    for i in range(len(T)):
        now, bought = 0.0, []
        while True:
            now += rng.exponential(1 / lam[i])
            if now > T[i]:
                break
            bought.append(now)
            if rng.random() < drop[i]:
                break
        times.append(np.asarray(bought))
        x[i] = len(bought)
        t_x[i] = bought[-1] if bought else 0.0
    return x, t_x, times


def simulate_gamma_gamma(
    params: GammaGammaParams, x: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Mean spend of x transactions per customer (NaN when x = 0): z ~ Gamma(p, ν), ν ~ Gamma(q, γ)."""
    x = np.asarray(x, dtype=int)
    nu = rng.gamma(params.q, 1 / params.gamma, size=len(x))
    means = np.full(len(x), np.nan)
    for i in np.flatnonzero(x > 0):
        means[i] = rng.gamma(params.p, 1 / nu[i], size=x[i]).mean()
    return means
