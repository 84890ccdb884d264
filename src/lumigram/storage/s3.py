"""Files in an S3-compatible object store (AWS S3, MinIO, Cloudflare R2, Ceph, …) through
aiobotocore: one long-lived client, opened by ``start()`` (or the first call) and closed
by ``aclose()``.

Keys are the same safe keys as in the local folder, stored under the URL's prefix
(``s3://bucket/prefix`` keeps ``results/7/1.png`` at ``prefix/results/7/1.png``).
Uploads above ``PART_SIZE`` are multipart uploads of ``PART_SIZE`` parts (aborted on
error, so no orphaned parts are left to pay for); ``put_stream`` and ``get_stream``
never hold more than about one part in memory. ``public_url`` is a presigned GET URL.

Importing this module imports aiobotocore (the optional ``scale`` extra):
``lumigram.storage.build_storage`` imports it only when STORAGE_URL is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from lumigram.startup import StartupError
from lumigram.storage.keys import check_key

log = logging.getLogger(__name__)

PART_SIZE = 8 * 1024 * 1024  # multipart part size; S3 wants at least 5 MiB (but the last)
MULTIPART_THRESHOLD = PART_SIZE  # larger payloads go up in parts
DOWNLOAD_CHUNK = 256 * 1024  # what get_stream yields at a time (at most)
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0
MAX_ATTEMPTS = 3  # botocore's "standard" retries: throttling, 5xx, connection errors
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_HINT = "check STORAGE_URL, S3_ENDPOINT_URL and the S3 keys"


def parse_storage_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` → ``("bucket", "some/prefix/")``; the prefix is ""
    or ends with one "/"."""
    match = re.match(r"^s3://([^/\s]+)(?:/(.*))?$", url.strip())
    if match is None:
        raise ValueError(f"not an s3://bucket[/prefix] URL: {url!r}")
    bucket, prefix = match.group(1), (match.group(2) or "").strip("/")
    if prefix:
        check_key(prefix)
    return bucket, f"{prefix}/" if prefix else ""


