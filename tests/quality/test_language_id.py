import socket

import pytest

from humpback.quality import langid
from humpback.quality.langid import detect_language


@pytest.mark.parametrize("text, code", [
    ("The quick brown fox jumps over the lazy dog while the farmer watches from the porch.", "en"),
    ("Le renard brun rapide saute par-dessus le chien paresseux pendant que le fermier regarde.", "fr"),
    ("Der schnelle braune Fuchs springt über den faulen Hund, während der Bauer zusieht.", "de"),
    ("El rápido zorro marrón salta sobre el perro perezoso mientras el granjero mira.", "es"),
])
def test_detects_the_language_as_an_iso_639_1_code(text, code):
    lang, score = detect_language(text)
    assert lang == code
    assert 0.5 < score <= 1.0


def test_text_without_letters_is_undetermined():
    assert detect_language("1234 5678 -- ++ ==") == ("und", 0.0)
    assert detect_language("") == ("und", 0.0)


def test_the_model_loads_without_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    langid._identifier.cache_clear()
    assert detect_language("This sentence is written in plain English.")[0] == "en"


def test_the_model_is_loaded_once_per_process():
    detect_language("warm up the cache")
    first = langid._identifier()
    detect_language("another call")
    assert langid._identifier() is first
