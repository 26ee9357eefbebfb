"""export_normalize: the tar stream of ``docker export`` made the same for the same image.

Real tar streams (tarfile, as Docker writes them: ustar, PAX for long names) with the
entries Docker creates per container at two different times, cut into chunks of every size.
"""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest

from panorama_cli.build.export_normalize import DOCKER_ENTRIES, normalized

LONG = "usr/share/" + "very-long-folder-name/" * 8 + "file.txt"


def export_stream(created: int, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """A container export: the image's files (fixed times) + Docker's entries at ``created``."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=fmt) as tar:

        def add(name: str, data: bytes | None, mtime: int) -> None:
            info = tarfile.TarInfo(name)
            info.mtime = mtime
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))

        add(".dockerenv", b"", created)
        add("dev", None, created)
        add("dev/console", b"", created)
        add("etc", None, created)
        add("etc/hostname", b"", created)
        add("etc/hosts", b"", created)
        add("etc/resolv.conf", b"", created)
        add("etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 1_600_000_000)
        add("usr/bin/app", bytes(range(256)) * 300, 1_600_000_001)  # spans blocks
        add(LONG, b"x" * 1000, 1_600_000_002)
        add("etc/hosts.bak", b"not docker's", 1_700_000_000)  # a look-alike name: kept
    return raw.getvalue()


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 511, 512, 777, 4096, 1 << 20])
def test_two_exports_of_one_image_give_the_same_bytes(size):
    first, second = export_stream(1_700_000_000), export_stream(1_700_000_099)
    assert first != second
    out1 = b"".join(normalized(chunked(first, size), mtime=1_650_000_000))
    out2 = b"".join(normalized(chunked(second, size), mtime=1_650_000_000))
    assert out1 == out2 and len(out1) == len(first)
    assert hashlib.sha256(out1).digest() == hashlib.sha256(out2).digest()


def test_only_dockers_entries_change_and_the_tar_stays_valid():
    before = export_stream(1_700_000_000)
    after = b"".join(normalized(chunked(before, 1000), mtime=42))
    with tarfile.open(fileobj=io.BytesIO(after)) as tar:
        members = {m.name: m for m in tar}
        for name, member in members.items():
            if name in DOCKER_ENTRIES:
                assert member.mtime == 42, name
        assert members["etc/passwd"].mtime == 1_600_000_000
        assert members["usr/bin/app"].mtime == 1_600_000_001
        assert members[LONG].mtime == 1_600_000_002
        assert members["etc/hosts.bak"].mtime == 1_700_000_000
        data = tar.extractfile("usr/bin/app")
        assert data is not None and data.read() == bytes(range(256)) * 300


def test_gnu_format_and_trailing_bytes_pass_through():
    stream = export_stream(1_700_000_000, tarfile.GNU_FORMAT) + b"\0" * 2048
    out = b"".join(normalized(chunked(stream, 333), mtime=7))
    assert len(out) == len(stream)
    with tarfile.open(fileobj=io.BytesIO(out)) as tar:
        assert tar.getmember("etc/hosts").mtime == 7
