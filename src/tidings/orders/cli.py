"""`tidings import orders|products`."""

from __future__ import annotations

from pathlib import Path

import typer

from tidings.members.cli import JSON_HELP, MAPPING_HELP, REJECTS_HELP, run_import
from tidings.orders import importer


def import_orders(
    file: Path = typer.Argument(
        ..., help="CSV of order lines, UTF-8 or GBK, English or Chinese headers."
    ),
    create_members: bool = typer.Option(
        False, "--create-members", help="Create members the store does not know yet."
    ),
    mapping: Path = typer.Option(None, "--mapping", help=MAPPING_HELP),
    rejects: Path = typer.Option(None, "--rejects", help=REJECTS_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Imports order lines from a CSV file; rows with the same order_id are one order.

    Fields: order_id, ordered_at, amount (yuan), phone or member_code, and optionally
    store_code, sku, category, quantity, discount (订单号, 下单时间, 实付金额, 手机号, 会员编号,
    门店, 商品编码, 品类, 数量, 折扣). Orders already imported are skipped.
    """
    run_import(
        importer.import_orders,
        as_json=as_json,
        path=file,
        create_members=create_members,
        mapping=mapping,
        rejects_path=rejects,
    )


def import_products(
    file: Path = typer.Argument(
        ..., help="CSV of products: sku, name, category, pack_size_days, price."
    ),
    mapping: Path = typer.Option(None, "--mapping", help=MAPPING_HELP),
    rejects: Path = typer.Option(None, "--rejects", help=REJECTS_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Imports products from a CSV file, adding new skus and updating known ones."""
    run_import(
        importer.import_products, as_json=as_json, path=file, mapping=mapping, rejects_path=rejects
    )
