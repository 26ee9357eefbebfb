"""KVSSkyLine with a stand-in kvssink in a real pipeline; credentials handlers against moto STS."""

from __future__ import annotations

import datetime
import logging
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from backpack.kvs import (
    KVSCredentialsError,
    KVSEnvironmentCredentialsHandler,
    KVSFileCredentialsHandler,
    KVSInlineCredentialsHandler,
    KVSSinkNotFoundError,
    KVSSkyLine,
    load_gst_dotenv,
)
from backpack.kvs_credentials import KVSCredentials
from backpack.kvs_credentials_file import format_credentials_file
from backpack.skyline import SkyLine
from tests.support.gstreamer import FAKE_KVSSINK, video_frames

ROLE_ARN = "arn:aws:iam::123456789012:role/panorama-kvs"
KEY_ID, SECRET, TOKEN = (
    "AKIAKVSTESTKEY12WXYZ",
    "kvs-test-secret-0123456789",
    "kvs-test-token-abcdef",
)
FILE_LINE = re.compile(
    r"^CREDENTIALS\t(?P<key>\S+)\t(?P<exp>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\t(?P<secret>\S+)\t(?P<token>\S+)\n$"
)


def assert_no_secrets(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text


def backpack_log(caplog) -> str:
    """What backpack logged (botocore's own DEBUG logs print STS responses, secrets included)."""
    records = [r for r in caplog.records if r.name.startswith("backpack")]
    assert records, "backpack logged nothing"
    return "\n".join(f"{r.name} {r.getMessage()}" for r in records)


def parse_file(path) -> dict[str, str]:
    match = FILE_LINE.match(path.read_text())
    assert match, path.read_text()
    return match.groupdict()


# ------------------------------------------------------------------ pipeline


def test_pipeline_runs_with_a_stand_in_sink(gst, fake_kvssink, caplog):
    caplog.set_level(logging.DEBUG)
    handler = KVSInlineCredentialsHandler(KEY_ID, SECRET, TOKEN)
    sky = KVSSkyLine(
        "eu-west-1",
        "panorama-video.1",
        handler,
        dotenv_path=None,
        sink_element=FAKE_KVSSINK,
        fps=10,
        width=768,
        height=576,
        storage_size_mb=64,
    )
    assert sky.start_streaming() is True
    for frame in video_frames(25):
        assert sky.put(frame)
        time.sleep(0.01)
    sky.stop_streaming()

    [record] = fake_kvssink
    assert record.buffers == 25
    assert "video/x-h264" in record.caps and "stream-format=(string)avc" in record.caps
    assert "alignment=(string)au" in record.caps and "width=(int)768" in record.caps
    props = record.properties
    assert (props["stream-name"], props["aws-region"]) == ("panorama-video.1", "eu-west-1")
    assert (props["storage-size"], props["framerate"]) == (64, 10)
    assert (props["access-key"], props["secret-key"], props["session-token"]) == (
        KEY_ID,
        SECRET,
        TOKEN,
    )
    assert props["credential-path"] == ""
    assert any("stream-name=panorama-video.1" in r.getMessage() for r in caplog.records)
    assert_no_secrets(backpack_log(caplog) + repr(sky) + repr(handler), KEY_ID, SECRET, TOKEN)


def test_file_credentials_reach_the_sink_and_put_drives_the_refresh(
    gst, fake_kvssink, aws_env, tmp_path
):
    path = tmp_path / "credentials.txt"
    handler = KVSFileCredentialsHandler(
        path, role_arn=ROLE_ARN, duration=900, refresh_margin=899, retry_interval=0.5
    )
    first = parse_file(path)
    sky = KVSSkyLine(
        "us-east-1",
        "stream",
        handler,
        None,
        sink_element=FAKE_KVSSINK,
        fps=10,
        width=320,
        height=240,
    )
    sky.start_streaming()
    frame = next(video_frames(1))
    deadline = time.monotonic() + 6
    while handler.refresh_count < 2 and time.monotonic() < deadline:
        sky.put(frame)
        time.sleep(0.05)
    sky.stop_streaming()
    assert handler.refresh_count == 2
    assert parse_file(path)["key"] != first["key"]
    [record] = fake_kvssink
    assert record.properties["credential-path"] == str(path)
    assert record.properties["access-key"] == ""
    assert record.credential_file is not None and record.credential_file.startswith("CREDENTIALS\t")


def test_dotenv_variables_land_in_environ(gst, tmp_path, monkeypatch, fake_kvssink):
    plugins = tmp_path / "kvs-plugins"
    plugins.mkdir()
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        f"GST_PLUGIN_PATH={plugins}\nLD_LIBRARY_PATH=/opt/kvs/lib:/opt/kvs/open-source/lib\nOTHER=ignored\n"
    )
    monkeypatch.setenv("LD_LIBRARY_PATH", "/usr/local/lib:/opt/kvs/lib")
    monkeypatch.setenv("GST_PLUGIN_PATH", "/usr/lib/gst-extra")
    monkeypatch.delenv("OTHER", raising=False)
    KVSSkyLine(
        "us-east-1",
        "s",
        KVSInlineCredentialsHandler(KEY_ID, SECRET),
        dotenv,
        sink_element=FAKE_KVSSINK,
    )
    assert os.environ["GST_PLUGIN_PATH"] == f"{plugins}:/usr/lib/gst-extra"
    assert os.environ["LD_LIBRARY_PATH"] == "/usr/local/lib:/opt/kvs/lib:/opt/kvs/open-source/lib"
    assert "OTHER" not in os.environ


