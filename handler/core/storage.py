"""S3 object I/O and ``s3://`` URIs: one boto3 client per process, reads with a size check before download, writes.

A missing or unreadable object (S3 answers 404 / 403) becomes ``NotFound`` / ``Forbidden``, and an object
over the byte limit becomes ``ImageTooLarge`` before any of it is downloaded: permanent ``ServiceError``s.
Everything else (5xx, throttling, timeouts, connection errors, an object replaced between HEAD and GET)
propagates unchanged: it is transient, and the caller lets Lambda retry.
"""

from __future__ import annotations

import html
import itertools
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as NoConnection

from handler.core.errors import Forbidden, ImageTooLarge, InvalidRequest, NotFound
from handler.core.logs import logger

# Standard retry mode (3 attempts unless AWS_MAX_ATTEMPTS says otherwise); timeouts well inside a Lambda's.
CLIENT_CONFIG = Config(retries={"mode": "standard"}, connect_timeout=5, read_timeout=30)

# S3's own limits: no longer name can exist, and a longer key is refused with KeyTooLongError (a 400
# that would otherwise look transient and be retried), so such keys are checked before any request.
MAX_BUCKET_CHARS = 63
MAX_KEY_BYTES = 1024

# Without s3:ListBucket, S3 answers 403 rather than 404 for a missing key: both mean "nothing to read".
MISSING_CODES = frozenset({"404", "NoSuchKey", "NoSuchBucket", "NoSuchVersion"})
DENIED_CODES = frozenset({"403", "AccessDenied", "InvalidObjectState"})
# What S3 answers when it is busy or failing inside: worth a retry a little later (with any 5xx or 429).
TRANSIENT_CODES = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError", "ServiceUnavailable"}
)


_serials = itertools.count(1)


def _built(kind: str, client: Any) -> Any:
    """Logged once per client: after a SnapStart restore the log shows that the clients in use are new ones."""
    logger.info("boto3 client built", extra={"client": kind, "serial": next(_serials), "client_id": id(client)})
    return client


@lru_cache(maxsize=1)
def s3_client() -> Any:
    """Built once per process (and again after a SnapStart restore, ``renew_clients``) from the standard
    environment: credentials, region, ``AWS_ENDPOINT_URL``."""
    return _built("s3", boto3.client("s3", config=CLIENT_CONFIG))


def signing_client() -> Any:
    """The client presigned URLs come from: SigV4 (boto3 presigns GETs with SigV2 by default, which newer
    regions refuse) and, on AWS, the bucket's regional virtual-host name ``https://BUCKET.s3.REGION.amazonaws.com``
    rather than the global one, which S3 may redirect for a new bucket outside us-east-1, and a browser's
    upload does not survive that redirect. Elsewhere (moto server) the endpoint is kept as it is."""
    return _signing_client(s3_client().meta.endpoint_url, s3_client().meta.region_name)


@lru_cache(maxsize=4)
def _signing_client(endpoint_url: str, region: str | None) -> Any:
    on_aws = (urlsplit(endpoint_url).hostname or "").endswith((".amazonaws.com", ".amazonaws.com.cn"))
    style = {"addressing_style": "virtual"} if on_aws else {}
    config = CLIENT_CONFIG.merge(Config(signature_version="s3v4", s3=style))
    client = boto3.client("s3", config=config, region_name=region, endpoint_url=None if on_aws else endpoint_url)
    return _built("signing", client)


