"""KIE.ai client: Veo 3 Fast, Runway Gen-3, and Wan 2.2 / Kling 2.1 through the Market API.

KIE fronts three API families with one key (``Authorization: Bearer <KEY>``) and one
answer envelope, ``{"code": <int>, "msg": "<str>", "data": <obj|null>}``, whose business
``code`` is authoritative: errors arrive inside HTTP 200 bodies as well as with HTTP
4xx/5xx statuses (docs.kie.ai, every endpoint page lists the same code table). Shapes
below were read from docs.kie.ai (``../shared/providers/kie/README.md`` summarises them):

- Veo 3.1 (``veo3-api/generate-veo-3-video``, ``veo3-api/get-veo-3-video-details``):
  ``POST /api/v1/veo/generate`` ``{prompt, model, aspect_ratio, generationType,
  imageUrls?, seeds?, callBackUrl?}``; poll ``GET /api/v1/veo/record-info?taskId=`` ->
  ``data.successFlag`` 0 generating / 1 success / 2 failed / 3 generation failed, results
  in ``data.response.resultUrls``, failures in ``errorCode`` / ``errorMessage``.
- Runway (``runway-api/generate-ai-video``, ``runway-api/get-ai-video-details``):
  ``POST /api/v1/runway/generate`` ``{prompt, duration 5|10, quality 720p|1080p,
  aspectRatio, imageUrl?, waterMark, callBackUrl?}`` (10 s and 1080p exclude each other;
  text-only needs ``aspectRatio``); poll ``GET /api/v1/runway/record-detail?taskId=`` ->
  ``data.state`` wait / queueing / generating / success / fail, the video in
  ``data.videoInfo.videoUrl``, ``failCode`` / ``failMsg``, ``expireFlag`` 1 once the
  14-day links are gone.
- Market (``market/common/get-task-detail``, ``market/wan/2-2-a14b-image-to-video-turbo``,
  ``market/kling/v2-1-standard``): ``POST /api/v1/jobs/createTask`` ``{model, input{…},
  callBackUrl?}``; poll ``GET /api/v1/jobs/recordInfo?taskId=`` -> ``data.state``
  waiting / queuing / generating / success / fail, ``data.resultJson`` a JSON *string*
  ``'{"resultUrls": [...]}'``, ``failCode`` / ``failMsg``.

Every create answers ``{"code": 200, "msg": "success", "data": {"taskId": "…"}}``; the
provider job id is that ``taskId``. The record endpoints are per family, so the client
remembers each task's family from ``submit``; after a restart it finds it by asking the
record endpoints in turn (an id of another family answers 404/422 ``recordInfo is null``).

Input images are fetched by KIE from a URL: ``upload_image`` puts the user's photo on
KIE's File Upload API (``file-upload-api/upload-file-base-64`` and
``upload-file-stream``, base ``https://kieai.redpandaai.co``) right before the create,
because those URLs expire (the pages say 24 h in one place and 3 days in another).

Callbacks (``common-api/webhook-verification``): when the account enables a
``webhookHmacKey``, KIE sends ``X-Webhook-Timestamp`` (unix seconds) and
``X-Webhook-Signature`` = base64(HMAC-SHA256(key, f"{taskId}.{timestamp}")); only the task
id is signed, not the body. ``verify_kie_signature`` and ``callback_task_id`` implement
that; a callback only wakes the job, the record endpoint stays the authority.

KIE has no cancel endpoint for these families: ``cancel`` is a documented no-op.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import httpx

from lumigram.domain.generation import (
    Capabilities,
    ErrorKind,
    GenerationRequest,
    OutputKind,
    ProviderError,
    ResultRef,
    TaskState,
    TaskStatus,
)
from lumigram.domain.media import sniff_media_type
from lumigram.providers.http import ProviderHTTP, RetryPolicy, parse_retry_after

NAME = "kie"
DEFAULT_BASE_URL = "https://api.kie.ai"
# file-upload-api/quickstart: "API Base URL: https://kieai.redpandaai.co".
DEFAULT_UPLOAD_BASE_URL = "https://kieai.redpandaai.co"
# file-upload-api/upload-file-base-64: "Large files (>10MB) should use the File Stream
# Upload API"; base64 adds a third, so switch well before that.
DEFAULT_BASE64_LIMIT = 4 * 1024 * 1024
DEFAULT_MAX_VIDEO_BYTES = 200 * 1024 * 1024
UPLOAD_PATH = "lumigram/inputs"
SIGNATURE_MAX_AGE = 300  # seconds; the issue: timestamps older than 5 minutes are refused

# Our model names: KIE's own where it has one (Veo ``model``, Market ``model``).
VEO3_FAST = "veo3_fast"
RUNWAY_GEN3 = "runway-gen3"  # /api/v1/runway/generate takes no model field
WAN_T2V = "wan/2-2-a14b-text-to-video-turbo"
WAN_I2V = "wan/2-2-a14b-image-to-video-turbo"
KLING_I2V = "kling/v2-1-standard"

SAFETY_USER_REASON = (
    "The video service refused this request under its content policy. "
    "Try a different prompt or photo."
)
INVALID_USER_REASON = "The video service could not accept this request: {reason}"
UNAVAILABLE_USER_REASON = "Video generation is temporarily unavailable. Please try again later."
IMAGE_FETCH_USER_REASON = (
    "The video service could not fetch your photo. Please send it again and retry."
)
GENERATION_FAILED_USER_REASON = (
    "The video service could not generate this video. Try again, perhaps with another prompt."
)
EXPIRED_USER_REASON = "The finished video is no longer available at the video service."


class Family(StrEnum):
    VEO = "veo"
    RUNWAY = "runway"
    MARKET = "market"


CREATE_PATHS = MappingProxyType(
    {
        Family.VEO: "/api/v1/veo/generate",
        Family.RUNWAY: "/api/v1/runway/generate",
        Family.MARKET: "/api/v1/jobs/createTask",
    }
)
RECORD_PATHS = MappingProxyType(
    {
        Family.VEO: "/api/v1/veo/record-info",
        Family.RUNWAY: "/api/v1/runway/record-detail",
        Family.MARKET: "/api/v1/jobs/recordInfo",
    }
)
BASE64_UPLOAD_PATH = "/api/file-base64-upload"
STREAM_UPLOAD_PATH = "/api/file-stream-upload"
CREDIT_PATH = "/api/v1/chat/credit"


@dataclass(frozen=True, slots=True)
class KieModel:
    """One model: its family, what it accepts, and the settings offered through ``extra``."""

    family: Family
    capabilities: Capabilities
    requires_image: bool = False
    # Seconds of every video where the length is not a setting (the catalog still names it).
    fixed_duration: int | None = None
    # Generic ``GenerationRequest.extra`` settings with their allowed values (first: default).
    extras: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)


_VIDEO = frozenset({OutputKind.VIDEO})

MODELS: Mapping[str, KieModel] = MappingProxyType(
    {
        # veo3-api/generate-veo-3-video: 16:9 / 9:16 (and Auto); 1 image (animated) or 2
        # (first and last frame); ``seeds`` optional.
        VEO3_FAST: KieModel(
            family=Family.VEO,
            capabilities=Capabilities(
                outputs=_VIDEO,
                max_reference_images=2,
                aspect_ratios=("16:9", "9:16", "Auto"),
                output_formats=("mp4",),
                seed=True,
            ),
            fixed_duration=8,
        ),
        # runway-api/generate-ai-video: 5 or 10 s, 720p or 1080p (not 10 s at 1080p),
        # optional imageUrl, aspectRatio required for text-only.
        RUNWAY_GEN3: KieModel(
            family=Family.RUNWAY,
            capabilities=Capabilities(
                outputs=_VIDEO,
                max_reference_images=1,
                aspect_ratios=("16:9", "9:16", "1:1", "4:3", "3:4"),
                output_formats=("mp4",),
            ),
            extras={"duration": (5, 10), "resolution": ("720p", "1080p")},
        ),
        # kie.ai/wan/v2-2 (text to video): resolution 480p/580p/720p (default 720p),
        # aspect_ratio 16:9 / 9:16 (default 16:9), seed.
        WAN_T2V: KieModel(
            family=Family.MARKET,
            capabilities=Capabilities(
                outputs=_VIDEO,
                aspect_ratios=("16:9", "9:16"),
                output_formats=("mp4",),
                seed=True,
            ),
            fixed_duration=5,
            extras={"resolution": ("720p", "580p", "480p")},
        ),
        # market/wan/2-2-a14b-image-to-video-turbo: image_url required, resolution.
        WAN_I2V: KieModel(
            family=Family.MARKET,
            capabilities=Capabilities(
                outputs=_VIDEO,
                max_reference_images=1,
                aspect_ratios=("auto", "16:9", "9:16"),
                output_formats=("mp4",),
                seed=True,
            ),
            requires_image=True,
            fixed_duration=5,
            extras={"resolution": ("720p", "580p", "480p")},
        ),
        # market/kling/v2-1-standard: image_url required, duration "5" / "10",
        # negative_prompt, cfg_scale.
        KLING_I2V: KieModel(
            family=Family.MARKET,
            capabilities=Capabilities(
                outputs=_VIDEO,
                max_reference_images=1,
                aspect_ratios=("auto",),
                output_formats=("mp4",),
                negative_prompt=True,
            ),
            requires_image=True,
            extras={"duration": (5, 10)},
        ),
    }
)

# Business codes (the table on every docs.kie.ai endpoint page).
UNAVAILABLE_CODES = frozenset({401, 402, 505})  # auth, credits, feature disabled
TRANSIENT_CODES = frozenset({408, 429, 455, 500})  # upstream timeout, rate, maintenance, server
NOT_FOUND_CODES = frozenset({404, 422})  # "recordInfo is null" for an id of another family
# A create answered with these was not processed: it may be sent again.
UNPROCESSED_CODES = frozenset({429, 455})

# Veo callbacks list these 400 texts ("Your prompt was flagged by Website as violating
# content policies", "Public error: unsafe image upload", ...).
_SAFETY_TEXT = re.compile(
    r"flagged|violat|content polic|unsafe|nsfw|sensitive|prohibited|moderation|safety",
    re.IGNORECASE,
)
_IMAGE_FETCH_TEXT = re.compile(r"fetch the image|image fetch|download the image", re.IGNORECASE)

_VEO_STATES = MappingProxyType(
    {0: TaskState.RUNNING, 1: TaskState.SUCCEEDED, 2: TaskState.FAILED, 3: TaskState.FAILED}
)
_RUNWAY_STATES = MappingProxyType(
    {
        "wait": TaskState.QUEUED,
        "queueing": TaskState.QUEUED,
        "generating": TaskState.RUNNING,
        "success": TaskState.SUCCEEDED,
        "fail": TaskState.FAILED,
    }
)
_MARKET_STATES = MappingProxyType(
    {
        "waiting": TaskState.QUEUED,
        "queuing": TaskState.QUEUED,
        "generating": TaskState.RUNNING,
        "success": TaskState.SUCCEEDED,
        "fail": TaskState.FAILED,
    }
)


# The families' words for a task still in progress, as the user is shown them.
_PHASES = MappingProxyType(
    {"wait": "waiting", "waiting": "waiting", "queueing": "queuing", "queuing": "queuing"}
)


@dataclass(frozen=True, slots=True)
class KieTask:
    """One record-endpoint answer, validated: the family's own state word is kept for
    progress messages ("waiting", "queuing", "generating")."""

    task_id: str
    family: Family
    state: TaskState
    provider_state: str
    result_urls: tuple[str, ...] = ()
    fail_code: int | None = None
    fail_message: str = ""
    expired: bool = False
    progress: float | None = None


class KieProvider:
    """``ImageProvider`` for KIE.ai's video models (see ``MODELS``)."""

    name = NAME

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        upload_base_url: str = DEFAULT_UPLOAD_BASE_URL,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        callback_url: str | None = None,
        webhook_hmac_key: bytes | None = None,
        base64_limit: int = DEFAULT_BASE64_LIMIT,
        max_download_bytes: int = DEFAULT_MAX_VIDEO_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("kie: an API key is required")
        self._api_key = api_key
        self.callback_url = callback_url or None
        # The account's webhookHmacKey: callbacks are verified with it (http.callbacks_in).
        self.webhook_hmac_key = webhook_hmac_key or None
        self.base64_limit = base64_limit
        self.retry = retry or RetryPolicy()
        auth = {"Authorization": f"Bearer {api_key}"}
        # One connection pool (and one TLS context, ~50 ms to build) for the three clients.
        transport = transport or httpx.AsyncHTTPTransport()
        self._api = ProviderHTTP(
            NAME, base_url=base_url, headers=auth, timeout=timeout, retry=retry,
            transport=transport,
        )  # fmt: skip
        self._upload = ProviderHTTP(
            NAME, base_url=upload_base_url, headers=auth, timeout=timeout, retry=retry,
            transport=transport,
        )  # fmt: skip
        # Result URLs are public CDN links: they must never see the API key.
        self._files = ProviderHTTP(
            NAME, base_url=base_url, timeout=timeout, retry=retry,
            max_download_bytes=max_download_bytes, transport=transport,
        )  # fmt: skip
        self._families: dict[str, Family] = {}

    # --- ImageProvider ----------------------------------------------------------
    def capabilities(self, model: str) -> Capabilities:
        return MODELS[model].capabilities

    def models(self) -> Mapping[str, Capabilities]:
        return {name: spec.capabilities for name, spec in MODELS.items()}

    async def submit(self, request: GenerationRequest) -> TaskStatus:
        """Upload the photo (if any), create the task, and answer QUEUED with its taskId."""
        spec = model_spec(request.model)
        check_request(spec, request)
        image_urls = [await self.upload_image(ref.data) for ref in request.references]
        body = build_body(request, image_urls, callback_url=self.callback_url)
        data = await self._call(
            "POST", CREATE_PATHS[spec.family], json=body, idempotent=False, what="create"
        )
        task_id = data.get("taskId") if isinstance(data, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise _malformed("the create answer has no taskId")
        self._families[task_id] = spec.family
        return TaskStatus(TaskState.QUEUED, task_id)

    async def poll(self, provider_job_id: str) -> TaskStatus:
        return to_status(await self.poll_task(provider_job_id))

    async def poll_task(self, task_id: str, family: Family | None = None) -> KieTask:
        """The task as its record endpoint reports it. Without a known family (a restart)
        each family's endpoint is asked in turn; an id none knows is INVALID_INPUT."""
        if not task_id:
            raise ProviderError(ErrorKind.INVALID_INPUT, f"{NAME}: empty task id")
        family = family or self._families.get(task_id)
        if family is not None:
            return parse_record(family, await self._record(family, task_id), task_id)
        for candidate in Family:
            try:
                data = await self._record(candidate, task_id)
            except ProviderError as error:
                if error.status_code in NOT_FOUND_CODES:
                    continue
                raise
            if data is None:
                continue
            self._families[task_id] = candidate
            return parse_record(candidate, data, task_id)
        raise ProviderError(
            ErrorKind.INVALID_INPUT, f"{NAME}: no family knows task {task_id}", status_code=404
        )

    async def fetch(self, ref: ResultRef) -> bytes:
        """Download a result (no API key sent), capped, and checked to be a video."""
        if ref.data is not None:
            _check_video(ref.data)
            return ref.data
        if ref.url is None:
            raise ProviderError(ErrorKind.INVALID_INPUT, f"{NAME}: result has neither URL nor data")
        try:
            data = await self._files.download(ref.url, accept_video=True)
        except ProviderError as error:
            if error.status_code in (401, 403, 404, 410):
                # KIE's result links expire (Runway: 14 days, Market: ~24 h).
                raise ProviderError(
                    ErrorKind.INVALID_INPUT,
                    f"{NAME}: the result URL is expired or gone (HTTP {error.status_code})",
                    user_reason=EXPIRED_USER_REASON,
                    status_code=error.status_code,
                    user_code="result_expired",
                ) from None
            raise
        _check_video(data)
        return data

    async def cancel(self, provider_job_id: str) -> None:
        """No-op: KIE documents no cancel endpoint for Veo, Runway or Market tasks; the task
        runs to its end at KIE and its result is ignored."""

    async def aclose(self) -> None:
        await self._api.aclose()
        await self._upload.aclose()
        await self._files.aclose()

    async def __aenter__(self) -> KieProvider:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- KIE extras ---------------------------------------------------------------
    async def upload_image(self, data: bytes, *, file_name: str | None = None) -> str:
        """Put an input image on KIE's File Upload API; the ``downloadUrl`` to give a create.

        Base64 (``POST /api/file-base64-upload`` ``{base64Data, uploadPath, fileName}``) up
        to ``base64_limit`` bytes, the multipart stream upload (``POST
        /api/file-stream-upload`` with ``file``, ``uploadPath``, ``fileName``) above. The
        same ``fileName`` overwrites, so a retried upload cannot leave a second file."""
        kind = sniff_media_type(data)
        if kind is None or not kind.startswith("image/"):
            raise ProviderError(ErrorKind.INVALID_INPUT, f"{NAME}: the input is not an image")
        name = file_name or f"{secrets.token_hex(12)}.{_EXTENSIONS.get(kind, 'bin')}"
        if len(data) <= self.base64_limit:
            payload = await asyncio.to_thread(_data_url, kind, data)
            answer = await self._call(
                "POST",
                BASE64_UPLOAD_PATH,
                client=self._upload,
                json={"base64Data": payload, "uploadPath": UPLOAD_PATH, "fileName": name},
                what="upload",
            )
        else:
            answer = await self._call(
                "POST",
                STREAM_UPLOAD_PATH,
                client=self._upload,
                files={"file": (name, data, kind)},
                data={"uploadPath": UPLOAD_PATH, "fileName": name},
                what="upload",
            )
        url = answer.get("downloadUrl") if isinstance(answer, dict) else None
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            raise _malformed("the upload answer has no downloadUrl")
        return url

    async def credits(self) -> int:
        """The account's remaining credits (``GET /api/v1/chat/credit``, ``data`` an int)."""
        data = await self._call("GET", CREDIT_PATH, what="credit")
        if not isinstance(data, int | float) or isinstance(data, bool):
            raise _malformed("the credit answer is not a number")
        return int(data)

    # --- internals -------------------------------------------------------------------
    async def _record(self, family: Family, task_id: str) -> Any:
        return await self._call(
            "GET", RECORD_PATHS[family], params={"taskId": task_id}, what="record"
        )

    async def _call(
        self,
        method: str,
        path: str,
        *,
        client: ProviderHTTP | None = None,
        idempotent: bool = True,
        what: str,
        **kwargs: Any,
    ) -> Any:
        """Send, unwrap the envelope and return ``data``; a business code other than 200
        raises its classified ProviderError. HTTP-level retries are ProviderHTTP's; a
        transient code inside an HTTP 200 body is retried here under the same policy (a
        create only for 429/455, which mean it was not processed)."""
        http = client or self._api
        for attempt in range(1, self.retry.attempts + 1):
            response = await http.request(
                method, path, classify=self._classify, idempotent=idempotent, **kwargs
            )
            envelope = _envelope(response)
            code = envelope.get("code")
            if code == 200:
                return envelope.get("data")
            error = self._classify_code(code, envelope, response, what)
            retryable = error.kind is ErrorKind.TRANSIENT and (
                idempotent or error.status_code in UNPROCESSED_CODES
            )
            if not retryable or attempt == self.retry.attempts:
                raise error
            delay = error.retry_after
            await asyncio.sleep(
                min(delay, self.retry.max_retry_after)
                if delay is not None
                else self.retry.backoff(attempt)
            )
        raise AssertionError("unreachable")

    def _classify(self, response: httpx.Response) -> ProviderError:
        """A non-2xx answer: the envelope's code when there is one, else the HTTP status."""
        try:
            body = response.json()
        except ValueError:
            body = None
        envelope = body if isinstance(body, dict) else {}
        code = envelope.get("code")
        if not isinstance(code, int) or isinstance(code, bool) or code == 200:
            code = response.status_code
        if not envelope.get("msg") and not envelope.get("message"):
            envelope = {**envelope, "msg": response.text[:200]}
        return self._classify_code(code, envelope, response, "request")

    def _classify_code(
        self, code: object, envelope: Mapping[str, Any], response: httpx.Response, what: str
    ) -> ProviderError:
        if not isinstance(code, int) or isinstance(code, bool):
            return _malformed(f"the {what} answer has no business code")
        text = _message(envelope)
        error = classify_code(code, text, retry_after=_retry_after(response))
        message = self._redact(f"{NAME}: {what}: {error}")
        return ProviderError(
            error.kind,
            message,
            user_reason=error.user_reason,
            retry_after=error.retry_after,
            status_code=error.status_code,
            user_code=error.user_code,
        )

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "[redacted]")


