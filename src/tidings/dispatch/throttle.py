"""Per-provider rate limits: messages per second and requests in flight.

The message rate is a moving one-second window of the `limits` library, taken per request
with the request's size as its cost: in memory for one worker, in Redis when several share
it. Requests in flight are bounded by a semaphore per worker and, with Redis, by a shared
count with expiring entries, so a worker that dies does not hold its slots for ever.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from limits import RateLimitItemPerSecond
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

MIN_WAIT = 0.002  # seconds between two looks at a full window
SLOT_LEASE = 60.0  # seconds a shared request slot is held at most if its worker dies
# Take a slot only if fewer than ARGV[1] are held; entries past their expiry do not count.
_ACQUIRE_SLOT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  return 1
end
return 0
"""


class ProviderThrottle:
    """Holds one provider to its rate and its concurrency, across workers when shared."""

    def __init__(
        self,
        name: str,
        *,
        rate_per_second: int,
        max_concurrency: int,
        redis_url: str | None = None,
    ) -> None:
        self.name = name
        self.rate_per_second = rate_per_second
        self.max_concurrency = max(1, max_concurrency)
        self._semaphore = asyncio.Semaphore(self.max_concurrency)
        self._redis_url = redis_url
        self._redis: Any = None
        self._limiter: MovingWindowRateLimiter | None = None
        if rate_per_second > 0:
            uri = f"async+{redis_url}" if redis_url else "async+memory://"
            options = {"implementation": "redispy"} if redis_url else {}
            storage = storage_from_string(uri, **options)
            self._limiter = MovingWindowRateLimiter(storage)
            self._item = RateLimitItemPerSecond(rate_per_second)

    def chunk_size(self, max_batch: int) -> int:
        """The most messages one request may carry so that the rate stays smooth."""
        if self.rate_per_second <= 0:
            return max_batch
        return max(1, min(max_batch, self.rate_per_second // 10 or 1))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Waits for a request slot (of this worker, and of all workers with Redis) and holds it."""
        async with self._semaphore:
            token = await self._take_shared_slot()
            try:
                yield
            finally:
                await self._give_shared_slot(token)

    @asynccontextmanager
    async def request(self, cost: int) -> AsyncIterator[None]:
        """Waits for a request slot and for `cost` messages of the rate, then holds the slot."""
        async with self.slot():
            await self.take_rate(cost)
            yield

    async def take_rate(self, cost: int) -> None:
        """Waits until `cost` more messages fit in the last second's rate; call it right before
        the request, so that the provider sees the rate the window allows."""
        if self._limiter is None:
            return
        while not await self._limiter.hit(self._item, "sms", self.name, cost=cost):
            stats = await self._limiter.get_window_stats(self._item, "sms", self.name)
            await asyncio.sleep(max(MIN_WAIT, min(stats.reset_time - time.time(), 1.0)))

    async def _take_shared_slot(self) -> str | None:
        if not self._redis_url:
            return None
        if self._redis is None:
            import redis.asyncio as redis

            self._redis = redis.from_url(self._redis_url)
        token = uuid.uuid4().hex
        key = f"tidings:slots:{self.name}"
        while True:
            now = time.time()
            taken = await self._redis.eval(
                _ACQUIRE_SLOT,
                1,
                key,
                self.max_concurrency,
                now,
                now + SLOT_LEASE,
                token,
                int(SLOT_LEASE) + 1,
            )
            if taken:
                return token
            await asyncio.sleep(MIN_WAIT)

    async def _give_shared_slot(self, token: str | None) -> None:
        if token is not None and self._redis is not None:
            await self._redis.zrem(f"tidings:slots:{self.name}", token)

    async def close(self) -> None:
        """Closes the connection to Redis, if any."""
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
