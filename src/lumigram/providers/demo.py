"""An offline, deterministic provider that paints abstract landscapes: the ``demo`` provider.

It lets the bot run end to end with no API key (the demo model is always
offered) and lets tests drive every path of the job service. Model:
``demo-art``. The picture (a sky gradient, a sun with a glow, soft bokeh
circles and layered hills, with a small "DEMO" badge) is derived from a hash
of the prompt, negative prompt and seed; output ``i`` of a request uses seed
``seed + i`` (seed ``None`` counts as 0). Same request -> identical bytes.
Reference images are blended into the picture, so they visibly change it.
``prompt_upsampling``, ``safety_level`` and ``extra`` are accepted and ignored.

Jobs are asynchronous: ``submit`` returns RUNNING with a job id, and each
``poll`` advances the job. A job finishes once it has been polled ``steps``
times *and* ``latency`` seconds have passed since submit; ``progress`` is the
smaller of those two fractions. With ``steps=0`` and ``latency=0`` ``submit``
finishes at once.

Directives, written anywhere in the prompt (case-insensitive) and removed
before the prompt is drawn:

``[demo:slow=SECONDS]``
    this job takes at least SECONDS of wall-clock time.
``[demo:fail=transient]`` / ``[demo:fail=unavailable]`` / ``[demo:fail=invalid]``
    the job ends FAILED with a ``ProviderError`` of kind TRANSIENT (with
    ``retry_after=1``), UNAVAILABLE or INVALID_INPUT.
``[demo:reject]``
    the job ends FAILED with kind SAFETY and a ``user_reason``.
``@submit`` suffix, e.g. ``[demo:fail=transient@submit]``, ``[demo:reject@submit]``
    ``submit`` raises the ``ProviderError`` instead of the job failing later.

An unknown or malformed ``[demo:...]`` directive makes ``submit`` raise
INVALID_INPUT. The constructor flags ``fail`` (any ``ErrorKind``; SAFETY acts
like ``[demo:reject]``) and ``fail_on_submit`` apply the same to every job;
a directive in the prompt wins over them.

Unknown job ids: jobs live in memory (the newest ``max_jobs`` are kept), so
after a restart ``poll`` cannot know a job. It answers FAILED with a
TRANSIENT error, and the job service re-submits: the demo is deterministic, so
the re-submitted job yields the very same images. Job ids stay short and
carry no request data (reference images could not be encoded in them anyway).
"""

from __future__ import annotations

import asyncio
import colorsys
import hashlib
import math
import random
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

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
from lumigram.imaging import InvalidImage, encode, normalize_format, open_image, probe_image

__all__ = ["DEMO_CAPABILITIES", "DEMO_MODEL", "DemoProvider", "image_size", "render_art"]

DEMO_MODEL: Final = "demo-art"
DEMO_CAPABILITIES: Final = Capabilities(
    outputs=frozenset({OutputKind.IMAGE}),
    max_reference_images=4,
    aspect_ratios=("1:1", "3:2", "2:3", "4:3", "3:4", "16:9", "9:16"),
    output_formats=("png", "jpeg", "webp"),
    max_outputs=4,
    seed=True,
    negative_prompt=True,
    prompt_upsampling=True,  # accepted; it does not change the picture
)

_MIME: Final = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_MAX_SLOW_SECONDS: Final = 3600.0
_DIRECTIVE: Final = re.compile(
    r"\[demo:\s*([a-z_]+)\s*(?:=\s*([^\]@]*?))?\s*(?:@\s*([a-z]+))?\s*\]", re.IGNORECASE
)
_FAIL_KINDS: Final = {
    "transient": ErrorKind.TRANSIENT,
    "unavailable": ErrorKind.UNAVAILABLE,
    "invalid": ErrorKind.INVALID_INPUT,
    "invalid_input": ErrorKind.INVALID_INPUT,
}


def _invalid(message: str) -> ProviderError:
    return ProviderError(ErrorKind.INVALID_INPUT, f"demo: {message}", user_reason=message)


