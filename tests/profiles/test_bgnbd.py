"""The BG/NBD and Gamma-Gamma fits: published values, likelihoods against integration,
and parameters recovered from members simulated with known ones."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import numpy as np
import polars as pl
import pytest
from scipy import integrate, special, stats
from scipy.optimize import check_grad

from tidings.profiles.bgnbd import (
    BgNbdParams,
    GammaGammaParams,
    _bgnbd_terms,
    _gamma_gamma_terms,
    bgnbd_log_likelihood,
    calibration_summary,
    expected_purchases,
    expected_spend,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_log_likelihood,
    p_alive,
)
from tidings.profiles.simulate import simulate_bgnbd, simulate_gamma_gamma

# Fader, Hardie & Lee (2005), CDNOW: the paper's estimates and its worked example.
CDNOW = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)


def test_expected_purchases_match_the_papers_worked_example() -> None:
    # x = 2, t_x = 30.43, T = 38.86: 1.226 purchases expected in the next 39 weeks.
    value = expected_purchases(CDNOW, 39.0, np.array([2.0]), np.array([30.43]), np.array([38.86]))
    assert value[0] == pytest.approx(1.226, abs=0.001)


def _bgnbd_by_integration(params: BgNbdParams, x: int, t_x: float, T: float) -> float:
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    rate_norm = alpha**r / math.gamma(r)
    dropout_norm = 1 / special.beta(a, b)

    def integrand(p: float, rate: float) -> float:
        inside = (1 - p) ** x * rate**x * math.exp(-rate * T)
        if x > 0:
            inside += p * (1 - p) ** (x - 1) * rate**x * math.exp(-rate * t_x)
        rate_density = rate_norm * rate ** (r - 1) * math.exp(-alpha * rate)
        dropout_density = dropout_norm * p ** (a - 1) * (1 - p) ** (b - 1)
        return inside * rate_density * dropout_density

    value, _ = integrate.dblquad(integrand, 0, 60, 0, 1, epsabs=1e-13, epsrel=1e-9)
    return float(np.log(value))


@pytest.mark.parametrize(("x", "t_x", "T"), [(0, 0.0, 10.0), (1, 3.0, 8.0), (4, 20.0, 30.0)])
def test_bgnbd_likelihood_equals_the_integral_over_rates_and_dropouts(
    x: int, t_x: float, T: float
) -> None:
    params = BgNbdParams(r=2.0, alpha=5.0, a=2.5, b=3.0)
    closed = bgnbd_log_likelihood(params, np.array([float(x)]), np.array([t_x]), np.array([T]))
    assert closed[0] == pytest.approx(_bgnbd_by_integration(params, x, t_x, T), abs=1e-5)


@pytest.mark.parametrize(("x", "m"), [(1, 30.0), (3, 12.5), (7, 80.0)])
def test_gamma_gamma_likelihood_equals_the_integral_over_nu(x: int, m: float) -> None:
    params = GammaGammaParams(p=3.0, q=4.0, v=40.0)

    def integrand(nu: float) -> float:
        # The mean of x Gamma(p, nu) spends has density x * Gamma(p x, nu) at x m.
        mean_density = x * stats.gamma.pdf(x * m, params.p * x, scale=1 / nu)
        return float(mean_density * stats.gamma.pdf(nu, params.q, scale=1 / params.v))

    value, _ = integrate.quad(integrand, 0, np.inf, epsabs=1e-14, limit=200)
    closed = gamma_gamma_log_likelihood(params, np.array([float(x)]), np.array([m]))
    assert closed[0] == pytest.approx(np.log(value), abs=1e-6)


def test_analytic_gradients_agree_with_finite_differences() -> None:
    rng = np.random.default_rng(5)
    x = rng.integers(0, 6, 50).astype(float)
    T = rng.uniform(10, 40, 50)
    t_x = np.where(x > 0, T * rng.uniform(0.1, 1, 50), 0.0)
    m = rng.uniform(5, 50, 50)

    def bg_value(theta: np.ndarray) -> float:
        return float(_bgnbd_terms(theta, x, t_x, T)[0].sum())

    def bg_grad(theta: np.ndarray) -> np.ndarray:
        return _bgnbd_terms(theta, x, t_x, T)[1].sum(axis=0)

    theta = np.array([0.7, 3.0, 1.2, 2.5])
    assert check_grad(bg_value, bg_grad, theta) < 1e-4 * np.linalg.norm(bg_grad(theta))
    repeat = x > 0

    def gg_value(theta: np.ndarray) -> float:
        return float(_gamma_gamma_terms(theta, x[repeat], m[repeat])[0].sum())

    def gg_grad(theta: np.ndarray) -> np.ndarray:
        return _gamma_gamma_terms(theta, x[repeat], m[repeat])[1].sum(axis=0)

    theta = np.array([4.0, 3.0, 20.0])
    assert check_grad(gg_value, gg_grad, theta) < 1e-4 * np.linalg.norm(gg_grad(theta))


def test_fits_recover_the_parameters_members_were_simulated_with() -> None:
    rng = np.random.default_rng(2005)
    size = 40_000
    T = rng.integers(27 * 7, 39 * 7 + 1, size) / 7.0
    x, t_x, _ = simulate_bgnbd(CDNOW, T=T, rng=rng)
    fitted = fit_bgnbd(x=x, t_x=t_x, T=T)
    # Sampling error at 40,000 members is a few per cent for r and alpha, more for a and b.
    assert fitted.r == pytest.approx(CDNOW.r, rel=0.08)
    assert fitted.alpha == pytest.approx(CDNOW.alpha, rel=0.10)
    assert fitted.a == pytest.approx(CDNOW.a, rel=0.20)
    assert fitted.b == pytest.approx(CDNOW.b, rel=0.25)
    truth = bgnbd_log_likelihood(CDNOW, x, t_x, T).sum()
    assert fitted.log_likelihood >= truth  # the maximum is at least the truth's likelihood

    spend = GammaGammaParams(p=6.25, q=3.74, v=15.44)
    means = simulate_gamma_gamma(spend, x=x, rng=rng)
    fitted_spend = fit_gamma_gamma(x=x, m=np.nan_to_num(means))
    assert fitted_spend.p == pytest.approx(spend.p, rel=0.10)
    assert fitted_spend.q == pytest.approx(spend.q, rel=0.15)
    assert fitted_spend.v == pytest.approx(spend.v, rel=0.20)


def test_predictions_match_what_simulated_members_do_next() -> None:
    rng = np.random.default_rng(11)
    size = 60_000
    T = rng.integers(20 * 7, 40 * 7 + 1, size) / 7.0
    x, t_x, later = simulate_bgnbd(CDNOW, T=T, rng=rng, holdout_weeks=26.0)
    predicted = expected_purchases(CDNOW, 26.0, x, t_x, T)
    assert predicted.mean() == pytest.approx(later.mean(), rel=0.05)
    for count in (0, 1, 3):
        group = x == count
        assert predicted[group].mean() == pytest.approx(later[group].mean(), rel=0.12)
    alive = p_alive(CDNOW, x, t_x, T)
    assert np.all(alive[x == 0] == 1.0)
    assert np.all((alive >= 0) & (alive <= 1))


def test_heavy_buyers_get_finite_predictions() -> None:
    heavy = np.array([60.0, 300.0, 2000.0])
    values = expected_purchases(CDNOW, 13.0, heavy, np.array([38.0] * 3), np.array([39.0] * 3))
    assert np.all(np.isfinite(values)) and np.all(values >= 0)
    assert values[0] > 5  # a member who bought 60 times and lately keeps buying


def test_expected_spend_shrinks_a_member_towards_the_population_mean() -> None:
    params = GammaGammaParams(p=6.0, q=4.0, v=15.0)
    population = params.p * params.v / (params.q - 1)
    spend = expected_spend(params, np.array([0.0, 1.0, 50.0]), np.array([0.0, 100.0, 100.0]))
    assert spend[0] == pytest.approx(population)
    assert population < spend[1] < spend[2] < 100.0


def test_calibration_summary_counts_purchase_days_up_to_the_calibration_end() -> None:
    shanghai_evening = datetime(2025, 1, 1, 15, 30, tzinfo=UTC)  # 23:30 on 1 January there
    orders = pl.DataFrame(
        {
            "member_id": [1, 1, 1, 1, 2],
            "ordered_at": [
                shanghai_evening,
                datetime(2025, 1, 1, 16, 30, tzinfo=UTC),  # 00:30 on 2 January there
                datetime(2025, 1, 2, 3, 0, tzinfo=UTC),  # same day as the one before
                datetime(2025, 2, 1, 3, 0, tzinfo=UTC),  # after the calibration end
                datetime(2025, 2, 1, 3, 0, tzinfo=UTC),
            ],
            "amount_cents": [1000, 500, 700, 9000, 100],
        }
    )
    summary = calibration_summary(
        orders, calibration_end=date(2025, 1, 15), timezone="Asia/Shanghai"
    )
    assert summary["member_id"].to_list() == [1]  # member 2 first bought after the end
    row = summary.row(0, named=True)
    assert row["x"] == 1
    assert row["t_x"] == pytest.approx(1 / 7)
    assert row["T"] == pytest.approx(14 / 7)
    assert row["m"] == 1200  # the two orders of 2 January make one 12-yuan purchase day