# --- request building -------------------------------------------------------------


def model_spec(model: str) -> KieModel:
    spec = MODELS.get(model)
    if spec is None:
        raise ProviderError(ErrorKind.INVALID_INPUT, f"{NAME}: unknown model {model!r}")
    return spec


def check_request(spec: KieModel, request: GenerationRequest) -> None:
    """Reject what the model rules out before anything is uploaded or paid for."""
    caps = spec.capabilities
    problems: list[str] = []
    if not request.prompt.strip():
        problems.append("the prompt is empty")
    if request.aspect_ratio is not None and request.aspect_ratio not in caps.aspect_ratios:
        problems.append(f"aspect ratio {request.aspect_ratio!r} is not supported")
    if request.num_outputs != 1:
        problems.append("one video per request")
    if len(request.references) > caps.max_reference_images:
        problems.append(f"at most {caps.max_reference_images} input images")
    if spec.requires_image and not request.references:
        problems.append("an input image is required")
    if request.seed is not None and not caps.seed:
        problems.append("a seed is not supported")
    if request.negative_prompt and not caps.negative_prompt:
        problems.append("a negative prompt is not supported")
    for key, value in request.extra.items():
        if key == "duration" and value == spec.fixed_duration:
            continue  # the model's one length, named by the catalog
        allowed = spec.extras.get(key)
        if allowed is None or not any(
            type(value) is type(choice) and value == choice for choice in allowed
        ):
            problems.append(f"{key}={value!r} is not accepted")
    if (
        spec.family is Family.RUNWAY
        and request.extra.get("duration") == 10
        and request.extra.get("resolution") == "1080p"
    ):
        problems.append("10 s videos cannot be 1080p")  # runway-api/generate-ai-video
    if problems:
        raise ProviderError(
            ErrorKind.INVALID_INPUT,
            f"{NAME}: {request.model}: {'; '.join(problems)}",
            user_reason=INVALID_USER_REASON.format(reason="; ".join(problems)),
            user_code="invalid_request",
        )


