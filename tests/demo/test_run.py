"""`tidings demo run`: generate once, import into the store, sum up; twice changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import Engine, func, select

from tidings import clock
from tidings.campaigns.models import Campaign
from tidings.demo.generate import RetailerSpec
from tidings.demo.run import NO_PURCHASE, DemoRun, Step, generate_files, run_demo
from tidings.dispatch.models import Message
from tidings.orders.models import Order
from tidings.profiles.models import Profile
from tidings.profiles.rfm import RFM_SEGMENTS

FILES = {"stores.csv", "products.csv", "members.csv", "orders.csv"}


def _run_arguments(directory: Path, *extra: str) -> list[str]:
    return ["demo", "run", "--members", "300", "--months", "3", "--dir", str(directory), *extra]


def _demo_run(cli, engine: Engine, *arguments: str):  # type: ignore[no-untyped-def]
    """Runs `tidings demo run` against the test's store."""
    return cli(*arguments)


@pytest.fixture
def in_the_morning() -> Iterator[None]:
    """The clock moved on to 10:00 today in Shanghai, inside the send window, so that a demo
    run sends at once whatever the hour the tests run at (the evening has a test of its own)."""
    real = datetime.now(UTC)
    morning = real.replace(hour=2, minute=0, second=0, microsecond=0)  # 10:00 in Shanghai
    with clock.shifted(morning - real):
        yield


@pytest.mark.usefixtures("in_the_morning")
def test_demo_run_imports_a_small_retailer_without_rejects_and_again_changes_nothing(
    cli, engine: Engine, tmp_path: Path
) -> None:
    directory = tmp_path / "demo"
    first = _demo_run(cli, engine, *_run_arguments(directory))
    assert first.exit_code == 0, first.output
    assert "Top categories by revenue" in first.output
    assert "orders.csv" in first.output
    # It ends with the campaign's report: funnel, A/B verdict, lift, health and a chart.
    assert "A/B B vs A:" in first.output and "lift over holdout:" in first.output
    assert "health:" in first.output
    assert (directory / "charts" / "campaign-1" / "funnel.png").exists()

    again = _demo_run(cli, engine, *_run_arguments(directory, "--json"))
    assert again.exit_code == 0, again.output
    report = json.loads(again.output)
    assert report["reused_files"] is True
    assert set(report["imports"]) == FILES
    for name, result in report["imports"].items():
        assert result["rejected"] == 0, (name, result)
        assert result["inserted"] == 0, (name, result)
    orders = pl.read_csv(directory / "orders.csv", infer_schema=False)
    store = report["store"]
    assert store["members"] == 300
    assert store["stores"] == pl.read_csv(directory / "stores.csv").height
    assert store["products"] == pl.read_csv(directory / "products.csv").height
    # Besides the files, the store held (when the second run summed it up) the orders that
    # members placed after the first run's campaign.
    with engine.connect() as connection:
        first = connection.scalar(select(func.min(Campaign.id)))
        simulated, simulated_cents = connection.execute(
            select(func.count(), func.coalesce(func.sum(Order.amount_cents), 0)).where(
                Order.external_id.like(f"DEMO-C{first}-%")
            )
        ).one()
    assert simulated > 0
    assert store["orders"] - simulated == orders["order_id"].n_unique()
    assert store["order_lines"] == orders.height
    cents = (orders["amount"].cast(pl.Float64) * 100).round().cast(pl.Int64)
    assert store["revenue_cents"] - simulated_cents == cents.sum()
    by_category = (
        orders.with_columns(cents=cents).group_by("category").agg(pl.col("cents").sum())
    ).sort("cents", descending=True)
    assert store["top_categories"][0]["category"] == by_category["category"][0]
    assert store["top_categories"][0]["revenue_cents"] == by_category["cents"][0]


