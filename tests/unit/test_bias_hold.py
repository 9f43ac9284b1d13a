"""The bias hold marker: written by monitoring, read by registration, cleared by a person's approval."""

from __future__ import annotations

import datetime as dt

import boto3
import pytest
from moto import mock_aws

from ml_lifecycle.bias_hold import BiasHoldError, clear_hold, describe, hold_uri, read_hold, write_hold
from ml_lifecycle.config import load_config

CFG = load_config("local")
ENDPOINT = CFG.deployment.endpoint_name


@pytest.fixture
def s3(monkeypatch):
    for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
        client.create_bucket(Bucket=CFG.storage.bucket)
        yield client


def test_the_hold_lives_beside_the_endpoints_monitoring_reports():
    assert hold_uri(CFG, ENDPOINT) == f"s3://{CFG.storage.bucket}/monitoring/{ENDPOINT}/bias-hold.json"
    with pytest.raises(ValueError, match="is not an endpoint name"):
        hold_uri(CFG, "a/b")


def test_write_read_and_clear(s3):
    assert read_hold(s3, CFG, ENDPOINT) is None
    assert clear_hold(s3, CFG, ENDPOINT) is None

    written = write_hold(
        s3,
        CFG,
        ENDPOINT,
        reason="bias breach",
        facet="customer_segment",
        breaches=[{"facet_value": "student", "metric": "DPPL", "value": -0.3, "threshold": 0.1}],
        now=dt.datetime(2026, 3, 1, 10, 0, 5, 123, tzinfo=dt.UTC),
    )

    found = read_hold(s3, CFG, ENDPOINT)
    assert found == written
    assert found["created_at"] == "2026-03-01T10:00:05Z" and found["uri"] == hold_uri(CFG, ENDPOINT)
    assert "DPPL -0.3 for student (threshold 0.1)" in describe(found)
    assert "A person's approval clears the hold" in describe(found)

    assert clear_hold(s3, CFG, ENDPOINT)["reason"] == "bias breach"
    assert read_hold(s3, CFG, ENDPOINT) is None


def test_a_hold_needs_a_reason(s3):
    with pytest.raises(ValueError, match="needs a reason"):
        write_hold(s3, CFG, ENDPOINT, reason=" ")


@pytest.mark.parametrize(
    ("body", "words"), [(b"{", "is not JSON"), (b'{"version": 2, "reason": "x"}', "is not a bias hold")]
)
def test_an_unreadable_hold_is_an_error_naming_it_and_can_still_be_cleared(s3, body, words):
    s3.put_object(Bucket=CFG.storage.bucket, Key=f"monitoring/{ENDPOINT}/bias-hold.json", Body=body)
    with pytest.raises(BiasHoldError, match=words) as info:
        read_hold(s3, CFG, ENDPOINT)
    assert hold_uri(CFG, ENDPOINT) in str(info.value)
    assert clear_hold(s3, CFG, ENDPOINT)["reason"] == "unreadable"
    assert read_hold(s3, CFG, ENDPOINT) is None
