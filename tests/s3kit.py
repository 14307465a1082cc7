"""An S3-compatible server on loopback for the s3:// model store's tests: moto's standalone server, talked to
through boto3 as any client would."""

from __future__ import annotations

import contextlib
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import boto3
from botocore.config import Config

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test-key-id",
    "AWS_SECRET_ACCESS_KEY": "s3cr3t-never-shown-9f2c",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class S3:
    """One running server; :meth:`bucket` makes a fresh bucket on it, :meth:`stop` makes it unreachable."""

    endpoint: str
    server: object = None

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    @property
    def env(self) -> dict[str, str]:
        """The standard variables a server process is configured with."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )

    def bucket(self, prefix: str = "models") -> "Store":
        name = f"test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return Store(self, name, prefix)


@dataclass
class Store:
    """``s3://<bucket>/<prefix>``: write and read its objects as an operator's ``aws s3`` would."""

    s3: S3
    bucket: str
    prefix: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}"

    def put_tree(self, folder: Path, under: str) -> None:
        """Upload every file of ``folder`` to ``<prefix>/<under>/`` but hidden ones (a local store's snapshots),
        as ``aws s3 cp --recursive --exclude '.*'`` does."""
        client = self.s3.client()
        files = (
            p
            for p in Path(folder).rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        )
        for path in sorted(files):
            client.upload_file(str(path), self.bucket, self.key(f"{under}/{path.relative_to(folder).as_posix()}"))

    def put(self, rel: str, data: bytes) -> None:
        self.s3.client().put_object(Bucket=self.bucket, Key=self.key(rel), Body=data)

    def keys(self, under: str = "") -> list[str]:
        found = []
        for page in (
            self.s3.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.key(under))
        ):
            found += [o["Key"][len(self.prefix) + 1 :] for o in page.get("Contents", [])]
        return sorted(found)

    def delete(self, under: str) -> None:
        """Delete every object under ``<prefix>/<under>`` (``aws s3 rm --recursive``)."""
        keys = [self.key(k) for k in self.keys(under)]
        client = self.s3.client()
        for start in range(0, len(keys), 1000):
            client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]]}
            )


@contextlib.contextmanager
def running() -> Iterator[S3]:
    """moto's server on a free loopback port, stopped afterwards."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    s3 = S3(f"http://{host}:{port}", server)
    try:
        yield s3
    finally:
        s3.stop()
