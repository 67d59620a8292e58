"""Segments: evaluate a rule over an audience, count it against the store, keep named ones."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from tidings import clock
from tidings.config import get_settings
from tidings.db import session_scope
from tidings.segments.audience import local_today
from tidings.segments.compiler import Context, compile_rule, unknown_segment
from tidings.segments.history import aggregates_used, with_aggregates
from tidings.segments.lexer import RuleError
from tidings.segments.models import Segment
from tidings.segments.rules import parse
from tidings.segments.snapshot import order_lines_snapshot, snapshot
from tidings.segments.tree import Rule, segment_names, to_text

SAMPLE_SIZE = 5  # member ids shown with a count
NAME_RULE = re.compile(r"\w[\w.\- ]*", re.UNICODE)
NAME_LENGTH = 100  # characters, as the segments table allows


class SegmentError(ValueError):
    """A segment operation a person asked for cannot be done (the message says why)."""


class SegmentNotFound(SegmentError):
    """No segment has the name given."""


class SegmentExists(SegmentError):
    """A segment of that name is saved already."""


class SegmentInUse(SegmentError):
    """Other segments refer to the one being deleted."""


class SavedRules(Mapping[str, Rule]):
    """Saved segments by name, each parsed the first time a rule refers to it."""

    def __init__(self, texts: Mapping[str, str]) -> None:
        self._texts = dict(texts)
        self._parsed: dict[str, Rule] = {}

    def __getitem__(self, name: str) -> Rule:
        if name not in self._parsed:
            self._parsed[name] = parse(self._texts[name])
        return self._parsed[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._texts)

    def __len__(self) -> int:
        return len(self._texts)


def evaluate(
    *,
    rule: str | Rule,
    audience: pl.DataFrame,
    order_lines: pl.DataFrame | None,
    today: date,
    saved: Mapping[str, Rule],
    timezone: str | None = None,
) -> pl.DataFrame:
    """Returns the rows of the audience frame that a rule matches (pure: no store)."""
    frame, condition = _prepare(rule, audience, order_lines, today, saved, timezone)
    return frame.filter(condition).select(audience.columns)


def _prepare(
    rule: str | Rule,
    audience: pl.DataFrame,
    order_lines: pl.DataFrame | None,
    today: date,
    saved: Mapping[str, Rule],
    timezone: str | None,
) -> tuple[pl.DataFrame, pl.Expr]:
    tree = parse(rule) if isinstance(rule, str) else rule
    zone = ZoneInfo(timezone or get_settings().default_timezone)
    condition = compile_rule(tree, Context(today, zone, saved))
    used = aggregates_used(tree, saved)
    if not used:
        return audience, condition
    if order_lines is None:
        first = used[0][1]
        raise RuleError(f"{first.kind} needs the order history, which was not given", first.pos)
    windows = [window for window, _ in used]
    frame = with_aggregates(audience, order_lines, windows, today=today, timezone=zone)
    return frame, condition


def count(*, engine: Engine, rule: str | Rule, today: date | None = None) -> dict[str, Any]:
    """Counts the members a rule matches in the store: {"count", "sample": first member ids}."""
    day = today or local_today()
    tree = parse(rule) if isinstance(rule, str) else rule
    with session_scope(engine) as db_session:
        saved = saved_rules(db_session=db_session)
    ids = _matching_ids(engine, tree, saved, day)
    return {"count": ids.len(), "sample": ids.head(SAMPLE_SIZE).to_list()}


def _matching_ids(engine: Engine, tree: Rule, saved: Mapping[str, Rule], day: date) -> pl.Series:
    audience = snapshot(engine, today=day)
    lines = order_lines_snapshot(engine) if aggregates_used(tree, saved) else None
    return matching_ids(rule=tree, audience=audience, order_lines=lines, today=day, saved=saved)


def matching_ids(
    *,
    rule: str | Rule,
    audience: pl.DataFrame,
    order_lines: pl.DataFrame | None,
    today: date,
    saved: Mapping[str, Rule],
    timezone: str | None = None,
) -> pl.Series:
    """Returns the member ids a rule matches, in audience order (pure; reads only member_id)."""
    frame, condition = _prepare(rule, audience, order_lines, today, saved, timezone)
    return frame.lazy().filter(condition).select("member_id").collect().to_series()


def saved_rules(*, db_session: Session) -> SavedRules:
    """Returns every saved segment's rule by name, parsed on first use."""
    rows = db_session.execute(select(Segment.name, Segment.rule)).all()
    return SavedRules({name: text for name, text in rows})


