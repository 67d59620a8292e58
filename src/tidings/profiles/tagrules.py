"""Operator-defined tag rules: kept versioned, written in the segment language, applied on
every refresh.

Each change of a rule is a new row with the next version; disabling a rule is a change too,
so the history shows who was tagged by what and when. A refresh applies the latest version
of every rule whose latest version is active, to the audience built from the fresh profiles
(with their manual and computed tags; one rule's tag does not feed another rule).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import polars as pl
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from tidings.db import read_frame
from tidings.profiles.models import TagRule
from tidings.profiles.tags import merged_tags, rule_tags_expr

NAME_LENGTH = 100  # characters, as the tag_rules table allows


class TagRuleError(ValueError):
    """A tag rule cannot be saved or changed as asked."""


def _latest_versions() -> Any:
    latest = (
        select(TagRule.name, func.max(TagRule.version).label("version"))
        .group_by(TagRule.name)
        .subquery()
    )
    return select(TagRule).join(
        latest, (TagRule.name == latest.c.name) & (TagRule.version == latest.c.version)
    )


def list_tag_rules(*, db_session: Session) -> list[TagRule]:
    """Lists the latest version of every tag rule, active or not, by name."""
    return list(db_session.scalars(_latest_versions().order_by(TagRule.name)))


def get_tag_rule(*, db_session: Session, name: str) -> TagRule | None:
    """Gets the latest version of a tag rule by name."""
    return db_session.scalars(_latest_versions().where(TagRule.name == name)).first()


def add_tag_rule(*, db_session: Session, name: str, rule: str) -> TagRule:
    """Saves a rule under a tag name: a new rule at version 1, or the next version of it."""
    from tidings.segments.lexer import RuleError
    from tidings.segments.rules import parse

    name = name.strip()
    if not name or len(name) > NAME_LENGTH:
        raise TagRuleError(f"a tag name has 1 to {NAME_LENGTH} characters; got {len(name)}")
    try:
        parse(rule)
    except RuleError as error:
        raise TagRuleError(f"rule of tag '{name}': {error}") from error
    current = get_tag_rule(db_session=db_session, name=name)
    row = TagRule(name=name, version=(current.version + 1) if current else 1, rule=rule)
    row.active = True
    db_session.add(row)
    db_session.flush()
    return row


def disable_tag_rule(*, db_session: Session, name: str) -> TagRule:
    """Stops applying a tag rule (recorded as a new, inactive version)."""
    current = get_tag_rule(db_session=db_session, name=name)
    if current is None:
        known = ", ".join(rule.name for rule in list_tag_rules(db_session=db_session))
        raise TagRuleError(f"no tag rule named '{name}'; known: {known or 'none yet'}")
    if not current.active:
        return current
    row = TagRule(name=name, version=current.version + 1, rule=current.rule)
    row.active = False
    db_session.add(row)
    db_session.flush()
    return row


def active_rules(engine: Engine) -> list[tuple[str, str]]:
    """(name, rule) of every tag rule whose latest version is active, read in bulk."""
    frame = read_frame(
        engine,
        "SELECT t.name, t.rule, t.active FROM tag_rules t WHERE t.version ="
        " (SELECT MAX(v.version) FROM tag_rules v WHERE v.name = t.name)",
        schema={"name": pl.String, "rule": pl.String, "active": pl.Boolean},
    )
    rows = frame.filter(pl.col("active")).sort("name")
    return list(zip(rows["name"].to_list(), rows["rule"].to_list(), strict=True))


def apply_tag_rules(
    *,
    engine: Engine,
    profiles: pl.DataFrame,
    members: pl.DataFrame,
    order_lines: Callable[[], pl.DataFrame],
    as_of: date,
) -> tuple[pl.DataFrame, dict[str, str]]:
    """Adds each active rule's tag to the profiles it matches; returns rules that failed.

    `order_lines` builds the order lines (as `tidings.orders.frames.order_lines` gives them)
    and is called only when some rule is active.
    """
    rules = active_rules(engine)
    if not rules:
        return profiles, {}
    lines = order_lines()
    from tidings.segments.audience import audience_frame
    from tidings.segments.service import SavedRules, evaluate

    audience = audience_frame(
        members=_table(engine, "members", where="erased_at IS NULL"),
        stores=_table(engine, "stores"),
        profiles=profiles,
        consent=_table(engine, "consent_events"),
        today=as_of,
    )
    saved_frame = _table(engine, "segments")
    saved = SavedRules(dict(zip(saved_frame["name"], saved_frame["rule"], strict=True)))
    matches: list[tuple[str, pl.Series]] = []
    errors: dict[str, str] = {}
    for name, rule in rules:
        try:
            matched = evaluate(
                rule=rule, audience=audience, order_lines=lines, today=as_of, saved=saved
            )
        except (ValueError, KeyError, pl.exceptions.PolarsError) as error:
            errors[name] = str(error)
            continue
        matches.append((name, matched["member_id"]))
    tagged = profiles.with_columns(tags=merged_tags(pl.col("tags"), rule_tags_expr(matches)))
    return tagged, errors


TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "members": (
        "id",
        "code",
        "phone",
        "phone_status",
        "name",
        "gender",
        "birthday",
        "birthday_is_lunar",
        "store_id",
        "tier",
        "points",
        "registered_at",
        "tags",
        "erased_at",
    ),
    "stores": ("id", "code", "name", "city", "type"),
    "consent_events": ("id", "member_id", "kind", "topic", "occurred_at"),
    "segments": ("name", "rule"),
}
INTEGER_COLUMNS = {"id", "member_id", "store_id", "points", "birthday_is_lunar"}


def _table(engine: Engine, table: str, *, where: str | None = None) -> pl.DataFrame:
    """A table's columns; on SQLite non-integers come as text with '' for NULL (as the
    segment snapshot reads them); the audience builder restores their types."""
    sqlite = engine.dialect.name == "sqlite"
    parts = [
        f"COALESCE(CAST({name} AS TEXT), '') AS {name}"
        if name == "tags" or (sqlite and name not in INTEGER_COLUMNS)
        else name
        for name in TABLE_COLUMNS[table]
    ]
    condition = f" WHERE {where}" if where else ""
    frame = read_frame(engine, f"SELECT {', '.join(parts)} FROM {table}{condition}")
    if frame.width == 0:
        return pl.DataFrame(schema={name: pl.String for name in TABLE_COLUMNS[table]})
    return frame
