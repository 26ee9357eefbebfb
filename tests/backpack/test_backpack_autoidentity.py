"""backpack.autoidentity.AutoIdentity against the Panorama test server (panorama_env)."""

from __future__ import annotations

import datetime
import logging
import sys

import boto3
import pytest

from backpack.autoidentity import AutoIdentity
from tests.support.aws_fixtures import dead_endpoint_url

LIST = "ListApplicationInstances"
README_INSTANCE = "applicationInstance-0123456789abcdefghijklmn"
README_DEVICE = "device-0123456789abcdefghijklmn"
README_REPR = """<AutoIdentity
    application_created_time="2022-02-17 16:38:05.510000+00:00"
    application_description="Sample application description"
    application_instance_id="applicationInstance-0123456789abcdefghijklmn"
    application_name="sample_app"
    application_status="RUNNING"
    application_tags={"foo": "bar"}
    device_id="device-0123456789abcdefghijklmn"
    device_name="my_panorama"
>"""

FAST = {"backoff_initial": 0.01, "backoff_max": 0.05}


def add_readme_instance(server) -> str:
    server.add_device(README_DEVICE, name="my_panorama")
    return server.add_application_instance(
        ApplicationInstanceId=README_INSTANCE,
        Name="sample_app",
        Description="Sample application description",
        Tags={"foo": "bar"},
        DefaultRuntimeContextDevice=README_DEVICE,
        CreatedTime=datetime.datetime(2022, 2, 17, 16, 38, 5, 510000, tzinfo=datetime.timezone.utc),
    )


@pytest.fixture
def server(panorama_env, monkeypatch):
    monkeypatch.delenv("AppGraph_Uid", raising=False)
    return panorama_env.server


def test_finds_its_instance_from_appgraph_uid_across_pages(server, panorama_env, monkeypatch):
    other_device = server.add_device(name="other")
    for i in range(30):  # more than one page (25 a page) before ours
        server.add_application_instance(Name=f"other_{i}", DefaultRuntimeContextDevice=other_device)
    add_readme_instance(server)
    monkeypatch.setenv("AppGraph_Uid", README_INSTANCE)

    identity = AutoIdentity(device_region=panorama_env.region, **FAST)

    assert identity.ready and identity.error is None
    assert identity.application_instance_id == README_INSTANCE
    assert identity.application_name == "sample_app"
    assert identity.application_description == "Sample application description"
    assert identity.application_status == "RUNNING"
    assert identity.application_tags == {"foo": "bar"}
    assert identity.application_created_time == datetime.datetime(
        2022, 2, 17, 16, 38, 5, 510000, tzinfo=datetime.timezone.utc
    )
    assert identity.device_id == README_DEVICE
    assert identity.device_name == "my_panorama"
    assert repr(identity) == README_REPR
    pages = server.calls_to(LIST)
    assert len(pages) == 2 and "NextToken" in pages[1]


def test_stops_paging_once_found_and_argument_beats_environment(server, panorama_env, monkeypatch):
    ours = server.add_application_instance(Name="first")
    for i in range(30):
        server.add_application_instance(Name=f"other_{i}")
    monkeypatch.setenv("AppGraph_Uid", "applicationInstance-somebodyelse000000000000")

    identity = AutoIdentity(panorama_env.region, application_instance_id=ours, **FAST)

    assert identity.ready and identity.application_name == "first"
    assert len(server.calls_to(LIST)) == 1


def test_missing_fields_are_none(server, panorama_env):
    instance_id = server.add_application_instance(Name="bare")
    fields = server.state.instances[instance_id].fields
    for member in ("Tags", "CreatedTime", "HealthStatus"):
        del fields[member]

    identity = AutoIdentity(panorama_env.region, application_instance_id=instance_id, **FAST)

    assert identity.ready
    assert identity.application_name == "bare"
    for name in (
        "application_description",
        "application_status",
        "application_tags",
        "application_created_time",
        "device_id",
        "device_name",
    ):
        assert getattr(identity, name) is None, name
    assert repr(identity) == (
        "<AutoIdentity\n"
        "    application_created_time=None\n"
        "    application_description=None\n"
        f'    application_instance_id="{instance_id}"\n'
        '    application_name="bare"\n'
        "    application_status=None\n"
        "    application_tags=None\n"
        "    device_id=None\n"
        "    device_name=None\n"
        ">"
    )


def test_access_denied_is_retried_until_it_clears(server, panorama_env, caplog):
    instance_id = add_readme_instance(server)
    server.inject(LIST, "AccessDeniedException", times=2)

    with caplog.at_level(logging.WARNING, logger="backpack.autoidentity"):
        identity = AutoIdentity(panorama_env.region, application_instance_id=instance_id, **FAST)

    assert identity.ready and identity.device_name == "my_panorama"
    assert len(server.calls_to(LIST)) == 3
    assert caplog.text.count("retrying in") == 2


