"""`--dirty` mixes in every kind of mess a POS export has, at about the share asked for."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

# One worker of a parallel run takes them all: they read the one generated retailer.
pytestmark = pytest.mark.xdist_group("demo-retailer")
SHARE = 0.03  # the `dirty_retailer` fixture's share


def _rows(path: Path, *, encoding: str = "utf-8-sig") -> list[str]:
    """The data lines of a file, blank ones included."""
    return path.read_bytes().decode(encoding).split("\n")[1:-1]


@pytest.fixture(scope="module")
def messy_members(dirty_retailer: Path) -> pl.DataFrame:
    return pl.read_csv(dirty_retailer / "members.csv", infer_schema=False)


@pytest.mark.parametrize(
    ("kind", "pattern"),
    [
        ("ten digits", r"^1\d{9}$"),
        ("letters", r"[A-Za-z]"),
        ("landline", r"^0\d{2,3}-\d{7,8}$"),
        ("+86 and dashes", r"^\+86 1\d{2}-\d{4}-\d{4}$"),
        ("0086 and a space", r"^0086 1\d{10}$"),
        ("full-width digits", r"^[０-９]{11}$"),
    ],
)
def test_bad_and_oddly_dressed_phones(messy_members: pl.DataFrame, kind: str, pattern: str) -> None:
    assert messy_members["phone"].str.contains(pattern).sum() >= 1, kind


@pytest.mark.parametrize(
    ("kind", "pattern"),
    [
        ("slashes", r"^\d{4}/\d{1,2}/\d{1,2}$"),
        ("compact", r"^\d{8}$"),
        ("Chinese", r"^\d{4}年\d{1,2}月\d{1,2}日$"),
        ("impossible", r"^\d{4}-02-30$"),
    ],
)
def test_odd_birthdays(messy_members: pl.DataFrame, kind: str, pattern: str) -> None:
    assert messy_members["birthday"].str.contains(pattern).sum() >= 1, kind


def test_full_width_points(messy_members: pl.DataFrame) -> None:
    assert messy_members["points"].str.contains("[０-９]").sum() >= 1


def test_duplicates_come_later_with_newer_values(
    retailer: Path, messy_members: pl.DataFrame
) -> None:
    clean = pl.read_csv(retailer / "members.csv", infer_schema=False)
    by_code = messy_members.filter(pl.col("member_code").is_duplicated())
    assert by_code.height >= 2
    newer = by_code.group_by("member_code", maintain_order=True).agg(
        pl.col("points").cast(pl.Int64, strict=False)
    )
    assert all(points[-1] > points[0] for points in newer["points"] if None not in points)
    phone_only = messy_members.filter(pl.col("member_code").is_null())
    assert phone_only.height >= 1
    bare = phone_only["phone"].str.strip_prefix("+86 ")
    assert bare.is_in(clean["phone"].implode()).all()


def test_blank_lines_and_a_bom(dirty_retailer: Path) -> None:
    members = (dirty_retailer / "members.csv").read_bytes()
    assert members.startswith(b"\xef\xbb\xbf")
    assert "" in _rows(dirty_retailer / "members.csv")
    assert "" in _rows(dirty_retailer / "orders.csv")


def test_the_mess_stays_near_the_share_asked_for(retailer: Path, dirty_retailer: Path) -> None:
    clean = set(_rows(retailer / "members.csv"))
    messy = [row for row in _rows(dirty_retailer / "members.csv") if row]
    changed = sum(row not in clean for row in messy)
    assert SHARE / 2 < changed / len(clean) < SHARE * 2
    clean_orders = set(_rows(retailer / "orders.csv"))
    messy_orders = [row for row in _rows(dirty_retailer / "orders.csv") if row]
    changed = sum(row not in clean_orders for row in messy_orders)
    assert SHARE / 2 < changed / len(clean_orders) < SHARE * 2


def test_orders_of_unknown_members_and_odd_order_fields(
    retailer: Path, dirty_retailer: Path
) -> None:
    orders = pl.read_csv(dirty_retailer / "orders.csv", infer_schema=False)
    known = pl.read_csv(retailer / "members.csv", infer_schema=False)["member_code"]
    strangers = orders.filter(~pl.col("member_code").is_in(known.implode()))
    assert strangers.height >= 1
    assert (
        strangers["order_id"]
        .is_in(pl.read_csv(retailer / "orders.csv", infer_schema=False)["order_id"].implode())
        .sum()
        == 0
    )
    retimed = orders.filter(pl.col("ordered_at").str.contains(r"^\d{4}/\d{2}/\d{2} [\d:]{8}$"))
    assert retimed.height >= 1
    # A retimed order is retimed on all its lines, so that they still agree.
    lines = orders.filter(pl.col("order_id").is_in(retimed["order_id"].implode()))
    assert lines.height == retimed.height
    assert orders["amount"].str.contains("[０-９]").sum() >= 1


def test_a_small_gbk_members_file_with_chinese_headers(
    retailer: Path, dirty_retailer: Path
) -> None:
    raw = (dirty_retailer / "members_gbk.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    lines = raw.decode("gbk").split("\n")
    assert lines[0].startswith("会员编号,手机号,姓名,性别,生日")
    clean = _rows(retailer / "members.csv")
    rows = [line for line in lines[1:] if line]
    assert 0 < len(rows) <= 200
    assert rows == clean[: len(rows)]
    assert not (retailer / "members_gbk.csv").exists()
