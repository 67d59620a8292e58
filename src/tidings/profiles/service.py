"""Profile refresh and model fits against the store: read in bulk, compute, write back.

Reads go through ADBC (`read_frame`), which links a SQLite library of its own, and writes
through the engine's own connection (`bulk_store`). A connection of one library left open
while the other closes the file sees a stale file, so the engine's pooled connections are
closed before the reads and again once the writes are committed.
"""

from __future__ import annotations

import time as timer
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

import numpy as np
import polars as pl
from sqlalchemy import Engine

from tidings import clock
from tidings.config import get_settings
from tidings.db import BulkStore, bulk_store, read_frame
from tidings.orders import frames
from tidings.profiles import bgnbd, tagrules
from tidings.profiles.bgnbd import BgNbdParams, GammaGammaParams
from tidings.profiles.compute import CENTS_PER_YUAN, PROFILE_COLUMNS, PurchaseModels
from tidings.profiles.compute import compute_profiles as compute
from tidings.profiles.thresholds import ProfileThresholds, from_settings

UTC_TIME = pl.Datetime("us", "UTC")
JSON_COLUMNS = ("top_categories", "replenishment", "tags")
FIT_COLUMNS: dict[str, Any] = {
    "calibration_end": pl.Date,
    "members": pl.Int64,
    "r": pl.Float64,
    "alpha": pl.Float64,
    "a": pl.Float64,
    "b": pl.Float64,
    "bgnbd_log_likelihood": pl.Float64,
    "gamma_gamma_members": pl.Int64,
    "p": pl.Float64,
    "q": pl.Float64,
    "v": pl.Float64,
    "gamma_gamma_log_likelihood": pl.Float64,
}


@dataclass
class FitResult:
    """A fit of both models on the members who bought on or before the calibration end."""

    calibration_end: date
    members: int
    bgnbd: BgNbdParams
    gamma_gamma: GammaGammaParams | None
    gamma_gamma_members: int

    def as_dict(self) -> dict[str, Any]:
        """The JSON `tidings model fit --json` prints."""
        gg = self.gamma_gamma
        return {
            "members": self.members,
            "bgnbd": asdict(self.bgnbd),
            "gamma_gamma": {"p": gg.p, "q": gg.q, "v": gg.v} if gg else None,
        }


@dataclass
class RefreshResult:
    """What a refresh did, for `tidings profiles refresh --json`."""

    as_of: date
    members: int
    profiles_written: int
    seconds: float
    model: str
    rfm_segment: dict[str, int] = field(default_factory=dict)
    tier: dict[str, int] = field(default_factory=dict)
    lifecycle_stage: dict[str, int] = field(default_factory=dict)
    tag_rule_errors: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain values, dates as ISO text."""
        values = asdict(self)
        values["as_of"] = self.as_of.isoformat()
        values["seconds"] = round(self.seconds, 3)
        return values


def local_today() -> date:
    """Today in the brand's timezone."""
    from zoneinfo import ZoneInfo

    return clock.now().astimezone(ZoneInfo(get_settings().default_timezone)).date()


def fit_models(*, orders: pl.DataFrame, calibration_end: date, timezone: str) -> FitResult:
    """Fits BG/NBD and Gamma-Gamma to orders (pure); raises ModelFitError without purchasers."""
    summary = bgnbd.calibration_summary(orders, calibration_end=calibration_end, timezone=timezone)
    if summary.height == 0:
        raise bgnbd.ModelFitError(
            f"no member bought on or before {calibration_end.isoformat()}; import orders"
            " or choose a later --calibration-end"
        )
    x, t_x, T = (summary[name].to_numpy() for name in ("x", "t_x", "T"))
    fitted = bgnbd.fit_bgnbd(x=x, t_x=t_x, T=T)
    spend = summary["m"].fill_null(0.0).to_numpy() / CENTS_PER_YUAN
    repeaters = int(np.count_nonzero((x > 0) & (spend > 0)))
    try:
        gamma_gamma = bgnbd.fit_gamma_gamma(x=x, m=spend)
    except bgnbd.ModelFitError:
        gamma_gamma = None
    return FitResult(
        calibration_end=calibration_end,
        members=summary.height,
        bgnbd=fitted,
        gamma_gamma=gamma_gamma,
        gamma_gamma_members=repeaters,
    )