def build_body(
    request: GenerationRequest, image_urls: list[str], *, callback_url: str | None
) -> dict[str, Any]:
    """The create body of the model's family (shapes in the module docstring)."""
    spec = model_spec(request.model)
    extra = request.extra
    body: dict[str, Any]
    if spec.family is Family.VEO:
        body = {
            "prompt": request.prompt,
            "model": request.model,
            "aspect_ratio": request.aspect_ratio or "16:9",
            "generationType": "FIRST_AND_LAST_FRAMES_2_VIDEO" if image_urls else "TEXT_2_VIDEO",
        }
        if image_urls:
            body["imageUrls"] = image_urls
        if request.seed is not None:
            body["seeds"] = request.seed
    elif spec.family is Family.RUNWAY:
        body = {
            "prompt": request.prompt,
            "duration": extra.get("duration", 5),
            "quality": extra.get("resolution", "720p"),
            "waterMark": "",
        }
        if image_urls:
            body["imageUrl"] = image_urls[0]
        if request.aspect_ratio is not None or not image_urls:
            body["aspectRatio"] = request.aspect_ratio or "16:9"
    else:
        model_input: dict[str, Any] = {"prompt": request.prompt}
        if image_urls:
            model_input["image_url"] = image_urls[0]
        if request.model in (WAN_T2V, WAN_I2V):
            model_input["resolution"] = extra.get("resolution", "720p")
            if request.model == WAN_T2V:
                model_input["aspect_ratio"] = request.aspect_ratio or "16:9"
            elif request.aspect_ratio is not None:
                model_input["aspect_ratio"] = request.aspect_ratio
            if request.seed is not None:
                model_input["seed"] = request.seed
        elif request.model == KLING_I2V:
            model_input["duration"] = str(extra.get("duration", 5))  # a string: "5" | "10"
            if request.negative_prompt:
                model_input["negative_prompt"] = request.negative_prompt
        body = {"model": request.model, "input": model_input}
    if callback_url is not None:
        body["callBackUrl"] = callback_url
    return body


