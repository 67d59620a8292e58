"""Reading CSV imports: encodings, header aliases, mapping files and real line numbers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from tidings.bulk import SQLITE_ROWS_PER_STATEMENT
from tidings.imports import (
    PERSON_ALIASES,
    CsvSource,
    ImportFileError,
    ImportResult,
    cents,
    encoding,
    local_time,
    read_mapping,
    whole_number,
)
from tidings.imports.ahead import read_ahead
from tidings.imports.loading import key_rows, keys_param
from tidings.imports.parsing import (
    TwoStep,
    common_cents,
    common_local_time,
    common_whole_number,
    with_parsed,
)

HEADER = "手机号,姓名,备注\n"


def rows_of(path: Path, batch_rows: int = 1000, **kwargs: object) -> pl.DataFrame:
    aliases = {**PERSON_ALIASES, "name": ("name", "姓名")}
    with CsvSource(path, aliases=aliases, **kwargs) as source:  # type: ignore[arg-type]
        frames = list(source.batches(batch_rows))
        return source.canonical(pl.concat(frames))


def test_blank_lines_and_quoted_newlines_keep_real_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "members.csv"
    body = (
        '13800138000,张三,a\n\n13800138001,"李\n四",b\r\n\r\n'
        '13800138002,"王,五",c\n13800138003,赵六,d'
    )
    path.write_text(HEADER + body, encoding="utf-8")
    frame = rows_of(path)
    assert frame["line"].to_list() == [2, 4, 7, 8]
    assert frame["name"].to_list() == ["张三", "李\n四", "王,五", "赵六"]


def test_batches_split_anywhere_keep_the_same_lines(tmp_path: Path) -> None:
    path = tmp_path / "members.csv"
    lines = [
        f'1380013{n:04d},"名\n{n}",x' if n % 3 == 0 else f"1380013{n:04d},名{n},x"
        for n in range(50)
    ]
    path.write_text(HEADER + "\n\n".join(lines) + "\n", encoding="utf-8")
    whole = rows_of(path, batch_rows=1000)
    split = rows_of(path, batch_rows=7)
    assert whole.equals(split)
    assert whole.height == 50
    assert whole["line"][0] == 2 and whole["line"][1] == 5


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-8-sig", "utf-8", "utf-16"])
def test_common_encodings_are_read(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "members.csv"
    path.write_bytes((HEADER + "13800138000,张三,会员\n").encode(encoding))
    frame = rows_of(path)
    assert frame["name"].to_list() == ["张三"]
    assert frame["phone"].to_list() == ["13800138000"]


def test_gbk_copy_is_removed_after_reading(tmp_path: Path) -> None:
    path = tmp_path / "members.csv"
    path.write_bytes((HEADER + "13800138000,张三,x\n").encode("gbk"))
    with CsvSource(path, aliases=PERSON_ALIASES) as source:
        copy = source.temporary
        assert copy is not None and copy.exists()
    assert not copy.exists()


def test_a_file_that_mixes_encodings_stops_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / "members.csv"
    path.write_bytes(
        HEADER.encode() + "13800138000,张三,x\n".encode() + "13800138001,李四,y\n".encode("gbk")
    )
    with pytest.raises(ImportFileError, match=r"line 3 .* mixes encodings"):
        rows_of(path)


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files read a few bytes at a time, so that characters fall across blocks."""
    monkeypatch.setattr(encoding, "READ_BLOCK_BYTES", 5)
    monkeypatch.setattr(encoding, "SNIFF_BYTES", 40)


def test_characters_across_read_blocks_are_read_whole(tmp_path: Path, small_blocks: None) -> None:
    path = tmp_path / "members.csv"
    names = ["张三", "李四", "王五", "赵六"] * 5
    path.write_text(
        HEADER + "".join(f"138001380{n:02d},{name},x\n" for n, name in enumerate(names)),
        encoding="utf-8",
    )
    assert rows_of(path)["name"].to_list() == names


def test_a_late_line_in_another_encoding_stops_with_its_line(
    tmp_path: Path, small_blocks: None
) -> None:
    path = tmp_path / "members.csv"
    good = "".join(f"138001380{n:02d},张三,x\n" for n in range(30)).encode()
    path.write_bytes(HEADER.encode() + good + "13800138099,李四,y\n".encode("gbk"))
    with pytest.raises(ImportFileError, match=r"line 32 .* mixes encodings"):
        rows_of(path)


