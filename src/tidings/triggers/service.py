"""Operations on triggers: seed the built-ins, list, show, switch on and off, configure.

The functions take a session and never commit; the command or request that called them does.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from tidings import clock
from tidings.content.template import AUDIENCE_COLUMNS, TemplateError, prepare_template
from tidings.db import is_sqlite
from tidings.dispatch.models import MessageKind
from tidings.segments.fields import FIELD_LIST, FIELDS, FieldType
from tidings.segments.rules import parse
from tidings.segments.tree import Rule
from tidings.triggers.catalogue import BUILTINS, CUSTOM, Builtin, builtin
from tidings.triggers.events import reply_intent_problem
from tidings.triggers.firing import CONTENT_KIND, FiringSpec
from tidings.triggers.models import Trigger, TriggerFiring
from tidings.triggers.schemas import TriggerCreate

# A custom trigger's template may show the event's payload values under these names.
CUSTOM_COLUMNS = ("event_value", "event_item")


class TriggerError(ValueError):
    """A trigger as asked for cannot be made or changed (the message says what to change)."""


class TriggerNotFound(LookupError):
    """No trigger has the id or name asked for."""


def ensure_builtins(*, db_session: Session) -> int:
    """Adds the built-in triggers missing from the store, with their defaults; returns how many.

    Safe when two processes do it at once: a name taken meanwhile is left alone.
    """
    known = set(db_session.scalars(select(Trigger.name)))
    missing = [b for b in BUILTINS if b.key not in known]
    now = clock.now()
    insert = sqlite_insert if is_sqlite(db_session) else postgresql_insert
    for item in missing:
        values = {
            "name": item.key,
            "kind": item.key,
            "enabled": item.enabled,
            "config": dict(item.config),
            "template": item.template,
            "delay_minutes": 0,
            "expiry_minutes": item.expiry_minutes,
            "offer_type": item.offer_type,
            "created_at": now,
            "updated_at": now,
        }
        statement = insert(Trigger).values(**values).on_conflict_do_nothing(index_elements=["name"])
        db_session.execute(statement)
    return len(missing)


DATE_TYPES = (FieldType.DATE, FieldType.DATETIME)


def _check_source(spec: TriggerCreate) -> None:
    """An operator's trigger reacts to exactly one thing: an event type or a date field."""
    if (spec.event_type is None) == (spec.date_field is None):
        raise TriggerError("give the trigger an event type or a date field, not both")
    problem = reply_intent_problem(spec.event_type or "")
    if problem is not None:
        raise TriggerError(problem)
    if spec.date_field is not None:
        field = FIELDS.get(spec.date_field)
        if field is None or field.type not in DATE_TYPES:
            dated = ", ".join(f.name for f in FIELD_LIST if f.type in DATE_TYPES)
            raise TriggerError(f"'{spec.date_field}' is not a date field; use one of: {dated}")


def create(*, db_session: Session, spec: TriggerCreate) -> Trigger:
    """Creates an operator's trigger after checking its source, template and rules."""
    ensure_builtins(db_session=db_session)
    _check_source(spec)
    name = spec.name.strip()
    taken = db_session.scalars(select(Trigger.id).where(Trigger.name == name)).first()
    if taken is not None or builtin(name) is not None:
        raise TriggerError(f"a trigger named '{name}' exists; choose another name")
    trigger = Trigger(
        name=name,
        kind=CUSTOM,
        enabled=spec.enabled,
        config={"offset_days": spec.offset_days, "window_days": spec.window_days},
        template=spec.template,
        condition=spec.condition or None,
        exit_condition=spec.exit_condition or None,
        event_type=spec.event_type,
        date_field=spec.date_field,
        delay_minutes=spec.delay_minutes,
        expiry_minutes=spec.expiry_minutes,
        offer_type=spec.offer_type,
    )
    spec_of(trigger)  # its template and rules must be usable before it is kept
    db_session.add(trigger)
    db_session.flush()
    return trigger


def list_triggers(*, db_session: Session) -> list[Trigger]:
    """Every trigger, built-ins first in catalogue order, then the operator's by name."""
    ensure_builtins(db_session=db_session)
    order = {b.key: i for i, b in enumerate(BUILTINS)}
    rows = db_session.scalars(select(Trigger)).all()
    return sorted(rows, key=lambda t: (order.get(t.kind, len(order)), t.name))


def get(*, db_session: Session, ref: str | int) -> Trigger:
    """Gets a trigger by id or name, or says which exist."""
    ensure_builtins(db_session=db_session)
    text_ref = str(ref).strip()
    query = select(Trigger).where(
        Trigger.id == int(text_ref) if text_ref.isdigit() else Trigger.name == text_ref
    )
    found = db_session.scalars(query).first()
    if found is None:
        names = ", ".join(t.name for t in list_triggers(db_session=db_session))
        raise TriggerNotFound(f"no trigger '{text_ref}'; the triggers are: {names}")
    return found


def set_enabled(*, db_session: Session, ref: str | int, enabled: bool) -> Trigger:
    """Switches a trigger on or off; a trigger switched off fires nothing new."""
    trigger = get(db_session=db_session, ref=ref)
    if enabled:
        spec_of(trigger)  # a trigger that could not fire is not switched on
    trigger.enabled = enabled
    trigger.updated_at = clock.now()
    db_session.flush()
    return trigger


