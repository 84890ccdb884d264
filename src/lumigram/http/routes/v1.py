"""The API under ``/v1``: generations, models, the account and its subscription.

Every route is authenticated by an API key (``Authorization: Bearer lg_…``, made with
/api in the bot) and rate-limited per key; errors are problem+json (``problems``).
The use cases are the bot's (``services.generation`` and friends): paying from the
free trial, the subscription allowance or credits, the one-active-job rule and the
premium models work the same, except that nothing waits for a Stars invoice (402).
The seed's paths (``POST /generate``, ``GET /status/{id}``, ``GET /subscription``)
call the same functions. See docs/api.md.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lumigram.catalog import ModelSpec
from lumigram.config import Settings
from lumigram.container import Services
from lumigram.domain.api_keys import ApiKey
from lumigram.domain.jobs import Channel, Job, JobStatus, Origin
from lumigram.domain.money import Account
from lumigram.domain.prompts import PromptError, PromptProblem
from lumigram.domain.users import User
from lumigram.http.deps import Host, ReadServicesDep, ServicesDep
from lumigram.http.problems import ProblemError, install_problem_handlers, problem_type
from lumigram.http.ratelimit import RateLimiter
from lumigram.http.routes.v1_requests import (
    GenerationRequest,
    check_url,
    download_references,
    idempotency_key,
    invalid,
    read_generation_request,
    request_hash,
)
from lumigram.http.routes.v1_schemas import (
    DEFAULT_MODE,
    GenerationOut,
    MeOut,
    ModelOut,
    ModelsOut,
    ModeOut,
    PerksOut,
    ProblemOut,
    SubscriptionOut,
    absolute,
    file_extension,
    files_ready,
    generation_object,
    utc,
)
from lumigram.services.generation import (
    ActiveJobLimitError,
    Draft,
    DraftError,
    IdempotencyConflictError,
    InvalidReferenceError,
    PaymentRequiredError,
    PerkRequiredError,
)

log = logging.getLogger(__name__)

# Where errors are problem+json (install_problem_handlers).
PROBLEM_PREFIXES = ("/v1", "/generate", "/status", "/subscription")
REALM = "lumigram"

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="API key",
    description="An API key made with /api in the bot: `Authorization: Bearer lg_…`",
)


def _problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": ProblemOut, "content": {"application/problem+json": {}}}
        for status in statuses
    }


router = APIRouter(prefix="/v1", tags=["v1"], responses=_problems(401, 403, 429))
aliases = APIRouter(tags=["seed aliases"], deprecated=True, responses=_problems(401, 403, 429))


# --- authentication -----------------------------------------------------------------
def unauthorized(detail: str, *, error: str | None = "invalid_token") -> ProblemError:
    challenge = f'Bearer realm="{REALM}"' + (f', error="{error}"' if error else "")
    return ProblemError(
        401,
        detail,
        title="Unauthorized",
        type=problem_type("unauthorized"),
        headers={"WWW-Authenticate": challenge},
    )


def bearer_token(header: str | None) -> str:
    """The token of ``Authorization: Bearer <token>``, or a 401 problem."""
    if header is None or not header.strip():
        raise unauthorized(
            "an API key is needed: send 'Authorization: Bearer <key>' "
            "(make a key with /api in the bot)",
            error=None,
        )
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise unauthorized(
            "the Authorization header must be 'Bearer <key>'", error="invalid_request"
        )
    return token


async def current_key(
    request: Request,
    services: ServicesDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> ApiKey:
    """The request's active API key (401 otherwise), within its rate limit (429)."""
    token = bearer_token(request.headers.get("authorization"))
    key = await services.api_keys.authenticate(token)
    if key is None or key.id is None:
        raise unauthorized("this API key is not valid or has been revoked")
    limiter: RateLimiter = request.app.state.api_rate_limiter
    limiter.check(key.id)
    return key


CurrentKey = Annotated[ApiKey, Depends(current_key)]


