"""greengrass_deploy.deploy against moto's S3 and the Greengrass V2 double (real HTTP both).

moto (ThreadedMotoServer, the ``aws_env`` fixture) has S3 but no Greengrass V2; the double
(:mod:`tests.support.greengrass_api`) checks every request against botocore's greengrassv2
model and checks the artifacts of a new component version in moto's S3.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import urllib.request
from pathlib import Path

import boto3
import botocore.config
import botocore.exceptions
import pytest

from panorama_cli.errors import UserError
from panorama_cli.fleet import greengrass
from panorama_cli.fleet.greengrass import ImageArchive
from panorama_cli.fleet.greengrass_deploy import deploy
from tests.fleet.sample_app import sample_app
from tests.support.aws_fixtures import dead_endpoint_url
from tests.support.greengrass_api import GreengrassApi, Outcome

BUCKET = "gg-artifacts"
THING = "edge-1"
SECRET = "rtsp://admin:s3cret@10.0.0.5:554/stream1"


@pytest.fixture
def api(aws_env, monkeypatch):
    with GreengrassApi(
        region=aws_env.region, account_id=aws_env.account_id, s3_endpoint=aws_env.endpoint_url
    ) as double:
        monkeypatch.setenv("AWS_ENDPOINT_URL_GREENGRASSV2", double.endpoint_url)
        double.add_core_device(THING)
        yield double
    assert double.internal_errors == []


@pytest.fixture
def session(aws_env):
    return boto3.Session(region_name=aws_env.region)


@pytest.fixture
def s3(aws_env):
    client = boto3.client("s3", region_name=aws_env.region)
    client.create_bucket(Bucket=BUCKET)
    return client


def _thing_arn(aws_env, name: str = THING) -> str:
    return f"arn:aws:iot:{aws_env.region}:{aws_env.account_id}:thing/{name}"


def _group_arn(aws_env, name: str = "site-a") -> str:
    return f"arn:aws:iot:{aws_env.region}:{aws_env.account_id}:thinggroup/{name}"


def write_bundle(tmp_path: Path, *, registry: bool = False) -> tuple[Path, str]:
    """An export bundle as export writes it: recipe, secret file, archives, camera file."""
    app = sample_app(tmp_path)
    name = greengrass.component_name_for("123456789012", app.name)
    bundle = tmp_path / "bundle"
    archives = None
    if not registry:
        archives = {}
        for image in app.images:
            rel = greengrass.archive_path(name, app.semver, image)
            data = f"docker save of {image}".encode() * 100
            (bundle / rel).parent.mkdir(parents=True, exist_ok=True)
            (bundle / rel).write_bytes(data)
            archives[image] = ImageArchive(image, rel, hashlib.sha256(data).hexdigest(), len(data))
    for bundle_file in app.files:
        (bundle / bundle_file.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bundle_file.source, bundle / bundle_file.path)
    for out in greengrass.render(app, component_name=name, archives=archives):
        (bundle / out.path).parent.mkdir(parents=True, exist_ok=True)
        (bundle / out.path).write_bytes(out.content)
        if out.private:
            (bundle / out.path).chmod(0o600)
    return bundle, name


def test_full_deploy_then_nothing_to_do(tmp_path, aws_env, api, session, s3):
    bundle, name = write_bundle(tmp_path)
    lines: list[str] = []
    result = deploy(
        bundle, session, bucket=BUCKET, target_arn=_thing_arn(aws_env), notify=lines.append
    )

    version = "1.0.19088743"
    prefix = f"artifacts/{name}/{version}/"
    assert sorted(result["uploaded"]) == sorted(
        prefix + f
        for f in (
            "panorama-cli_people-counter-serve_0123456789ab.tar",
            "panorama-cli_people-counter-node-people-counter_fedcba987654.tar",
            "cameras/front_door.avi",
        )
    )
    assert result["skipped"] == [] and result["status"] == "SUBMITTED"
    (component,) = result["components"]
    secret = component.pop("secret")
    assert component == {
        "name": name,
        "version": version,
        "arn": api.component_arn(name, version),
        "created": True,
    }
    assert secret["name"] == f"panorama-cli/{name}/thing/{THING}" and secret["action"] == "created"
    arn = secret["arn"]
    assert arn.startswith(f"arn:aws:secretsmanager:{aws_env.region}:{aws_env.account_id}:secret:")
    # the objects carry their sha256; the camera file came from bundle/cameras/
    for key in result["uploaded"]:
        head = s3.head_object(Bucket=BUCKET, Key=key)
        local = bundle / key if (bundle / key).exists() else bundle / key[len(prefix) :]
        assert head["Metadata"]["sha256"] == hashlib.sha256(local.read_bytes()).hexdigest()

    (create,) = api.calls_to("CreateComponentVersion")
    recipe = json.loads(base64.b64decode(create["inlineRecipe"]))
    text = json.dumps(recipe)
    assert greengrass.BUCKET_PLACEHOLDER not in text and SECRET not in text and "s3cret" not in text
    assert greengrass.SECRET_ARN_PLACEHOLDER not in text
    # the recipe: SecretManager as a HARD dependency, GetSecretValue on this secret only
    assert recipe["ComponentDependencies"]["aws.greengrass.SecretManager"]["DependencyType"] == (
        "HARD"
    )
    default = recipe["ComponentConfiguration"]["DefaultConfiguration"]
    assert default["secret"] == {"arn": arn}
    (policy,) = default["accessControl"]["aws.greengrass.SecretManager"].values()
    assert policy["operations"] == ["aws.greengrass#GetSecretValue"] and policy["resources"] == [
        arn
    ]
    artifacts = recipe["Manifests"][0]["Artifacts"]
    assert all(a["Uri"].startswith(f"s3://{BUCKET}/") for a in artifacts)
    assert all(a["Algorithm"] == "SHA-256" and a["Digest"] for a in artifacts)  # camera file's too
    assert api.components[(name, version)]["status"]["componentState"] == "DEPLOYABLE"

    (deployment,) = api.calls_to("CreateDeployment")
    assert deployment["targetArn"] == _thing_arn(aws_env)
    spec = deployment["components"][name]
    assert spec["componentVersion"] == version
    merge = json.loads(spec["configurationUpdate"]["merge"])
    assert merge == {"secret": {"arn": arn}, "accessControl": default["accessControl"]}
    # where older versions merged credentials: reset, so the device's configuration loses them
    assert spec["configurationUpdate"]["reset"] == ["/control", "/cameras/lobby"]
    # SecretManager, at its newest version (semver, not text order), brings the secret
    manager = deployment["components"]["aws.greengrass.SecretManager"]
    assert manager["componentVersion"] == result["secretManagerVersion"] == "2.2.6"
    assert json.loads(manager["configurationUpdate"]["merge"]) == {"cloudSecrets": [{"arn": arn}]}
    # no password, key or token anywhere in the deployment or the recipe: only in the secret
    control = json.loads((bundle / greengrass.CONTROL_FILE).read_text())
    sent = json.dumps(deployment) + text
    for value in ("s3cret", control["key"], control["serve"], *control["tokens"].values()):
        assert value not in sent
    sm = boto3.client("secretsmanager", region_name=aws_env.region)
    held = json.loads(sm.get_secret_value(SecretId=arn)["SecretString"])
    assert held == {"cameras": {"lobby": SECRET}, "control": control}
    assert set(control["tokens"]) == {"people_counter"}
    assert any("secretsmanager:GetSecretValue" in line and arn in line for line in lines)
    assert result["deploymentId"] in api.deployments
    assert any("created" in line for line in lines)

    again = deploy(bundle, session, bucket=BUCKET, target_arn=_thing_arn(aws_env))
    assert again["uploaded"] == [] and sorted(again["skipped"]) == sorted(result["uploaded"])
    assert again["components"][0]["created"] is False
    assert again["components"][0]["secret"] == {**secret, "action": "unchanged"}
    assert len(sm.list_secret_version_ids(SecretId=arn)["Versions"]) == 1
    assert len(api.calls_to("CreateComponentVersion")) == 1  # not recreated, not even tried
    assert len(api.calls_to("CreateDeployment")) == 2


def test_changed_object_is_uploaded_again(tmp_path, aws_env, api, session, s3):
    bundle, name = write_bundle(tmp_path, registry=True)
    key = f"artifacts/{name}/1.0.19088743/cameras/front_door.avi"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"something else", Metadata={"sha256": "00" * 32})
    result = deploy(bundle, session, bucket=BUCKET, target_arn=_thing_arn(aws_env))
    assert result["uploaded"] == [key]
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert body == (bundle / "cameras/front_door.avi").read_bytes()
    (create,) = api.calls_to("CreateComponentVersion")
    recipe = json.loads(base64.b64decode(create["inlineRecipe"]))
    assert [a["Uri"] for a in recipe["Manifests"][0]["Artifacts"]][:2] == [
        f"docker:{image}" for image in sample_app().images
    ]


def test_wait_success_on_a_thing_group(tmp_path, aws_env, api, session, s3):
    group = _group_arn(aws_env)
    api.add_core_device("edge-2", group)
    api.add_core_device("edge-3", group)
    api.script("edge-2", Outcome(polls=2))
    api.script("edge-3", Outcome(polls=3, status="COMPLETED"))
    bundle, _ = write_bundle(tmp_path)
    lines: list[str] = []
    result = deploy(
        bundle, session, bucket=BUCKET, target_arn=group, wait=True, poll_s=0.01, timeout_s=30,
        notify=lines.append,
    )  # fmt: skip
    assert result["status"] == "SUCCEEDED"
    assert result["devices"] == {"edge-2": "SUCCEEDED", "edge-3": "COMPLETED"}
    assert len(api.calls_to("ListEffectiveDeployments")) >= 6
    assert api.calls_to("GetDeployment")
    assert any("IN_PROGRESS" in line for line in lines)


def test_wait_failure_names_the_reason(tmp_path, aws_env, api, session, s3):
    api.script(
        THING,
        Outcome(polls=1, status="FAILED", reason="Component com.x errored: docker load failed",
                error_types=("COMPONENT_ERROR",)),
    )  # fmt: skip
    bundle, _ = write_bundle(tmp_path)
    with pytest.raises(UserError) as caught:
        deploy(
            bundle, session, bucket=BUCKET, target_arn=_thing_arn(aws_env), wait=True, poll_s=0.01
        )
    message = str(caught.value)
    assert "FAILED on core device edge-1" in message
    assert "docker load failed" in message and "COMPONENT_ERROR" in message
    assert "\n" not in message


def test_wait_timeout(tmp_path, aws_env, api, session, s3):
    api.script(THING, Outcome(polls=10**6))
    bundle, _ = write_bundle(tmp_path)
    with pytest.raises(UserError, match="not finished after"):
        deploy(bundle, session, bucket=BUCKET, target_arn=_thing_arn(aws_env), wait=True,
               poll_s=0.01, timeout_s=0.3)  # fmt: skip


def test_no_such_bucket(tmp_path, aws_env, api, session):
    bundle, _ = write_bundle(tmp_path)
    with pytest.raises(UserError, match="the S3 bucket 'missing-bucket' does not exist") as caught:
        deploy(bundle, session, bucket="missing-bucket", target_arn=_thing_arn(aws_env))
    assert caught.value.hint and "--bucket" in caught.value.hint
    assert api.calls == []


def test_recipe_rejected_by_the_service(tmp_path, aws_env, api, session, s3):
    bundle, name = write_bundle(tmp_path)
    (recipe_file,) = (bundle / "recipes").glob("*.json")
    recipe = json.loads(recipe_file.read_text())
    recipe["RecipeFormatVersion"] = "2019-01-01"
    recipe_file.write_text(json.dumps(recipe))
    with pytest.raises(UserError, match="Greengrass rejected the recipe .*RecipeFormatVersion"):
        deploy(bundle, session, bucket=BUCKET, target_arn=_thing_arn(aws_env))
    assert api.rejections and api.calls_to("CreateDeployment") == []


def test_changed_bundle_file_is_refused(tmp_path, aws_env, api, session, s3):
    bundle, name = write_bundle(tmp_path)
    (archive,) = [p for p in (bundle / "artifacts").rglob("*.tar") if "serve" in p.name]
    archive.write_bytes(b"tampered")
    with pytest.raises(UserError, match="does not match its digest"):
        deploy(bundle, session, bucket=BUCKET, target_arn=_thing_arn(aws_env))


def test_endpoint_not_reachable(tmp_path, aws_env, api, session, s3, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_GREENGRASSV2", dead_endpoint_url())
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    bundle, _ = write_bundle(tmp_path)
    with pytest.raises(UserError, match="cannot connect to AWS endpoint") as caught:
        deploy(bundle, boto3.Session(region_name=aws_env.region), bucket=BUCKET,
               target_arn=_thing_arn(aws_env))  # fmt: skip
    assert "AWS_ENDPOINT_URL" in (caught.value.hint or "")


def test_bad_target_and_empty_bundle(tmp_path, aws_env, session):
    bundle, _ = write_bundle(tmp_path)
    with pytest.raises(UserError, match="not an AWS IoT thing"):
        deploy(bundle, session, bucket=BUCKET, target_arn="arn:aws:iot:us-east-1:1:policy/x")
    with pytest.raises(UserError, match="no Greengrass recipe"):
        deploy(tmp_path / "empty", session, bucket=BUCKET, target_arn=_thing_arn(aws_env))


# -- the double checks what it is sent --------------------------------------------------------


def _unchecked_client(aws_env, api):
    """A greengrassv2 client that skips botocore's own parameter validation."""
    return boto3.client(
        "greengrassv2",
        region_name=aws_env.region,
        endpoint_url=api.endpoint_url,
        config=botocore.config.Config(parameter_validation=False, retries={"max_attempts": 1}),
    )