def save(
    *,
    db_session: Session,
    name: str,
    rule: str | Rule,
    description: str | None = None,
    replace: bool = True,
) -> Segment:
    """Saves a checked rule under a name (replacing one of that name unless told not to)."""
    _check_name(name)
    tree = parse(rule) if isinstance(rule, str) else rule
    segment = get(db_session=db_session, name=name)
    if segment is not None and not replace:
        raise SegmentExists(f"a segment named '{name}' exists already; choose another name")
    rules = _Overlay(saved_rules(db_session=db_session), name, tree)
    zone = ZoneInfo(get_settings().default_timezone)
    # Compiling expands every in_segment: it finds unknown names and cycles through `name`.
    compile_rule(tree, Context(local_today(), zone, rules, within=(name,)))
    text = to_text(tree)
    if segment is None:
        segment = Segment(name=name, rule=text, description=description)
        db_session.add(segment)
    else:
        segment.rule = text
        segment.description = description if description is not None else segment.description
        segment.last_count = None
        segment.counted_at = None
    db_session.flush()
    return segment


class _Overlay(Mapping[str, Rule]):
    """Saved rules with one of them replaced by a rule not yet saved."""

    def __init__(self, base: Mapping[str, Rule], name: str, rule: Rule) -> None:
        self._base, self._name, self._rule = base, name, rule

    def __getitem__(self, name: str) -> Rule:
        return self._rule if name == self._name else self._base[name]

    def __iter__(self) -> Iterator[str]:
        yield self._name
        yield from (name for name in self._base if name != self._name)

    def __len__(self) -> int:
        return len(set(self._base) | {self._name})


def _check_name(name: str) -> None:
    if not name or len(name) > NAME_LENGTH or not NAME_RULE.fullmatch(name) or name != name.strip():
        raise SegmentError(
            f"'{name}' cannot name a segment: use up to {NAME_LENGTH} letters, digits, spaces,"
            " '-', '_' or '.', starting with a letter or digit"
        )


def list_segments(*, db_session: Session) -> list[Segment]:
    """Lists the saved segments by name."""
    return list(db_session.scalars(select(Segment).order_by(Segment.name)))


def get(*, db_session: Session, name: str) -> Segment | None:
    """Gets a saved segment by name."""
    return db_session.scalar(select(Segment).where(Segment.name == name))


def require(*, db_session: Session, name: str) -> Segment:
    """Gets a saved segment by name, or raises SegmentNotFound saying which exist."""
    segment = get(db_session=db_session, name=name)
    if segment is None:
        known = [row.name for row in list_segments(db_session=db_session)]
        raise SegmentNotFound(unknown_segment(name, known))
    return segment


def delete(*, db_session: Session, name: str) -> None:
    """Deletes a saved segment that no other segment refers to."""
    segment = require(db_session=db_session, name=name)
    users = sorted(
        other.name
        for other in list_segments(db_session=db_session)
        if other.name != name and name in _references(other.rule)
    )
    if users:
        raise SegmentInUse(
            f"segment '{name}' is used by {', '.join(users)}; change or delete those first"
        )
    db_session.delete(segment)
    db_session.flush()


def _references(text: str) -> set[str]:
    try:
        return segment_names(parse(text))
    except RuleError:
        return set()


def measure(*, db_session: Session, today: date | None = None) -> list[Segment]:
    """Counts every saved segment against the store and records the sizes; returns them."""
    day = today or local_today()
    bind = db_session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    saved = saved_rules(db_session=db_session)
    segments = list_segments(db_session=db_session)
    for segment in segments:
        try:
            segment.last_count = _matching_ids(engine, saved[segment.name], saved, day).len()
        except RuleError:
            segment.last_count = None
        segment.counted_at = clock.now()
    db_session.flush()
    return segments