async def current_user(key: CurrentKey, services: ReadServicesDep) -> User:
    """The key's owner; 403 if banned."""
    user = await services.users.get(key.user_id)
    if user is None:
        raise unauthorized("this API key's account no longer exists")
    if user.is_banned:
        raise ProblemError(
            403,
            "this account is banned from Lumigram",
            title="Forbidden",
            type=problem_type("banned"),
        )
    # Read from a read session and detached from it: routes only read it, and no
    # rollback of a use case (a refused payment) can expire it under their feet.
    services.session.expunge(user)
    return user


Owner = Annotated[User, Depends(current_user)]
JobId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the generation's id")]


def base_url(host: Host) -> str | None:
    return host.settings.public_base_url or None


# --- error mapping ------------------------------------------------------------------
PROMPT_TEXTS = {
    PromptProblem.EMPTY: "prompt: empty; describe what to draw",
    PromptProblem.NO_TEXT: "prompt: has no text that can be used",
    PromptProblem.TOO_LONG: "prompt: too long, the limit is {limit} characters",
}


def prompt_problem(error: PromptError) -> ProblemError:
    text = PROMPT_TEXTS[error.problem].format(limit=error.limit)
    return invalid(text, field="prompt", reason=error.problem.value)


def draft_problem(
    error: DraftError, models: list[ModelSpec], model_id: str, mode: str
) -> ProblemError:
    field = str(error.args[0]) if error.args else "settings"
    if field == "model":
        known = ", ".join(model.id for model in models)
        return invalid(f"model: {model_id!r} is not offered (one of: {known})", field="model")
    if field == "template":
        return invalid(f"mode: {mode!r} is not a mode (GET /v1/models lists them)", field="mode")
    cause = error.__cause__
    message = str(cause) if cause is not None else "not offered by this model"
    message = message.split(": ", 1)[1] if message.startswith("model ") else message
    return invalid(f"settings.{message}", field=f"settings.{field}")


def reference_problem(error: InvalidReferenceError, index: int, limit: int) -> ProblemError:
    texts = {
        "type": f"reference {index + 1}: not a JPEG, PNG or WebP image",
        "size": f"reference {index + 1}: larger than 10 MB",
        "count": f"too many reference images: this model takes at most {limit}",
        "missing": "this model animates a photo: send one reference image",
        "dimensions": f"reference {index + 1}: a video starts from a photo of at least 300 px",
        "aspect": f"reference {index + 1}: too narrow or too wide for a video (1:2.5 to 2.5:1)",
    }
    return invalid(
        texts.get(error.reason, f"reference {index + 1}: not accepted"),
        field="references",
        reason=error.reason,
    )


def payment_problem(error: PaymentRequiredError) -> ProblemError:
    return ProblemError(
        402,
        f"not enough to pay for this: it costs {error.credits_needed} credit(s) and the "
        f"account has {error.credits}, with no free images or subscription allowance "
        "left for it. Top up credits in the bot (/topup) or subscribe (/subscription).",
        title="Payment required",
        type=problem_type("payment-required"),
        credits_needed=error.credits_needed,
        credits=error.credits,
    )


def active_problem(error: ActiveJobLimitError) -> ProblemError:
    ids = [job.id for job in error.active]
    return ProblemError(
        409,
        f"{len(ids)} generation(s) already running, the most this account may have at "
        f"once; wait for it or cancel it (POST /v1/generations/{ids[0]}/cancel)"
        if ids
        else "the most generations this account may have at once are running",
        title="Too many active generations",
        type=problem_type("active-job-limit"),
        active_job_id=ids[0] if ids else None,
        active_job_ids=ids,
    )