@pytest.mark.parametrize("code", ["ThrottlingException", "AccessDeniedException"])
def test_persistent_errors_give_up_without_raising(server, panorama_env, caplog, code):
    instance_id = add_readme_instance(server)
    server.inject(LIST, code, times=None)

    with caplog.at_level(logging.WARNING, logger="backpack.autoidentity"):
        identity = AutoIdentity(
            panorama_env.region, application_instance_id=instance_id, max_retries=2, **FAST
        )

    assert not identity.ready
    assert len(server.calls_to(LIST)) == 3  # 1 + max_retries, botocore adds none
    assert code in identity.error
    assert identity.application_name is None and identity.device_id is None
    assert identity.application_instance_id == instance_id
    assert any(r.levelno == logging.ERROR for r in caplog.records)


def test_validation_errors_are_not_retried(server, panorama_env):
    instance_id = add_readme_instance(server)
    server.inject(LIST, "ValidationException", times=None)
    identity = AutoIdentity(panorama_env.region, application_instance_id=instance_id, **FAST)
    assert not identity.ready
    assert len(server.calls_to(LIST)) == 1


def test_instance_not_listed_is_not_ready_and_not_retried(server, panorama_env):
    server.add_application_instance(Name="someone_else")
    missing = "applicationInstance-notdeployedhere0000000000"

    identity = AutoIdentity(panorama_env.region, application_instance_id=missing, **FAST)

    assert not identity.ready
    assert "not found" in identity.error
    assert len(server.calls_to(LIST)) == 1
    assert f'application_instance_id="{missing}"' in repr(identity)
    assert "application_name=None" in repr(identity)


def test_no_instance_id_anywhere_makes_no_call(server, panorama_env):
    identity = AutoIdentity(panorama_env.region, **FAST)
    assert not identity.ready
    assert "AppGraph_Uid" in identity.error
    assert server.calls == []


def test_refresh_after_a_failed_start(server, panorama_env):
    instance_id = add_readme_instance(server)
    server.inject(LIST, "AccessDeniedException", times=1)
    identity = AutoIdentity(
        panorama_env.region, application_instance_id=instance_id, max_retries=0, **FAST
    )
    assert not identity.ready
    assert identity.refresh() is True
    assert identity.ready and identity.error is None and repr(identity) == README_REPR
    # a later failure keeps what was found
    server.inject(LIST, "AccessDeniedException", times=None)
    assert identity.refresh() is True
    assert identity.error and identity.application_name == "sample_app"


def test_unreachable_endpoint_is_not_raised(server, panorama_env, monkeypatch):
    instance_id = add_readme_instance(server)
    monkeypatch.setenv("AWS_ENDPOINT_URL_PANORAMA", dead_endpoint_url())
    identity = AutoIdentity(
        panorama_env.region, application_instance_id=instance_id, max_retries=1, **FAST
    )
    assert not identity.ready
    assert "Could not connect" in identity.error


def test_given_session_and_parent_logger(server, panorama_env, caplog):
    instance_id = add_readme_instance(server)
    session = boto3.Session(region_name=panorama_env.region)
    with caplog.at_level(logging.INFO, logger="myapp"):
        identity = AutoIdentity(
            panorama_env.region,
            application_instance_id=instance_id,
            parent_logger=logging.getLogger("myapp"),
            boto3_session=session,
            **FAST,
        )
    assert identity.ready
    assert any(r.name == "myapp.AutoIdentity" for r in caplog.records)
    assert "identity found" in caplog.text


def test_without_tenacity_botocore_retries_throttling_only(
    server, panorama_env, monkeypatch, caplog
):
    monkeypatch.setitem(sys.modules, "tenacity", None)
    instance_id = add_readme_instance(server)

    server.inject(LIST, "ThrottlingException", times=1)
    with caplog.at_level(logging.WARNING, logger="backpack.autoidentity"):
        identity = AutoIdentity(panorama_env.region, application_instance_id=instance_id, **FAST)
    assert identity.ready
    assert len(server.calls_to(LIST)) == 2  # botocore's standard mode retried once
    assert "tenacity" in caplog.text

    server.inject(LIST, "AccessDeniedException", times=1)
    denied = AutoIdentity(panorama_env.region, application_instance_id=instance_id, **FAST)
    assert not denied.ready
    assert len(server.calls_to(LIST)) == 3  # AccessDenied: one attempt only


def test_missing_boto3_is_logged_not_raised(monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)
    identity = AutoIdentity("us-east-1", application_instance_id="applicationInstance-x", **FAST)
    assert not identity.ready
    assert "boto3" in identity.error
