"""The best local hour to text each member, inside the brand's send window.

A member's hour counts (the local hours of their orders, in their own timezone) are blended
with a prior, Dirichlet-style: posterior(h) = n(h) + K_member * prior(h), and the best hour
is the allowed hour with the largest posterior (the earliest one on a tie). The prior is the
member's store's hour pattern, itself shrunk towards the whole base's pattern:
prior_store(h) = (n_store(h) + K_store * base(h)) / (n_store + K_store). With the defaults
K_member = 4 orders and K_store = 50 orders, a member with one order mostly follows their
store; a member with twenty orders mostly follows themselves. The store is the member's main
store (most orders), else their home store; a member with neither follows the base.

Orders outside the send window count at the nearest allowed hour (on the clock face, the
earlier one on a tie): a member who shops at nine at night is best reached at the end of an
08:00-20:00 window, not at whatever hour the store's crowd prefers.
"""

from __future__ import annotations

import numpy as np
import polars as pl

HOURS = 24


class SendWindowError(ValueError):
    """The brand's send window is not written as HH:MM-HH:MM."""


def allowed_hours(send_window: str) -> list[int]:
    """The whole hours h with start <= h:00 < end ("08:00-20:00" gives 8..19), in window order."""
    try:
        start_text, end_text = send_window.split("-")
        start = _minutes(start_text)
        end = _minutes(end_text)
    except ValueError as error:
        raise SendWindowError(
            f"send window {send_window!r} must look like 08:00-20:00 (HH:MM-HH:MM)"
        ) from error
    span = (end - start) % (HOURS * 60) or HOURS * 60
    first = -(-start // 60)  # the first whole hour at or after the start
    hours = [(first + k) % HOURS for k in range(HOURS) if (first + k) * 60 < start + span]
    if not hours:
        raise SendWindowError(f"send window {send_window!r} holds no whole hour to send at")
    return hours


def nearest_allowed(window: list[int]) -> np.ndarray:
    """For each hour 0..23, the allowed hour nearest to it on the clock face."""
    hours = np.arange(HOURS)[:, None]
    allowed = np.asarray(sorted(window))[None, :]
    gap = np.abs(hours - allowed)
    distance = np.minimum(gap, HOURS - gap)
    return allowed[0, np.argmin(distance, axis=1)]


def _minutes(text: str) -> int:
    hours, minutes = text.strip().split(":")
    value = int(hours) * 60 + int(minutes)
    if not (0 <= int(hours) <= 24 and 0 <= int(minutes) < 60 and value <= HOURS * 60):
        raise ValueError(text)
    return value


def local_hours(orders: pl.DataFrame, *, timezones: pl.DataFrame, default: str) -> pl.DataFrame:
    """Adds each order's `hour` in its member's timezone (`timezones`: member_id, timezone).

    The rows may come in another order. Orders of members in the `default` timezone (most
    members: theirs is not set) are converted together, without a join.
    """
    own = timezones.filter(pl.col("timezone").is_not_null() & (pl.col("timezone") != default))
    in_default = orders.join(own, on="member_id", how="anti") if own.height else orders
    parts = [in_default.with_columns(timezone=pl.lit(default), hour=_hour(default))]
    if own.height:
        zoned = orders.join(own, on="member_id", how="inner")
        parts += [
            part.with_columns(hour=_hour(str(zone)))
            for (zone,), part in zoned.partition_by("timezone", as_dict=True).items()
        ]
    return pl.concat(parts)


def _hour(zone: str) -> pl.Expr:
    return pl.col("ordered_at").dt.convert_time_zone(zone).dt.hour().cast(pl.Int64)


def best_hours(
    *,
    members: pl.DataFrame,
    orders: pl.DataFrame,
    send_window: str,
    member_pseudo_orders: float,
    store_pseudo_orders: float,
    fallback_hour: int,
) -> pl.Series:
    """Each member's best hour, in the order of `members` (member_id, store_id).

    `orders` has `member_id, store_id, hour`; `members.store_id` is the store whose pattern
    the member leans on.
    """
    window = allowed_hours(send_window)
    if orders.height == 0:
        hour = fallback_hour if fallback_hour in window else window[0]
        return pl.Series("best_hour", [hour] * members.height, dtype=pl.Int64)
    orders = orders.with_columns(
        hour=pl.Series(nearest_allowed(window)[orders["hour"].to_numpy()], dtype=pl.Int64)
    )
    index = members.select("member_id").with_row_index("row")
    rows = orders.join(index, on="member_id", how="inner")
    member_counts = _counts(rows["row"].to_numpy(), rows["hour"].to_numpy(), members.height)
    stores = pl.concat([orders["store_id"], members["store_id"]]).drop_nulls().unique().sort()
    store_index = pl.DataFrame({"store_id": stores}).with_row_index("store_row")
    in_store = orders.join(store_index, on="store_id", how="inner")
    store_counts = _counts(
        in_store["store_row"].to_numpy(), in_store["hour"].to_numpy(), stores.len()
    )
    base = np.bincount(orders["hour"].to_numpy(), minlength=HOURS).astype(np.float64) + 1.0
    base /= base.sum()
    store_prior = (store_counts + store_pseudo_orders * base) / (
        store_counts.sum(axis=1, keepdims=True) + store_pseudo_orders
    )
    # Members without a store lean on the base: one extra prior row, the last.
    prior = np.vstack([store_prior, base])
    leaning = (
        members.select("store_id")
        .join(store_index, on="store_id", how="left", maintain_order="left")["store_row"]
        .fill_null(stores.len())
        .to_numpy()
    )
    posterior = member_counts[:, window] + member_pseudo_orders * prior[:, window][leaning]
    best = np.asarray(window)[np.argmax(posterior, axis=1)]
    return pl.Series("best_hour", best, dtype=pl.Int64)


def _counts(rows: np.ndarray, hours: np.ndarray, size: int) -> np.ndarray:
    flat = np.bincount(rows.astype(np.int64) * HOURS + hours, minlength=size * HOURS)
    return flat.reshape(size, HOURS).astype(np.float32)
