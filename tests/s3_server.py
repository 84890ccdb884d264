"""A real S3-compatible server for the tests: moto's server mode (werkzeug in a thread of
the test process) on a free port of 127.0.0.1. Nothing leaves the machine."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

ACCESS_KEY = "lumigram-test-key"
SECRET_KEY = "s3cr3t-never-printed-0123456789"  # moto accepts any key
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    url: str
    client: Any  # a boto3 S3 client (blocking: call it through asyncio.to_thread)

    def create_bucket(self, name: str) -> str:
        self.client.create_bucket(Bucket=name)
        return name

    def settings(self, bucket: str, prefix: str = "lumigram") -> dict[str, Any]:
        """The Settings fields of STORAGE_URL=s3://bucket/prefix on this server."""
        return {
            "storage_url": f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}",
            "s3_endpoint_url": self.url,
            "s3_access_key_id": ACCESS_KEY,
            "s3_secret_access_key": SECRET_KEY,
            "s3_region": REGION,
        }


@contextlib.contextmanager
def s3_server() -> Iterator[S3Server]:
    import boto3  # type: ignore[import-untyped]
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        client = boto3.client(
            "s3",
            endpoint_url=url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )
        yield S3Server(url=url, client=client)
    finally:
        server.stop()
