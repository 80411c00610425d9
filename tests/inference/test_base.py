"""Sampling from a settings section: the one conversion augment, rewrite and curate share."""
import pytest

from humpback.config import load_config
from humpback.inference.base import Sampling
from humpback.inference.rating_task import generate_sampling


def test_sampling_from_settings_converts_each_value_and_keeps_the_stored_order():
    sampling = Sampling.from_settings({"temperature": "0.5", "top_p": 1, "max_new_tokens": "64", "seed": "3",
                                       "model": "ignored"})
    assert sampling == Sampling(temperature=0.5, top_p=1.0, max_new_tokens=64, seed=3, n=1)
    # the order of the dict that lineage and content ids are computed from
    assert list(sampling.to_dict()) == ["temperature", "top_p", "max_new_tokens", "seed", "n"]
    assert isinstance(sampling.top_p, float) and isinstance(sampling.max_new_tokens, int)


def test_curates_generate_mode_takes_its_sample_count_from_the_settings():
    curate = load_config()["curate"]
    assert generate_sampling(curate) == {"temperature": float(curate["temperature"]), "top_p": float(curate["top_p"]),
                                         "max_new_tokens": int(curate["max_new_tokens"]),
                                         "seed": int(curate["seed"]), "n": int(curate["samples"])}


def test_a_section_without_a_sampling_setting_is_a_key_error():
    with pytest.raises(KeyError, match="seed"):
        Sampling.from_settings({"temperature": 0.7, "top_p": 0.9, "max_new_tokens": 8})