def perk_problem(error: PerkRequiredError, model_id: str) -> ProblemError:
    if error.perk == "premium":
        detail = (
            f"{model_id} is a premium model: it needs a subscription tier that includes "
            "premium models (/subscription in the bot)"
        )
    else:
        detail = (
            f"settings.num_outputs: at most {error.limit} image(s) per request on this "
            "account's plan (a subscription allows more)"
        )
    return ProblemError(
        403,
        detail,
        title="Subscription required",
        type=problem_type("subscription-required"),
        perk=error.perk,
        limit=error.limit,
    )


def not_found(what: str = "generation") -> ProblemError:
    return ProblemError(404, f"no such {what}", type=problem_type("not-found"))


# --- generations ----------------------------------------------------------------------
_GENERATION_SCHEMA = GenerationRequest.model_json_schema()
_FORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["prompt"],
    "properties": {
        "model": {"type": "string"},
        "mode": {"type": "string", "default": DEFAULT_MODE},
        "prompt": {"type": "string"},
        "settings": {"type": "string", "description": "a JSON object, as text"},
        "reference_urls": {"type": "array", "items": {"type": "string"}},
        "callback_url": {"type": "string"},
        "references": {
            "type": "array",
            "items": {"type": "string", "format": "binary"},
            "description": "reference images (JPEG, PNG, WebP; 10 MB each)",
        },
    },
}
GENERATION_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _GENERATION_SCHEMA},
            "multipart/form-data": {"schema": _FORM_SCHEMA},
        },
    }
}


async def create_generation(
    request: Request,
    response: Response,
    key: CurrentKey,
    user: Owner,
    services: ServicesDep,
    host: Host,
    idempotency: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="a retry with the same key and body gets the same generation",
        ),
    ] = None,
) -> GenerationOut:
    """Queue a generation, paid from the free images, the subscription allowance or
    credits (402 when none pays). 202 with the generation; with an `Idempotency-Key`
    seen before for the same request, 200 with the generation it made."""
    assert key.id is not None
    settings = host.settings
    allow_private = settings.api_callback_private_hosts
    idempotency = idempotency_key(idempotency)
    body, uploads = await read_generation_request(request)
    generation = services.generation
    if body.callback_url is not None:
        check_url(body.callback_url, "callback_url", allow_private=allow_private)
    for index, url in enumerate(body.reference_urls):
        check_url(url, f"reference_urls[{index}]", allow_private=allow_private)
    models = generation.models()
    model = generation.model(body.model) if body.model else generation.default_model()
    model_id = body.model or (model.id if model else "")
    if model is None:
        raise draft_problem(DraftError("model"), models, model_id, body.mode)
    count = len(uploads) + len(body.reference_urls)
    limit = model.capabilities.max_reference_images
    if count > limit:
        raise reference_problem(InvalidReferenceError("count"), count - 1, limit)
    origin = Origin(
        Channel.API,
        reply_to=str(key.id),
        api_key_id=key.id,
        callback_url=body.callback_url,
        idempotency_key=idempotency,
        request_hash=request_hash(body, model.id, uploads),
    )

    async def fetch() -> list[bytes]:
        return uploads + await download_references(body.reference_urls, allow_private=allow_private)

    draft = Draft(model.id, body.mode, body.prompt, dict(body.settings))
    try:
        queued = await generation.submit(user, draft, origin, references=count, fetch=fetch)
    except InvalidReferenceError as error:
        raise reference_problem(error, error.index or 0, limit) from None
    except PaymentRequiredError as error:
        raise payment_problem(error) from None
    except ActiveJobLimitError as error:
        raise active_problem(error) from None
    except PerkRequiredError as error:
        raise perk_problem(error, model.id) from None
    except IdempotencyConflictError:
        raise invalid(
            "Idempotency-Key: already used for a different request; use a new key",
            field="Idempotency-Key",
            reason="idempotency_conflict",
        ) from None
    except PromptError as error:
        raise prompt_problem(error) from None
    except DraftError as error:
        raise draft_problem(error, models, model_id, body.mode) from None
    job = queued.job
    assert job.id is not None
    response.status_code = 200 if queued.replayed else 202
    response.headers["Location"] = absolute(f"/v1/generations/{job.id}", base_url(host))
    position = queued.position if job.status == JobStatus.QUEUED else None
    return generation_object(job, base_url=base_url(host), position=position or None)


