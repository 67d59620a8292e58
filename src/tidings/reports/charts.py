"""A campaign report's charts: the funnel, daily volume and delivery, A/B rates with their
intervals, and the lift over the holdout, as PNG files and as the same series in JSON for the
console.

Drawn with matplotlib's Agg canvas on figures of their own (no pyplot, no display, nothing
shared between threads). Labels are English; the campaign's own name is shown only when a
font with Chinese glyphs is installed, so that no chart shows empty boxes.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

FIGURE_SIZE = (8.0, 4.5)  # inches
DPI = 100  # dots per inch: charts are 800 x 450 pixels
FUNNEL_STEPS = (
    "planned",
    "sent",
    "delivered",
    "clicked",
    "replied",
    "converted",
    "opted_out",
    "complained",
)
AB_METRICS = {"converted": "orders", "clicked": "clicks"}
CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Droid Sans Fallback",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
)


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """The name of an installed font family with Chinese glyphs, or None."""
    installed = {entry.name for entry in font_manager.fontManager.ttflist}
    return next((family for family in CJK_FAMILIES if family in installed), None)


def _interval(name: str, estimate: dict[str, Any] | None) -> dict[str, Any]:
    if estimate is None:
        return {"name": name, "value": None, "low": None, "high": None}
    return {
        "name": name,
        "value": estimate["value"],
        "low": estimate["low"],
        "high": estimate["high"],
    }


def _ab_series(ab: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per metric: the control's rate, then each variant's, each with its interval."""
    series: dict[str, list[dict[str, Any]]] = {}
    for metric in AB_METRICS:
        points = []
        if ab:
            points.append(_interval(ab[0]["control"], ab[0][metric]["control_rate"]))
        points += [_interval(row["variant"], row[metric]["rate"]) for row in ab]
        series[metric] = points
    return series


def _lift_series(lift: dict[str, Any] | None) -> dict[str, list[dict[str, Any]]] | None:
    if not lift or not lift.get("holdout", {}).get("members"):
        return None
    groups = ("treated", "holdout")
    return {
        "conversion_rate": [_interval(g, lift[g]["conversion_rate"]) for g in groups],
        "revenue_per_member_cents": [
            _interval(g, lift[g]["revenue_per_member_cents"]) for g in groups
        ],
    }


def chart_data(report: dict[str, Any]) -> dict[str, Any]:
    """The series each chart draws, as JSON for the console."""
    funnel = report.get("funnel") or {}
    days = report.get("by_day") or []

    def rate(row: dict[str, Any]) -> float | None:
        settled = int(row.get("delivered") or 0) + int(row.get("failed") or 0)
        return int(row.get("delivered") or 0) / settled if settled else None

    return {
        "funnel": {
            "steps": [step for step in FUNNEL_STEPS if step in funnel],
            "values": [int(funnel[step] or 0) for step in FUNNEL_STEPS if step in funnel],
        },
        "daily": {
            "days": [str(row["day"]) for row in days],
            "sent": [int(row.get("sent") or 0) for row in days],
            "delivered": [int(row.get("delivered") or 0) for row in days],
            "failed": [int(row.get("failed") or 0) for row in days],
            "delivery_rate": [rate(row) for row in days],
        },
        "ab": _ab_series(report.get("ab") or []),
        "lift": _lift_series(report.get("lift")),
    }


