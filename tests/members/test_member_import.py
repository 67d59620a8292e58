"""Importing members as a new user would: dirty files, duplicates, consent, re-imports."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import Engine, func, inspect, select

from tidings import migrate
from tidings.config import get_settings
from tidings.db import make_engine, session_scope
from tidings.imports import RejectsWriter, indexes
from tidings.imports.staging import StagedRows
from tidings.members import importer, service
from tidings.members.importer import import_members
from tidings.members.models import ConsentEvent, Member

HEADER = "会员编号,手机号,姓名,性别,生日,会员等级,积分,门店,注册时间,是否同意营销\n"
DIRTY = (
    HEADER
    + "M001,138 0013 8000, 张三　,男,1990-01-02,金卡,100,S01,2023-01-01 10:00,是\n"  # line 2
    + "\n"  # line 3
    + "M002,1380013800,李四,女,1990-02-30,,50,,,否\n"  # line 4: bad date, bad phone
    + 'M003,010-12345678,"王,五",M,农历1985年3月4日,,20,朝阳店,,Y\n'  # line 5: landline kept
    + "M004,13900abc139,孙七,F,19920304,,,,,\n"  # line 6: letters, kept by code
    + ",13700137000,赵六,F,1992/3/4,,x,,,\n"  # line 7: points not a number
    + ",1370013700,,,,,,,,\n"  # line 8: bad phone and no code: rejected
    + 'M005,+86 136-0013-6000,"周\n八",female,L1988.8.8,,30,,,N\n'  # lines 9-10
    + "M001,+8613800138000,张三丰,,,,200,,2024-01-01,\n"  # line 11: duplicate of line 2
    + "M006,13500135000,吴九,X,1990-01-01,,,,,\n"  # line 12: gender unknown
)


def write(tmp_path: Path, text: str, encoding: str = "utf-8", name: str = "members.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def import_stores(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stores = write(tmp_path, "code,name,city,type\nS01,朝阳店,北京,社区店\n", name="stores.csv")
    assert cli("import", "stores", str(stores), "--json").exit_code == 0


def rejects_of(path: str) -> dict[int, str]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return {int(row["line"]): row["reason"] for row in csv.DictReader(handle)}


def test_dirty_gbk_file_imports_good_rows_and_reports_bad_ones(cli, tmp_path: Path) -> None:
    import_stores(cli, tmp_path)
    path = write(tmp_path, DIRTY, encoding="gbk")
    result = cli("import", "members", str(path), "--json")
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output)
    assert counts["rows"] == 9  # ten lines of data, one of them blank, one row on two lines
    assert counts["inserted"] == 4  # M001 (two rows), M003, M004, M005
    assert counts["merged_duplicates"] == 1
    assert counts["rejected"] == 4
    rejects = rejects_of(counts["rejects_file"])
    assert rejects[4] == "birthday '1990-02-30' is not a date"
    assert rejects[7] == "points 'x' is not a whole number"
    assert rejects[8] == "phone '1370013700' has 10 digits; a mainland mobile number has 11"
    assert rejects[12].startswith("gender 'X'")
    assert rejects[5].startswith("kept without phone: phone '010-12345678' is a landline")
    assert rejects[6].startswith("kept without phone: phone '13900abc139'")
    assert counts["rejects_file"] == str(tmp_path / "members.rejects.csv")


def test_dirty_file_values_are_cleaned(cli, tmp_path: Path) -> None:
    import_stores(cli, tmp_path)
    cli("import", "members", str(write(tmp_path, DIRTY, encoding="utf-8-sig")))
    shown = json.loads(cli("member", "show", "0086 138 0013 8000", "--json").output)
    assert shown["phone"] == "+8613800138000"
    assert shown["name"] == "张三丰"  # the newer row (registered 2024) wins
    assert shown["points"] == 200  # taken from the newest row, not summed
    assert shown["gender"] == "M" and shown["birthday"] == "1990-01-02"
    assert shown["tier"] == "金卡" and shown["store_code"] == "S01"
    assert shown["consent"] == "opted_in"
    lunar = json.loads(cli("member", "show", "M005", "--json").output)
    assert lunar["name"] == "周\n八" and lunar["gender"] == "F"
    assert lunar["birthday"] == "1988-08-08" and lunar["birthday_is_lunar"] is True
    assert lunar["consent"] == "opted_out"
    landline = json.loads(cli("member", "show", "M003", "--json").output)
    assert landline["phone"] is None and landline["phone_status"] == "landline"
    assert landline["name"] == "王,五" and landline["store_code"] == "S01"  # matched by name
    assert landline["birthday_is_lunar"] is True


def test_reimporting_the_same_file_changes_nothing(cli, engine: Engine, tmp_path: Path) -> None:
    import_stores(cli, tmp_path)
    path = write(tmp_path, DIRTY)
    first = json.loads(cli("import", "members", str(path), "--json").output)
    with session_scope(engine) as db_session:
        events = db_session.scalar(select(func.count()).select_from(ConsentEvent))
    second = json.loads(cli("import", "members", str(path), "--json").output)
    assert first["inserted"] > 0
    assert (second["inserted"], second["updated"]) == (0, 0)
    with session_scope(engine) as db_session:
        assert db_session.scalar(select(func.count()).select_from(ConsentEvent)) == events


def test_a_changed_file_updates_only_the_members_that_changed(cli, tmp_path: Path) -> None:
    header = "member_code,phone,name,points\n"
    path = write(tmp_path, header + "A1,13800138000,甲,10\nA2,13800138001,乙,20\n")
    cli("import", "members", str(path))
    path = write(tmp_path, header + "A1,13800138000,甲,10\nA2,13800138001,,25\n")
    counts = json.loads(cli("import", "members", str(path), "--json").output)
    assert (counts["inserted"], counts["updated"]) == (0, 1)
    shown = json.loads(cli("member", "show", "A2", "--json").output)
    assert shown["points"] == 25 and shown["name"] == "乙"  # an empty cell erases nothing


def test_duplicates_merge_through_phone_and_code(cli, tmp_path: Path) -> None:
    text = (
        "member_code,phone,name,tier,registered_at\n"
        "C1,13800138000,旧名,银卡,2020-01-01\n"
        ",+86 138 0013 8000,新名,,2022-01-01\n"  # same phone as line 2
        "C1,13900139000,,金卡,2021-01-01\n"  # same code as line 2: one member of three rows
    )
    counts = json.loads(cli("import", "members", str(write(tmp_path, text)), "--json").output)
    assert (counts["inserted"], counts["merged_duplicates"]) == (1, 2)
    shown = json.loads(cli("member", "show", "C1", "--json").output)
    assert shown["name"] == "新名"  # newest by registered_at
    assert shown["tier"] == "金卡"  # newest non-empty
    assert shown["phone"] == "+8613800138000"  # the 2022 row's phone


def test_an_older_file_does_not_overwrite_newer_values(cli, tmp_path: Path) -> None:
    header = "member_code,name,registered_at\n"
    cli("import", "members", str(write(tmp_path, header + "C1,新名,2024-01-01\n")))
    old = write(tmp_path, "member_code,name,registered_at,tier\nC1,旧名,2020-01-01,银卡\n")
    counts = json.loads(cli("import", "members", str(old), "--json").output)
    shown = json.loads(cli("member", "show", "C1", "--json").output)
    assert shown["name"] == "新名" and shown["tier"] == "银卡"
    assert counts["updated"] == 1


def test_a_row_naming_two_stored_members_is_rejected(cli, tmp_path: Path) -> None:
    header = "member_code,phone\n"
    cli("import", "members", str(write(tmp_path, header + "C1,13800138000\nC2,13900139000\n")))
    path = write(tmp_path, header + "C2,13800138000\n", name="again.csv")
    counts = json.loads(cli("import", "members", str(path), "--json").output)
    assert counts["rejected"] == 1
    assert "two different members" in rejects_of(counts["rejects_file"])[2]


def test_consent_is_recorded_only_when_it_changes(cli, engine: Engine, tmp_path: Path) -> None:
    header = "member_code,phone,consent\n"
    cli("import", "members", str(write(tmp_path, header + "C1,13800138000,是\n")))
    cli("import", "members", str(write(tmp_path, header + "C1,13800138000,Y\n")))
    cli("import", "members", str(write(tmp_path, header + "C1,13800138000,否\n", name="b.csv")))
    with session_scope(engine) as db_session:
        member = db_session.scalars(select(Member)).one()
        events = db_session.scalars(select(ConsentEvent).order_by(ConsentEvent.id)).all()
        assert [(e.kind.value, e.source) for e in events] == [
            ("opt_in", "members.csv"),
            ("opt_out", "b.csv"),
        ]
        assert all(e.member_id == member.id for e in events)


def test_unreadable_file_stops_with_one_line_and_imports_nothing(
    cli, engine: Engine, tmp_path: Path
) -> None:
    path = write(tmp_path, "姓名,积分\n张三,10\n")
    result = cli("import", "members", str(path), "--json")
    assert result.exit_code == 2
    assert "no phone or member_code column" in result.output
    with session_scope(engine) as db_session:
        assert db_session.scalar(select(func.count()).select_from(Member)) == 0


def test_human_summary_and_rejects_path(cli, tmp_path: Path) -> None:
    path = write(tmp_path, "phone\n13800138000\n123\n")
    chosen = tmp_path / "out" / "bad.csv"
    chosen.parent.mkdir()
    result = cli("import", "members", str(path), "--rejects", str(chosen))
    assert result.exit_code == 0
    assert "2 rows: 1 inserted" in result.output and "1 rejected" in result.output
    assert str(chosen) in result.output
    assert rejects_of(str(chosen))[3].startswith("phone '123'")


def test_member_show_says_when_nobody_matches(cli) -> None:
    result = cli("member", "show", "13800138000", "--json")
    assert result.exit_code == 1
    assert "no member" in result.output


def test_a_member_of_an_unknown_store_is_kept_and_gets_it_once_stores_are_imported(
    cli, tmp_path: Path
) -> None:
    path = write(tmp_path, HEADER + "M001,13800138000,张三,男,,,,S01,,是\n")
    counts = json.loads(cli("import", "members", str(path), "--json").output)
    assert (counts["inserted"], counts["rejected"]) == (1, 0)
    with open(counts["rejects_file"], encoding="utf-8-sig") as handle:
        [warning] = list(csv.DictReader(handle))
    assert warning["line"] == "2"
    assert warning["reason"] == "kept without store: store 'S01' is not known; import stores first"
    assert json.loads(cli("member", "show", "M001", "--json").output)["store_code"] is None
    import_stores(cli, tmp_path)
    cli("import", "members", str(path))
    assert json.loads(cli("member", "show", "M001", "--json").output)["store_code"] == "S01"


def test_a_large_import_in_many_batches_records_each_consent_change_once(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(indexes, "DEFER_MIN_ROWS", 0)  # builds its indexes after the load
    monkeypatch.setenv("TIDINGS_IMPORT_BATCH_ROWS", "1")
    get_settings.cache_clear()
    rows = "C1,13800138000,是\nC2,13900139000,否\nC1,13800138000,是\nC2,13900139000,是\n"
    result = import_members(
        engine=engine, path=write(tmp_path, "member_code,phone,consent\n" + rows)
    )
    get_settings.cache_clear()
    assert (result.inserted, result.merged_duplicates, result.rejected) == (2, 2, 0)
    assert "ix_members_store_id" in {
        index["name"] for index in inspect(engine).get_indexes("members")
    }
    with session_scope(engine) as db_session:
        events = db_session.execute(
            select(Member.code, ConsentEvent.kind)
            .join(Member, Member.id == ConsentEvent.member_id)
            .order_by(ConsentEvent.id)
        ).all()
    assert [(code, kind.value) for code, kind in events] == [
        ("C1", "opt_in"), ("C2", "opt_out"), ("C2", "opt_in"),
    ]  # fmt: skip


def test_a_phone_changed_by_one_batch_finds_its_member_in_the_next(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDINGS_IMPORT_BATCH_ROWS", "1")
    get_settings.cache_clear()
    rows = "C1,13800138000,\nC1,13900139000,\n,13900139000,新名\n"
    result = import_members(engine=engine, path=write(tmp_path, "member_code,phone,name\n" + rows))
    get_settings.cache_clear()
    assert (result.inserted, result.rejected) == (1, 0)
    with session_scope(engine) as db_session:
        members = db_session.execute(select(Member.code, Member.phone, Member.name)).all()
    assert [tuple(member) for member in members] == [("C1", "+8613900139000", "新名")]


def test_a_member_another_connection_adds_during_an_import_is_matched_not_doubled(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import into an empty store keeps its own members' keys instead of asking the
    store, until another connection writes: a member added meanwhile must still be found."""
    monkeypatch.setenv("TIDINGS_IMPORT_BATCH_ROWS", "1")
    get_settings.cache_clear()
    written, batches = RejectsWriter.write, []

    def write_then_add_one(self: RejectsWriter, *args: object, **kwargs: object) -> None:
        written(self, *args, **kwargs)  # type: ignore[arg-type]
        batches.append(1)
        if len(batches) == 1:  # between the first batch and the second
            with session_scope(engine) as db_session:
                db_session.add(Member(code="C9", phone="+8613900139000"))

    monkeypatch.setattr(RejectsWriter, "write", write_then_add_one)
    rows = "C1,13800138000\nC2,13900139000\nC1,13800138000\n"
    result = import_members(engine=engine, path=write(tmp_path, "member_code,phone\n" + rows))
    get_settings.cache_clear()
    assert (result.inserted, result.updated, result.rejected) == (1, 1, 0)
    with session_scope(engine) as db_session:
        members = db_session.execute(select(Member.code, Member.phone).order_by(Member.id)).all()
    assert [tuple(member) for member in members] == [
        ("C1", "+8613800138000"), ("C2", "+8613900139000"),
    ]  # fmt: skip


