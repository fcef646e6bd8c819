"""The handshake CNN: session images, identity randomisation, random background images, training, CLI."""

from __future__ import annotations

import json

import dpkt
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import Dot1Q, Ether
from scapy.utils import wrpcap
from typer.testing import CliRunner

from etbert.cli import app
from etbert.dataset.early import first_packets
from etbert.dataset.layout import read_flows
from etbert.dataset.prepare import PrepareConfig, prepare
from etbert.evaluation.metrics import classification_metrics
from etbert.features.session_image import IMAGE_BYTES, session_images
from etbert.models.base import ModelError
from etbert.models.handshake_cnn import WEIGHTS_FILE, random_sample_count, with_random_background
from etbert.models.registry import create_model, load_model

PAPER_CLASSES = ["background", "shadowsocks", "v2ray"]
runner = CliRunner()


def paper_classes(table: pa.Table) -> pa.Table:
    return table.filter(pc.is_in(table.column("label"), value_set=pa.array(PAPER_CLASSES)))


# ----- the image ---------------------------------------------------------------------------------------


def test_image_rows_are_the_session_bytes_in_order_zero_padded(lab_tables):
    flows = lab_tables["train"].slice(0, 120)
    images = session_images(flows)
    assert images.shape == (120, 32, 32) and images.dtype == np.uint8
    padded = 0
    for image, packets in zip(images, flows.column("pkt_bytes").to_pylist()):
        stream = b"".join(packets)  # both directions, in capture order
        expected = np.frombuffer(stream[:IMAGE_BYTES].ljust(IMAGE_BYTES, b"\0"), dtype=np.uint8)
        assert image[0].tobytes() == stream[:32] and image[1].tobytes() == stream[32:64]
        np.testing.assert_array_equal(image.ravel(), expected)
        padded += len(stream) < IMAGE_BYTES
    assert 0 < padded < 120  # both short sessions (zero-padded) and long ones (cut) occur


def test_the_image_is_complete_once_1024_bytes_have_passed(lab_tables):
    """Early identification: packets after the first 1024 session bytes change nothing."""
    flows = lab_tables["test"]
    sizes = [np.cumsum([len(p) for p in packets]) for packets in flows.column("pkt_bytes").to_pylist()]
    enough = [int(np.searchsorted(total, IMAGE_BYTES)) + 1 for total in sizes]
    full = session_images(flows)
    for n in sorted(set(enough)):
        rows = [i for i, needed in enumerate(enough) if needed <= n]
        cut = session_images(first_packets(flows.take(rows), n))
        np.testing.assert_array_equal(cut, full[rows])


def _identity_capture(folder):
    """A VLAN-tagged IPv6 flow with a hop-by-hop extension header and an IPv4 flow in a raw-IP capture."""
    six, four = [], []
    for i, (forward, flags, size) in enumerate([(True, "S", 0), (False, "SA", 0), (True, "PA", 300),
                                                (False, "PA", 1200), (True, "A", 0)]):
        a, b, sport, dport = ("2001:db8::1", "2001:db8::2", 40000, 8388)
        if not forward:
            a, b, sport, dport = b, a, dport, sport
        frame = Ether() / Dot1Q(vlan=5) / IPv6(src=a, dst=b) / IPv6ExtHdrHopByHop() / TCP(
            sport=sport, dport=dport, flags=flags) / (bytes([7]) * size)
        frame.time = 1.0 + i / 100
        six.append(frame)
        v4 = IP(src="10.0.0.1" if forward else "10.0.0.2", dst="10.0.0.2" if forward else "10.0.0.1", id=9 + i) / TCP(
            sport=40001 if forward else 443, dport=443 if forward else 40001, flags=flags) / (bytes([7]) * size)
        four.append((1.0 + i / 100, bytes(v4)))
    wrpcap(str(folder / "ipv6-vlan.pcap"), six)
    with open(folder / "raw-ipv4.pcap", "wb") as handle:
        writer = dpkt.pcap.Writer(handle, linktype=101)  # LINKTYPE_RAW
        for t, packet in four:
            writer.writepkt(packet, t)


def _paper_fields(packet: bytes) -> list[int]:
    """Offsets of the paper's randomised fields in one stored packet (from the IP header on)."""
    if packet[0] >> 4 == 4:  # 20-byte header here: the paper's table (Ethernet offsets) minus 14
        return [*range(4, 6), *range(12, 20), *range(20, 24)]  # IP ID, addresses, ports
    return [*range(8, 40), *range(48, 52)]  # IPv6 addresses; ports after the 8-byte hop-by-hop header


