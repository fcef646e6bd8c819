"""Finding capture files: a file is itself, a directory is every visible regular file below it."""

from __future__ import annotations

import os

import pytest

from etbert.capture.reader import iter_capture_files


def test_a_file_is_its_own_list(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a capture, but the magic decides that later")
    assert iter_capture_files(path) == [path]


def test_a_directory_lists_visible_regular_files_recursively_in_path_order(tmp_path):
    for name in ["b.pcap", "a/z.pcapng", "a/b/c.bin", "a-b/x.pcap.gz", "README", ".hidden.pcap", ".git/objects/pack"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xd4\xc3\xb2\xa1")
    os.mkfifo(tmp_path / "a" / "pipe")
    (tmp_path / "empty-dir").mkdir()

    found = iter_capture_files(tmp_path)

    assert [path.relative_to(tmp_path).as_posix() for path in found] == [
        "README", "a/b/c.bin", "a/z.pcapng", "a-b/x.pcap.gz", "b.pcap"]


def test_a_missing_root_is_a_usage_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        iter_capture_files(tmp_path / "absent")
