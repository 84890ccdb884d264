"""Use cases of the generation conversation: drafts, quotes, queueing, cancel, history."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from lumigram.catalog import Catalog, ModelSpec, SettingsError
from lumigram.domain.generation import OutputKind
from lumigram.domain.jobs import (
    COLORING,
    Job,
    JobEvent,
    JobEventKind,
    JobStatus,
    JobStep,
    Origin,
)
from lumigram.domain.media import InvalidImage
from lumigram.domain.money import Account, Funding, Package, choose_funding
from lumigram.domain.pricing import custom_surcharge, invoice_stars
from lumigram.domain.prompts import clean_prompt
from lumigram.domain.subscriptions import Perks, Tier
from lumigram.domain.templates import Template, TemplateKind
from lumigram.domain.users import User
from lumigram.services.clock import Clock, utc_now
from lumigram.services.ports import (
    FileStorage,
    ImageProcessor,
    ImageProvider,
    JobDispatcher,
    JobEvents,
    Price,
    UnitOfWork,
)
from lumigram.services.subscriptions import SubscriptionService
from lumigram.services.unit import Transactional, use_case

# Without a subscription service (tests of the conversation alone) nothing is restricted.
FREE_FOR_ALL = Perks(max_outputs=4, max_active_jobs=20, premium_models=True, priority=0)

MAX_REFERENCE_BYTES = 10 * 1024 * 1024
REFERENCE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
# The photo a video starts from (KIE's image-to-video models: Kling wants at least
# 300 px a side and a ratio within 1:2.5 .. 2.5:1; the others accept the same).
VIDEO_PHOTO_MIN_SIDE = 300
VIDEO_PHOTO_RATIOS = (1 / 2.5, 2.5)


@dataclass(frozen=True, slots=True)
class GenerationPolicy:
    max_prompt_length: int = 1000
    max_active_jobs: int = 1
    history_size: int = 10
    # An invoice costs the credit price at the dearest of these packages' rates
    # (domain.pricing.invoice_stars); a model's own `stars` wins.
    packages: tuple[Package, ...] = ()
    custom_surcharge: int = 0  # credits per image for a custom prompt (a model's own wins)


@dataclass(frozen=True, slots=True)
class Draft:
    """What the user has chosen so far; lives in the conversation state until queued."""

    model_id: str
    template_slug: str
    prompt: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    reference_keys: tuple[str, ...] = ()

    def missing_photos(self, model: ModelSpec) -> int:
        """How many more photos ``model`` needs before the request can be confirmed
        (an image-to-video model animates one)."""
        return max(0, model.capabilities.min_reference_images - len(self.reference_keys))

    def to_state(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "template_slug": self.template_slug,
            "prompt": self.prompt,
            "settings": dict(self.settings),
            "reference_keys": list(self.reference_keys),
        }

    @classmethod
    def from_state(cls, data: Mapping[str, Any]) -> Draft:
        return cls(
            model_id=str(data["model_id"]),
            template_slug=str(data["template_slug"]),
            prompt=str(data.get("prompt", "")),
            settings=dict(data.get("settings") or {}),
            reference_keys=tuple(data.get("reference_keys") or ()),
        )


@dataclass(frozen=True, slots=True)
class Quote:
    model: ModelSpec
    template: Template
    settings: dict[str, Any]  # validated, defaults filled in
    price: int  # credits
    stars: int = 0  # when paid by invoice
    # The settings cost no more than the model's defaults: a subscription's allowance
    # pays only for such requests (an allowance image is one standard image).
    standard: bool = True

    @property
    def outputs(self) -> int:
        return int(self.settings.get("num_outputs", 1))


@dataclass(frozen=True, slots=True)
class ModelAccess:
    allowed: bool
    unlocking_tiers: tuple[Tier, ...] = ()  # the tiers on sale that include the model


@dataclass(frozen=True, slots=True)
class Queued:
    job: Job
    position: int  # 0 while it waits for payment
    stars_due: int = 0  # > 0: nothing to pay with; an invoice for this many Stars
    replayed: bool = False  # the idempotency key was seen before: the job it made then

    @property
    def awaiting_payment(self) -> bool:
        return self.job.status == JobStatus.AWAITING_PAYMENT


class PerkRequiredError(Exception):
    """The request needs a subscription perk the user does not have."""

    def __init__(self, perk: str, limit: int = 0) -> None:
        super().__init__(perk)
        self.perk = perk  # "premium" or "outputs"
        self.limit = limit


class ActiveJobLimitError(Exception):
    def __init__(self, active: list[Job]) -> None:
        super().__init__("active job limit reached")
        self.active = active


class PaymentRequiredError(Exception):
    """Nothing pays for the request (trial, allowance, credits) and no invoice is offered
    (the API): nothing was created."""

    def __init__(self, credits_needed: int, balance: int, stars: int) -> None:
        super().__init__("payment required")
        self.credits_needed = credits_needed
        self.credits = balance  # the user's credit balance
        self.stars = stars  # what an invoice in the bot would cost


class IdempotencyConflictError(Exception):
    """The idempotency key was used before for a different request."""


class DraftError(ValueError):
    """The draft no longer fits the model or template (e.g. the model was disabled)."""


class InvalidReferenceError(ValueError):
    def __init__(self, reason: str, index: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason  # "type", "size" or "count"
        self.index = index  # which of the request's images, where several came at once


class GenerationService:
    def __init__(
        self,
        uow: UnitOfWork,
        catalog: Catalog,
        providers: Mapping[str, ImageProvider],
        storage: FileStorage,
        dispatcher: JobDispatcher,
        policy: GenerationPolicy,
        clock: Clock = utc_now,
        subscriptions: SubscriptionService | None = None,
        *,
        images: ImageProcessor,
        events: JobEvents | None = None,
        schedule: Callable[[Callable[[], Awaitable[None]]], None],
    ) -> None:
        self._images = images  # Pillow work, run in a thread
        self._events = events  # the job's channel is told (e.g. of a cancel)
        # Follow-ups (dispatch, events) run once the entry point's scope is done.
        self._schedule = schedule
        self._subscriptions = subscriptions
        self._uow = uow
        self._catalog = catalog
        self._providers = providers
        self._storage = storage
        self._dispatcher = dispatcher
        self.policy = policy
        self._clock = clock

    @property
    def _tx(self) -> Transactional:
        return self._uow

    # --- choices -------------------------------------------------------------
    def models(self) -> list[ModelSpec]:
        """Models whose provider is configured (the demo model always)."""
        return self._catalog.available(set(self._providers))

    def default_model(self) -> ModelSpec:
        return self.models()[0]

    def model(self, model_id: str) -> ModelSpec | None:
        spec = self._catalog.get(model_id)
        return spec if spec is not None and spec in self.models() else None

    @use_case
    async def templates(self) -> list[Template]:
        return await self._uow.templates.list_active()

    def clean_prompt(self, text: str | None) -> str:
        return clean_prompt(text, self.policy.max_prompt_length)

    @use_case
    async def quote(self, draft: Draft) -> Quote:
        model = self.model(draft.model_id)
        if model is None:
            raise DraftError("model")
        template = await self._uow.templates.get_by_slug(draft.template_slug)
        if template is None or not template.is_active:
            raise DraftError("template")
        requested = {**draft.settings, "reference_images": len(draft.reference_keys)}
        try:
            settings = model.validate_settings(requested)
        except SettingsError as error:
            raise DraftError(error.field) from error
        values = settings.model_dump(exclude_none=True)
        outputs = int(values.get("num_outputs", 1))
        extra = 0  # a custom prompt may cost more (seed 000's rule), per model
        if template.template_kind is TemplateKind.CUSTOM:
            extra = outputs * custom_surcharge(model.custom_surcharge, self.policy.custom_surcharge)
        price = model.price(settings) + extra
        if model.stars is None:
            stars = invoice_stars(price, self.policy.packages)
        else:  # the catalog's own Stars per image, plus the surcharge at the invoice rate
            stars = model.stars * outputs + (
                invoice_stars(extra, self.policy.packages) if extra else 0
            )
        return Quote(model, template, values, price, stars, model.at_standard_price(settings))

    # --- entitlements and funding ------------------------------------------------------
    async def _entitlement(self, user_id: int) -> tuple[Perks, bool]:
        if self._subscriptions is None:
            return replace(FREE_FOR_ALL, max_active_jobs=self.policy.max_active_jobs), False
        return await self._subscriptions.entitlement(user_id)

    @use_case
    async def perks(self, user_id: int) -> Perks:
        perks, _ = await self._entitlement(user_id)
        return perks

    def premium_tiers(self) -> tuple[Tier, ...]:
        """The subscription tiers on sale that include premium models."""
        if self._subscriptions is None:
            return ()
        return tuple(t for t in self._subscriptions.tiers.values() if t.perks.premium_models)

    async def model_access(self, user_id: int, model: ModelSpec) -> ModelAccess:
        """Whether the user may use ``model`` now, and which tiers would unlock it.

        Asked when the model is chosen, so a premium model is explained before the
        prompt; ``queue`` checks again when the request is confirmed.
        """
        if not model.premium:
            return ModelAccess(allowed=True)
        perks = await self.perks(user_id)
        return ModelAccess(perks.allows_model(model.premium), self.premium_tiers())

    @use_case
    async def funding_preview(self, user_id: int, quote: Quote) -> tuple[Funding | None, int]:
        """How the job would be paid if confirmed now, and what is left in that account
        (the credit balance when it would need an invoice)."""
        _, subscribed = await self._entitlement(user_id)
        # Free images and a subscription's allowance are images: a video costs credits.
        images = quote.model.capabilities.kind is not OutputKind.VIDEO
        subscribed = subscribed and quote.standard and images
        balances = await self._uow.ledger.balances(user_id)
        funding = choose_funding(
            outputs=quote.outputs,
            credit_price=quote.price,
            trial=balances[Account.TRIAL.value] if images else 0,
            allowance=balances[Account.ALLOWANCE.value] if subscribed else 0,
            credit_balance=balances[Account.CREDITS.value],
            star_price=quote.stars,
            stars=balances[Account.STARS.value],
        )
        account = funding.account if funding else Account.CREDITS
        return funding, balances[account.value]

    # --- reference images ----------------------------------------------------
    async def add_reference(self, user_id: int, data: bytes, model_id: str, current: int) -> str:
        """Check and store one reference image; returns its storage key."""
        model = self.model(model_id)
        if model is None or current >= model.capabilities.max_reference_images:
            raise InvalidReferenceError("count")
        if len(data) > MAX_REFERENCE_BYTES:
            raise InvalidReferenceError("size")
        try:
            info = await asyncio.to_thread(self._images.probe, data)
        except InvalidImage:
            raise InvalidReferenceError("type") from None
        if info.mime_type not in REFERENCE_TYPES:
            raise InvalidReferenceError("type")
        if model.capabilities.kind is OutputKind.VIDEO:
            # The photo a video starts from: video models refuse tiny or extreme images.
            if min(info.width, info.height) < VIDEO_PHOTO_MIN_SIDE:
                raise InvalidReferenceError("dimensions")
            if not VIDEO_PHOTO_RATIOS[0] <= info.width / info.height <= VIDEO_PHOTO_RATIOS[1]:
                raise InvalidReferenceError("aspect")
        extension = info.mime_type.split("/")[1]
        key = f"refs/{user_id}/{secrets.token_hex(8)}.{extension}"
        await self._storage.put(key, data, info.mime_type)
        return key

    async def reference_from_result(self, user_id: int, job_id: int, index: int) -> str | None:
        """A delivered result of the user's own job, as a reference key."""
        job = await self.job_of(user_id, job_id)
        if job is None or not 0 <= index < len(job.results) or job.results[index].is_video:
            return None
        return job.results[index].key

    # --- queueing --------------------------------------------------------------
    @use_case
    async def queue(
        self, user: User, draft: Draft, origin: Origin, *, invoice: bool = True
    ) -> Queued:
        """Confirm a generation: create the job (at most ``max_active_jobs`` per user,
        enforced in the database) paid from trial, allowance or credits, or waiting for
        a Stars invoice (``invoice``; otherwise ``PaymentRequiredError``). One
        transaction; the hand-over to a worker is scheduled as a follow-up."""
        user_id = user.id  # a rollback below expires ``user`` if it is of this session
        quote = await self.quote(draft)
        if draft.missing_photos(quote.model):
            raise InvalidReferenceError("missing")  # image-to-video: the photo to animate
        prompt = self.clean_prompt(draft.prompt)
        now = self._clock()
        await self._uow.jobs.lock_user(user_id)
        replayed = await self.replay(origin)
        if replayed is not None:
            return replayed
        perks, subscribed = await self._entitlement(user.id)
        if not perks.allows_model(quote.model.premium):
            raise PerkRequiredError("premium")
        if quote.outputs > perks.max_outputs:
            raise PerkRequiredError("outputs", perks.max_outputs)
        active = await self._uow.jobs.active_for_user(user.id)
        if len(active) >= perks.max_active_jobs:
            raise ActiveJobLimitError(active)
        if invoice:
            # A new request replaces one still waiting for payment: its invoice goes stale.
            await self._uow.jobs.cancel_awaiting_payment(user.id, now=now)
        template = quote.template
        settings = dict(quote.settings)
        if "seed" not in settings and quote.model.capabilities.seed:
            settings["seed"] = secrets.randbelow(2**31)
        if template.template_kind is TemplateKind.COLORING:
            settings[COLORING] = True
        job = Job(
            user_id=user.id,
            language=user.language,
            model_id=quote.model.id,
            provider=quote.model.provider,
            provider_model=quote.model.provider_model,
            mode=template.slug,
            template_id=template.id,
            prompt=prompt,
            final_prompt=template.render(prompt),
            settings=settings,
            reference_files=list(draft.reference_keys),
            channel=origin.channel,
            reply_to=origin.reply_to,
            api_key_id=origin.api_key_id,
            callback_url=origin.callback_url,
            idempotency_key=origin.idempotency_key,
            request_hash=origin.request_hash,
            status=JobStatus.QUEUED,
            step=JobStep.SUBMIT,
            created_at=now,
            updated_at=now,
            next_attempt_at=now,
            result_files=[],
            priority=perks.priority,
        )
        await self._uow.jobs.add(job)
        images = quote.model.capabilities.kind is not OutputKind.VIDEO
        price = Price(
            quote.outputs,
            quote.price,
            quote.stars,
            use_allowance=subscribed and quote.standard and images,
            use_trial=images,
        )
        if not await self._uow.billing.reserve(job, price):
            if not invoice:  # raising rolls the job back
                balances = await self._uow.ledger.balances(user_id)
                raise PaymentRequiredError(
                    quote.price, balances[Account.CREDITS.value], quote.stars
                )
            job.status = JobStatus.AWAITING_PAYMENT
            return Queued(job, 0, stars_due=quote.stars)
        position = await self._uow.jobs.queue_position(job)
        self._later(lambda: self._announce_and_start(job, position))
        return Queued(job, position)

    async def _announce_and_start(self, job: Job, position: int) -> None:
        if self._events is not None:
            await self._events.publish(JobEvent(JobEventKind.QUEUED, job, position=position))
        await self.start(job)

    async def submit(
        self,
        user: User,
        draft: Draft,
        origin: Origin,
        *,
        references: int,
        fetch: Callable[[], Awaitable[list[bytes]]],
    ) -> Queued:
        """A generation asked for in one request with its reference images (the API):
        checked before anything is fetched, answered from the idempotency key when it was
        seen before, else the images are fetched and stored and the job queued; nothing
        pays: ``PaymentRequiredError`` (no invoice is offered)."""
        self.clean_prompt(draft.prompt)
        await self.quote(replace(draft, reference_keys=("-",) * references))
        replayed = await self.replay(origin)
        if replayed is not None:
            return replayed
        keys: list[str] = []
        for index, data in enumerate(await fetch()):
            try:
                keys.append(await self.add_reference(user.id, data, draft.model_id, len(keys)))
            except InvalidReferenceError as error:
                raise InvalidReferenceError(error.reason, index) from None
        return await self.queue(
            user, replace(draft, reference_keys=tuple(keys)), origin, invoice=False
        )

    @use_case
    async def replay(self, origin: Origin) -> Queued | None:
        """The job an API request with this idempotency key made before (None: the key
        is new); ``IdempotencyConflictError`` if it was made for a different request."""
        if origin.idempotency_key is None or origin.api_key_id is None:
            return None
        seen = await self._uow.jobs.by_idempotency_key(origin.api_key_id, origin.idempotency_key)
        if seen is None:
            return None
        if seen.request_hash != origin.request_hash:
            raise IdempotencyConflictError(origin.idempotency_key)
        return Queued(seen, await self.queue_position(seen), replayed=True)

    def _later(self, followup: Callable[[], Awaitable[None]]) -> None:
        self._schedule(followup)

    @use_case
    async def queue_position(self, job: Job) -> int:
        """Place in the queue of a queued job (0 otherwise)."""
        if job.status != JobStatus.QUEUED:
            return 0
        return await self._uow.jobs.queue_position(job)

    async def start(self, job: Job) -> None:
        """Hand the queued job to a worker. (Were this lost, the sweeper would find the job.)"""
        assert job.id is not None
        if job.status == JobStatus.AWAITING_PAYMENT:
            return
        await self._dispatcher.dispatch(job.id, priority=job.priority)

    @use_case
    async def cancel_unpaid(self, user_id: int) -> int:
        """Drop the user's generations waiting for payment (their invoices go stale)."""
        return await self._uow.jobs.cancel_awaiting_payment(user_id, now=self._clock())

    async def cancel(self, user_id: int, job_id: int | None = None) -> Job | None:
        """Cancel the user's job (their active one if no id); the hold is released, the
        provider is asked to stop, and the job's channel is told."""
        job = await self._cancel_job(user_id, job_id)
        if job is None:
            return None
        if job.provider_job_id:  # after the commit: no transaction open during the call
            provider = self._providers.get(job.provider)
            if provider is not None:
                await provider.cancel(job.provider_job_id)
        events = self._events
        if events is not None:  # after the entry point's answer (e.g. a slow callback URL)
            self._later(lambda: events.publish(JobEvent(JobEventKind.CANCELLED, job)))
        return job

    @use_case
    async def _cancel_job(self, user_id: int, job_id: int | None) -> Job | None:
        if job_id is None:
            active = await self._uow.jobs.active_for_user(user_id)
            if not active:
                return None
            job_id = active[0].id
            assert job_id is not None
        job = await self._uow.jobs.cancel_active(job_id, user_id=user_id, now=self._clock())
        if job is not None:
            await self._uow.billing.release(job)
        return job

    # --- history -----------------------------------------------------------------
    @use_case
    async def history(self, user_id: int) -> list[Job]:
        return await self._uow.jobs.recent_for_user(user_id, self.policy.history_size)

    @use_case
    async def job_of(self, user_id: int, job_id: int) -> Job | None:
        job = await self._uow.jobs.get(job_id)
        return job if job is not None and job.user_id == user_id else None

    @use_case
    async def active_jobs(self, user_id: int) -> list[Job]:
        return await self._uow.jobs.active_for_user(user_id)

    def draft_from(self, job: Job, *, new_seed: bool) -> Draft:
        """A draft that repeats ``job`` (Regenerate: same settings with a new seed)."""
        settings = dict(job.settings)
        for derived in ("reference_images", COLORING):  # set again when queued
            settings.pop(derived, None)
        if new_seed and "seed" in settings:
            settings["seed"] = secrets.randbelow(2**31)
        return Draft(
            model_id=job.model_id,
            template_slug=job.mode,
            prompt=job.prompt,
            settings=settings,
            reference_keys=tuple(job.reference_files),
        )

    async def delivered(self, user_id: int, job_id: int) -> Job | None:
        """The user's own job, if it has delivered results (to send them again)."""
        job = await self.job_of(user_id, job_id)
        return job if job is not None and job.status == JobStatus.SUCCEEDED else None

    def reference_model(self, preferred: str) -> ModelSpec | None:
        """``preferred`` if it takes reference images, else the first model that does."""
        models = self.models()
        for model in sorted(models, key=lambda m: m.id != preferred):
            if model.capabilities.max_reference_images > 0:
                return model
        return None