def _data_url(kind: str, data: bytes) -> str:
    return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"


_EXTENSIONS = MappingProxyType(
    {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}
)


# --- answer parsing ----------------------------------------------------------------


def classify_code(code: int, text: str, *, retry_after: float | None = None) -> ProviderError:
    """KIE's business code (of an answer or of a failed task) as a ProviderError."""
    shown = text.strip()[:300] or "no message"
    message = f"code {code}: {shown}"
    if code == 400:
        if _IMAGE_FETCH_TEXT.search(text):
            return ProviderError(
                ErrorKind.INVALID_INPUT, message, user_reason=IMAGE_FETCH_USER_REASON,
                status_code=code, user_code="image_fetch",
            )  # fmt: skip
        if _SAFETY_TEXT.search(text):
            return ProviderError(
                ErrorKind.SAFETY, message, user_reason=SAFETY_USER_REASON, status_code=code
            )
        return ProviderError(
            ErrorKind.INVALID_INPUT,
            message,
            user_reason=INVALID_USER_REASON.format(reason=shown),
            status_code=code,
            user_code="invalid_request",
        )
    if code in UNAVAILABLE_CODES:
        hint = {401: " (check KIE_API_KEY)", 402: " (out of credits)", 505: " (feature disabled)"}
        return ProviderError(
            ErrorKind.UNAVAILABLE,
            message + hint[code],
            user_reason=UNAVAILABLE_USER_REASON,
            status_code=code,
        )
    if code in TRANSIENT_CODES or code >= 502:
        return ProviderError(
            ErrorKind.TRANSIENT, message, retry_after=retry_after, status_code=code
        )
    if code == 451:
        return ProviderError(
            ErrorKind.INVALID_INPUT,
            message,
            user_reason=IMAGE_FETCH_USER_REASON,
            status_code=code,
            user_code="image_fetch",
        )
    if code == 501:
        return ProviderError(
            ErrorKind.INVALID_INPUT,
            message,
            user_reason=GENERATION_FAILED_USER_REASON,
            status_code=code,
            user_code="generation_failed",
        )
    return ProviderError(
        ErrorKind.INVALID_INPUT,
        message,
        user_reason=INVALID_USER_REASON.format(reason=shown),
        status_code=code,
        user_code="invalid_request",
    )


