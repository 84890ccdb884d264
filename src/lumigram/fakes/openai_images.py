"""Fake OpenAI Images API: ``/v1/images/generations`` (JSON) and ``/v1/images/edits`` (multipart).

Follows the documented shapes (``CreateImageRequest``, ``CreateImageEditRequest``,
``ImagesResponse``, ``ErrorResponse``) for ``gpt-image-1`` and ``dall-e-3``, validating
parameters per model the way the real API does. ``Fault.PAYMENT_REQUIRED`` is answered as
OpenAI answers an account out of credit: 429 with code ``insufficient_quota``.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import collapse_rfc2231_value
from typing import Any

from aiohttp import web

from lumigram.fakes.base import FakeServer, sample_image

GPT_IMAGE_1 = "gpt-image-1"
DALL_E_3 = "dall-e-3"

_GPT_SIZES = {"auto": (64, 64), "1024x1024": (64, 64), "1536x1024": (96, 64), "1024x1536": (64, 96)}
_DALLE3_SIZES = {"1024x1024": (64, 64), "1792x1024": (112, 64), "1024x1792": (64, 112)}
_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}

_COMMON = frozenset({"model", "prompt", "n", "size", "user"})
_ALLOWED_PARAMS: Mapping[tuple[str, bool], frozenset[str]] = {
    # (model, is_edit) -> accepted request fields
    (GPT_IMAGE_1, False): _COMMON
    | {"quality", "output_format", "output_compression", "moderation", "background", "stream"},
    (DALL_E_3, False): _COMMON | {"quality", "response_format", "style"},
    (GPT_IMAGE_1, True): _COMMON
    | {"quality", "output_format", "output_compression", "background", "input_fidelity", "stream"},
}
_CHOICES: Mapping[tuple[str, str], frozenset[str]] = {
    (GPT_IMAGE_1, "quality"): frozenset({"low", "medium", "high", "auto"}),
    (GPT_IMAGE_1, "output_format"): frozenset({"png", "jpeg", "webp"}),
    (GPT_IMAGE_1, "moderation"): frozenset({"low", "auto"}),
    (GPT_IMAGE_1, "background"): frozenset({"transparent", "opaque", "auto"}),
    (GPT_IMAGE_1, "input_fidelity"): frozenset({"high", "low"}),
    (GPT_IMAGE_1, "size"): frozenset(_GPT_SIZES),
    (DALL_E_3, "quality"): frozenset({"standard", "hd"}),
    (DALL_E_3, "style"): frozenset({"vivid", "natural"}),
    (DALL_E_3, "response_format"): frozenset({"url", "b64_json"}),
    (DALL_E_3, "size"): frozenset(_DALLE3_SIZES),
}
_MAX_PROMPT = {GPT_IMAGE_1: 32000, DALL_E_3: 4000}
_MAX_EDIT_IMAGES = 16
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF")

# Error "type" and "code" OpenAI uses for each status the base class produces.
_ERROR_KINDS: Mapping[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}


class RequestRejectedError(Exception):
    """A request the fake answers with an OpenAI error body."""

    def __init__(self, status: int, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.status = status
        self.fields = fields


@dataclass(frozen=True, slots=True)
class FormPart:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes


class FakeOpenAI(FakeServer):
    """Serves both image endpoints plus ``/files/<id>`` for dall-e-3 URL results.

    A prompt containing ``safety_marker`` is refused as the real moderation does:
    400 ``moderation_blocked`` for gpt-image-1, 400 ``content_policy_violation`` for dall-e-3.
    """

    provider = "openai"

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        slow_seconds: float = 2.0,
        safety_marker: str = "nsfw",
    ) -> None:
        super().__init__(api_key=api_key, slow_seconds=slow_seconds)
        self.safety_marker = safety_marker
        self.files: dict[str, bytes] = {}

    # --- FakeServer hooks ------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/images/generations", self._generations)
        app.router.add_post("/v1/images/edits", self._edits)
        app.router.add_get("/files/{name}", self._file)

    def error_response(self, status: int, message: str, **extra: Any) -> web.Response:
        if status == 402:  # OpenAI never sends 402; an empty balance is this 429
            status, message = (
                429,
                ("You exceeded your current quota, please check your plan and billing details."),
            )
            extra.setdefault("type", "insufficient_quota")
            extra.setdefault("code", "insufficient_quota")
        elif status == 401:
            message = (
                "Incorrect API key provided. You can find your API key at "
                "https://platform.openai.com/account/api-keys."
            )
        error_type, code = _ERROR_KINDS.get(status, ("invalid_request_error", None))
        error = {
            "message": message,
            "type": extra.get("type", error_type),
            "param": extra.get("param"),
            "code": extra.get("code", code),
        }
        return web.json_response({"error": error}, status=status)

    def malformed_response(self) -> web.Response:
        return web.json_response({"created": "soon", "data": [{"unexpected": True}]})

    # --- handlers ----------------------------------------------------------------
    async def _generations(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError:
            return self._reject(
                RequestRejectedError(400, "We could not parse the JSON body of your request.")
            )
        if not isinstance(body, dict):
            return self._reject(
                RequestRejectedError(400, "The request body must be a JSON object.")
            )
        try:
            return self._answer(body, edit_images=None)
        except RequestRejectedError as rejection:
            return self._reject(rejection)

    async def _edits(self, request: web.Request) -> web.Response:
        try:
            parts = parse_multipart(request.headers.get("Content-Type", ""), await request.read())
        except ValueError:
            return self._reject(
                RequestRejectedError(400, "The request must be multipart/form-data.")
            )
        fields: dict[str, Any] = {}
        images: list[FormPart] = []
        for part in parts:
            if part.name in ("image", "image[]"):
                images.append(part)
            elif part.name == "mask":
                continue  # accepted and ignored: the fake does not paint
            elif part.filename is None:
                fields[part.name] = part.data.decode("utf-8", "replace")
        try:
            for name in ("n", "output_compression"):
                if name in fields:
                    fields[name] = _form_int(name, fields[name])
            return self._answer(fields, edit_images=images)
        except RequestRejectedError as rejection:
            return self._reject(rejection)

    async def _file(self, request: web.Request) -> web.Response:
        data = self.files.get(request.match_info["name"])
        if data is None:
            return web.Response(status=404, text="BlobNotFound")
        return web.Response(body=data, content_type="image/png")

    # --- request checking and answers ---------------------------------------------
    def _answer(
        self, params: dict[str, Any], *, edit_images: list[FormPart] | None
    ) -> web.Response:
        model = params.get("model", "dall-e-2" if edit_images is None else GPT_IMAGE_1)
        allowed = _ALLOWED_PARAMS.get((model, edit_images is not None))
        if allowed is None:
            raise RequestRejectedError(
                400,
                f"Invalid value: '{model}'. This fake serves gpt-image-1 and dall-e-3.",
                param="model",
                code="invalid_value",
            )
        for name in params:
            if name not in allowed:
                raise RequestRejectedError(
                    400, f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter"
                )
        prompt = params.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise RequestRejectedError(400, "Missing required parameter: 'prompt'.", param="prompt")
        if len(prompt) > _MAX_PROMPT[model]:
            raise RequestRejectedError(
                400,
                f"Invalid 'prompt': string too long. Expected a string with maximum length "
                f"{_MAX_PROMPT[model]}, but got a string with length {len(prompt)} instead.",
                param="prompt",
                code="string_above_max_length",
            )
        n = params.get("n", 1)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 10:
            raise RequestRejectedError(
                400, "Invalid 'n': must be an integer from 1 to 10.", param="n"
            )
        if model == DALL_E_3 and n != 1:
            raise RequestRejectedError(400, "You must provide n=1 for this model.", param="n")
        for name, value in params.items():
            choices = _CHOICES.get((model, name))
            if choices is not None and value not in choices:
                raise RequestRejectedError(
                    400,
                    f"Invalid value: '{value}'. Supported values are: "
                    + ", ".join(f"'{choice}'" for choice in sorted(choices))
                    + ".",
                    param=name,
                    code="invalid_value",
                )
        compression = params.get("output_compression", 100)
        if not isinstance(compression, int) or not 0 <= compression <= 100:
            raise RequestRejectedError(
                400, "Invalid 'output_compression'.", param="output_compression"
            )
        if params.get("stream"):
            raise RequestRejectedError(
                400, "Streaming is not supported by this fake.", param="stream"
            )
        if edit_images is not None:
            _check_edit_images(edit_images)

        if self.safety_marker and self.safety_marker.lower() in prompt.lower():
            raise self._safety_rejection(model)
        if model == DALL_E_3:
            return self._dalle3_answer(prompt, params)
        return self._gpt_image_answer(prompt, n, params, edit_images or [])

    def _safety_rejection(self, model: str) -> RequestRejectedError:
        if model == DALL_E_3:
            return RequestRejectedError(
                400,
                "Your request was rejected as a result of our safety system. Your prompt may "
                "contain text that is not allowed by our safety system.",
                code="content_policy_violation",
            )
        return RequestRejectedError(
            400,
            "Your request was rejected by the safety system. If you believe this is an error, "
            f"contact us at help.openai.com and include the request ID req_{uuid.uuid4().hex}. "
            "safety_violations=[sexual].",
            type="image_generation_user_error",
            code="moderation_blocked",
        )

    def _gpt_image_answer(
        self, prompt: str, n: int, params: Mapping[str, Any], edit_images: list[FormPart]
    ) -> web.Response:
        size = params.get("size", "auto")
        output_format = params.get("output_format", "png")
        width, height = _GPT_SIZES[size]
        images = [
            base64.b64encode(
                sample_image(width, height, _PIL_FORMATS[output_format], seed=index)
            ).decode("ascii")
            for index in range(n)
        ]
        quality = params.get("quality", "auto")
        image_tokens = 0 if not edit_images else 323 * len(edit_images)
        return web.json_response(
            {
                "created": int(time.time()),
                "data": [{"b64_json": image} for image in images],
                "background": "opaque",
                "output_format": output_format,
                "size": "1024x1024" if size == "auto" else size,
                "quality": "medium" if quality == "auto" else quality,
                "usage": {
                    "total_tokens": 1056 * n + len(prompt.split()) + image_tokens,
                    "input_tokens": len(prompt.split()) + image_tokens,
                    "output_tokens": 1056 * n,
                    "input_tokens_details": {
                        "text_tokens": len(prompt.split()),
                        "image_tokens": image_tokens,
                    },
                },
            }
        )

    def _dalle3_answer(self, prompt: str, params: Mapping[str, Any]) -> web.Response:
        width, height = _DALLE3_SIZES[params.get("size", "1024x1024")]
        image = sample_image(width, height, "PNG", seed=len(self.files) + 1)
        item: dict[str, str] = {"revised_prompt": f"A detailed, vivid rendering of: {prompt}"}
        if params.get("response_format", "url") == "b64_json":
            item["b64_json"] = base64.b64encode(image).decode("ascii")
        else:
            name = f"img-{uuid.uuid4().hex}.png"
            self.files[name] = image
            item["url"] = self.url(f"/files/{name}")
        return web.json_response({"created": int(time.time()), "data": [item]})

    def _reject(self, rejection: RequestRejectedError) -> web.Response:
        return self.error_response(rejection.status, str(rejection), **rejection.fields)


def _check_edit_images(images: list[FormPart]) -> None:
    if not images:
        raise RequestRejectedError(400, "Missing required parameter: 'image'.", param="image")
    if len(images) > _MAX_EDIT_IMAGES:
        raise RequestRejectedError(
            400, f"Invalid 'image': at most {_MAX_EDIT_IMAGES} images are allowed.", param="image"
        )
    for index, image in enumerate(images):
        if not image.data.startswith(_IMAGE_MAGIC):
            raise RequestRejectedError(
                400,
                f"Invalid image file or mode for image {index + 1}, please check your image file.",
                param="image",
                code="invalid_image_file",
            )


def _form_int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise RequestRejectedError(
            400, f"Invalid '{name}': expected an integer.", param=name
        ) from None


def parse_multipart(content_type: str, body: bytes) -> list[FormPart]:
    """Split a multipart/form-data body.

    aiohttp's ``request.post()`` cannot be used: the base middleware has already consumed the
    stream to record the request.
    """
    header = Message()
    header["Content-Type"] = content_type
    boundary = header.get_boundary()
    if header.get_content_type() != "multipart/form-data" or not boundary:
        raise ValueError("not multipart/form-data")
    parts: list[FormPart] = []
    for section in body.split(b"--" + boundary.encode("latin-1"))[1:]:
        if section.startswith(b"--"):
            break  # the closing delimiter
        head, separator, data = section.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not separator:
            raise ValueError("a part has no header block")
        headers = BytesHeaderParser().parsebytes(head + b"\r\n\r\n")
        name = headers.get_param("name", header="content-disposition")
        if name is None:
            raise ValueError("a part has no name")
        filename = headers.get_filename()
        parts.append(
            FormPart(
                name=collapse_rfc2231_value(name),
                filename=filename,
                content_type=headers.get("Content-Type"),
                data=data.removesuffix(b"\r\n"),
            )
        )
    if not parts:
        raise ValueError("no parts")
    return parts
