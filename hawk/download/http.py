"""A polite HTTP client: rate limited, retried with backoff, files land only when complete.

Xeno-canto asks for at most one request a second and iNaturalist for about one; both answer 429 when
pushed. Timeouts, 429 and 5xx are retried with exponential backoff (honouring ``Retry-After``);
other 4xx are final. API keys never appear in logs or error messages (:func:`redact`).
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests

from hawk.errors import HawkError
from hawk.fsutil import atomic_open

log = logging.getLogger(__name__)
_SECRET = re.compile(r"((?:key|api_key|token)=)[^&\s'\"]+", re.IGNORECASE)
RETRY_STATUS = {429, 500, 502, 503, 504}


def redact(text: str) -> str:
    """Hide API keys in a URL or message."""
    return _SECRET.sub(r"\1***", text)


class _RedactFilter(logging.Filter):
    """urllib3 logs full request URLs at DEBUG level; the Xeno-canto key is a query parameter."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(str(record.msg))
        if record.args:
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_RedactFilter())


class FetchError(HawkError):
    """A request that failed for good (after retries, or with a final status such as 404)."""

    def __init__(self, url: str, reason: str, status: int | None = None):
        super().__init__(f"{redact(url)}: {redact(reason)}")
        self.status = status


class AuthError(FetchError):
    """401/403: the key is missing or wrong; retrying cannot help."""


class RateLimiter:
    """At most one request per ``min_interval`` seconds. A service gets one limiter, shared by every
    request to it (listing pages and file downloads alike), so the spacing holds per service."""

    def __init__(self, min_interval: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.min_interval = min_interval
        self.clock, self.sleep = clock, sleep
        self._last: float | None = None
        self.turns = 0  # requests let through so far
        self.recent: deque[float] = deque(maxlen=64)  # when the latest were let through (clock time)

    def wait_turn(self) -> None:
        if self._last is not None:
            gap = self.min_interval - (self.clock() - self._last)
            while gap > 0:  # sleep may return early (a signal); the spacing is a promise to the service
                self.sleep(gap)
                gap = self.min_interval - (self.clock() - self._last)
        self._last = self.clock()
        self.turns += 1
        self.recent.append(self._last)


class PoliteSession:
    """``requests`` with a minimum interval between requests and retries with backoff. Pass one
    ``limiter`` to every session that talks to the same service."""

    def __init__(
        self,
        min_interval: float = 1.0,
        retries: int = 4,
        backoff: float = 2.0,
        timeout: float = 30.0,
        user_agent: str = "hawk (bioacoustics classifier builder)",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        limiter: RateLimiter | None = None,
    ):
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.sleep = sleep
        self.limiter = limiter or RateLimiter(min_interval, clock, sleep)
        self.session = requests.Session()
        self.session.headers["User-Agent"] = user_agent

    def _wait_turn(self) -> None:
        self.limiter.wait_turn()

    def request(self, url: str, params: Mapping[str, Any] | None = None, stream: bool = False) -> requests.Response:
        """GET with retries; returns a 2xx response or raises :class:`FetchError`."""
        for attempt in range(self.retries + 1):
            self._wait_turn()
            delay = self.backoff * 2**attempt
            try:
                resp = self.session.get(url, params=params, timeout=self.timeout, stream=stream)
            except (requests.Timeout, requests.ConnectionError) as e:
                reason = f"{type(e).__name__}"
            else:
                if resp.ok:
                    return resp
                reason = f"HTTP {resp.status_code}"
                if resp.status_code in (401, 403):
                    raise AuthError(resp.url, f"{reason} {_message(resp)}", resp.status_code)
                if resp.status_code not in RETRY_STATUS:
                    raise FetchError(resp.url, reason, resp.status_code)
                retry_after = resp.headers.get("Retry-After", "")
                if retry_after.isdigit():
                    delay = max(delay, float(retry_after))
                resp.close()
            if attempt == self.retries:
                break
            log.info("%s: %s; retrying in %.1f s", redact(url), reason, delay)
            self.sleep(delay)
        raise FetchError(url, f"{reason} after {self.retries + 1} attempts")

    def get_json(self, url: str, params: Mapping[str, Any] | None = None) -> Any:
        resp = self.request(url, params)
        try:
            return resp.json()
        except ValueError as e:
            raise FetchError(resp.url, f"malformed JSON ({e})") from e

    def download(self, url: str, dest: Path, chunk: int = 1 << 16,
                 check: Callable[[str, bytes], str] | None = None) -> int:
        """Fetch ``url`` to ``dest`` (temp file + rename); returns the byte count. ``check(content type,
        first bytes)`` returns why the body is not what was asked for ("" when it is): then nothing is
        written and a final :class:`FetchError` is raised (an error page served with status 200)."""
        for attempt in range(self.retries + 1):
            resp = self.request(url, stream=True)
            size = 0
            try:
                parts = resp.iter_content(chunk)
                first = next(parts, b"")
                why = check(resp.headers.get("Content-Type", ""), first) if check else ""
                if why:
                    raise FetchError(url, why, resp.status_code)
                with atomic_open(dest, "wb") as f:
                    for part in itertools.chain([first], parts):
                        f.write(part)
                        size += len(part)
                expected = resp.headers.get("Content-Length")
                if expected and expected.isdigit() and int(expected) != size:
                    dest.unlink()
                    raise requests.ConnectionError(f"got {size} of {expected} bytes")
                return size
            except (requests.RequestException, OSError) as e:
                if attempt == self.retries:
                    raise FetchError(url, f"download interrupted ({type(e).__name__}: {e})") from e
                delay = self.backoff * 2**attempt
                log.info("%s: download interrupted (%s); retrying in %.1f s", redact(url), redact(str(e)), delay)
                self.sleep(delay)
            finally:
                resp.close()
        raise AssertionError("unreachable")


def _message(resp: requests.Response) -> str:
    try:
        body = resp.json()
        return str(body.get("message") or body.get("error") or "")
    except ValueError:
        return ""
