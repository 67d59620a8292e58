"""Profile refresh and model fits against the store: read in bulk, compute, write back.

Reads go through `tidings.db.read_frame`, the big tables of a refresh through
`tidings.scancopies.read_with_copies` (copies and child processes on SQLite); writes go through
`tidings.bulk.bulk_store` on the engine's own connections, except a refresh's profiles on a
SQLite file, which one of the same children writes (`tidings.profiles.writeback`).
"""

from __future__ import annotations

import time as timer
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

import numpy as np
import polars as pl
from sqlalchemy import Engine

from tidings import clock, scancopies
from tidings.bulk import BulkStore, bulk_store
from tidings.config import get_settings
from tidings.db import read_frame
from tidings.orders import frames
from tidings.profiles import bgnbd, tagrules, writeback
from tidings.profiles.bgnbd import BgNbdParams, GammaGammaParams
from tidings.profiles.compute import CENTS_PER_YUAN, PurchaseModels
from tidings.profiles.compute import compute_profiles as compute
from tidings.profiles.thresholds import ProfileThresholds, from_settings
from tidings.scans import SqliteChildren, TableScan, sqlite_children

UTC_TIME = pl.Datetime("us", "UTC")
FIT_SAMPLE_MEMBERS = 200_000  # more purchasers than this: fit on a fixed random sample
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
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase

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
    """Fits BG/NBD and Gamma-Gamma to orders (pure); raises ModelFitError without purchasers.

    Beyond FIT_SAMPLE_MEMBERS purchasers the fit uses a fixed random sample of them.
    """
    summary = bgnbd.calibration_summary(orders, calibration_end=calibration_end, timezone=timezone)
    if summary.height == 0:
        raise bgnbd.ModelFitError(
            f"no member bought on or before {calibration_end.isoformat()}; import orders"
            " or choose a later --calibration-end"
        )
    members = summary.height
    if members > FIT_SAMPLE_MEMBERS:
        # Sampling error at 200,000 members is far below the spread of a year's change;
        # a fixed seed over member-sorted rows keeps refits of the same data identical.
        summary = summary.sample(FIT_SAMPLE_MEMBERS, seed=0)
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
        members=members,
        bgnbd=fitted,
        gamma_gamma=gamma_gamma,
        gamma_gamma_members=repeaters,
    )


def fit(*, engine: Engine, calibration_end: date) -> FitResult:
    """Fits both models on the store's orders and keeps the fit for later refreshes."""
    orders = frames.orders(engine)
    result = fit_models(
        orders=orders, calibration_end=calibration_end, timezone=get_settings().default_timezone
    )
    with bulk_store(engine) as store:
        _save_fit(store, result)
        store.commit()
    return result


def _save_fit(store: BulkStore, result: FitResult) -> None:
    store.ingest(
        "model_fits",
        _fit_frame(result).with_columns(created_at=pl.lit(clock.now(), dtype=UTC_TIME)),
    )


def _fit_frame(result: FitResult) -> pl.DataFrame:
    """One model_fits row (without created_at)."""
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
    return pl.DataFrame([row], schema=FIT_COLUMNS)


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
    phases = _Phases()
    settings = get_settings()
    as_of = as_of or local_today()
    thresholds = thresholds or from_settings(settings)
    # On a SQLite file, child processes read the big tables and write the profiles.
    with sqlite_children(engine) as children:
        if children is not None:
            children.start()  # before this process holds the copies of the order tables
        return _refresh(engine, children, phases, as_of=as_of, thresholds=thresholds)


def _refresh(
    engine: Engine,
    children: SqliteChildren | None,
    phases: _Phases,
    *,
    as_of: date,
    thresholds: ProfileThresholds,
) -> RefreshResult:
    """`refresh`, with the children (None: not a SQLite file) and the phase clock started."""
    settings = get_settings()
    timezone = settings.default_timezone
    inputs = _read_inputs(engine, children)
    members, orders, lines = inputs.members, inputs.orders, inputs.lines
    phases.mark("read")
    # A fit (a new store's, or a stale one's) runs beside the parts of a profile that do
    # not need it: numpy and Polars let go of the GIL, and compute leaves a core idle at times.
    with ThreadPoolExecutor(1, thread_name_prefix="tidings-fit") as fitting:
        chosen = fitting.submit(_choose_models, inputs.fit, orders, as_of, thresholds, timezone)
        profiles = compute(
            members=members,
            orders=orders,
            lines=lines,
            products=inputs.products,
            previous=inputs.previous,
            models=lambda: chosen.result()[1],
            as_of=as_of,
            thresholds=thresholds,
            timezone=timezone,
            send_window=settings.send_window,
        )
    new_fit, _, model_note = chosen.result()
    phases.mark("fit and compute")
    profiles, errors = tagrules.apply_tag_rules(
        engine=engine,
        profiles=profiles,
        members=members,
        order_lines=lambda: frames.join_lines(
            lines.with_columns(pl.col("sku", "category").cast(pl.String)), orders
        ),
        as_of=as_of,
    )
    phases.mark("tag rules")
    fit_row = _fit_frame(new_fit) if new_fit is not None else None
    written = writeback.write_back(
        engine=engine, profiles=profiles, fit_row=fit_row, children=children
    )
    _invalidate_audiences(engine)
    phases.mark("write")
    return RefreshResult(
        as_of=as_of,
        members=members.height,
        profiles_written=written,
        seconds=phases.total(),
        model=model_note,
        rfm_segment=_counts(profiles["rfm_segment"]),
        tier=_counts(profiles["tier"]),
        lifecycle_stage=_counts(profiles["lifecycle_stage"]),
        tag_rule_errors=errors,
        phases=phases.seconds,
    )


