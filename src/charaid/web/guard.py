"""What the server checks before it does any work: ids, tokens, request rates and decode slots.

Every check here answers a 4xx with one line saying why, never a 5xx: a bad request is the
client's mistake, and a crash reply would hide real server faults.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Annotated

from fastapi import Body
from fastapi import Path as PathParam
from pydantic import Field

#: The largest row id SQLite can hold; an id beyond it can name nothing (404/422, not a 500).
MAX_ID = 2**63 - 1

#: A row id in a URL path.
PathId = Annotated[int, PathParam(ge=0, le=MAX_ID)]
#: A row id in a list in a JSON body.
BodyId = Annotated[int, Field(ge=0, le=MAX_ID)]
#: A row id that is a field of a JSON body.
EmbeddedId = Annotated[int, Body(embed=True, ge=0, le=MAX_ID)]


def token_matches(got: str | None, token: str) -> bool:
    """Constant-time comparison that takes any header: a non-ASCII one is simply wrong.
    (Starlette hands headers over as Latin-1 text; ``compare_digest`` refuses non-ASCII str.)"""
    return secrets.compare_digest((got or "").encode("utf-8", "surrogateescape"), token.encode())


class RateLimiter:
    """A token bucket per client address: ``rate`` requests a second, bursts of ``burst``."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> float:
        """0 when the request may go on, else the seconds to wait before the next one."""
        now = time.monotonic()
        with self._lock:
            if len(self._buckets) > 10_000:  # forget idle clients; the table stays small
                self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 60}
            tokens, last = self._buckets.get(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[client] = (tokens, now)
                return (1.0 - tokens) / self.rate
            self._buckets[client] = (tokens - 1.0, now)
            return 0.0
