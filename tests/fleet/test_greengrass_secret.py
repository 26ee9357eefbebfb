# ruff: noqa: F811 - the fixtures are imported by name
"""The Greengrass bundle's credentials in AWS Secrets Manager: deploy against moto's Secrets
Manager and S3 (real HTTP) and the Greengrass V2 double."""

from __future__ import annotations

import json
from typing import Any

import boto3
import botocore.exceptions
import pytest

from panorama_cli.errors import UserError
from panorama_cli.fleet import greengrass, greengrass_secret
from panorama_cli.fleet.greengrass_deploy import deploy
from tests.fleet.test_greengrass_deploy import (  # noqa: F401 - fixtures
    BUCKET,
    SECRET,
    THING,
    _group_arn,
    _thing_arn,
    api,
    s3,
    session,
    write_bundle,
)


@pytest.fixture
def sm(aws_env: Any) -> Any:
    return boto3.client("secretsmanager", region_name=aws_env.region)


def _ours(sm: Any) -> list[dict[str, Any]]:
    return [s for s in sm.list_secrets()["SecretList"] if s["Name"].startswith("panorama-cli/")]


def test_redeploy_of_a_changed_bundle_updates_the_one_secret(
    tmp_path, aws_env, api, session, s3, sm
):
    bundle, name = write_bundle(tmp_path)
    first = deploy(bundle, session, bucket=BUCKET, target_arn=_thing_arn(aws_env))
    arn = first["components"][0]["secret"]["arn"]
    # the site's camera changed: export wrote a new cameras.json
    moved = "rtsp://admin:n3w-pass@10.0.0.6:554/stream1"
    (bundle / greengrass.SECRETS_FILE).write_text(json.dumps({"lobby": moved}))
    second = deploy(bundle, session, bucket=BUCKET, target_arn=_thing_arn(aws_env))
    assert second["components"][0]["secret"] == {
        "arn": arn, "name": f"panorama-cli/{name}/thing/{THING}", "action": "updated"
    }  # fmt: skip
    assert [s["ARN"] for s in _ours(sm)] == [arn]  # the same secret, not a second one
    versions = sm.list_secret_version_ids(SecretId=arn)["Versions"]
    assert len(versions) == 2
    current = json.loads(sm.get_secret_value(SecretId=arn)["SecretString"])
    assert current["cameras"] == {"lobby": moved}
    # both deployments name the same secret; neither carries the password
    for deployment in api.calls_to("CreateDeployment"):
        merge = deployment["components"]["aws.greengrass.SecretManager"]["configurationUpdate"]
        assert json.loads(merge["merge"]) == {"cloudSecrets": [{"arn": arn}]}
        assert "n3w-pass" not in json.dumps(deployment) and "s3cret" not in json.dumps(deployment)


def test_each_site_has_its_own_secret(tmp_path, aws_env, api, session, s3, sm):
    """Two thing groups (two sites, each with its own camera): two secrets, each deployment
    naming its own; one component version for both."""
    bundle, name = write_bundle(tmp_path)
    site_a = deploy(bundle, session, bucket=BUCKET, target_arn=_group_arn(aws_env, "site-a"))
    (bundle / greengrass.SECRETS_FILE).write_text(json.dumps({"lobby": "rtsp://b:pw-b@10.1.0.5/s"}))
    site_b = deploy(bundle, session, bucket=BUCKET, target_arn=_group_arn(aws_env, "site-b"))
    arn_a, arn_b = (r["components"][0]["secret"]["arn"] for r in (site_a, site_b))
    assert arn_a != arn_b and sorted(s["ARN"] for s in _ours(sm)) == sorted([arn_a, arn_b])
    assert json.loads(sm.get_secret_value(SecretId=arn_a)["SecretString"])["cameras"] == {
        "lobby": SECRET
    }
    assert "pw-b" in sm.get_secret_value(SecretId=arn_b)["SecretString"]
    assert site_b["components"][0]["secret"]["name"].endswith("/thinggroup/site-b")
    assert len(api.calls_to("CreateComponentVersion")) == 1
    for deployment, arn in zip(api.calls_to("CreateDeployment"), (arn_a, arn_b), strict=True):
        merge = json.loads(deployment["components"][name]["configurationUpdate"]["merge"])
        assert merge["secret"] == {"arn": arn}
        (policy,) = merge["accessControl"]["aws.greengrass.SecretManager"].values()
        assert policy["resources"] == [arn]
        manager = deployment["components"]["aws.greengrass.SecretManager"]["configurationUpdate"]
        assert json.loads(manager["merge"]) == {"cloudSecrets": [{"arn": arn}]}


def test_secret_names():
    name = greengrass_secret.secret_name
    assert (
        name("com.x", "arn:aws:iot:us-east-1:1:thing/edge:1") == "panorama-cli/com.x/thing/edge.1"
    )
    assert name("com.x", "arn:aws:iot:us-east-1:1:thing/edge.1".replace(".", "_")) != name(
        "com.x", "arn:aws:iot:us-east-1:1:thing/edge:1"
    )
    assert (
        name("com.x", "arn:aws:iot:us-east-1:1:thinggroup/a") == "panorama-cli/com.x/thinggroup/a"
    )
    with pytest.raises(ValueError, match="not an AWS IoT thing"):
        name("com.x", "arn:aws:iot:us-east-1:1:policy/a")