def test_an_imported_file_is_in_the_database_file_itself(
    cli, engine: Engine, tmp_path: Path
) -> None:
    """A copy of the database file alone, as a backup by `cp` takes it, holds the import."""
    if engine.dialect.name != "sqlite":
        pytest.skip("only SQLite keeps a write-ahead log beside its file")
    import_stores(cli, tmp_path)
    result = json.loads(cli("import", "members", str(write(tmp_path, DIRTY)), "--json").output)
    database = Path(engine.url.database or "")
    copy = tmp_path / "copy.db"
    copy.write_bytes(database.read_bytes())

    with sqlite3.connect(copy) as connection:
        (members,) = connection.execute("SELECT COUNT(*) FROM members").fetchone()

    assert members == result["inserted"] > 0


STAGED_ROWS = (
    "member_code,phone,name,points,store,consent,registered_at\n"
    "C1,13800138000,甲,10,S01,是,2023-01-01 10:00\n"
    "C2,13900139000,乙,,S99,否,\n"  # a store nobody imported: kept without it
    "C3,13700137000,丙,5,,是,2023-02-01\n"
    "C1,13800138000,甲二,20,,,2024-01-01\n"  # C1 again, in the next batch: matched
    "C4,,丁,7,S01,,\n"  # no phone: kept by its code
    "C3,13600136000,,,,否,2024-03-01\n"  # C3's phone changes
    "C5,13500135000,戊,3,,是,\n"
)