def test_missing_dotenv_is_logged_not_fatal(caplog, tmp_path):
    assert load_gst_dotenv(tmp_path / "missing.env") == {}
    assert "not found" in caplog.text
    assert load_gst_dotenv(None) == {}


def test_missing_sink_is_reported_with_where_it_was_looked_for(gst, tmp_path):
    with pytest.raises(KVSSinkNotFoundError, match="GST_PLUGIN_PATH"):
        KVSSkyLine(
            "us-east-1",
            "s",
            KVSInlineCredentialsHandler(KEY_ID, SECRET),
            None,
            sink_element="no_kvssink_here",
        )


@pytest.mark.parametrize(
    ("region", "name"),
    [("us-east-1", "bad name"), ("us-east-1", "x" * 257), ("US-EAST", "ok"), ("", "ok")],
)
def test_stream_name_and_region_are_checked(region, name):
    with pytest.raises(ValueError):
        KVSSkyLine(region, name, KVSInlineCredentialsHandler(KEY_ID, SECRET), None)


def test_kvsskyline_is_live_and_starts_with_warmup_by_default(gst, fake_kvssink):
    sky = KVSSkyLine(
        "us-east-1",
        "s",
        KVSInlineCredentialsHandler(KEY_ID, SECRET),
        None,
        sink_element=FAKE_KVSSINK,
    )
    assert sky.live is True and sky.warmup_frames == SkyLine.FPS_METER_WARMUP_FRAMES
    assert sky.start_streaming() is True and sky.state is SkyLine.State.START_WARMUP
    sky.stop_streaming()


# ------------------------------------------------------------------ file credentials