def parse_record(family: Family, data: object, task_id: str) -> KieTask:
    """Validate one record endpoint's ``data``; off-shape answers are TRANSIENT errors."""
    if not isinstance(data, dict):
        raise _malformed(f"task {task_id}: the record is not an object")
    progress = _progress(data.get("progress"))
    if family is Family.VEO:
        flag = data.get("successFlag")
        if not isinstance(flag, int) or isinstance(flag, bool) or flag not in _VEO_STATES:
            raise _malformed(f"task {task_id}: unknown successFlag {flag!r}")
        response = data.get("response")
        urls = _urls(response.get("resultUrls") if isinstance(response, dict) else None)
        return KieTask(
            task_id,
            family,
            _VEO_STATES[flag],
            str(flag),
            result_urls=urls,
            fail_code=_code(data.get("errorCode")) or (501 if flag == 3 else None),
            fail_message=_text(data.get("errorMessage")),
            progress=progress,
        )
    state = data.get("state")
    states = _RUNWAY_STATES if family is Family.RUNWAY else _MARKET_STATES
    if not isinstance(state, str) or state not in states:
        raise _malformed(f"task {task_id}: unknown state {state!r}")
    if family is Family.RUNWAY:
        info = data.get("videoInfo")
        video = info.get("videoUrl") if isinstance(info, dict) else None
        urls = _urls([video] if video else [])
        expired = data.get("expireFlag") == 1
    else:
        urls = _urls(_result_json(task_id, data.get("resultJson")))
        expired = False
    return KieTask(
        task_id,
        family,
        states[state],
        state,
        result_urls=urls,
        fail_code=_code(data.get("failCode")),
        fail_message=_text(data.get("failMsg")),
        expired=expired,
        progress=progress,
    )


