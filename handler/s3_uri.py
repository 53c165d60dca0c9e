"""An image that a request names by ``s3://bucket/key``: only buckets the server allows are read."""

from __future__ import annotations

from dataclasses import dataclass

from handler import storage
from handler.errors import Forbidden, InvalidRequest
from handler.settings import Settings
from handler.storage import MAX_BUCKET_CHARS, MAX_KEY_BYTES


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        """``s3://bucket/key``; the key is taken verbatim (it may contain ``/``, ``?``, ``#``, spaces)."""
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        if not uri.startswith("s3://") or not bucket or not key:
            shown = uri if len(uri) <= 200 else f"{uri[:200]}..."  # an 8 MB string is not echoed back
            raise InvalidRequest(f"s3_uri must look like s3://bucket/key, got {shown!r}")
        if len(bucket) > MAX_BUCKET_CHARS or len(key.encode()) > MAX_KEY_BYTES:
            raise InvalidRequest(
                f"s3_uri names no possible S3 object: buckets have at most {MAX_BUCKET_CHARS} characters, "
                f"keys at most {MAX_KEY_BYTES} bytes"
            )
        return cls(bucket=bucket, key=key)


def read_allowed(location: S3Location, settings: Settings) -> bytes:
    """The object's bytes: 403 unless its bucket is in SEG_ALLOWED_BUCKETS, 404 when it is missing."""
    if location.bucket not in settings.allowed_buckets:
        raise Forbidden(f"bucket {location.bucket!r} is not allowed (the server's SEG_ALLOWED_BUCKETS)")
    return storage.read(storage.head(location.bucket, location.key), settings.max_image_bytes)
