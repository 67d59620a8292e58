"""Which column of a file holds which field: header aliases (English, Chinese) and mapping files."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from tidings.imports.errors import ImportFileError
from tidings.imports.parsing import BLANK

# Aliases shared by member and order files; each importer adds its own.
PERSON_ALIASES: dict[str, tuple[str, ...]] = {
    "phone": ("phone", "mobile", "phone_number", "tel", "手机号", "手机", "电话", "手机号码",
              "联系电话", "电话号码", "联系方式"),
    "member_code": ("member_code", "member_id", "member_no", "card_no", "会员编号", "会员卡号",
                    "会员号", "卡号", "会员编码"),
    "store_code": ("store_code", "store", "store_name", "门店", "门店编码", "门店代码", "门店名称",
                   "所属门店", "开卡门店"),
}  # fmt: skip


def _header_key(text: str) -> str:
    """Folds a header for matching: no BOM, no unit in brackets, lower case, underscores."""
    key = text.strip(BLANK + '"').lower()
    for bracket in ("(", "（", "["):
        if bracket in key and not key.startswith(bracket):
            key = key.split(bracket, 1)[0]
    return key.strip(BLANK).replace(" ", "_").replace("-", "_")


def read_mapping(path: Path) -> dict[str, str]:
    """Reads a mapping file: a JSON object {"column": "field"} or lines `column=field`."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ImportFileError(f"cannot read mapping file '{path}': {error}") from error
    if text.lstrip().startswith("{"):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as error:
            raise ImportFileError(f"mapping file '{path}' is not valid JSON: {error}") from error
        return {str(column): str(name) for column, name in loaded.items()}
    mapping = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise ImportFileError(
                f"mapping file '{path}' line {number}: write 'column=field', not '{line}'"
            )
        column, name = line.split("=", 1)
        mapping[column.strip()] = name.strip()
    return mapping


def match_columns(
    header: list[str], aliases: Mapping[str, tuple[str, ...]], mapping: Mapping[str, str]
) -> dict[str, int]:
    """Returns field -> column index, from the explicit mapping first, then the aliases."""
    fields: dict[str, int] = {}
    positions = {_header_key(name): index for index, name in reversed(list(enumerate(header)))}
    for column, name in mapping.items():
        if name not in aliases:
            known = ", ".join(aliases)
            raise ImportFileError(f"the mapping names field '{name}'; known fields are: {known}")
        if _header_key(column) not in positions:
            raise ImportFileError(
                f"the mapping names column '{column}', which the file does not have"
                f" (its columns: {', '.join(header)})"
            )
        fields[name] = positions[_header_key(column)]
    for name, names in aliases.items():
        if name in fields:
            continue
        for alias in names:
            index = positions.get(_header_key(alias))
            if index is not None and index not in fields.values():
                fields[name] = index
                break
    return fields