def to_status(task: KieTask) -> TaskStatus:
    job = task.task_id
    if task.state is TaskState.SUCCEEDED:
        if task.expired:
            error = ProviderError(
                ErrorKind.INVALID_INPUT,
                f"{NAME}: task {job}: the result links have expired",
                user_reason=EXPIRED_USER_REASON,
                user_code="result_expired",
            )
            return TaskStatus(TaskState.FAILED, job, error=error)
        if not task.result_urls:
            error = _malformed(f"task {job} succeeded without result URLs")
            return TaskStatus(TaskState.FAILED, job, error=error)
        outputs = tuple(ResultRef(url=url, mime_type="video/mp4") for url in task.result_urls)
        return TaskStatus(TaskState.SUCCEEDED, job, progress=1.0, outputs=outputs)
    if task.state is TaskState.FAILED:
        code = task.fail_code
        if code is None:  # no code given: the wording decides (a safety refusal is a 400)
            code = 400 if _SAFETY_TEXT.search(task.fail_message) else 501
        error = classify_code(code, task.fail_message)
        return TaskStatus(
            TaskState.FAILED,
            job,
            error=ProviderError(
                error.kind,
                f"{NAME}: task {job} failed: {error}",
                user_reason=error.user_reason,
                status_code=error.status_code,
                user_code=error.user_code,
            ),
        )
    phase = _PHASES.get(task.provider_state, "generating")
    return TaskStatus(task.state, job, progress=task.progress, phase=phase)


