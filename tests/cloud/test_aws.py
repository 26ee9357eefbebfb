"""panorama_cli.cloud.aws against a moto server, over real HTTP on 127.0.0.1.

The server and the isolated AWS environment come from tests/support/aws_fixtures.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from panorama_cli.cloud.aws import s3
from panorama_cli.cloud.aws.s3 import download, parse_s3_uri
from panorama_cli.cloud.aws.session import make_client, make_session, translate_client_error
from panorama_cli.cloud.aws.sts import caller_account_id
from panorama_cli.errors import UserError
from tests.support.aws_fixtures import dead_endpoint_url

REPO = Path(__file__).resolve().parents[2]
BUCKET = "models-bucket"


def _put(session, key: str, data: bytes, bucket: str = BUCKET) -> str:
    client = make_client(session, "s3")
    try:
        client.head_bucket(Bucket=bucket)
    except Exception:
        client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key=key, Body=data)
    return f"s3://{bucket}/{key}"


def _listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# --------------------------------------------------------------------------- downloads


def test_multipart_download_matches_upload_and_reports_progress(aws_env, tmp_path):
    session = make_session()
    size = 2 * s3.MULTIPART_CHUNKSIZE + 12_345  # > threshold: three ranged GETs
    assert size > s3.MULTIPART_THRESHOLD
    data = os.urandom(size)
    uri = _put(session, "raw_models/squeezenet.tar.gz", data)

    get_params: list[dict] = []

    def record(params, **_):
        get_params.append(dict(params))

    session.events.register("before-parameter-build.s3.GetObject", record)

    progress: list[int] = []
    sizes: list[int] = []
    dest = tmp_path / "callable_squeezenet.tar.gz"
    result = download(uri, dest, session=session, progress=progress.append, on_size=sizes.append)

    assert result == dest
    assert dest.read_bytes() == data
    assert sizes == [size]
    assert sum(progress) == size
    assert len(get_params) == 3, get_params
    assert all("Range" in p for p in get_params)
    assert sorted(p["Range"] for p in get_params)[0].startswith("bytes=0-")
    assert [p.name for p in tmp_path.iterdir()] == [dest.name]  # no temp files left


def test_small_download_replaces_existing_file(aws_env, tmp_path):
    session = make_session()
    uri = _put(session, "descriptor.json", b'{"new": true}')
    dest = tmp_path / "descriptor.json"
    dest.write_bytes(b"old")
    download(uri, dest, session=session)
    assert dest.read_bytes() == b'{"new": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["descriptor.json"]


def test_missing_key_is_a_user_error(aws_env, tmp_path):
    session = make_session()
    _put(session, "present.bin", b"x")
    sizes: list[int] = []
    with pytest.raises(UserError) as info:
        download(
            f"s3://{BUCKET}/absent.bin", tmp_path / "a.bin", session=session, on_size=sizes.append
        )
    assert info.value.message == f"no object at s3://{BUCKET}/absent.bin"
    assert info.value.hint
    assert sizes == []
    assert list(tmp_path.iterdir()) == []


def test_missing_bucket_is_a_user_error(aws_env, tmp_path):
    with pytest.raises(UserError, match="no object at s3://no-such-bucket/k"):
        download("s3://no-such-bucket/k", tmp_path / "k", session=make_session())
    assert list(tmp_path.iterdir()) == []


def test_access_denied_is_a_user_error(aws_env, tmp_path):
    from botocore.awsrequest import AWSResponse

    class _EmptyRaw:
        def stream(self, **_):
            yield b""

    session = make_session()
    uri = _put(session, "secret.bin", b"x")

    def forbid(request, **_):
        return AWSResponse(request.url, 403, {}, _EmptyRaw())

    session.events.register("before-send.s3.HeadObject", forbid)
    with pytest.raises(UserError) as info:
        download(uri, tmp_path / "secret.bin", session=session)
    assert info.value.message == f"access denied to {uri}"
    assert "s3:GetObject" in info.value.hint


def test_missing_destination_folder(aws_env, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        download(f"s3://{BUCKET}/k", tmp_path / "nope" / "k", session=make_session())


@pytest.mark.parametrize("interrupt_at_call", [1, 40])
def test_interrupted_download_leaves_folder_unchanged(aws_env, tmp_path, interrupt_at_call):
    # Call 40 is mid-transfer (progress comes in 256 KiB reads). Raised straight into
    # s3transfer's worker threads, a KeyboardInterrupt there would be swallowed and
    # download_file would return "successfully" with a corrupt file; download() must not.
    session = make_session()
    size = s3.MULTIPART_THRESHOLD + 3 * 1024 * 1024
    uri = _put(session, "big.bin", os.urandom(size))
    (tmp_path / "other.txt").write_text("keep me")
    dest = tmp_path / "big.bin"
    dest.write_bytes(b"previous version")
    before = _listing(tmp_path)

    calls: list[int] = []

    def interrupt(n: int) -> None:
        calls.append(n)
        if len(calls) == interrupt_at_call:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        download(uri, dest, session=session, progress=interrupt)

    assert len(calls) == interrupt_at_call, "callback must not be called again after it raised"
    assert sum(calls) < size
    assert _listing(tmp_path) == before


def test_interrupted_download_without_previous_file(aws_env, tmp_path):
    session = make_session()
    uri = _put(session, "small.bin", os.urandom(100_000))

    def interrupt(n: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        download(uri, tmp_path / "small.bin", session=session, progress=interrupt)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("https://bucket.s3.amazonaws.com/key", "not an S3 URI"),
        ("bucket/key", "not an S3 URI"),
        ("S3://bucket/key", "not an S3 URI"),
        ("", "not an S3 URI"),
        ("s3://", "no bucket"),
        ("s3:///key", "no bucket"),
        ("s3://bucket", "no object"),
        ("s3://bucket/", "no object"),
        ("s3://bucket/models/", "folder"),
        ("s3://bu cket/key", "invalid S3 bucket name"),
        ("s3://-bucket/key", "invalid S3 bucket name"),
    ],
)
def test_malformed_uris(uri, expected):
    with pytest.raises(UserError, match=expected) as info:
        parse_s3_uri(uri)
    assert info.value.hint


@pytest.mark.parametrize(
    "uri, parsed",
    [
        ("s3://bucket/key", ("bucket", "key")),
        ("s3://my.bucket-1/raw_models/a b/m.tar.gz", ("my.bucket-1", "raw_models/a b/m.tar.gz")),
        ("s3://bucket//leading", ("bucket", "/leading")),
    ],
)
def test_parse_s3_uri(uri, parsed):
    assert parse_s3_uri(uri) == parsed


def test_malformed_uri_fails_before_any_request(tmp_path):
    # No aws_env and no session needed: the URI is checked first.
    with pytest.raises(UserError, match="no object"):
        download("s3://bucket", tmp_path / "x", session=None)


# --------------------------------------------------------------------------- STS, credentials


def test_caller_account_id(aws_env):
    assert caller_account_id(make_session()) == "123456789012"


def test_no_credentials(aws_env, monkeypatch, tmp_path):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert aws_env.config_file.read_text() == ""
    assert aws_env.credentials_file.read_text() == ""
    session = make_session()
    with pytest.raises(UserError) as info:
        caller_account_id(session)
    assert info.value.message == "no AWS credentials found"
    assert "aws configure" in info.value.hint
    with pytest.raises(UserError, match="no AWS credentials found"):
        download(f"s3://{BUCKET}/k", tmp_path / "k", session=session)


def test_unknown_profile(aws_env):
    with pytest.raises(UserError, match="AWS profile 'nope' not found"):
        make_session(profile="nope")


def test_profile_from_config_file(aws_env, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    aws_env.config_file.write_text("[profile dev]\nregion = eu-west-1\n")
    aws_env.credentials_file.write_text(
        "[dev]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = secret\n"
    )
    monkeypatch.setenv("AWS_PROFILE", "dev")
    session = make_session()
    assert session.region_name == "eu-west-1"
    assert caller_account_id(session) == aws_env.account_id


def test_region_precedence(aws_env, monkeypatch):
    assert make_session().region_name == "us-east-1"  # AWS_DEFAULT_REGION
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert make_session().region_name == "eu-west-1"  # AWS_REGION wins
    assert make_session(region="ap-south-1").region_name == "ap-south-1"  # argument wins


def test_no_region(aws_env, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(UserError) as info:
        caller_account_id(make_session())
    assert info.value.message == "no AWS region configured"
    assert "AWS_REGION" in info.value.hint


def test_invalid_region_name(aws_env, monkeypatch):
    with pytest.raises(UserError) as info:
        caller_account_id(make_session(region="bad region!"))
    assert info.value.message == "invalid AWS region name 'bad region!'"
    assert "us-west-2" in info.value.hint


def test_client_uses_standard_retries(aws_env):
    client = make_client(make_session(), "s3")
    assert client.meta.config.retries["mode"] == "standard"


# --------------------------------------------------------------------------- endpoints


def test_per_service_endpoint_variable_wins(aws_env, monkeypatch, tmp_path):
    dead = dead_endpoint_url()
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", aws_env.endpoint_url)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # fail fast on the dead endpoint
    session = make_session()

    assert make_client(session, "s3").meta.endpoint_url == aws_env.endpoint_url
    assert make_client(session, "sts").meta.endpoint_url == dead

    uri = _put(session, "via-s3-variable.bin", b"hello")
    assert download(uri, tmp_path / "f", session=session).read_bytes() == b"hello"

    # STS has no per-service variable, so it uses the (dead) generic one.
    with pytest.raises(UserError) as info:
        caller_account_id(session)
    assert info.value.message == f"cannot connect to AWS endpoint {dead}/"
    assert "AWS_ENDPOINT_URL" in info.value.hint


def test_generic_endpoint_variable(aws_env):
    session = make_session()
    assert make_client(session, "s3").meta.endpoint_url == aws_env.endpoint_url
    assert make_client(session, "sts").meta.endpoint_url == aws_env.endpoint_url


# --------------------------------------------------------------------------- error translation


def _client_error(code: str, message: str = "msg", status: int = 400, op: str = "GetThing"):
    from botocore.exceptions import ClientError

    response = {"Error": {"Code": code, "Message": message}}
    response["ResponseMetadata"] = {"HTTPStatusCode": status}
    return ClientError(response, op)


@pytest.mark.parametrize(
    "code, expected",
    [
        ("ExpiredToken", "AWS credentials have expired"),
        ("ExpiredTokenException", "AWS credentials have expired"),
        ("InvalidClientTokenId", "does not recognise the access key"),
        ("UnrecognizedClientException", "does not recognise the access key"),
        ("AccessDenied", "access denied by AWS (GetThing): msg"),
        ("AccessDeniedException", "access denied by AWS (GetThing): msg"),
    ],
)
def test_translate_known_service_errors(code, expected):
    err = translate_client_error(_client_error(code))
    assert isinstance(err, UserError)
    assert expected in err.message
    assert err.hint
    assert "\n" not in str(err)


def test_translate_other_service_error_as_is():
    err = translate_client_error(_client_error("ThrottlingException", "Rate exceeded"))
    assert err.message == "GetThing failed: ThrottlingException: Rate exceeded"


def test_translate_sdk_errors():
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError, NoRegionError

    assert translate_client_error(NoCredentialsError()).message == "no AWS credentials found"
    assert translate_client_error(NoRegionError()).message == "no AWS region configured"
    err = translate_client_error(EndpointConnectionError(endpoint_url="https://sts.x"))
    assert err.message == "cannot connect to AWS endpoint https://sts.x"
    assert err.hint


# --------------------------------------------------------------------------- start-up cost


def test_importing_aws_modules_does_not_load_the_sdk():
    code = (
        "import sys\n"
        "import panorama_cli.cloud.aws, panorama_cli.cloud.aws.s3, panorama_cli.cloud.aws.session, "
        "panorama_cli.cloud.aws.sts, panorama_cli.cloud.aws.panorama, panorama_cli.cloud.aws.s3_upload, "
        "panorama_cli.cloud.packaging, panorama_cli.cloud.deployment, backpack.service_model\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('boto3', 'botocore', 's3transfer'))\n"
        "print(loaded)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