def _simulated_error(kind: ErrorKind) -> ProviderError:
    if kind is ErrorKind.SAFETY:
        return ProviderError(
            ErrorKind.SAFETY,
            "demo: prompt rejected by the simulated safety filter",
            user_reason="The demo safety filter was asked to refuse this prompt.",
        )
    if kind is ErrorKind.TRANSIENT:
        return ProviderError(
            ErrorKind.TRANSIENT, "demo: simulated transient failure", retry_after=1.0
        )
    if kind is ErrorKind.UNAVAILABLE:
        return ProviderError(ErrorKind.UNAVAILABLE, "demo: simulated outage (as if out of credit)")
    return _invalid("the demo provider was asked to treat this request as invalid")


@dataclass(frozen=True, slots=True)
class _Directives:
    prompt: str  # with the directives removed
    slow: float = 0.0
    fail: ErrorKind | None = None
    fail_on_submit: bool | None = None  # None: not said in the prompt


def _parse_directives(prompt: str) -> _Directives:
    slow = 0.0
    fail: ErrorKind | None = None
    on_submit: bool | None = None
    for match in _DIRECTIVE.finditer(prompt):
        key, value, stage = match.group(1).lower(), match.group(2), match.group(3)
        if stage is not None and stage.lower() not in ("submit", "run"):
            raise _invalid(f"unknown demo directive stage {match.group(0)!r}")
        if key == "slow":
            try:
                slow = float(value or "")
            except ValueError:
                raise _invalid(
                    f"bad demo directive {match.group(0)!r}: slow needs seconds"
                ) from None
            if not 0 <= slow <= _MAX_SLOW_SECONDS:
                raise _invalid(f"bad demo directive {match.group(0)!r}: 0..{_MAX_SLOW_SECONDS:g} s")
            continue
        if key == "fail":
            kind = _FAIL_KINDS.get((value or "").strip().lower())
            if kind is None:
                raise _invalid(
                    f"bad demo directive {match.group(0)!r}: use transient, unavailable or invalid"
                )
            fail = kind
        elif key == "reject" and not value:
            fail = ErrorKind.SAFETY
        else:
            raise _invalid(f"unknown demo directive {match.group(0)!r}")
        on_submit = stage is not None and stage.lower() == "submit"
    cleaned = " ".join(_DIRECTIVE.sub(" ", prompt).split())
    return _Directives(prompt=cleaned, slow=slow, fail=fail, fail_on_submit=on_submit)


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything that determines a job's pictures."""

    prompt: str
    negative_prompt: str
    aspect_ratio: str
    output_format: str
    num_outputs: int
    seed: int
    references: tuple[bytes, ...]