def renew_clients() -> dict[str, Any]:
    """After a SnapStart restore: drop every cached client, the signed origins and boto3's default session
    (its credentials and connection pools were the snapshot's), and build the S3 client again now, so the
    first request does not pay for it. Returns what was dropped, for the hook's log line."""
    dropped = {
        "s3_clients_dropped": s3_client.cache_info().currsize,
        "signing_clients_dropped": _signing_client.cache_info().currsize,
        "origins_dropped": _bucket_origin.cache_info().currsize,
    }
    s3_client.cache_clear()
    _signing_client.cache_clear()
    _bucket_origin.cache_clear()
    boto3.setup_default_session()
    s3_client()
    return dropped


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str, *, what: str = "s3_uri", prefix: bool = False) -> S3Location:
        """The one ``s3://`` parser: ``s3://bucket/key`` (the key taken verbatim: it may contain ``/``, ``?``,
        ``#``, spaces), or with ``prefix`` ``s3://bucket/prefix`` whose prefix may be empty. ``InvalidRequest``
        names ``what`` (``s3_uri``, a command's argument) when ``uri`` is neither."""
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        if not uri.startswith("s3://") or not bucket or not (key or prefix):
            shown = uri if len(uri) <= 200 else f"{uri[:200]}..."  # an 8 MB string is not echoed back
            raise InvalidRequest(f"{what} must look like s3://bucket/{'prefix' if prefix else 'key'}, got {shown!r}")
        if len(bucket) > MAX_BUCKET_CHARS or len(key.encode()) > MAX_KEY_BYTES:
            raise InvalidRequest(
                f"{what} names no possible S3 object: buckets have at most {MAX_BUCKET_CHARS} characters, "
                f"keys at most {MAX_KEY_BYTES} bytes"
            )
        return cls(bucket=bucket, key=key)


@dataclass(frozen=True)
class StoredObject:
    """One version of an object, as HEAD saw it."""

    bucket: str
    key: str
    size: int
    etag: str  # without the quotes S3 puts around it
    version_id: str | None
    metadata: dict[str, str] = field(default_factory=dict)  # x-amz-meta-* without the prefix, names lowercase
    last_modified: float | None = None  # seconds since the epoch
    # HEAD named this version (a Batch Operations task's): reads fetch exactly it.
    pinned_version: bool = False
    content_type: str | None = None


@contextmanager
def _permanent_errors(bucket: str, key: str) -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        if code in MISSING_CODES:
            raise NotFound(f"s3://{bucket}/{key} does not exist (deleted before it could be read?)") from exc
        if code in DENIED_CODES:
            raise Forbidden(f"s3://{bucket}/{key} cannot be read ({code})") from exc
        raise


def error_code(exc: ClientError) -> str:
    """The S3 error code botocore read from an answer (``NoSuchBucket``, ``AccessDenied``), or ""."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def xml_error(text: str) -> tuple[str, str] | None:
    """The one reader of S3's XML error body (``<Error><Code>SlowDown</Code><Message>...</Message></Error>``),
    for answers that reach an HTTP client rather than botocore (presigned POSTs and GETs): (code, message),
    or None when ``text`` is no such body."""
    code, message = (re.search(f"<{tag}>([^<]*)</{tag}>", text) for tag in ("Code", "Message"))
    if code is None:
        return None
    return html.unescape(code[1]), html.unescape(message[1]) if message else ""


def is_transient(exc: BaseException) -> bool:
    """S3 throttling, an S3 5xx, or no answer at all (connection refused, reset, timed out): the request
    may well succeed if made again a little later, after botocore's own retries gave up."""
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return exc.response.get("Error", {}).get("Code") in TRANSIENT_CODES or status >= 500 or status == 429
    return isinstance(exc, (NoConnection, HTTPClientError))


def head(bucket: str, key: str, version_id: str | None = None) -> StoredObject:
    """The object's current version, or ``version_id`` (then reads fetch that version, not the latest)."""
    version = {"VersionId": version_id} if version_id else {}
    with _permanent_errors(bucket, key):
        response = s3_client().head_object(Bucket=bucket, Key=key, **version)
    modified = response.get("LastModified")
    return StoredObject(
        bucket=bucket,
        key=key,
        size=response["ContentLength"],
        etag=response["ETag"].strip('"'),
        version_id=response.get("VersionId"),
        metadata={name.lower(): value for name, value in response.get("Metadata", {}).items()},
        last_modified=modified.timestamp() if modified else None,
        pinned_version=bool(version_id),
        content_type=response.get("ContentType"),
    )


def list_objects(bucket: str, prefix: str, client: Any = None) -> Iterator[StoredObject]:
    """The one S3 listing: the objects under ``prefix``, in key order, one page (1,000 keys) at a time, with
    ``client`` (default: the service's). A missing bucket is ``NotFound``, a refusal ``Forbidden``."""
    with _permanent_errors(bucket, prefix):
        for page in (client or s3_client()).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield StoredObject(
                    bucket=bucket, key=item["Key"], size=item["Size"], etag=item["ETag"].strip('"'), version_id=None
                )


