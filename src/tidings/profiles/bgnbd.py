"""BG/NBD and Gamma-Gamma purchase models: maximum-likelihood fits and per-member predictions.

The definitions follow Fader, Hardie & Lee, "Counting your customers the easy way" (2005)
for BG/NBD and Fader, Hardie & Lee, "RFM and CLV" (2005) for Gamma-Gamma, so fitted
parameters compare with the literature:

- a transaction is a purchase *day*; the first purchase day starts the member's clock;
- `x` counts repeat purchase days up to and including the calibration end, `t_x` is weeks
  from the first to the last of them, `T` weeks from the first to the calibration end;
- Gamma-Gamma takes members with `x > 0` and `m`, the mean spend of their repeat days.

Both likelihoods are summed over distinct inputs with counts and maximised in
log-parameter space with L-BFGS-B using their analytic gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

LOG_BOUNDS = (np.log(1e-6), np.log(1e9))  # every parameter stays in [1e-6, 1e9]
DAYS_PER_WEEK = 7.0
MIN_FIT_MEMBERS = 1  # a likelihood needs at least one member to say anything


class ModelFitError(ValueError):
    """The data cannot support a fit (no members, or no repeat purchases)."""


@dataclass(frozen=True)
class BgNbdParams:
    """BG/NBD parameters: purchase rate ~ Gamma(r, alpha), drop-out ~ Beta(a, b); time in weeks."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float = float("nan")


@dataclass(frozen=True)
class GammaGammaParams:
    """Gamma-Gamma parameters: spend per day ~ Gamma(p, nu), nu ~ Gamma(q, v)."""

    p: float
    q: float
    v: float
    log_likelihood: float = float("nan")


