"""The store helpers: times stay timezone-aware, bulk writes join the caller's transaction."""

from __future__ import annotations

import multiprocessing
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from tidings import bulk, clock, scans
from tidings.bulk import bulk_insert
from tidings.db import make_engine, read_frame, session_scope, writing_scope
from tidings.members.models import Member, Store
from tidings.profiles.models import Profile
from tidings.scans import TableScan, read_tables_in_children


def test_times_come_back_aware_and_in_utc(engine: Engine) -> None:
    shanghai = timezone(timedelta(hours=8))
    with session_scope(engine) as db_session:
        db_session.add(
            Member(code="M1", registered_at=datetime(2025, 3, 1, 9, 30, tzinfo=shanghai))
        )
    with session_scope(engine) as db_session:
        member = db_session.scalars(select(Member)).one()
    assert member.registered_at == datetime(2025, 3, 1, 1, 30, tzinfo=UTC)
    assert member.registered_at is not None and member.registered_at.utcoffset() == timedelta(0)


def test_naive_times_are_refused(engine: Engine) -> None:
    with pytest.raises(Exception, match="timezone-aware"), session_scope(engine) as db_session:
        db_session.add(Member(code="M1", registered_at=datetime(2025, 3, 1, 9, 30)))
        db_session.flush()


def test_bulk_insert_then_read_frame_round_trips(engine: Engine) -> None:
    stores = pl.DataFrame(
        {
            "code": ["SH01", "BJ01"],
            "name": ["上海徐汇店", "北京朝阳店"],
            "city": ["上海", "北京"],
            "latitude": [31.19, 39.92],
            "created_at": [datetime(2025, 1, 1, tzinfo=UTC)] * 2,
        }
    )
    with session_scope(engine) as db_session:
        assert bulk_insert(db_session, "stores", stores) == 2
    frame = read_frame(
        engine,
        "SELECT code, name, city, latitude, created_at FROM stores ORDER BY code",
        schema={"created_at": pl.Datetime("us", "UTC"), "latitude": pl.Float64},
    )
    assert frame["code"].to_list() == ["BJ01", "SH01"]
    assert frame["name"].to_list() == ["北京朝阳店", "上海徐汇店"]
    assert frame["created_at"].to_list() == [datetime(2025, 1, 1, tzinfo=UTC)] * 2


def test_bulk_insert_rolls_back_with_the_transaction(engine: Engine) -> None:
    stores = pl.DataFrame({"code": ["SH01"], "name": ["上海徐汇店"]}).with_columns(
        created_at=pl.lit(clock.now())
    )
    with pytest.raises(RuntimeError), session_scope(engine) as db_session:
        bulk_insert(db_session, "stores", stores)
        raise RuntimeError("the import failed half-way")
    with session_scope(engine) as db_session:
        assert db_session.scalar(select(func.count()).select_from(Store)) == 0


