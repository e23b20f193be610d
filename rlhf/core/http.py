"""One JSON POST to an OpenAI-compatible server, with the policy every caller shares: a timeout,
retries with doubling back-off after a timeout, a connection error, a 429 or a 5xx, and an
outcome string instead of an exception, so that callers count failures by kind.

Why the standard library and not an HTTP client package: each call is one POST; the retry,
timeout and concurrency policy is what a user needs to see and test, not hide."""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

OK = "ok"


def bearer(env: str, setting: str, error: type[Exception] = ValueError) -> dict[str, str]:
    """The `Authorization` header for the API key in environment variable `env` (none where `env`
    is empty). The key is read here and sent only: never in params, identities or logs. An unset
    or empty variable raises `error` (callers pass ConfigError: core does not import config)
    naming the `setting` that asked for it."""
    if not env:
        return {}
    key = os.environ.get(env, "")
    if not key:
        raise error(
            f"{setting}: the environment variable {env} is not set or empty: export it with the "
            "endpoint's API key"
        )
    return {"Authorization": f"Bearer {key}"}


def post_json(
    url: str,
    body: dict,
    parse: Callable[[Any], Any],
    *,
    headers: dict[str, str] | None = None,
    timeout_s: float,
    retries: int,
    backoff_s: float,
    stop: Callable[[], bool] | None = None,
    retry_timeouts: bool = True,
) -> tuple[Any, str]:
    """(parse(reply), "ok"), or (None, "error:<why>") once asking again cannot help: the last
    retry failed (`timeout`, `connection`, `http_<code>` for 429 and 5xx), the server refused the
    request itself (`http_<code>` for another 4xx, not retried), the reply is not what `parse`
    reads (`bad_reply`, not retried: a server that answers is up), or `stop()` said to give up
    before a try (`not_asked`). `retry_timeouts=False`: a timeout is final at once."""
    data = json.dumps(body).encode()
    head = {"Content-Type": "application/json", **(headers or {})}
    wait, why = backoff_s, "unknown"
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(wait)
            wait *= 2
        if stop is not None and stop():
            return None, "error:not_asked"
        req = urllib.request.Request(url, data, head, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as r:
                raw = r.read()
        except urllib.error.HTTPError as e:
            why = f"http_{e.code}"
            if e.code < 500 and e.code != 429:
                break  # the request itself is wrong: asking again cannot help
            continue
        except (TimeoutError, urllib.error.URLError, ConnectionError) as e:
            why = "timeout" if "timed out" in str(e) else "connection"
            if why == "timeout" and not retry_timeouts:
                break
            continue
        except http.client.HTTPException:
            why = "connection"  # the server hung up mid-reply
            continue
        try:
            return parse(json.loads(raw)), OK
        except (ValueError, KeyError, IndexError, TypeError):
            return None, "error:bad_reply"
    return None, f"error:{why}"


def answers(url: str, timeout_s: float = 2.0) -> bool:
    """Whether a GET of `url` answers 200 (a server's health check)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            return r.status == 200
    except (OSError, http.client.HTTPException):
        return False