def test_file_handler_refreshes_on_time_from_assume_role(aws_env, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "credentials.txt"
    with ThreadPoolExecutor(max_workers=1) as executor:
        before = datetime.datetime.now(datetime.timezone.utc)
        handler = KVSFileCredentialsHandler(
            path,
            role_arn=ROLE_ARN,
            duration=900,
            refresh_margin=898,
            retry_interval=0.5,
            executor=executor,
        )
        first = parse_file(path)
        assert handler.source == "assumed-role" and handler.refresh_count == 1
        assert (path.stat().st_mode & 0o777) == 0o600
        expires = datetime.datetime.strptime(first["exp"], "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc
        )
        assert 890 <= (expires - before).total_seconds() <= 905
        assert 1.0 <= (handler.next_refresh - before).total_seconds() <= 3.0
        assert handler.sink_properties() == {"credential-path": str(path)}

        start, refreshed_at, tick_times = time.monotonic(), None, []
        while time.monotonic() - start < 6 and refreshed_at is None:
            tick = time.perf_counter()
            handler.check_refresh()
            tick_times.append(time.perf_counter() - tick)
            if handler.refresh_count >= 2:
                refreshed_at = time.monotonic() - start
            time.sleep(0.02)
        assert refreshed_at is not None and 1.0 <= refreshed_at <= 4.0
        assert max(tick_times) < 0.05  # the STS call runs in the executor
        second = parse_file(path)
        assert second["key"] != first["key"] and second["token"] != first["token"]
        assert handler.refresh_count == 2  # not again before the new due time
    secrets = [
        first["secret"],
        first["token"],
        second["secret"],
        second["token"],
        first["key"],
        second["key"],
    ]
    assert_no_secrets(backpack_log(caplog) + repr(handler), *secrets)
    assert "****" + second["key"][-4:] in repr(handler)


def test_file_handler_uses_get_session_token_for_long_term_keys(aws_env, tmp_path):
    path = tmp_path / "credentials.txt"
    handler = KVSFileCredentialsHandler(path, duration=900)
    fields = parse_file(path)
    assert handler.source == "session-token"
    assert fields["key"] != "testing" and fields["secret"] != "testing"  # never the long-term keys
    assert handler.expiration is not None


def test_file_handler_follows_a_renewable_session_role(aws_env, tmp_path):
    aws_env.config_file.write_text(
        f"[profile app]\nrole_arn = {ROLE_ARN}\nsource_profile = base\nduration_seconds = 900\n"
    )
    aws_env.credentials_file.write_text(
        "[base]\naws_access_key_id = testing\naws_secret_access_key = testing\n"
    )
    session = boto3.Session(profile_name="app")
    handler = KVSFileCredentialsHandler(tmp_path / "c.txt", boto3_session=session)
    assert handler.source == "session-role"
    assert parse_file(tmp_path / "c.txt")["key"].startswith("ASIA")
    assert handler.expiration is not None
    with pytest.raises(KVSCredentialsError, match="KVSFileCredentialsHandler"):
        KVSInlineCredentialsHandler(boto3_session=session)


def test_failed_refresh_is_logged_and_retried(aws_env, tmp_path, caplog, monkeypatch):
    path = tmp_path / "credentials.txt"
    handler = KVSFileCredentialsHandler(
        path, role_arn=ROLE_ARN, duration=900, refresh_margin=900, retry_interval=0.2
    )
    good = path.read_text()
    monkeypatch.setattr(
        handler, "_fetch", lambda: (_ for _ in ()).throw(KVSCredentialsError("sts down"))
    )
    time.sleep(0.25)
    handler.check_refresh()
    assert "sts down" in caplog.text and path.read_text() == good
    first_retry = handler.next_refresh
    monkeypatch.undo()
    time.sleep(0.25)
    handler.check_refresh()
    assert handler.refresh_count == 2 and handler.next_refresh > first_retry


def test_credentials_file_format():
    expires = datetime.datetime(
        2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
    )
    assert format_credentials_file(KVSCredentials("AK", "SK", "TK", expires)) == (
        "CREDENTIALS\tAK\t2030-01-02T01:04:05Z\tSK\tTK\n"
    )
    assert format_credentials_file(KVSCredentials("AK", "SK")) == "CREDENTIALS\tAK\tSK\n"
    with pytest.raises(ValueError):
        format_credentials_file(KVSCredentials("AK", "SK", "TK"))


# ------------------------------------------------------------------ static handlers


def test_environment_handler_sets_the_variables_kvssink_reads(monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    handler = KVSEnvironmentCredentialsHandler(KEY_ID, SECRET, TOKEN)
    handler.prepare()
    assert (os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]) == (
        KEY_ID,
        SECRET,
    )
    assert os.environ["AWS_SESSION_TOKEN"] == TOKEN
    assert handler.sink_properties() == {}
    KVSEnvironmentCredentialsHandler(KEY_ID, SECRET).prepare()
    assert "AWS_SESSION_TOKEN" not in os.environ
    assert repr(handler) == "<KVSEnvironmentCredentialsHandler access_key=****WXYZ>"
    assert_no_secrets(
        caplog.text + repr(handler) + repr(handler.credentials), KEY_ID, SECRET, TOKEN
    )


def test_inline_handler_takes_session_keys_and_needs_both(aws_env):
    handler = KVSInlineCredentialsHandler()
    assert handler.sink_properties() == {"access-key": "testing", "secret-key": "testing"}
    with pytest.raises(ValueError):
        KVSInlineCredentialsHandler(KEY_ID)
