"""Label sources over real folder trees and CSV files, including every error case."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from etbert.dataset.labels import (
    LabelError,
    capture_name,
    label_from_stem,
    labels_from_folders,
    load_label_source,
)


def tree(root: Path, *names: str) -> list[Path]:
    paths = []
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        paths.append(path)
    return sorted(paths)


def write_csv(root: Path, text: str, name="labels.csv") -> Path:
    path = root / name
    path.write_text(text)
    return path


@pytest.fixture
def captures(tmp_path):
    root = tmp_path / "in"
    return root, tree(root, "Chat/a.pcap", "Chat/day2/b.pcapng", "Email/c.pcap.gz", "loose.pcap")


def test_folders_label_by_first_component(captures):
    root, paths = captures
    assert labels_from_folders(root, paths) == {paths[0]: "Chat", paths[1]: "Chat", paths[2]: "Email"}
    source = load_label_source("folders", root, paths)
    assert source.for_capture("Chat/day2/b.pcapng") == "Chat"
    assert source.for_flow("Email/c.pcap.gz", 6, "10.0.0.1", 1, "10.0.0.2", 2) == "Email"
    assert source.for_capture("loose.pcap") is None


def test_default_is_folders_when_captures_sit_in_subfolders(captures, tmp_path):
    root, paths = captures
    assert load_label_source(None, root, paths).kind == "folders"
    flat_root = tmp_path / "flat"
    flat = tree(flat_root, "x.pcap", "y.pcap")
    source = load_label_source(None, flat_root, flat)
    assert source.kind == "none" and source.for_flow("x.pcap", 6, "1.1.1.1", 1, "2.2.2.2", 2) is None


def test_folders_requested_without_subfolders_is_an_error(tmp_path):
    paths = tree(tmp_path, "x.pcap")
    with pytest.raises(LabelError, match="no capture sits in a class subfolder"):
        load_label_source("folders", tmp_path, paths)


@pytest.mark.parametrize("name, label", [
    ("Facetime.pcap", "Facetime"), ("x.pcap.gz", "x"), ("Weibo-1.pcapng", "Weibo-1"), ("trace.v2.cap", "trace.v2"),
    ("noext", "noext"), ("data.bin", "data"),
])
def test_stem_labels(name, label, tmp_path):
    assert label_from_stem(Path(name)) == label
    paths = tree(tmp_path, f"sub/{name}")
    assert load_label_source("stem", tmp_path, paths).for_capture(f"sub/{name}") == label


def test_capture_csv_by_relative_path_or_file_name(captures):
    root, paths = captures
    path = write_csv(root.parent, "Capture, Label\nChat/a.pcap,chat\nb.pcapng,video\nloose.pcap,web\nother.pcap,x\n")
    source = load_label_source(str(path), root, paths)
    assert source.kind == "capture CSV"
    assert source.for_capture("Chat/a.pcap") == "chat"
    assert source.for_capture("Chat/day2/b.pcapng") == "video"
    assert source.for_flow("loose.pcap", 17, "::1", 1, "::2", 2) == "web"
    assert source.for_capture("Email/c.pcap.gz") is None
    assert source.unmatched == ("other.pcap",) and "1 CSV captures not in the input" in source.describe()


def test_capture_csv_ambiguous_file_name(tmp_path):
    paths = tree(tmp_path / "in", "a/x.pcap", "b/x.pcap")
    path = write_csv(tmp_path, "capture,label\nx.pcap,one\n")
    with pytest.raises(LabelError, match=r"labels.csv:2: capture 'x.pcap' is ambiguous: it names a/x.pcap, b/x.pcap"):
        load_label_source(str(path), tmp_path / "in", paths)
    path = write_csv(tmp_path, "capture,label\na/x.pcap,one\n")
    assert load_label_source(str(path), tmp_path / "in", paths).for_capture("a/x.pcap") == "one"


def test_capture_csv_conflicting_rows(captures):
    root, paths = captures
    path = write_csv(root.parent, "capture,label\nloose.pcap,a\nloose.pcap,b\n")
    with pytest.raises(LabelError, match="labelled both 'a' and 'b'"):
        load_label_source(str(path), root, paths)


FLOW_CSV = """capture,proto,src,sport,dst,dport,label
Chat/a.pcap,TCP,10.0.0.1,40000,10.0.0.2,443,chat
Chat/a.pcap,17,2001:DB8:0:0::1,5353,2001:db8::2,53,dns
b.pcapng,udp,::ffff:192.0.2.1,1000,192.0.2.2,2000,voip
Chat/a.pcap,tcp,10.0.0.9,1,10.0.0.8,2,one
Chat/a.pcap,tcp,10.0.0.8,2,10.0.0.9,1,two
"""


def test_flow_csv_matches_either_direction_and_normalised_addresses(captures):
    root, paths = captures
    source = load_label_source(str(write_csv(root.parent, FLOW_CSV)), root, paths)
    assert source.kind == "flow CSV"
    assert source.for_flow("Chat/a.pcap", 6, "10.0.0.1", 40000, "10.0.0.2", 443) == "chat"
    assert source.for_flow("Chat/a.pcap", 6, "10.0.0.2", 443, "10.0.0.1", 40000) == "chat"  # reversed
    assert source.for_flow("Chat/a.pcap", 17, "10.0.0.1", 40000, "10.0.0.2", 443) is None  # other protocol
    assert source.for_flow("Email/c.pcap.gz", 6, "10.0.0.1", 40000, "10.0.0.2", 443) is None  # other capture
    assert source.for_flow("Chat/a.pcap", 17, "2001:db8::2", 53, "2001:db8::1", 5353) == "dns"
    assert source.for_flow("Chat/day2/b.pcapng", 17, "192.0.2.1", 1000, "192.0.2.2", 2000) == "voip"
    assert source.flows.label_for("Chat/day2/b.pcapng", 17, "::ffff:192.0.2.2", 2000, "192.0.2.1", 1000) == "voip"
    # the same flow key labelled twice differently: neither label is trusted
    assert source.for_flow("Chat/a.pcap", 6, "10.0.0.9", 1, "10.0.0.8", 2) is None
    assert "1 flow keys with conflicting labels" in source.describe()


def test_label_source_pickles_for_worker_processes(captures):
    root, paths = captures
    source = load_label_source(str(write_csv(root.parent, FLOW_CSV)), root, paths)
    copy = pickle.loads(pickle.dumps(source))
    assert copy.for_flow("Chat/a.pcap", 6, "10.0.0.2", 443, "10.0.0.1", 40000) == "chat"


@pytest.mark.parametrize("text, message", [
    ("", "labels CSV is empty"),
    ("\n\n", "labels CSV is empty"),
    ("capture,label\n", "has a header but no rows"),
    ("file,class\nx,y\n", "header has columns file, class; expected either capture,label or "
                          "capture,proto,src,sport,dst,dport,label"),
    ("capture,proto,src,sport,dst,label\nx,6,1.1.1.1,1,2.2.2.2,l\n", "header has columns capture, proto, src, "
                                                                     "sport, dst, label; expected"),
    ("capture,label,extra\nloose.pcap,a,b\n", "header has columns capture, label, extra"),
    ("capture,label\nloose.pcap\n", r"labels.csv:2: 1 fields, the header has 2"),
    ("capture,label\nloose.pcap,\n", r"labels.csv:2: empty label"),
    ("capture,proto,src,sport,dst,dport,label\nloose.pcap,tcp,1.1.1.1,70000,2.2.2.2,1,a\n",
     r"labels.csv:2: sport '70000' is not a port number \(0-65535\)"),
    ("capture,proto,src,sport,dst,dport,label\nloose.pcap,tcp,1.1.1.1,1,2.2.2.2,-5,a\n",
     r"labels.csv:2: dport '-5' is not a port number"),
    ("capture,proto,src,sport,dst,dport,label\nloose.pcap,tcp,1.1.1.1,http,2.2.2.2,1,a\n",
     r"sport 'http' is not a port number"),
    ("capture,proto,src,sport,dst,dport,label\nloose.pcap,sctp,1.1.1.1,1,2.2.2.2,1,a\n",
     r"labels.csv:2: unknown protocol 'sctp' \(a number 0-255 or one of tcp, udp, icmp, icmpv6\)"),
    ("capture,proto,src,sport,dst,dport,label\nloose.pcap,300,1.1.1.1,1,2.2.2.2,1,a\n", "unknown protocol '300'"),
    ("capture,proto,src,sport,dst,dport,label\nloose.pcap,6,1.1.1.300,1,2.2.2.2,1,a\n",
     r"labels.csv:2: '1.1.1.300' is not an IP address"),
])
def test_csv_errors_are_one_clear_line(captures, text, message):
    root, paths = captures
    path = write_csv(root.parent, text)
    with pytest.raises(LabelError, match=message) as error:
        load_label_source(str(path), root, paths)
    assert "\n" not in str(error.value)
    assert isinstance(error.value, ValueError)


def test_missing_file_and_unreadable_csv(captures):
    root, paths = captures
    with pytest.raises(LabelError, match="'nope.csv': no such file \\(expected 'folders', 'stem' or a CSV path\\)"):
        load_label_source("nope.csv", root, paths)
    binary = root.parent / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage\x80")
    with pytest.raises(LabelError, match="cannot read labels CSV"):
        load_label_source(str(binary), root, paths)


def test_capture_name(tmp_path):
    assert capture_name(tmp_path / "a" / "b.pcap", tmp_path) == "a/b.pcap"
    assert capture_name(Path("/elsewhere/c.pcap"), tmp_path) == "c.pcap"
