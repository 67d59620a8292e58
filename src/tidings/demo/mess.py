"""The mess of a real POS export, mixed into clean demo files at a chosen share of rows.

Each kind of mess touches its own rows, and every kind appears at least once whenever the
share is above zero, so that an importer can be tried against all of them on a small file.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from tidings.demo.catalogue import AREA_CODES

HALF_WIDTH_DIGITS = list("0123456789")
FULL_WIDTH_DIGITS = list("０１２３４５６７８９")
UTF8_BOM = b"\xef\xbb\xbf"
GBK_MEMBERS = 200  # rows of the GBK-encoded members file
UNKNOWN_MEMBER_PREFIX = "M9"  # member codes above any the generator hands out

# What each column of members.csv is called in a Chinese POS export.
CHINESE_MEMBER_HEADERS = {
    "member_code": "会员编号",
    "phone": "手机号",
    "name": "姓名",
    "gender": "性别",
    "birthday": "生日",
    "tier": "会员等级",
    "points": "积分",
    "store_code": "门店编码",
    "registered_at": "注册时间",
    "consent": "是否同意营销",
}

_DATE = r"^(\d{4})-(\d{2})-(\d{2})$"
_NEXT_TIER = {"bronze": "silver", "silver": "gold", "gold": "gold"}


def _digits(column: str) -> pl.Expr:
    return pl.col(column).str.replace_many(HALF_WIDTH_DIGITS, FULL_WIDTH_DIGITS)


def _year_month_day(column: str, pattern: str) -> pl.Expr:
    """Rewrites a YYYY-MM-DD date in the form `pattern` ({y}, {m}, {d}; no leading zeros)."""
    parts = {
        key: pl.col(column).str.extract(_DATE, group).cast(pl.Int64).cast(pl.String)
        for key, group in (("y", 1), ("m", 2), ("d", 3))
    }
    pieces = pattern.replace("{", "|{").replace("}", "}|").split("|")
    return pl.concat_str([parts[p[1]] if p.startswith("{") else pl.lit(p) for p in pieces if p])


def _landline(rng: np.random.Generator, size: int) -> pl.Series:
    area = np.array(AREA_CODES)[rng.integers(0, len(AREA_CODES), size)]
    return pl.Series(
        np.char.add(np.char.add(area, "-"), rng.integers(50_000_000, 90_000_000, size).astype(str))
    )


def _member_edits(rng: np.random.Generator, size: int) -> dict[str, tuple[str, pl.Expr]]:
    """The kinds of mess that rewrite one cell of a members row, by name."""
    phone = pl.col("phone")
    return {
        "phone_ten_digits": ("phone", phone.str.slice(0, 10)),
        "phone_letters": ("phone", phone.str.slice(0, 3) + "Ol" + phone.str.slice(5)),
        "phone_landline": ("phone", pl.lit(_landline(rng, size))),
        "phone_dressed": (
            "phone",
            pl.format(
                "+86 {}-{}-{}", phone.str.slice(0, 3), phone.str.slice(3, 4), phone.str.slice(7)
            ),
        ),
        "phone_spaced": ("phone", "0086 " + phone),
        "phone_full_width": ("phone", _digits("phone")),
        "birthday_slashes": ("birthday", _year_month_day("birthday", "{y}/{m}/{d}")),
        "birthday_compact": ("birthday", pl.col("birthday").str.replace_all("-", "")),
        "birthday_chinese": ("birthday", _year_month_day("birthday", "{y}年{m}月{d}日")),
        "birthday_impossible": ("birthday", pl.col("birthday").str.slice(0, 4) + "-02-30"),
        "points_full_width": ("points", _digits("points")),
    }


def messy_members(*, rng: np.random.Generator, frame: pl.DataFrame, share: float) -> pl.DataFrame:
    """Rewrites a share of the member rows the way POS exports do, and appends duplicates.

    Duplicates come last, as a later export would: some repeat a member code with a newer
    tier and points, others repeat only the phone (dressed differently) with newer points.
    """
    edits = _member_edits(rng, frame.height)
    kinds = len(edits) + 2
    per_kind = min(frame.height // kinds, max(1, round(share * frame.height / kinds)))
    # Lunar birthdays go last so that the date rewrites land on solar birthdays.
    order = rng.permutation(frame.height)
    lunar = frame["birthday"].str.starts_with("农历").to_numpy()
    order = order[np.argsort(lunar[order], kind="stable")]
    block = np.full(frame.height, -1)
    for number in range(kinds):
        block[order[number * per_kind : (number + 1) * per_kind]] = number
    frame = frame.with_columns(pl.Series("_block", block))
    rewrites = {column: pl.col(column) for column, _ in edits.values()}
    for number, (column, expression) in enumerate(edits.values()):
        rewrites[column] = (
            pl.when(pl.col("_block") == number).then(expression).otherwise(rewrites[column])
        )
    messy = frame.with_columns(**rewrites)
    newer_points = (pl.col("points").cast(pl.Int64) + 100).cast(pl.String)
    by_code = frame.filter(pl.col("_block") == kinds - 2).with_columns(
        tier=pl.col("tier").replace(_NEXT_TIER), points=newer_points
    )
    by_phone = frame.filter(pl.col("_block") == kinds - 1).with_columns(
        member_code=pl.lit(None, dtype=pl.String),
        phone="+86 " + pl.col("phone"),
        points=newer_points,
    )
    return pl.concat([messy, by_code, by_phone]).drop("_block")


def messy_orders(
    *, rng: np.random.Generator, frame: pl.DataFrame, share: float, tag: str
) -> pl.DataFrame:
    """Rewrites a share of order lines and appends orders of members nobody knows.

    Times are rewritten for whole orders (as when two tills' exports are merged), so that
    the lines of one order still agree; amounts are rewritten line by line.
    `tag` makes the order ids of the appended orders unique across blocks of one file.
    """
    kinds = 3
    per_kind = min(frame.height, max(1, round(share * frame.height / kinds)))
    chosen = rng.permutation(frame.height)
    block = np.full(frame.height, -1)
    block[chosen[:per_kind]] = 1
    orders = frame["order_id"].unique(maintain_order=True)
    per_order = max(1, round(per_kind * orders.len() / frame.height))
    retimed = orders.gather(np.sort(rng.choice(orders.len(), size=per_order, replace=False)))
    frame = frame.with_columns(pl.Series("_block", block))
    at = pl.col("ordered_at").str.to_datetime("%Y-%m-%d %H:%M:%S")
    messy = frame.with_columns(
        ordered_at=pl.when(pl.col("order_id").is_in(retimed.implode()))
        .then(at.dt.strftime("%Y/%m/%d %H:%M:%S"))
        .otherwise("ordered_at"),
        amount=pl.when(pl.col("_block") == 1).then(_digits("amount")).otherwise("amount"),
    )
    strangers = frame[np.sort(chosen[-per_kind:])].with_columns(
        order_id=pl.format("SOX{}{}", pl.lit(tag), pl.int_range(pl.len()).cast(pl.String)),
        member_code=pl.lit(UNKNOWN_MEMBER_PREFIX)
        + pl.Series(rng.integers(0, 10_000_000, per_kind)).cast(pl.String).str.zfill(7),
        phone=pl.lit(None, dtype=pl.String),
    )
    return pl.concat([messy, strangers]).drop("_block")


def with_blank_lines(*, rng: np.random.Generator, text: bytes, share: float) -> bytes:
    """Inserts empty lines after about `share` of the lines (never before the header)."""
    data = np.frombuffer(text, dtype=np.uint8)
    ends = np.flatnonzero(data == ord("\n"))
    count = min(ends.size, max(1, round(share * ends.size)))
    where = np.sort(rng.choice(ends, size=count, replace=False)) + 1
    return np.insert(data, where, ord("\n")).tobytes()


def gbk_members(frame: pl.DataFrame) -> bytes:
    """The first members as a small GBK-encoded file with Chinese headers."""
    head = frame.head(GBK_MEMBERS).rename(CHINESE_MEMBER_HEADERS)
    return head.write_csv().encode("gbk")
