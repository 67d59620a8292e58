"""Finding members for a person at a screen: by phone, member code, name or tag, one page
at a time. Phone and code look-ups use their unique indexes; name and tag searches scan only
until a page is full."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, String, cast, select
from sqlalchemy.orm import Session

from tidings.members.models import Member
from tidings.members.phone import classify

PAGE_SIZE = 25  # members per page


@dataclass(frozen=True)
class MemberPage:
    """One page of a search; `has_more` says whether a next page exists."""

    members: list[Member]
    page: int
    has_more: bool


def _condition(query: str, region: str) -> Select[Any]:
    statement = select(Member).where(Member.erased_at.is_(None))
    if query.startswith("#"):
        # Tags are a JSON list; a quoted match finds the whole tag, not part of another,
        # whether the store kept the text as written or escaped (as json.dumps writes it).
        tag = query[1:].strip().replace('"', "")
        text = cast(Member.tags, String)
        quoted, escaped = f'"{tag}"', json.dumps(tag)
        return statement.where(
            text.contains(quoted, autoescape=True) | text.contains(escaped, autoescape=True)
        )
    phone, _status, _reason = classify(query, region=region)
    if phone is not None:
        return statement.where((Member.phone == phone) | (Member.code == query))
    by_name = Member.name.startswith(query, autoescape=True)
    if any("\u4e00" <= char <= "\u9fff" for char in query):
        return statement.where(by_name)  # Chinese characters: a name, never a code
    if any(char.isdigit() for char in query):
        return statement.where(Member.code == query)
    return statement.where((Member.code == query) | by_name)


def search_members(
    *,
    db_session: Session,
    query: str,
    region: str,
    store_id: int | None = None,
    page: int = 1,
    page_size: int = PAGE_SIZE,
) -> MemberPage:
    """Members matching `query` (a phone, a code, a name's start or #tag), newest first."""
    query = query.strip()
    statement: Select[Any] = select(Member).where(Member.erased_at.is_(None))
    if query:
        statement = _condition(query, region)
    if store_id is not None:
        statement = statement.where(Member.store_id == store_id)
    page = max(page, 1)
    rows = list(
        db_session.scalars(
            statement.order_by(Member.id.desc()).offset((page - 1) * page_size).limit(page_size + 1)
        )
    )
    return MemberPage(members=rows[:page_size], page=page, has_more=len(rows) > page_size)
