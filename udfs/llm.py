"""OpenAI-compatible chat client shared by every LLM stage.

Per-request failures never raise: a curation run over millions of documents must record a failed call
as data (status/error) and move on, not abort the Spark task. Retries are implemented here rather than
in the ``openai`` package so that every attempt is counted and the backoff policy is ours.
"""

from __future__ import annotations

import dataclasses
import email.utils
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Literal

logger = logging.getLogger(__name__)

Status = Literal["ok", "error", "timeout"]

# Local servers (the embedded one included) accept any key; the openai client refuses to start without one.
_DUMMY_API_KEY = "not-needed"


@dataclass(frozen=True)
class LLMConfig:
    """One LLM endpoint and how to call it: the `revise.llm` and `label.llm` config sections are this type.

    `backend` says where the endpoint comes from: `openai` = `base_url`/`model` as given (vLLM, SGLang, a hosted
    API), `embedded` = the packaged SmolLM2 behind `transformers serve`, started by the stage that needs it (which
    fills in `base_url` and `model` with `endpoint`).
    """

    backend: str = "openai"  # openai | embedded
    base_url: str | None = None
    model: str | None = None
    # The *name* of the env var holding the key, so that configs can be logged and tracked safely.
    api_key_env: str | None = None
    max_concurrency: int = 4
    timeout_s: float = 60.0
    max_retries: int = 2
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0
    # A misbehaving server must not park a worker for an hour with a huge Retry-After.
    retry_after_max_s: float = 60.0
    max_tokens: int = 256
    temperature: float = 0.0

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1")
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")

    def endpoint(self, base_url: str, model: str, **overrides: Any) -> LLMConfig:
        """This config pointed at a concrete endpoint (a server started at run time), `overrides` last."""
        return dataclasses.replace(self, base_url=base_url, model=model, **overrides)


@dataclass
class LLMResult:
    status: Status
    text: str | None = None
    error: str | None = None
    attempts: int = 0
    latency_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class _Final(Exception):
    """A failed attempt that would fail identically if repeated."""


class _Retryable(Exception):
    """One failed attempt that is worth repeating; carries what to report if it was the last one."""

    def __init__(self, status: Status, message: str, delay_s: float | None = None) -> None:
        super().__init__(message)
        self.status: Status = status
        self.message = message
        self.delay_s = delay_s


