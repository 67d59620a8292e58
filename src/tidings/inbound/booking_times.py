"""When a member asks to come: a date and a time read from the common Chinese forms.

Days: 今天, 明天, 后天, 大后天, 周六 / 星期六 / 礼拜六 (下周六 a week on), 12月5日 / 12月5号,
5号, 2026-12-05, 12/5. Times: 15:30, 下午3点, 下午三点半, 晚上7点20, 上午10点, 中午. Digits
may be full-width or Chinese numerals. A day without a time is booked at the default hour;
a time without a day is today, or tomorrow when it has already passed.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

from tidings.inbound.keywords import fold

DEFAULT_HOUR = 10  # a booking with a day and no time is for 10:00 local
_NUMERALS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}
_NUMERALS.update({"六": 6, "七": 7, "八": 8, "九": 9})
_NUMBER = r"(\d{1,2}|[零〇一二两三四五六七八九十]{1,3})"
_WEEKDAYS = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "七": 6}
_RELATIVE = {"今天": 0, "今日": 0, "明天": 1, "明日": 1, "后天": 2, "大后天": 3}
_ISO = re.compile(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})")
_MONTH_DAY = re.compile(_NUMBER + r"月" + _NUMBER + r"[日号]?")
_SLASH = re.compile(r"(?<!\d)(\d{1,2})/(\d{1,2})(?!\d)")
_DAY_ONLY = re.compile(_NUMBER + r"[日号]")
_WEEKDAY = re.compile(r"(下下|下个?)?(?:周|星期|礼拜)([一二三四五六日天七])")
_CLOCK = re.compile(r"(?<!\d)(\d{1,2}):(\d{2})(?!\d)")
_PERIOD = r"(凌晨|早上|早晨|上午|中午|下午|傍晚|晚上|今晚)?"
_HOUR = re.compile(_PERIOD + _NUMBER + r"[点點时](半|" + _NUMBER + r"分?)?")
_AFTERNOON = {"下午", "傍晚", "晚上", "今晚"}


def chinese_number(text: str) -> int | None:
    """12, '十二', '二十五', '三' -> the number; None for anything else."""
    if text.isdigit():
        return int(text)
    if "十" in text:
        tens, _, units = text.partition("十")
        high = _NUMERALS.get(tens, -1) if tens else 1
        low = _NUMERALS.get(units, -1) if units else 0
        return None if high < 0 or low < 0 else high * 10 + low
    if len(text) == 1 and text in _NUMERALS:
        return _NUMERALS[text]
    return None


def _day(text: str, today: date) -> date | None:
    match = _ISO.search(text)
    if match:
        return _safe_date(int(match[1]), int(match[2]), int(match[3]))
    match = _MONTH_DAY.search(text)
    if match:
        return _ahead(today, chinese_number(match[1]), chinese_number(match[2]))
    match = _SLASH.search(text)
    if match:
        return _ahead(today, int(match[1]), int(match[2]))
    for word in sorted(_RELATIVE, key=len, reverse=True):
        if word in text:
            return today + timedelta(days=_RELATIVE[word])
    match = _WEEKDAY.search(text)
    if match:
        weekday = _WEEKDAYS[match[2]]
        days = (weekday - today.weekday()) % 7
        if match[1]:
            days += 14 if match[1] == "下下" else 7
        return today + timedelta(days=days)
    match = _DAY_ONLY.search(text)
    if match:
        number = chinese_number(match[1])
        if number is not None:
            candidate = _safe_date(today.year, today.month, number)
            if candidate is not None and candidate < today:
                month = today.month % 12 + 1
                year = today.year + (1 if month == 1 else 0)
                candidate = _safe_date(year, month, number)
            return candidate
    return None


def _safe_date(year: int, month: int | None, day: int | None) -> date | None:
    if month is None or day is None:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _ahead(today: date, month: int | None, day: int | None) -> date | None:
    """The next such month and day, this year or next."""
    found = _safe_date(today.year, month, day)
    if found is not None and found < today:
        found = _safe_date(today.year + 1, month, day)
    return found


def _time(text: str) -> time | None:
    match = _CLOCK.search(text)
    if match:
        hour, minute = int(match[1]), int(match[2])
        return time(hour, minute) if hour < 24 and minute < 60 else None
    match = _HOUR.search(text)
    if match:
        said_hour = chinese_number(match[2])
        said_minute = 30 if match[3] == "半" else (chinese_number(match[4]) if match[4] else 0)
        if said_hour is None or said_hour > 24 or said_minute is None or said_minute > 59:
            return None
        if match[1] in _AFTERNOON and said_hour < 12:
            said_hour += 12
        return time(said_hour % 24, said_minute)
    if "中午" in text:
        return time(12, 0)
    return None


def parse_when(text: str, now: datetime) -> datetime | None:
    """The moment `text` asks for, in `now`'s timezone, or None when it names no day or time.

    A moment already past is never returned.
    """
    folded = fold(text)
    local_now = now
    day = _day(folded, local_now.date())
    moment = _time(folded)
    if day is None and moment is None:
        return None
    if day is None:
        day = local_now.date()
        assert moment is not None
        if datetime.combine(day, moment, tzinfo=local_now.tzinfo) <= local_now:
            day += timedelta(days=1)
    at = datetime.combine(day, moment or time(DEFAULT_HOUR), tzinfo=local_now.tzinfo)
    return at if at > local_now else None