def fit(*, engine: Engine, calibration_end: date) -> FitResult:
    """Fits both models on the store's orders and keeps the fit for later refreshes."""
    engine.dispose()
    orders = frames.orders(engine)
    result = fit_models(
        orders=orders, calibration_end=calibration_end, timezone=get_settings().default_timezone
    )
    with bulk_store(engine) as store:
        _save_fit(store, result)
        store.commit()
    engine.dispose()
    return result


def _save_fit(store: BulkStore, result: FitResult) -> None:
    gg = result.gamma_gamma
    row = {
        "calibration_end": result.calibration_end,
        "members": result.members,
        "r": result.bgnbd.r,
        "alpha": result.bgnbd.alpha,
        "a": result.bgnbd.a,
        "b": result.bgnbd.b,
        "bgnbd_log_likelihood": result.bgnbd.log_likelihood,
        "gamma_gamma_members": result.gamma_gamma_members,
        "p": gg.p if gg else None,
        "q": gg.q if gg else None,
        "v": gg.v if gg else None,
        "gamma_gamma_log_likelihood": gg.log_likelihood if gg else None,
    }
    frame = pl.DataFrame([row], schema=FIT_COLUMNS).with_columns(
        created_at=pl.lit(clock.now(), dtype=UTC_TIME)
    )
    store.ingest("model_fits", frame)


def latest_fit(engine: Engine) -> tuple[date, PurchaseModels] | None:
    """The newest stored fit: its calibration end and parameters, or None."""
    columns = ", ".join(FIT_COLUMNS)
    frame = read_frame(
        engine,
        f"SELECT {columns} FROM model_fits ORDER BY id DESC LIMIT 1",
        schema=FIT_COLUMNS,
    )
    if frame.height == 0:
        return None
    row = frame.row(0, named=True)
    fitted = bgnbd.BgNbdParams(
        r=row["r"],
        alpha=row["alpha"],
        a=row["a"],
        b=row["b"],
        log_likelihood=row["bgnbd_log_likelihood"],
    )
    gamma_gamma = None
    if row["p"] is not None:
        gamma_gamma = bgnbd.GammaGammaParams(
            p=row["p"], q=row["q"], v=row["v"], log_likelihood=row["gamma_gamma_log_likelihood"]
        )
    return row["calibration_end"], PurchaseModels(bgnbd=fitted, gamma_gamma=gamma_gamma)


def refresh(
    *, engine: Engine, as_of: date | None = None, thresholds: ProfileThresholds | None = None
) -> RefreshResult:
    """Recomputes every member's profile as of a day and replaces the profiles in one go."""
    started = timer.perf_counter()
    settings = get_settings()
    as_of = as_of or local_today()
    thresholds = thresholds or from_settings(settings)
    timezone = settings.default_timezone
    engine.dispose()
    members = _members(engine)
    orders = frames.orders(engine)
    lines = frames.order_lines(engine, orders_frame=orders)
    stored = latest_fit(engine)
    new_fit: FitResult | None = None
    if _needs_fit(stored, as_of, thresholds):
        try:
            new_fit = fit_models(orders=orders, calibration_end=as_of, timezone=timezone)
        except bgnbd.ModelFitError:
            new_fit = None
    if new_fit is not None:
        models, model_note = PurchaseModels(new_fit.bgnbd, new_fit.gamma_gamma), "fitted"
    elif stored is not None:
        models, model_note = stored[1], f"reused fit of {stored[0].isoformat()}"
    else:
        models, model_note = PurchaseModels(), "none: no purchases to fit"
    profiles = compute(
        members=members,
        orders=orders,
        lines=lines,
        products=frames.products(engine),
        previous=_previous(engine),
        models=models,
        as_of=as_of,
        thresholds=thresholds,
        timezone=timezone,
        send_window=settings.send_window,
    )
    profiles, errors = tagrules.apply_tag_rules(
        engine=engine, profiles=profiles, members=members, lines=lines, as_of=as_of
    )
    with bulk_store(engine) as store:
        if new_fit is not None:
            _save_fit(store, new_fit)
        written = _replace_profiles(store, profiles)
        store.commit()
    engine.dispose()
    _invalidate_audiences(engine)
    return RefreshResult(
        as_of=as_of,
        members=members.height,
        profiles_written=written,
        seconds=timer.perf_counter() - started,
        model=model_note,
        rfm_segment=_counts(profiles["rfm_segment"]),
        tier=_counts(profiles["tier"]),
        lifecycle_stage=_counts(profiles["lifecycle_stage"]),
        tag_rule_errors=errors,
    )


