"""Provider rate limits hold per window of one second, and across workers through Redis.

No test measures elapsed time: each records when every request was let through and counts
the messages in every one-second window that starts at a grant.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from tidings.dispatch.throttle import ProviderThrottle

REDIS_URL = "redis://127.0.0.1:6379/0"


# A grant is noted a little after the limiter stamped it (a Redis round trip, a turn of the
# event loop); counting windows a little shorter than a second absorbs that lag.
WINDOW = 0.95  # seconds


def _most_in_any_second(grants: list[tuple[float, int]]) -> int:
    """The most messages let through within one window, over all windows opening at a grant."""
    grants = sorted(grants)
    best = 0
    for i, (start, _) in enumerate(grants):
        best = max(best, sum(cost for at, cost in grants[i:] if at < start + WINDOW))
    return best


async def _send(
    throttles: list[ProviderThrottle], requests: int, cost: int
) -> tuple[list[tuple[float, int]], int]:
    grants: list[tuple[float, int]] = []
    in_flight = 0
    most_in_flight = 0

    async def one(throttle: ProviderThrottle) -> None:
        nonlocal in_flight, most_in_flight
        async with throttle.request(cost):
            grants.append((time.time(), cost))
            in_flight += 1
            most_in_flight = max(most_in_flight, in_flight)
            await asyncio.sleep(0.01)
            in_flight -= 1

    await asyncio.gather(*(one(throttles[i % len(throttles)]) for i in range(requests)))
    for throttle in throttles:
        await throttle.close()
    return grants, most_in_flight


def test_no_second_carries_more_than_the_configured_rate() -> None:
    throttle = ProviderThrottle("sim", rate_per_second=300, max_concurrency=8)
    grants, _ = asyncio.run(_send([throttle], requests=30, cost=30))
    assert sum(cost for _, cost in grants) == 900
    assert _most_in_any_second(grants) <= 300


def test_a_request_larger_than_the_rate_is_split_before_it_is_sent() -> None:
    throttle = ProviderThrottle("sim", rate_per_second=50, max_concurrency=1)
    assert throttle.chunk_size(500) == 5
    assert ProviderThrottle("sim", rate_per_second=0, max_concurrency=1).chunk_size(500) == 500


def _redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL).ping())
    except redis.RedisError:
        return False


@pytest.mark.skipif(not _redis_up(), reason="no Redis at 127.0.0.1:6379")
def test_two_workers_sharing_redis_hold_the_rate_and_the_concurrency_together() -> None:
    name = f"sim-{uuid.uuid4().hex[:8]}"  # a fresh key space per run
    workers = [
        ProviderThrottle(name, rate_per_second=200, max_concurrency=2, redis_url=REDIS_URL)
        for _ in range(2)
    ]
    grants, most_in_flight = asyncio.run(_send(workers, requests=24, cost=25))
    assert sum(cost for _, cost in grants) == 600
    assert _most_in_any_second(grants) <= 200
    assert most_in_flight <= 2


def test_without_redis_each_worker_only_holds_its_own_concurrency() -> None:
    workers = [ProviderThrottle("sim", rate_per_second=0, max_concurrency=2) for _ in range(2)]
    _, most_in_flight = asyncio.run(_send(workers, requests=16, cost=1))
    assert most_in_flight == 4
