"""The demo chain's purchases: every order line of a block of members, simulated at once.

Three kinds of order make up a member's history: the sign-up purchase of members who join
during the period, ordinary visits (a Poisson process cut short when the member stops for
good, as in BG/NBD), and re-purchases of consumables timed by their pack size. Each order
then gets lines from the member's favourite categories, quantities and discounts, and some
lines bring their companion along (`COMPANIONS`: beer with crisps, nappies with formula).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from tidings.demo.catalogue import REPLENISH_MIN_PACK_DAYS, STORE_TYPES
from tidings.demo.chain import Catalogue, Stores
from tidings.demo.people import SECONDS_PER_DAY, Shoppers, shopping_seconds

MIN_DROPOUT = 1e-6  # chance; numpy's geometric draw needs a positive probability
REPLENISH_SHARE = 0.45  # of favourite categories with consumables, where a member re-buys one
REPLENISH_DOUBLE_SHARE = 0.15  # re-purchases of two packs at once (the next one comes later)
REPLENISH_LATENESS = 1.02  # members re-buy a little after the pack runs out, on average
REPLENISH_JITTER = 0.10  # log-normal spread of the re-purchase gap
HOME_STORE_SHARE = 0.88  # orders placed at the member's home store; others in the same city
PHONE_ON_ORDER_SHARE = 0.70  # order lines that carry the member's phone besides the code
FAVOURITE_LINE_SHARE = 0.75  # lines from the member's favourite categories
FAVOURITE_WEIGHTS = (0.55, 0.30, 0.15)  # most liked favourite first
EXTRA_LINES_MEAN = {"visit": 1.1, "signup": 1.5, "replenish": 0.4}  # lines beyond the first
MAX_LINES = 6  # lines per order
CASUAL_SHARE = 0.8  # of unscheduled lines that fall on a consumable, bought as something else
DISCOUNT_SHARE = 0.18  # lines sold at a discount
DISCOUNT_FACTORS = np.array([0.95, 0.90, 0.85, 0.80, 0.70])  # 95折 ... 7折


@dataclass(frozen=True)
class Visits:
    """Orders before they get lines: whose, when, and a product that must be on them."""

    member: np.ndarray  # member number within the block
    day: np.ndarray  # whole days after the period starts
    second: np.ndarray  # seconds after local midnight
    kind: np.ndarray  # index into EXTRA_LINES_MEAN
    product: np.ndarray  # product on the first line, or -1
    quantity: np.ndarray  # its quantity, or 0


def simulate_lines(
    *,
    rng: np.random.Generator,
    shoppers: Shoppers,
    members: np.ndarray,
    stores: Stores,
    catalogue: Catalogue,
    period_days: int,
) -> pl.DataFrame:
    """Returns the order lines of `members` (member numbers), ordered by time."""
    visits, stop = _visits(rng=rng, shoppers=shoppers, members=members, period_days=period_days)
    signup = _signups(shoppers=shoppers, members=members)
    refills = _refills(
        rng=rng,
        shoppers=shoppers,
        members=members,
        catalogue=catalogue,
        period_days=period_days,
        stop=stop,
    )
    orders = Visits(
        *(
            np.concatenate([getattr(part, name) for part in (visits, signup, refills)])
            for name in Visits.__dataclass_fields__
        )
    )
    return _lines(
        rng=rng,
        orders=orders,
        shoppers=shoppers,
        members=members,
        stores=stores,
        catalogue=catalogue,
    )


def _visits(
    *, rng: np.random.Generator, shoppers: Shoppers, members: np.ndarray, period_days: int
) -> tuple[Visits, np.ndarray]:
    """Ordinary visits, and the day each member stops for good (inf when they never do)."""
    registered = shoppers.registered_day[members]
    rate = shoppers.rate[members]
    begin = np.maximum(registered, 0.0)
    length = period_days - begin
    # Purchases made before the period count towards a member's lifetime too.
    earlier = rng.poisson(rate * np.maximum(-registered, 0.0))
    lifetime = rng.geometric(np.maximum(shoppers.dropout[members], MIN_DROPOUT))
    remaining = lifetime - earlier
    wanted = rng.poisson(rate * length)
    kept = np.where(remaining > 0, np.minimum(wanted, remaining), 0)
    # The first `kept` of `wanted` sorted uniform times, from exponential spacings.
    spacing = rng.exponential(size=int(kept.sum()))
    owner = np.repeat(np.arange(members.size), kept)
    ends = np.cumsum(kept)
    running = np.cumsum(spacing)
    before = np.concatenate([[0.0], running])[ends - kept]
    partial = running - np.repeat(before, kept)
    kept_sum = np.concatenate([[0.0], running])[ends] - before
    total = kept_sum + rng.gamma(wanted - kept + 1.0)
    when = begin[owner] + length[owner] * partial / total[owner]
    stop = np.full(members.size, np.inf)
    stop[remaining <= 0] = -np.inf
    stopped = (remaining > 0) & (remaining <= wanted)
    stop[stopped] = when[ends[stopped] - 1]
    visits = Visits(
        member=owner,
        day=np.floor(when).astype(np.int64),
        second=shopping_seconds(
            rng=rng,
            habit_hour=shoppers.habit_hour[members][owner],
            opens_hour=shoppers.opens_hour[members][owner],
            closes_hour=shoppers.closes_hour[members][owner],
        ),
        kind=np.zeros(owner.size, dtype=np.int64),
        product=np.full(owner.size, -1),
        quantity=np.zeros(owner.size, dtype=np.int64),
    )
    return visits, stop


def _signups(*, shoppers: Shoppers, members: np.ndarray) -> Visits:
    """The purchase at which a member joins, for those who join during the period."""
    owner = np.flatnonzero(shoppers.registered_day[members] >= 0)
    return Visits(
        member=owner,
        day=shoppers.registered_day[members][owner].astype(np.int64),
        second=shoppers.registered_second[members][owner],
        kind=np.ones(owner.size, dtype=np.int64),
        product=np.full(owner.size, -1),
        quantity=np.zeros(owner.size, dtype=np.int64),
    )


def _refills(
    *,
    rng: np.random.Generator,
    shoppers: Shoppers,
    members: np.ndarray,
    catalogue: Catalogue,
    period_days: int,
    stop: np.ndarray,
) -> Visits:
    """Re-purchases of one consumable per chosen favourite category, a pack's life apart."""
    favourites = shoppers.favourites[members]
    stocked = catalogue.category[catalogue.replenishable]
    count = np.bincount(stocked, minlength=catalogue.category_count.size)
    first = np.concatenate([[0], np.cumsum(count)[:-1]])
    chosen = (count[favourites] > 0) & (rng.random(favourites.shape) < REPLENISH_SHARE)
    owner, slot = np.nonzero(chosen)
    category = favourites[owner, slot]
    pick = first[category] + (rng.random(owner.size) * count[category]).astype(np.int64)
    product = catalogue.replenishable[pick]
    pack = catalogue.pack_size_days[product].astype(float)
    steps = int(np.ceil(period_days / catalogue.pack_size_days[catalogue.replenishable].min())) + 1
    quantity = np.where(rng.random((owner.size, steps)) < REPLENISH_DOUBLE_SHARE, 2, 1)
    jitter = rng.lognormal(np.log(REPLENISH_LATENESS), REPLENISH_JITTER, (owner.size, steps))
    gaps = pack[:, None] * quantity * jitter
    begin = np.maximum(shoppers.registered_day[members][owner], 0.0)
    start = begin + rng.random(owner.size) * pack
    when = start[:, None] + np.concatenate(
        [np.zeros((owner.size, 1)), np.cumsum(gaps[:, :-1], axis=1)], axis=1
    )
    valid = when < np.minimum(period_days, stop[owner])[:, None]
    row, _ = np.nonzero(valid)
    buyer = owner[row]
    return Visits(
        member=buyer,
        day=np.floor(when[valid]).astype(np.int64),
        second=shopping_seconds(
            rng=rng,
            habit_hour=shoppers.habit_hour[members][buyer],
            opens_hour=shoppers.opens_hour[members][buyer],
            closes_hour=shoppers.closes_hour[members][buyer],
        ),
        kind=np.full(buyer.size, 2),
        product=product[row],
        quantity=quantity[valid],
    )


