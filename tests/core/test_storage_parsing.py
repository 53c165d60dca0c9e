"""The one ``s3://`` parser and the one reader of S3's XML errors (``handler.core.storage``)."""

from __future__ import annotations

import pytest

from handler.core.errors import InvalidRequest
from handler.core.storage import S3Location, xml_error


def test_an_object_uri_needs_a_key_and_a_prefix_uri_may_be_empty() -> None:
    assert S3Location.parse("s3://b/a/b c?#.jpg") == S3Location("b", "a/b c?#.jpg")
    assert S3Location.parse("s3://b", prefix=True) == S3Location("b", "")
    assert S3Location.parse("s3://b/photos/", prefix=True) == S3Location("b", "photos/")
    with pytest.raises(InvalidRequest, match="s3_uri must look like s3://bucket/key"):
        S3Location.parse("s3://b/")
    with pytest.raises(InvalidRequest, match="the target must look like s3://bucket/prefix"):
        S3Location.parse("b/photos/", what="the target", prefix=True)
    with pytest.raises(InvalidRequest, match="names no possible S3 object"):
        S3Location.parse("s3://" + "b" * 64 + "/k")


def test_s3_xml_errors_are_read_with_their_entities() -> None:
    body = "<Error><Code>AccessDenied</Code><Message>Invalid according to Policy: a &amp; b</Message></Error>"
    assert xml_error(body) == ("AccessDenied", "Invalid according to Policy: a & b")
    assert xml_error("<Error><Code>SlowDown</Code></Error>") == ("SlowDown", "")
    assert xml_error('{"message": "Internal Server Error"}') is None
