"""The generative processes of BG/NBD and Gamma-Gamma, to test and time the fits on known truth.

Each function draws members from the population the model describes, vectorised over
members: the BG/NBD loop runs once per purchase round, never once per member.
"""

from __future__ import annotations

import numpy as np

from tidings.profiles.bgnbd import BgNbdParams, GammaGammaParams


def simulate_bgnbd(
    params: BgNbdParams, *, T: np.ndarray, rng: np.random.Generator, holdout_weeks: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draws each member's `x`, `t_x` over an age `T` (weeks), and purchases in a holdout after.

    A member buys at rate lambda ~ Gamma(r, alpha) after a first purchase at time 0 and,
    after each repeat purchase, drops out for good with probability p ~ Beta(a, b).
    """
    size = T.size
    rate = rng.gamma(params.r, 1.0 / params.alpha, size)
    dropout = rng.beta(params.a, params.b, size)
    clock = np.zeros(size)
    x = np.zeros(size)
    t_x = np.zeros(size)
    later = np.zeros(size)
    active = np.arange(size)
    while active.size:
        clock[active] += rng.exponential(1.0 / rate[active])
        buying = active[clock[active] <= T[active] + holdout_weeks]
        within = buying[clock[buying] <= T[buying]]
        x[within] += 1
        t_x[within] = clock[within]
        later[buying[clock[buying] > T[buying]]] += 1
        active = buying[rng.random(buying.size) >= dropout[buying]]
    return x, t_x, later


def simulate_gamma_gamma(
    params: GammaGammaParams, *, x: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Draws each member's mean spend over `x` repeat days (NaN where x = 0).

    Spend per day ~ Gamma(p, nu) with the member's nu ~ Gamma(q, v); the sum of x such
    days is Gamma(p x, nu), so the mean is drawn in one step.
    """
    nu = rng.gamma(params.q, 1.0 / params.v, x.size)
    shape = np.where(x > 0, params.p * x, 1.0)
    total = rng.gamma(shape, 1.0 / nu)
    return np.where(x > 0, total / np.maximum(x, 1), np.nan)
