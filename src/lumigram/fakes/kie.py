"""A fake of KIE.ai for tests and the sandbox: Veo 3, Runway, the Market API, file upload.

It follows the shapes read from docs.kie.ai (see ``lumigram.providers.kie`` and
``../shared/providers/kie/README.md``): every answer is the ``{code, msg, data}``
envelope whose business ``code`` is authoritative; ``fail_next(..., in_body=True)``
sends an error inside an HTTP 200 body the way KIE does.

Tasks live in memory and advance with the clock over ``run_seconds`` (or the next
``slow_next`` value): Runway ``wait`` -> ``queueing`` -> ``generating``, Market
``waiting`` -> ``queuing`` -> ``generating``, Veo ``successFlag`` 0, each ending in
success (1 / ``success``) or failure (2 or 3 / ``fail``). A prompt containing
``nsfw_marker`` ends with KIE's 400 content-policy text; ``fail_next_task`` makes the
next task end with any code. Results and uploads are served by the fake under
``/files/`` (no key, like KIE's CDN) and expire after ``result_ttl`` / ``upload_ttl``
seconds (``expire_results`` / ``expire_uploads`` at once).

A create carrying ``callBackUrl`` gets the family's documented callback body POSTed
there when the task ends (once: KIE documents no retries), with
``X-Webhook-Timestamp`` and ``X-Webhook-Signature`` when ``hmac_key`` is set.
``lose_callbacks`` drops them, ``early_callbacks`` sends them at create, before the
record endpoint shows the result. The Market callback body is not documented in the
pages read; the fake sends the record's ``data`` in the envelope.

The result video is ``video`` (bytes given by the test); without it the fake makes a
small MP4 with PyAV when PyAV is installed, and refuses to start otherwise.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import importlib
import io
import json
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import default as email_policy
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from lumigram.domain.media import sniff_media_type
from lumigram.fakes.base import CallbackPoster, FakeServer, sample_image
from lumigram.providers.kie import (
    BASE64_UPLOAD_PATH,
    CREATE_PATHS,
    CREDIT_PATH,
    KLING_I2V,
    RECORD_PATHS,
    STREAM_UPLOAD_PATH,
    WAN_I2V,
    WAN_T2V,
    Family,
    kie_signature,
)

# Default messages per code (the code tables of the docs.kie.ai endpoint pages).
MESSAGES = {
    400: "Your prompt was flagged by Website as violating content policies",
    401: "You do not have access permissions",
    402: "Insufficient credits",
    404: "Not found",
    408: "Upstream timeout, please try again later",
    422: "Validation error",
    429: "Rate limited",
    451: "Failed to fetch the image. Kindly verify any access limits set by you or your "
    "service provider",
    455: "Service unavailable: the system is under maintenance",
    500: "Internal error, please try again later",
    501: "Generation failed",
    505: "This feature is disabled",
}
SAFETY_MESSAGE = MESSAGES[400]
VEO_MODELS = ("veo3", "veo3_fast", "veo3_lite")
VEO_RATIOS = ("16:9", "9:16", "Auto")
VEO_TYPES = ("TEXT_2_VIDEO", "FIRST_AND_LAST_FRAMES_2_VIDEO", "REFERENCE_2_VIDEO")
RUNWAY_RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4")
WAN_RESOLUTIONS = ("480p", "580p", "720p")
DEFAULT_UPLOAD_TTL = 3 * 24 * 3600.0  # upload-file-base-64: "deleted after 3 days"
DEFAULT_RESULT_TTL = 14 * 24 * 3600.0  # runway-api/get-ai-video-details: "valid for 14 days"


@dataclass
class FakeTask:
    task_id: str
    family: Family
    model: str
    body: dict[str, Any]
    created: float  # monotonic
    created_at: datetime
    run_seconds: float
    fail_code: int | None = None
    fail_msg: str = ""
    callback_url: str | None = None
    completed: float | None = None  # monotonic, set when first seen finished
    expired: bool = False

    def elapsed(self) -> float:
        return time.monotonic() - self.created

    def finished(self) -> bool:
        return self.elapsed() >= self.run_seconds

    def phase(self) -> int:
        """0 submitted, 1 queued, 2 generating, 3 finished."""
        if self.finished():
            if self.completed is None:
                self.completed = time.monotonic()
            return 3
        fraction = self.elapsed() / max(self.run_seconds, 1e-9)
        return 0 if fraction < 0.2 else 1 if fraction < 0.4 else 2

    def remaining(self) -> float:
        return max(0.0, self.run_seconds - self.elapsed())


@dataclass
class Upload:
    data: bytes
    mime_type: str
    created: float
    expires: float


@dataclass
class PendingFault:
    code: int
    target: str  # "create", "poll", "upload" or "any"
    in_body: bool
    msg: str
    retry_after: int | None


@dataclass
class CallbackAttempt:
    task_id: str
    url: str
    headers: dict[str, str]
    body: bytes
    status: int | None  # None: the connection failed
    early: bool = False


@dataclass
class _Counters:
    lose: int = 0
    early: int = 0
    slow: deque[float] = field(default_factory=deque)
    task_failures: deque[tuple[int, str]] = field(default_factory=deque)


class FakeKie(FakeServer):
    provider = "kie"

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        video: bytes | None = None,
        run_seconds: float = 0.0,
        hmac_key: bytes | None = None,
        nsfw_marker: str = "nsfw",
        result_ttl: float = DEFAULT_RESULT_TTL,
        upload_ttl: float = DEFAULT_UPLOAD_TTL,
        balance: int = 1000,
        slow_seconds: float = 2.0,
    ) -> None:
        super().__init__(api_key=api_key, slow_seconds=slow_seconds)
        self.video = video
        self.run_seconds = run_seconds
        self.hmac_key = hmac_key
        self.nsfw_marker = nsfw_marker
        self.result_ttl = result_ttl
        self.upload_ttl = upload_ttl
        self.credits = balance  # GET /api/v1/chat/credit
        self.tasks: dict[str, FakeTask] = {}
        self.uploads: dict[str, Upload] = {}
        self.callback_attempts: list[CallbackAttempt] = []
        self.callbacks_lost: list[str] = []
        self.pending: deque[PendingFault] = deque()
        self._counters = _Counters()
        # KIE waits 15 s for an answer (the callback pages: "Timeout Setting: 15 seconds").
        self._callbacks = CallbackPoster(timeout=15)

    # --- test API -------------------------------------------------------------------
    def fail_next(
        self,
        code: int,
        *,
        on: str = "create",
        in_body: bool = False,
        msg: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """The next ``on`` request ("create", "poll", "upload" or "any") answers ``code``:
        with that HTTP status, or inside an HTTP 200 body when ``in_body``."""
        if on not in ("create", "poll", "upload", "any"):
            raise ValueError(f"unknown target {on!r}")
        self.pending.append(
            PendingFault(code, on, in_body, msg or MESSAGES.get(code, "Error"), retry_after)
        )

    def fail_next_task(self, code: int, msg: str | None = None) -> None:
        """The next task created runs and then fails with ``code`` (failCode/errorCode)."""
        self._counters.task_failures.append((code, msg or MESSAGES.get(code, "Error")))

    def slow_next(self, seconds: float) -> None:
        """The next task created takes ``seconds`` to finish (others: ``run_seconds``)."""
        self._counters.slow.append(seconds)

    def lose_callbacks(self, count: int = 1) -> None:
        """The callbacks of the next ``count`` tasks to end are never sent."""
        self._counters.lose += count

    def early_callbacks(self, count: int = 1) -> None:
        """The next ``count`` tasks created call back at once, claiming success, while
        their record still says they are running (and never call back again)."""
        self._counters.early += count

    def expire_results(self) -> None:
        """Every result link answers 404 from now on (Runway records show expireFlag 1)."""
        for task in self.tasks.values():
            task.expired = True

    def expire_uploads(self) -> None:
        for upload in self.uploads.values():
            upload.expires = 0.0

    def sign(self, task_id: str, timestamp: str) -> str:
        assert self.hmac_key is not None
        return kie_signature(self.hmac_key, task_id, timestamp)

    def delivered(self) -> list[CallbackAttempt]:
        return [a for a in self.callback_attempts if a.status is not None and a.status < 300]

    def result_url(self, task_id: str) -> str:
        return self.url(f"/files/results/{task_id}/video.mp4")

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        if self.video is None:
            self.video = await asyncio.to_thread(make_sample_mp4)
        if sniff_media_type(self.video) != "video/mp4":
            raise ValueError("FakeKie: video must be MP4 bytes")
        return await super().start(host, port)

    async def stop(self) -> None:
        await self._callbacks.close()
        await super().stop()

    # --- FakeServer overrides ------------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        app.router.add_post(CREATE_PATHS[Family.VEO], self._create_veo)
        app.router.add_post(CREATE_PATHS[Family.RUNWAY], self._create_runway)
        app.router.add_post(CREATE_PATHS[Family.MARKET], self._create_market)
        for family, path in RECORD_PATHS.items():
            app.router.add_get(path, self._record_handler(family))
        app.router.add_post(BASE64_UPLOAD_PATH, self._upload_base64)
        app.router.add_post(STREAM_UPLOAD_PATH, self._upload_stream)
        app.router.add_get(CREDIT_PATH, self._credit)
        app.router.add_get("/files/results/{task_id}/{name}", self._result_file)
        app.router.add_get("/files/uploads/{path:.+}", self._upload_file)

    def error_response(self, status: int, message: str, **extra: Any) -> web.Response:
        return web.json_response({"code": status, "msg": message, "data": None}, status=status)

    def malformed_response(self) -> web.Response:
        return web.Response(status=200, text="<html>gateway</html>", content_type="text/html")

    # --- creates --------------------------------------------------------------------------
    async def _create_veo(self, request: web.Request) -> web.Response:
        body, problem = await self._start(request, "create")
        if problem is not None:
            return problem
        prompt = body.get("prompt")
        model = body.get("model", "veo3_fast")
        # The docs show both "aspect_ratio" (OpenAPI) and "aspectRatio" (one curl example).
        ratio = body.get("aspect_ratio", body.get("aspectRatio", "16:9"))
        generation = body.get("generationType")
        images = body.get("imageUrls", [])
        problems: list[str] = []
        if not isinstance(prompt, str) or not prompt.strip():
            problems.append("prompt is required")
        if model not in VEO_MODELS:
            problems.append(f"model must be one of {', '.join(VEO_MODELS)}")
        if ratio not in VEO_RATIOS:
            problems.append("aspect_ratio must be 16:9, 9:16 or Auto")
        if not _is_url_list(images) or len(images) > 3:
            problems.append("imageUrls must be a list of at most 3 image URLs")
        if generation is not None and generation not in VEO_TYPES:
            problems.append(f"generationType must be one of {', '.join(VEO_TYPES)}")
        if generation == "TEXT_2_VIDEO" and images:
            problems.append("TEXT_2_VIDEO takes no imageUrls")
        if generation == "FIRST_AND_LAST_FRAMES_2_VIDEO" and not 1 <= len(images) <= 2:
            problems.append("FIRST_AND_LAST_FRAMES_2_VIDEO takes 1 or 2 imageUrls")
        if "seeds" in body and type(body["seeds"]) is not int:
            problems.append("seeds must be an integer")
        return self._created(Family.VEO, str(model), body, problems, images)

    async def _create_runway(self, request: web.Request) -> web.Response:
        body, problem = await self._start(request, "create")
        if problem is not None:
            return problem
        prompt = body.get("prompt")
        duration = body.get("duration")
        quality = body.get("quality")
        image = body.get("imageUrl")
        ratio = body.get("aspectRatio")
        problems: list[str] = []
        if not isinstance(prompt, str) or not prompt.strip():
            problems.append("prompt is required")
        if duration not in (5, 10) or type(duration) is not int:
            problems.append("duration must be 5 or 10")
        if quality not in ("720p", "1080p"):
            problems.append("quality must be 720p or 1080p")
        if duration == 10 and quality == "1080p":
            problems.append("a 10 second video cannot be 1080p")
        if image is None and ratio is None:
            problems.append("aspectRatio is required for text-to-video")
        if ratio is not None and ratio not in RUNWAY_RATIOS:
            problems.append(f"aspectRatio must be one of {', '.join(RUNWAY_RATIOS)}")
        images = [image] if image is not None else []
        if not _is_url_list(images):
            problems.append("imageUrl must be an http(s) URL")
        return self._created(Family.RUNWAY, "runway", body, problems, images)

    async def _create_market(self, request: web.Request) -> web.Response:
        body, problem = await self._start(request, "create")
        if problem is not None:
            return problem
        model = body.get("model")
        model_input = body.get("input")
        problems: list[str] = []
        images: list[Any] = []
        if model not in (WAN_T2V, WAN_I2V, KLING_I2V):
            problems.append(f"model {model!r} is not supported")
        if not isinstance(model_input, dict):
            problems.append("input is required")
            model_input = {}
        prompt = model_input.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            problems.append("input.prompt is required")
        if model in (WAN_I2V, KLING_I2V):
            images = [model_input.get("image_url")]
            if not _is_url_list(images):
                problems.append("input.image_url is required and must be an http(s) URL")
        if model in (WAN_T2V, WAN_I2V):
            if model_input.get("resolution", "720p") not in WAN_RESOLUTIONS:
                problems.append("input.resolution must be 480p, 580p or 720p")
            allowed = ("16:9", "9:16") if model == WAN_T2V else ("auto", "16:9", "9:16")
            if model_input.get("aspect_ratio", allowed[0]) not in allowed:
                problems.append(f"input.aspect_ratio must be one of {', '.join(allowed)}")
        if model == KLING_I2V and model_input.get("duration", "5") not in ("5", "10"):
            problems.append('input.duration must be "5" or "10"')
        return self._created(Family.MARKET, str(model), body, problems, images)

    async def _start(
        self, request: web.Request, target: str
    ) -> tuple[dict[str, Any], web.Response | None]:
        fault = self._take_fault(target)
        if fault is not None:
            return {}, fault
        try:
            body = await request.json()
        except ValueError:
            return {}, self._envelope(400, "The request body is not valid JSON")
        if not isinstance(body, dict):
            return {}, self._envelope(400, "The request body must be an object")
        return body, None

    def _created(
        self,
        family: Family,
        model: str,
        body: dict[str, Any],
        problems: list[str],
        images: list[Any],
    ) -> web.Response:
        if problems:
            return self._envelope(422, "; ".join(problems))
        callback = body.get("callBackUrl")
        if callback is not None and (
            not isinstance(callback, str) or urlsplit(callback).scheme not in ("http", "https")
        ):
            return self._envelope(422, "callBackUrl must be an http(s) URL")
        for image in images:
            if not self._fetchable(str(image)):
                return self._envelope(451, MESSAGES[451])
        prompt = body.get("prompt") or (body.get("input") or {}).get("prompt", "")
        fail_code, fail_msg = None, ""
        if self._counters.task_failures:
            fail_code, fail_msg = self._counters.task_failures.popleft()
        elif self.nsfw_marker.lower() in str(prompt).lower():
            fail_code, fail_msg = 400, SAFETY_MESSAGE
        run = self._counters.slow.popleft() if self._counters.slow else self.run_seconds
        prefix = {Family.VEO: "veo_task_", Family.RUNWAY: "", Family.MARKET: "task_"}[family]
        task = FakeTask(
            task_id=prefix + secrets.token_hex(16),
            family=family,
            model=model,
            body=body,
            created=time.monotonic(),
            created_at=datetime.now(UTC),
            run_seconds=run,
            fail_code=fail_code,
            fail_msg=fail_msg,
            callback_url=callback,
        )
        self.tasks[task.task_id] = task
        if callback is not None:
            early = self._counters.early > 0
            if early:
                self._counters.early -= 1
            self._callbacks.spawn(self._call_back(task, early=early))
        return self._envelope(200, "success", {"taskId": task.task_id})

    def _fetchable(self, url: str) -> bool:
        """KIE fetches input images; the fake checks its own uploads (others it accepts,
        so that nothing is ever fetched from outside)."""
        prefix = self.url("/files/uploads/")
        if not url.startswith(prefix):
            return True
        upload = self.uploads.get(url.removeprefix(prefix))
        return upload is not None and upload.expires > time.monotonic()

    # --- records -----------------------------------------------------------------------
    def _record_handler(self, family: Family) -> Any:
        async def handler(request: web.Request) -> web.Response:
            fault = self._take_fault("poll")
            if fault is not None:
                return fault
            task = self.tasks.get(request.query.get("taskId", ""))
            if task is None or task.family is not family:
                return self._envelope(422, "recordInfo is null")
            return self._envelope(200, "success", self.record(task))

        return handler

    def record(self, task: FakeTask) -> dict[str, Any]:
        """The ``data`` of the family's record endpoint for ``task``, now."""
        phase = task.phase()
        failed = phase == 3 and task.fail_code is not None
        succeeded = phase == 3 and not failed
        url = self.result_url(task.task_id)
        created = _stamp(task.created_at)
        completed = _stamp(datetime.now(UTC)) if phase == 3 else None
        if task.family is Family.VEO:
            flag = 0 if phase < 3 else 1 if succeeded else 3 if task.fail_code == 501 else 2
            return {
                "taskId": task.task_id,
                "paramJson": json.dumps(task.body),
                "completeTime": completed,
                "response": {
                    "taskId": task.task_id,
                    "resultUrls": [url],
                    "originUrls": [url],
                    "resolution": "720p",
                }
                if succeeded
                else None,
                "successFlag": flag,
                "errorCode": task.fail_code if failed else None,
                "errorMessage": task.fail_msg if failed else "",
                "createTime": created,
                "fallbackFlag": False,
            }
        if task.family is Family.RUNWAY:
            state = ("wait", "queueing", "generating")[phase] if phase < 3 else (
                "success" if succeeded else "fail"
            )  # fmt: skip
            return {
                "taskId": task.task_id,
                "parentTaskId": "",
                "generateParam": {
                    "prompt": task.body.get("prompt"),
                    "imageUrl": task.body.get("imageUrl", ""),
                    "expandPrompt": True,
                },
                "state": state,
                "generateTime": created,
                "videoInfo": {
                    "videoId": "vid_" + task.task_id[:12],
                    "taskId": task.task_id,
                    "videoUrl": url,
                    "imageUrl": self.url(f"/files/results/{task.task_id}/cover.png"),
                }
                if succeeded
                else None,
                "failCode": task.fail_code if failed else None,
                "failMsg": task.fail_msg if failed else "",
                "expireFlag": 1 if task.expired else 0,
            }
        state = ("waiting", "queuing", "generating")[phase] if phase < 3 else (
            "success" if succeeded else "fail"
        )  # fmt: skip
        millis = int(task.created_at.timestamp() * 1000)
        return {
            "taskId": task.task_id,
            "model": task.model,
            "state": state,
            "param": json.dumps(task.body),
            # A JSON *string* (market/common/get-task-detail).
            "resultJson": json.dumps({"resultUrls": [url]}) if succeeded else "",
            "failCode": str(task.fail_code) if failed else "",
            "failMsg": task.fail_msg if failed else "",
            "costTime": int(task.run_seconds * 1000) if phase == 3 else None,
            "completeTime": millis + int(task.run_seconds * 1000) if phase == 3 else None,
            "createTime": millis,
            "updateTime": int(time.time() * 1000),
        }

    def callback_body(self, task: FakeTask, *, claim_success: bool = False) -> dict[str, Any]:
        """The documented callback body of the task's family."""
        failed = task.fail_code is not None and not claim_success
        code = task.fail_code if failed else 200
        url = self.result_url(task.task_id)
        if task.family is Family.VEO:
            # veo3-api/generate-veo-3-video-callbacks
            data: dict[str, Any] = {"taskId": task.task_id, "fallbackFlag": False}
            data["info"] = (
                None if failed else {"resultUrls": [url], "originUrls": [url], "resolution": "720p"}
            )
            msg = task.fail_msg if failed else "Veo3.1 video generated successfully."
            return {"code": code, "msg": msg, "data": data}
        if task.family is Family.RUNWAY:
            # runway-api/generate-ai-video-callbacks: snake_case keys.
            return {
                "code": code,
                "msg": task.fail_msg if failed else "All generated successfully.",
                "data": {
                    "task_id": task.task_id,
                    "video_id": "" if failed else "vid_" + task.task_id[:12],
                    "video_url": "" if failed else url,
                    "image_url": ""
                    if failed
                    else self.url(f"/files/results/{task.task_id}/cover.png"),
                },
            }
        # Not documented in the pages read: the record's data in the envelope.
        data = self.record(task)
        if claim_success:
            data = {**data, "state": "success", "resultJson": json.dumps({"resultUrls": [url]})}
        return {"code": code, "msg": task.fail_msg if failed else "success", "data": data}

    # --- uploads --------------------------------------------------------------------------
    async def _upload_base64(self, request: web.Request) -> web.Response:
        fault = self._take_fault("upload")
        if fault is not None:
            return fault
        try:
            body = await request.json()
        except ValueError:
            return self._upload_envelope(400, "The request body is not valid JSON")
        if not isinstance(body, dict) or not isinstance(body.get("base64Data"), str):
            return self._upload_envelope(400, "base64Data is required")
        if not isinstance(body.get("uploadPath"), str) or not body["uploadPath"]:
            return self._upload_envelope(400, "uploadPath is required")
        raw = body["base64Data"]
        match = re.fullmatch(r"data:([\w/+.-]+);base64,(.*)", raw, re.DOTALL)
        encoded = match.group(2) if match else raw
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return self._upload_envelope(400, "base64Data is not valid base64")
        return self._stored(body["uploadPath"], body.get("fileName"), data)

    async def _upload_stream(self, request: web.Request) -> web.Response:
        fault = self._take_fault("upload")
        if fault is not None:
            return fault
        if not request.content_type.startswith("multipart/"):
            return self._upload_envelope(400, "multipart/form-data is required")
        # The base middleware has read the body already: parse the recorded bytes.
        fields = _form_fields(request.headers["Content-Type"], await request.read())
        upload = fields.get("file")
        path = fields.get("uploadPath")
        name = fields.get("fileName")
        if upload is None or upload[1] is None:
            return self._upload_envelope(400, "file is required")
        if path is None or not path[0]:
            return self._upload_envelope(400, "uploadPath is required")
        file_name = name[0].decode() if name is not None else upload[1]
        return self._stored(path[0].decode(), file_name, upload[0])

    def _stored(self, upload_path: str, file_name: object, data: bytes) -> web.Response:
        mime = sniff_media_type(data) or "application/octet-stream"
        name = file_name if isinstance(file_name, str) and file_name else secrets.token_hex(8)
        if "/" in name or ".." in upload_path.split("/"):
            return self._upload_envelope(400, "invalid fileName or uploadPath")
        key = f"{upload_path.strip('/')}/{name}"
        now = time.monotonic()
        self.uploads[key] = Upload(data, mime, now, now + self.upload_ttl)  # same name: overwrite
        # file-upload-api/upload-file-base-64 and upload-file-stream: the success shape.
        return web.json_response(
            {
                "success": True,
                "code": 200,
                "msg": "File uploaded successfully",
                "data": {
                    "fileName": name,
                    "filePath": key,
                    "downloadUrl": self.url(f"/files/uploads/{key}"),
                    "fileSize": len(data),
                    "mimeType": mime,
                    "uploadedAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                },
            }
        )

    def _upload_envelope(self, code: int, msg: str) -> web.Response:
        return web.json_response(
            {"success": False, "code": code, "msg": msg, "data": None}, status=code
        )

    # --- files -----------------------------------------------------------------------------
    async def _result_file(self, request: web.Request) -> web.Response:
        task = self.tasks.get(request.match_info["task_id"])
        name = request.match_info["name"]
        if (
            task is None
            or task.phase() < 3
            or task.fail_code is not None
            or task.expired
            or name not in ("video.mp4", "cover.png")
        ):
            return web.Response(status=404, text="Not Found")
        assert task.completed is not None
        if time.monotonic() - task.completed > self.result_ttl:
            return web.Response(status=404, text="Not Found")
        if name == "cover.png":
            data = await asyncio.to_thread(sample_image, 32, 18)
            return web.Response(body=data, content_type="image/png")
        assert self.video is not None
        return web.Response(body=self.video, content_type="video/mp4")

    async def _upload_file(self, request: web.Request) -> web.Response:
        upload = self.uploads.get(request.match_info["path"])
        if upload is None or upload.expires <= time.monotonic():
            return web.Response(status=404, text="Not Found")
        return web.Response(body=upload.data, content_type=upload.mime_type)

    async def _credit(self, request: web.Request) -> web.Response:
        fault = self._take_fault("any")
        if fault is not None:
            return fault
        return self._envelope(200, "success", self.credits)

    # --- callbacks ---------------------------------------------------------------------------
    async def _call_back(self, task: FakeTask, *, early: bool) -> None:
        if not early:
            await asyncio.sleep(task.remaining() + 0.005)
            task.phase()  # stamps completed
            if self._counters.lose > 0:
                self._counters.lose -= 1
                self.callbacks_lost.append(task.task_id)
                return
        assert task.callback_url is not None
        body = json.dumps(self.callback_body(task, claim_success=early)).encode()
        headers = {"Content-Type": "application/json"}
        if self.hmac_key is not None:
            timestamp = str(int(time.time()))
            headers["X-Webhook-Timestamp"] = timestamp
            headers["X-Webhook-Signature"] = self.sign(task.task_id, timestamp)
        status = await self._callbacks.post(task.callback_url, body, headers)
        self.callback_attempts.append(
            CallbackAttempt(task.task_id, task.callback_url, headers, body, status, early)
        )

    # --- helpers ---------------------------------------------------------------------------
    def _take_fault(self, target: str) -> web.Response | None:
        for index, fault in enumerate(self.pending):
            if fault.target in (target, "any"):
                del self.pending[index]
                response = (
                    self._envelope(fault.code, fault.msg)
                    if fault.in_body
                    else self.error_response(fault.code, fault.msg)
                )
                if fault.retry_after is not None:
                    response.headers["Retry-After"] = str(fault.retry_after)
                return response
        return None

    @staticmethod
    def _envelope(code: int, msg: str, data: Any = None) -> web.Response:
        """KIE's envelope in an HTTP 200 answer: the business code decides."""
        return web.json_response({"code": code, "msg": msg, "data": data})


def _form_fields(content_type: str, body: bytes) -> dict[str, tuple[bytes, str | None]]:
    """multipart/form-data fields as name -> (bytes, file name or None)."""
    message = BytesParser(policy=email_policy).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields: dict[str, tuple[bytes, str | None]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = (payload, part.get_filename())
    return fields


def _is_url_list(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(item, str) and urlsplit(item).scheme in ("http", "https") for item in value
    )


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")  # "2025-06-06 10:30:00" in the Veo example


def make_sample_mp4(seconds: float = 1.0, width: int = 64, height: int = 36) -> bytes:
    """A small real H.264/MPEG-4 MP4 made with PyAV; RuntimeError when PyAV is missing
    (give ``FakeKie(video=...)`` instead)."""
    try:
        av: Any = importlib.import_module("av")
    except ImportError as exc:
        raise RuntimeError("FakeKie: PyAV is not installed; pass video=<mp4 bytes>") from exc
    buffer = io.BytesIO()
    fps = 12
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(max(1, int(seconds * fps))):
            image = _frame_image(width, height, index)
            for packet in stream.encode(av.VideoFrame.from_image(image)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def _frame_image(width: int, height: int, index: int) -> Any:
    from PIL import Image

    return Image.new("RGB", (width, height), ((index * 20) % 256, 80, 160))
