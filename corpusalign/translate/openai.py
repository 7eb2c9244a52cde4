"""The ``openai`` translator: any OpenAI-compatible server (vLLM, TGI, llama.cpp server, Ollama, a hosted API).

One text per request, ``POST {base_url}/chat/completions`` (``api: chat``, the prompt as the one user
message) or ``POST {base_url}/completions`` (``api: completions``), with the served ``translate.model``,
``temperature`` and ``max_tokens = max_new_tokens``. Many requests are in flight at once: a thread
pool of ``openai.concurrency`` workers shares one ``httpx.Client`` (a connection pool of the same
size) and, when ``openai.requests_per_second`` is set, one :class:`RateLimiter`. Threads rather than
asyncio: the pipeline is synchronous, and the work is waiting on sockets.

Each text is retried up to ``openai.max_retries`` times after its first attempt:

* retried: 408, 429 and 5xx answers, timeouts (``openai.timeout_s``), refused, reset and dropped
  connections, and answers that are not the expected JSON (malformed body, no ``choices``, no text);
* the wait before retry ``n`` is ``backoff_s * 2**(n-1)`` capped at ``max_backoff_s``, times a
  random factor in [0.5, 1] (:func:`backoff_delay`), so that failing workers do not retry in step; a
  ``Retry-After`` header on 429/503 (seconds or an HTTP date) makes the wait at least what the
  server asked, and one asking for more than ``max_backoff_s`` ends the text's retries at once;
* not retried: other 4xx answers (400, 401, 404, ...), an empty translation, and one cut off at
  ``max_new_tokens``.

A text that still fails becomes ``Failed("<what happened> after N attempts")``; the build rejects its
row as ``translation_failed`` and running the same command again retries exactly those texts.

The API key is read from the environment variable named in ``openai.api_key_env`` and sent as
``Authorization: Bearer <key>``; it is never logged, never part of :attr:`OpenAITranslator.params`
(nor is ``base_url``), and masked in every failure reason. Answers are cleaned of the boilerplate
chat models add by the causal translator's :func:`~corpusalign.translate.answers.clean_answer`.
"""

from __future__ import annotations

import email.utils
import logging
import math
import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from corpusalign.config import BuildConfig
from corpusalign.translate.answers import clean_answer
from corpusalign.translate.base import Failed, MachineTranslator, TranslatorUnavailable, language_name

if TYPE_CHECKING:  # pragma: no cover
    import httpx

log = logging.getLogger(__name__)

#: Answers worth another try besides 5xx (but 501 and 505, which will not change); 429 and 503 may
#: say when in ``Retry-After``.
RETRY_STATUSES = frozenset({408, 429})
FINAL_5XX = frozenset({501, 505})
RETRY_AFTER_STATUSES = frozenset({429, 503})
EXCERPT_CHARS = 200


# ---------------------------------------------------------------------------------------- pure helpers


