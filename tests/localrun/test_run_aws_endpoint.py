"""run --aws-endpoint-url: an app that reads S3 and Secrets Manager runs against a local AWS
server (moto's, a real HTTP server on 127.0.0.1) from inside the real sandbox, with test
credentials and a region and nothing of the runner's AWS settings; bad URLs are one line."""

from __future__ import annotations

import json

import pytest

from panorama_cli.errors import UsageError
from panorama_cli.localrun.apps import appliance
from tests.localrun.helpers import make_project
from tests.support.aws_fixtures import reset_moto
from tests.support.cli_runner import run_cli_subprocess

APP = """
import json, os
import boto3

s3 = boto3.client("s3")
body = s3.get_object(Bucket="site-config", Key="zones.json")["Body"].read().decode()
secret = boto3.client("secretsmanager").get_secret_value(SecretId="camera-password")
print("zones:", body)
print("secret:", secret["SecretString"])
aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
json.dump({"zones": body, "secret": secret["SecretString"], "boto3": boto3.__version__,
           "aws": aws}, open("/opt/aws/panorama/storage/aws.json", "w"))
"""


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")[:2])


def test_an_app_reads_s3_and_a_secret_from_a_local_server(tmp_path, moto_server, monkeypatch):
    import boto3

    reset_moto(moto_server)
    local = {
        "endpoint_url": moto_server,
        "region_name": "us-east-1",
        "aws_access_key_id": "x",
        "aws_secret_access_key": "x",
    }
    s3 = boto3.client("s3", **local)
    s3.create_bucket(Bucket="site-config")
    s3.put_object(Bucket="site-config", Key="zones.json", Body=b'{"door": [0, 0, 10, 10]}')
    secrets = boto3.client("secretsmanager", **local)
    secrets.create_secret(Name="camera-password", SecretString="hunter2")
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "the-runners-own")  # never reaches the app
    root = make_project(tmp_path, APP, cameras=(), params={}, hdmi=False)
    out = tmp_path / "out"
    result = run_cli_subprocess(
        ["run", "--aws-endpoint-url", moto_server, "--output-dir", str(out)], cwd=root
    )
    assert 'zones: {"door": [0, 0, 10, 10]}' in result.stderr, result.describe()
    assert "secret: hunter2" in result.stderr
    seen = json.loads((out / "storage" / "aws.json").read_text())
    assert _version(seen["boto3"]) >= (1, 28)  # the first boto3 that reads AWS_ENDPOINT_URL
    assert seen["aws"]["AWS_ENDPOINT_URL"] == moto_server
    assert seen["aws"]["AWS_ACCESS_KEY_ID"] == "test"
    assert seen["aws"]["AWS_REGION"] == seen["aws"]["AWS_DEFAULT_REGION"]
    assert "AWS_SESSION_TOKEN" not in seen["aws"] and "AWS_PROFILE" not in seen["aws"]
    assert seen["aws"]["AWS_SHARED_CREDENTIALS_FILE"] == "/dev/null"


def test_without_the_flag_the_app_has_no_credentials(tmp_path, moto_server, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)  # the runner's: never the app's
    root = make_project(tmp_path, APP, cameras=(), params={}, hdmi=False)
    result = run_cli_subprocess(["run", "--output-dir", str(tmp_path / "out")], cwd=root)
    assert result.exit_code == 1
    assert "NoCredentialsError" in result.stderr, result.describe()


def test_the_environment_with_a_profile_keeps_the_profile():
    env = appliance.app_environment(
        {}, shims=False, aws_profile="dev", endpoint_url="http://127.0.0.1:5000"
    )
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5000" and env["AWS_PROFILE"] == "dev"
    assert "AWS_ACCESS_KEY_ID" not in env
    assert "AWS_ENDPOINT_URL" not in appliance.app_environment({}, shims=False, aws_profile=None)


@pytest.mark.parametrize(
    ("url", "in_container", "message"),
    [
        ("ftp://127.0.0.1:21", False, "give an http:// or https:// URL with a host"),
        ("http://", False, "give an http:// or https:// URL with a host"),
        ("http://user:pw@127.0.0.1:5000", False, "no user or password in the URL"),
        ("http://127.0.0.1:99999", False, "not a URL"),
        ("http://127.0.0.1:5000/?x=1", False, "no spaces, query or fragment"),
        ("http://127.0.0.1:5000", True, "the app's 127.0.0.1 is its container's own"),
        ("http://localhost:4566", True, "the app's localhost is its container's own"),
    ],
)
def test_a_bad_endpoint_url_is_one_line(url, in_container, message):
    with pytest.raises(UsageError, match=message.replace("?", r"\?")) as caught:
        appliance.endpoint_url(url, in_container=in_container)
    if in_container:
        assert "http://host.docker.internal:" in caught.value.hint
    assert appliance.endpoint_url("http://127.0.0.1:5000", in_container=False)
    assert appliance.endpoint_url("http://host.docker.internal:5000", in_container=True)


def test_serve_takes_the_flag_and_its_systemd_unit_keeps_it(tmp_path):
    import shlex

    root = make_project(tmp_path, APP, cameras=(), params={}, hdmi=False)
    url = "http://127.0.0.1:4566"
    unit = run_cli_subprocess(["serve", "--aws-endpoint-url", url, "--systemd-unit"], cwd=root)
    assert unit.exit_code == 0, unit.describe()
    [start] = [line for line in unit.stdout.splitlines() if line.startswith("ExecStart=")]
    words = shlex.split(start.split("=", 1)[1])
    assert words[words.index("--aws-endpoint-url") + 1] == url
    bad = run_cli_subprocess(["serve", "--aws-endpoint-url", "ftp://x", "--systemd-unit"], cwd=root)
    assert bad.exit_code == 2 and "give an http:// or https:// URL" in bad.stderr
