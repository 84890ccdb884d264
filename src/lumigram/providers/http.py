"""HTTP plumbing shared by the provider clients: retries, classification, capped downloads.

Every provider talks HTTP through ``ProviderHTTP`` so that timeouts, jittered
exponential back-off (honouring ``Retry-After``), error classification and
download limits behave the same everywhere.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from lumigram.domain.generation import ErrorKind, ProviderError
from lumigram.domain.media import sniff_media_type

RETRYABLE_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
DEFAULT_MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024

Classifier = Callable[[httpx.Response], ProviderError | None]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 4  # total tries, the first included
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_retry_after: float = 60.0  # never sleep longer than this on a Retry-After

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential back-off for retry number ``attempt`` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def default_classification(provider: str, response: httpx.Response) -> ProviderError:
    """Map an unsuccessful HTTP answer to an ErrorKind. Bodies are truncated, keys never echoed."""
    status = response.status_code
    detail = response.text[:300]
    message = f"{provider}: HTTP {status}: {detail}"
    if status in (401, 403):
        return ProviderError(
            ErrorKind.UNAVAILABLE, f"{message} (check the API key)", status_code=status
        )
    if status == 402:
        return ProviderError(
            ErrorKind.UNAVAILABLE, f"{message} (out of credit)", status_code=status
        )
    if status in RETRYABLE_STATUSES:
        return ProviderError(
            ErrorKind.TRANSIENT,
            message,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            status_code=status,
        )
    return ProviderError(ErrorKind.INVALID_INPUT, message, status_code=status)


class ProviderHTTP:
    """An httpx.AsyncClient with the retry and classification rules above."""

    def __init__(
        self,
        provider: str,
        *,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.provider = provider
        self.retry = retry or RetryPolicy()
        self.max_download_bytes = max_download_bytes
        self.client = httpx.AsyncClient(
            base_url=base_url,
            headers=dict(headers or {}),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
            follow_redirects=True,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        classify: Classifier | None = None,
        timeout: float | None = None,
        idempotent: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with retries; return a 2xx response or raise a classified ProviderError.

        ``classify`` sees every non-2xx response first and may return a more
        precise error (for example a provider's safety rejection in a 400 body).
        A non-``idempotent`` request (one that starts paid work) is retried only
        when it cannot have been processed: the connection was never made, or the
        answer was 429. After a timeout or a 5xx it may have been, so the error is
        raised and the caller decides.
        """
        if timeout is not None:
            kwargs["timeout"] = timeout
        last_error: ProviderError | None = None
        for attempt in range(1, self.retry.attempts + 1):
            try:
                response = await self.client.request(method, url, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # The request never left: safe to send again, whatever it does.
                last_error = ProviderError(
                    ErrorKind.TRANSIENT,
                    f"{self.provider}: cannot connect for {method} {_path(url)}: {exc!r}",
                )
            except httpx.TransportError as exc:  # timeouts included
                last_error = ProviderError(
                    ErrorKind.TRANSIENT,
                    f"{self.provider}: {type(exc).__name__} on {method} {_path(url)}: {exc!r}",
                )
                if not idempotent:
                    raise last_error from None
            else:
                if response.is_success:
                    return response
                error = (classify(response) if classify else None) or default_classification(
                    self.provider, response
                )
                if error.kind is not ErrorKind.TRANSIENT:
                    raise error
                if not idempotent and response.status_code != 429:
                    raise error
                last_error = error
            if attempt < self.retry.attempts:
                await asyncio.sleep(self._delay(attempt, last_error))
        assert last_error is not None
        raise last_error

    def _delay(self, attempt: int, error: ProviderError) -> float:
        if error.retry_after is not None:
            return min(error.retry_after, self.retry.max_retry_after)
        return self.retry.backoff(attempt)

    async def download(self, url: str, *, accept_video: bool = False) -> bytes:
        """Fetch an output with a size cap; the bytes must really be an image (or a video)."""
        for attempt in range(1, self.retry.attempts + 1):
            try:
                return await self._download_once(url, accept_video=accept_video)
            except ProviderError as error:
                if error.kind is not ErrorKind.TRANSIENT or attempt == self.retry.attempts:
                    raise
                await asyncio.sleep(self._delay(attempt, error))
        raise AssertionError("unreachable")

    async def _download_once(self, url: str, *, accept_video: bool) -> bytes:
        try:
            async with self.client.stream("GET", url) as response:
                if not response.is_success:
                    await response.aread()
                    raise default_classification(self.provider, response)
                declared = response.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > self.max_download_bytes:
                    raise ProviderError(
                        ErrorKind.INVALID_INPUT,
                        f"{self.provider}: result of {declared} bytes is over the "
                        f"{self.max_download_bytes} byte limit",
                    )
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_download_bytes:
                        raise ProviderError(
                            ErrorKind.INVALID_INPUT,
                            f"{self.provider}: result is over the "
                            f"{self.max_download_bytes} byte limit",
                        )
                    chunks.append(chunk)
        except httpx.TimeoutException as exc:
            raise ProviderError(
                ErrorKind.TRANSIENT, f"{self.provider}: download timeout: {exc!r}"
            ) from exc
        except httpx.TransportError as exc:
            raise ProviderError(
                ErrorKind.TRANSIENT, f"{self.provider}: download failed: {exc!r}"
            ) from exc
        data = b"".join(chunks)
        check_media(self.provider, data, accept_video=accept_video)
        return data


def check_media(provider: str, data: bytes, *, accept_video: bool = False) -> str:
    """Raise unless ``data`` is an image (or, when allowed, a video); return its media type."""
    kind = sniff_media_type(data)
    if kind is None or (kind.startswith("video/") and not accept_video):
        raise ProviderError(
            ErrorKind.INVALID_INPUT,
            f"{provider}: the result is not an {'image or video' if accept_video else 'image'}",
        )
    return kind


def _path(url: str) -> str:
    """The path of a URL only: query strings may carry keys (Gemini's ?key=...)."""
    return httpx.URL(url).path
