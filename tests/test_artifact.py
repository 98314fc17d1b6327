"""Artifact format: round trip, plane tensor packing, and every tampering is a named error."""

import json

import numpy as np
import pytest

from bitbranch.isa.artifact import (
    Artifact,
    ArtifactError,
    TensorSpec,
    load_artifact,
    pack_plane_tensor,
    save_artifact,
    unpack_plane_tensor,
    write_tensor,
)
from bitbranch.isa.encoding import Instruction
from bitbranch.isa.hwconfig import get_config

HW = get_config("small")


def make_artifact(tmp_path):
    rng = np.random.default_rng(1)
    levels = rng.integers(0, 4, (3, 5, 70))
    logits = rng.integers(-(2**31), 2**31 - 1, (10,))
    x = TensorSpec("x", 0, "planes", (3, 5, 70), 2)
    y = TensorSpec("y", 512, "int32", (10,))
    dram = bytearray(1024)
    write_tensor(dram, x, levels, HW)
    write_tensor(dram, y, logits, HW)
    art = Artifact(HW, [Instruction.make("finish")], bytes(dram), {"x": x, "y": y}, ["x"], ["x", "y"],
                   {"x": levels, "y": logits})
    return save_artifact(art, tmp_path / "art"), levels, logits


@pytest.mark.parametrize("bits,channels", [(1, 1), (2, 64), (3, 65), (8, 130)])
def test_plane_tensor_round_trip(bits, channels):
    levels = np.random.default_rng(bits).integers(0, 1 << bits, (2, 3, channels))
    data = pack_plane_tensor(levels, bits, 64)
    assert len(data) == 2 * 3 * -(-channels // 64) * bits * 8
    assert np.array_equal(unpack_plane_tensor(data, levels.shape, bits, 64), levels)


def test_plane_layout_bit_positions():
    levels = np.zeros((1, 1, 70), dtype=np.uint8)
    levels[0, 0, 65] = 2  # channel 65 -> word 1, bit 1; level 2 -> plane 1 only
    words = np.frombuffer(pack_plane_tensor(levels, 2, 64), dtype="<u8")
    assert words.tolist() == [0, 0, 0, 1 << 1]  # [cw0 p0, cw0 p1, cw1 p0, cw1 p1]


def test_save_load_round_trip_and_golden_compare(tmp_path):
    path, levels, logits = make_artifact(tmp_path)
    art = load_artifact(path)
    assert art.compare_golden(art.dram) == {"x": True, "y": True}
    assert np.array_equal(art.output(art.dram, "y"), logits)
    flipped = bytearray(art.dram)
    flipped[0] ^= 1
    assert art.compare_golden(bytes(flipped))["x"] is False


def test_tampered_dram_is_detected(tmp_path):
    path, *_ = make_artifact(tmp_path)
    data = bytearray((path / "dram.bin").read_bytes())
    data[3] ^= 0xFF
    (path / "dram.bin").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="dram.bin does not match its sha256"):
        load_artifact(path)


def test_manifest_errors_name_field(tmp_path):
    path, *_ = make_artifact(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["tensors"]["y"]["addr"] = 1020
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="tensor 'y'.*beyond DRAM"):
        load_artifact(path)
    manifest["tensors"]["y"]["addr"] = 512
    manifest["program"]["file"] = "../../etc/passwd"
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="outside the artifact directory"):
        load_artifact(path)


def test_pickled_golden_is_refused(tmp_path):
    path, *_ = make_artifact(tmp_path)
    np.save(path / "golden" / "y.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ArtifactError, match="not a plain numpy array"):
        load_artifact(path)


def test_missing_manifest(tmp_path):
    with pytest.raises(ArtifactError, match="no manifest.json"):
        load_artifact(tmp_path)


GOOD_LAYER = {"name": "conv1", "kind": "conv", "instructions": [0, 1], "in_shape": [3, 5, 70], "out_shape": [3, 5, 8],
              "bits": {"a_in": 2, "a_out": 2, "w": 2, "ternary": False}, "tiles": 1, "tile_rows": 3, "tile_cols": 5,
              "macs": 8400, "weight_bits": 1120, "kernel": [1, 1]}


def with_layers(path, layers):
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["layers"] = layers
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_layer_records_load_typed(tmp_path):
    path, *_ = make_artifact(tmp_path)
    with_layers(path, [GOOD_LAYER])
    (rec,) = load_artifact(path).layers
    assert (rec.name, rec.instructions, rec.bits.w, rec.macs) == ("conv1", (0, 1), 2, 8400)
    assert rec.detail == {"kernel": [1, 1]}
    assert rec.to_dict() == GOOD_LAYER


@pytest.mark.parametrize("change, message", [
    ({"tiles": None}, r"layers\[0\] \('conv1'\): missing field\(s\) tiles"),
    ({"instructions": [0, 9]}, r"field 'instructions'=\[0, 9\] is not a range .* 1 instructions"),
    ({"macs": "many"}, r"field 'macs'='many' is not an integer"),
    ({"bits": {"a_in": 2}}, r"\('conv1'\): malformed field"),
    ({"name": 7}, r"field 'name'=7 is not a str"),
])
def test_layer_record_errors_name_the_field(tmp_path, change, message):
    path, *_ = make_artifact(tmp_path)
    bad = {k: v for k, v in {**GOOD_LAYER, **change}.items() if v is not None}
    with_layers(path, [bad])
    with pytest.raises(ArtifactError, match=message):
        load_artifact(path)
