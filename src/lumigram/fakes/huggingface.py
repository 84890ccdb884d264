"""A fake of Hugging Face's Inference Providers router (text-to-image on hf-inference).

``POST /hf-inference/models/{owner}/{name}`` with ``{"inputs", "parameters"}``
answers raw JPEG bytes. Errors are ``{"error": "..."}``; while the model is
"loading" (see ``start_loading``) it answers 503 with ``estimated_time``; a
prompt containing ``nsfw_marker`` is refused. It accepts exactly the models in
``lumigram.providers.huggingface.MODELS``.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from aiohttp import web

from lumigram.fakes.base import FakeServer, sample_image
from lumigram.providers.huggingface import INFERENCE_PROVIDER, MODELS

NSFW_ERROR = "Generated image flagged as NSFW content by the safety checker. Try another prompt."


class FakeHuggingFace(FakeServer):
    provider = "huggingface"

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        nsfw_marker: str = "nsfw",
        slow_seconds: float = 2.0,
    ) -> None:
        super().__init__(api_key=api_key, slow_seconds=slow_seconds)
        self.nsfw_marker = nsfw_marker
        self._loaded_at = 0.0  # monotonic time the model is "loaded" from

    def start_loading(self, seconds: float) -> None:
        """Answer 503 "currently loading" with ``estimated_time`` for the next ``seconds``."""
        self._loaded_at = time.monotonic() + seconds

    # --- FakeServer overrides -------------------------------------------------
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{provider}/models/{owner}/{name}", self._text_to_image)

    def error_response(self, status: int, message: str, **extra: Any) -> web.Response:
        return web.json_response({"error": message, **extra}, status=status)

    def malformed_response(self) -> web.Response:
        # A 200 that claims to be an image but is not one.
        return web.Response(status=200, body=b"<html>oops</html>", content_type="image/jpeg")

    # --- handler --------------------------------------------------------------
    async def _text_to_image(self, request: web.Request) -> web.Response:
        model = f"{request.match_info['owner']}/{request.match_info['name']}"
        if request.match_info["provider"] != INFERENCE_PROVIDER or model not in MODELS:
            return self.error_response(404, f"Model {model} does not exist")
        loading_left = self._loaded_at - time.monotonic()
        if loading_left > 0:
            return self.error_response(
                503,
                f"Model {model} is currently loading",
                estimated_time=math.ceil(loading_left * 10) / 10,  # never too early
            )
        try:
            body = await request.json()
        except ValueError:
            return self.error_response(400, "Invalid JSON body")
        problem, width, height = _validate(body)
        if problem:
            return self.error_response(422, problem)
        if self.nsfw_marker.lower() in str(body["inputs"]).lower():
            return self.error_response(400, NSFW_ERROR)
        # Small stand-in with the requested shape; Pillow off the event loop.
        data = await asyncio.to_thread(
            sample_image, max(8, width // 16), max(8, height // 16), "JPEG", 1
        )
        return web.Response(body=data, content_type="image/jpeg")


def _validate(body: object) -> tuple[str | None, int, int]:
    """(problem, width, height) for a text-to-image body."""
    if not isinstance(body, dict):
        return "Body must be a JSON object", 0, 0
    inputs = body.get("inputs")
    if not isinstance(inputs, str) or not inputs:
        return "Input validation error: `inputs` must be a non-empty string", 0, 0
    parameters = body.get("parameters", {})
    if not isinstance(parameters, dict):
        return "Input validation error: `parameters` must be an object", 0, 0
    width = parameters.get("width", 1024)
    height = parameters.get("height", 1024)
    for name, value in (("width", width), ("height", height)):
        if type(value) is not int or not 256 <= value <= 2048 or value % 8:
            return f"Input validation error: `{name}` must be a multiple of 8 in 256..2048", 0, 0
    steps = parameters.get("num_inference_steps", 4)
    if type(steps) is not int or not 1 <= steps <= 50:
        return "Input validation error: `num_inference_steps` must be in 1..50", 0, 0
    if "seed" in parameters and type(parameters["seed"]) is not int:
        return "Input validation error: `seed` must be an integer", 0, 0
    return None, width, height