class S3Storage:
    """Implements ``services.ports.FileStorage`` over an S3 bucket (and a key prefix)."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str = "",
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        presign_seconds: int = 3600,
        max_attempts: int = MAX_ATTEMPTS,
        public_endpoint_url: str = "",
    ) -> None:
        self.bucket = bucket
        self.prefix = f"{check_key(prefix.strip('/'))}/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url.strip()
        self.region = region
        self.presign_seconds = presign_seconds
        self.max_attempts = max_attempts
        self._access_key_id = access_key_id
        self._secret_access_key = secret_access_key
        # Presigned URLs are signed for the host they name: when clients reach the store
        # by another address than we do (compose: http://minio:9000 inside, a public
        # https name outside), they are signed by a client of that endpoint.
        self.public_endpoint_url = public_endpoint_url.strip()
        self._client: Any = None
        self._presigner: Any = None
        self._exit_stack: contextlib.AsyncExitStack | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:  # never the keys
        return f"S3Storage({self.where}, bucket={self.bucket!r}, prefix={self.prefix!r})"

    @property
    def where(self) -> str:
        """The endpoint, in words that hold no credentials."""
        if not self.endpoint_url:
            return f"AWS ({self.region})"
        parts = urlsplit(self.endpoint_url)
        host = parts.hostname or parts.netloc
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"

    # --- the client ------------------------------------------------------------------

    async def start(self) -> None:
        """Open the client (idempotent). Reading botocore's service models is file I/O:
        it is done in a thread, once per process, so the event loop never waits on it."""
        await self._get_client()

    async def _get_client(self) -> Any:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                session = await asyncio.to_thread(_new_session)
                stack = contextlib.AsyncExitStack()
                self._client = await stack.enter_async_context(
                    self._create(session, self.endpoint_url)
                )
                if self.public_endpoint_url and self.public_endpoint_url != self.endpoint_url:
                    self._presigner = await stack.enter_async_context(
                        self._create(session, self.public_endpoint_url)
                    )
                self._exit_stack = stack
        return self._client

    def _create(self, session: AioSession, endpoint_url: str) -> Any:
        return session.create_client(
            "s3",
            region_name=self.region,
            endpoint_url=endpoint_url or None,
            aws_access_key_id=self._access_key_id,
            aws_secret_access_key=self._secret_access_key,
            config=self._config(),
        )

    def _config(self) -> AioConfig:
        options: dict[str, Any] = {
            "connect_timeout": CONNECT_TIMEOUT,
            "read_timeout": READ_TIMEOUT,
            "retries": {"mode": "standard", "max_attempts": self.max_attempts},
            "max_pool_connections": 20,
            "signature_version": "s3v4",
        }
        if self.endpoint_url:
            # S3-compatible stores: path-style addressing (http://host/bucket/key works
            # for MinIO on localhost and any host name), and checksums only where S3
            # requires them (several stores reject botocore's newer default checksums).
            options["s3"] = {"addressing_style": "path"}
            options["request_checksum_calculation"] = "when_required"
            options["response_checksum_validation"] = "when_required"
        return AioConfig(**options)

    async def aclose(self) -> None:
        stack, self._exit_stack, self._client = self._exit_stack, None, None
        self._presigner = None
        if stack is not None:
            await stack.aclose()

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    # --- FileStorage -----------------------------------------------------------------

    async def put(self, key: str, data: bytes, content_type: str) -> str:
        name = self._name(key)
        if len(data) <= MULTIPART_THRESHOLD:
            client = await self._get_client()
            await client.put_object(
                Bucket=self.bucket, Key=name, Body=bytes(data), ContentType=content_type
            )
            return key
        view = memoryview(data)
        parts = (view[i : i + PART_SIZE] for i in range(0, len(view), PART_SIZE))
        await self._multipart(name, content_type, _as_async(parts))
        return key

    async def put_stream(self, key: str, chunks: AsyncIterator[bytes], content_type: str) -> str:
        """Upload what ``chunks`` yields (any sizes): one PUT when it all fits in one
        part, else a multipart upload, holding about one part in memory at a time."""
        name = self._name(key)
        parts = _rechunk(chunks, PART_SIZE)
        first = await anext(parts, None)
        if first is None:
            first = b""
        if len(first) < PART_SIZE:  # all of it (a short first part is the last)
            client = await self._get_client()
            await client.put_object(
                Bucket=self.bucket, Key=name, Body=bytes(first), ContentType=content_type
            )
            return key
        await self._multipart(name, content_type, _prepend(first, parts))
        return key

    async def _multipart(
        self, name: str, content_type: str, parts: AsyncIterator[bytes | memoryview]
    ) -> None:
        client = await self._get_client()
        created = await client.create_multipart_upload(
            Bucket=self.bucket, Key=name, ContentType=content_type
        )
        upload_id = created["UploadId"]
        done: list[dict[str, Any]] = []
        try:
            number = 0
            async for part in parts:
                number += 1
                answer = await client.upload_part(
                    Bucket=self.bucket,
                    Key=name,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=bytes(part),
                )
                # The checksums S3 computed, if any, must be repeated on completion.
                done.append(
                    {"PartNumber": number, "ETag": answer["ETag"]}
                    | {k: v for k, v in answer.items() if k.startswith("Checksum") and v}
                )
            await client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=name,
                UploadId=upload_id,
                MultipartUpload={"Parts": done},
            )
        except BaseException:
            # Parts of an unfinished upload are stored (and billed) until aborted.
            try:
                await asyncio.shield(
                    client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
                )
            except (Exception, asyncio.CancelledError) as exc:
                log.warning("S3: could not abort the upload of %s: %s", name, exc)
            raise

    async def get(self, key: str) -> bytes:
        body = await self._open(key)
        async with body:
            data: bytes = await body.read()
        return data

    async def get_stream(self, key: str, chunk_size: int = DOWNLOAD_CHUNK) -> AsyncIterator[bytes]:
        """The file in chunks of at most ``chunk_size`` bytes; FileNotFoundError (raised
        by the first iteration) when there is no such file."""
        body = await self._open(key)
        async with body:
            async for chunk in body.iter_chunks(chunk_size):
                yield chunk

    async def _open(self, key: str) -> Any:
        name = self._name(key)
        client = await self._get_client()
        try:
            response = await client.get_object(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if _error_code(exc) in _MISSING_CODES:
                raise FileNotFoundError(f"no stored file {key!r}") from None
            raise
        return response["Body"]

    async def exists(self, key: str) -> bool:
        name = self._name(key)
        client = await self._get_client()
        try:
            await client.head_object(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if _error_code(exc) in _MISSING_CODES:
                return False
            raise
        return True

    async def delete(self, key: str) -> None:
        """Deleting a missing file is no error (as in the local folder)."""
        name = self._name(key)
        client = await self._get_client()
        await client.delete_object(Bucket=self.bucket, Key=name)

    async def presigned_url(self, key: str, expires_in: int) -> str:
        """A GET URL that works without credentials for ``expires_in`` seconds."""
        name = self._name(key)
        client = await self._get_client()
        client = self._presigner or client
        url: str = await client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": name}, ExpiresIn=expires_in
        )
        return url

    async def public_url(self, key: str, expires_in: int) -> str | None:
        return await self.presigned_url(key, expires_in)

    # --- start-up ---------------------------------------------------------------------

    async def check(self) -> None:
        """The bucket exists and the keys may use it, or a one-line StartupError."""
        try:
            client = await self._get_client()
            await client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError, OSError, ValueError) as exc:
            reason = self._mask(_reason(exc))
            raise StartupError(
                f"Storage error: S3 storage at {self.where} bucket {self.bucket}: {reason} "
                f"— {_HINT}"
            ) from None

    def _mask(self, text: str) -> str:
        text = " ".join(text.split())  # one line
        for secret in (self._secret_access_key,):
            if secret:
                text = text.replace(secret, "****")
        return text


_loader: Any = None  # botocore's data files, read once per process (a cache, shareable)


def _new_session() -> AioSession:
    """A session whose loader has read what an S3 client needs (file I/O: call it in a
    thread)."""
    global _loader
    session = AioSession()
    if _loader is None:
        session.warm_up_loader_caches("s3")
        _loader = session.get_component("data_loader")
    else:
        session.register_component("data_loader", _loader)
    return session


def _error_code(exc: ClientError) -> str:
    error: dict[str, Any] = exc.response.get("Error", {})
    return str(error.get("Code", ""))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        code = _error_code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in {"404", "NoSuchBucket", "NotFound"} or status == 404:
            return "the bucket does not exist"
        if code in {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
            return f"access denied (HTTP {status or 403}: wrong keys, or no permission)"
        if code in {"301", "PermanentRedirect", "AuthorizationHeaderMalformed"}:
            return "the bucket is in another region (set S3_REGION)"
        message = exc.response.get("Error", {}).get("Message") or ""
        return f"{code or status}{': ' + message if message else ''}"
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return "no credentials (set S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY)"
    if isinstance(exc, ConnectTimeoutError):
        return f"cannot connect to the endpoint (no answer within {CONNECT_TIMEOUT:g} s)"
    if isinstance(exc, EndpointConnectionError):
        return f"cannot connect to the endpoint{_connect_detail(exc.kwargs.get('error'))}"
    if isinstance(exc, ReadTimeoutError):
        return f"no answer within {READ_TIMEOUT:g} s"
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _connect_detail(cause: object) -> str:
    """ " (Connection refused)", " (unknown host)", or "" from aiohttp's connector error."""
    if "DNS" in type(cause).__name__ or isinstance(cause, socket.gaierror):
        return " (unknown host)"
    errno = getattr(cause, "errno", None)
    if isinstance(errno, int) and errno > 0:
        return f" ({os.strerror(errno)})"
    return ""


async def _rechunk(chunks: AsyncIterator[bytes], size: int) -> AsyncIterator[bytes]:
    """Chunks of any sizes as pieces of exactly ``size`` bytes (the last one shorter,
    or nothing for no data)."""
    buffer = bytearray()
    async for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            piece = bytes(buffer[:size])
            del buffer[:size]
            yield piece
    if buffer:
        yield bytes(buffer)


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for item in rest:
        yield item


async def _as_async(items: Any) -> AsyncIterator[Any]:
    for item in items:
        yield item
