"""Content for a campaign of 1,000,000 members: render a two-placeholder template, measure, lint.

The issue's budget is 5 s for rendering, length and lint checks and the policy decision
together; content's share is 3 s.
"""

from __future__ import annotations

import time

import numpy as np
import polars as pl

from bench.harness import report
from tidings.content.length import measure
from tidings.content.lint import lint_messages, lint_rules
from tidings.content.render import render_filled
from tidings.content.template import AUDIENCE_COLUMNS, MessageKind, prepare_template

MEMBERS = 1_000_000
TARGET_SECONDS = 3.0  # content's share of the 5 s
SURNAMES = [*"王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高", "欧阳", "司马", "诸葛"]
GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华")
TEMPLATE = "{surname|会员}您好，您的{points:,}积分本月底到期，点击 t.example.cn/p 兑换好礼"
# The same with each member's own signed preference page link (a keyed hash per member).
LINK_TEMPLATE = "{surname|会员}您好，您的{points:,}积分本月底到期。消息偏好：{preference_link}"


def synthetic_audience(*, members: int, seed: int = 4) -> pl.DataFrame:
    """Returns an audience frame of `members` rows with names, genders and points."""
    rng = np.random.default_rng(seed)
    surname = np.array(SURNAMES)[rng.integers(0, len(SURNAMES), members)]
    given = np.array(GIVEN)[rng.integers(0, len(GIVEN), members)]
    name = np.char.add(surname, given)
    gender = np.array(["F", "M", None], dtype=object)[rng.integers(0, 3, members)]
    return pl.DataFrame(
        {
            "member_id": np.arange(members),
            "name": name,
            "gender": gender,
            "points": rng.integers(0, 200_000, members),
        },
        schema_overrides={"gender": pl.String},
    )


def run() -> None:
    """Measures render + length + lint for a million members and reports seconds, for the
    plain template and for one with {preference_link}."""
    audience = synthetic_audience(members=MEMBERS)
    for name, text in (("content", TEMPLATE), ("content_preference_link", LINK_TEMPLATE)):
        _measure(name, text, audience)


def _measure(name: str, text: str, audience: pl.DataFrame) -> None:
    rules = lint_rules(kind=MessageKind.MARKETING)
    template = prepare_template(text, kind=MessageKind.MARKETING, columns=AUDIENCE_COLUMNS)
    started = time.perf_counter()
    rendered, filled = render_filled(template, audience)
    rendered_at = time.perf_counter()
    measured = measure(rendered["text"], scheme=rules.scheme, filled=filled)
    measured_at = time.perf_counter()
    errors = lint_messages(rendered["text"], rules=rules, measured=measured, filled=filled)
    seconds = time.perf_counter() - started
    phases = [rendered_at - started, measured_at - rendered_at, started + seconds - measured_at]
    print(f"{name}: " + "render {:.2f} s, length {:.2f} s, lint {:.2f} s".format(*phases))
    stages = f"{rendered['text'].null_count()} skipped, {errors.null_count()} clear"
    print(f"{name}: {MEMBERS:,} members, {stages}", flush=True)
    report(
        name,
        seconds,
        "s",
        f"<= {TARGET_SECONDS:.0f} s for 1,000,000 members",
        met=seconds <= TARGET_SECONDS,
    )
