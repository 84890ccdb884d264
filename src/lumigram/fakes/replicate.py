"""A fake of Replicate's predictions API for tests and the sandbox.

Predictions live in memory and advance with the clock: ``starting`` for the
first fifth of ``run_seconds``, then ``processing`` with tqdm-style progress
lines in ``logs``, then ``succeeded`` (or ``failed`` with Replicate's NSFW
text when the prompt contains ``nsfw_marker``). Output files are served by the
fake itself under ``/files/``. It accepts exactly the models in
``lumigram.providers.replicate.MODELS`` and validates inputs against them.

A prediction created with a ``webhook`` gets the finished prediction POSTed there
once it ends (``webhook_events_filter`` other than ``completed`` is not sent),
signed as Replicate signs (``webhook-id``, ``webhook-timestamp``,
``webhook-signature: v1,<base64 HMAC-SHA256>`` under ``webhook_secret``, which
``GET /v1/webhooks/default/secret`` gives), and sent again on a non-2xx answer or
a broken connection, a few times. ``lose_callbacks`` and ``callback_delay`` let a
test lose or delay them; ``callback_attempts`` records every POST.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from lumigram.fakes.base import CallbackPoster, FakeServer, sample_image
from lumigram.providers.replicate import MODELS, ReplicateModel

NSFW_ERROR = "NSFW content detected. Try running it again, or try a different prompt."
_PREFER_WAIT = re.compile(r"^\s*wait(?:=(\d+))?\s*$")
_MAX_WAIT = 60
_TITLES = {
    400: "Bad request",
    401: "Unauthenticated",
    402: "Insufficient credit",
    404: "Not found",
    422: "Input validation failed",
    429: "Request was throttled",
    500: "Internal server error",
    503: "Service unavailable",
}
_PIL_FORMATS = {"webp": "WEBP", "png": "PNG", "jpg": "JPEG"}
_CONTENT_TYPES = {"webp": "image/webp", "png": "image/png", "jpg": "image/jpeg"}
_TERMINAL = frozenset({"succeeded", "failed", "canceled"})
# Pauses before the second, third and fourth try of a callback (Replicate backs off
# over minutes; a test needs less).
CALLBACK_RETRY_DELAYS = (0.1, 0.3, 1.0)


@dataclass
class FakePrediction:
    id: str
    model: str
    input: dict[str, Any]
    created: float  # monotonic
    created_at: str
    run_seconds: float
    outputs: int
    extension: str
    list_output: bool
    unsafe: bool
    canceled: bool = False
    webhook: str | None = None
    webhook_events: tuple[str, ...] = ()
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # set when cancelled

    def elapsed(self) -> float:
        return time.monotonic() - self.created

    def status(self) -> str:
        if self.canceled:
            return "canceled"
        elapsed = self.elapsed()
        if elapsed >= self.run_seconds:
            return "failed" if self.unsafe else "succeeded"
        return "starting" if elapsed < self.run_seconds / 5 else "processing"

    def remaining(self) -> float:
        return max(0.0, self.run_seconds - self.elapsed())


@dataclass
class CallbackAttempt:
    """One POST of a prediction's callback; ``status`` None: the connection failed."""

    prediction_id: str
    url: str
    headers: dict[str, str]
    body: bytes
    status: int | None