def _lines(
    *,
    rng: np.random.Generator,
    orders: Visits,
    shoppers: Shoppers,
    members: np.ndarray,
    stores: Stores,
    catalogue: Catalogue,
) -> pl.DataFrame:
    """Gives every order its store and lines: products, quantities, amounts and discounts."""
    size = orders.member.size
    store = _order_stores(rng=rng, orders=orders, home=shoppers.home_store[members], stores=stores)
    extra = rng.poisson(np.array(list(EXTRA_LINES_MEAN.values()))[orders.kind])
    count = 1 + np.minimum(extra, MAX_LINES - 1)
    order = np.repeat(np.arange(size), count)
    line_no = np.arange(order.size) - np.repeat(np.cumsum(count) - count, count)
    slot = rng.choice(len(FAVOURITE_WEIGHTS), size=order.size, p=FAVOURITE_WEIGHTS)
    favourite = shoppers.favourites[members][orders.member[order], slot]
    anywhere = rng.choice(catalogue.popularity.size, size=order.size, p=catalogue.popularity)
    category = np.where(rng.random(order.size) < FAVOURITE_LINE_SHARE, favourite, anywhere)
    product = _products_of(rng=rng, category=category, catalogue=catalogue)
    forced = (line_no == 0) & (orders.product[order] >= 0)
    product = np.where(forced, orders.product[order], product)
    order, product, forced = _with_companions(
        rng=rng, order=order, product=product, forced=forced, catalogue=catalogue
    )
    line_no = np.arange(order.size) - np.searchsorted(order, order)
    several = rng.choice([1, 2, 3], size=order.size, p=[0.70, 0.22, 0.08])
    few = rng.choice([1, 2], size=order.size, p=[0.93, 0.07])
    quantity = np.where(catalogue.multi_unit[product], several, few)
    quantity = np.where(forced, orders.quantity[order], quantity)
    discounted = rng.random(order.size) < DISCOUNT_SHARE
    factor = np.where(discounted, rng.choice(DISCOUNT_FACTORS, size=order.size), 1.0)
    amount = np.rint(catalogue.price_cents[product] * quantity * factor).astype(np.int64)
    at = orders.day * SECONDS_PER_DAY + orders.second
    return pl.DataFrame(
        {
            "order": order,
            "line_no": line_no,
            "member": members[orders.member[order]],
            "at": at[order],
            "store": store[order],
            "product": product,
            "quantity": quantity,
            "amount_cents": amount,
            "discounted": discounted,
            "with_phone": (rng.random(size) < PHONE_ON_ORDER_SHARE)[order],
        }
    ).sort("at", "order", "line_no")