async def _own_job(services: Services, user: User, job_id: int) -> Job:
    job = await services.generation.job_of(user.id, job_id)
    if job is None:
        raise not_found()
    return job


async def _present(services: Services, host: Host, job: Job) -> GenerationOut:
    position = None
    if job.status == JobStatus.QUEUED:
        position = await services.generation.queue_position(job) or None
    return generation_object(job, base_url=base_url(host), position=position)


async def get_generation(
    job_id: JobId, user: Owner, services: ReadServicesDep, host: Host
) -> GenerationOut:
    """The generation: status, queue position, progress, error, result files."""
    return await _present(services, host, await _own_job(services, user, job_id))


async def get_file(
    job_id: JobId,
    n: Annotated[int, Path(ge=1, le=100, description="1 for the first file")],
    user: Owner,
    services: ReadServicesDep,
    host: Host,
) -> Response:
    """Result file ``n`` (1, 2, …) of a generation, as stored; with S3 storage, a 307
    redirect to a presigned URL of it."""
    job = await _own_job(services, user, job_id)
    results = job.results if files_ready(job) else []
    if n > len(results):
        raise not_found("file")
    result = results[n - 1]
    storage = host.infra.storage
    url = await storage.public_url(result.key, host.settings.s3_presign_seconds)
    if url is not None:  # an object store: the client downloads from it directly
        if not await storage.exists(result.key):
            log.warning("job %s: result file %s is no longer stored", job_id, n)
            raise not_found("file (it is no longer stored)")
        return Response(
            status_code=307, headers={"Location": url, "Cache-Control": "private, no-store"}
        )
    try:
        data = await storage.get(result.key)
    except (FileNotFoundError, KeyError):
        log.warning("job %s: result file %s is no longer stored", job_id, n)
        raise not_found("file (it is no longer stored)") from None
    filename = f"lumigram-{job_id}-{n}.{file_extension(result)}"
    return Response(
        data,
        media_type=result.mime_type,
        headers={
            "Content-Disposition": f'inline; filename="{filename}"',
            "Cache-Control": "private, max-age=86400",
        },
    )


async def cancel_generation(
    job_id: JobId, user: Owner, services: ServicesDep, host: Host
) -> GenerationOut:
    """Cancel a queued or running generation; what it held is given back."""
    job = await _own_job(services, user, job_id)
    cancelled = None
    if JobStatus(job.status).active:
        cancelled = await services.generation.cancel(user.id, job_id)
    if cancelled is None:
        job = await _own_job(services, user, job_id)
        raise ProblemError(
            409,
            f"the generation is {JobStatus(job.status).value} and cannot be cancelled",
            title="Not cancellable",
            type=problem_type("not-cancellable"),
            generation_status=JobStatus(job.status).value,
        )
    return await _present(services, host, cancelled)


# --- models, account ------------------------------------------------------------------
async def list_models(user: Owner, services: ReadServicesDep) -> ModelsOut:
    """The models this server offers and the modes; `available` says whether the
    key's user may use each now (premium models need a subscription that has them)."""
    generation = services.generation
    perks = await generation.perks(user.id)
    models = []
    for model in generation.models():
        try:
            price = (await generation.quote(Draft(model.id, DEFAULT_MODE))).price
        except DraftError:
            price = model.price()
        models.append(
            ModelOut(
                id=model.id,
                name=model.name,
                description=model.description_for(user.language),
                premium=model.premium,
                available=perks.allows_model(model.premium),
                price_credits=price,
                capabilities=model.capabilities.model_dump(mode="json"),
                defaults=model.defaults.model_dump(mode="json", exclude_none=True),
            )
        )
    modes = [
        ModeOut(slug=template.slug, title=template.title(user.language), kind=template.kind)
        for template in await generation.templates()
    ]
    return ModelsOut(models=models, modes=modes)


