"""Write the sample HTTP events in events/ (AWS's own shapes): `python events/make_http_events.py`.

Each is a request as API Gateway (HTTP API payload 2.0, REST API payload 1.0), a Lambda function URL or an
Application Load Balancer (a Lambda target group, with and without multi-value headers) hands it to the
function, usable as is with `sam local invoke -e events/<name>.json` or `python -m infra invoke
events/<name>.json`. The photo is tests/images/astronaut.jpg made 96 px wide, so that the events stay small;
binary bodies are base64 with ``isBase64Encoded: true``, as AWS sends them.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

from PIL import Image

EVENTS = Path(__file__).resolve().parent
PHOTO = EVENTS.parent / "tests" / "images" / "astronaut.jpg"

REGION = "us-east-1"
ACCOUNT = "123456789012"
API_ID = "a1b2c3d4e5"
FUNCTION_URL_ID = "abcdefghijklmnopqrstuvwxyz012345"
BOUNDARY = "----pointrend-sample-7MA4YWxkTrZu0gW"
USER_AGENT = "curl/8.5.0"
SOURCE_IP = "198.51.100.7"
TIME = "27/Nov/2026:10:15:30 +0000"
TIME_EPOCH = 1795774530123
ALB_HOST = "pointrend-alb-1234567890.us-east-1.elb.amazonaws.com"
TARGET_GROUP_ARN = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/pointrend/49e9d65c45c6791a"
TRACE_ID = "Root=1-67891233-abcdef012345678912345678"
NOT_AN_IMAGE = b"This is a text file with a .jpg name, not a JPEG.\n"


def small_jpeg(width: int = 96) -> bytes:
    with Image.open(PHOTO) as photo:
        height = round(photo.height * width / photo.width)
        buffer = io.BytesIO()
        photo.convert("RGB").resize((width, height), Image.Resampling.LANCZOS).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def multipart(field: str, filename: str, content_type: str, data: bytes) -> tuple[str, bytes]:
    """(Content-Type header, body) of a form with one file field, as a browser or ``curl -F`` sends it."""
    body = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    return f"multipart/form-data; boundary={BOUNDARY}", body


def api_domain() -> str:
    return f"{API_ID}.execute-api.{REGION}.amazonaws.com"


def headers(host: str, content_type: str | None, body: bytes) -> dict[str, str]:
    out = {
        "accept": "*/*",
        "host": host,
        "user-agent": USER_AGENT,
        "x-forwarded-for": SOURCE_IP,
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    if content_type:
        out |= {"content-length": str(len(body)), "content-type": content_type}
    return out


def http_api_v2(
    method: str,
    path: str,
    query: dict[str, str] | None = None,
    content_type: str | None = None,
    body: bytes = b"",
    *,
    function_url: bool = False,
) -> dict[str, Any]:
    """API Gateway HTTP API (payload format 2.0) or, with ``function_url``, a Lambda function URL."""
    domain_prefix = FUNCTION_URL_ID if function_url else API_ID
    domain = (
        f"{domain_prefix}.lambda-url.{REGION}.on.aws"
        if function_url
        else f"{API_ID}.execute-api.{REGION}.amazonaws.com"
    )
    route_key = "$default" if function_url else f"{method} {path}"
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": "&".join(f"{name}={value}" for name, value in (query or {}).items()),
        "headers": headers(domain, content_type, body),
    }
    if query:
        event["queryStringParameters"] = dict(query)
    event["requestContext"] = {
        "accountId": "anonymous" if function_url else ACCOUNT,
        "apiId": domain_prefix,
        "domainName": domain,
        "domainPrefix": domain_prefix,
        "http": {
            "method": method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": SOURCE_IP,
            "userAgent": USER_AGENT,
        },
        "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        "routeKey": route_key,
        "stage": "$default",
        "time": TIME,
        "timeEpoch": TIME_EPOCH,
    }
    if body:
        event["body"] = base64.b64encode(body).decode()
    event["isBase64Encoded"] = bool(body)
    return event


def rest_api_v1(method: str, path: str, content_type: str, body: bytes) -> dict[str, Any]:
    """API Gateway REST API proxy integration (payload format 1.0), stage ``prod``, route ``/{proxy+}``.

    A REST API passes a binary body base64-encoded only when its ``binaryMediaTypes`` include the request's
    type (for example ``multipart/form-data`` and ``image/*``); otherwise it mangles the bytes as UTF-8.
    """
    host = api_domain()
    request_headers = headers(host, content_type, body)
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": request_headers,
        "multiValueHeaders": {name: [value] for name, value in request_headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": API_ID,
            "domainName": host,
            "domainPrefix": API_ID,
            "extendedRequestId": "BQGojGkyoAMFmCA=",
            "httpMethod": method,
            "identity": {"sourceIp": SOURCE_IP, "userAgent": USER_AGENT},
            "path": f"/prod{path}",
            "protocol": "HTTP/1.1",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "requestTime": TIME,
            "requestTimeEpoch": TIME_EPOCH,
            "resourceId": "123456",
            "resourcePath": "/{proxy+}",
            "stage": "prod",
        },
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


def alb(
    method: str,
    path: str,
    query: dict[str, str] | None = None,
    content_type: str | None = None,
    body: bytes = b"",
    *,
    multi_value: bool = False,
) -> dict[str, Any]:
    """An Application Load Balancer's request to a Lambda target group. Query values arrive as the client
    sent them (not URL-decoded); with the target group's ``lambda.multi_value_headers.enabled``, headers and
    query come as ``multiValueHeaders`` / ``multiValueQueryStringParameters`` lists (and so must the answer's
    headers). Text and JSON bodies arrive as is, others base64 with ``isBase64Encoded: true``."""
    request_headers = headers(ALB_HOST, content_type, body)
    request_headers.pop("host")
    request_headers = {"host": ALB_HOST, **request_headers, "x-amzn-trace-id": TRACE_ID}
    event: dict[str, Any] = {
        "requestContext": {"elb": {"targetGroupArn": TARGET_GROUP_ARN}},
        "httpMethod": method,
        "path": path,
    }
    if multi_value:
        event["multiValueQueryStringParameters"] = {name: [value] for name, value in (query or {}).items()}
        event["multiValueHeaders"] = {name: [value] for name, value in request_headers.items()}
    else:
        event["queryStringParameters"] = dict(query or {})
        event["headers"] = request_headers
    event["body"] = base64.b64encode(body).decode()
    event["isBase64Encoded"] = bool(body)
    return event


def sample_events() -> dict[str, dict[str, Any]]:
    jpeg = small_jpeg()
    form_type, form = multipart("image", "astronaut.jpg", "image/jpeg", jpeg)
    bad_type, bad_form = multipart("image", "photo.jpg", "image/jpeg", NOT_AN_IMAGE)
    return {
        "apigw-http-multipart.json": http_api_v2("POST", "/segment", None, form_type, form),
        "apigw-http-png.json": http_api_v2("POST", "/segment", {"format": "png"}, form_type, form),
        "apigw-http-segmentapi.json": http_api_v2("POST", "/segmentapi", None, form_type, form),
        "apigw-http-bad-image.json": http_api_v2("POST", "/segment", None, bad_type, bad_form),
        "apigw-http-healthz.json": http_api_v2("GET", "/healthz"),
        "apigw-rest-multipart.json": rest_api_v1("POST", "/segment", form_type, form),
        "function-url-raw-jpeg.json": http_api_v2(
            "POST", "/segment", {"masks": "polygons"}, "image/jpeg", jpeg, function_url=True
        ),
        "alb-multipart.json": alb("POST", "/segment", {"masks": "polygons"}, form_type, form),
        "alb-multi-value-png.json": alb("POST", "/segment", {"format": "png"}, form_type, form, multi_value=True),
        "alb-healthz.json": alb("GET", "/healthz"),
    }


def render(event: dict[str, Any]) -> str:
    return json.dumps(event, indent=2) + "\n"


def main() -> None:
    for name, event in sample_events().items():
        (EVENTS / name).write_text(render(event), encoding="utf-8")
        print(EVENTS / name)


if __name__ == "__main__":
    main()
