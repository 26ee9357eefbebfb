"""model_archive: bounded extraction (member count, unpacked bytes) leaves nothing behind."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from panorama_cli.errors import UserError
from panorama_cli.localrun.models import model_archive
from panorama_cli.localrun.models.model_archive import unpack_archive


def archive_of(path: Path, files: dict[str, bytes]) -> tuple[Path, str]:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_archive_within_the_caps_unpacks(tmp_path, monkeypatch):
    monkeypatch.setattr(model_archive, "MAX_MEMBERS", 3)
    monkeypatch.setattr(model_archive, "MAX_BYTES", 2000)
    archive, digest = archive_of(tmp_path / "m.tar.gz", {"a.onnx": b"x" * 1000, "b": b"y" * 1000})
    folder = unpack_archive(archive, digest, tmp_path / "cache")
    assert sorted(p.name for p in folder.iterdir()) == ["a.onnx", "b"]


@pytest.mark.parametrize("cap", ["members", "bytes"])
def test_a_tar_bomb_is_refused_before_it_fills_the_disk(tmp_path, monkeypatch, cap):
    if cap == "members":
        monkeypatch.setattr(model_archive, "MAX_MEMBERS", 10)
        files = {f"f{i}": b"x" for i in range(50)}
    else:
        monkeypatch.setattr(model_archive, "MAX_BYTES", 1 << 20)
        files = {"model.onnx": b"\0" * (3 << 20)}  # compresses to a few KiB
    archive, digest = archive_of(tmp_path / "bomb.tar.gz", files)
    cache = tmp_path / "deep" / "cache"
    with pytest.raises(UserError, match="bomb.tar.gz: more than .* refusing to extract it"):
        unpack_archive(archive, digest, cache)
    assert not (tmp_path / "deep").exists()  # no cache folder, no partial extraction
