"""One prefix of an S3 bucket through boto3: listings, verified streaming downloads, uploads.

Configured as every AWS tool is: ``AWS_ENDPOINT_URL`` (MinIO, Ceph, GCS's
interoperability mode; path-style addressing then), ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, or any other source boto3
reads. Every failure of the storage service (unreachable, refused, a file that
arrives short or fails its checksum) is :class:`RepositoryUnavailable`, whose
message never carries a credential. Downloads stream to disk in chunks and
are checked while they stream: size always, MD5 against a single-part ETag,
SHA-256 where the caller knows it; a listing's object is fetched only while it
is still that object (``If-Match``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import RepositoryUnavailable

CHUNK = 1 << 20
SECRETS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")
USERINFO = re.compile(r"//[^/@\s]+@")


@dataclass(frozen=True)
class RemoteObject:
    """One object under a prefix: its key relative to the prefix, size, ETag (quoted) and time of writing."""

    key: str
    size: int
    etag: str = ""
    modified: float = 0.0


def parse_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of ``s3://bucket/prefix``; ValueError for anything else (credentials in it too)."""
    match = re.fullmatch(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(.*))?", url.strip())
    if not match:
        raise ValueError(
            f"{_scrub(url)!r} is not an s3://bucket/prefix URL (credentials go in AWS_* variables, never in the URL)"
        )
    return match[1], (match[2] or "").strip("/")


def _scrub(text: str) -> str:
    """``text`` without credentials: no user:password@ in URLs, no value of a secret variable."""
    text = USERINFO.sub("//***@", str(text))
    for name in SECRETS:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text


class Bucket:
    """``s3://bucket/prefix``; keys passed in and out are relative to the prefix. Thread-safe."""

    def __init__(self, bucket: str, prefix: str, client=None):
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self._client = client

    @property
    def client(self):
        if self._client is None:
            self._client = _new_client()
        return self._client

    def url(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    @contextlib.contextmanager
    def _failures(self, what: str) -> Iterator[None]:
        """Every error of the storage service becomes RepositoryUnavailable, credentials scrubbed."""
        import botocore.exceptions

        try:
            yield
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise RepositoryUnavailable(
                f"the model repository {self.url()} cannot be reached ({what}): {_scrub(exc)}"
            ) from None

    def list(self, under: str) -> list[RemoteObject]:
        """Every object whose key starts with ``under``, keys relative to ``under``."""
        found = []
        with self._failures(f"listing {under or '/'}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + under
            ):
                for item in page.get("Contents", []):
                    found.append(
                        RemoteObject(
                            key=item["Key"][len(self.prefix) + len(under) :],
                            size=item["Size"],
                            etag=item.get("ETag", ""),
                            modified=item["LastModified"].timestamp(),
                        )
                    )
        return found

    def folders(self) -> list[str]:
        """The names of the "folders" directly under the prefix."""
        names = []
        with self._failures("listing the apps"):
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix, Delimiter="/"
            ):
                names += [p["Prefix"][len(self.prefix) :].rstrip("/") for p in page.get("CommonPrefixes", [])]
        return names

    def read(self, key: str) -> bytes | None:
        """A small object's bytes; None when there is no such object."""
        import botocore.exceptions

        with self._failures(f"reading {key}"):
            try:
                return self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()
            except botocore.exceptions.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise

    def download(self, obj: RemoteObject, dest: Path, *, sha256: str | None = None) -> None:
        """Stream ``obj`` to ``dest``, checked as it comes; RepositoryUnavailable (``dest`` removed) if it is not
        exactly the object listed."""
        md5, sha = hashlib.md5(), hashlib.sha256()
        written = 0
        extra = {"IfMatch": obj.etag} if obj.etag else {}
        try:
            with self._failures(f"fetching {obj.key}"), open(dest, "wb") as out:
                body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + obj.key, **extra)["Body"]
                for chunk in body.iter_chunks(CHUNK):
                    written += len(chunk)
                    if written > obj.size:
                        break
                    out.write(chunk)
                    md5.update(chunk)
                    sha.update(chunk)
            where = self.url(obj.key)
            if written != obj.size:
                raise RepositoryUnavailable(
                    f"{where} arrived with {written} bytes where {obj.size} were listed; nothing was kept"
                )
            etag = obj.etag.strip('"')
            if etag and "-" not in etag and etag != md5.hexdigest():  # a multipart ETag is no MD5 of the bytes
                raise RepositoryUnavailable(f"{where} failed its MD5 check (ETag {etag}); nothing was kept")
            if sha256 is not None and sha.hexdigest() != sha256:
                raise RepositoryUnavailable(f"{where} failed its SHA-256 check; nothing was kept")
        except BaseException:
            Path(dest).unlink(missing_ok=True)
            raise

    def upload(self, path: Path, key: str) -> None:
        """Upload the file ``path`` as ``key`` (multipart past a few MiB, streamed from disk)."""
        with self._failures(f"writing {key}"):
            self.client.upload_file(str(path), self.bucket, self.prefix + key)

    def put(self, key: str, data: bytes, *, if_absent: bool = False) -> bool:
        """Write a small object; with ``if_absent``, only if there is none (False: there was one)."""
        import botocore.exceptions

        with self._failures(f"writing {key}"):
            try:
                self.client.put_object(
                    Bucket=self.bucket, Key=self.prefix + key, Body=data, **({"IfNoneMatch": "*"} if if_absent else {})
                )
            except botocore.exceptions.ClientError as exc:
                if if_absent and exc.response.get("Error", {}).get("Code") in (
                    "PreconditionFailed",
                    "ConditionalRequestConflict",
                ):
                    return False
                raise
        return True

    def delete(self, keys: list[str]) -> None:
        """Delete ``keys`` (in batches of 1000, as S3 takes them)."""
        with self._failures("deleting"):
            for start in range(0, len(keys), 1000):
                batch = [{"Key": self.prefix + k} for k in keys[start : start + 1000]]
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})


def _new_client():
    import boto3
    from botocore.config import Config

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    config = Config(
        connect_timeout=3,
        read_timeout=30,
        retries={"max_attempts": 3, "mode": "standard"},
        s3={"addressing_style": "path"} if endpoint else {},
    )
    return boto3.session.Session().client("s3", config=config)