def _with_companions(
    *,
    rng: np.random.Generator,
    order: np.ndarray,
    product: np.ndarray,
    forced: np.ndarray,
    catalogue: Catalogue,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Adds the companion of some lines' products to the same order (after its own lines).

    `order` is sorted; so are the orders returned, whose lines keep their order.
    """
    brings = rng.random(product.size) < catalogue.companion_share[product]
    added = np.flatnonzero(brings)
    merged = np.concatenate([order, order[added]])
    position = np.argsort(merged, kind="stable")
    return (
        merged[position],
        np.concatenate([product, catalogue.companion[product[added]]])[position],
        np.concatenate([forced, np.zeros(added.size, dtype=bool)])[position],
    )


def _order_stores(
    *, rng: np.random.Generator, orders: Visits, home: np.ndarray, stores: Stores
) -> np.ndarray:
    """Mostly the home store; otherwise a store of the same city that is open at that hour."""
    home = home[orders.member]
    city = stores.city[home]
    size = orders.member.size
    elsewhere = stores.city_first[city] + (rng.random(size) * stores.city_count[city]).astype(int)
    store = np.where(rng.random(size) < HOME_STORE_SHARE, home, elsewhere)
    # A visit timed for the home store's hours stays home when the other store is closed.
    hour = orders.second / 3600
    opens = np.array([kind.opens_hour for kind in STORE_TYPES])[stores.type[store]]
    closes = np.array([kind.closes_hour for kind in STORE_TYPES])[stores.type[store]]
    return np.where((hour >= opens) & (hour < closes), store, home)


def _products_of(
    *, rng: np.random.Generator, category: np.ndarray, catalogue: Catalogue
) -> np.ndarray:
    """A product of each line's category, seldom a consumable bought on a schedule."""
    size = category.size
    product = catalogue.category_first[category] + (
        rng.random(size) * catalogue.category_count[category]
    ).astype(np.int64)
    # Members who re-buy a consumable on schedule seldom buy it (or its like) in between.
    casual = catalogue.casual[
        np.minimum(
            catalogue.casual_first[category]
            + (rng.random(size) * catalogue.casual_count[category]).astype(np.int64),
            catalogue.casual.size - 1,
        )
    ]
    switch = (catalogue.casual_count[category] > 0) & (rng.random(size) < CASUAL_SHARE)
    scheduled = catalogue.pack_size_days[product] >= REPLENISH_MIN_PACK_DAYS
    return np.where(switch & scheduled, casual, product)
