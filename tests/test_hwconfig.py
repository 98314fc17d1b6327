"""Hardware presets: load, derived figures, and clear errors for malformed configs."""

import pytest

from bitbranch.isa.hwconfig import BUFFERS, ConfigError, HwConfig, get_config, load_presets


def test_presets_load_and_default_is_edge():
    presets = load_presets()
    assert {"small", "edge", "cloud"} <= set(presets)
    assert get_config().name == "edge"
    edge = presets["edge"]
    assert (edge.array_rows, edge.array_cols, edge.word_bits) == (16, 16, 64)
    assert edge.peak_bitops_per_cycle == 16 * 16 * 64 * edge.branch_parallel


def test_entry_sizes_follow_the_array():
    hw = get_config("small")
    assert hw.entry_bytes("inp") == hw.entry_bytes("out") == hw.word_bits // 8
    assert hw.entry_bytes("wgt") == hw.array_cols * hw.word_bits // 8
    assert hw.entry_bytes("acc") == hw.array_cols * 4
    assert hw.entry_bytes("const") == hw.array_cols * 16
    assert all(hw.entries(b) > 0 for b in BUFFERS)


def test_unknown_preset_names_the_choices():
    with pytest.raises(ConfigError, match="unknown hardware preset 'nope'.*edge"):
        get_config("nope")


def test_config_file_errors_name_file_and_field(tmp_path):
    good = get_config("small").to_dict()
    good.pop("name")
    bad = dict(good, array_rows=0)
    path = tmp_path / "mine.toml"
    path.write_text("[mine]\n" + "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in bad.items()))
    with pytest.raises(ConfigError, match="array_rows.*must be > 0"):
        get_config(f"{path}:mine")
    good["bogus"] = 3
    path.write_text("[mine]\n" + "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in good.items()))
    with pytest.raises(ConfigError, match=r"mine\.toml \[mine\].*unknown.*bogus"):
        get_config(str(path))


def test_word_bits_must_hold_whole_lane_slices():
    d = get_config("small").to_dict()
    with pytest.raises(ConfigError, match="multiple of array_cols"):
        HwConfig.from_dict(dict(d, array_cols=3))