class _Phases:
    """Seconds spent in each phase of a refresh, for the bench and `--json`."""

    def __init__(self) -> None:
        self.started = self.last = timer.perf_counter()
        self.seconds: dict[str, float] = {}

    def mark(self, name: str) -> None:
        now = timer.perf_counter()
        self.seconds[name] = round(now - self.last, 3)
        self.last = now

    def total(self) -> float:
        return timer.perf_counter() - self.started


@dataclass
class _Inputs:
    members: pl.DataFrame
    orders: pl.DataFrame
    lines: pl.DataFrame  # order_items, sku and category categorical: their order has the rest
    products: pl.DataFrame
    previous: pl.DataFrame
    fit: tuple[date, PurchaseModels] | None


def _read_inputs(engine: Engine, children: SqliteChildren | None) -> _Inputs:
    """Reads everything a refresh needs: the big tables side by side (the orders and lines
    from their copies beside a SQLite store but for what the copies lack), then the small ones."""
    read = scancopies.read_with_copies(
        engine,
        {
            "lines": frames.CATEGORICAL_ITEMS_SCAN,
            "orders": frames.ORDERS_SCAN,
            "members": MEMBERS_SCAN,
            "previous": PREVIOUS_SCAN,
        },
        copied=("lines", "orders"),
        children=children,
    )
    return _Inputs(
        members=_finish_members(read["members"]),
        orders=frames.finish_orders(read["orders"]),
        lines=read["lines"],
        products=frames.products(engine),
        previous=_finish_previous(read["previous"]),
        fit=latest_fit(engine),
    )


def _choose_models(
    stored: tuple[date, PurchaseModels] | None,
    orders: pl.DataFrame,
    as_of: date,
    thresholds: ProfileThresholds,
    timezone: str,
) -> tuple[FitResult | None, PurchaseModels, str]:
    """The new fit (if one was due), the models to predict with, and a note saying which."""
    new_fit: FitResult | None = None
    if _needs_fit(stored, as_of, thresholds):
        try:
            new_fit = fit_models(orders=orders, calibration_end=as_of, timezone=timezone)
        except bgnbd.ModelFitError:
            new_fit = None
    if new_fit is not None:
        return new_fit, PurchaseModels(new_fit.bgnbd, new_fit.gamma_gamma), "fitted"
    if stored is not None:
        return None, stored[1], f"reused fit of {stored[0].isoformat()}"
    return None, PurchaseModels(), "none: no purchases to fit"


def _needs_fit(
    stored: tuple[date, PurchaseModels] | None, as_of: date, thresholds: ProfileThresholds
) -> bool:
    """Fit when there is no fit, when it is older than allowed, or when it saw past as-of."""
    if stored is None:
        return True
    age = (as_of - stored[0]).days
    return age < 0 or age > thresholds.model_refit_after_days


def _counts(column: pl.Series) -> dict[str, int]:
    """How many members have each value, the commonest first (counted in Polars: a Python
    Counter over a million texts took about a tenth of a second per column)."""
    counted = column.drop_nulls().value_counts(name="members").rows()
    return dict(sorted(counted, key=lambda item: (-item[1], item[0])))


MEMBER_COLUMNS: dict[str, Any] = {
    "member_id": pl.Int64,
    "store_id": pl.Int64,
    "tier": pl.String,
    "timezone": pl.String,
    "tags": pl.String,
}


MEMBERS_SCAN = TableScan(
    table="members",
    columns="id AS member_id, store_id, COALESCE(tier, '') AS tier,"
    " COALESCE(timezone, '') AS timezone, COALESCE(CAST(tags AS TEXT), '') AS tags",
    where="erased_at IS NULL",
    schema=MEMBER_COLUMNS,
)
PREVIOUS_SCAN = TableScan(
    table="profiles",
    columns="member_id, COALESCE(tier, '') AS tier,"
    " COALESCE(previous_tier, '') AS previous_tier,"
    " COALESCE(CAST(tier_changed_at AS TEXT), '') AS tier_changed_at",
    schema={
        "member_id": pl.Int64,
        "tier": pl.String,
        "previous_tier": pl.String,
        "tier_changed_at": pl.String,
    },
)


def _finish_members(frame: pl.DataFrame) -> pl.DataFrame:
    """Members not erased: id, home store, POS tier, timezone and manual tags (a list)."""
    return frame.with_columns(
        pl.col("tier", "timezone").replace("", None),
        pl.col("tags").replace("", None).replace("null", None).str.json_decode(pl.List(pl.String)),
    ).sort("member_id")


def _finish_previous(frame: pl.DataFrame) -> pl.DataFrame:
    """Last refresh's tier, previous tier and day of change per member."""
    return frame.with_columns(
        pl.col("tier", "previous_tier").replace("", None),
        pl.col("tier_changed_at").replace("", None).str.slice(0, 10).str.to_date(strict=False),
    )


def _invalidate_audiences(engine: Engine) -> None:
    """Tells the segment snapshots that profiles changed."""
    from tidings.segments import snapshot

    snapshot.invalidate(engine)
