"""The demo files: the headers the importers read, the same bytes for a seed, sound contents."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import phonenumbers
import polars as pl
import pytest
from phonenumbers import PhoneNumberType
from typer.testing import CliRunner

from tidings.cli import app
from tidings.demo.generate import DemoError, RetailerSpec, generate_retailer

# One worker of a parallel run takes them all: they read the one generated retailer.
pytestmark = pytest.mark.xdist_group("demo-retailer")
FILES = ("stores.csv", "products.csv", "members.csv", "orders.csv")
END = date(2025, 6, 30)  # the last day of the `retailer` fixture's orders


def read(path: Path) -> pl.DataFrame:
    """Reads a demo CSV with every column as text, as an importer would see it."""
    return pl.read_csv(path, infer_schema=False)


def test_files_carry_the_exact_headers(retailer: Path) -> None:
    first_lines = {
        name: (retailer / name).read_text(encoding="utf-8").splitlines()[0] for name in FILES
    }
    assert first_lines == {
        "stores.csv": "code,name,city,type,latitude,longitude",
        "products.csv": "sku,name,category,pack_size_days,price",
        "members.csv": "member_code,phone,name,gender,birthday,tier,points,store_code,"
        "registered_at,consent",
        "orders.csv": "order_id,ordered_at,member_code,phone,store_code,sku,category,quantity,"
        "amount,discount",
    }


def test_the_same_seed_writes_the_same_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    def files(seed: int, folder: str, dirty: float) -> dict[str, bytes]:
        spec = RetailerSpec(members=400, months=3, seed=seed, end=END, dirty=dirty)
        generate_retailer(spec=spec, directory=tmp_path / folder)
        return {path.name: path.read_bytes() for path in sorted((tmp_path / folder).iterdir())}

    for dirty in (0.0, 0.05):
        first, again = files(5, f"first{dirty}", dirty), files(5, f"again{dirty}", dirty)
        assert first == again
        other = files(6, f"other{dirty}", dirty)
        assert other["members.csv"] != first["members.csv"]
        assert other["orders.csv"] != first["orders.csv"]


def test_every_phone_of_a_clean_file_is_a_distinct_mainland_mobile(retailer: Path) -> None:
    phones = read(retailer / "members.csv")["phone"].to_list()
    assert len(set(phones)) == len(phones)
    for phone in phones:
        number = phonenumbers.parse(phone, "CN")
        assert phonenumbers.is_valid_number(number), phone
        assert phonenumbers.number_type(number) == PhoneNumberType.MOBILE, phone
    prefixes = {phone[:2] for phone in phones}
    assert prefixes >= {"13", "15", "18"}


def test_members_look_like_a_chinese_membership(retailer: Path) -> None:
    members = read(retailer / "members.csv")
    assert members["gender"].value_counts().height == 2
    assert set(members["gender"]) == {"男", "女"}
    assert set(members["consent"]) == {"是", "否"}
    assert (members["consent"] == "是").mean() > 0.7
    assert set(members["tier"]) == {"bronze", "silver", "gold"}
    assert members["name"].str.len_chars().is_between(2, 4).all()
    lunar = members["birthday"].str.starts_with("农历")
    assert 0.005 < lunar.mean() < 0.1
    solar = members.filter(~lunar)["birthday"].str.to_date("%Y-%m-%d")
    assert solar.dt.year().is_between(END.year - 76, END.year - 17).all()
    registered = members["registered_at"].str.to_datetime("%Y-%m-%d %H:%M:%S")
    assert registered.max().date() <= END
    assert registered.min().date() < date(2024, 7, 1)  # some joined before the period
    stores = set(read(retailer / "stores.csv")["code"])
    assert set(members["store_code"]) <= stores
    assert members["points"].cast(pl.Int64).min() >= 0


def test_stores_sit_in_several_cities_with_the_four_types_near_their_city(retailer: Path) -> None:
    stores = read(retailer / "stores.csv")
    assert 25 <= stores.height <= 35
    assert stores["code"].n_unique() == stores.height
    assert {"上海", "北京", "杭州", "南京", "苏州", "成都"} <= set(stores["city"])
    assert set(stores["type"]) == {"社区店", "写字楼店", "学区店", "商场店"}
    shanghai = stores.filter(pl.col("city") == "上海")
    assert shanghai["latitude"].cast(pl.Float64).is_between(30.9, 31.5).all()
    assert shanghai["longitude"].cast(pl.Float64).is_between(121.1, 121.8).all()


def test_the_catalogue_spans_the_articles_categories_with_pack_sizes(retailer: Path) -> None:
    products = read(retailer / "products.csv")
    assert {
        "水果",
        "热带水果",
        "生鲜",
        "母婴",
        "美妆",
        "宠物",
        "数码",
        "服饰",
        "零食",
        "酒水",
    } <= set(products["category"])
    assert products["sku"].n_unique() == products.height
    packs = dict(zip(products["name"], products["pack_size_days"], strict=True))
    for name in ("纸尿裤", "奶粉", "猫粮", "洗发水"):
        assert any(name in product and pack for product, pack in packs.items()), name
    assert products.filter(pl.col("category") == "数码")["pack_size_days"].is_null().all()
    assert products["price"].str.contains(r"^\d+\.\d{2}$").all()


def test_orders_refer_to_known_members_stores_and_products(retailer: Path) -> None:
    orders = read(retailer / "orders.csv")
    members = read(retailer / "members.csv")
    products = read(retailer / "products.csv")
    assert set(orders["member_code"]) <= set(members["member_code"])
    assert set(orders["store_code"]) <= set(read(retailer / "stores.csv")["code"])
    by_sku = dict(zip(products["sku"], products["category"], strict=True))
    assert all(
        by_sku[sku] == category
        for sku, category in orders.select("sku", "category").unique().rows()
    )
    with_phone = orders.filter(pl.col("phone").is_not_null()).join(
        members.select("member_code", pl.col("phone").alias("member_phone")), on="member_code"
    )
    assert 0 < with_phone.height < orders.height
    assert (with_phone["phone"] == with_phone["member_phone"]).all()
    # The lines of one order sit together and share their member, store and time.
    per_order = orders.group_by("order_id").agg(
        pl.col("member_code", "store_code", "ordered_at").n_unique()
    )
    assert (per_order.select(pl.exclude("order_id")) == 1).to_numpy().all()
    runs = (orders["order_id"] != orders["order_id"].shift()).fill_null(True).sum()
    assert runs == orders["order_id"].n_unique()
    ordered_at = orders["ordered_at"].str.to_datetime("%Y-%m-%d %H:%M:%S")
    assert ordered_at.min().date() >= date(2024, 7, 1)
    assert ordered_at.max().date() <= END


def test_amounts_are_price_times_quantity_less_the_discount(retailer: Path) -> None:
    orders = read(retailer / "orders.csv").join(
        read(retailer / "products.csv").select("sku", "price"), on="sku"
    )
    cents = orders.select(
        full=(pl.col("price").cast(pl.Float64) * 100).round().cast(pl.Int64)
        * pl.col("quantity").cast(pl.Int64),
        paid=(pl.col("amount").cast(pl.Float64) * 100).round().cast(pl.Int64),
        discount=pl.col("discount"),
    )
    assert orders["amount"].str.contains(r"^\d+\.\d{2}$").all()
    assert set(cents["discount"]) == {"yes", "no"}
    plain = cents.filter(pl.col("discount") == "no")
    assert (plain["paid"] == plain["full"]).all()
    discounted = cents.filter(pl.col("discount") == "yes")
    assert (discounted["paid"] < discounted["full"]).all()
    assert (discounted["paid"] >= discounted["full"] * 0.69).all()
    assert 0.05 < discounted.height / cents.height < 0.4


def test_generate_command_writes_the_files_and_reports_rows(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        app,
        [
            *("demo", "generate", "--members", "200", "--months", "2", "--seed", "3"),
            *("--out", str(out), "--end", "2025-03-31", "--json"),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["rows"]["members.csv"] == 200
    assert report["start"] == "2025-02-01"
    assert report["rows"]["orders.csv"] == read(out / "orders.csv").height
    assert sorted(path.name for path in out.iterdir()) == sorted([*FILES, "manifest.json"])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--members", "0"], "--members 0: choose between 1"),
        (["--months", "0"], "--months 0: choose between 1"),
        (["--dirty", "0.9"], "--dirty 0.9: choose a share between 0 and 0.5"),
        (["--end", "30/06/2025"], "write the last day of orders as YYYY-MM-DD"),
    ],
)
def test_generate_command_explains_a_bad_parameter(
    tmp_path: Path, arguments: list[str], message: str
) -> None:
    result = CliRunner().invoke(app, ["demo", "generate", "--out", str(tmp_path), *arguments])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "members.csv").exists()


def test_a_spec_out_of_range_raises_a_typed_error() -> None:
    with pytest.raises(DemoError, match="--seed -1"):
        RetailerSpec(members=10, months=1, seed=-1, end=END).check()