def test_frozen_clock_is_what_now_returns() -> None:
    moment = datetime(2026, 1, 28, 19, 59, tzinfo=timezone(timedelta(hours=8)))
    with clock.frozen(moment):
        assert clock.now() == moment
        assert clock.now().tzinfo == UTC
    assert clock.now() != moment


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def test_big_tables_read_in_child_processes_match_a_read_here(
    sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with session_scope(sqlite_engine) as db_session:
        db_session.add(Store(code="SH01", name="上海徐汇店"))
        db_session.add_all(
            Member(code=f"M{n}", phone=f"+86138000000{n:02d}", tier="gold" if n % 3 else None)
            for n in range(10)
        )
        db_session.add(Member(code="M99", registered_at=datetime(2025, 3, 1, 9, 30, tzinfo=UTC)))
    members = TableScan(
        table="members",
        columns="code, COALESCE(tier, '') AS tier, registered_at, birthday_is_lunar",
        where="code != 'M5'",
        schema={
            "code": pl.String,
            "tier": pl.String,
            "registered_at": pl.Datetime("us", "UTC"),
            "birthday_is_lunar": pl.Boolean,
        },
        slices=4,
    )
    none_left = TableScan(
        table="members", columns="code", where="code = 'none'", schema={}, slices=2
    )
    empty = TableScan(table="profiles", columns="member_id", schema={"member_id": pl.Int64})
    here = read_frame(sqlite_engine, members.sql(), schema=members.schema)
    monkeypatch.setattr(scans, "CHILD_READ_MIN_ROWS", 0)
    cpu_before = _children_cpu_seconds()
    read = read_tables_in_children(
        sqlite_engine, {"members": members, "none_left": none_left, "empty": empty}
    )
    scans.stop_kept_children()  # a child's CPU is counted here once it has ended
    assert _children_cpu_seconds() > cpu_before, "no child process did the reading"
    assert "adbc_driver_sqlite" not in sys.modules
    assert read["members"].equals(here)
    assert read["members"]["registered_at"].drop_nulls().to_list() == [
        datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    ]
    assert read["none_left"].height == 0
    assert read["empty"].schema == {"member_id": pl.Int64}
    assert not list(Path(f"{sqlite_engine.url.database}").parent.glob(".tidings-read-*"))


def test_kept_children_start_ahead_only_for_a_table_they_would_read(
    sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A snapshot about to be read starts the children ahead of time, but a small store's
    tables are read in this process: it starts none."""
    scans.stop_kept_children()
    with session_scope(sqlite_engine) as db_session:
        db_session.add_all(Member(code=f"M{n}", phone=f"+86138000000{n:02d}") for n in range(10))
    monkeypatch.setattr(scans, "CHILD_READ_MIN_ROWS", 100)
    scans.start_kept_children(sqlite_engine, "members")
    assert multiprocessing.active_children() == []
    monkeypatch.setattr(scans, "CHILD_READ_MIN_ROWS", 5)
    scans.start_kept_children(sqlite_engine, "members")
    assert len(multiprocessing.active_children()) == scans.CHILD_READERS
    scans.stop_kept_children()


def test_a_read_after_a_kept_child_was_killed_starts_new_children(
    sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The children kept after a read serve the next one; when one of them has been killed
    meanwhile (out of memory, by hand), the read starts new ones and succeeds."""
    with session_scope(sqlite_engine) as db_session:
        db_session.add_all(Member(code=f"M{n}", phone=f"+86138000000{n:02d}") for n in range(10))
    codes = {"members": TableScan(table="members", columns="code", schema={"code": pl.String})}
    monkeypatch.setattr(scans, "CHILD_READ_MIN_ROWS", 0)
    first = read_tables_in_children(sqlite_engine, codes)["members"]
    kept = scans.kept_children(sqlite_engine)
    assert kept is not None
    child = kept.submit(os.getpid).result()
    assert child != os.getpid()
    assert read_tables_in_children(sqlite_engine, codes)["members"].equals(first)
    assert scans.kept_children(sqlite_engine) is kept
    os.kill(child, 0)  # still running: the second read started no new children
    os.kill(child, signal.SIGKILL)
    # The pool learns of the death when it reaps the child; a read begun before that may
    # still be served by the other child alone.
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        time.sleep(0.01)

    again = read_tables_in_children(sqlite_engine, codes)["members"]

    assert sorted(again["code"]) == sorted(first["code"]) == sorted(f"M{n}" for n in range(10))
    assert scans.kept_children(sqlite_engine) is not kept
    scans.stop_kept_children()


UNGUARDED_SCRIPT = """
import resource, sys
from tidings import migrate, scans
from tidings.db import make_engine, session_scope
from tidings.members.models import Member
from tidings.profiles import service

with open(sys.argv[2], "a") as marker:
    print("ran", file=marker)
engine = make_engine(f"sqlite:///{sys.argv[1]}")
migrate.upgrade(engine)
with session_scope(engine) as db_session:
    db_session.add(Member(code="M1", phone="+8613800000001"))
scans.CHILD_READ_MIN_ROWS = 0
written = service.refresh(engine=engine).profiles_written
children = resource.getrusage(resource.RUSAGE_CHILDREN)
print(written, children.ru_utime + children.ru_stime > 0)
"""


def test_a_script_without_a_main_guard_runs_once_while_children_read(tmp_path: Path) -> None:
    """Children that read for a refresh leave the caller's script alone: a script that calls
    tidings at its top level (no `if __name__ == "__main__"`) runs once, not again in each
    child (where it would fail, or import everything the script imports)."""
    script, marker = tmp_path / "nightly.py", tmp_path / "runs.txt"
    script.write_text(UNGUARDED_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "store.db"), str(marker)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "True"]  # one profile, children did the reading
    assert marker.read_text().splitlines() == ["ran"]


@pytest.mark.parametrize("in_children", [False, True], ids=["read-here", "read-in-children"])
def test_bulk_reads_and_a_refresh_leave_the_stores_open_connections_working(
    sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch, in_children: bool
) -> None:
    """A bulk read or a profile refresh must not close the WAL under the engine's connections.

    A second SQLite library in the process would believe it held the last connection when it
    closed: it would checkpoint and delete the WAL and drop the locks of the engine's own
    connections, so that a connection kept open meanwhile sees a stale or broken file. Child
    processes may use their own SQLite library: between processes the locks hold.
    """
    from tidings.profiles import service

    if in_children:
        monkeypatch.setattr(scans, "CHILD_READ_MIN_ROWS", 0)

    wal = Path(f"{sqlite_engine.url.database}-wal")
    with session_scope(sqlite_engine) as db_session:
        db_session.add(Store(code="SH01", name="上海徐汇店"))
        db_session.add_all(Member(code=f"M{n}", phone=f"+86138000000{n:02d}") for n in range(3))
    with sqlite_engine.connect() as held:
        assert held.scalar(select(func.count()).select_from(Member)) == 3
        held.commit()
        assert wal.exists()
        frame = read_frame(sqlite_engine, "SELECT code FROM members ORDER BY code")
        assert frame["code"].to_list() == ["M0", "M1", "M2"]
        service.refresh(engine=sqlite_engine)
        assert wal.exists(), "the WAL was deleted under an open connection"
        assert "adbc_driver_sqlite" not in sys.modules, "a second SQLite library was loaded here"
        with session_scope(sqlite_engine) as db_session:
            db_session.add(Member(code="M3", phone="+8613800000003"))
        assert held.scalar(select(func.count()).select_from(Member)) == 4
        assert held.scalar(select(func.count()).select_from(Profile)) == 3
        held.commit()
    fresh = read_frame(sqlite_engine, "SELECT COUNT(*) AS members FROM members")
    assert fresh["members"].to_list() == [4]
    with sqlite_engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"


def test_a_writing_scope_waits_for_another_writer_instead_of_failing(tmp_path: Path) -> None:
    """A transaction that read before another writer committed cannot write on SQLite; one
    begun by `writing_scope` waits for the other writer and then sees its row."""
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE notes (text TEXT)")
    other = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO notes VALUES ('theirs')")
    seen: list[int] = []

    def read_then_write() -> None:
        with writing_scope(engine) as db_session:
            seen.append(db_session.execute(text("SELECT count(*) FROM notes")).scalar_one())
            db_session.execute(text("INSERT INTO notes VALUES ('mine')"))

    writer = threading.Thread(target=read_then_write)
    writer.start()
    writer.join(timeout=0.5)  # it waits for the other writer's lock
    other.execute("COMMIT")
    writer.join()
    with session_scope(engine) as db_session:
        notes = db_session.execute(text("SELECT text FROM notes ORDER BY rowid")).scalars().all()
    assert seen == [1] and notes == ["theirs", "mine"]
    other.close()
    engine.dispose()


def test_append_rows_writes_every_value_as_the_frame_holds_it(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small blocks and statements, so that a column is the same in every row of one block
    (bound once there) and not in another, beside empty columns and booleans."""
    monkeypatch.setattr(bulk, "SQLITE_APPEND_BLOCK", 120)
    monkeypatch.setattr(bulk, "SQLITE_ROWS_PER_STATEMENT", 50)
    count = 250
    start = datetime(2025, 1, 1, tzinfo=UTC)
    members = pl.DataFrame(
        {
            "id": range(1, count + 1),
            "code": [f"M{n}" for n in range(count)],
            "phone_status": ["ok"] * count,
            "name": [None] * count,
            "tier": ["gold" if n < 100 and n % 3 else None for n in range(count)],
            "birthday_is_lunar": [n % 2 == 0 for n in range(count)],
            "points": [7] * count,
            "created_at": [start] * count,
            "updated_at": [start + timedelta(seconds=n // 130) for n in range(count)],
        },
        schema_overrides={"name": pl.String, "tier": pl.String},
    )
    with session_scope(engine) as db_session:
        assert bulk.append_rows(db_session, "members", members) == count
    stored = read_frame(
        engine,
        f"SELECT {', '.join(members.columns)} FROM members ORDER BY id",
        schema={
            **members.schema,
            "birthday_is_lunar": pl.Boolean,
            "created_at": pl.Datetime("us", "UTC"),
            "updated_at": pl.Datetime("us", "UTC"),
        },
    )
    assert stored.equals(members.with_columns(pl.col(pl.Datetime).dt.cast_time_unit("us")))


def test_appended_rows_keep_their_ids_whether_or_not_they_follow_the_last_one(
    engine: Engine,
) -> None:
    """On SQLite, ids that follow the table's highest one are left for it to give; the rows
    must still end up under exactly the ids their frame holds."""
    now = datetime(2025, 1, 1, tzinfo=UTC)

    def members(ids: list[int]) -> pl.DataFrame:
        return pl.DataFrame({"id": ids, "code": [f"M{n}" for n in ids]}).with_columns(
            phone_status=pl.lit("ok"),
            birthday_is_lunar=pl.lit(False),
            points=pl.lit(0),
            created_at=pl.lit(now, dtype=pl.Datetime("us", "UTC")),
            updated_at=pl.lit(now, dtype=pl.Datetime("us", "UTC")),
        )

    batches = [[1, 2, 3], [4, 5], [9, 12], [13], [20, 21, 22], [14, 15]]
    with session_scope(engine) as db_session:
        for ids in batches:
            bulk.append_rows(db_session, "members", members(ids))
        db_session.execute(text("DELETE FROM members WHERE id = 22"))
        bulk.append_rows(db_session, "members", members([22, 23]))
    stored = read_frame(
        engine,
        "SELECT id, code FROM members ORDER BY id",
        schema={"id": pl.Int64, "code": pl.String},
    )
    expected = sorted(n for ids in [*batches, [23]] for n in ids)
    assert stored["id"].to_list() == expected
    assert stored["code"].to_list() == [f"M{n}" for n in expected]


def test_a_copy_that_meets_a_taken_key_writes_nothing_and_the_transaction_goes_on(
    engine: Engine,
) -> None:
    """On PostgreSQL `copy_unless_taken` COPYs in a savepoint: one taken key undoes the whole
    COPY (the caller then skips the taken keys its own way), and the transaction lives on."""
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite writes with INSERT OR IGNORE, not COPY")
    now = datetime(2025, 1, 1, tzinfo=UTC)
    stores = pl.DataFrame({"code": ["S1", "S2"], "name": ["一店", "二店"]}).with_columns(
        created_at=pl.lit(now, dtype=pl.Datetime("us", "UTC"))
    )
    with session_scope(engine) as db_session:
        assert bulk.copy_unless_taken(db_session, "stores", stores.head(1))
        assert not bulk.copy_unless_taken(db_session, "stores", stores)
        db_session.add(Store(code="S3", name="三店"))
    with session_scope(engine) as db_session:
        assert db_session.scalars(select(Store.code).order_by(Store.code)).all() == ["S1", "S3"]


def test_a_wide_page_cache_lasts_for_its_block_and_never_narrows_one(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("the page cache is SQLite's")

    def cache(db_session: Session) -> int:
        return int(db_session.execute(text("PRAGMA cache_size")).scalar_one())

    with session_scope(engine) as db_session:
        before = cache(db_session)
        with bulk.wide_page_cache(db_session, 4096):
            inside = cache(db_session)
            with bulk.wide_page_cache(db_session, 1024):
                nested = cache(db_session)
        assert (inside, nested, cache(db_session)) == (-4096, -4096, before)