def head_if_present(bucket: str, key: str) -> StoredObject | None:
    """None when the key holds nothing. A role without s3:ListBucket (the HTTP function has none: it could
    list every job) gets 403 for a missing key, so 403 counts as absent here too."""
    try:
        return head(bucket, key)
    except (NotFound, Forbidden):
        return None


def read(stored: StoredObject, max_bytes: int) -> bytes:
    """The bytes of exactly the version HEAD saw (``If-Match``, or its ``VersionId`` when HEAD named one),
    refused before download when too large."""
    if stored.size > max_bytes:
        raise ImageTooLarge(f"the object is {stored.size} bytes; the limit is {max_bytes} bytes")
    which = {"VersionId": stored.version_id} if stored.pinned_version and stored.version_id else {}
    with _permanent_errors(stored.bucket, stored.key):
        response = s3_client().get_object(Bucket=stored.bucket, Key=stored.key, IfMatch=f'"{stored.etag}"', **which)
        return response["Body"].read()


def put(bucket: str, key: str, body: bytes, content_type: str, metadata: dict[str, str] | None = None) -> None:
    s3_client().put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, Metadata=metadata or {})


def put_file(bucket: str, key: str, path: Path, content_type: str, metadata: dict[str, str] | None = None) -> None:
    """A file too large to hold in memory (a video's lines or overlay), streamed in parts."""
    extra = {"ContentType": content_type, "Metadata": metadata or {}}
    s3_client().upload_file(str(path), bucket, key, ExtraArgs=extra)


def delete(bucket: str, key: str) -> None:
    """Removes ``key`` (nothing happens when it holds nothing)."""
    s3_client().delete_object(Bucket=bucket, Key=key)


def put_new(bucket: str, key: str, body: bytes, content_type: str) -> bool:
    """Write ``key`` only if nothing is there yet (a conditional write, ``If-None-Match: *``): False if
    something already was. S3 lets exactly one of several concurrent writers win; a write racing another
    one still in progress gets 409 ConditionalRequestConflict, raised here as transient."""
    try:
        s3_client().put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, IfNoneMatch="*")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
            return False
        raise
    return True


def read_json(bucket: str, key: str, max_bytes: int) -> Any | None:
    """A JSON object this service wrote, or None when there is none (yet)."""
    stored = head_if_present(bucket, key)
    return None if stored is None else json.loads(read(stored, max_bytes))


def presigned_post(
    bucket: str, key: str, fields: dict[str, str], conditions: list[Any], expires_in: int
) -> dict[str, Any]:
    """``{"url", "fields"}`` for a browser-style POST of exactly ``key``: signed locally, no request to S3.

    Each of ``fields`` is also pinned as an exact-match condition; ``conditions`` adds the rest (ranges,
    prefixes). boto3 adds the bucket and key conditions itself.
    """
    pinned = [{name: value} for name, value in fields.items()]
    return signing_client().generate_presigned_post(
        Bucket=bucket, Key=key, Fields=fields, Conditions=[*pinned, *conditions], ExpiresIn=expires_in
    )


def presigned_get(bucket: str, key: str, expires_in: int, download_name: str | None = None) -> str:
    """A GET URL; with ``download_name`` (safe characters only) S3 answers it as an attachment of that name."""
    params = {"Bucket": bucket, "Key": key}
    if download_name:
        params["ResponseContentDisposition"] = f'attachment; filename="{download_name}"'
    return signing_client().generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)


def bucket_origin(bucket: str) -> str:
    """The origin (scheme://host[:port]) that browsers upload to for ``bucket``, as boto3 addresses it.

    The page's security headers name it on every response: signed once per bucket and endpoint, not per request.
    """
    return _bucket_origin(bucket, s3_client().meta.endpoint_url, s3_client().meta.region_name)


@lru_cache(maxsize=8)
def _bucket_origin(bucket: str, endpoint_url: str, region: str | None) -> str:
    url = _signing_client(endpoint_url, region).generate_presigned_url(
        "head_bucket", Params={"Bucket": bucket}, ExpiresIn=60
    )
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