async def _subscription(services: Services, user: User) -> SubscriptionOut:
    view = await services.subscriptions.view(user.id)
    perks = await services.generation.perks(user.id)
    subscription = view.subscription if view.active else None
    renews = subscription is not None and subscription.renews()
    expires = utc(subscription.expires_at) if subscription is not None else None
    return SubscriptionOut(
        active=view.active,
        tier=subscription.tier_id if subscription is not None else None,
        name=view.tier.name if subscription is not None and view.tier is not None else None,
        images_left=view.allowance_left,
        renews_at=expires if renews else None,
        ends_at=expires if subscription is not None and not renews else None,
        perks=PerksOut(
            max_outputs=perks.max_outputs,
            max_active_jobs=perks.max_active_jobs,
            premium_models=perks.premium_models,
        ),
    )


async def get_me(user: Owner, services: ReadServicesDep) -> MeOut:
    """The key's user: balances, free images, leftover Stars and the subscription."""
    balances = await services.account.balances(user.id)
    return MeOut(
        user_id=user.id,
        language=user.language,
        credits=balances.get(Account.CREDITS.value, 0),
        free_images_left=balances.get(Account.TRIAL.value, 0),
        stars=balances.get(Account.STARS.value, 0),
        subscription=await _subscription(services, user),
    )


async def get_subscription(user: Owner, services: ReadServicesDep) -> SubscriptionOut:
    """The subscription alone: tier, images left this period, renewal or end."""
    return await _subscription(services, user)


# --- the routes -------------------------------------------------------------------
# What a route and its seed alias share.
CREATE: dict[str, Any] = {
    "methods": ["POST"],
    "status_code": 202,
    "response_model": GenerationOut,
    "openapi_extra": GENERATION_BODY,
    "responses": {200: {"description": "an idempotent replay"}, **_problems(402, 409, 413, 422)},
}
GET_ONE: dict[str, Any] = {
    "methods": ["GET"],
    "response_model": GenerationOut,
    "responses": _problems(404),
}
SUBSCRIPTION: dict[str, Any] = {"methods": ["GET"], "response_model": SubscriptionOut}

router.add_api_route(
    "/models", list_models, methods=["GET"], response_model=ModelsOut, summary="List models"
)
router.add_api_route("/generations", create_generation, summary="Create a generation", **CREATE)
router.add_api_route("/generations/{job_id}", get_generation, summary="Get a generation", **GET_ONE)
router.add_api_route(
    "/generations/{job_id}/files/{n}",
    get_file,
    methods=["GET"],
    summary="Download a result file",
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}, **_problems(404)},
)
router.add_api_route(
    "/generations/{job_id}/cancel",
    cancel_generation,
    methods=["POST"],
    response_model=GenerationOut,
    summary="Cancel a generation",
    responses=_problems(404, 409),
)
router.add_api_route("/me", get_me, methods=["GET"], response_model=MeOut, summary="The account")
router.add_api_route("/subscription", get_subscription, summary="The subscription", **SUBSCRIPTION)

aliases.add_api_route(
    "/generate", create_generation, summary="POST /v1/generations (seed alias)", **CREATE
)
aliases.add_api_route(
    "/status/{job_id}", get_generation, summary="GET /v1/generations/{id} (seed alias)", **GET_ONE
)
aliases.add_api_route(
    "/subscription", get_subscription, summary="GET /v1/subscription (seed alias)", **SUBSCRIPTION
)


def install(app: FastAPI, settings: Settings) -> None:
    """The API's routes, its problem+json errors and its rate limiter, on ``app``."""
    install_problem_handlers(app, PROBLEM_PREFIXES)
    app.state.api_rate_limiter = RateLimiter.from_settings(settings)
    app.include_router(router)
    app.include_router(aliases)