def test_identity_fields_are_randomised_from_parsed_offsets_and_nothing_else(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    _identity_capture(folder)
    prepare(folder, tmp_path / "ds", PrepareConfig(anonymize="none"))
    flows = read_flows(tmp_path / "ds")
    assert sorted(flows.column("ip_version").to_pylist()) == [4, 6]
    plain = session_images(flows).reshape(len(flows), -1)
    randomised = session_images(flows, identity_seeds=np.array([11, 12])).reshape(len(flows), -1)
    for before, after, packets in zip(plain, randomised, flows.column("pkt_bytes").to_pylist()):
        starts = np.cumsum([0] + [len(p) for p in packets])[:-1]
        fields = {start + offset for start, packet in zip(starts, packets) for offset in _paper_fields(packet)}
        fields = {position for position in fields if position < IMAGE_BYTES}
        changed = set(np.flatnonzero(before != after).tolist())
        assert changed <= fields  # payload, lengths, flags, checksums: untouched
        assert len(changed) >= 0.9 * len(fields)  # a random byte equals the original 1 time in 256
    again = session_images(flows, identity_seeds=np.array([11, 12])).reshape(len(flows), -1)
    np.testing.assert_array_equal(again, randomised)
    assert not np.array_equal(session_images(flows, identity_seeds=np.array([13, 14])).reshape(len(flows), -1),
                              randomised)


# ----- random background images ------------------------------------------------------------------------


@pytest.mark.parametrize("ratio, background_flows, added", [(1 / 9, 9, 1), (1 / 9, 90, 10), (0.5, 7, 4),
                                                             (1.0, 12, 12), (0.0, 50, 0)])
def test_random_background_adds_exactly_the_ratio(ratio, background_flows, added):
    rng = np.random.default_rng(0)
    y = np.array([0] * background_flows + [1] * 20 + [2] * 5)
    images = np.zeros((len(y), 32, 32), dtype=np.uint8)
    more_images, more_y = with_random_background(images, y, 0, ratio, rng)
    assert random_sample_count(background_flows, ratio) == added
    assert len(more_y) == len(y) + added and more_images.shape == (len(y) + added, 32, 32)
    np.testing.assert_array_equal(more_y[:len(y)], y)
    assert (more_y[len(y):] == 0).all()  # labelled background
    if added >= 4:
        noise = more_images[len(y):]
        assert 100 < noise.mean() < 155 and len(np.unique(noise)) > 200  # uniform random bytes
    unchanged_images, unchanged_y = with_random_background(images, y, None, 1.0, rng)
    assert unchanged_images is images and unchanged_y is y  # no background class: nothing to add


# ----- the model ---------------------------------------------------------------------------------------


def test_beats_the_majority_class_on_real_flows_and_round_trips(lab_tables, tmp_path):
    train, val, test = (paper_classes(lab_tables[split]) for split in ("train", "val", "test"))
    model = create_model("handshake-cnn", {"epochs": "3", "learning_rate": "3e-4", "random_ratio": "0.25"})
    model.fit(train, val, seed=0)
    background_flows = train.column("label").to_pylist().count("background")
    assert [epoch["random_images"] for epoch in model.training_["history"]] == [round(background_flows / 4)] * 3
    truth = test.column("label").to_pylist()
    ours = classification_metrics(truth, model.predict(test), model.classes_)
    majority = create_model("majority").fit(train, seed=0)
    floor = classification_metrics(truth, majority.predict(test), majority.classes_)
    assert ours["accuracy"] > floor["accuracy"] + 0.1 and ours["macro_f1"] > floor["macro_f1"] + 0.1

    probabilities = model.predict_proba(test)
    np.testing.assert_array_equal(model.predict_proba(test), probabilities)  # identity draws are seeded
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / WEIGHTS_FILE).exists()
    assert not list((tmp_path / "m").glob("*.p*kl*"))
    loaded = load_model(tmp_path / "m")
    assert loaded.classes_ == model.classes_ and loaded.config == model.config
    np.testing.assert_allclose(loaded.predict_proba(test), probabilities, rtol=1e-5, atol=1e-6)

    # bf16 autocast (the default where the CPU multiplies bf16 natively) agrees with full precision
    model.config.precision = "bf16"
    half = model.predict_proba(test)
    model.config.precision = "fp32"
    full = model.predict_proba(test)
    assert (half.argmax(axis=1) == full.argmax(axis=1)).mean() >= 0.95 and np.abs(half - full).max() < 0.05


def test_settings_are_checked():
    with pytest.raises(ModelError, match="device"):
        create_model("handshake-cnn", {"device": "tpu"})
    with pytest.raises(ModelError, match="random_ratio"):
        create_model("handshake-cnn", {"random_ratio": "-0.1"})
    with pytest.raises(ModelError, match="precision"):
        create_model("handshake-cnn", {"precision": "int4"})
    assert create_model("handshake-cnn").config.random_ratio == pytest.approx(1 / 9)


# ----- command line ------------------------------------------------------------------------------------


def test_sweep_command_cross_validates_every_ratio_and_plots(lab_dataset, tmp_path):
    out = tmp_path / "sweep"
    result = runner.invoke(app, ["handshake-sweep", str(lab_dataset), "--ratios", "0,0.5", "--folds", "2",
                                 "--others-as-background", "--set", "epochs=1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    sweep = json.loads((out / "sweep.json").read_text())
    assert [point["value"] for point in sweep["points"]] == [0.0, 0.5]
    assert sweep["classes"] == PAPER_CLASSES and sweep["folds"] == 2 and sweep["others"] == "background"
    everything = read_flows(lab_dataset, columns=["label"]).num_rows
    for point in sweep["points"]:
        # every flow is tested exactly once: the three classes' in their fold, the other nine's as background
        assert sum(fold["samples"] for fold in point["folds"]) == everything
        assert point["accuracy"] == pytest.approx(np.mean([fold["accuracy"] for fold in point["folds"]]))
        assert 0 <= point["others_recall"] <= 1 and 0 <= point["known_macro_f1"] <= 1
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "0.5" in result.output and "F1" in result.output and "unseen" in result.output

    unknown = runner.invoke(app, ["handshake-sweep", str(lab_dataset), "--classes", "shadowsocks,nope",
                                  "--set", "epochs=1", "-o", str(tmp_path / "x")])
    assert unknown.exit_code == 2 and "nope" in unknown.output and "Traceback" not in unknown.output
    bad = runner.invoke(app, ["handshake-sweep", str(lab_dataset), "--ratios", "0,a", "-o", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "--ratios" in bad.output


def test_train_command_runs_the_model_through_the_harness(lab_dataset, tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", str(lab_dataset), "-m", "handshake-cnn", "--set", "epochs=1",
                                 "-o", str(run)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"] == "handshake-cnn" and metrics["samples"] > 0
    assert (run / "model" / WEIGHTS_FILE).exists()
