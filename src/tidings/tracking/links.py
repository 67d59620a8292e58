"""Each campaign message's own short link: the URL that `{link}` shows, and its row in
`short_links`, written in bulk when the message's rollout stage is released.

The codes come from `codes` (a keyed hash of campaign and member), so planning twice shows
the same links, and a plan writes none: a link exists only once its message is about to go.
A member who already has a link for the campaign keeps it, and a code some other campaign
already holds is replaced by the member's next one, in the link and in the message text
alike (same length, so parts and cost stay right).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime

import polars as pl
from sqlalchemy.orm import Session

from tidings import keys
from tidings.bulk import BulkStore, append_rows, copy_unless_taken, wide_page_cache
from tidings.campaigns.models import Campaign
from tidings.config import Settings, get_settings
from tidings.content.words import word_matcher
from tidings.dispatch.models import MessageState
from tidings.tracking.codes import (
    CODE_PATTERN,
    MAX_ATTEMPTS,
    CodeCollision,
    code_for,
    spells_any,
    with_codes,
)
from tidings.tracking.targets import Utm, target_url

LINK_PATH = "/s/"
WRITE_CACHE_KIB = 256 * 1024  # SQLite page cache while a stage's links are written
_LINK_SCHEMA = {"member_id": pl.Int64, "code": pl.String}
UTC_TIME = pl.Datetime("us", "UTC")


def words_to_avoid() -> list[str]:
    """The listed words a code could spell (letters and digits only): a code must not, or
    the content check would stop the message that shows it."""
    keys = word_matcher().by_key
    return sorted(key for key in keys if key.isascii() and key.isalnum())


def short_url(base: str, code: str) -> str:
    """The short link of `code` under the short domain `base`."""
    return f"{base}{LINK_PATH}{code}"


def link_urls(audience: pl.DataFrame, *, campaign_id: int, settings: Settings) -> pl.Series:
    """Each audience member's short link in the campaign, in the audience's order."""
    members = audience.select(pl.col("member_id").cast(pl.Int64)).unique()
    secret = keys.secret(settings, "short_link")
    coded = with_codes(members, secret=secret, campaign_id=campaign_id, avoid=words_to_avoid())
    prefix = pl.lit(settings.short_link_base + LINK_PATH)
    urls = coded.select("member_id", link=prefix + pl.col("code"))
    joined = audience.select(pl.col("member_id").cast(pl.Int64)).join(
        urls, on="member_id", how="left", maintain_order="left"
    )
    return joined["link"]


@dataclass(frozen=True)
class LinkPlan:
    """What a campaign's links lead to: its URL, UTM parameters and variant names by id."""

    campaign_id: int
    url: str
    utm: Utm | None
    variants: dict[int, str]

    @classmethod
    def of(cls, campaign: Campaign, variants: dict[int, str]) -> LinkPlan:
        """Reads a campaign's `links` column (made by `campaigns.service.create`)."""
        links = campaign.links or {}
        utm = Utm.from_json(links["utm"]) if links.get("utm") else None
        if utm is not None and not utm.campaign:
            utm = replace(utm, campaign=str(campaign.id))
        return cls(campaign.id, str(links["url"]), utm, variants)

    def targets(self) -> dict[int, str]:
        """Each variant's target URL, by variant id."""
        return {vid: target_url(self.url, self.utm, variant=n) for vid, n in self.variants.items()}


def write_shown(
    db_session: Session,
    *,
    campaign: Campaign,
    variants: dict[int, str],
    messages: pl.DataFrame,
    now: datetime,
) -> int:
    """Writes the short links that a campaign's messages about to be queued show and that
    have none yet; `messages` holds their member_id, variant_id and text. Returns how many
    links were written (nothing if the campaign has no link).

    A code is found by its path, whatever the domain before it: the short domain may have
    been set otherwise since the message was planned, and the code still answers there."""
    if not campaign.links:
        return 0
    settings = get_settings()
    shown = messages.select(
        "member_id",
        "variant_id",
        code=pl.col("text").str.extract(
            re.escape(LINK_PATH) + f"({CODE_PATTERN})(?:[^0-9A-Za-z]|$)"
        ),
    ).drop_nulls("code")
    links = LinkPlan.of(campaign, variants)
    store = BulkStore(db_session)
    fresh = shown.join(_stored(store, campaign.id), on="member_id", how="anti")
    written = _insert(store, links, fresh, now=now)
    if written < fresh.height:
        taken = fresh.join(_stored(store, campaign.id), on="member_id", how="anti")
        secret = keys.secret(settings, "short_link")
        moved = _recode(store, links, taken, secret=secret, now=now)
        _rewrite_texts(store, links, moved)
        written = fresh.height
    return written


def _stored(store: BulkStore, campaign_id: int) -> pl.DataFrame:
    """The campaign's links already in the store: member and code."""
    return store.frame(
        "SELECT member_id, code FROM short_links WHERE campaign_id = ?",
        (campaign_id,),
        schema=_LINK_SCHEMA,
    )


