"""The pieces every SageMaker action handler shares: List* answers, not-found lookups, Stop* checks, control JSON."""

from __future__ import annotations

import io
import json
import threading

import pytest

from devstack.once import once
from devstack.sagemaker.common import Listing, page_response, read_json, require, send_json, stop_wanted
from devstack.sagemaker.errors import SageMakerError, resource_not_found

RECORDS = [
    {"ThingName": "alpha", "ThingStatus": "Ready", "CreationTime": 10.0, "Secret": "x"},
    {"ThingName": "beta", "ThingStatus": "Failed", "CreationTime": 20.0, "Secret": "x"},
    {"ThingName": "alphabet", "ThingStatus": "Ready", "CreationTime": 30.0, "Secret": "x"},
]
LISTING = Listing("Things", "ThingName", ("ThingName", "ThingStatus"), status_key="ThingStatus")


def test_listing_filters_sorts_and_summarises() -> None:
    answer = LISTING.answer(RECORDS, {"NameContains": "ALPHA", "StatusEquals": "Ready"})

    assert answer == {
        "Things": [{"ThingName": "alphabet", "ThingStatus": "Ready"}, {"ThingName": "alpha", "ThingStatus": "Ready"}]
    }


def test_listing_sort_by_name_and_status_and_creation_window() -> None:
    by_name = LISTING.answer(RECORDS, {"SortBy": "Name", "SortOrder": "Ascending"})
    by_status = LISTING.answer(RECORDS, {"SortBy": "Status", "SortOrder": "Ascending", "CreationTimeAfter": 10})

    assert [t["ThingName"] for t in by_name["Things"]] == ["alpha", "alphabet", "beta"]
    assert [t["ThingName"] for t in by_status["Things"]] == ["beta", "alphabet"]


def test_listing_without_status_key_has_no_status_sort() -> None:
    with pytest.raises(KeyError):
        Listing("Things", "ThingName").answer(RECORDS, {"SortBy": "Status"})


def test_listing_pages_with_next_token_to_the_end() -> None:
    first = LISTING.answer(RECORDS, {"MaxResults": 2})
    second = LISTING.answer(RECORDS, {"MaxResults": 2, "NextToken": first["NextToken"]})

    assert len(first["Things"]) == 2
    assert "NextToken" not in second
    assert [t["ThingName"] for t in first["Things"] + second["Things"]] == ["alphabet", "beta", "alpha"]


def test_page_response_rejects_a_forged_token() -> None:
    with pytest.raises(SageMakerError, match="NextToken"):
        page_response(RECORDS, {"NextToken": "not-a-token"}, "Things")


def test_require_returns_the_record_or_raises_the_given_error() -> None:
    record = {"desc": {}}
    assert require(record, resource_not_found("no")) is record
    with pytest.raises(SageMakerError, match="no such thing") as caught:
        require(None, resource_not_found("no such thing"))
    assert caught.value.code == "ResourceNotFound"


@pytest.mark.parametrize(("status", "wanted"), [("InProgress", True), ("Stopping", False)])
def test_stop_wanted(status: str, wanted: bool) -> None:
    assert stop_wanted(status, "transform") is wanted


def test_stop_of_an_ended_job_is_a_validation_error() -> None:
    with pytest.raises(SageMakerError, match="transform job is in status Completed") as caught:
        stop_wanted("Completed", "transform")
    assert caught.value.code == "ValidationException"


class _Request:
    def __init__(self, body: bytes) -> None:
        self.headers = {"Content-Length": str(len(body))}
        self.rfile = io.BytesIO(body)
        self.wfile = io.BytesIO()
        self.sent: list[tuple[str, str]] = []
        self.status = 0

    def send_response(self, status: int) -> None:
        self.status = status

    def send_header(self, name: str, value: str) -> None:
        self.sent.append((name, value))

    def end_headers(self) -> None:
        pass


def test_read_json_of_an_empty_body_is_an_empty_object() -> None:
    assert read_json(_Request(b"")) == {}
    assert read_json(_Request(b'{"a": 1}')) == {"a": 1}
    with pytest.raises(json.JSONDecodeError):
        read_json(_Request(b"{not json"))


def test_send_json_writes_status_type_and_length() -> None:
    request = _Request(b"")
    send_json(request, 404, {"message": "none"})

    body = request.wfile.getvalue()
    assert request.status == 404
    assert request.sent == [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    assert body == b'{"message": "none"}'


def test_once_runs_the_install_a_single_time_across_threads() -> None:
    calls: list[int] = []
    install = once(lambda: calls.append(1))
    threads = [threading.Thread(target=install) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    install()

    assert calls == [1]


def test_once_runs_again_after_a_failed_install() -> None:
    attempts: list[int] = []

    def flaky() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")

    install = once(flaky)
    with pytest.raises(RuntimeError):
        install()
    install()
    install()

    assert len(attempts) == 2


@pytest.mark.parametrize("module", ["devstack.sagemaker.server", "devstack.sagemaker.model_server"])
def test_the_http_servers_answer_without_waiting_for_delayed_acks(module: str) -> None:
    """Headers and body are two writes: with Nagle's algorithm on, each response of a kept-alive connection
    waits for the client's delayed ACK (about 40 ms on Linux), on every SageMaker call and invocation."""
    import importlib

    handler = importlib.import_module(module)._Handler
    assert handler.disable_nagle_algorithm is True
    assert handler.protocol_version == "HTTP/1.1"
