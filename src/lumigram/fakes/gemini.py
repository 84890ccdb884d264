"""Fake Gemini API: ``POST /v1beta/models/{model}:generateContent`` for the image models.

Follows the documented shapes (``GenerateContentRequest``/``GenerateContentResponse``,
``google.rpc.Status`` errors). Google answers a bad key with 400 INVALID_ARGUMENT and
ErrorInfo reason API_KEY_INVALID, and an empty prepaid balance with 429 RESOURCE_EXHAUSTED
("credits are depleted"); the base class's 401 and 402 faults are answered that way.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from lumigram.fakes.base import FakeServer, sample_image

FLASH_IMAGE = "gemini-2.5-flash-image"
PRO_IMAGE = "gemini-3-pro-image-preview"

MAX_INPUT_IMAGES = {FLASH_IMAGE: 3, PRO_IMAGE: 14}
_IMAGE_SIZES = {FLASH_IMAGE: frozenset[str](), PRO_IMAGE: frozenset({"1K", "2K", "4K"})}
ASPECT_RATIOS = frozenset({"1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"})
_INPUT_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"})
_MODALITIES = frozenset({"TEXT", "IMAGE"})
_SIDE = 64  # the short side of fake images, in pixels

_STATUS_NAMES: Mapping[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class InvalidArgumentError(Exception):
    """A request the fake answers with 400 INVALID_ARGUMENT."""


class FakeGemini(FakeServer):
    """Generates small real PNGs in the requested aspect ratio.

    Prompt markers: ``block_marker`` -> ``promptFeedback.blockReason`` SAFETY (no candidates),
    ``image_safety_marker`` -> candidate ``finishReason`` IMAGE_SAFETY, ``text_only_marker``
    -> a candidate with text and no image (finishReason STOP).
    """

    provider = "gemini"

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        slow_seconds: float = 2.0,
        block_marker: str = "nsfw",
        image_safety_marker: str = "gore",
        text_only_marker: str = "words only",
    ) -> None:
        super().__init__(api_key=api_key, slow_seconds=slow_seconds)
        self.block_marker = block_marker
        self.image_safety_marker = image_safety_marker
        self.text_only_marker = text_only_marker
        self.keys_in_query = 0  # requests that carried the key as ?key= (tests want none)

    # --- FakeServer hooks ------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1beta/models/{model}:generateContent", self._generate_content)

    def presented_key(self, request: web.Request) -> str | None:
        header = request.headers.get("x-goog-api-key")
        if header is not None:
            return header
        query = request.query.get("key")
        if query is not None:
            self.keys_in_query += 1
        return query

    def error_response(self, status: int, message: str, **extra: Any) -> web.Response:
        details: list[dict[str, Any]] = list(extra.get("details", []))
        if status == 401:  # what Google really sends for a wrong key
            status, message = 400, "API key not valid. Please pass a valid API key."
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
            )
        elif status == 402:  # Google has no 402: an empty prepaid balance is a 429
            status, message = (
                429,
                "Your prepayment credits are depleted. Please go to AI Studio at "
                "https://ai.studio/projects to manage your project and billing.",
            )
        elif status == 429:
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": f"{self.retry_after_seconds}s",
                }
            )
        error: dict[str, Any] = {
            "code": status,
            "message": message,
            "status": _STATUS_NAMES.get(status, "UNKNOWN"),
        }
        if details:
            error["details"] = details
        return web.json_response({"error": error}, status=status)

    def malformed_response(self) -> web.Response:
        return web.json_response(
            {"candidates": [{"content": {"parts": [{"inlineData": {"mimeType": "image/png"}}]}}]}
        )

    # --- handler -------------------------------------------------------------------
    async def _generate_content(self, request: web.Request) -> web.Response:
        model = request.match_info["model"]
        if model not in MAX_INPUT_IMAGES:
            return self.error_response(
                404,
                f"models/{model} is not found for API version v1beta, or is not supported "
                "for generateContent. Call ListModels to see the list of available models "
                "and their supported methods.",
            )
        try:
            body = json.loads(await request.read())
        except ValueError:
            return self.error_response(400, "Invalid JSON payload received.")
        try:
            prompt, modalities, aspect_ratio = _check_request(model, body)
        except InvalidArgumentError as exc:
            return self.error_response(400, str(exc))

        lowered = prompt.lower()
        if self.block_marker and self.block_marker.lower() in lowered:
            return web.json_response(
                {
                    "promptFeedback": {
                        "blockReason": "SAFETY",
                        "safetyRatings": [
                            {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "HIGH"}
                        ],
                    },
                    "usageMetadata": _usage(prompt, images=0),
                    "modelVersion": model,
                    "responseId": uuid.uuid4().hex,
                }
            )
        if self.image_safety_marker and self.image_safety_marker.lower() in lowered:
            return _answer(model, prompt, [], finish_reason="IMAGE_SAFETY")
        if self.text_only_marker and self.text_only_marker.lower() in lowered:
            said = "I can describe that scene, but I will not draw it."
            return _answer(model, prompt, [{"text": said}], finish_reason="STOP")

        parts: list[dict[str, Any]] = []
        if "TEXT" in modalities:
            parts.append({"text": "Here is the image you asked for."})
        if "IMAGE" in modalities:
            width, height = _dimensions(aspect_ratio)
            data = base64.b64encode(sample_image(width, height, "PNG", seed=len(self.requests)))
            parts.append({"inlineData": {"mimeType": "image/png", "data": data.decode("ascii")}})
        return _answer(model, prompt, parts, finish_reason="STOP")


def _check_request(model: str, body: object) -> tuple[str, list[str], str]:
    """The prompt text, response modalities and aspect ratio of a valid request."""
    if not isinstance(body, dict):
        raise InvalidArgumentError("Invalid JSON payload received. Expected an object.")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise InvalidArgumentError("* GenerateContentRequest.contents: contents is not specified")
    texts: list[str] = []
    images = 0
    for turn, content in enumerate(contents):
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list) or not parts:
            raise InvalidArgumentError(
                f"* GenerateContentRequest.contents[{turn}].parts: contents.parts must not be "
                "empty."
            )
        for index, part in enumerate(parts):
            where = f"contents[{turn}].parts[{index}]"
            if not isinstance(part, dict):
                raise InvalidArgumentError(f"Invalid value at '{where}': expected an object.")
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif "inlineData" in part:
                _check_inline_data(where, part["inlineData"])
                images += 1
            else:
                raise InvalidArgumentError(f"* {where}: a part must have text or inlineData.")
    if images > MAX_INPUT_IMAGES[model]:
        raise InvalidArgumentError(
            f"Too many input images: {images}. {model} accepts at most {MAX_INPUT_IMAGES[model]}."
        )
    if not "".join(texts).strip():
        raise InvalidArgumentError("* GenerateContentRequest.contents: a text prompt is required.")

    config = body.get("generationConfig", {})
    if not isinstance(config, dict):
        raise InvalidArgumentError("Invalid value at 'generation_config': expected an object.")
    modalities = config.get("responseModalities", ["TEXT", "IMAGE"])
    if (
        not isinstance(modalities, list)
        or not modalities
        or any(value not in _MODALITIES for value in modalities)
    ):
        raise InvalidArgumentError(
            "Invalid value at 'generation_config.response_modalities': the model supports "
            "TEXT and IMAGE."
        )
    candidate_count = config.get("candidateCount", 1)
    if candidate_count != 1:
        raise InvalidArgumentError(f"Multiple candidates is not enabled for models/{model}")
    image_config = config.get("imageConfig", {})
    if not isinstance(image_config, dict):
        raise InvalidArgumentError("Invalid value at 'generation_config.image_config'.")
    aspect_ratio = image_config.get("aspectRatio", "1:1")
    if aspect_ratio not in ASPECT_RATIOS:
        raise InvalidArgumentError(f"Unsupported aspect ratio: {aspect_ratio}")
    image_size = image_config.get("imageSize")
    if image_size is not None and image_size not in _IMAGE_SIZES[model]:
        raise InvalidArgumentError(f"Unsupported image size for {model}: {image_size}")
    return "\n".join(texts), [str(value) for value in modalities], str(aspect_ratio)


def _check_inline_data(where: str, blob: object) -> None:
    if not isinstance(blob, dict) or not isinstance(blob.get("data"), str):
        raise InvalidArgumentError(f"* {where}.inline_data.data: data is required.")
    if blob.get("mimeType") not in _INPUT_TYPES:
        raise InvalidArgumentError(
            f"Unsupported MIME type: {blob.get('mimeType')} at '{where}.inline_data'."
        )
    try:
        base64.b64decode(blob["data"], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgumentError(
            f"Invalid value at '{where}.inline_data.data' (TYPE_BYTES), Base64 decoding failed."
        ) from None


def _dimensions(aspect_ratio: str) -> tuple[int, int]:
    width, height = (int(side) for side in aspect_ratio.split(":"))
    if width >= height:
        return round(_SIDE * width / height), _SIDE
    return _SIDE, round(_SIDE * height / width)


def _usage(prompt: str, *, images: int) -> dict[str, int]:
    prompt_tokens = max(1, len(prompt.split()))
    output_tokens = 1290 * images
    return {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": output_tokens,
        "totalTokenCount": prompt_tokens + output_tokens,
    }


def _answer(
    model: str, prompt: str, parts: list[dict[str, Any]], *, finish_reason: str
) -> web.Response:
    candidate: dict[str, Any] = {"finishReason": finish_reason, "index": 0}
    if parts:
        candidate["content"] = {"role": "model", "parts": parts}
    images = sum(1 for part in parts if "inlineData" in part)
    return web.json_response(
        {
            "candidates": [candidate],
            "usageMetadata": _usage(prompt, images=images),
            "modelVersion": model,
            "responseId": uuid.uuid4().hex,
        }
    )