def _compress(columns: dict[str, np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """Distinct rows of the given columns with how often each occurs, in sorted order: the
    likelihood is summed over them, and in the grouping's own order (which varies from run
    to run) refits of the same data differed in the ninth digit."""
    grouped = pl.DataFrame(columns).group_by(list(columns)).len().sort(list(columns))
    values = [grouped[name].to_numpy().astype(np.float64) for name in columns]
    return values, grouped["len"].to_numpy().astype(np.float64)


def bgnbd_log_likelihood(
    params: BgNbdParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """Each member's log-likelihood under BG/NBD (equation 6 of Fader, Hardie & Lee 2005)."""
    value, _ = _bgnbd_terms(np.array([params.r, params.alpha, params.a, params.b]), x, t_x, T)
    return value


def _bgnbd_terms(
    theta: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Log-likelihood per row and its gradient (rows x 4) with respect to r, alpha, a, b."""
    r, alpha, a, b = theta
    repeat = x > 0
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + T)
    b_term = np.where(repeat, b + x - 1, 1.0)
    a4 = np.where(repeat, np.log(a) - np.log(b_term) - (r + x) * np.log(alpha + t_x), -np.inf)
    top = np.maximum(a3, a4)
    total = top + np.log(np.exp(a3 - top) + np.exp(a4 - top))
    w3, w4 = np.exp(a3 - total), np.exp(a4 - total)
    grad = np.empty((x.size, 4))
    grad[:, 0] = (
        digamma(r + x)
        - digamma(r)
        + np.log(alpha)
        - w3 * np.log(alpha + T)
        - w4 * np.log(alpha + t_x)
    )
    grad[:, 1] = r / alpha - (r + x) * (w3 / (alpha + T) + w4 / (alpha + t_x))
    grad[:, 2] = digamma(a + b) - digamma(a + b + x) + w4 / a
    grad[:, 3] = digamma(a + b) + digamma(b + x) - digamma(b) - digamma(a + b + x) - w4 / b_term
    return a1 + a2 + total, grad


def fit_bgnbd(*, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> BgNbdParams:
    """Fits BG/NBD by maximum likelihood to repeat counts and recency/age in weeks."""
    if x.size < MIN_FIT_MEMBERS:
        raise ModelFitError("no member has a purchase on or before the calibration end")
    (cx, ctx, cT), counts = _compress({"x": x, "t_x": t_x, "T": T})
    scale = counts.sum()

    def objective(log_theta: np.ndarray) -> tuple[float, np.ndarray]:
        theta = np.exp(log_theta)
        value, grad = _bgnbd_terms(theta, cx, ctx, cT)
        return -float(counts @ value) / scale, -(counts @ grad) * theta / scale

    start = np.log([1.0, max(float(np.mean(T)), 1.0), 1.0, 1.0])
    result = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=[LOG_BOUNDS] * 4)
    r, alpha, a, b = np.exp(result.x)
    return BgNbdParams(
        r=float(r),
        alpha=float(alpha),
        a=float(a),
        b=float(b),
        log_likelihood=float(-result.fun * scale),
    )


def _gamma_gamma_terms(
    theta: np.ndarray, x: np.ndarray, m: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gamma-Gamma log-likelihood of each (x, m) and its gradient with respect to p, q, v."""
    p, q, v = theta
    px = p * x
    log_total = np.log(v + m * x)
    value = (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(v)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * log_total
    )
    grad = np.empty((x.size, 3))
    grad[:, 0] = x * (digamma(px + q) - digamma(px) + np.log(m) + np.log(x) - log_total)
    grad[:, 1] = digamma(px + q) - digamma(q) + np.log(v) - log_total
    grad[:, 2] = q / v - (px + q) / (v + m * x)
    return value, grad


def gamma_gamma_log_likelihood(
    params: GammaGammaParams, x: np.ndarray, m: np.ndarray
) -> np.ndarray:
    """Each member's log-likelihood of their mean repeat spend `m` over `x` repeat days."""
    value, _ = _gamma_gamma_terms(np.array([params.p, params.q, params.v]), x, m)
    return value


def fit_gamma_gamma(*, x: np.ndarray, m: np.ndarray) -> GammaGammaParams:
    """Fits Gamma-Gamma to members with repeat days (`x > 0`) and their mean spend `m > 0`."""
    keep = (x > 0) & (m > 0)
    if not keep.any():
        raise ModelFitError("no member has a repeat purchase with spend; Gamma-Gamma needs some")
    (cx, cm), counts = _compress({"x": x[keep], "m": m[keep]})
    scale = counts.sum()

    def objective(log_theta: np.ndarray) -> tuple[float, np.ndarray]:
        theta = np.exp(log_theta)
        value, grad = _gamma_gamma_terms(theta, cx, cm)
        return -float(counts @ value) / scale, -(counts @ grad) * theta / scale

    start = np.log([1.0, 2.0, float(np.median(m[keep]))])
    result = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=[LOG_BOUNDS] * 3)
    p, q, v = np.exp(result.x)
    return GammaGammaParams(
        p=float(p), q=float(q), v=float(v), log_likelihood=float(-result.fun * scale)
    )


def p_alive(params: BgNbdParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Probability each member is still active at T (equation 13); 1 for members with x = 0."""
    log_ratio = _log_dropout_odds(params, x, t_x, T)
    return expit(-log_ratio)


def _log_dropout_odds(
    params: BgNbdParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    repeat = x > 0
    b_term = np.where(repeat, b + x - 1, 1.0)
    odds = np.log(a) - np.log(b_term) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    return np.where(repeat, odds, -np.inf)


def expected_purchases(
    params: BgNbdParams, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """Expected purchase days in the next `t` weeks given each history (equation 10).

    The factor ((alpha+T)/(alpha+T+t))^(r+x) * 2F1(r+x, b+x; a+b+x-1; z) is computed in its
    Euler-transformed form (1-z)^(a-1) * 2F1(a+b-1-r, a-1; a+b+x-1; z), whose upper
    parameters do not grow with x, so scipy's hyp2f1 stays in range for heavy buyers; the
    direct form is used where the transformed one is not finite.
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    z = t / (alpha + T + t)
    c = a + b + x - 1
    with np.errstate(all="ignore"):
        euler = (1 - z) ** (a - 1) * hyp2f1(a + b - 1 - r, a - 1, c, z)
        direct = (1 - z) ** (r + x) * hyp2f1(r + x, b + x, c, z)
        factor = np.where(np.isfinite(euler), euler, direct)
        numerator = (c / (a - 1)) * (1 - factor)
        denominator = 1 + np.exp(_log_dropout_odds(params, x, t_x, T))
        expected = numerator / denominator
    return np.clip(np.nan_to_num(expected, nan=0.0, posinf=0.0), 0.0, None)


def expected_spend(params: GammaGammaParams, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Expected spend per purchase day for each member (conditional mean; population mean if x=0).

    Requires q > 1 (a finite population mean); otherwise the observed mean is returned.
    """
    p, q, v = params.p, params.q, params.v
    if q <= 1:
        return np.where(x > 0, m, np.nan)
    observed = np.where(x > 0, m, 0.0)
    return (p * (v + x * observed)) / (p * x + q - 1)


def calibration_summary(
    orders: pl.DataFrame, *, calibration_end: date, timezone: str
) -> pl.DataFrame:
    """Each member's `x, t_x, T` (weeks) and `m` (cents) from orders up to `calibration_end`.

    `orders` has `member_id, ordered_at (UTC), amount_cents`; days are local days in
    `timezone`, so several orders on one local day make one transaction whose spend is
    their sum. Members with no purchase on or before the calibration end are left out.
    """
    dated = orders.with_columns(day=pl.col("ordered_at").dt.convert_time_zone(timezone).dt.date())
    return purchase_day_summary(dated, calibration_end=calibration_end)


def purchase_day_summary(dated: pl.DataFrame, *, calibration_end: date) -> pl.DataFrame:
    """`calibration_summary` of orders that already carry their local `day`.

    Also gives `days` (purchase days) and `total` (their spend in cents). The orders are
    sorted on one integer packing the member and the day (already sorted by member, as a
    refresh gives them, this costs little), so that both groupings walk sorted runs: hashing
    (member, day) pairs and then members took three times the CPU for 3 million orders.
    """
    kept = dated.filter(pl.col("day") <= calibration_end)
    key = _member_day_key(kept)
    if key is None:
        ordered = (
            kept.lazy().with_columns(key=pl.struct("member_id", "day")).sort("member_id", "day")
        )
    else:
        ordered = kept.lazy().with_columns(key=key).sort("key")
    days = (
        ordered.group_by("key", maintain_order=True)
        .agg(pl.col("member_id", "day").first(), spend=pl.col("amount_cents").sum())
        .set_sorted("member_id")
    )
    per_member = days.group_by("member_id", maintain_order=True).agg(
        first_day=pl.col("day").first(),
        last_day=pl.col("day").last(),
        days=pl.len(),
        total=pl.col("spend").sum(),
        first_spend=pl.col("spend").first(),
    )
    x = pl.col("days") - 1
    return per_member.select(
        "member_id",
        "days",
        "total",
        x.cast(pl.Float64).alias("x"),
        ((pl.col("last_day") - pl.col("first_day")).dt.total_days() / DAYS_PER_WEEK).alias("t_x"),
        ((pl.lit(calibration_end) - pl.col("first_day")).dt.total_days() / DAYS_PER_WEEK).alias(
            "T"
        ),
        pl.when(x > 0).then((pl.col("total") - pl.col("first_spend")) / x).alias("m"),
    ).collect()


def _member_day_key(dated: pl.DataFrame) -> pl.Expr | None:
    """(member, day) as one non-negative integer ordered as the two, or None when their
    spans need more than 63 bits together (or there are no orders)."""
    epoch_day = (pl.col("day") - pl.date(1970, 1, 1)).dt.total_days()
    spans = dated.select(
        member_low=pl.col("member_id").min(),
        member_span=pl.col("member_id").max() - pl.col("member_id").min(),
        day_low=epoch_day.min(),
        day_span=epoch_day.max() - epoch_day.min(),
    ).row(0, named=True)
    if spans["member_span"] is None or spans["day_span"] is None:
        return None
    day_bits = int(spans["day_span"]).bit_length()
    if int(spans["member_span"]).bit_length() + day_bits > 63:
        return None
    member = (pl.col("member_id") - spans["member_low"]).cast(pl.Int64)
    return member * (1 << day_bits) + (epoch_day - spans["day_low"]).cast(pl.Int64)
