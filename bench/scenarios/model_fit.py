"""Bench: fit BG/NBD and Gamma-Gamma to 100,000 simulated members (target: at most 10 s)."""

from __future__ import annotations

import time

import numpy as np

from bench.harness import report
from tidings.profiles.bgnbd import BgNbdParams, GammaGammaParams, fit_bgnbd, fit_gamma_gamma
from tidings.profiles.simulate import simulate_bgnbd, simulate_gamma_gamma

MEMBERS = 100_000
TARGET_SECONDS = 10.0
TRUTH = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
SPEND = GammaGammaParams(p=6.25, q=3.74, v=15.44)


def run() -> None:
    rng = np.random.default_rng(2005)
    T = rng.integers(27 * 7, 78 * 7 + 1, MEMBERS) / 7.0
    x, t_x, _ = simulate_bgnbd(TRUTH, T=T, rng=rng)
    m = np.nan_to_num(simulate_gamma_gamma(SPEND, x=x, rng=rng))
    started = time.perf_counter()
    fitted = fit_bgnbd(x=x, t_x=t_x, T=T)
    spend = fit_gamma_gamma(x=x, m=m)
    seconds = time.perf_counter() - started
    print(
        f"BG/NBD r={fitted.r:.3f} alpha={fitted.alpha:.3f} a={fitted.a:.3f} b={fitted.b:.3f};"
        f" Gamma-Gamma p={spend.p:.2f} q={spend.q:.2f} v={spend.v:.2f}"
    )
    report(
        "model_fit (100,000 members)",
        seconds,
        "s",
        f"<= {TARGET_SECONDS:.0f} s",
        met=seconds <= TARGET_SECONDS,
    )
