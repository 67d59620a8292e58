"""`tidings profiles refresh`, tag rules and `tidings model fit` against a real store."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from tidings.db import session_scope
from tidings.members.models import Member, Store
from tidings.orders.models import Order, OrderItem, Product
from tidings.profiles.models import ModelFit, Profile

AS_OF = "2025-06-30"
NOON = datetime(2025, 6, 30, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


def seed(engine: Engine) -> None:
    """Three members: a regular durian buyer, a one-off, and one who never bought."""
    with session_scope(engine) as db:
        store = Store(code="SH01", name="上海徐汇店", city="上海")
        db.add(store)
        db.add(Product(sku="DUR", name="榴莲", category="热带水果", pack_size_days=7))
        db.flush()
        regular = Member(code="M1", phone="+8613800000001", store_id=store.id, tags=["员工"])
        once = Member(code="M2", phone="+8613800000002", store_id=store.id)
        never = Member(code="M3", phone="+8613800000003")
        db.add_all([regular, once, never])
        db.flush()
        for n, days_ago in enumerate((1, 8, 15, 22, 40)):
            order = Order(
                external_id=f"R{n}",
                member_id=regular.id,
                store_id=store.id,
                ordered_at=NOON - timedelta(days=days_ago),
                amount_cents=120_000,
            )
            db.add(order)
            db.flush()
            db.add(
                OrderItem(
                    order_id=order.id,
                    line_no=1,
                    sku="DUR",
                    category="热带水果",
                    quantity=1,
                    amount_cents=120_000,
                    discounted=False,
                )
            )
        order = Order(
            external_id="O1",
            member_id=once.id,
            store_id=store.id,
            ordered_at=NOON - timedelta(days=200),
            amount_cents=5_000,
        )
        db.add(order)
        db.flush()
        db.add(
            OrderItem(
                order_id=order.id,
                line_no=1,
                sku="APL",
                category="苹果",
                quantity=1,
                amount_cents=5_000,
                discounted=True,
            )
        )


def run(cli: Any, engine: Engine, *args: str) -> Any:
    """Runs the CLI and checks that it succeeded."""
    result = cli(*args)
    assert result.exit_code == 0, result.output
    return result


def profiles(engine: Engine) -> dict[str, dict[str, Any]]:
    with session_scope(engine) as db:
        rows = db.execute(select(Member.code, Profile).join(Profile)).all()
        return {
            code: {
                column.name: getattr(profile, column.name)
                for column in Profile.__table__.columns
                if column.name != "computed_at"
            }
            for code, profile in rows
        }


def test_refresh_writes_a_profile_per_member_that_queries_can_read(cli, engine: Engine) -> None:
    seed(engine)
    result = run(cli, engine, "profiles", "refresh", "--as-of", AS_OF, "--json")
    report = json.loads(result.output)
    assert (report["members"], report["profiles_written"]) == (3, 3)
    assert report["lifecycle_stage"] == {"active": 1, "dormant": 1, "never": 1}
    assert sum(report["tier"].values()) == 3 and report["tier"]["gold"] == 1
    assert set(report["rfm_segment"]) <= {
        "Champions",
        "Loyal",
        "Lost",
        "At risk",
        "Hibernating",
        "Potential loyalist",
        "New",
        "Promising",
        "Need attention",
        "About to sleep",
        "Cannot lose",
    }
    rows = profiles(engine)
    regular, once, never = rows["M1"], rows["M2"], rows["M3"]
    assert regular["orders_total"] == 5 and regular["value_group"] == "价值型"
    assert regular["tier"] == "gold" and regular["lifecycle_stage"] == "active"
    assert regular["top_categories"] == [{"category": "热带水果", "share": 1.0}]
    assert regular["tags"][0] == "员工" and "热带水果爱好者" in regular["tags"]
    assert regular["next_run_out_on"] == date(2025, 7, 6)  # bought a 7-day pack yesterday
    assert regular["replenishment"][0]["sku"] == "DUR"
    assert 8 <= regular["best_hour"] <= 19 and regular["p_alive"] is not None
    assert regular["clv_12m_cents"] > 0 and regular["churn_risk"] is False
    assert once["discount_share"] == 1.0 and once["days_since_last_order"] == 200
    assert never["lifecycle_stage"] == "never" and never["tags"] == []
    with session_scope(engine) as db:
        assert db.scalar(select(ModelFit.calibration_end)) == date(2025, 6, 30)
        gold = db.scalars(select(Profile.member_id).where(Profile.tier == "gold")).all()
    assert len(gold) == 1


def test_refreshing_twice_gives_the_same_profiles(cli, engine: Engine) -> None:
    seed(engine)
    run(cli, engine, "profiles", "refresh", "--as-of", AS_OF)
    first = profiles(engine)
    run(cli, engine, "profiles", "refresh", "--as-of", AS_OF)
    assert profiles(engine) == first
    with session_scope(engine) as db:
        assert len(db.scalars(select(ModelFit.id)).all()) == 1  # the fit was reused


def test_a_tier_change_is_kept_for_announcing(cli, engine: Engine) -> None:
    seed(engine)
    run(cli, engine, "profiles", "refresh", "--as-of", AS_OF)
    # Three months on, the regular's spend has left the quarter: gold becomes bronze.
    run(cli, engine, "profiles", "refresh", "--as-of", "2025-10-15")
    regular = profiles(engine)["M1"]
    assert (regular["tier"], regular["previous_tier"]) == ("bronze", "gold")
    assert regular["tier_changed_at"] == date(2025, 10, 15)


def test_tag_rules_are_versioned_and_applied_on_refresh(cli, engine: Engine) -> None:
    seed(engine)
    run(cli, engine, "profiles", "tag-rule", "add", "榴莲爱好者", 'orders_in("热带水果", 30d) >= 3')
    run(cli, engine, "profiles", "tag-rule", "add", "榴莲爱好者", 'orders_in("热带水果", 30d) >= 4')
    listed = json.loads(run(cli, engine, "profiles", "tag-rule", "list", "--json").output)
    assert [(r["name"], r["version"], r["active"]) for r in listed] == [("榴莲爱好者", 2, True)]
    run(cli, engine, "profiles", "refresh", "--as-of", AS_OF)
    rows = profiles(engine)
    assert "榴莲爱好者" in rows["M1"]["tags"] and "榴莲爱好者" not in rows["M2"]["tags"]
    run(cli, engine, "profiles", "tag-rule", "disable", "榴莲爱好者")
    run(cli, engine, "profiles", "refresh", "--as-of", AS_OF)
    assert "榴莲爱好者" not in profiles(engine)["M1"]["tags"]


def test_a_bad_tag_rule_is_refused_with_its_column(cli, engine: Engine) -> None:
    result = cli("profiles", "tag-rule", "add", "金卡", 'teir == "gold"')
    assert result.exit_code == 2
    assert "column 1: unknown field 'teir'; did you mean 'tier'?" in result.output
    result = cli("profiles", "tag-rule", "disable", "没有这个")
    assert result.exit_code == 2 and "no tag rule named '没有这个'" in result.output


def test_model_fit_prints_the_parameters(cli, engine: Engine) -> None:
    seed(engine)
    result = run(cli, engine, "model", "fit", "--calibration-end", AS_OF, "--json")
    fitted = json.loads(result.output)
    assert fitted["members"] == 2
    assert set(fitted["bgnbd"]) == {"r", "alpha", "a", "b", "log_likelihood"}
    assert set(fitted["gamma_gamma"]) == {"p", "q", "v"}
    assert all(
        value > 0
        for value in fitted["bgnbd"].values()
        if value != fitted["bgnbd"]["log_likelihood"]
    )


def test_model_fit_before_any_purchase_says_what_to_do(cli, engine: Engine) -> None:
    seed(engine)
    result = cli("model", "fit", "--calibration-end", "2020-01-01")
    assert result.exit_code == 2
    assert "no member bought on or before 2020-01-01" in result.output


def _refreshed_by_a_child(engine: Engine, monkeypatch: Any) -> Any:
    """Refreshes the seeded store with its profiles written by a child; returns the profiles
    the refresh handed to the write-back."""
    import polars as pl

    from tidings.profiles import service, writeback

    seed(engine)
    monkeypatch.setattr(writeback, "CHILD_WRITE_MIN_ROWS", 0)
    written: list[pl.DataFrame] = []
    original = writeback.write_back

    def keep(**arguments: Any) -> int:
        written.append(arguments["profiles"])
        return original(**arguments)

    monkeypatch.setattr(writeback, "write_back", keep)
    service.refresh(engine=engine, as_of=date(2025, 6, 30))
    return written[0]


def test_a_child_writes_no_profile_of_a_member_the_store_does_not_hold(
    sqlite_engine: Engine, monkeypatch: Any
) -> None:
    """The writing child checks members once all rows are in: a profile of an unknown
    member fails the write with a clear error and the profiles written before stay."""
    import polars as pl
    import pytest

    from tidings.profiles import writeback
    from tidings.scans import ChildStoreError, sqlite_children

    written = _refreshed_by_a_child(sqlite_engine, monkeypatch)
    before = profiles(sqlite_engine)
    stray = written.with_columns(
        member_id=pl.when(pl.col("member_id") == pl.col("member_id").max())
        .then(999_999)
        .otherwise(pl.col("member_id"))
    )
    with sqlite_children(sqlite_engine) as children, pytest.raises(ChildStoreError) as error:
        writeback.write_back(engine=sqlite_engine, profiles=stray, fit_row=None, children=children)
    assert "1 row(s) of profiles refer to no row of members" in str(error.value)
    assert profiles(sqlite_engine) == before


def test_a_child_keeps_no_profile_when_preparing_them_fails_halfway(
    sqlite_engine: Engine, monkeypatch: Any
) -> None:
    """Profiles go to the writing child as they are prepared: when preparing fails after
    some went, the error is the one raised here and the profiles written before stay."""
    from collections.abc import Iterator

    import polars as pl
    import pytest

    from tidings import clock
    from tidings.bulk import sqlite_values
    from tidings.childwrites import replace_rows_in_child
    from tidings.profiles import writeback
    from tidings.scans import sqlite_children

    written = _refreshed_by_a_child(sqlite_engine, monkeypatch)
    before = profiles(sqlite_engine)
    ready = sqlite_values(writeback._encoded(written, clock.now()))

    def parts() -> Iterator[pl.DataFrame]:
        yield ready.head(1)
        raise RuntimeError("encoding failed")

    with sqlite_children(sqlite_engine) as children, pytest.raises(RuntimeError, match="encoding"):
        replace_rows_in_child(children, table="profiles", parts=parts(), rows=ready.height)
    assert profiles(sqlite_engine) == before


def test_profiles_written_by_a_child_process_read_back_as_those_written_here(
    sqlite_engine: Engine, monkeypatch: Any
) -> None:
    """On a SQLite file a big refresh is written by a child process through ADBC; its rows
    (times, dates, JSON, booleans, the new model fit) must read back as ours do."""
    import resource
    import sys

    from tidings.profiles import service, writeback

    def children_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    seed(sqlite_engine)
    monkeypatch.setattr(writeback, "CHILD_WRITE_MIN_ROWS", 0)
    before = children_cpu()
    with sqlite_engine.connect() as held:  # a connection kept open meanwhile keeps working
        assert held.scalar(select(func.count()).select_from(Member)) == 3
        held.commit()
        service.refresh(engine=sqlite_engine, as_of=date(2025, 6, 30))
        assert "adbc_driver_sqlite" not in sys.modules, "a second SQLite library was loaded here"
        assert held.scalar(select(func.count()).select_from(Profile)) == 3
        held.commit()
    assert children_cpu() > before, "no child process did the writing"
    by_child = profiles(sqlite_engine)
    monkeypatch.setattr(writeback, "CHILD_WRITE_MIN_ROWS", 10**9)
    service.refresh(engine=sqlite_engine, as_of=date(2025, 6, 30))
    assert profiles(sqlite_engine) == by_child
    regular = by_child["M1"]
    assert regular["first_order_at"] == NOON - timedelta(days=40)
    assert regular["tags"][0] == "员工" and regular["next_run_out_on"] == date(2025, 7, 6)
    assert regular["top_categories"] == [{"category": "热带水果", "share": 1.0}]
    assert regular["churn_risk"] is False and by_child["M3"]["lifecycle_stage"] == "never"
    with session_scope(sqlite_engine) as db:
        fits = db.scalars(select(ModelFit.calibration_end)).all()
        assert fits == [date(2025, 6, 30)]  # written by the child, then reused
