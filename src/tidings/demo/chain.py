"""The demo chain's stores and catalogue, as the frames written to stores.csv and products.csv.

Alongside each frame come the numpy arrays the purchase simulation indexes into, so that a
store or a product is an integer everywhere in the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from tidings.demo.catalogue import (
    CATEGORIES,
    CITIES,
    COMPANIONS,
    MULTI_UNIT_CATEGORIES,
    PRODUCTS,
    REPLENISH_MIN_PACK_DAYS,
    STORE_TYPES,
)

STORE_SCATTER = 0.012  # degrees (about a kilometre) around a district's centre


@dataclass(frozen=True)
class Stores:
    """The chain's stores; arrays are indexed by store number, stores grouped by city."""

    frame: pl.DataFrame
    city: np.ndarray  # city number of each store
    type: np.ndarray  # index into STORE_TYPES of each store
    weight: np.ndarray  # share of members who call each store home
    city_first: np.ndarray  # first store number of each city
    city_count: np.ndarray  # number of stores in each city


@dataclass(frozen=True)
class Catalogue:
    """The chain's products; arrays are indexed by product number, grouped by category."""

    frame: pl.DataFrame
    category: np.ndarray  # category number of each product
    price_cents: np.ndarray
    pack_size_days: np.ndarray  # 0 when the product is not a consumable
    multi_unit: np.ndarray  # whether the product is often bought several at a time
    category_first: np.ndarray  # first product number of each category
    category_count: np.ndarray
    popularity: np.ndarray  # share of each category among lines bought outside favourites
    replenishable: np.ndarray  # product numbers re-bought on a schedule
    casual: np.ndarray  # the other product numbers, grouped by category
    casual_first: np.ndarray  # index into `casual` of each category's first casual product
    casual_count: np.ndarray
    companion: np.ndarray  # product number often bought along with each product, or -1
    companion_share: np.ndarray  # share of each product's lines that bring the companion


def build_stores(*, rng: np.random.Generator) -> Stores:
    """Places one store in each district of each city, with a type, coordinates and a size."""
    types = np.repeat(np.arange(len(STORE_TYPES)), [kind.stores for kind in STORE_TYPES])
    types = rng.permutation(types)
    rows = [
        (city_number, city, district)
        for city_number, city in enumerate(CITIES)
        for district in city.districts
    ]
    if len(rows) != len(types):
        raise ValueError("the store types must add up to the number of districts")
    city = np.array([row[0] for row in rows])
    latitude = np.array([row[2].latitude for row in rows]) + rng.normal(0, STORE_SCATTER, len(rows))
    longitude = np.array([row[2].longitude for row in rows])
    longitude = longitude + rng.normal(0, STORE_SCATTER, len(rows))
    codes, names = [], []
    for number, (_, city_row, district) in enumerate(rows):
        within_city = number - int(np.flatnonzero(city == city[number])[0]) + 1
        codes.append(f"{city_row.code}{within_city:02d}")
        names.append(f"{city_row.name}{district.name}{STORE_TYPES[types[number]].name}")
    frame = pl.DataFrame(
        {
            "code": codes,
            "name": names,
            "city": [row[1].name for row in rows],
            "type": [STORE_TYPES[kind].name for kind in types],
            "latitude": [f"{value:.6f}" for value in latitude],
            "longitude": [f"{value:.6f}" for value in longitude],
        }
    )
    weight = rng.gamma(4.0, 1.0, len(rows))
    city_count = np.bincount(city, minlength=len(CITIES))
    return Stores(
        frame=frame,
        city=city,
        type=types,
        weight=weight / weight.sum(),
        city_first=np.concatenate([[0], np.cumsum(city_count)[:-1]]),
        city_count=city_count,
    )


def build_catalogue() -> Catalogue:
    """Numbers the products by category and gives each a SKU such as FR003."""
    names = [category.name for category in CATEGORIES]
    ordered = sorted(PRODUCTS, key=lambda item: names.index(item.category))
    category = np.array([names.index(item.category) for item in ordered])
    counts = np.bincount(category, minlength=len(CATEGORIES))
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    skus = [
        f"{CATEGORIES[category[number]].code}{number - first[category[number]] + 1:03d}"
        for number in range(len(ordered))
    ]
    price_cents = np.array([round(item.price * 100) for item in ordered], dtype=np.int64)
    pack = np.array([item.pack_size_days or 0 for item in ordered], dtype=np.int64)
    frame = pl.DataFrame(
        {
            "sku": skus,
            "name": [item.name for item in ordered],
            "category": [item.category for item in ordered],
            "pack_size_days": pl.Series([item.pack_size_days for item in ordered], dtype=pl.Int64),
            "price": [f"{cents // 100}.{cents % 100:02d}" for cents in price_cents],
        }
    )
    popularity = np.array([category.popularity for category in CATEGORIES])
    casual = np.flatnonzero(pack < REPLENISH_MIN_PACK_DAYS)
    casual_count = np.bincount(category[casual], minlength=len(CATEGORIES))
    return Catalogue(
        frame=frame,
        category=category,
        price_cents=price_cents,
        pack_size_days=pack,
        multi_unit=np.array([item.category in MULTI_UNIT_CATEGORIES for item in ordered]),
        category_first=first,
        category_count=counts,
        popularity=popularity / popularity.sum(),
        replenishable=np.flatnonzero(pack >= REPLENISH_MIN_PACK_DAYS),
        casual=casual,
        casual_first=np.concatenate([[0], np.cumsum(casual_count)[:-1]]),
        casual_count=casual_count,
        **_companions([item.name for item in ordered]),
    )


def _companions(names: list[str]) -> dict[str, np.ndarray]:
    """The companion arrays of the catalogue, from COMPANIONS by product name."""
    companion = np.full(len(names), -1, dtype=np.int64)
    share = np.zeros(len(names))
    for pair in COMPANIONS:
        number = names.index(pair.product)
        companion[number] = names.index(pair.companion)
        share[number] = pair.share
    return {"companion": companion, "companion_share": share}