def _insert(store: BulkStore, links: LinkPlan, rows: pl.DataFrame, *, now: datetime) -> int:
    """Inserts links (member_id, variant_id, code), skipping codes already held; returns how
    many went in.

    On SQLite in multi-row statements that bind what all rows share once each
    (`append_rows`). On PostgreSQL the links are COPYed straight into the table; only when
    a code is taken (rare) are they staged and inserted skipping it.
    """
    if rows.height == 0:
        return 0
    campaign = int(links.campaign_id)
    targets = links.targets()
    whole = rows.select(
        "code",
        "member_id",
        target_url=pl.col("variant_id").replace_strict(
            list(targets), list(targets.values()), default=links.url, return_dtype=pl.String
        ),
    )
    shared = {"campaign_id": pl.lit(campaign), "created_at": pl.lit(now, dtype=UTC_TIME)}
    if store.dialect == "sqlite":
        return _insert_sqlite(store, whole.with_columns(**shared))
    if copy_unless_taken(store.session, "short_links", whole.with_columns(**shared)):
        return rows.height
    cases = " ".join("WHEN ? THEN ?" for _ in targets)
    params: list[object] = [value for pair in targets.items() for value in pair]
    params += [links.url, now]
    select = f"SELECT code, {campaign}, member_id, CASE variant_id {cases} ELSE ? END, ?"
    insert = "INSERT INTO short_links (code, campaign_id, member_id, target_url, created_at) "
    # "WHERE true" lets SQLite tell the upsert clause from a join condition.
    conflict = " WHERE true ON CONFLICT (code) DO NOTHING"
    frame = rows.select("code", "member_id", "variant_id")
    store.create_temp("new_links", {"code": "TEXT", "member_id": "BIGINT", "variant_id": "BIGINT"})
    store.ingest("new_links", frame)
    return store.execute(f"{insert}{select} FROM new_links{conflict}", params)


def _insert_sqlite(store: BulkStore, links: pl.DataFrame) -> int:
    """`_insert` on SQLite: multi-row statements straight into the table (a staging table
    would only write everything twice), skipping codes already held."""
    # Codes are random, so each insert touches a random page of the code index: with the
    # default small page cache a million links would read and write pages for most of them.
    with wide_page_cache(store.session, WRITE_CACHE_KIB):
        return append_rows(store.session, "short_links", links, verb="INSERT OR IGNORE")


def _recode(
    store: BulkStore, links: LinkPlan, taken: pl.DataFrame, *, secret: str, now: datetime
) -> pl.DataFrame:
    """Gives members whose code another campaign holds their next free code; returns their
    moves (member_id, variant_id, code shown, code_kept). Rare: about one member in millions,
    so one at a time."""
    moves = []
    avoid = words_to_avoid()
    for member_id, variant_id, code in taken.select("member_id", "variant_id", "code").rows():
        for attempt in range(1, MAX_ATTEMPTS + 1):
            candidate = code_for(
                secret=secret, campaign_id=links.campaign_id, member_id=member_id, attempt=attempt
            )
            if spells_any(candidate, avoid):
                continue
            row = pl.DataFrame(
                {"member_id": [member_id], "variant_id": [variant_id], "code": [candidate]},
                schema={"member_id": pl.Int64, "variant_id": pl.Int64, "code": pl.String},
            )
            if _insert(store, links, row, now=now):
                moves.append((member_id, variant_id, code, candidate))
                break
        else:
            raise CodeCollision(f"no free short-link code for member {member_id}")
    schema = {"member_id": pl.Int64, "variant_id": pl.Int64, "code": pl.String}
    return pl.DataFrame(moves, schema={**schema, "code_kept": pl.String}, orient="row")


def _rewrite_texts(store: BulkStore, links: LinkPlan, moved: pl.DataFrame) -> None:
    """Puts each moved member's kept link into their message text in place of the one shown."""
    if moved.height == 0:
        return
    rows = moved.select(
        old=pl.lit(LINK_PATH) + pl.col("code"),
        new=pl.lit(LINK_PATH) + pl.col("code_kept"),
        member="member_id",
        campaign=pl.lit(links.campaign_id),
    )
    store.execute_rows(
        "UPDATE messages SET text = REPLACE(text, ?, ?)"
        " WHERE member_id = ? AND campaign_id = ? AND step = 0",
        rows,
    )


def write_step_links(
    db_session: Session,
    *,
    campaign: Campaign,
    plan: pl.DataFrame,
    urls: pl.DataFrame,
    step: int,
    now: datetime,
) -> int:
    """Writes the short links a campaign step's planned messages show that the campaign has
    not given yet (to the campaign's URL, `utm_content` S1, S2, ... for the step); a member
    keeps the link of an earlier send (the same code), and no other link of the campaign is
    touched. Returns how many."""
    settings = get_settings()
    prefix = settings.short_link_base + LINK_PATH
    store = BulkStore(db_session)
    shown = (
        plan.filter(pl.col("state") == MessageState.PLANNED.value)
        .select("member_id", "text")
        .join(urls.select("member_id", "link"), on="member_id", how="inner")
        .filter(pl.col("text").str.contains(pl.col("link"), literal=True))
        .select(
            "member_id",
            variant_id=pl.lit(0, dtype=pl.Int64),  # the step, as LinkPlan's one "variant"
            code=pl.col("link").str.strip_prefix(prefix),
        )
    )
    fresh = shown.join(_stored(store, campaign.id), on="member_id", how="anti")
    links = LinkPlan.of(campaign, {0: f"S{int(step)}"})
    written = _insert(store, links, fresh, now=now)
    if written < fresh.height:
        taken = fresh.join(_stored(store, campaign.id), on="member_id", how="anti")
        moved = _recode(store, links, taken, secret=keys.secret(settings, "short_link"), now=now)
        _rewrite_step_texts(store, campaign.id, moved, prefix=prefix)
        written = fresh.height
    return written


def _rewrite_step_texts(
    store: BulkStore, campaign_id: int, moved: pl.DataFrame, *, prefix: str
) -> None:
    """Puts each moved member's kept link into their planned step message."""
    rows = moved.select(
        old=pl.lit(prefix) + pl.col("code"),
        new=pl.lit(prefix) + pl.col("code_kept"),
        campaign=pl.lit(campaign_id),
        member="member_id",
    )
    store.execute_rows(
        "UPDATE messages SET text = REPLACE(text, ?, ?) WHERE campaign_id = ? AND member_id = ?"
        " AND state = 'planned'",
        rows,
    )