def test_a_secret_made_meanwhile_is_updated_not_duplicated(aws_env, sm):
    """CreateSecret races another deploy: ResourceExistsException, then PutSecretValue."""
    name = "panorama-cli/com.example.raced"

    class Raced:
        """The real client, but the first DescribeSecret misses a secret made just then."""

        def __init__(self) -> None:
            self.first = True

        def __getattr__(self, attr: str) -> Any:
            return getattr(sm, attr)

        def describe_secret(self, **params: Any) -> Any:
            if self.first:
                self.first = False
                sm.create_secret(Name=name, SecretString="{}")
                raise botocore.exceptions.ClientError(
                    {"Error": {"Code": "ResourceNotFoundException", "Message": "not yet"}},
                    "DescribeSecret",
                )
            return sm.describe_secret(**params)

    result = greengrass_secret.ensure_secret(Raced(), name, '{"a":1}', "com.example.raced")
    assert result.action == "updated" and [s["ARN"] for s in _ours(sm)] == [result.arn]
    assert sm.get_secret_value(SecretId=name)["SecretString"] == '{"a":1}'


def test_secret_scheduled_for_deletion_is_one_line(tmp_path, aws_env, api, session, s3, sm):
    bundle, name = write_bundle(tmp_path)
    secret = greengrass_secret.secret_name(name, _thing_arn(aws_env))
    sm.create_secret(Name=secret, SecretString="{}")
    sm.delete_secret(SecretId=secret, RecoveryWindowInDays=7)
    with pytest.raises(UserError, match="is scheduled for deletion") as caught:
        deploy(bundle, session, bucket=BUCKET, target_arn=_thing_arn(aws_env))
    assert "restore-secret" in (caught.value.hint or "")
    assert api.calls_to("CreateComponentVersion") == [] and api.calls_to("CreateDeployment") == []


def test_a_bundle_of_an_older_version_is_refused(tmp_path, aws_env, api, session, s3, sm):
    """An older recipe read credentials from the configuration: never deploy it again."""
    bundle, _ = write_bundle(tmp_path)
    (recipe_file,) = (bundle / "recipes").glob("*.json")
    recipe = json.loads(recipe_file.read_text())
    default = recipe["ComponentConfiguration"]["DefaultConfiguration"]
    del default["secret"], default["accessControl"]
    default["control"] = {"key": "", "tokens": {}, "serve": ""}
    recipe_file.write_text(json.dumps(recipe))
    with pytest.raises(UserError, match="exported by an older panorama-cli") as caught:
        deploy(bundle, session, bucket=BUCKET, target_arn=_thing_arn(aws_env))
    assert "export the application again" in (caught.value.hint or "")
    assert api.calls == [] and _ours(sm) == []
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


def test_a_bundle_without_its_control_file_is_refused(tmp_path, aws_env, api, session, s3, sm):
    bundle, _ = write_bundle(tmp_path)
    (bundle / greengrass.CONTROL_FILE).unlink()
    with pytest.raises(UserError, match="no secrets/control.json"):
        deploy(bundle, session, bucket=BUCKET, target_arn=_thing_arn(aws_env))
    assert api.calls == [] and _ours(sm) == []


def test_secret_manager_version_is_the_newest_over_pages(aws_env, api):
    gg = boto3.client("greengrassv2", region_name=aws_env.region, endpoint_url=api.endpoint_url)
    api.page_size = 1
    version = greengrass_secret.secret_manager_version(gg, "aws", aws_env.region)
    assert version == "2.2.6"  # not "2.1.8" (text order) nor the last page's
    assert len(api.calls_to("ListComponentVersions")) == 4
    api.public_components["aws.greengrass.SecretManager"] = ["2.1.9", "2.1.10", "2.2.0-rc1"]
    assert greengrass_secret.secret_manager_version(gg, "aws", aws_env.region) == "2.1.10"
    api.public_components.pop("aws.greengrass.SecretManager")
    with pytest.raises(UserError, match="cannot list the versions of aws.greengrass.Secret"):
        greengrass_secret.secret_manager_version(gg, "aws", aws_env.region)


def test_secret_value_holds_everything_and_has_a_bound():
    control = {"key": "ab" * 32, "tokens": {"n": "t"}, "serve": "s"}
    value = greengrass_secret.secret_value({"lobby": SECRET}, control)
    assert json.loads(value) == {"cameras": {"lobby": SECRET}, "control": control}
    assert value == greengrass_secret.secret_value({"lobby": SECRET}, dict(control))
    with pytest.raises(UserError, match="more than 65536 bytes"):
        greengrass_secret.secret_value({"lobby": "rtsp://x/" + "a" * 70000}, control)
