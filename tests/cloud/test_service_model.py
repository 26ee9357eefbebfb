"""The shipped Panorama service model and how sessions find it."""

from __future__ import annotations

import json

import boto3
import botocore
import botocore.exceptions
import pytest

from backpack import service_model
from panorama_cli.cloud.aws.session import make_client, make_session
from tests.support import service_model_tool as tool
from tests.support.shared import require


def test_shipped_files_are_the_trimmed_reference():
    require(tool.REFERENCE_DIR / "panorama-2019-07-24.service-2.json")
    for name, doc in tool.derive().items():
        shipped = tool.SHIPPED_DIR / name
        assert shipped.read_text() == tool.render(doc), (
            f"{shipped} is stale: run python -m tests.support.service_model_tool --write"
        )


def test_shipped_model_keeps_the_reference_operations_exactly():
    require(tool.REFERENCE_DIR / "panorama-2019-07-24.service-2.json")
    reference = json.loads((tool.REFERENCE_DIR / "panorama-2019-07-24.service-2.json").read_text())
    shipped = json.loads((tool.SHIPPED_DIR / "service-2.json").read_text())
    assert shipped["metadata"] == reference["metadata"]
    for name, op in shipped["operations"].items():
        ref = {k: v for k, v in reference["operations"][name].items() if k != "documentation"}
        assert op == ref
    assert "documentation" not in json.dumps(shipped)


def test_current_botocore_lacks_panorama_and_our_session_has_it(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with pytest.raises(botocore.exceptions.UnknownServiceError):
        boto3.Session().client("panorama")
    client = make_client(make_session(), "panorama")
    assert client.meta.service_model.api_version == "2019-07-24"
    assert client.can_paginate("list_application_instances")


def test_user_models_win_over_the_shipped_one(tmp_path, monkeypatch):
    """A model in AWS_DATA_PATH (or ~/.aws/models) takes precedence: ours is appended."""
    folder = tmp_path / "panorama" / "2019-07-24"
    folder.mkdir(parents=True)
    model = json.loads((tool.SHIPPED_DIR / "service-2.json").read_text())
    model["operations"] = {"ListPackages": model["operations"]["ListPackages"]}
    (folder / "service-2.json").write_text(json.dumps(model))
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = make_client(make_session(), "panorama")
    assert client.meta.service_model.operation_names == ["ListPackages"]


def test_add_to_session_is_idempotent_and_rejects_other_objects():
    session = boto3.Session(region_name="us-east-1")
    service_model.add_to_session(session)
    service_model.add_to_session(session)
    paths = session._session.get_component("data_loader").search_paths
    assert paths.count(str(service_model.DATA_PATH)) == 1
    with pytest.raises(TypeError):
        service_model.add_to_session(object())
