"""The demo chain's members: who they are (names, phones, birthdays) and how they shop.

Shopping behaviour follows a BG/NBD-like story: each member buys at a gamma-distributed
rate while active and, after each purchase, stops for good with a beta-distributed
probability. Each member also keeps a favourite time of day and a few favourite categories.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from tidings.demo.catalogue import (
    CATEGORIES,
    FEMALE_NAME_CHARACTERS,
    HABIT_HOURS,
    MALE_NAME_CHARACTERS,
    MOBILE_PREFIXES,
    STORE_TYPES,
    SURNAMES,
)
from tidings.demo.chain import Stores

RATE_SHAPE = 0.8  # gamma shape of the purchase rate: below 1, a few heavy buyers
MEAN_DAYS_BETWEEN_PURCHASES = 14.0  # days, for the average active member
MAX_RATE = 1.0  # purchases per day
DROPOUT_A, DROPOUT_B = 0.6, 10.0  # beta parameters of the chance to stop after a purchase
REGISTERED_BEFORE_SHARE = 0.55  # members who joined before the generated period
EARLIEST_REGISTRATION = 3 * 365  # days before the period starts
HABIT_SPREAD = 0.5  # hours between members of one habit
FEMALE_SHARE = 0.56
CONSENT_SHARE = 0.86
FAVOURITES = 3  # categories a member prefers
LUNAR_SHARE_YOUNG, LUNAR_SHARE_OLD = 0.02, 0.08  # of birthdays kept in the lunar calendar
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class Shoppers:
    """How each member shops; arrays are indexed by member number."""

    home_store: np.ndarray
    registered_day: np.ndarray  # days after the period starts (negative: before it)
    registered_second: np.ndarray  # seconds after local midnight
    rate: np.ndarray  # purchases per day while active
    dropout: np.ndarray  # chance to stop for good after each purchase
    habit_hour: np.ndarray  # favourite hour of the day to shop
    opens_hour: np.ndarray  # opening hour of the home store
    closes_hour: np.ndarray
    favourites: np.ndarray  # (members, FAVOURITES) category numbers, most liked first
    female: np.ndarray


def draw_shoppers(
    *, rng: np.random.Generator, count: int, stores: Stores, period_days: int
) -> Shoppers:
    """Draws home stores, registration times, rates, dropouts, habits and favourites."""
    home = rng.choice(len(stores.weight), size=count, p=stores.weight)
    store_type = stores.type[home]
    opens = np.array([kind.opens_hour for kind in STORE_TYPES])[store_type]
    closes = np.array([kind.closes_hour for kind in STORE_TYPES])[store_type]
    mix = np.array([kind.habit_mix for kind in STORE_TYPES])[store_type]
    habit = (rng.random(count)[:, None] > np.cumsum(mix, axis=1)).sum(axis=1)
    habit_hour = np.array(HABIT_HOURS)[np.minimum(habit, len(HABIT_HOURS) - 1)]
    habit_hour = np.clip(habit_hour + rng.normal(0, HABIT_SPREAD, count), opens, closes - 0.5)
    before = rng.random(count) < REGISTERED_BEFORE_SHARE
    registered = np.where(
        before,
        -rng.uniform(0, EARLIEST_REGISTRATION, count),
        rng.uniform(0, period_days, count),
    )
    female = rng.random(count) < FEMALE_SHARE
    rate = rng.gamma(RATE_SHAPE, 1 / (RATE_SHAPE * MEAN_DAYS_BETWEEN_PURCHASES), count)
    return Shoppers(
        home_store=home,
        registered_day=np.floor(registered),
        registered_second=shopping_seconds(
            rng=rng, habit_hour=habit_hour, opens_hour=opens, closes_hour=closes
        ),
        rate=np.minimum(rate, MAX_RATE),
        dropout=rng.beta(DROPOUT_A, DROPOUT_B, count),
        habit_hour=habit_hour,
        opens_hour=opens,
        closes_hour=closes,
        favourites=_favourite_categories(rng=rng, female=female),
        female=female,
    )


def _favourite_categories(*, rng: np.random.Generator, female: np.ndarray) -> np.ndarray:
    """Draws each member's favourite categories without replacement (the Gumbel top-k trick)."""
    names = [category.name for category in CATEGORIES]
    popularity = np.log([category.popularity for category in CATEGORIES])
    tilt = np.zeros((2, len(names)))
    tilt[1, names.index("美妆")], tilt[0, names.index("美妆")] = np.log(2.5), np.log(0.2)
    tilt[1, names.index("母婴")] = np.log(1.6)
    tilt[0, names.index("数码")], tilt[0, names.index("酒水")] = np.log(2.5), np.log(1.8)
    keys = popularity + tilt[female.astype(int)] + rng.gumbel(size=(female.size, len(names)))
    return np.argsort(-keys, axis=1)[:, :FAVOURITES]


