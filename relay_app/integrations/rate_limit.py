"""Rate limits shared by every web process: a GCRA token bucket per key, in Redis.

One key and one round trip per request, whatever the rate: Redis keeps, per client, the time
at which its bucket would be full again ("theoretical arrival time"). N requests may come at
once, then one every period/N. Redis's clock is the only one used, so several web servers
agree.
"""

import logging
import os
from functools import cache

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

# Connect and answer within this, or let the request through: a Redis that is down already
# makes the relay answer 503, and reads need no Redis at all.
_TIMEOUT_SECONDS = 0.5
_KEY_PREFIX = "relay:rate:"

# KEYS[1]: the client's key. ARGV: seconds between requests at the rate, burst in seconds.
# Returns "0" if allowed, else how many seconds until the next request would be.
_GCRA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local wait = tat - burst - now
if wait > 0 then return tostring(wait) end
local new_tat = tat + interval
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1)
return '0'
"""


class RateLimiter:
    """``hit(key, rate)``: count one request against ``key``; how long to wait, 0 if allowed."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=_TIMEOUT_SECONDS,
            socket_connect_timeout=_TIMEOUT_SECONDS,
            **settings.REDIS_TLS,
        )
        self._script = self._client.register_script(_GCRA)

    def hit(self, key: str, rate: tuple[int, float]) -> float:
        """Seconds until ``key`` may make its next request under ``rate`` (0.0: this one may).

        ``rate`` is (requests, per seconds). Fails open, with a warning, if Redis does not answer.
        """
        count, period = rate
        interval = period / count
        try:
            wait = float(self._script(keys=[_KEY_PREFIX + key], args=[interval, period - interval]))
        except redis.RedisError as exc:
            logger.warning("rate limit not checked, Redis did not answer: %r", exc)
            return 0.0
        return max(wait, 0.0)


@cache
def _limiter_for(pid: int) -> RateLimiter:
    return RateLimiter(settings.CELERY_BROKER_URL)


def get_rate_limiter() -> RateLimiter:
    """This process's limiter (its own Redis connections after a fork)."""
    return _limiter_for(os.getpid())
