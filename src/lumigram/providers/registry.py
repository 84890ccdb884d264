"""Building the provider clients the configuration switches on."""

from __future__ import annotations

from lumigram.config import Settings
from lumigram.providers.demo import DemoProvider
from lumigram.services.ports import ImageProvider

# Clients are imported only when their key is set: the openai SDK alone costs ~18 MB.


def build_providers(settings: Settings) -> dict[str, ImageProvider]:
    """One client per provider with a key, plus the offline demo (always on)."""
    keys = settings.provider_keys()
    timeout = settings.provider_timeout
    providers: dict[str, ImageProvider] = {
        # With no latency the demo finishes at submit; otherwise progress follows the clock.
        "demo": DemoProvider(
            latency=settings.demo_latency,
            steps=2 if settings.demo_latency else 0,
            long_side=settings.demo_image_size,
        )
    }
    if "replicate" in keys:
        from lumigram.providers.replicate import ReplicateProvider

        providers["replicate"] = ReplicateProvider(
            keys["replicate"],
            base_url=settings.replicate_base_url,
            timeout=timeout,
            webhook_url=callback_url(settings, "replicate"),
        )
    if "openai" in keys:
        from lumigram.providers.openai_images import OpenAIProvider

        providers["openai"] = OpenAIProvider(
            keys["openai"], base_url=settings.openai_base_url, timeout=timeout
        )
    if "gemini" in keys:
        from lumigram.providers.gemini import GeminiProvider

        providers["gemini"] = GeminiProvider(
            keys["gemini"], base_url=settings.gemini_base_url, timeout=timeout
        )
    if "huggingface" in keys:
        from lumigram.providers.huggingface import HuggingFaceProvider

        providers["huggingface"] = HuggingFaceProvider(
            keys["huggingface"], base_url=settings.hf_base_url, timeout=timeout
        )
    if "kie" in keys:
        from lumigram.providers.kie import KieProvider

        secret = settings.kie_webhook_hmac_key
        hmac_key = secret.get_secret_value().strip() if secret is not None else ""
        providers["kie"] = KieProvider(
            keys["kie"],
            base_url=settings.kie_base_url,
            upload_base_url=settings.kie_upload_base_url,
            timeout=timeout,
            callback_url=callback_url(settings, "kie"),
            webhook_hmac_key=hmac_key.encode() or None,
        )
    return providers


def callback_url(settings: Settings, provider: str) -> str | None:
    """Where ``provider`` POSTs finished jobs (``POST /callbacks/{provider}``, docs/http.md);
    None without PUBLIC_BASE_URL or with PROVIDER_CALLBACKS off."""
    if not settings.provider_callbacks or not settings.public_base_url:
        return None
    return f"{settings.public_base_url}/callbacks/{provider}"
