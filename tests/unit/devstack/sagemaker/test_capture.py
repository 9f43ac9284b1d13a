"""Data capture records and S3 keys."""

from __future__ import annotations

import base64
import datetime as dt
import random

import pytest

from devstack.sagemaker.capture import build_record, encoding_for, object_key, should_sample

WHEN = dt.datetime(2026, 3, 2, 9, 15, 27, 648000, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("content_type", "header", "expected"),
    [
        pytest.param("text/csv", None, "CSV", id="csv-default"),
        pytest.param("application/json", None, "JSON", id="json-default"),
        pytest.param("text/csv; charset=utf-8", None, "CSV", id="csv-with-parameters"),
        pytest.param("application/x-npy", None, "BASE64", id="binary"),
        pytest.param("text/csv", {"JsonContentTypes": ["application/json"]}, "BASE64", id="csv-not-listed"),
        pytest.param("application/jsonlines", {"JsonContentTypes": ["application/jsonlines"]}, "JSON", id="listed"),
    ],
)
def test_encoding(content_type: str, header: dict | None, expected: str) -> None:
    config = {"CaptureContentTypeHeader": header} if header else {}
    assert encoding_for(content_type, config) == expected


def test_record_layout() -> None:
    config = {"CaptureOptions": [{"CaptureMode": "InputAndOutput"}]}
    record = build_record(
        config,
        request_body=b"\x00\x01",
        request_content_type="application/x-npy",
        response_body=b"0.5",
        response_content_type="text/csv",
        inference_time=WHEN,
        inference_id="id-1",
        event_id="e-1",
    )
    assert record == {
        "captureData": {
            "endpointInput": {
                "observedContentType": "application/x-npy",
                "mode": "INPUT",
                "data": base64.b64encode(b"\x00\x01").decode(),
                "encoding": "BASE64",
            },
            "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT", "data": "0.5", "encoding": "CSV"},
        },
        "eventMetadata": {"eventId": "e-1", "inferenceTime": "2026-03-02T09:15:27Z", "inferenceId": "id-1"},
        "eventVersion": "0",
    }


def test_object_key_layout() -> None:
    key = object_key("prefix/capture/", "ep", "AllTraffic", WHEN, unique="u")
    assert key == "prefix/capture/ep/AllTraffic/2026/03/02/09/15-27-648-u.jsonl"


def test_sampling() -> None:
    rng = random.Random(4)
    hits = sum(should_sample({"InitialSamplingPercentage": 30}, rng) for _ in range(2000))
    assert 500 < hits < 700
    assert not should_sample({"InitialSamplingPercentage": 0})
    assert should_sample({"InitialSamplingPercentage": 100})