@dataclass(slots=True)
class _Job:
    plan: _Plan
    started: float
    latency: float
    steps: int
    failure: ProviderError | None
    polls: int = 0
    final: TaskStatus | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class DemoProvider:
    """Offline ``ImageProvider`` for the ``demo-art`` model; see the module docstring."""

    name = "demo"

    def __init__(
        self,
        *,
        latency: float = 0.0,
        steps: int = 4,
        long_side: int = 1024,
        fail: ErrorKind | None = None,
        fail_on_submit: bool = False,
        max_jobs: int = 512,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if latency < 0 or steps < 0:
            raise ValueError("latency and steps must not be negative")
        if not 16 <= long_side <= 4096:
            raise ValueError("long_side must be between 16 and 4096")
        self.latency = latency
        self.steps = steps
        self.long_side = long_side
        self.fail = fail
        self.fail_on_submit = fail_on_submit
        self._max_jobs = max(1, max_jobs)
        self._clock = clock
        self._jobs: OrderedDict[str, _Job] = OrderedDict()

    def capabilities(self, model: str) -> Capabilities:
        if model != DEMO_MODEL:
            raise KeyError(model)
        return DEMO_CAPABILITIES

    def models(self) -> Mapping[str, Capabilities]:
        return {DEMO_MODEL: DEMO_CAPABILITIES}

    async def submit(self, request: GenerationRequest) -> TaskStatus:
        directives = _parse_directives(request.prompt)
        plan = self._plan(request, directives.prompt)
        await asyncio.to_thread(_check_references, plan.references)

        fail = directives.fail if directives.fail is not None else self.fail
        on_submit = (
            directives.fail_on_submit
            if directives.fail_on_submit is not None
            else self.fail_on_submit
        )
        if fail is not None and on_submit:
            raise _simulated_error(fail)

        job_id = f"demo-{uuid.uuid4().hex}"
        self._jobs[job_id] = _Job(
            plan=plan,
            started=self._clock(),
            latency=max(self.latency, directives.slow),
            steps=self.steps,
            failure=_simulated_error(fail) if fail is not None else None,
        )
        while len(self._jobs) > self._max_jobs:
            self._jobs.popitem(last=False)
        return await self._advance(job_id, count_poll=False)

    async def poll(self, provider_job_id: str) -> TaskStatus:
        if provider_job_id not in self._jobs:
            return TaskStatus(
                TaskState.FAILED,
                provider_job_id=provider_job_id,
                error=ProviderError(
                    ErrorKind.TRANSIENT,
                    f"demo: unknown job {provider_job_id!r} (demo jobs live in memory and are "
                    "lost on restart); submit it again, the result will be identical",
                ),
            )
        return await self._advance(provider_job_id, count_poll=True)

    async def fetch(self, ref: ResultRef) -> bytes:
        if ref.data is None:
            raise _invalid("demo outputs are inline; there is nothing to download")
        return ref.data

    async def cancel(self, provider_job_id: str) -> None:
        job = self._jobs.get(provider_job_id)
        if job is not None and job.final is None:
            job.final = TaskStatus(TaskState.CANCELLED, provider_job_id=provider_job_id)

    async def aclose(self) -> None:
        self._jobs.clear()

    # --- internals -----------------------------------------------------------

    def _plan(self, request: GenerationRequest, prompt: str) -> _Plan:
        caps = DEMO_CAPABILITIES
        if request.model != DEMO_MODEL:
            raise _invalid(f"unknown model {request.model!r}; the demo provider has {DEMO_MODEL!r}")
        if not request.prompt.strip():
            raise _invalid("the prompt is empty")
        aspect = request.aspect_ratio or "1:1"
        if aspect not in caps.aspect_ratios:
            raise _invalid(f"aspect ratio {aspect!r} is not one of {', '.join(caps.aspect_ratios)}")
        try:
            fmt = normalize_format(request.output_format or "png")
        except ValueError:
            raise _invalid(f"output format {request.output_format!r} is not supported") from None
        if not 1 <= request.num_outputs <= caps.max_outputs:
            raise _invalid(f"num_outputs must be between 1 and {caps.max_outputs}")
        if len(request.references) > caps.max_reference_images:
            raise _invalid(f"at most {caps.max_reference_images} reference images are accepted")
        return _Plan(
            prompt=prompt,
            negative_prompt=(request.negative_prompt or "").strip(),
            aspect_ratio=aspect,
            output_format=fmt,
            num_outputs=request.num_outputs,
            seed=request.seed or 0,
            references=tuple(ref.data for ref in request.references),
        )

    async def _advance(self, job_id: str, *, count_poll: bool) -> TaskStatus:
        job = self._jobs[job_id]
        async with job.lock:
            if job.final is not None:
                return job.final
            if count_poll:
                job.polls += 1
            progress = self._progress(job)
            if progress < 1.0:
                return TaskStatus(TaskState.RUNNING, provider_job_id=job_id, progress=progress)
            if job.failure is not None:
                job.final = TaskStatus(
                    TaskState.FAILED, provider_job_id=job_id, progress=1.0, error=job.failure
                )
            else:
                images = await asyncio.to_thread(_render_plan, job.plan, self.long_side)
                mime = _MIME[job.plan.output_format]
                job.final = TaskStatus(
                    TaskState.SUCCEEDED,
                    provider_job_id=job_id,
                    progress=1.0,
                    outputs=tuple(ResultRef(data=data, mime_type=mime) for data in images),
                )
            return job.final

    def _progress(self, job: _Job) -> float:
        by_steps = 1.0 if job.steps == 0 else min(1.0, job.polls / job.steps)
        elapsed = self._clock() - job.started
        by_time = 1.0 if job.latency <= 0 else min(1.0, max(0.0, elapsed) / job.latency)
        return min(by_steps, by_time)


def _check_references(references: Sequence[bytes]) -> None:
    for index, data in enumerate(references, start=1):
        try:
            probe_image(data)
        except InvalidImage as exc:
            raise _invalid(f"reference image {index} is not usable: {exc}") from exc


def _render_plan(plan: _Plan, long_side: int) -> list[bytes]:
    return [
        render_art(
            plan.prompt,
            seed=plan.seed + index,
            negative_prompt=plan.negative_prompt,
            aspect_ratio=plan.aspect_ratio,
            output_format=plan.output_format,
            long_side=long_side,
            references=plan.references,
        )
        for index in range(plan.num_outputs)
    ]


# --- the painting ------------------------------------------------------------

RGB = tuple[int, int, int]


def image_size(aspect_ratio: str, long_side: int) -> tuple[int, int]:
    """Pixel size for ``"W:H"`` with the longer side ``long_side``."""
    w_part, h_part = (int(part) for part in aspect_ratio.split(":"))
    if w_part >= h_part:
        return long_side, max(1, round(long_side * h_part / w_part))
    return max(1, round(long_side * w_part / h_part)), long_side


def render_art(
    prompt: str,
    *,
    seed: int = 0,
    negative_prompt: str = "",
    aspect_ratio: str = "1:1",
    output_format: str = "png",
    long_side: int = 1024,
    references: Sequence[bytes] = (),
) -> bytes:
    """Paint one deterministic abstract landscape and encode it (sync; CPU-bound)."""
    digest = hashlib.sha256(f"{prompt}\x00{negative_prompt}\x00{seed}".encode()).digest()
    rng = random.Random(digest)  # noqa: S311 - a deterministic picture, not cryptography
    width, height = image_size(aspect_ratio, long_side)
    hue = rng.random()

    image = _sky(width, height, hue, rng)
    _sun(image, hue, rng)
    _bokeh(image, rng)
    _hills(image, hue, rng)
    if references:
        image = _blend_references(image, references)
    _badge(image)
    return encode(image, output_format, quality=90)


def _hsv(hue: float, saturation: float, value: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def _sky(width: int, height: int, hue: float, rng: random.Random) -> Image.Image:
    top = _hsv(hue + rng.uniform(-0.05, 0.05), rng.uniform(0.45, 0.7), rng.uniform(0.3, 0.55))
    horizon = _hsv(hue + rng.uniform(0.08, 0.18), rng.uniform(0.3, 0.55), rng.uniform(0.9, 1.0))
    mask = Image.linear_gradient("L").resize((width, height))  # 0 at the top, 255 at the bottom
    return Image.composite(
        Image.new("RGB", (width, height), horizon), Image.new("RGB", (width, height), top), mask
    )


def _sun(image: Image.Image, hue: float, rng: random.Random) -> None:
    width, height = image.size
    unit = min(width, height)
    radius = unit * rng.uniform(0.07, 0.13)
    cx, cy = width * rng.uniform(0.2, 0.8), height * rng.uniform(0.18, 0.45)
    colour = _hsv(hue + rng.uniform(0.1, 0.16), rng.uniform(0.15, 0.35), 1.0)

    glow = Image.new("L", image.size, 0)
    r = radius * 2.6
    ImageDraw.Draw(glow).ellipse((cx - r, cy - r, cx + r, cy + r), fill=110)
    image.paste(colour, mask=glow.filter(ImageFilter.GaussianBlur(radius * 1.2)))

    disc = Image.new("L", image.size, 0)
    ImageDraw.Draw(disc).ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=255)
    image.paste(colour, mask=disc.filter(ImageFilter.GaussianBlur(max(0.6, unit / 400))))


def _bokeh(image: Image.Image, rng: random.Random) -> None:
    width, height = image.size
    unit = min(width, height)
    mask = Image.new("L", image.size, 0)
    draw = ImageDraw.Draw(mask)
    for _ in range(rng.randint(5, 11)):
        r = unit * rng.uniform(0.02, 0.09)
        x, y = width * rng.random(), height * rng.uniform(0.0, 0.6)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=rng.randint(25, 70))
    image.paste((255, 255, 255), mask=mask.filter(ImageFilter.GaussianBlur(unit / 120)))


