"""The dashboard: what was sent and what it earned over the last fortnight, sending health,
the campaigns under way and the ticket queue."""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from starlette.responses import Response

from tidings.config import get_settings
from tidings.web.dashboard.figures import FiguresCache
from tidings.web.rendering import language_of, render
from tidings.web.security import CurrentViewer
from tidings.web.texts import TEXTS

router = APIRouter(include_in_schema=False)


def _chart(days: list[dict[str, Any]], texts: dict[str, str]) -> str:
    labels = [day["day"][5:] for day in days]

    def line(key: str, color: str, axis: str = "y", scale: float = 1) -> dict[str, Any]:
        return {
            "label": texts[f"metric_{key}"],
            "data": [day[key] / scale for day in days],
            "borderColor": color,
            "backgroundColor": color,
            "yAxisID": axis,
        }

    sends = {
        "type": "line",
        "data": {
            "labels": labels,
            "datasets": [
                line("sent", "#1a73c9"),
                line("delivered", "#2e7d32"),
                line("clicks", "#f9a825"),
                line("conversions", "#6a1b9a"),
            ],
        },
        "options": {"animation": False, "maintainAspectRatio": False},
    }
    return json.dumps(sends, ensure_ascii=False)


def _money_chart(days: list[dict[str, Any]], texts: dict[str, str]) -> str:
    chart = {
        "type": "bar",
        "data": {
            "labels": [day["day"][5:] for day in days],
            "datasets": [
                {
                    "label": texts["metric_revenue_cents"],
                    "data": [day["revenue_cents"] / 100 for day in days],
                    "backgroundColor": "#2e7d32",
                },
                {
                    "label": texts["metric_cost_cents"],
                    "data": [day["cost_cents"] / 100 for day in days],
                    "backgroundColor": "#c62828",
                },
            ],
        },
        "options": {"animation": False, "maintainAspectRatio": False},
    }
    return json.dumps(chart, ensure_ascii=False)


@router.get("/")
def dashboard(request: Request, viewer: CurrentViewer) -> Response:
    """Shows the dashboard (a store manager sees their store's figures)."""
    cache: FiguresCache = request.app.state.dashboard_figures
    figures = cache.get(viewer.store_scope)
    texts = TEXTS[language_of(request)]
    return render(
        request,
        "dashboard/templates/dashboard.html",
        viewer=viewer,
        days=figures.days,
        totals=figures.totals,
        breaches=figures.breaches,
        campaigns=figures.campaigns,
        tickets=figures.tickets,
        computed_at=figures.computed_at.astimezone(ZoneInfo(get_settings().default_timezone)),
        sends_chart=_chart(figures.days, texts),
        money_chart=_money_chart(figures.days, texts),
    )