def _code(exc: botocore.exceptions.ClientError) -> tuple[str, int]:
    return exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]


def test_the_double_rejects_invalid_requests(aws_env, api):
    client = _unchecked_client(aws_env, api)
    cases = [
        lambda: client.create_component_version(inlineRecipe=b"not json"),
        lambda: client.create_component_version(
            inlineRecipe=json.dumps({"ComponentName": "a"}).encode()
        ),
        lambda: client.create_component_version(),
        lambda: client.create_deployment(deploymentName="no target"),  # required member missing
        lambda: client.create_deployment(targetArn=12345),  # wrong type
        lambda: client.create_deployment(targetArn="arn:aws:iot:us-east-1:1:policy/x"),  # pattern
        lambda: client.create_deployment(
            targetArn=_thing_arn(aws_env),
            components={"c": {"configurationUpdate": {"merge": "{}"}}},
        ),  # componentVersion required in the map's values
        lambda: client.create_deployment(
            targetArn=_thing_arn(aws_env),
            components={"c": {"componentVersion": "1.0.0", "configurationUpdate": {"merge": "{"}}},
        ),  # merge is not JSON
        lambda: client.list_effective_deployments(coreDeviceThingName=THING, maxResults="many"),
    ]
    for i, call in enumerate(cases):
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            call()
        assert _code(caught.value) == ("ValidationException", 400), i
    assert len(api.rejections) == len(cases)
    assert api.components == {} and api.deployments == {}