def test_a_file_cut_inside_a_character_says_so(tmp_path: Path, small_blocks: None) -> None:
    path = tmp_path / "members.csv"
    path.write_bytes((HEADER + "13800138000,张三,x\n" * 10 + "13800138011,李").encode()[:-1])
    with pytest.raises(ImportFileError, match="ends in the middle of a character"):
        rows_of(path)


def test_an_excel_workbook_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "members.xlsx"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(ImportFileError, match="save it as CSV"):
        rows_of(path)


def test_missing_required_column_names_the_columns_found(tmp_path: Path) -> None:
    path = tmp_path / "members.csv"
    path.write_text("姓名,积分\n张三,10\n", encoding="utf-8")
    with CsvSource(path, aliases=PERSON_ALIASES) as source, pytest.raises(ImportFileError) as error:
        source.require(any_of=("phone", "member_code"))
    assert "phone or member_code" in str(error.value)
    assert "姓名, 积分" in str(error.value)


@pytest.mark.parametrize(
    "content", ['{"客户手机": "phone", "顾客": "name"}', "# ours\n客户手机 = phone\n顾客=name\n"]
)
def test_mapping_file_names_columns(tmp_path: Path, content: str) -> None:
    path = tmp_path / "members.csv"
    path.write_text("客户手机,顾客\n13800138000,张三\n", encoding="utf-8")
    mapping = tmp_path / "mapping.txt"
    mapping.write_text(content, encoding="utf-8")
    assert read_mapping(mapping) == {"客户手机": "phone", "顾客": "name"}
    frame = rows_of(path, mapping_path=mapping)
    assert frame.select("phone", "name").row(0) == ("13800138000", "张三")


def test_mapping_to_an_unknown_field_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "members.csv"
    path.write_text("客户手机\n13800138000\n", encoding="utf-8")
    mapping = tmp_path / "mapping.json"
    mapping.write_text('{"客户手机": "mobile_phone"}', encoding="utf-8")
    with pytest.raises(ImportFileError, match="field 'mobile_phone'"):
        rows_of(path, mapping_path=mapping)


def test_headers_with_units_and_spaces_match() -> None:
    from tidings.imports import match_columns

    aliases = {"phone": ("手机号",), "amount": ("金额",), "member_code": ("member_code",)}
    fields = match_columns([" 手机号 ", "金额（元）", "Member Code"], aliases, {})
    assert fields == {"phone": 0, "amount": 1, "member_code": 2}


def test_amounts_in_yuan_become_exact_cents() -> None:
    frame = pl.DataFrame({"a": ["0.1", "19.99", "¥1,299.00", "-3.5", "12.345", "abc", "100"]})
    result = frame.select(cents(pl.col("a")).alias("a"))["a"].to_list()
    assert result == [10, 1999, 129900, -350, None, None, 10000]


def test_numbers_typed_in_full_width_digits_are_read() -> None:
    frame = pl.DataFrame({"a": ["１２３９", "１，２００", "１９．９９", "12a"]})
    numbers = frame.select(whole_number(pl.col("a")).alias("n"), cents(pl.col("a")).alias("c"))
    assert numbers["n"].to_list() == [1239, 1200, None, None]
    assert numbers["c"].to_list() == [123900, 120000, 1999, None]


def test_times_without_offset_are_local_and_stored_utc() -> None:
    frame = pl.DataFrame(
        {"t": ["2024-05-01 10:00:00", "2024/5/1 10:00", "2024-05-01T10:00:00+00:00"]}
    )
    result = (
        frame.select(local_time(pl.col("t"), "Asia/Shanghai").alias("t"))["t"].dt.hour().to_list()
    )
    assert result == [2, 2, 10]


def test_import_result_has_exactly_the_contract_keys() -> None:
    assert set(ImportResult().as_dict()) == {
        "rows", "inserted", "updated", "merged_duplicates", "rejected", "rejects_file",
    }  # fmt: skip


