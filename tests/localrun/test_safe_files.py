"""safe_files: folders opened component by component without following links, regular files
only, FIFOs never block, rotation and copytruncate by name within a directory fd."""

from __future__ import annotations

import errno
import os
import threading

import pytest

from panorama_cli.localrun import safe_files


@pytest.fixture
def host(tmp_path):
    """A folder outside the app's reach, with a file the app must never change."""
    folder = tmp_path / "host"
    folder.mkdir()
    (folder / "shadow").write_text("root:secret\n")
    return folder


def test_open_dir_refuses_a_link_anywhere_below_the_root(tmp_path, host):
    (tmp_path / "logs" / "node").mkdir(parents=True)
    (tmp_path / "logs" / "link").symlink_to(host)
    with safe_files.opened_dir(tmp_path, "logs", "node") as fd:
        assert os.path.samestat(os.fstat(fd), os.stat(tmp_path / "logs" / "node"))
    with pytest.raises(OSError) as caught:
        safe_files.open_dir(tmp_path, "logs", "link")
    assert caught.value.errno in (errno.ELOOP, errno.ENOTDIR)
    for bad in ("..", ".", "a/b", ""):
        with pytest.raises(ValueError):
            safe_files.open_dir(tmp_path, bad)


def test_open_regular_refuses_links_fifos_and_folders_and_never_blocks(tmp_path, host):
    (tmp_path / "link").symlink_to(host / "shadow")
    (tmp_path / "dangling").symlink_to(host / "missing")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("ok\n")
    done = threading.Event()

    def attempts():
        with safe_files.opened_dir(tmp_path) as fd:
            for name, kind in (("link", "symbolic link"), ("fifo", "FIFO"), ("folder", "folder")):
                for flags in (os.O_RDONLY, os.O_WRONLY | os.O_APPEND | os.O_CREAT, os.O_RDWR):
                    with pytest.raises(safe_files.NotRegular, match=kind):
                        safe_files.open_regular(fd, name, flags)
            with pytest.raises(safe_files.NotRegular, match="symbolic link"):  # not created
                safe_files.open_regular(fd, "dangling", os.O_WRONLY | os.O_CREAT)
            file_fd = safe_files.open_regular(fd, "file")
            assert os.read(file_fd, 10) == b"ok\n" and os.get_blocking(file_fd)
            os.close(file_fd)
        done.set()

    worker = threading.Thread(target=attempts, daemon=True)
    worker.start()
    worker.join(10)
    assert done.is_set(), "an open blocked (a FIFO?)"
    assert not (host / "missing").exists() and (host / "shadow").read_text() == "root:secret\n"


def test_listing_leaves_out_everything_but_regular_files(tmp_path, host):
    (tmp_path / "a.mp4").write_bytes(b"x" * 5)
    (tmp_path / "leak.mp4").symlink_to(host / "shadow")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sublink").symlink_to(host)
    os.mkfifo(tmp_path / "fifo.mp4")
    with safe_files.opened_dir(tmp_path) as fd:
        files = safe_files.regular_files(fd)
        assert [(name, info.st_size) for name, info in files] == [("a.mp4", 5)]
        assert sorted(safe_files.subdirs(fd)) == ["host", "sub"]  # not "sublink"


def test_find_regular_walks_real_folders_only(tmp_path, host):
    logs = tmp_path / "logs"
    (logs / "node_a").mkdir(parents=True)
    (logs / "node_a" / "console.log").write_text("a\n")
    (logs / "node_b").mkdir()
    (logs / "node_b" / "console.log").symlink_to(host / "shadow")
    (logs / "node_c").symlink_to(host)
    (host / "console.log").write_text("host\n")
    found = safe_files.find_regular(logs, "console.log", max_depth=1)
    try:
        assert [path for path, _ in found] == [logs / "node_a" / "console.log"]
        assert safe_files.read_tail(found[0][1], 100) == b"a\n"
    finally:
        for _, fd in found:
            os.close(fd)
    assert safe_files.find_regular(tmp_path / "missing", "console.log") == []


def test_rename_and_remove_act_on_names_not_on_link_targets(tmp_path, host):
    (tmp_path / "app.log.1").symlink_to(host / "shadow")
    (tmp_path / "app.log.2").symlink_to(host / "shadow")
    (tmp_path / "app.log").write_text("mine\n")
    with safe_files.opened_dir(tmp_path) as fd:
        assert not safe_files.rename_regular(fd, "app.log.1", "app.log.3")  # a link: left
        assert safe_files.rename_regular(fd, "app.log", "app.log.2")  # replaces the link
        assert safe_files.remove(fd, "app.log.1")  # the link itself
        assert not safe_files.remove(fd, "missing")
    assert (tmp_path / "app.log.2").read_text() == "mine\n"
    assert not (tmp_path / "app.log.2").is_symlink() and not (tmp_path / "app.log.1").exists()
    assert (host / "shadow").read_text() == "root:secret\n"


def test_copytruncate_copies_and_truncates_regular_files_only(tmp_path, host):
    (tmp_path / "app.log").write_text("line\n" * 100)
    (tmp_path / "evil.log").symlink_to(host / "shadow")
    (tmp_path / "evil.log.1").symlink_to(host / "shadow")
    (tmp_path / "hard.log").write_text("x")
    os.link(tmp_path / "hard.log", tmp_path / "hard-elsewhere")
    with safe_files.opened_dir(tmp_path) as fd:
        assert safe_files.copytruncate(fd, "app.log", "app.log.1") == 500
        with pytest.raises(safe_files.NotRegular):
            safe_files.copytruncate(fd, "evil.log", "evil.log.1")
        with pytest.raises(safe_files.NotRegular, match="hard links"):
            safe_files.copytruncate(fd, "hard.log", "hard.log.1")
        (tmp_path / "ok.log").write_text("ok\n")
        safe_files.copytruncate(fd, "ok.log", "evil.log.1")  # a link as the copy: replaced
    assert (tmp_path / "app.log").read_text() == ""
    assert (tmp_path / "app.log.1").read_text() == "line\n" * 100
    assert (tmp_path / "evil.log.1").read_text() == "ok\n"
    assert (host / "shadow").read_text() == "root:secret\n"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
