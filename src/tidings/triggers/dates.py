"""Which members a date trigger fires for today: Polars over the member and order frames.

Each function takes frames and the brand's local day and returns occasions (`member_id`,
`key`, `desired_at`, `expires_at` and the template's values); it touches no store. A date
trigger fires on any day of its window, so a scheduler that was down for a day catches up,
and its key names the occasion, so it fires once per occasion however often it runs.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import polars as pl
from lunardate import LunarDate

UTC_TIME = pl.Datetime("us", "UTC")
LUNAR_LAST_DAY = 30  # a lunar month has 29 or 30 days; a 30th falls on the 29th when short


def local_midnight(day: date, timezone: str) -> datetime:
    """The UTC time at which `day` begins in `timezone`."""
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(timezone)).astimezone(UTC)


def lunar_to_solar(year: int, month: int, day: int) -> date | None:
    """The solar date of a lunar month and day in a lunar year (a 30th in a short month
    falls on its 29th); None outside the years the lunar calendar covers."""
    for candidate in (day, day - 1) if day == LUNAR_LAST_DAY else (day,):
        try:
            return LunarDate(year, month, candidate).to_solar_date()
        except ValueError:
            continue
    return None


def _lunar_table(pairs: pl.DataFrame, years: range) -> pl.DataFrame:
    """Solar dates of each distinct lunar (month, day) in each lunar year: a few hundred
    conversions however many members share them."""
    rows = [
        (month, day, year, lunar_to_solar(year, month, day))
        for month, day in pairs.iter_rows()
        for year in years
    ]
    return pl.DataFrame(
        rows,
        schema={"_m": pl.Int32, "_d": pl.Int32, "_year": pl.Int32, "_on": pl.Date},
        orient="row",
    )


def _solar_dates(members: pl.DataFrame, years: range) -> pl.DataFrame:
    """One row per member and year: the day a solar birthday falls on (29 Feb on 28 Feb)."""
    solar = members.filter(~pl.col("birthday_is_lunar"))
    month, day = pl.col("birthday").dt.month(), pl.col("birthday").dt.day()
    rows = solar.select("member_id", _m=month, _d=day).join(
        pl.DataFrame({"_year": list(years)}, schema={"_year": pl.Int32}), how="cross"
    )
    last = pl.date(pl.col("_year"), pl.col("_m"), 1).dt.month_end().dt.day()
    on = pl.date(pl.col("_year"), pl.col("_m"), pl.min_horizontal(pl.col("_d"), last))
    return rows.select("member_id", "_year", _on=on)


def birthday_occasions(
    members: pl.DataFrame, *, today: date, days_before: int, timezone: str
) -> pl.DataFrame:
    """Members whose next birthday is 0 to `days_before` days away; once per birthday year.

    `members` has `member_id`, `birthday` and `birthday_is_lunar`. A lunar birthday keeps its
    lunar month and day in `birthday` and falls on this lunar year's solar date.
    """
    known = members.filter(pl.col("birthday").is_not_null()).with_columns(
        pl.col("birthday_is_lunar").fill_null(False)
    )
    years = range(today.year - 1, today.year + 2)
    lunar = known.filter(pl.col("birthday_is_lunar")).select(
        "member_id", _m=pl.col("birthday").dt.month(), _d=pl.col("birthday").dt.day()
    )
    table = _lunar_table(lunar.select("_m", "_d").unique(), years)
    lunar_dates = lunar.join(table, on=["_m", "_d"]).select("member_id", "_year", "_on")
    dates = pl.concat([_solar_dates(known, years), lunar_dates])
    upcoming = (
        dates.filter(pl.col("_on") >= today)
        .sort("member_id", "_on")
        .unique("member_id", keep="first")
        .filter((pl.col("_on") - pl.lit(today)).dt.total_days() <= days_before)
    )
    ends = pl.col("_on").dt.offset_by("1d").cast(pl.Datetime("us"))
    return upcoming.select(
        "member_id",
        key=pl.format("birthday:{}", "_year"),
        expires_at=ends.dt.replace_time_zone(timezone).dt.convert_time_zone("UTC"),
        birthday_on="_on",
    )


def _local_day(column: str, timezone: str) -> pl.Expr:
    return pl.col(column).dt.convert_time_zone(timezone).dt.date()


def _days_since(column: str, *, today: date, timezone: str) -> pl.Expr:
    return (pl.lit(today) - _local_day(column, timezone)).dt.total_days()


def first_order_occasions(
    orders: pl.DataFrame, *, today: date, days_after: int, window_days: int, timezone: str
) -> pl.DataFrame:
    """Members whose first order was `days_after` to `days_after + window_days` days ago.

    `orders` has `member_id` and `first_at` (UTC); the key is the same for ever: once.
    """
    since = _days_since("first_at", today=today, timezone=timezone)
    return orders.filter(since.is_between(days_after, days_after + window_days)).select(
        "member_id", key=pl.lit("first_order")
    )


def winback_occasions(
    orders: pl.DataFrame,
    *,
    today: date,
    days: int,
    second_step_days: int | None,
    window_days: int,
    timezone: str,
) -> pl.DataFrame:
    """Members without an order for `days` (and, if set, `second_step_days`) days.

    `orders` has `member_id` and `last_at` (UTC). The key names the last order's day, so a
    member who comes back and lapses again is won back again.
    """
    since = _days_since("last_at", today=today, timezone=timezone)
    steps = [(1, days)] + ([(2, second_step_days)] if second_step_days else [])
    frames = [
        orders.filter(since.is_between(after, after + window_days)).select(
            "member_id",
            key=pl.format(
                "winback:{}:{}", _local_day("last_at", timezone).dt.strftime("%Y%m%d"), pl.lit(step)
            ),
        )
        for step, after in steps
    ]
    return pl.concat(frames)


def date_field_occasions(
    members: pl.DataFrame,
    *,
    field: str,
    today: date,
    offset_days: int,
    window_days: int,
    timezone: str,
) -> pl.DataFrame:
    """Members whose `field` (a date, or a time read in `timezone`) plus `offset_days` was 0 to
    `window_days` days ago; once per value of the field."""
    column = pl.col(field)
    if isinstance(members.schema[field], pl.Datetime):
        column = column.dt.convert_time_zone(timezone).dt.date()
    since = (pl.lit(today) - column.dt.offset_by(f"{offset_days}d")).dt.total_days()
    return members.filter(since.is_between(0, window_days)).select(
        "member_id", key=pl.format("{}:{}", pl.lit(field), column.dt.strftime("%Y%m%d"))
    )


def expiry_after(now: datetime, minutes: int | None) -> datetime | None:
    """When a message fired at `now` stops making sense, or None for no limit."""
    return None if minutes is None else now + timedelta(minutes=minutes)


def local_day(moment: datetime, timezone: str) -> date:
    """The day `moment` falls on in `timezone`."""
    return moment.astimezone(ZoneInfo(timezone)).date()
