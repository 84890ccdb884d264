"""Gemini API image client: Nano Banana (``gemini-2.5-flash-image``) and Nano Banana Pro.

One synchronous ``POST /v1beta/models/{model}:generateContent``; images come back as
inline base64 parts. The key travels in the ``x-goog-api-key`` header only, never in
the URL, so it cannot end up in access logs or in error messages that quote a URL.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

import httpx

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

PROVIDER = "gemini"
FLASH_IMAGE = "gemini-2.5-flash-image"
PRO_IMAGE = "gemini-3-pro-image-preview"

ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")

MODELS: Mapping[str, Capabilities] = {
    # Google documents up to 3 input images for 2.5 Flash Image and 14 for 3 Pro Image.
    FLASH_IMAGE: Capabilities(
        max_reference_images=3, aspect_ratios=ASPECT_RATIOS, output_formats=("png",)
    ),
    PRO_IMAGE: Capabilities(
        max_reference_images=14, aspect_ratios=ASPECT_RATIOS, output_formats=("png",)
    ),
}
# GenerationRequest.extra["resolution"] (or "image_size"): output resolution, Nano Banana Pro only.
IMAGE_SIZES: Mapping[str, tuple[str, ...]] = {FLASH_IMAGE: (), PRO_IMAGE: ("1K", "2K", "4K")}

_REFERENCE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp"})

# Why Google refused, in words fit for the user.
_BLOCK_REASONS: Mapping[str, str] = {
    "SAFETY": "The prompt was blocked by Google's safety filters.",
    "BLOCKLIST": "The prompt contains blocked terms.",
    "PROHIBITED_CONTENT": "The prompt asks for prohibited content.",
    "IMAGE_SAFETY": "The reference images were blocked by Google's safety filters.",
    "OTHER": "The prompt was blocked by Google.",
}
_UNSAFE_FINISH: Mapping[str, str] = {
    "SAFETY": "The result was blocked by Google's safety filters.",
    "PROHIBITED_CONTENT": "The result was blocked as prohibited content.",
    "BLOCKLIST": "The result contained blocked terms.",
    "SPII": "The result was blocked for containing personal information.",
    "IMAGE_SAFETY": "The generated image was blocked by Google's safety filters.",
    "IMAGE_PROHIBITED_CONTENT": "The generated image was blocked as prohibited content.",
    "RECITATION": "The result was blocked for resembling protected material.",
    "IMAGE_RECITATION": "The generated image was blocked for resembling protected material.",
}
_MAX_USER_TEXT = 500
_MAX_DETAIL = 300
_GOOGLE_KEY = re.compile(r"AIza[0-9A-Za-z_\-]{20,}")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


class GeminiProvider:
    """``ImageProvider`` for the Gemini API; synchronous, so ``submit`` finishes the job."""

    name = PROVIDER

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = "https://generativelanguage.googleapis.com",
        timeout: float = 120.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._api_key = api_key
        self._http = ProviderHTTP(
            PROVIDER,
            base_url=base_url,
            headers={"x-goog-api-key": api_key},
            timeout=timeout,
            retry=retry,
        )

    # --- ImageProvider -------------------------------------------------------
    def models(self) -> Mapping[str, Capabilities]:
        return dict(MODELS)

    def capabilities(self, model: str) -> Capabilities:
        return MODELS[model]

    async def submit(self, request: GenerationRequest) -> TaskStatus:
        check_request(request)
        body = await asyncio.to_thread(build_body, request)
        response = await self._http.request(
            "POST",
            f"/v1beta/models/{request.model}:generateContent",
            content=body,
            headers={"Content-Type": "application/json"},
            classify=self._classify,
            # httpx keeps custom headers across a cross-host redirect; the key must not follow.
            follow_redirects=False,
        )
        outputs = await asyncio.to_thread(parse_generate_response, response.content)
        return TaskStatus(TaskState.SUCCEEDED, outputs=outputs)

    async def poll(self, provider_job_id: str) -> TaskStatus:
        raise ProviderError(
            ErrorKind.INVALID_INPUT, f"{PROVIDER}: generations are synchronous; nothing to poll"
        )

    async def fetch(self, ref: ResultRef) -> bytes:
        # Results are always inline; downloading a URL with this client would send the key.
        if ref.data is None:
            raise ProviderError(ErrorKind.INVALID_INPUT, f"{PROVIDER}: results are inline only")
        check_media(PROVIDER, ref.data)
        return ref.data

    async def cancel(self, provider_job_id: str) -> None:
        return None  # nothing runs on Google's side once submit has returned

    async def aclose(self) -> None:
        await self._http.aclose()

    def _classify(self, response: httpx.Response) -> ProviderError:
        return classify_error(response, self._api_key)


def check_request(request: GenerationRequest) -> None:
    """INVALID_INPUT for what the model cannot do, before anything is sent (or paid for).

    Settings the models lack (seed, negative prompt, safety level) are dropped: the UI only
    offers what ``capabilities`` declares, and failing a paid job over them helps no one.
    """
    caps = MODELS.get(request.model)
    if caps is None:
        raise _invalid(f"unknown model {request.model!r}")
    if not request.prompt.strip():
        raise _invalid("the prompt is empty")
    if request.num_outputs != 1:
        raise _invalid(f"{request.model} makes one image per request")
    if len(request.references) > caps.max_reference_images:
        raise _invalid(
            f"{request.model} takes at most {caps.max_reference_images} reference images"
        )
    for ref in request.references:
        if ref.mime_type not in _REFERENCE_TYPES:
            raise _invalid(f"reference images must be PNG, JPEG or WebP, not {ref.mime_type}")
    if request.aspect_ratio is not None and request.aspect_ratio not in caps.aspect_ratios:
        raise _invalid(f"{request.model} does not offer aspect ratio {request.aspect_ratio}")
    if request.output_format is not None and request.output_format not in caps.output_formats:
        raise _invalid(f"{request.model} does not offer output format {request.output_format}")
    image_size = _image_size(request)
    if image_size is not None and image_size not in IMAGE_SIZES[request.model]:
        raise _invalid(f"{request.model} does not offer image size {image_size!r}")


def build_body(request: GenerationRequest) -> bytes:
    """The ``GenerateContentRequest`` JSON (blocking: base64 of the references, run in a thread).

    Text is requested alongside the image so that a refusal comes back with the model's
    explanation; ``extra["image_only"]`` asks for the image alone.
    """
    parts: list[dict[str, Any]] = [{"text": request.prompt}]
    parts.extend(
        {
            "inlineData": {
                "mimeType": ref.mime_type,
                "data": base64.b64encode(ref.data).decode("ascii"),
            }
        }
        for ref in request.references
    )
    image_config: dict[str, str] = {}
    if request.aspect_ratio is not None:
        image_config["aspectRatio"] = request.aspect_ratio
    if (image_size := _image_size(request)) is not None:
        image_config["imageSize"] = str(image_size)
    config: dict[str, Any] = {
        "responseModalities": ["IMAGE"] if request.extra.get("image_only") else ["TEXT", "IMAGE"]
    }
    if image_config:
        config["imageConfig"] = image_config
    document = {"contents": [{"role": "user", "parts": parts}], "generationConfig": config}
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def parse_generate_response(payload: bytes) -> tuple[ResultRef, ...]:
    """Validate a ``GenerateContentResponse`` and decode its images (blocking: run in a thread)."""
    try:
        document = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise _malformed("the answer is not JSON") from None
    if not isinstance(document, dict):
        raise _malformed("the answer is not a JSON object")

    feedback = document.get("promptFeedback")
    if feedback is not None and not isinstance(feedback, dict):
        raise _malformed("'promptFeedback' is not an object")
    block_reason = feedback.get("blockReason") if feedback else None
    if block_reason:
        reason = str(block_reason)
        raise ProviderError(
            ErrorKind.SAFETY,
            f"{PROVIDER}: prompt blocked: {reason[:50]}",
            user_reason=_BLOCK_REASONS.get(reason, _BLOCK_REASONS["OTHER"]),
        )

    candidates = document.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        raise _malformed("no candidates and no block reason")
    candidate = candidates[0]
    if not isinstance(candidate, dict):
        raise _malformed("a candidate is not an object")
    finish = candidate.get("finishReason")
    finish = finish if isinstance(finish, str) else "FINISH_REASON_UNSPECIFIED"
    if finish in _UNSAFE_FINISH:
        raise ProviderError(
            ErrorKind.SAFETY,
            f"{PROVIDER}: generation stopped: {finish}",
            user_reason=_UNSAFE_FINISH[finish],
        )

    images, texts = _candidate_parts(candidate)
    if images:
        return tuple(images)
    said = " ".join(texts).strip()[:_MAX_USER_TEXT]
    # The model answered in words only (often a refusal or a question): show them.
    raise ProviderError(
        ErrorKind.INVALID_INPUT,
        f"{PROVIDER}: no image in the answer (finishReason {finish[:50]})",
        user_reason=said or "The model did not produce an image; try rephrasing the prompt.",
    )


def _candidate_parts(candidate: dict[str, Any]) -> tuple[list[ResultRef], list[str]]:
    """Final images and the visible text of a candidate; thought parts are interim drafts."""
    content = candidate.get("content", {})
    if not isinstance(content, dict):
        raise _malformed("'content' is not an object")
    parts = content.get("parts", [])
    if not isinstance(parts, list):
        raise _malformed("'parts' is not a list")
    images: list[ResultRef] = []
    texts: list[str] = []
    for part in parts:
        if not isinstance(part, dict):
            raise _malformed("a part is not an object")
        if part.get("thought") is True:
            continue
        text = part.get("text")
        if isinstance(text, str):
            texts.append(text)
        inline = part.get("inlineData")
        if inline is None:
            continue
        if not isinstance(inline, dict):
            raise _malformed("'inlineData' is not an object")
        mime_type, data = inline.get("mimeType"), inline.get("data")
        if not isinstance(mime_type, str) or not isinstance(data, str):
            raise _malformed("'inlineData' lacks 'mimeType' or 'data'")
        if not mime_type.startswith("image/"):
            continue
        try:
            image = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise _malformed("'inlineData.data' is not valid base64") from None
        images.append(ResultRef(data=image, mime_type=check_media(PROVIDER, image)))
    return images, texts


def classify_error(response: httpx.Response, api_key: str) -> ProviderError:
    """Map a Google error answer (``{"error": {code, message, status, details}}``)."""
    status = response.status_code
    error = _error_object(response)
    google_status = error.get("status") if isinstance(error.get("status"), str) else None
    message = error.get("message")
    detail = message if isinstance(message, str) else response.text
    detail = _redact(detail, api_key)[:_MAX_DETAIL]
    text = f"{PROVIDER}: HTTP {status}" + (f" {google_status}" if google_status else "")
    text += f": {detail}"
    reasons = _detail_reasons(error)
    lowered = detail.lower()

    if 300 <= status < 400:
        return ProviderError(
            ErrorKind.UNAVAILABLE, f"{text} (unexpected redirect)", status_code=status
        )
    if (
        status in (401, 403)
        or google_status in ("UNAUTHENTICATED", "PERMISSION_DENIED")
        or reasons & {"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED"}
        or "api key not valid" in lowered
    ):
        return ProviderError(
            ErrorKind.UNAVAILABLE, f"{text} (check the API key)", status_code=status
        )
    if status == 402 or "credits are depleted" in lowered or "BILLING_DISABLED" in reasons:
        return ProviderError(ErrorKind.UNAVAILABLE, f"{text} (out of credit)", status_code=status)
    if google_status == "FAILED_PRECONDITION" or status == 404:
        # Billing not enabled, region not served, or a model name that does not exist.
        return ProviderError(ErrorKind.UNAVAILABLE, text, status_code=status)
    if (
        google_status in ("RESOURCE_EXHAUSTED", "UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED")
        or status in RETRYABLE_STATUSES
        or status >= 500
    ):
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if retry_after is None:
            retry_after = _retry_info_delay(error)
        return ProviderError(ErrorKind.TRANSIENT, text, retry_after=retry_after, status_code=status)
    return ProviderError(ErrorKind.INVALID_INPUT, text, status_code=status)


def _error_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return {}
    # Google sometimes wraps the error in a one-element list.
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _details(error: Mapping[str, Any]) -> list[dict[str, Any]]:
    details = error.get("details")
    if not isinstance(details, list):
        return []
    return [item for item in details if isinstance(item, dict)]


def _detail_reasons(error: Mapping[str, Any]) -> set[str]:
    """``ErrorInfo.reason`` values, e.g. API_KEY_INVALID."""
    return {item["reason"] for item in _details(error) if isinstance(item.get("reason"), str)}


def _retry_info_delay(error: Mapping[str, Any]) -> float | None:
    """``google.rpc.RetryInfo.retryDelay`` ("37s"), sent on 429s instead of Retry-After."""
    for item in _details(error):
        delay = item.get("retryDelay")
        if isinstance(delay, str) and (match := _DURATION.match(delay)):
            return float(match.group(1))
    return None


def _redact(text: str, api_key: str) -> str:
    if api_key:
        text = text.replace(api_key, "***")
    return _GOOGLE_KEY.sub("AIza***", text)


def _invalid(message: str) -> ProviderError:
    return ProviderError(ErrorKind.INVALID_INPUT, f"{PROVIDER}: {message}", user_reason=message)


def _malformed(message: str) -> ProviderError:
    # Transient, not retried here: a 200 was probably billed, so the job layer decides.
    return ProviderError(ErrorKind.TRANSIENT, f"{PROVIDER}: unexpected answer: {message}")


def _image_size(request: GenerationRequest) -> Any:
    """The requested output resolution: the generic "resolution" or Gemini's "image_size"."""
    return request.extra.get("resolution", request.extra.get("image_size"))