def backoff_delay(retry: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``retry`` (1, 2, ...): ``base * 2**(retry - 1)`` capped at
    ``cap``, times a jitter factor drawn uniformly from [0.5, 1]."""
    ceiling = min(cap, base * 2.0 ** min(retry - 1, 60))
    return ceiling * (0.5 + 0.5 * (rng or random).random())


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date), or None when the
    header is absent or unreadable. A date in the past means 0."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000": UTC
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def display_url(url: str) -> str:
    """``url`` without user info, query and fragment: safe to show in messages."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class RateLimiter:
    """A token bucket holding at most one token, refilled ``rate`` times per second and shared by all
    workers: requests start at least ``1 / rate`` seconds apart, in the order they asked."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self, stop: threading.Event | None = None) -> None:
        """Wait for the next slot (returns early when ``stop`` is set)."""
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            if stop is not None:
                stop.wait(start - now)
            else:
                time.sleep(start - now)


@dataclass(frozen=True)
class _Retry:
    """An attempt that failed in a way worth retrying."""

    reason: str
    retry_after: float | None = None


def _attempts(n: int) -> str:
    return f"{n} attempt" if n == 1 else f"{n} attempts"


# ---------------------------------------------------------------------------------------- translator


class OpenAITranslator(MachineTranslator):
    """Machine translation through an OpenAI-compatible HTTP endpoint; see the module docstring.

    Counters, for progress and benchmarks: ``requests`` (HTTP requests sent, retries included),
    ``retries``, ``translated`` and ``failures`` (texts given up on).
    """

    name = "openai"

    def __init__(self, cfg: BuildConfig) -> None:
        super().__init__(cfg)
        self.ocfg = self.tcfg.openai
        self.requests = 0
        self.retries = 0
        self.translated = 0
        self.failures = 0
        self._url = self.ocfg.base_url.rstrip("/") + ("/chat/completions" if self.ocfg.api == "chat" else "/completions")
        self._limiter = RateLimiter(self.ocfg.requests_per_second) if self.ocfg.requests_per_second else None
        self._client: httpx.Client | None = None
        self._key: str | None = None
        self._counts = threading.Lock()
        self._stop = threading.Event()
        self._rng = random.Random()

    @property
    def params(self) -> dict[str, Any]:
        g = self.tcfg.generation
        return {
            "api": self.ocfg.api,
            "temperature": g.temperature,
            "max_new_tokens": g.max_new_tokens,
            "prompt": self.tcfg.prompt,
            "protect": self.tcfg.protect,
        }

    def describe(self) -> str:
        return (
            f"{self.name} (origin={self.origin}, model={self.model}, {self.ocfg.api} API at "
            f"{display_url(self.ocfg.base_url)}, concurrency={self.ocfg.concurrency})"
        )

    def check(self) -> None:
        """httpx installed, an http(s) ``base_url`` and the API key's variable set; no network."""
        try:
            import httpx  # noqa: F401
        except ImportError:  # pragma: no cover - httpx is a test dependency
            raise TranslatorUnavailable("the openai translator needs httpx: pip install 'corpusalign[openai]'") from None
        if urlsplit(self.ocfg.base_url).scheme not in ("http", "https"):
            raise TranslatorUnavailable(
                f"translate.openai.base_url {display_url(self.ocfg.base_url)!r} is not an http(s) URL such as "
                "http://localhost:8000/v1"
            )
        self._read_key()

    def _read_key(self) -> str | None:
        var = self.ocfg.api_key_env
        if var is None:
            return None
        key = os.environ.get(var)
        if not key:
            raise TranslatorUnavailable(
                f"the openai translator at {display_url(self.ocfg.base_url)} needs an API key in the environment "
                f"variable {var}, which is not set; export it, or set translate.openai.api_key_env to null for a "
                "server that needs no key"
            )
        return key

    def setup(self) -> None:
        """Open the HTTP client (once)."""
        if self._client is not None:
            return
        self.check()
        import httpx

        self._key = self._read_key()
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        n = self.ocfg.concurrency
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(self.ocfg.timeout_s),
            limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
            follow_redirects=False,
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def translate_batch(self, texts: Sequence[str], src: str, tgt: str) -> list[str | Failed]:
        self.setup()
        src_name, tgt_name = language_name(src), language_name(tgt)
        jobs = [(self.tcfg.prompt.format(src_name=src_name, tgt_name=tgt_name, text=t), t) for t in texts]
        if len(jobs) <= 1:
            return [self._translate_one(p, t) for p, t in jobs]
        pool = ThreadPoolExecutor(max_workers=min(self.ocfg.concurrency, len(jobs)), thread_name_prefix="openai")
        try:
            futures = [pool.submit(self._translate_one, p, t) for p, t in jobs]
            return [f.result() for f in futures]
        except BaseException:  # Ctrl-C: stop the workers' waits and drop what has not started
            self._stop.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self._stop.clear()

    # -------------------------------------------------------------------------------- one text

    def _translate_one(self, prompt: str, text: str) -> str | Failed:
        """Send ``prompt`` until an answer comes or the retry budget is spent."""
        attempts = self.ocfg.max_retries + 1
        reason = ""
        for attempt in range(1, attempts + 1):
            if self._limiter is not None:
                self._limiter.acquire(self._stop)
            if self._stop.is_set():
                return Failed("interrupted")
            self._count(requests=1, retries=int(attempt > 1))
            outcome = self._attempt(prompt)
            if isinstance(outcome, Failed):
                return self._give_up(outcome.reason)
            if isinstance(outcome, str):
                out = clean_answer(outcome, text)
                if not out:
                    return self._give_up("empty translation")
                self._count(translated=1)
                return out
            reason = outcome.reason
            if attempt == attempts:
                break
            delay = backoff_delay(attempt, self.ocfg.backoff_s, self.ocfg.max_backoff_s, self._rng)
            if outcome.retry_after is not None:
                if outcome.retry_after > self.ocfg.max_backoff_s:
                    return self._give_up(
                        f"{reason} with Retry-After {outcome.retry_after:.3g} s (more than max_backoff_s "
                        f"{self.ocfg.max_backoff_s:g} s) after {_attempts(attempt)}"
                    )
                delay = max(delay, outcome.retry_after)
            log.debug("openai: %s; retry %d of %d in %.2f s", self._redact(reason), attempt, attempts - 1, delay)
            if self._stop.wait(delay):
                return Failed("interrupted")
        return self._give_up(f"{reason} after {_attempts(attempts)}")

    def _attempt(self, prompt: str) -> str | _Retry | Failed:
        """One request: the answer's raw text, a retryable failure or a final one."""
        import httpx

        assert self._client is not None
        g = self.tcfg.generation
        payload: dict[str, Any] = {"model": self.model, "temperature": g.temperature, "max_tokens": g.max_new_tokens}
        if self.ocfg.api == "chat":
            payload["messages"] = [{"role": "user", "content": prompt}]
        else:
            payload["prompt"] = prompt
        try:
            resp = self._client.post(self._url, json=payload)
        except httpx.TimeoutException:
            return _Retry(f"timed out (timeout_s {self.ocfg.timeout_s:g})")
        except httpx.RequestError as exc:  # refused, reset, dropped without an answer, undecodable
            return _Retry(f"connection error ({type(exc).__name__}: {_excerpt(str(exc), 100)})")
        status = resp.status_code
        if status in RETRY_STATUSES or (status >= 500 and status not in FINAL_5XX):
            wait = parse_retry_after(resp.headers.get("retry-after")) if status in RETRY_AFTER_STATUSES else None
            return _Retry(f"HTTP {status}", wait)
        if not 200 <= status < 300:
            return Failed(f"HTTP {status} (not retried): {_excerpt(resp.text)}")
        try:
            body = resp.json()
        except ValueError:
            return _Retry("malformed response (not JSON)")
        choices = body.get("choices") if isinstance(body, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return _Retry("malformed response (no choices)")
        choice = choices[0]
        message = choice.get("message")
        content = (
            (message.get("content") if isinstance(message, dict) else None) if self.ocfg.api == "chat" else choice.get("text")
        )
        if not isinstance(content, str):
            return _Retry("malformed response (no text in choices[0])")
        if choice.get("finish_reason") == "length":
            return Failed(f"translation cut off at max_new_tokens {g.max_new_tokens}")
        return content

    def _give_up(self, reason: str) -> Failed:
        self._count(failures=1)
        reason = self._redact(reason)
        log.debug("openai: giving up on a text: %s", reason)
        return Failed(reason)

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def _count(self, requests: int = 0, retries: int = 0, translated: int = 0, failures: int = 0) -> None:
        with self._counts:
            self.requests += requests
            self.retries += retries
            self.translated += translated
            self.failures += failures

    def counters(self) -> dict[str, int]:
        """``requests``, ``retries``, ``translated`` and ``failures`` so far."""
        with self._counts:
            return {"requests": self.requests, "retries": self.retries, "translated": self.translated, "failures": self.failures}


def _excerpt(text: str, n: int = EXCERPT_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[: n - 1] + "…"


__all__ = ["OpenAITranslator", "RateLimiter", "backoff_delay", "parse_retry_after"]