def _needs_fit(
    stored: tuple[date, PurchaseModels] | None, as_of: date, thresholds: ProfileThresholds
) -> bool:
    """Fit when there is no fit, when it is older than allowed, or when it saw past as-of."""
    if stored is None:
        return True
    age = (as_of - stored[0]).days
    return age < 0 or age > thresholds.model_refit_after_days


def _counts(column: pl.Series) -> dict[str, int]:
    counted = Counter(column.drop_nulls().to_list())
    return dict(sorted(counted.items(), key=lambda item: (-item[1], item[0])))


MEMBER_COLUMNS: dict[str, Any] = {
    "member_id": pl.Int64,
    "store_id": pl.Int64,
    "tier": pl.String,
    "timezone": pl.String,
    "tags": pl.String,
}


def _members(engine: Engine) -> pl.DataFrame:
    """Members not erased: id, home store, POS tier, timezone and manual tags (a list)."""
    frame = read_frame(
        engine,
        "SELECT id AS member_id, store_id, COALESCE(tier, '') AS tier,"
        " COALESCE(timezone, '') AS timezone, COALESCE(CAST(tags AS TEXT), '') AS tags"
        " FROM members WHERE erased_at IS NULL",
        schema=MEMBER_COLUMNS,
    )
    return frame.with_columns(
        pl.col("tier", "timezone").replace("", None),
        pl.col("tags").replace("", None).replace("null", None).str.json_decode(pl.List(pl.String)),
    ).sort("member_id")


def _previous(engine: Engine) -> pl.DataFrame:
    """Last refresh's tier, previous tier and day of change per member."""
    frame = read_frame(
        engine,
        "SELECT member_id, COALESCE(tier, '') AS tier,"
        " COALESCE(previous_tier, '') AS previous_tier,"
        " COALESCE(CAST(tier_changed_at AS TEXT), '') AS tier_changed_at FROM profiles",
        schema={
            "member_id": pl.Int64,
            "tier": pl.String,
            "previous_tier": pl.String,
            "tier_changed_at": pl.String,
        },
    )
    return frame.with_columns(
        pl.col("tier", "previous_tier").replace("", None),
        pl.col("tier_changed_at").replace("", None).str.slice(0, 10).str.to_date(strict=False),
    )


def _replace_profiles(store: BulkStore, profiles: pl.DataFrame) -> int:
    """Deletes every profile and inserts the new ones, JSON columns as JSON text."""
    encoded = profiles.select(PROFILE_COLUMNS).with_columns(
        *(_json_text(name) for name in JSON_COLUMNS),
        pl.col(pl.Float64).fill_nan(None),
        computed_at=pl.lit(clock.now(), dtype=UTC_TIME),
    )
    store.execute("DELETE FROM profiles")
    return store.ingest("profiles", encoded)


def _json_text(name: str) -> pl.Expr:
    """A list column as JSON text (null stays null), escaping done by Polars' JSON writer."""
    prefix = len(f'{{"{name}":')
    wrapped = pl.struct(pl.col(name)).struct.json_encode()
    text = wrapped.str.slice(prefix, wrapped.str.len_chars() - prefix - 1)
    return pl.when(pl.col(name).is_null()).then(None).otherwise(text).alias(name)


def _invalidate_audiences(engine: Engine) -> None:
    """Tells the segment snapshots that profiles changed."""
    from tidings.segments import audience

    audience.invalidate(engine)
