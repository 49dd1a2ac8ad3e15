"""Power analysis of a paired comparison on the same held-out items: the minimum detectable difference of a paired
binary outcome (McNemar / sign test, Connor's normal approximation) and of a paired continuous one, and a Monte-Carlo
check of the exact sign test's power."""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats

from mdaq.stats.paired import sign_pvalues


def _z(alpha: float, power: float) -> tuple[float, float]:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    if not 0.5 <= power < 1:
        raise ValueError(f"power must lie in [0.5, 1), got {power!r}")
    return float(stats.norm.ppf(1 - alpha / 2)), float(stats.norm.ppf(power))


def _check_psi(p_discordant: float) -> float:
    if not 0 < p_discordant <= 1:
        raise ValueError(f"p_discordant must lie in (0, 1], got {p_discordant!r}")
    return float(p_discordant)


def _connor_n(delta: float, psi: float, za: float, zb: float) -> float:
    """Connor (1987): n = (z_{1-a/2} sqrt(psi) + z_{1-b} sqrt(psi - delta^2))^2 / delta^2."""
    return (za * math.sqrt(psi) + zb * math.sqrt(psi - delta**2)) ** 2 / delta**2


def n_paired_binary(delta: float, p_discordant: float, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """Items needed to detect an accuracy difference ``delta`` with a paired binary outcome (McNemar).

    ``n = ceil((z_{1-a/2} sqrt(psi) + z_{1-b} sqrt(psi - delta^2))^2 / delta^2)`` (Connor 1987; normal
    approximation), with psi the share of discordant pairs and delta = p10 - p01 the accuracy difference.

    Parameters
    ----------
    delta : float
        Accuracy difference to detect; ``0 < |delta| <= p_discordant`` (delta cannot exceed psi = p10 + p01).
    p_discordant : float
        psi, the expected share of items on which the two methods disagree, in (0, 1].
    alpha : float
        Two-sided level.
    power : float
        Target power 1 - beta, in [0.5, 1).

    Returns
    -------
    int

    References
    ----------
    R. J. Connor, "Sample size for testing differences in proportions for the paired-sample design",
    *Biometrics* 43 (1987) 207-211.
    """
    psi = _check_psi(p_discordant)
    za, zb = _z(alpha, power)
    if not 0 < abs(delta) <= psi:
        raise ValueError(f"need 0 < |delta| <= p_discordant, got delta={delta!r}, p_discordant={psi!r}")
    return math.ceil(_connor_n(abs(delta), psi, za, zb) * (1 - 1e-12))  # no extra item from rounding noise


def mdd_paired_binary(n: float, p_discordant: float, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """Minimum detectable accuracy difference with n paired binary items (McNemar, normal approximation).

    Solves Connor's (1987) equation ``n = (z_{1-a/2} sqrt(psi) + z_{1-b} sqrt(psi - delta^2))^2 / delta^2`` for
    delta in (0, psi] with :func:`scipy.optimize.brentq`; the right-hand side decreases in delta, so the root is
    unique. It is the inverse of :func:`n_paired_binary` (before rounding up).

    Parameters
    ----------
    n : float
        Number of paired items (> 0).
    p_discordant, alpha, power
        As in :func:`n_paired_binary`.

    Returns
    -------
    float
        delta > 0.

    Raises
    ------
    ValueError
        If n is too small for any delta <= psi to be detectable, or on invalid arguments.
    """
    psi = _check_psi(p_discordant)
    za, zb = _z(alpha, power)
    if not n > 0:
        raise ValueError(f"n must be positive, got {n!r}")
    f = lambda d: _connor_n(d, psi, za, zb) - n  # noqa: E731
    if f(psi) > 0:
        raise ValueError(f"n={n} is too small: even delta = p_discordant = {psi} needs n = {f(psi) + n:.1f}")
    return float(optimize.brentq(f, psi * 1e-9, psi, xtol=1e-14, rtol=1e-12))


def mdd_paired_continuous(n: float, sd_diff: float, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """Minimum detectable mean of a continuous paired difference: ``(z_{1-a/2} + z_{1-b}) sd_diff / sqrt(n)``.

    The normal-approximation (paired z-test) counterpart of :func:`mdd_paired_binary`, e.g. for the margin or a
    per-item NLL difference with standard deviation ``sd_diff`` across items.
    """
    za, zb = _z(alpha, power)
    if not n > 0 or not sd_diff > 0:
        raise ValueError(f"n and sd_diff must be positive, got n={n!r}, sd_diff={sd_diff!r}")
    return (za + zb) * sd_diff / math.sqrt(n)


def simulated_power(
    delta: float, p_discordant: float, n: int, *, alpha: float = 0.05, n_sim: int = 4000, seed: int = 0
) -> float:
    """Monte-Carlo power of the exact sign (McNemar) test, to check the normal approximation.

    Each simulated study draws n items as (a right & b wrong, a wrong & b right, concordant) with probabilities
    ``((psi + delta)/2, (psi - delta)/2, 1 - psi)`` and rejects when the exact two-sided p-value on the
    discordant pairs is ``< alpha``.

    Parameters
    ----------
    delta, p_discordant
        Accuracy difference and discordant share; ``|delta| <= p_discordant``.
    n : int
        Items per study.
    alpha : float
        Level of the test.
    n_sim : int
        Simulated studies (Monte-Carlo SE about ``sqrt(0.16 / n_sim)`` near power 0.8).
    seed : int
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    float
        Share of simulated studies that reject.
    """
    psi = _check_psi(p_discordant)
    if abs(delta) > psi:
        raise ValueError(f"need |delta| <= p_discordant, got delta={delta!r}, p_discordant={psi!r}")
    if not 0 < alpha < 1 or n < 1 or n_sim < 1:
        raise ValueError(f"need 0 < alpha < 1, n >= 1 and n_sim >= 1 (got {alpha!r}, {n!r}, {n_sim!r})")
    probs = [(psi + delta) / 2, (psi - delta) / 2, 1 - psi]
    counts = np.random.default_rng(seed).multinomial(int(n), probs, size=int(n_sim))
    p = sign_pvalues(counts[:, 0], counts[:, 0] + counts[:, 1])
    return float(np.mean(p < alpha))