def _figure(title: str, columns: int = 1) -> tuple[Figure, list[Any]]:
    figure = Figure(figsize=FIGURE_SIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = [figure.add_subplot(1, columns, index + 1) for index in range(columns)]
    family = cjk_font()
    figure.suptitle(title, **({"fontfamily": [family, "DejaVu Sans"]} if family else {}))
    return figure, axes


def _save(figure: Figure, path: Path) -> str:
    figure.savefig(path, format="png", dpi=DPI)
    return str(path)


def _draw_funnel(series: dict[str, Any], title: str, path: Path) -> str:
    figure, (axes,) = _figure(f"{title}: funnel")
    labels = [step.replace("_", " ") for step in series["steps"]]
    bars = axes.barh(labels[::-1], series["values"][::-1], color="#3b7dd8")
    axes.bar_label(bars, labels=[f"{value:,}" for value in series["values"][::-1]], padding=3)
    axes.set_xlabel("messages")
    axes.margins(x=0.15)
    return _save(figure, path)


def _draw_daily(series: dict[str, Any], title: str, path: Path) -> str:
    figure, (axes,) = _figure(f"{title}: daily volume and delivery")
    days = series["days"]
    axes.plot(days, series["sent"], marker="o", label="sent")
    axes.plot(days, series["delivered"], marker="o", label="delivered")
    axes.plot(days, series["failed"], marker="o", label="failed")
    axes.set_ylabel("messages")
    axes.tick_params(axis="x", labelrotation=30)
    rates = axes.twinx()
    shares = [None if value is None else value * 100 for value in series["delivery_rate"]]
    rates.plot(days, shares, color="black", linestyle="--", label="delivery rate")
    rates.set_ylabel("delivery rate (%)")
    rates.set_ylim(0, 105)
    lines = axes.get_legend_handles_labels()
    more = rates.get_legend_handles_labels()
    axes.legend(lines[0] + more[0], lines[1] + more[1], loc="center left")
    return _save(figure, path)


def _error_bars(axes: Any, points: list[dict[str, Any]], scale: float, label: str) -> None:
    shown = [point for point in points if point["value"] is not None]
    names = [point["name"] for point in shown]
    values = [point["value"] * scale for point in shown]
    # A Wilson bound may sit a rounding error past its estimate (0 of 3: low 5.6e-17).
    below = [max(0.0, point["value"] - point["low"]) * scale for point in shown]
    above = [max(0.0, point["high"] - point["value"]) * scale for point in shown]
    axes.errorbar(names, values, yerr=[below, above], fmt="o", capsize=8, markersize=7)
    axes.set_ylabel(label)
    axes.set_xlim(-0.5, len(names) - 0.5)
    axes.set_ylim(bottom=0)


def _draw_ab(series: dict[str, Any], title: str, path: Path) -> str:
    figure, axes = _figure(f"{title}: A/B rates with 95% intervals", columns=len(AB_METRICS))
    for plot, (metric, words) in zip(axes, AB_METRICS.items(), strict=True):
        _error_bars(plot, series[metric], 100, f"{words} per recipient (%)")
        plot.set_title(words)
    return _save(figure, path)


def _draw_lift(series: dict[str, Any], title: str, path: Path) -> str:
    figure, (conversion, revenue) = _figure(f"{title}: treated vs holdout (95% intervals)", 2)
    _error_bars(conversion, series["conversion_rate"], 100, "members who ordered (%)")
    conversion.set_title("conversion")
    _error_bars(revenue, series["revenue_per_member_cents"], 0.01, "revenue per member (yuan)")
    revenue.set_title("revenue per member")
    return _save(figure, path)


def campaign_charts(report: dict[str, Any], folder: Path) -> dict[str, str]:
    """Renders the report's charts as PNG files in `folder`; returns their paths by name.
    Charts without data (no A/B arms, no holdout, no day sent) are left out."""
    folder.mkdir(parents=True, exist_ok=True)
    data = chart_data(report)
    info = report.get("campaign") or {}
    title = f"campaign {info.get('id', '')}".strip()
    if cjk_font() is not None and info.get("name"):
        title = f"{title} {info['name']}"
    drawn = {"funnel": _draw_funnel(data["funnel"], title, folder / "funnel.png")}
    if data["daily"]["days"]:
        drawn["daily"] = _draw_daily(data["daily"], title, folder / "daily.png")
    if report.get("ab"):
        drawn["ab"] = _draw_ab(data["ab"], title, folder / "ab.png")
    if data["lift"] is not None:
        drawn["lift"] = _draw_lift(data["lift"], title, folder / "lift.png")
    return drawn
