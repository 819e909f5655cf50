"""API keys with a per-key rate limit (token bucket). No keys configured means auth is off.

A key is presented as `Authorization: Bearer KEY` or `X-API-Key: KEY`. Each key has a bucket of
`burst` tokens refilled at `per_minute`; every job-creating request takes one token, and an empty
bucket answers 429 with the seconds to wait in `Retry-After`.
"""

from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping


@dataclass(frozen=True)
class RateLimit:
    per_minute: float = 60.0
    burst: int = 10

    def __post_init__(self):
        if self.per_minute <= 0 or self.burst < 1:
            raise ValueError(f"a rate limit needs per_minute > 0 and burst >= 1, got {self.per_minute}, {self.burst}")


class AuthError(Exception):
    def __init__(self, status: int, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after


class TokenBucket:
    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic):
        self.limit, self.clock = limit, clock
        self.tokens, self.stamp = float(limit.burst), clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        """0.0 when a token was taken, else the seconds until one is available."""
        with self._lock:
            now = self.clock()
            rate = self.limit.per_minute / 60.0
            self.tokens = min(self.limit.burst, self.tokens + (now - self.stamp) * rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return 0.0
            return (1 - self.tokens) / rate


def parse_key_spec(spec: str) -> tuple[str, RateLimit]:
    """'KEY' or 'KEY:PER_MINUTE' or 'KEY:PER_MINUTE:BURST' (the CLI's --api-key)."""
    key, *rest = spec.split(":")
    if not key or len(rest) > 2:
        raise ValueError(f"bad API key spec {spec!r}: use KEY, KEY:PER_MINUTE or KEY:PER_MINUTE:BURST")
    try:
        numbers = [float(rest[0])] if rest else []
        if len(rest) == 2:
            numbers.append(int(rest[1]))
    except ValueError:
        raise ValueError(f"bad API key spec {spec!r}: PER_MINUTE and BURST must be numbers") from None
    return key, RateLimit(*numbers)


class ApiKeys:
    def __init__(self, keys: Mapping[str, RateLimit | None] | Iterable[str] | None = None,
                 default: RateLimit = RateLimit(), clock: Callable[[], float] = time.monotonic):
        if keys is None:
            keys = {}
        if not isinstance(keys, Mapping):
            keys = {k: None for k in keys}
        self.buckets = {k: TokenBucket(limit or default, clock) for k, limit in keys.items()}

    @property
    def enabled(self) -> bool:
        return bool(self.buckets)

    def authenticate(self, presented: str | None) -> str | None:
        """The key when valid (None when auth is off); AuthError(401) otherwise."""
        if not self.enabled:
            return None
        if not presented:
            raise AuthError(401, "an API key is required: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'")
        # compare against every key in constant time, so timing does not leak a prefix
        match = [k for k in self.buckets if hmac.compare_digest(k.encode(), presented.encode())]
        if not match:
            raise AuthError(401, "unknown API key")
        return match[0]

    def charge(self, key: str | None) -> None:
        """Take one request from the key's budget; AuthError(429) when it is spent."""
        if key is None:
            return
        wait = self.buckets[key].take()
        if wait > 0:
            limit = self.buckets[key].limit
            raise AuthError(429, f"rate limit of {limit.per_minute:g} requests/minute (burst {limit.burst}) "
                                 f"reached; retry in {wait:.1f} s", retry_after=wait)