def _hills(image: Image.Image, hue: float, rng: random.Random) -> None:
    width, height = image.size
    haze = image.getpixel((width // 2, int(height * 0.6)))
    assert isinstance(haze, tuple)
    haze_rgb: RGB = (int(haze[0]), int(haze[1]), int(haze[2]))
    deep = _hsv(
        hue + rng.choice((0.45, 0.55, -0.12)), rng.uniform(0.45, 0.7), rng.uniform(0.18, 0.3)
    )
    layers = rng.randint(3, 4)
    step = max(1, width // 128)
    for layer in range(layers):
        depth = (layer + 1) / layers  # 1.0 is the nearest hill
        base = height * (0.5 + 0.35 * depth)
        waves = [
            (
                height * rng.uniform(0.02, 0.07) * (1.2 - depth / 2),
                rng.uniform(1.0, 4.5),
                rng.uniform(0, math.tau),
            )
            for _ in range(3)
        ]
        points = [(0.0, float(height))]
        for x in range(0, width + step, step):
            t = x / width
            y = base - sum(
                amp * math.sin(freq * math.tau * t + phase) for amp, freq, phase in waves
            )
            points.append((float(x), y))
        points.append((float(width), float(height)))
        mask = Image.new("L", image.size, 0)
        ImageDraw.Draw(mask).polygon(points, fill=255)
        # Far hills are softer (atmospheric haze); the blur also anti-aliases the edge.
        mask = mask.filter(
            ImageFilter.GaussianBlur(max(0.6, (1 - depth) * min(width, height) / 150))
        )
        image.paste(_mix(haze_rgb, deep, 0.35 + 0.65 * depth), mask=mask)


def _blend_references(image: Image.Image, references: Sequence[bytes]) -> Image.Image:
    blended: Image.Image | None = None
    for count, data in enumerate(references, start=1):
        with open_image(data) as opened:
            ref = ImageOps.fit(ImageOps.exif_transpose(opened).convert("RGB"), image.size)
        blended = ref if blended is None else Image.blend(blended, ref, 1 / count)
    assert blended is not None
    return Image.blend(image, blended, 0.4)


def _badge(image: Image.Image) -> None:
    """A small translucent "DEMO" mark in the bottom-right corner."""
    width, height = image.size
    size = max(8, min(width, height) // 24)
    font = ImageFont.load_default(size=size)
    draw = ImageDraw.Draw(image, "RGBA")
    left, top, right, bottom = draw.textbbox((0, 0), "DEMO", font=font)
    pad = max(2, size // 3)
    x = width - (right - left) - 3 * pad
    y = height - (bottom - top) - 3 * pad
    draw.rounded_rectangle(
        (x, y, x + (right - left) + 2 * pad, y + (bottom - top) + 2 * pad),
        radius=pad,
        fill=(0, 0, 0, 90),
    )
    draw.text((x + pad - left, y + pad - top), "DEMO", font=font, fill=(255, 255, 255, 200))