def _retry_after_s(response: Any) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date), None when absent or unparsable."""
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class LLMClient:
    """Thread-safe client; one instance can serve a whole partition (or several threads)."""

    def __init__(self, config: LLMConfig, *, completions: Callable[[Any], Any] | None = None) -> None:
        """`completions` wraps the SDK's `chat.completions` (e.g. to ask for log-probabilities and pack them into
        the answer), so every request still goes through this client's retries, timeouts and concurrency."""
        if not config.base_url or not config.model:
            raise ValueError("an LLM client needs base_url and model (set them, or use backend 'embedded')")
        self.config = config
        api_key = _DUMMY_API_KEY
        if config.api_key_env is not None:
            key = os.environ.get(config.api_key_env)
            if not key:
                # A config error, not a per-request failure: fail before sending thousands of doomed calls.
                raise ValueError(f"environment variable {config.api_key_env!r} is not set or empty")
            api_key = key
        import openai  # half a second of import that a process reading only LLMConfig (every config load) need not pay

        self._client = openai.OpenAI(
            base_url=config.base_url,
            api_key=api_key,
            timeout=config.timeout_s,
            max_retries=0,
        )
        self._completions = completions(self._client.chat.completions) if completions else self._client.chat.completions
        # The pool bounds one chat_many call; the semaphore also bounds callers sharing the client.
        self._slots = threading.BoundedSemaphore(config.max_concurrency)
        self._rng = random.Random()
        self._rng_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LLMClient(base_url={self.config.base_url!r}, model={self.config.model!r})"

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def health(self, timeout_s: float = 5.0) -> bool:
        try:
            self._client.with_options(timeout=min(timeout_s, self.config.timeout_s)).models.list()
        except Exception:
            return False
        return True

    def chat(self, messages: list[dict[str, Any]]) -> LLMResult:
        with self._slots:
            return self._call_with_retries(messages)

    def chat_many(
        self,
        messages_list: Sequence[list[dict[str, Any]]],
        *,
        progress: Callable[[int], None] | None = None,
    ) -> list[LLMResult]:
        """Results in input order. ``progress`` gets the running count of finished requests, called
        from this (the calling) thread so callbacks need no locking."""
        n = len(messages_list)
        results: list[LLMResult | None] = [None] * n
        if n == 0:
            return []
        pool = ThreadPoolExecutor(max_workers=min(self.config.max_concurrency, n), thread_name_prefix="llm-client")
        try:
            futures: dict[Future[LLMResult], int] = {
                pool.submit(self.chat, messages): i for i, messages in enumerate(messages_list)
            }
            for done, future in enumerate(as_completed(futures), start=1):
                i = futures[future]
                try:
                    results[i] = future.result()
                except Exception as exc:  # chat() catches everything; this guards against our own bugs
                    results[i] = LLMResult(status="error", error=f"internal: {type(exc).__name__}: {exc}")
                if progress is not None:
                    progress(done)
        finally:
            # On Ctrl-C or a raising progress callback, do not start the queued requests.
            pool.shutdown(wait=True, cancel_futures=True)
        return [r if r is not None else LLMResult(status="error", error="cancelled") for r in results]

    def _backoff(self, attempt: int) -> float:
        """Capped exponential backoff with equal jitter, so many workers do not retry in lockstep."""
        base = min(self.config.backoff_max_s, self.config.backoff_s * (2 ** (attempt - 1)))
        with self._rng_lock:
            return base / 2 + self._rng.uniform(0, base / 2)

    def _call_with_retries(self, messages: list[dict[str, Any]]) -> LLMResult:
        start = time.monotonic()
        attempts = 0
        last: _Retryable | None = None
        while attempts <= self.config.max_retries:
            attempts += 1
            try:
                text = self._attempt(messages)
            except _Retryable as failure:
                last = failure
                if attempts > self.config.max_retries:
                    break
                delay = failure.delay_s if failure.delay_s is not None else self._backoff(attempts)
                logger.debug("LLM attempt %d failed (%s), retry in %.2fs", attempts, failure.message, delay)
                time.sleep(delay)
                continue
            except Exception as exc:
                message = str(exc) if isinstance(exc, _Final) else f"{type(exc).__name__}: {exc}"
                return LLMResult(
                    status="error",
                    error=message,
                    attempts=attempts,
                    latency_s=time.monotonic() - start,
                )
            return LLMResult(status="ok", text=text, attempts=attempts, latency_s=time.monotonic() - start)
        assert last is not None
        return LLMResult(status=last.status, error=last.message, attempts=attempts, latency_s=time.monotonic() - start)

    def _attempt(self, messages: list[dict[str, Any]]) -> str:
        """One HTTP call. Raises _Retryable for transient failures; anything else is final."""
        import openai

        cfg = self.config
        try:
            response = self._completions.create(
                model=cfg.model,
                messages=messages,  # type: ignore[arg-type]
                max_tokens=cfg.max_tokens,
                temperature=cfg.temperature,
            )
        # APITimeoutError subclasses APIConnectionError, so it must be caught first.
        except openai.APITimeoutError as exc:
            raise _Retryable("timeout", f"timeout after {cfg.timeout_s}s") from exc
        except openai.APIConnectionError as exc:
            cause = exc.__cause__
            detail = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
            raise _Retryable("error", f"connection error: {detail}") from exc
        except openai.RateLimitError as exc:
            delay = _retry_after_s(exc.response)
            if delay is not None:
                delay = min(delay, cfg.retry_after_max_s)
            raise _Retryable("error", f"HTTP 429: {exc.message}", delay_s=delay) from exc
        except openai.APIStatusError as exc:
            if exc.status_code >= 500:
                raise _Retryable("error", f"HTTP {exc.status_code}: {exc.message}") from exc
            # Other 4xx (bad model name, context too long, ...) will fail identically on every retry.
            raise _Final(f"HTTP {exc.status_code}: {exc.message}") from exc
        if not response.choices:
            raise _Final("response has no choices")
        return response.choices[0].message.content or ""