@pytest.mark.usefixtures("in_the_morning")
def test_demo_run_refreshes_a_profile_per_member_and_shows_segments_and_tiers(
    cli, engine: Engine, tmp_path: Path
) -> None:
    first = _demo_run(cli, engine, *_run_arguments(tmp_path / "demo"))
    assert first.exit_code == 0, first.output
    assert "RFM segments as of" in first.output and "Tiers as of" in first.output
    report = json.loads(_demo_run(cli, engine, *_run_arguments(tmp_path / "demo", "--json")).output)
    profiles, members = report["profiles"], report["store"]["members"]
    assert profiles["members"] == profiles["profiles_written"] == members == 300
    assert profiles["as_of"] == report["files"]["end"]
    assert sum(profiles["rfm_segments"].values()) == members
    assert set(profiles["rfm_segments"]) <= {*RFM_SEGMENTS, NO_PURCHASE}
    assert len(profiles["rfm_segments"]) >= 5  # a retailer's base spreads over the grid
    assert set(profiles["tiers"]) <= {"bronze", "silver", "gold"}
    assert sum(profiles["tiers"].values()) == members
    assert profiles["tiers"].get("gold", 0) > 0 and profiles["tiers"].get("bronze", 0) > 0
    with engine.connect() as connection:
        stored = connection.execute(select(Profile.tier, func.count()).group_by(Profile.tier))
        assert {tier: count for tier, count in stored} == profiles["tiers"]


def test_a_demo_run_in_the_evening_sends_its_campaign_in_the_next_morning_window(
    cli, engine: Engine, tmp_path: Path
) -> None:
    """Outside the send window (08:00-20:00 in Shanghai) the demo's day moves on to the next
    window, so its campaign still goes out whole and its report follows."""
    real = datetime.now(UTC)
    evening = real.replace(hour=14, minute=30, second=0, microsecond=0)  # 22:30 in Shanghai
    with clock.shifted(evening - real):
        result = _demo_run(cli, engine, *_run_arguments(tmp_path / "demo"))
    assert result.exit_code == 0, result.output
    assert "A/B B vs A:" in result.output and "lift over holdout:" in result.output
    with engine.connect() as connection:
        campaign = connection.execute(select(Campaign.status)).scalar_one()
        sent = connection.execute(
            select(func.min(Message.submitted_at), func.max(Message.submitted_at)).where(
                Message.campaign_id.is_not(None)
            )
        ).one()
    assert campaign == "completed"
    morning = evening + timedelta(hours=9, minutes=30)  # 08:00 the next day in Shanghai
    assert morning <= sent[0] <= sent[1] < morning + timedelta(minutes=10)


@pytest.mark.usefixtures("in_the_morning")
def test_demo_run_on_a_dirty_retailer_keeps_the_good_rows_and_reports_the_bad(
    cli, engine: Engine, tmp_path: Path
) -> None:
    directory = tmp_path / "dirty"
    result = _demo_run(cli, engine, *_run_arguments(directory, "--dirty", "0.05", "--json"))
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    members, orders = report["imports"]["members.csv"], report["imports"]["orders.csv"]
    assert members["rejected"] > 0
    assert Path(members["rejects_file"]).exists()
    assert orders["rejected"] > 0
    assert report["store"]["members"] >= 300 - members["rejected"]
    assert report["store"]["orders"] > 0


def test_generation_is_skipped_only_for_the_same_parameters(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    def generate(seed: int) -> DemoRun:
        spec = RetailerSpec(members=50, months=1, seed=seed, end=date(2025, 6, 30))
        demo = DemoRun(spec=spec, directory=tmp_path, engine=sqlite_engine)
        heard: list[tuple[str, str]] = []

        def count_files(run: DemoRun) -> str:
            return f"{len(list(run.directory.glob('*.csv')))} files"

        steps = (Step("generate", generate_files), Step("count", count_files))
        run_demo(run=demo, steps=steps, on_end=lambda name, line: heard.append((name, line)))
        assert [name for name, _ in heard] == ["generate", "count"]
        assert heard[1][1] == "4 files"
        return demo

    written = generate(1)
    before = (tmp_path / "orders.csv").stat().st_mtime_ns
    reused = generate(1)
    assert (written.reused_files, reused.reused_files) == (False, True)
    assert reused.generated is not None and written.generated is not None
    assert reused.generated.rows == written.generated.rows
    assert (tmp_path / "orders.csv").stat().st_mtime_ns == before
    other = generate(2)
    assert other.reused_files is False