def test_the_double_rejects_unknown_members_and_bad_base64(aws_env, api):
    """Raw signed requests: botocore's serializer would never send these."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    credentials = boto3.Session().get_credentials()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def post(path: str, body: dict) -> tuple[int, str, dict]:
        request = AWSRequest("POST", api.endpoint_url + path, data=json.dumps(body).encode(),
                             headers={"Content-Type": "application/json"})  # fmt: skip
        SigV4Auth(credentials, "greengrass", aws_env.region).add_auth(request)
        prepared = request.prepare()
        raw = urllib.request.Request(
            prepared.url, data=prepared.body, headers=dict(prepared.headers), method="POST"
        )
        try:
            with opener.open(raw, timeout=10) as response:
                return response.status, "", json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("x-amzn-ErrorType", ""), json.loads(exc.read())

    status, code, body = post(
        "/greengrass/v2/deployments", {"targetArn": _thing_arn(aws_env), "bogus": 1}
    )
    assert (status, code) == (400, "ValidationException") and "bogus" in body["message"]
    status, code, body = post(
        "/greengrass/v2/createComponentVersion", {"inlineRecipe": "%%% not base64"}
    )
    assert (status, code) == (400, "ValidationException") and "base64" in body["message"]
    # unsigned: refused before anything else
    raw = urllib.request.Request(
        api.endpoint_url + "/greengrass/v2/deployments", data=b"{}", method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        opener.open(raw, timeout=10)
    assert caught.value.code == 403


def test_the_double_answers_in_the_output_shapes(aws_env, api):
    """What botocore parses back: the output members the model declares."""
    client = boto3.client("greengrassv2", region_name=aws_env.region, endpoint_url=api.endpoint_url)
    recipe = {"RecipeFormatVersion": "2020-01-25", "ComponentName": "com.example.x", "ComponentVersion": "1.0.0",
              "Manifests": [{"Platform": {"os": "linux"}}]}  # fmt: skip
    made = client.create_component_version(inlineRecipe=json.dumps(recipe).encode())
    assert made["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert (
        made["status"]["componentState"] == "DEPLOYABLE" and made["creationTimestamp"].year >= 2024
    )
    with pytest.raises(client.exceptions.ConflictException):
        client.create_component_version(inlineRecipe=json.dumps(recipe).encode())
    described = client.describe_component(arn=made["arn"])
    assert described["componentName"] == "com.example.x"
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_component(arn=api.component_arn("com.example.x", "9.9.9"))
    deployment = client.create_deployment(
        targetArn=_thing_arn(aws_env), components={"com.example.x": {"componentVersion": "1.0.0"}}
    )
    got = client.get_deployment(deploymentId=deployment["deploymentId"])
    assert (
        got["deploymentStatus"] == "ACTIVE"
        and got["components"]["com.example.x"]["componentVersion"] == "1.0.0"
    )
    pages = client.get_paginator("list_effective_deployments").paginate(coreDeviceThingName=THING)
    entries = [e for page in pages for e in page["effectiveDeployments"]]
    assert [e["coreDeviceExecutionStatus"] for e in entries] == ["IN_PROGRESS"]