class FakeReplicate(FakeServer):
    provider = "replicate"

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        run_seconds: float = 0.0,
        nsfw_marker: str = "nsfw",
        slow_seconds: float = 2.0,
    ) -> None:
        super().__init__(api_key=api_key, slow_seconds=slow_seconds)
        self.run_seconds = run_seconds
        self.nsfw_marker = nsfw_marker
        self.nsfw_error = NSFW_ERROR
        self.predictions: dict[str, FakePrediction] = {}
        # The longest ``Prefer: wait`` honoured (Replicate: 60); 0 answers at once.
        self.max_wait = _MAX_WAIT
        self.webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        self.callback_delay = 0.0  # seconds between the end and the first POST
        self.callback_retry_delays = CALLBACK_RETRY_DELAYS
        self.callback_attempts: list[CallbackAttempt] = []
        self.callbacks_lost: list[str] = []  # prediction ids whose callback was never sent
        self._lose_callbacks = 0
        self._callbacks = CallbackPoster(timeout=10)

    # --- test API ---------------------------------------------------------------
    def lose_callbacks(self, count: int = 1) -> None:
        """The callbacks of the next ``count`` predictions to end are never sent."""
        self._lose_callbacks += count

    def sign(self, webhook_id: str, timestamp: str, body: bytes) -> str:
        """The ``webhook-signature`` Replicate sends (``v1,<base64>``)."""
        key = base64.b64decode(self.webhook_secret.removeprefix("whsec_"))
        digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256)
        return "v1," + base64.b64encode(digest.digest()).decode()

    def delivered(self) -> list[CallbackAttempt]:
        """The callbacks that were answered 2xx."""
        return [a for a in self.callback_attempts if a.status is not None and a.status < 300]

    async def stop(self) -> None:
        await self._callbacks.close()
        await super().stop()

    # --- FakeServer overrides -------------------------------------------------
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/models/{owner}/{name}/predictions", self._create)
        app.router.add_get("/v1/predictions/{id}", self._get)
        app.router.add_post("/v1/predictions/{id}/cancel", self._cancel)
        app.router.add_get("/v1/webhooks/default/secret", self._secret)
        app.router.add_get("/files/{id}/{file}", self._file)

    def error_response(self, status: int, message: str, **extra: Any) -> web.Response:
        """Replicate answers errors as RFC 7807 problem details."""
        body = {"title": _TITLES.get(status, "Error"), "detail": message, "status": status}
        return web.json_response(
            {**body, **extra}, status=status, content_type="application/problem+json"
        )

    def malformed_response(self) -> web.Response:
        # JSON, but not a prediction: a wrong type for id, an unknown status, no urls.
        return web.json_response({"id": 12345, "status": "warming", "output": {"x": 1}})

    # --- handlers -------------------------------------------------------------
    async def _create(self, request: web.Request) -> web.Response:
        model = f"{request.match_info['owner']}/{request.match_info['name']}"
        spec = MODELS.get(model)
        if spec is None:
            return self.error_response(404, "Not found.")
        try:
            body = await request.json()
        except ValueError:
            return self.error_response(400, "The request body is not valid JSON.")
        model_input = body.get("input") if isinstance(body, dict) else None
        if not isinstance(model_input, dict):
            return self._invalid([("input", "required", "input is required and must be an object")])
        problems = validate_input(spec, model_input)
        if problems:
            return self._invalid(problems)

        webhook = body.get("webhook")
        events = body.get("webhook_events_filter", ["start", "output", "logs", "completed"])
        if webhook is not None and (
            not isinstance(webhook, str) or not webhook.startswith(("http://", "https://"))
        ):
            return self._invalid([("webhook", "format", "webhook must be an http(s) URL")])
        if not isinstance(events, list) or not all(
            event in ("start", "output", "logs", "completed") for event in events
        ):
            return self._invalid(
                [("webhook_events_filter", "enum", "events must be start, output, logs, completed")]
            )
        prediction = self._new_prediction(model, spec, model_input)
        if webhook is not None:
            prediction.webhook, prediction.webhook_events = webhook, tuple(events)
            if "completed" in events:
                self._callbacks.spawn(self._call_back_when_done(prediction))
        wait = min(_prefer_wait(request.headers.get("Prefer")), self.max_wait)
        if wait and prediction.remaining() > 0:
            await asyncio.sleep(min(wait, prediction.remaining()))
        finished = prediction.status() in _TERMINAL
        return web.json_response(self._render(prediction), status=201 if finished else 202)

    async def _get(self, request: web.Request) -> web.Response:
        prediction = self.predictions.get(request.match_info["id"])
        if prediction is None:
            return self.error_response(404, "Not found.")
        return web.json_response(self._render(prediction))

    async def _cancel(self, request: web.Request) -> web.Response:
        prediction = self.predictions.get(request.match_info["id"])
        if prediction is None:
            return self.error_response(404, "Not found.")
        if prediction.status() not in _TERMINAL:
            prediction.canceled = True
            prediction.ended.set()
        return web.json_response(self._render(prediction))

    async def _secret(self, request: web.Request) -> web.Response:
        return web.json_response({"key": self.webhook_secret})

    async def _file(self, request: web.Request) -> web.Response:
        prediction = self.predictions.get(request.match_info["id"])
        match = re.fullmatch(r"out-(\d+)\.(\w+)", request.match_info["file"])
        if (
            prediction is None
            or prediction.status() != "succeeded"
            or match is None
            or int(match.group(1)) >= prediction.outputs
            or match.group(2) != prediction.extension
        ):
            return self.error_response(404, "Not found.")
        index = int(match.group(1))
        data = await asyncio.to_thread(
            sample_image, fmt=_PIL_FORMATS[prediction.extension], seed=index + 1
        )
        return web.Response(body=data, content_type=_CONTENT_TYPES[prediction.extension])

    # --- callbacks --------------------------------------------------------------
    async def _call_back_when_done(self, prediction: FakePrediction) -> None:
        while prediction.status() not in _TERMINAL:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    prediction.ended.wait(), timeout=max(prediction.remaining(), 0.005)
                )
        if self.callback_delay:
            await asyncio.sleep(self.callback_delay)
        if self._lose_callbacks > 0:
            self._lose_callbacks -= 1
            self.callbacks_lost.append(prediction.id)
            return
        assert prediction.webhook is not None
        body = json.dumps(self._render(prediction)).encode()
        webhook_id = "msg_" + secrets.token_hex(12)  # the same on every retry
        for delay in (0.0, *self.callback_retry_delays):
            await asyncio.sleep(delay)
            timestamp = str(int(time.time()))  # each try is signed anew
            headers = {
                "content-type": "application/json",
                "webhook-id": webhook_id,
                "webhook-timestamp": timestamp,
                "webhook-signature": self.sign(webhook_id, timestamp, body),
            }
            status = await self._callbacks.post(prediction.webhook, body, headers)
            self.callback_attempts.append(
                CallbackAttempt(prediction.id, prediction.webhook, headers, body, status)
            )
            if status is not None and 200 <= status < 300:
                return

    # --- helpers --------------------------------------------------------------
    def _new_prediction(
        self, model: str, spec: ReplicateModel, model_input: dict[str, Any]
    ) -> FakePrediction:
        prediction_id = secrets.token_hex(13)
        outputs = 1
        if spec.multi_output and model_input.get("sequential_image_generation") == "auto":
            outputs = int(model_input.get("max_images", 15))
        extension = str(model_input.get("output_format", spec.defaults.get("output_format", "jpg")))
        prediction = FakePrediction(
            id=prediction_id,
            model=model,
            input=model_input,
            created=time.monotonic(),
            created_at=_now_iso(),
            run_seconds=self.run_seconds,
            outputs=outputs,
            extension=extension,
            list_output=spec.multi_output,
            unsafe=self.nsfw_marker.lower() in str(model_input.get("prompt", "")).lower(),
        )
        self.predictions[prediction_id] = prediction
        return prediction

    def _render(self, prediction: FakePrediction) -> dict[str, Any]:
        status = prediction.status()
        api = self.url(f"/v1/predictions/{prediction.id}")
        body: dict[str, Any] = {
            "id": prediction.id,
            "model": prediction.model,
            "version": "hidden",
            "input": prediction.input,
            "logs": self._logs(prediction, status),
            "output": None,
            "data_removed": False,
            "error": None,
            "status": status,
            "source": "api",
            "created_at": prediction.created_at,
            "urls": {
                "get": api,
                "cancel": f"{api}/cancel",
                "web": f"https://replicate.com/p/{prediction.id}",
            },
        }
        if status != "starting":
            body["started_at"] = prediction.created_at
        if status in _TERMINAL:
            body["completed_at"] = _now_iso()
            body["metrics"] = {"predict_time": prediction.run_seconds}
        if status == "succeeded":
            urls = [
                self.url(f"/files/{prediction.id}/out-{index}.{prediction.extension}")
                for index in range(prediction.outputs)
            ]
            body["output"] = urls if prediction.list_output else urls[0]
        elif status == "failed":
            body["error"] = self.nsfw_error
        return body

    @staticmethod
    def _logs(prediction: FakePrediction, status: str) -> str:
        if status == "starting":
            return ""
        if status == "processing":
            fraction = min(prediction.elapsed() / max(prediction.run_seconds, 1e-9), 0.99)
        else:
            fraction = 1.0
        steps = 20
        done = int(fraction * steps)
        lines = ["Using seed: 1234"]
        for step in range(done + 1):
            percent = step * 100 // steps
            bar = "█" * (step // 2) + " " * (10 - step // 2)
            lines.append(f"{percent:3d}%|{bar}| {step}/{steps} [00:00<00:00, 9.9it/s]")
        return "\n".join(lines) + "\n"

    def _invalid(self, problems: list[tuple[str, str, str]]) -> web.Response:
        detail = "\n".join(f"- input.{field}: {description}" for field, _, description in problems)
        invalid_fields = [
            {"type": kind, "field": f"input.{field}", "description": description}
            for field, kind, description in problems
        ]
        return self.error_response(422, detail, invalid_fields=invalid_fields)


def validate_input(spec: ReplicateModel, model_input: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Problems as (field, type, description), the way Replicate lists ``invalid_fields``."""
    caps = spec.capabilities
    problems: list[tuple[str, str, str]] = []
    prompt = model_input.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        problems.append(("prompt", "required", "prompt is required"))
    _enum(problems, model_input, "aspect_ratio", caps.aspect_ratios)
    if spec.output_format_input:
        _enum(problems, model_input, "output_format", caps.output_formats)
    if caps.safety_levels:
        _enum(problems, model_input, "safety_tolerance", caps.safety_levels)
    for key, allowed in spec.extras.items():
        _enum(problems, model_input, key, allowed)
    if "seed" in model_input and type(model_input["seed"]) is not int:
        problems.append(("seed", "type", "Invalid type. Expected: integer"))
    images = model_input.get("image_input", [])
    if not isinstance(images, list) or not all(_is_image_ref(item) for item in images):
        problems.append(("image_input", "format", "each item must be an image URL or data URI"))
    elif len(images) > caps.max_reference_images:
        problems.append(
            (
                "image_input",
                "array_max_items",
                f"Array must have at most {caps.max_reference_images} items",
            )
        )
    if spec.multi_output and "max_images" in model_input:
        max_images = model_input["max_images"]
        if type(max_images) is not int or not 1 <= max_images <= caps.max_outputs:
            problems.append(
                ("max_images", "number_lte", f"Must be between 1 and {caps.max_outputs}")
            )
        elif (
            spec.max_total_images is not None
            and isinstance(images, list)
            and (len(images) + max_images > spec.max_total_images)
        ):
            problems.append(
                (
                    "max_images",
                    "number_lte",
                    f"input and generated images cannot exceed {spec.max_total_images}",
                )
            )
    return problems


def _enum(
    problems: list[tuple[str, str, str]],
    model_input: dict[str, Any],
    key: str,
    allowed: tuple[Any, ...],
) -> None:
    if key not in model_input:
        return
    value = model_input[key]
    if not any(type(value) is type(choice) and value == choice for choice in allowed):
        shown = ", ".join(repr(choice) for choice in allowed[:12])
        problems.append((key, "enum", f"{key} must be one of the following: {shown}"))


def _is_image_ref(item: object) -> bool:
    if not isinstance(item, str):
        return False
    if item.startswith(("http://", "https://")):
        return True
    match = re.fullmatch(r"data:image/(?:png|jpeg|webp|gif);base64,([A-Za-z0-9+/=]+)", item)
    if match is None:
        return False
    try:
        base64.b64decode(match.group(1), validate=True)
    except binascii.Error:
        return False
    return True


def _prefer_wait(header: str | None) -> int:
    """Seconds from ``Prefer: wait=n`` (plain ``wait`` is the 60 s maximum); 0 without it."""
    if header is None:
        return 0
    match = _PREFER_WAIT.match(header)
    if match is None:
        return 0
    return min(int(match.group(1)), _MAX_WAIT) if match.group(1) else _MAX_WAIT


def _now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
