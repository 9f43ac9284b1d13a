"""The environment the devstack gives a job's subprocess."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from devstack.sagemaker.jobs import job_environment


def _service() -> SimpleNamespace:
    return SimpleNamespace(region="us-east-1", aws_endpoint_url="http://127.0.0.1:1", url="http://127.0.0.1:2")


@pytest.mark.parametrize(
    ("outer", "extra", "expected"),
    [
        pytest.param(None, {}, "PASSIVE", id="passive-by-default"),
        pytest.param("ACTIVE", {}, "ACTIVE", id="caller-environment-kept"),
        pytest.param(None, {"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE", id="job-environment-wins"),
    ],
)
def test_openmp_threads_wait_passively_unless_asked_otherwise(monkeypatch, outer, extra, expected):
    if outer is None:
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    else:
        monkeypatch.setenv("OMP_WAIT_POLICY", outer)
    env = job_environment(_service(), extra)
    assert env["OMP_WAIT_POLICY"] == expected
    assert env["AWS_ENDPOINT_URL_SAGEMAKER"] == "http://127.0.0.1:2"