def _stored(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    queries = {
        "members": "SELECT code, phone, phone_status, name, gender, birthday, birthday_is_lunar,"
        " store_id, tier, points, registered_at FROM members ORDER BY code",
        "consent": "SELECT m.code, e.kind, e.topic, e.source, e.occurred_at IS m.registered_at"
        " FROM consent_events e"
        " JOIN members m ON m.id = e.member_id ORDER BY m.code, e.id",
        "lots": "SELECT m.code, l.kind, l.points, l.remaining, l.note FROM points_lots l"
        " JOIN members m ON m.id = l.member_id ORDER BY m.code, l.id",
        # Databases attached besides the file: 'temp' shows once the pooled connection that
        # answers has made a temporary table, which is no staged file.
        "attached": "SELECT name FROM pragma_database_list WHERE name <> 'temp' ORDER BY name",
    }
    with engine.connect() as connection:
        return {
            name: [tuple(row) for row in connection.exec_driver_sql(sql)]
            for name, sql in queries.items()
        }


def _imported(engine: Engine, tmp_path: Path) -> tuple[dict[str, int | None], dict[str, list]]:
    stores = write(tmp_path, "code,name,city,type\nS01,朝阳店,北京,社区店\n", name="stores.csv")
    importer.import_stores(engine=engine, path=stores)
    result = import_members(engine=engine, path=write(tmp_path, STAGED_ROWS))
    return result.as_dict(), _stored(engine)


def test_a_large_import_stages_its_new_members_and_stores_what_a_small_one_does(
    sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A big file's new members are written by a child to a file of their own and copied in
    from there: the store must end exactly as after binding every row, staged files gone."""
    monkeypatch.setenv("TIDINGS_IMPORT_BATCH_ROWS", "2")
    get_settings.cache_clear()
    bound_engine = make_engine(f"sqlite:///{tmp_path / 'bound.db'}")
    migrate.upgrade(bound_engine)
    bound = _imported(bound_engine, tmp_path)
    bound_engine.dispose()
    copies: list[bool] = []
    copied: list[str] = []
    copy, copy_table = service.copy_staged_members, importer.copy_staged

    def copy_and_note(**kwargs: Any) -> pl.Series:
        copies.append(kwargs["every"])
        return copy(**kwargs)

    def copy_table_and_note(store: Any, staged: StagedRows, table: str, **kwargs: Any) -> int:
        copied.append(table)
        return copy_table(store, staged, table, **kwargs)

    monkeypatch.setattr(service, "copy_staged_members", copy_and_note)
    monkeypatch.setattr(importer, "copy_staged", copy_table_and_note)
    monkeypatch.setattr(indexes, "DEFER_MIN_ROWS", 0)  # a large import, as far as it can tell
    staged = _imported(sqlite_engine, tmp_path)
    get_settings.cache_clear()

    assert copies == [True, False, False, True]  # batches 2 and 3 also match stored members
    assert copied == ["points_lots", "consent_events"] * 2  # batches 1 and 4: all new
    assert staged == bound
    assert (staged[0]["inserted"], staged[0]["merged_duplicates"]) == (5, 2)
    assert staged[1]["attached"] == [("main",)]
    assert len(staged[1]["members"]) == 5 and len(staged[1]["lots"]) == 5
    assert not list(Path(sqlite_engine.url.database or "").parent.glob(".tidings-read-*"))


def test_a_large_import_that_fails_leaves_no_staged_file_behind(
    sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that fails after its staged file is attached: the batches before stay, the
    failed one is rolled back, and neither its file nor its attachment outlives the import."""
    monkeypatch.setenv("TIDINGS_IMPORT_BATCH_ROWS", "2")
    monkeypatch.setattr(indexes, "DEFER_MIN_ROWS", 0)
    get_settings.cache_clear()
    copy, copies = service.copy_staged_members, []

    def copy_then_fail_on_the_second(**kwargs: Any) -> pl.Series:
        copies.append(1)
        ids = copy(**kwargs)
        if len(copies) == 2:
            raise RuntimeError("the disk is full")
        return ids

    monkeypatch.setattr(service, "copy_staged_members", copy_then_fail_on_the_second)
    with pytest.raises(RuntimeError, match="the disk is full"):
        _imported(sqlite_engine, tmp_path)
    get_settings.cache_clear()

    stored = _stored(sqlite_engine)
    assert [member[0] for member in stored["members"]] == ["C1", "C2"]  # the first batch
    assert stored["attached"] == [("main",)]
    assert not list(Path(sqlite_engine.url.database or "").parent.glob(".tidings-read-*"))
