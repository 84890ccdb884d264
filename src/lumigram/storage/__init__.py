"""Where generated files and reference images are kept: a local folder (STORAGE_DIR, the
default) or an S3-compatible bucket (STORAGE_URL=s3://bucket/prefix, the ``scale``
extra; aiobotocore is imported only then)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lumigram.storage.local import LocalStorage

if TYPE_CHECKING:
    from lumigram.config import Settings
    from lumigram.services.ports import FileStorage

__all__ = ["build_storage", "check_storage", "close_storage"]


def build_storage(settings: Settings) -> FileStorage:
    """LocalStorage(STORAGE_DIR) without STORAGE_URL, else S3Storage (not connected yet:
    ``check_storage`` at start-up, or the first call, opens the client)."""
    if not settings.storage_url:
        return LocalStorage(settings.storage_dir)
    from lumigram.startup import StartupError

    try:
        from lumigram.storage.s3 import S3Storage, parse_storage_url
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in {"aiobotocore", "botocore", "aiohttp"}:
            raise
        raise StartupError(
            f"STORAGE_URL is {settings.storage_url} but aiobotocore is not installed: "
            "pip install 'lumigram[scale]'"
        ) from None
    try:
        bucket, prefix = parse_storage_url(settings.storage_url)
    except ValueError as exc:
        raise StartupError(f"Storage error: STORAGE_URL {exc} — use s3://bucket/prefix") from None
    key_id, secret = settings.s3_access_key_id, settings.s3_secret_access_key
    return S3Storage(
        bucket,
        prefix,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=key_id.get_secret_value() if key_id is not None else None,
        secret_access_key=secret.get_secret_value() if secret is not None else None,
        presign_seconds=settings.s3_presign_seconds,
        public_endpoint_url=settings.s3_public_endpoint_url,
    )


async def check_storage(storage: FileStorage) -> None:
    """The start-up check of a store that has one (S3: the bucket answers); a problem is
    a one-line StartupError."""
    check = getattr(storage, "check", None)
    if check is not None:
        await check()


async def close_storage(storage: FileStorage) -> None:
    """Close a store's client, if it has one."""
    aclose = getattr(storage, "aclose", None)
    if aclose is not None:
        await aclose()
