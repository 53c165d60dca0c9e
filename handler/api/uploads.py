"""The image a request carries: a multipart field, a raw ``image/*`` body, JSON base64 or an S3 location.

The body is read into memory with a hard cap before anything parses it; multipart files stay in memory too
(nothing is written to disk per request).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

from pydantic import ValidationError
from python_multipart.exceptions import FormParserError
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from handler.api.models import SegmentJSONRequest
from handler.core import storage
from handler.core.errors import (
    Forbidden,
    InvalidRequest,
    NotFound,
    RequestTooLarge,
    S3UriDisabled,
    UnsupportedMediaType,
    describe_validation_errors,
)
from handler.core.settings import Settings
from handler.core.storage import S3Location

IMAGE_FIELD = "image"
# Room for multipart framing or JSON around the image; base64 makes the image itself 4/3 as large.
BODY_OVERHEAD = 64 * 1024

ImageSource = bytes | S3Location


def body_limit(settings: Settings) -> int:
    return settings.max_image_bytes * 4 // 3 + BODY_OVERHEAD


async def read_body(request: Request, settings: Settings) -> bytes:
    """The whole body, refused with 413 as soon as it is known to be larger than ``body_limit``."""
    limit = body_limit(settings)

    def too_large(size: str) -> RequestTooLarge:
        return RequestTooLarge(
            f"the request body is {size} bytes; the limit is {limit} bytes "
            f"(an image of up to {settings.max_image_bytes} bytes, base64 or multipart encoded)"
        )

    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(declared)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(f"more than {limit}")
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def multipart_image(request: Request, settings: Settings) -> bytes:
    """The file in the multipart field ``image`` (as the ancestor's form posted it)."""
    if media_type(request) != "multipart/form-data":
        raise UnsupportedMediaType(
            f"expected multipart/form-data with a file field {IMAGE_FIELD!r}, got {media_type(request) or 'none'}"
        )
    return await _form_file(request.headers, await read_body(request, settings))


async def image_source(request: Request, settings: Settings) -> ImageSource:
    """Whichever of the accepted forms the request's Content-Type says it is."""
    kind = media_type(request)
    if kind == "multipart/form-data":
        return await multipart_image(request, settings)
    if kind.startswith("image/"):
        return await read_body(request, settings)
    if kind == "application/json":
        source = _json_image(await read_body(request, settings))
        if isinstance(source, S3Location) and not settings.allow_s3_uri:
            raise S3UriDisabled(
                "this server does not read s3_uri (SEG_ALLOW_S3_URI is off; a deployment turns it on only with "
                'IAM or JWT auth): send the image itself, {"image_base64": ...}, or POST /jobs for a large one'
            )
        return source
    raise UnsupportedMediaType(
        f"unsupported Content-Type {kind or 'none'}: send multipart/form-data (field {IMAGE_FIELD!r}), "
        'an image/* body, or JSON {"image_base64": ...} / {"s3_uri": "s3://bucket/key"}'
    )


async def _form_file(headers: Headers, body: bytes) -> bytes:
    async def stream() -> AsyncIterator[bytes]:
        yield body

    parser = MultiPartParser(headers, stream(), max_files=4, max_fields=16)
    parser.spool_max_size = len(body)  # the body is already capped: keep its files in memory
    try:
        form = await parser.parse()
    except (MultiPartException, FormParserError) as exc:
        raise InvalidRequest(f"the multipart body cannot be parsed: {exc}") from None
    try:
        uploads = form.getlist(IMAGE_FIELD)
        if not uploads:
            raise InvalidRequest(f"the multipart body has no field {IMAGE_FIELD!r}")
        if len(uploads) > 1:  # which one the client meant is a guess: refuse rather than pick the last
            raise InvalidRequest(f"the multipart body has {len(uploads)} fields {IMAGE_FIELD!r}; send one image")
        (upload,) = uploads
        if not isinstance(upload, UploadFile):
            raise InvalidRequest(
                f"the field {IMAGE_FIELD!r} must be a file upload (curl -F {IMAGE_FIELD}=@photo.jpg), not text"
            )
        return await upload.read()
    finally:
        await form.close()


def _json_image(body: bytes) -> ImageSource:
    try:
        request = SegmentJSONRequest.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidRequest(f"invalid JSON body: {describe_validation_errors(exc.errors())}") from None
    if request.s3_uri is not None:
        return S3Location.parse(request.s3_uri)
    try:
        return base64.b64decode("".join((request.image_base64 or "").split()), validate=True)
    except ValueError as exc:  # binascii.Error, or ValueError for characters outside ASCII
        raise InvalidRequest(f"image_base64 is not valid base64: {exc}") from None


# One answer, status and body, for "missing" and "not yours": neither tells whether the object exists.
UNREADABLE = (
    "no object this server may read at that s3_uri: it does not exist, or it is not under an allowed "
    "bucket/prefix (SEG_ALLOWED_BUCKETS)"
)


def may_read(location: S3Location, settings: Settings) -> bool:
    """Whether ``location`` lies under one of SEG_ALLOWED_BUCKETS' ``bucket`` or ``bucket/prefix`` entries.

    A key with a ``.`` or ``..`` part never does: the prefix check is on the literal key, and nothing
    between here and S3 should get a chance to read it as a path.
    """
    if any(part in (".", "..") for part in location.key.split("/")):
        return False
    for entry in settings.allowed_buckets:
        bucket, _, prefix = entry.partition("/")
        if location.bucket == bucket and location.key.startswith(prefix):
            return True
    return False


def read_allowed(location: S3Location, settings: Settings) -> bytes:
    """The object's bytes, when SEG_ALLOWED_BUCKETS allows it; a forbidden and a missing object are the same 404."""
    if may_read(location, settings):
        try:
            return storage.read(storage.head(location.bucket, location.key), settings.max_image_bytes)
        except (Forbidden, NotFound):  # S3's 403 and 404
            pass
    raise NotFound(UNREADABLE)
