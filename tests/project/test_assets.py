"""The content-addressed asset store (real files, no mocks)."""

from __future__ import annotations

import gzip
import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from panorama_cli.errors import UserError
from panorama_cli.project import asset_cleanup, assets


def snapshot(directory: Path) -> dict[str, tuple[int, str]]:
    """Every entry (hidden ones too) with its size and sha256: a byte-level listing."""
    result = {}
    for p in sorted(directory.rglob("*")):
        rel = str(p.relative_to(directory))
        if p.is_file():
            data = p.read_bytes()
            result[rel] = (len(data), hashlib.sha256(data).hexdigest())
        else:
            result[rel] = (-1, "dir")
    return result


def mixed_chunks(total: int, chunk: int = 1 << 20, seed: int = 7) -> list[bytes]:
    """Partly compressible data: text-like runs mixed with random bytes."""
    rng = random.Random(seed)
    words = [b"panorama", b"tensor", b"frame", b"camera", b"\x00" * 16, b"model"]
    out = []
    left = total
    while left > 0:
        n = min(chunk, left)
        half = n // 2
        text = b" ".join(rng.choice(words) for _ in range(half // 6 + 1))[:half]
        out.append(text + rng.randbytes(n - len(text)))
        left -= n
    return out


@pytest.fixture
def assets_dir(tmp_path: Path) -> Path:
    d = tmp_path / "assets"
    d.mkdir()
    (d / "existing.json").write_bytes(b'{"keep": true}')
    return d


def test_store_stream_round_trip(assets_dir: Path) -> None:
    chunks = mixed_chunks(5 * (1 << 20) + 12345)
    seen: list[int] = []

    asset = assets.store_stream(iter(chunks), assets_dir, progress=seen.append)

    on_disk = asset.path.read_bytes()
    assert gzip.decompress(on_disk) == b"".join(chunks)
    assert asset.sha256 == hashlib.sha256(on_disk).hexdigest()
    assert asset.path == assets_dir / f"{asset.sha256}.tar.gz"
    assert asset.uri == asset.path.name == f"{asset.sha256}.tar.gz"
    assert asset.size == len(on_disk) == asset.path.stat().st_size
    assert len(on_disk) < sum(map(len, chunks))  # it really compressed
    assert seen == [len(c) for c in chunks]
    assert assets.verify(asset.path)
    # nothing else left behind (no temp file)
    assert sorted(p.name for p in assets_dir.iterdir()) == sorted(["existing.json", asset.uri])


def test_store_stream_empty_input_is_valid_gzip(assets_dir: Path) -> None:
    asset = assets.store_stream(iter([]), assets_dir)
    assert gzip.decompress(asset.path.read_bytes()) == b""
    assert assets.verify(asset.path)


def test_same_content_twice_gives_same_single_file(assets_dir: Path) -> None:
    chunks = mixed_chunks(3 << 20)
    a = assets.store_stream(iter(chunks), assets_dir)
    b = assets.store_stream(iter(chunks), assets_dir)
    assert a == b
    assert len(list(assets_dir.iterdir())) == 2


def test_uncompressed_stream_is_stored_as_is(assets_dir: Path) -> None:
    data = [b"abc" * 1000, b"", b"xyz"]
    asset = assets.store_stream(iter(data), assets_dir, suffix=".bin", compress=False)
    assert asset.path.read_bytes() == b"".join(data)
    assert asset.sha256 == hashlib.sha256(b"".join(data)).hexdigest()
    assert asset.uri.endswith(".bin")


@pytest.mark.parametrize("compress", [True, False])
def test_keyboard_interrupt_mid_stream_leaves_assets_dir_identical(
    assets_dir: Path, compress: bool
) -> None:
    before = snapshot(assets_dir)

    def interrupted():
        yield from mixed_chunks(6 << 20)  # several blocks already in the compressor threads
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        assets.store_stream(interrupted(), assets_dir, compress=compress)
    assert snapshot(assets_dir) == before


def test_error_from_progress_callback_leaves_assets_dir_identical(assets_dir: Path) -> None:
    before = snapshot(assets_dir)
    consumed = []

    def progress(n: int) -> None:
        consumed.append(n)
        if len(consumed) == 3:
            raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        assets.store_stream(iter(mixed_chunks(8 << 20)), assets_dir, progress=progress)
    assert snapshot(assets_dir) == before


def test_missing_assets_dir_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        assets.store_stream(iter([b"x"]), tmp_path / "nope")
    assert "mkdir -p" in err.value.hint


def test_store_file_copies_without_recompressing(assets_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "model.tar.gz"
    payload = gzip.compress(b"weights" * 100_000)
    src.write_bytes(payload)
    seen: list[int] = []

    asset = assets.store_file(src, assets_dir, suffix=".tar.gz", progress=seen.append)

    assert asset.path.read_bytes() == payload
    assert asset.sha256 == hashlib.sha256(payload).hexdigest() == assets.sha256_file(src)
    assert asset.uri == f"{asset.sha256}.tar.gz"
    assert sum(seen) == len(payload)
    assert src.read_bytes() == payload  # source untouched


def test_store_file_missing_source(assets_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        assets.store_file(tmp_path / "missing.tar.gz", assets_dir, suffix=".tar.gz")


def test_store_bytes_and_verify(assets_dir: Path) -> None:
    data = b'{"mlModelDescriptor": {"envelopeVersion": "2021-01-01"}}'
    asset = assets.store_bytes(data, assets_dir, suffix=".json")
    assert asset.uri == hashlib.sha256(data).hexdigest() + ".json"
    assert asset.path.read_bytes() == data
    assert assets.verify(asset.path)

    asset.path.write_bytes(data + b" ")  # tampered
    assert not assets.verify(asset.path)
    assert not assets.verify(assets_dir / "existing.json")  # not an asset name
    assert not assets.verify(assets_dir / ("0" * 64 + ".json"))  # missing


def test_remove_superseded(assets_dir: Path) -> None:
    old = assets.store_bytes(b"old", assets_dir, suffix=".json")
    new = assets.store_bytes(b"new", assets_dir, suffix=".json")
    shared = assets.store_bytes(b"shared", assets_dir, suffix=".json")
    gone = "f" * 64 + ".tar.gz"

    removed = asset_cleanup.remove_superseded(
        assets_dir, [old.uri, shared.uri, gone, old.uri], keep={new.uri, shared.uri}
    )

    assert removed == [old.path]
    assert not old.path.exists()
    assert new.path.exists() and shared.path.exists()
    assert (assets_dir / "existing.json").exists()
    # running it again is harmless
    assert asset_cleanup.remove_superseded(assets_dir, [old.uri], keep=set()) == []


@pytest.mark.parametrize(
    "bad", ["../package.json", "/etc/passwd", "existing.json", "a/" + "0" * 64]
)
def test_remove_superseded_leaves_non_asset_names_alone(assets_dir: Path, bad: str) -> None:
    victim = assets.store_bytes(b"v", assets_dir, suffix=".json")
    keeper = assets.store_bytes(b"k", assets_dir, suffix=".json")
    warnings: list[str] = []
    removed = asset_cleanup.remove_superseded(
        assets_dir, [victim.uri, bad], keep={keeper.uri}, warn=warnings.append
    )
    assert removed == [victim.path]  # the good name is still cleaned up
    assert keeper.path.exists() and (assets_dir / "existing.json").exists()
    assert len(warnings) == 1 and repr(bad) in warnings[0]


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    p = tmp_path / "f"
    data = os.urandom(3 * (1 << 20) + 5)
    p.write_bytes(data)
    assert assets.sha256_file(p) == hashlib.sha256(data).hexdigest()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.binary(max_size=3000), max_size=8), st.booleans())
def test_round_trip_any_chunking(tmp_path: Path, chunks: list[bytes], compress: bool) -> None:
    d = tmp_path / "hyp"
    d.mkdir(exist_ok=True)
    asset = assets.store_stream(iter(chunks), d, suffix=".bin", compress=compress)
    on_disk = asset.path.read_bytes()
    expected = b"".join(chunks)
    assert (gzip.decompress(on_disk) if compress else on_disk) == expected
    assert asset.sha256 == hashlib.sha256(on_disk).hexdigest()
    assert not [p for p in d.iterdir() if p.name.startswith(".tmp-")]


def test_peak_memory_is_bounded(tmp_path: Path) -> None:
    """Store 256 MiB in a fresh interpreter; its peak RSS must stay far below that."""
    d = tmp_path / "big"
    d.mkdir()
    script = f"""
import os, resource
from pathlib import Path
from panorama_cli.project import assets
block = os.urandom(1 << 19) + bytes(1 << 19)   # 1 MiB, half compressible
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
a = assets.store_stream((block for _ in range(256)), Path({str(d)!r}))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(base, peak, a.size)
"""
    out = subprocess.run(
        [sys.executable, "-c", script],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout.split()
    base_kb, peak_kb, size = map(int, out)
    assert size > 100 << 20
    assert peak_kb - base_kb < 48 * 1024, f"peak grew by {(peak_kb - base_kb) // 1024} MiB"