def _merged_config(trigger: Trigger, changes: dict[str, Any]) -> dict[str, Any]:
    """The trigger's config with `changes`, each checked against the default's type."""
    item = builtin(trigger.kind)
    defaults = item.config if item else {}
    config = dict(trigger.config or {})
    for name, value in changes.items():
        if item is not None and name not in defaults:
            raise TriggerError(
                f"trigger '{trigger.name}' has no setting '{name}'; its settings are: "
                + ", ".join(sorted(defaults))
            )
        default = defaults.get(name)
        numeric = isinstance(default, int | float) and not isinstance(default, bool)
        if numeric and (not isinstance(value, int | float) or isinstance(value, bool) or value < 0):
            raise TriggerError(
                f"trigger '{trigger.name}': '{name}' must be a number of 0 or more, not {value!r}"
            )
        config[name] = value
    return config


def update(*, db_session: Session, ref: str | int, changes: dict[str, Any]) -> Trigger:
    """Changes a trigger's config, template, condition, exit condition, delay or expiry."""
    trigger = get(db_session=db_session, ref=ref)
    simple = ("template", "condition", "exit_condition", "offer_type")
    numbers = ("delay_minutes", "expiry_minutes")
    for name, value in changes.items():
        if name == "config":
            trigger.config = _merged_config(trigger, dict(value or {}))
        elif name == "enabled":
            trigger.enabled = bool(value)
        elif name in simple:
            setattr(trigger, name, value if name == "template" else (value or None))
        elif name in numbers:
            if value is not None and (not isinstance(value, int) or value < 0):
                raise TriggerError(f"'{name}' must be a whole number of minutes, 0 or more")
            setattr(trigger, name, value)
        else:
            raise TriggerError(f"'{name}' cannot be changed on a trigger")
    spec_of(trigger)  # raises when the change leaves it unable to fire
    trigger.updated_at = clock.now()
    db_session.flush()
    return trigger


def own_columns(trigger: Trigger) -> tuple[str, ...]:
    """The fields each of a trigger's occasions brings for its template."""
    item = builtin(trigger.kind)
    return item.columns if item else CUSTOM_COLUMNS


def template_columns(trigger: Trigger) -> list[str]:
    """The fields a trigger's template may show: the audience's and the trigger's own."""
    own = own_columns(trigger)
    columns = [field.name for field in FIELD_LIST] + list(AUDIENCE_COLUMNS) + list(own)
    return list(dict.fromkeys(columns))


def message_kind(trigger: Trigger) -> MessageKind:
    """Whether a trigger's messages are marketing-like triggers or transactional."""
    item = builtin(trigger.kind)
    return item.message_kind if item else MessageKind.TRIGGER


def _rule(trigger: Trigger, text_value: str | None, what: str) -> Rule | None:
    if not text_value:
        return None
    try:
        return parse(text_value)
    except ValueError as error:
        raise TriggerError(f"trigger '{trigger.name}': its {what} is not a rule: {error}") from None


def spec_of(trigger: Trigger) -> FiringSpec:
    """What firing needs of a trigger; raises TriggerError when its wording or rules are wrong."""
    kind = message_kind(trigger)
    try:
        template = prepare_template(
            trigger.template, kind=CONTENT_KIND[kind], columns=template_columns(trigger)
        )
    except TemplateError as error:
        raise TriggerError(f"trigger '{trigger.name}': template: {error}") from None
    return FiringSpec(
        trigger_id=trigger.id,
        name=trigger.name,
        message_kind=kind,
        template=template,
        offer_type=trigger.offer_type,
        condition=_rule(trigger, trigger.condition, "condition"),
        exit_condition=_rule(trigger, trigger.exit_condition, "exit condition"),
        provided=own_columns(trigger),
    )


def setting(trigger: Trigger, name: str) -> Any:
    """A config value of a trigger, its built-in default when unset."""
    item: Builtin | None = builtin(trigger.kind)
    config = trigger.config or {}
    if name in config:
        return config[name]
    return item.config.get(name) if item else None


def firing_counts(*, db_session: Session) -> dict[int, dict[str, int]]:
    """Per trigger id, how many firings had each outcome."""
    rows = db_session.execute(
        select(TriggerFiring.trigger_id, TriggerFiring.outcome, func.count()).group_by(
            TriggerFiring.trigger_id, TriggerFiring.outcome
        )
    ).all()
    counts: dict[int, dict[str, int]] = {}
    for trigger_id, outcome, count in rows:
        counts.setdefault(int(trigger_id), {})[str(outcome)] = int(count)
    return counts


def describe(trigger: Trigger, counts: dict[str, int] | None = None) -> dict[str, Any]:
    """A trigger as `--json` and the API show it."""
    item = builtin(trigger.kind)
    config = {**(item.config if item else {}), **(trigger.config or {})}
    return {
        "id": trigger.id,
        "name": trigger.name,
        "kind": trigger.kind,
        "custom": trigger.kind == CUSTOM,
        "reacts_to": item.reacts.value if item else ("event" if trigger.event_type else "date"),
        "summary": item.summary if item else None,
        "enabled": trigger.enabled,
        "config": config,
        "template": trigger.template,
        "condition": trigger.condition,
        "exit_condition": trigger.exit_condition,
        "event_type": trigger.event_type,
        "date_field": trigger.date_field,
        "delay_minutes": trigger.delay_minutes,
        "expiry_minutes": trigger.expiry_minutes,
        "offer_type": trigger.offer_type,
        "message_kind": message_kind(trigger).value,
        "firings": dict(sorted((counts or {}).items())),
    }


def enabled_of_kind(*, db_session: Session, kind: str) -> list[Trigger]:
    """The enabled triggers of one kind."""
    ensure_builtins(db_session=db_session)
    query = select(Trigger).where(Trigger.kind == kind, Trigger.enabled.is_(True))
    return list(db_session.scalars(query.order_by(Trigger.id)))