def shopping_seconds(
    *,
    rng: np.random.Generator,
    habit_hour: np.ndarray,
    opens_hour: np.ndarray,
    closes_hour: np.ndarray,
    spread_hours: float = 0.7,
    off_habit_share: float = 0.1,
) -> np.ndarray:
    """Draws a time of day near each habit hour (sometimes any time), inside shop hours."""
    hour = habit_hour + rng.normal(0, spread_hours, habit_hour.size)
    anytime = rng.uniform(opens_hour, closes_hour)
    closed = (hour < opens_hour) | (hour >= closes_hour)
    hour = np.where(closed | (rng.random(habit_hour.size) < off_habit_share), anytime, hour)
    return (hour * 3600).astype(np.int64)


def identities(
    *, rng: np.random.Generator, shoppers: Shoppers, end: date, period_start: date
) -> pl.DataFrame:
    """Draws codes, mobile numbers, names, birthdays and consent of every member."""
    count = shoppers.female.size
    registered = (
        local_epoch(period_start)
        + shoppers.registered_day.astype(np.int64) * SECONDS_PER_DAY
        + shoppers.registered_second
    )
    return pl.DataFrame(
        {
            "member_code": pl.Series(np.arange(1, count + 1)).cast(pl.String).str.zfill(8),
            "phone": mobile_numbers(rng=rng, count=count),
            "name": _names(rng=rng, female=shoppers.female),
            "gender": np.where(shoppers.female, "女", "男"),
            "birthday": _birthdays(rng=rng, count=count, end=end),
            "registered_at": pl.from_epoch(pl.Series(registered), time_unit="s").dt.strftime(
                "%Y-%m-%d %H:%M:%S"
            ),
            "consent": np.where(rng.random(count) < CONSENT_SHARE, "是", "否"),
        }
    ).with_columns(member_code="M" + pl.col("member_code"))


def local_epoch(day: date) -> int:
    """Seconds from 1970-01-01 to local midnight of `day`, counting local time as if UTC."""
    return (day - date(1970, 1, 1)).days * SECONDS_PER_DAY


def mobile_numbers(*, rng: np.random.Generator, count: int) -> np.ndarray:
    """Draws distinct mainland mobile numbers (11 digits) with the carriers' real prefixes."""
    prefixes = np.array([int(prefix) for prefix, _ in MOBILE_PREFIXES], dtype=np.int64)
    weights = np.array([weight for _, weight in MOBILE_PREFIXES])
    numbers = np.empty(0, dtype=np.int64)
    while numbers.size < count:
        # Draws the missing numbers again until all are distinct; collisions are rare.
        missing = count - numbers.size
        drawn = rng.choice(prefixes, size=missing, p=weights / weights.sum()) * 100_000_000
        drawn += rng.integers(0, 100_000_000, size=missing)
        numbers = np.concatenate([numbers, drawn])
        _, first = np.unique(numbers, return_index=True)
        numbers = numbers[np.sort(first)]
    return numbers.astype(str)


def _names(*, rng: np.random.Generator, female: np.ndarray) -> pl.Series:
    """Draws a surname and a one- or two-character given name fitting the gender."""
    count = female.size
    weights = np.array([weight for _, weight in SURNAMES])
    surname = pl.Series([name for name, _ in SURNAMES]).gather(
        rng.choice(len(SURNAMES), size=count, p=weights / weights.sum())
    )
    pools = (np.array(list(MALE_NAME_CHARACTERS)), np.array(list(FEMALE_NAME_CHARACTERS)))
    first = np.where(female, pools[1][rng.integers(0, pools[1].size, count)], "")
    first = np.where(female, first, pools[0][rng.integers(0, pools[0].size, count)])
    second = np.where(female, pools[1][rng.integers(0, pools[1].size, count)], "")
    second = np.where(female, second, pools[0][rng.integers(0, pools[0].size, count)])
    second = np.where(rng.random(count) < 0.25, "", second)
    return surname + pl.Series(first) + pl.Series(second)


def _birthdays(*, rng: np.random.Generator, count: int, end: date) -> pl.Series:
    """Draws adult birthdays; a few, mostly of older members, kept in the lunar calendar."""
    age_days = (np.clip(rng.normal(36, 11, count), 18, 75) * 365.25).astype(np.int64)
    solar = pl.Series(np.datetime64(end, "D") - age_days.astype("timedelta64[D]"))
    old = age_days > 50 * 365
    lunar = rng.random(count) < np.where(old, LUNAR_SHARE_OLD, LUNAR_SHARE_YOUNG)
    # Lunar birthdays keep to days 1-28 of months 1-12: every lunar year has those.
    frame = pl.DataFrame(
        {
            "solar": solar,
            "lunar": lunar,
            "month": rng.integers(1, 13, count),
            "day": rng.integers(1, 29, count),
        }
    )
    lunar_text = pl.format(
        "农历{}-{}-{}",
        pl.col("solar").dt.year(),
        pl.col("month").cast(pl.String).str.zfill(2),
        pl.col("day").cast(pl.String).str.zfill(2),
    )
    solar_text = pl.col("solar").dt.strftime("%Y-%m-%d")
    return frame.select(pl.when("lunar").then(lunar_text).otherwise(solar_text)).to_series()