def _result_json(task_id: str, value: object) -> list[str]:
    """Market ``resultJson``: a JSON string ``'{"resultUrls": [...]}'`` (empty until done)."""
    if value is None or value == "":
        return []
    if not isinstance(value, str):
        raise _malformed(f"task {task_id}: resultJson is not a string")
    try:
        parsed = json.loads(value)
    except ValueError:
        raise _malformed(f"task {task_id}: resultJson is not JSON") from None
    urls = parsed.get("resultUrls") if isinstance(parsed, dict) else None
    if not isinstance(urls, list):
        raise _malformed(f"task {task_id}: resultJson has no resultUrls")
    return urls


def _urls(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(
        isinstance(url, str) and urlsplit(url).scheme in ("http", "https") for url in value
    ):
        raise _malformed("result URLs are not http(s) URLs")
    return tuple(value)


def _code(value: object) -> int | None:
    """``failCode`` / ``errorCode``: an int, a numeric string, "" or null."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _progress(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if number != number or number < 0:  # NaN
        return None
    return min(number / 100 if number > 1 else number, 1.0)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _message(envelope: Mapping[str, Any]) -> str:
    # Most pages say "msg"; market/common/get-task-detail's example says "message".
    for key in ("msg", "message"):
        value = envelope.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _envelope(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise _malformed(f"HTTP {response.status_code} answer is not JSON") from None
    if not isinstance(body, dict) or "code" not in body:
        raise _malformed("the answer is not a {code, msg, data} envelope")
    return body


def _retry_after(response: httpx.Response) -> float | None:
    return parse_retry_after(response.headers.get("Retry-After"))


def _check_video(data: bytes) -> None:
    kind = sniff_media_type(data)
    if kind is None or not kind.startswith("video/"):
        raise ProviderError(ErrorKind.INVALID_INPUT, f"{NAME}: the result is not a video")


def _malformed(what: str) -> ProviderError:
    return ProviderError(ErrorKind.TRANSIENT, f"{NAME}: unexpected answer: {what}")


# --- callbacks -------------------------------------------------------------------


def kie_signature(key: bytes, task_id: str, timestamp: str) -> str:
    """base64(HMAC-SHA256(key, f"{taskId}.{timestamp}")) (common-api/webhook-verification)."""
    digest = hmac.new(key, f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_kie_signature(
    key: bytes,
    task_id: str,
    timestamp: str,
    signature: str,
    now: float,
    max_age: float = SIGNATURE_MAX_AGE,
) -> bool:
    """Whether ``X-Webhook-Signature`` signs ``task_id`` at ``X-Webhook-Timestamp``.

    Refused: a missing part, a timestamp that is not unix seconds, one more than
    ``max_age`` seconds from ``now`` (stale, or from the future), a signature that is not
    base64 of the right HMAC. The comparison is constant-time. Replays inside the window
    are the caller's to refuse (the task is woken once; the poll stays the authority)."""
    if not key or not task_id or not timestamp or not signature:
        return False
    if not timestamp.isascii() or not timestamp.isdigit():
        return False
    if abs(now - int(timestamp)) > max_age:
        return False
    try:
        presented = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = hmac.new(key, f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return hmac.compare_digest(expected, presented)


def callback_task_id(body: object) -> str | None:
    """The task id where each family's callback puts it, or None.

    Veo and Market: ``data.taskId``; Runway: ``data.task_id`` (snake case); Runway Aleph:
    ``taskId`` at the top level (runway-api/generate-ai-video-callbacks and
    aleph-video-generation-callbacks, veo3-api/generate-veo-3-video-callbacks)."""
    if not isinstance(body, dict):
        return None
    data = body.get("data")
    candidates: list[object] = []
    if isinstance(data, dict):
        candidates += [data.get("taskId"), data.get("task_id")]
    candidates.append(body.get("taskId"))
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return None
