import re
from pathlib import Path

import pytest

from humpback.config import ConfigError, apply_override, load_config
from humpback.ids import config_hash


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


# ----- every setting is checked at load time: its name against the schema, its value against the type -----

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path", [None, REPO / "conf" / "demo.toml", REPO / "tests" / "fixtures" / "tiny_demo.toml"])
def test_shipped_settings_files_load_clean(path):
    load_config(path)


def test_unknown_setting_is_refused_with_a_suggestion():
    with pytest.raises(ConfigError) as err:
        load_config(overrides=["segment.min_char=5000"])
    assert str(err.value) == "--set segment.min_char: unknown setting; did you mean segment.min_chars?"


def test_unknown_section_is_refused():
    with pytest.raises(ConfigError, match=r"^--set segmnt\.min_chars: unknown setting; did you mean segment\.min_chars\?"):
        load_config(overrides=["segmnt.min_chars=400"])


def test_unknown_setting_in_a_config_file_names_the_file_and_the_setting(tmp_path):
    user = tmp_path / "user.toml"
    user.write_text("[segment]\nmin_chars = 400\nmax_char = 2000\n")
    with pytest.raises(ConfigError) as err:
        load_config(user)
    assert str(err.value) == f"{user}: segment.max_char: unknown setting; did you mean segment.max_chars?"


@pytest.mark.parametrize("override, message", [
    ("segment.min_chars=abc", "--set segment.min_chars: expected an integer, got 'abc'"),
    ("segment.min_chars=4.5", "--set segment.min_chars: expected an integer, got 4.5"),
    ("curate.temperature=hot", "--set curate.temperature: expected a number, got 'hot'"),
    ("trainset.include_constrained=yes", "--set trainset.include_constrained: expected true or false, got 'yes'"),
    ("curate.scorer=5", "--set curate.scorer: expected a string, got 5"),  # "" defaults are strings
    ("train.batch_size=two", "--set train.batch_size: expected an integer, got 'two'"),  # TrainSettings' int | None
    ("spark.conf=8g", "--set spark.conf: expected a table, got '8g'"),
    ("segment.min_chars.low=1", "--set segment.min_chars.low: segment.min_chars is a setting, not a section"),
])
def test_mistyped_value_is_refused_naming_what_the_setting_expects(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(overrides=[override])
    assert str(err.value) == message


def test_mistyped_value_in_a_config_file_is_refused(tmp_path):
    user = tmp_path / "user.toml"
    user.write_text('[dedup]\nthreshold = "high"\n')
    with pytest.raises(ConfigError, match=r"user\.toml: dedup\.threshold: expected a number, got 'high'"):
        load_config(user)


def test_an_integer_is_accepted_for_a_number():
    config = load_config(overrides=["trainset.min_score=4", "inference.vllm.cpu_kvcache_space=0.5"])
    assert config["trainset"]["min_score"] == 4 and config["inference"]["vllm"]["cpu_kvcache_space"] == 0.5


def test_settings_beyond_the_defaults_file_are_accepted(tmp_path):
    """Every TrainSettings field, the engines' options and the free [spark.conf] table, in a file and with --set."""
    user = tmp_path / "user.toml"
    user.write_text('[train]\nlearning_rate = 1e-4\nlora_target_modules = ["q_proj", "k_proj"]\nbf16 = false\n'
                    '[inference.transformers]\ndevice = "cuda"\n[spark.conf]\n"spark.executor.cores" = 4\n')
    config = load_config(user, ["train.num_epochs=1", "inference.vllm.max_model_len=1024",
                                "inference.openai.timeout_s=30", "inference.max_prompt_tokens=120",
                                "spark.conf.spark.executor.memory=8g"])
    assert config["train"]["lora_target_modules"] == ["q_proj", "k_proj"] and config["train"]["num_epochs"] == 1
    assert config["inference"]["transformers"]["device"] == "cuda"
    assert config["spark"]["conf"]["spark.executor.cores"] == 4


def test_every_set_example_in_the_readme_is_a_valid_setting():
    examples = re.findall(r"--set ([\w.]+=[^\s`\]]+)", (REPO / "README.md").read_text())
    assert examples
    load_config(overrides=examples)


def test_an_unknown_key_with_no_close_name_lists_the_sections_keys():
    with pytest.raises(ConfigError, match=r"zzzqqq: unknown setting; known in \[segment\]: .*min_chars, "):
        load_config(overrides=["segment.zzzqqq=1"])
    with pytest.raises(ConfigError, match=r"known sections: augment, .*segment, "):
        load_config(overrides=["qqqzzz.x=1"])
