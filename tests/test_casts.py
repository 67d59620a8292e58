"""Times handed to frames from Python keep their instant, whatever zone they came in."""

from datetime import UTC, datetime, timedelta, timezone

from tidings.casts import UTC_TIME, utc_series

SHANGHAI = timezone(timedelta(hours=8))


def test_times_keep_their_instant_in_utc() -> None:
    moments = [
        datetime(2026, 12, 2, 9, 30, 15, 123456, tzinfo=SHANGHAI),
        None,
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 12, 2, 1, 30, 15, 123456),  # no zone: taken as UTC
    ]

    series = utc_series("at", moments)

    assert series.dtype == UTC_TIME
    assert series.to_list() == [
        datetime(2026, 12, 2, 1, 30, 15, 123456, tzinfo=UTC),
        None,
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 12, 2, 1, 30, 15, 123456, tzinfo=UTC),
    ]
