import pytest

from humpback.config import ConfigError, apply_override, config_hash, load_config


def test_defaults_carry_the_paper_length_window():
    config = load_config()
    assert config["segment"]["min_chars"] == 600
    assert config["segment"]["max_chars"] == 3000


def test_user_file_and_overrides_merge_over_defaults(tmp_path):
    user = tmp_path / "user.toml"
    user.write_text('[segment]\ntarget_lang = "de"\n')
    config = load_config(user, ["segment.min_chars=400", "spark.conf.spark.executor.memory=8g"])
    assert (config["segment"]["target_lang"], config["segment"]["min_chars"], config["segment"]["max_chars"]) == \
        ("de", 400, 3000)
    assert config["spark"]["conf"]["spark"]["executor"]["memory"] == "8g"


def test_override_values_are_typed():
    config = {}
    apply_override(config, "a.ratio=0.5")
    apply_override(config, "a.flag=true")
    apply_override(config, "a.name=plain words")
    assert config == {"a": {"ratio": 0.5, "flag": True, "name": "plain words"}}


@pytest.mark.parametrize("bad", ["no_equals_sign", "=5"])
def test_malformed_override_is_a_clear_error(bad):
    with pytest.raises(ConfigError, match="section.key=value"):
        apply_override({}, bad)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml")


def test_config_hash_ignores_key_order_but_not_values():
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})