SPELLINGS = st.one_of(
    st.from_regex(r"\A-?[0-9]{1,15}(\.[0-9]{0,3})?\Z"),
    st.from_regex(r"\A20[0-9]{2}[-/][0-9]{1,2}[-/][0-9]{1,2}( [0-9]{1,2}:[0-9]{2}(:[0-9]{2})?)?\Z"),
    st.sampled_from(["2024-03-31 02:30:00", "2023-02-29 10:00:00", "１２", "¥1,299.00", "12."]),
    st.text(alphabet="0123456789-.: ,", max_size=20),
)


@given(st.lists(st.one_of(st.none(), SPELLINGS), max_size=30))
@settings(max_examples=300, deadline=None)
def test_the_common_spelling_shortcut_reads_every_cell_as_the_full_parser(
    cells: list[str | None],
) -> None:
    frame = pl.DataFrame({"v": cells}, schema={"v": pl.String})
    value = pl.col("v")
    steps = {
        "cents": TwoStep("v", common_cents(value), cents(value)),
        "whole": TwoStep("v", common_whole_number(value), whole_number(value)),
        "time": TwoStep(
            "v", common_local_time(value, "Europe/Paris"), local_time(value, "Europe/Paris")
        ),
    }
    shortcut = with_parsed(frame, steps)
    full = frame.select(step.full.alias(name) for name, step in steps.items())
    for name in steps:
        assert shortcut[name].to_list() == full[name].to_list(), name


def test_reading_ahead_keeps_order_and_raises_after_the_good_batches() -> None:
    def batches() -> Iterator[int]:
        yield from range(5)
        raise ImportFileError("line 99: a quoted field opened here is never closed")

    seen = []
    with pytest.raises(ImportFileError, match="line 99"):
        for item in read_ahead(batches()):
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4]


def test_leaving_early_stops_reading_ahead_and_closes_the_file() -> None:
    produced, closed = [], []

    def batches() -> Iterator[int]:
        try:
            for item in range(1_000):
                produced.append(item)
                yield item
        finally:
            closed.append(True)

    for item in read_ahead(batches(), depth=1):
        if item == 2:
            break
    assert closed == [True]
    assert len(produced) <= 5  # the batch in hand, one waiting, one being read


def test_appending_rows_writes_every_one_and_ignores_known_keys_when_asked(
    engine: Engine,
) -> None:
    from tidings.bulk import bulk_store

    now = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    count = 2 * SQLITE_ROWS_PER_STATEMENT + 37  # full statements and a remainder
    stores = pl.DataFrame(
        {
            "code": [f"S{number}" for number in range(count)],
            "name": [f"门店{number}" for number in range(count)],
            "city": [None if number % 3 else "上海" for number in range(count)],
            "latitude": [31.2 + number / 1000 for number in range(count)],
        }
    ).with_columns(pl.lit(now).alias("created_at"))
    with bulk_store(engine) as store:
        assert store.append("stores", stores) == count
        if store.dialect == "sqlite":
            again = stores.head(5).with_columns(pl.col("code").str.replace("S", "T"))
            both = pl.concat([stores.tail(5), again])
            assert store.append("stores", both, verb="INSERT OR IGNORE") == 5
            count += 5
        store.commit()
        stored = store.frame(
            "SELECT code, name, city, latitude, created_at FROM stores ORDER BY id",
            schema={**dict(stores.schema), "created_at": pl.Datetime("us", "UTC")},
        )
    assert stored.height == count
    assert stored.head(stores.height).equals(stores)


def test_keys_travel_to_the_store_as_they_are(engine: Engine) -> None:
    from tidings.bulk import bulk_store

    texts = pl.Series(['M"1', "back\\slash", "手机 13800138000", "line\nbreak", None, "M1", "M1"])
    numbers = pl.Series([3, None, 1, 2**40, 3])
    with bulk_store(engine) as store:
        found = [
            store.frame(
                f"SELECT k.value FROM {key_rows(store, kind)}",
                (keys_param(store, keys),),
                schema={"value": keys.dtype},
            )["value"]
            for keys, kind in ((texts, "TEXT"), (numbers, "BIGINT"))
        ]
    assert sorted(found[0].to_list()) == sorted(set(texts.drop_nulls().to_list()))
    assert sorted(found[1].to_list()) == [1, 3, 2**40]
