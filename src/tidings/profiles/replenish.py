"""When each member will run out of the consumables they buy.

A product is a consumable when it has a pack size in days, or when the data shows a repeat
cadence: the median gap in days between successive purchase days of the same sku, over
members who bought it on at least `min_purchases` days. A member runs out of a consumable
`quantity x pack_size_days` after their last purchase day of it (quantity bought that day),
or one cadence after it. Run-outs more than `forget_after_days` before the as-of day are
dropped: the member has plainly moved on, and reminding them would be noise.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

DAYS_PER_SKU_CODE = 1 << 20  # room for any day within 2,800 years of 1970
RUN_OUT = pl.Struct({"sku": pl.String, "category": pl.String, "run_out_on": pl.Date})


def purchase_days(lines: pl.DataFrame) -> pl.DataFrame:
    """Each member's purchase days of each sku, sorted, with `run` numbering (member, sku).

    `sku` must be categorical. Lines are sorted once on one integer that packs the member,
    the sku's code and the day (or, when they do not fit in 63 bits, on the member and one
    integer packing the sku's code above the day), so that each (member, sku, day) is one
    stretch and the grouping only walks the stretches; skus come in code order, days in
    date order within a sku.
    """
    changed = (pl.col("member_id") != pl.col("member_id").shift()) | (
        pl.col("sku") != pl.col("sku").shift()
    )
    bought = lines.lazy().filter(pl.col("sku").is_not_null())
    packed = _packed_key(lines)
    if packed is None:
        sku_day = pl.col("sku").to_physical().cast(pl.Int64) * DAYS_PER_SKU_CODE + _epoch_days()
        keys, firsts = ["member_id", "sku_day"], ["sku", "day"]
        ordered = bought.select("member_id", "sku", "day", "quantity", "category", sku_day=sku_day)
    else:
        keys, firsts = ["key"], ["member_id", "sku", "day"]
        ordered = bought.select("member_id", "sku", "day", "quantity", "category", key=packed)
    return (
        ordered.sort(keys)
        .group_by(keys, maintain_order=True)
        .agg(pl.col(firsts).first(), pl.col("quantity").sum(), pl.col("category").first())
        .select("member_id", "sku", "day", "quantity", "category")
        .with_columns(run=changed.fill_null(True).cum_sum())
        .collect()
    )


def _epoch_days() -> pl.Expr:
    return (pl.col("day") - pl.date(1970, 1, 1)).dt.total_days()


def _packed_key(lines: pl.DataFrame) -> pl.Expr | None:
    """(member, sku code, day) as one non-negative integer ordered as the three, or None
    when their spans need more than 63 bits together."""
    spans = lines.select(
        member_low=pl.col("member_id").min(),
        member_span=pl.col("member_id").max() - pl.col("member_id").min(),
        sku_span=pl.col("sku").to_physical().max().cast(pl.Int64),
        day_low=_epoch_days().min(),
        day_span=_epoch_days().max() - _epoch_days().min(),
    ).row(0, named=True)
    if any(spans[name] is None for name in ("member_span", "sku_span", "day_span")):
        return None
    sku_bits = int(spans["sku_span"]).bit_length()
    day_bits = int(spans["day_span"]).bit_length()
    if int(spans["member_span"]).bit_length() + sku_bits + day_bits > 63:
        return None
    member = (pl.col("member_id") - spans["member_low"]).cast(pl.Int64)
    sku = pl.col("sku").to_physical().cast(pl.Int64)
    day = (_epoch_days() - spans["day_low"]).cast(pl.Int64)
    return member * (1 << (sku_bits + day_bits)) + sku * (1 << day_bits) + day


def learned_cadences(days: pl.DataFrame, *, min_purchases: int) -> pl.DataFrame:
    """Per sku: `cadence_days`, the median gap between a repeat buyer's purchase days.

    `days` comes from `purchase_days` (sorted, with `run`).
    """
    same_run = pl.col("run") == pl.col("run").shift()
    # Runs are numbered 1, 2, ... in row order, so a run's length is its entry of the run
    # lengths: a window over nine million rows by `run` took fifteen times the CPU.
    runs = days["run"]
    purchases = runs.rle().struct.field("len").gather(runs - 1)
    return (
        days.with_columns(purchases=purchases)
        .lazy()
        .with_columns(
            gap=pl.when(same_run).then((pl.col("day") - pl.col("day").shift()).dt.total_days())
        )
        .filter(pl.col("purchases") >= min_purchases)
        .filter(pl.col("gap").is_not_null())
        .group_by("sku")
        .agg(pl.col("gap").median().round(0).cast(pl.Int64).alias("cadence_days"))
        .collect()
    )


def replenishment(
    lines: pl.DataFrame,
    products: pl.DataFrame,
    *,
    as_of: date,
    min_purchases: int,
    forget_after_days: int,
    max_items: int,
) -> pl.DataFrame:
    """Per member: `replenishment` [{sku, category, run_out_on}] soonest first, `next_run_out_on`.

    `lines` has `member_id, sku, category, quantity, day` (local purchase day, up to as-of);
    `products` has `sku, pack_size_days`.
    """
    days = purchase_days(lines)
    cadences = learned_cadences(days, min_purchases=min_purchases)
    packs = products.filter(pl.col("pack_size_days") > 0).select(
        pl.col("sku").cast(days.schema["sku"]), "pack_size_days"
    )
    # The consumables, with a pack size or a cadence or both: one join of the last purchases
    # with them drops the rest at once (two left joins cost twice the CPU for ten million).
    consumables = packs.join(cadences, on="sku", how="full", coalesce=True)
    last_of_run = (pl.col("run") != pl.col("run").shift(-1)).fill_null(True)
    latest = (
        days.lazy()
        .filter(last_of_run)
        .select("member_id", "sku", "category", "quantity", last_day="day")
        .join(consumables.lazy(), on="sku", how="inner", maintain_order="left")
        .with_columns(
            lasts=pl.coalesce(
                pl.col("quantity").clip(1, None) * pl.col("pack_size_days"), pl.col("cadence_days")
            )
        )
        .filter(pl.col("lasts").is_not_null())
        .with_columns(run_out_on=pl.col("last_day") + pl.duration(days=pl.col("lasts")))
        .filter(pl.col("run_out_on") >= as_of - timedelta(days=forget_after_days))
        .sort(["member_id", "run_out_on", "sku"])
        .group_by("member_id", maintain_order=True)
        .head(max_items)
    )
    return (
        latest.with_columns(pl.col("sku", "category").cast(pl.String))
        .group_by("member_id", maintain_order=True)
        .agg(
            pl.struct("sku", "category", "run_out_on").alias("replenishment"),
            pl.col("run_out_on").first().alias("next_run_out_on"),
        )
        .collect()
    )
