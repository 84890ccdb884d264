"""OpenAI Images API client: ``gpt-image-1`` (generations and edits) and ``dall-e-3``.

Talks through the official ``openai.AsyncOpenAI`` SDK with ``max_retries=0``: the SDK
would retry a 429 ``insufficient_quota`` (out of credit, it never succeeds) and its
back-off differs from ``RetryPolicy``, so the retry loop here has ProviderHTTP's
semantics instead (same attempt count, jittered back-off, Retry-After capped).
Responses are read raw and validated here rather than trusted to the SDK's lenient
models, so a malformed answer becomes a classified ``ProviderError``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
import openai

from lumigram.domain.generation import (
    Capabilities,
    ErrorKind,
    GenerationRequest,
    ProviderError,
    ResultRef,
    TaskState,
    TaskStatus,
)
from lumigram.providers.http import (
    RETRYABLE_STATUSES,
    ProviderHTTP,
    RetryPolicy,
    check_media,
    parse_retry_after,
)

PROVIDER = "openai"
GPT_IMAGE_1 = "gpt-image-1"
DALL_E_3 = "dall-e-3"

MODELS: Mapping[str, Capabilities] = {
    GPT_IMAGE_1: Capabilities(
        max_reference_images=16,
        aspect_ratios=("1:1", "3:2", "2:3"),
        output_formats=("png", "jpeg", "webp"),
        max_outputs=4,
        safety_levels=(1, 2),
    ),
    DALL_E_3: Capabilities(
        aspect_ratios=("1:1", "16:9", "9:16"),
        output_formats=("png",),
        max_outputs=1,
    ),
}

# No aspect ratio means "auto" for gpt-image-1 and the square default for dall-e-3.
_SIZES: Mapping[str, Mapping[str, str]] = {
    GPT_IMAGE_1: {"1:1": "1024x1024", "3:2": "1536x1024", "2:3": "1024x1536"},
    # DALL·E 3's wide sizes are 7:4; 16:9 and 9:16 are the nearest ratios users know.
    DALL_E_3: {"1:1": "1024x1024", "16:9": "1792x1024", "9:16": "1024x1792"},
}
_DEFAULT_SIZE = {GPT_IMAGE_1: "auto", DALL_E_3: "1024x1024"}
_MAX_PROMPT_CHARS = {GPT_IMAGE_1: 32000, DALL_E_3: 4000}

# Higher level = less restrictive, as with Flux's safety_tolerance.
_MODERATION = {1: "auto", 2: "low"}

# Optional settings passed through GenerationRequest.extra, with the values each accepts.
_EXTRA_CHOICES: Mapping[str, Mapping[str, frozenset[str]]] = {
    GPT_IMAGE_1: {
        "quality": frozenset({"low", "medium", "high", "auto"}),
        "background": frozenset({"transparent", "opaque", "auto"}),
        "input_fidelity": frozenset({"high", "low"}),  # edits only
    },
    DALL_E_3: {
        "quality": frozenset({"standard", "hd"}),
        "style": frozenset({"vivid", "natural"}),
    },
}

_SAFETY_CODES = frozenset({"moderation_blocked", "content_policy_violation", "content_filter"})
_OUT_OF_CREDIT_CODES = frozenset(
    {"insufficient_quota", "billing_hard_limit_reached", "billing_not_active"}
)
_SAFETY_VIOLATIONS = re.compile(r"safety_violations=\[([\w ,/-]{1,200})\]")
_SECRET_KEY = re.compile(r"sk-[A-Za-z0-9_*\-]{6,}")
_MAX_DETAIL = 300


class OpenAIProvider:
    """``ImageProvider`` for the OpenAI Images API; synchronous, so ``submit`` finishes the job."""

    name = PROVIDER

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = "https://api.openai.com/v1",
        timeout: float = 120.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._api_key = api_key
        self._retry = retry or RetryPolicy()
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0
        )
        # dall-e-3 URLs point at blob storage: download without any credentials.
        self._downloads = ProviderHTTP(
            PROVIDER, base_url=base_url, timeout=timeout, retry=self._retry
        )

    # --- ImageProvider -------------------------------------------------------
    def models(self) -> Mapping[str, Capabilities]:
        return dict(MODELS)

    def capabilities(self, model: str) -> Capabilities:
        return MODELS[model]

    async def submit(self, request: GenerationRequest) -> TaskStatus:
        params = build_params(request)
        if request.references:
            images = [
                (f"reference-{index}.{_extension(ref.mime_type)}", ref.data, ref.mime_type)
                for index, ref in enumerate(request.references, start=1)
            ]
            payload = await self._call(
                "edit",
                lambda: self._client.images.with_raw_response.edit(image=images, **params),
            )
        else:
            payload = await self._call(
                "generate",
                lambda: self._client.images.with_raw_response.generate(**params),
            )
        outputs = await asyncio.to_thread(parse_images_response, payload)
        return TaskStatus(TaskState.SUCCEEDED, outputs=outputs)

    async def poll(self, provider_job_id: str) -> TaskStatus:
        raise ProviderError(
            ErrorKind.INVALID_INPUT, f"{PROVIDER}: generations are synchronous; nothing to poll"
        )

    async def fetch(self, ref: ResultRef) -> bytes:
        if ref.data is not None:
            check_media(PROVIDER, ref.data)
            return ref.data
        if ref.url is None or not ref.url.startswith(("https://", "http://")):
            raise ProviderError(ErrorKind.INVALID_INPUT, f"{PROVIDER}: result has no usable URL")
        return await self._downloads.download(ref.url)

    async def cancel(self, provider_job_id: str) -> None:
        return None  # nothing runs on OpenAI's side once submit has returned

    async def aclose(self) -> None:
        await self._client.close()
        await self._downloads.aclose()

    # --- internals -------------------------------------------------------------
    async def _call(self, operation: str, send: Callable[[], Awaitable[Any]]) -> bytes:
        """Run one SDK call with RetryPolicy; the raw 2xx body or a classified ProviderError."""
        last_error: ProviderError | None = None
        for attempt in range(1, self._retry.attempts + 1):
            try:
                raw = await send()
            except openai.APIStatusError as exc:
                error = classify_error(exc.response, self._api_key)
            except openai.APITimeoutError:
                error = ProviderError(ErrorKind.TRANSIENT, f"{PROVIDER}: timeout on {operation}")
            except openai.APIConnectionError as exc:
                error = ProviderError(
                    ErrorKind.TRANSIENT,
                    f"{PROVIDER}: network error on {operation}: "
                    f"{_redact(repr(exc.__cause__ or exc), self._api_key)}",
                )
            else:
                http_response: httpx.Response = raw.http_response
                return http_response.content
            if error.kind is not ErrorKind.TRANSIENT:
                raise error
            last_error = error
            if attempt < self._retry.attempts:
                await asyncio.sleep(self._delay(attempt, error))
        assert last_error is not None
        raise last_error

    def _delay(self, attempt: int, error: ProviderError) -> float:
        if error.retry_after is not None:
            return min(error.retry_after, self._retry.max_retry_after)
        return self._retry.backoff(attempt)


def build_params(request: GenerationRequest) -> dict[str, Any]:
    """The SDK keyword arguments for ``request``; INVALID_INPUT for what the model cannot do.

    Settings a model lacks (seed, negative prompt, prompt upsampling) are dropped: the UI
    only offers what ``capabilities`` declares, and failing a paid job over them helps no one.
    """
    caps = MODELS.get(request.model)
    if caps is None:
        raise _invalid(f"unknown model {request.model!r}")
    model = request.model
    if not request.prompt.strip():
        raise _invalid("the prompt is empty")
    if len(request.prompt) > _MAX_PROMPT_CHARS[model]:
        raise _invalid(f"the prompt is over {_MAX_PROMPT_CHARS[model]} characters")
    if not 1 <= request.num_outputs <= caps.max_outputs:
        raise _invalid(f"{model} makes 1 to {caps.max_outputs} images per request")
    if len(request.references) > caps.max_reference_images:
        raise _invalid(f"{model} takes at most {caps.max_reference_images} reference images")
    for ref in request.references:
        if ref.mime_type not in ("image/png", "image/jpeg", "image/webp"):
            raise _invalid(f"reference images must be PNG, JPEG or WebP, not {ref.mime_type}")

    if request.aspect_ratio is None:
        size = _DEFAULT_SIZE[model]
    elif request.aspect_ratio in _SIZES[model]:
        size = _SIZES[model][request.aspect_ratio]
    else:
        raise _invalid(f"{model} does not offer aspect ratio {request.aspect_ratio}")
    if request.output_format is not None and request.output_format not in caps.output_formats:
        raise _invalid(f"{model} does not offer output format {request.output_format}")

    params: dict[str, Any] = {
        "model": model,
        "prompt": request.prompt,
        "n": request.num_outputs,
        "size": size,
    }
    if model == DALL_E_3:
        params["response_format"] = "url"
    else:
        if request.output_format is not None:
            params["output_format"] = request.output_format
        if request.safety_level is not None:
            if request.safety_level not in _MODERATION:
                raise _invalid(f"safety level {request.safety_level} is not one of 1, 2")
            if not request.references:  # the edits endpoint has no moderation setting
                params["moderation"] = _MODERATION[request.safety_level]
    for key, choices in _EXTRA_CHOICES[model].items():
        value = request.extra.get(key)
        if value is None:
            continue
        if value not in choices:
            raise _invalid(f"{key}={value!r} is not one of {sorted(choices)}")
        if key == "input_fidelity" and not request.references:
            continue
        params[key] = value
    return params


def parse_images_response(payload: bytes) -> tuple[ResultRef, ...]:
    """Validate an ``ImagesResponse`` body and decode its images (blocking: run in a thread)."""
    try:
        document = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise _malformed("the answer is not JSON") from None
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, list) or not data:
        raise _malformed("the answer has no images in 'data'")
    outputs: list[ResultRef] = []
    for item in data:
        if not isinstance(item, dict):
            raise _malformed("an entry of 'data' is not an object")
        encoded, url = item.get("b64_json"), item.get("url")
        if isinstance(encoded, str) and encoded:
            try:
                image = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise _malformed("'b64_json' is not valid base64") from None
            outputs.append(ResultRef(data=image, mime_type=check_media(PROVIDER, image)))
        elif isinstance(url, str) and url.startswith(("https://", "http://")):
            outputs.append(ResultRef(url=url))
        else:
            raise _malformed("an image has neither 'b64_json' nor an http(s) 'url'")
    return tuple(outputs)


def classify_error(response: httpx.Response, api_key: str) -> ProviderError:
    """Map an OpenAI error answer (``{"error": {message, type, param, code}}``) to an ErrorKind."""
    status = response.status_code
    error = _error_object(response)
    code = error.get("code") if isinstance(error.get("code"), str) else None
    kind_label = code or (error.get("type") if isinstance(error.get("type"), str) else None)
    message = error.get("message")
    detail = message if isinstance(message, str) else response.text
    detail = _redact(detail, api_key)[:_MAX_DETAIL]
    text = f"{PROVIDER}: HTTP {status}" + (f" {kind_label}" if kind_label else "") + f": {detail}"

    if code in _SAFETY_CODES:
        return ProviderError(
            ErrorKind.SAFETY, text, user_reason=_safety_reason(code, detail), status_code=status
        )
    if code in _OUT_OF_CREDIT_CODES or status == 402:
        return ProviderError(ErrorKind.UNAVAILABLE, f"{text} (out of credit)", status_code=status)
    if status in (401, 403):
        return ProviderError(
            ErrorKind.UNAVAILABLE,
            f"{text} (check the API key and organisation)",
            status_code=status,
        )
    if status == 404:  # unknown model or wrong base URL: configuration, not the user's input
        return ProviderError(ErrorKind.UNAVAILABLE, text, status_code=status)
    if status in RETRYABLE_STATUSES or status >= 500:
        return ProviderError(
            ErrorKind.TRANSIENT, text, retry_after=_retry_after(response), status_code=status
        )
    return ProviderError(ErrorKind.INVALID_INPUT, text, status_code=status)


def _error_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _retry_after(response: httpx.Response) -> float | None:
    """OpenAI sends ``retry-after-ms`` on some answers; it is more precise than Retry-After."""
    millis = response.headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    return parse_retry_after(response.headers.get("Retry-After"))


def _safety_reason(code: str, message: str) -> str:
    """A reason fit for the user: a fixed sentence plus the categories OpenAI names, if any."""
    reason = "The request was rejected by OpenAI's safety system"
    found = _SAFETY_VIOLATIONS.search(message)
    if found:
        reason += f" ({found.group(1).strip()})"
    elif code == "content_policy_violation":
        reason = "The request was rejected by OpenAI's content policy"
    return reason + "."


def _redact(text: str, api_key: str) -> str:
    """Remove the key (and anything shaped like an OpenAI key, masked or not) from a text."""
    if api_key:
        text = text.replace(api_key, "***")
    return _SECRET_KEY.sub("sk-***", text)


def _extension(mime_type: str) -> str:
    return {"image/jpeg": "jpg", "image/webp": "webp"}.get(mime_type, "png")


def _invalid(message: str) -> ProviderError:
    return ProviderError(ErrorKind.INVALID_INPUT, f"{PROVIDER}: {message}", user_reason=message)


def _malformed(message: str) -> ProviderError:
    # Transient, not retried here: a 200 was probably billed, so the job layer decides.
    return ProviderError(ErrorKind.TRANSIENT, f"{PROVIDER}: unexpected answer: {message}")
