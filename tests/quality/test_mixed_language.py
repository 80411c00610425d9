"""Segments that switch language between paragraphs (partly translated pages) are dropped as mixed_language;
English with code, lists, short lines, foreign names or quoted phrases is not."""
import pytest

from humpback.config import load_config
from humpback.quality import langid
from humpback.quality.langid import is_judgeable, paragraph_language_signals
from humpback.quality.rules import DEFAULT_THRESHOLDS, drop_reason
from humpback.quality.signals import compute_signals

ENGLISH = [
    "Tea is grown on steep hills where the rain falls often and the air stays cool for most of the year. The "
    "leaves are picked by hand, usually only the top two leaves and a bud, because these give the best flavour.",
    "After picking, the leaves are spread out to wilt and then rolled to break their cells, which lets the "
    "juices meet the air. This is the step that decides whether the tea will be green, black or in between.",
    "Green tea is heated soon after rolling so that it keeps its colour, while black tea is left to darken for "
    "several hours. Finally the leaves are dried, sorted by size and packed into chests for the journey.",
    "A good cup depends on the water as much as on the leaves: it should be fresh, and for green tea it should "
    "not be boiling, since very hot water draws out the bitter compounds and hides the sweeter notes.",
]

# The same kind of paragraph that a translation left behind, in six languages and four scripts.
FOREIGN = {
    "fr": "Le thé vert est chauffé peu après le roulage afin de garder sa couleur, tandis que le thé noir est "
          "laissé à foncer pendant plusieurs heures. Enfin, les feuilles sont séchées, triées et emballées.",
    "de": "Grüner Tee wird kurz nach dem Rollen erhitzt, damit er seine Farbe behält, während schwarzer Tee "
          "mehrere Stunden lang nachdunkeln darf. Zum Schluss werden die Blätter getrocknet und verpackt.",
    "es": "El té verde se calienta poco después del enrollado para que conserve su color, mientras que el té "
          "negro se deja oscurecer durante varias horas. Por último, las hojas se secan, se clasifican y se "
          "empaquetan.",
    "ru": "Зелёный чай нагревают вскоре после скручивания, чтобы он сохранил свой цвет, а чёрный чай оставляют "
          "темнеть на несколько часов. В конце листья сушат, сортируют по размеру и упаковывают.",
    "zh": "绿茶在揉捻后不久就要加热，以保持它的颜色，而红茶则要放置几个小时，让它慢慢变深。最后，茶叶经过干燥，"
          "按大小分类，然后装箱运往各地。",
    "ja": "緑茶は揉んだ後すぐに加熱して色を保ちますが、紅茶は数時間置いて色を濃くします。最後に茶葉を乾燥させ、"
          "大きさごとに選別して箱に詰めます。",
    "ar": "يُسخَّن الشاي الأخضر بعد لفّه بوقت قصير حتى يحتفظ بلونه، بينما يُترك الشاي الأسود ليغمق عدة ساعات. "
          "وفي النهاية تُجفَّف الأوراق وتُفرز حسب الحجم ثم تُعبَّأ في صناديق.",
}


def segment(*paragraphs: str) -> str:
    """Paragraphs as the HTML segmenter writes them: one line per block."""
    return "\n".join(paragraphs)


def judged(text: str) -> int:
    return sum(is_judgeable(line.strip()) for line in text.split("\n"))


@pytest.mark.parametrize("code", sorted(FOREIGN))
def test_one_foreign_paragraph_in_an_english_segment_is_mixed_language(code):
    text = segment(ENGLISH[0], ENGLISH[1], FOREIGN[code], ENGLISH[2], ENGLISH[3])
    signals = compute_signals("How tea is made", text, 2)
    # The whole-segment language id is fooled: that is why the paragraphs are judged one by one.
    assert signals["lang"] == "en" and signals["lang_score"] >= DEFAULT_THRESHOLDS["min_lang_score"]
    assert signals["foreign_paragraphs"] == 1
    assert signals["lang_share"] < DEFAULT_THRESHOLDS["min_lang_share"]
    assert drop_reason(signals) == "mixed_language"


# A second translated paragraph for the pages that alternate.
MORE_FOREIGN = {
    "fr": "Une bonne tasse dépend autant de l'eau que des feuilles : elle doit être fraîche et, pour le thé vert, "
          "ne pas bouillir, car une eau très chaude fait ressortir l'amertume.",
    "ru": "Хорошая чашка зависит от воды не меньше, чем от листьев: вода должна быть свежей, а для зелёного чая "
          "её не следует кипятить, потому что горячая вода делает вкус горьким.",
    "zh": "一杯好茶既取决于茶叶，也取决于水：水要新鲜，泡绿茶时水不能太烫，因为太热的水会带出苦味，盖住甜味。",
}


@pytest.mark.parametrize("code", sorted(MORE_FOREIGN))
def test_a_page_translated_in_alternate_paragraphs_is_dropped(code):
    text = segment(ENGLISH[0], FOREIGN[code], ENGLISH[1], MORE_FOREIGN[code], ENGLISH[2])
    signals = compute_signals("How tea is made", text, 2)
    # Whichever language wins the whole segment, the paragraphs in the other one are counted against it.
    assert signals["foreign_paragraphs"] >= 2 and signals["lang_share"] < DEFAULT_THRESHOLDS["min_lang_share"]
    assert drop_reason(signals) in ("wrong_language", "mixed_language")


def test_the_same_segment_in_english_only_is_kept():
    signals = compute_signals("How tea is made", segment(*ENGLISH), 2)
    assert signals["lang_share"] == 1.0 and signals["foreign_paragraphs"] == 0
    assert drop_reason(signals) is None


ENGLISH_WITH_CODE = segment(
    "A list comprehension builds a new list from an existing iterable in a single expression, and it is often "
    "clearer than a loop that appends to a list one element at a time.",
    ">>> squares = [n * n for n in range(10) if n % 2 == 0]",
    ">>> [num for elem in vec for num in elem]",
    "words = '''Nel mezzo del cammin di nostra vita'''.split()",
    "RecursionError: maximum recursion depth exceeded while calling a Python object",
    "$ python -m pip install --upgrade requests==2.31.0 --index-url https://pypi.org/simple",
    "Nested comprehensions read from left to right, in the same order as the loops they replace. When the logic "
    "grows beyond one or two clauses, a plain loop with a descriptive name is easier to follow and to test.",
    "Generator expressions have the same syntax with parentheses and produce their values lazily, which saves "
    "memory when the result is consumed only once, for example by sum() or by a for loop over a large file.",
)
ENGLISH_WITH_LISTS = segment(
    "Before you start, make sure that the following tools are installed on the machine that runs the build:",
    "- Python 3.11 or newer",
    "- Git",
    "- a C compiler",
    "1. Clone the repository and change into its directory.",
    "2. Create a virtual environment and activate it in your shell.",
    "3. Install the project in editable mode together with its development extras.",
    "Note:",
    "The build writes its output into a folder named dist next to the sources, and it never touches files "
    "outside the project. Run the tests afterwards to check that everything works on your platform.",
    "If a step fails, read the last lines of its output first: they usually name the missing tool or the file "
    "that could not be found, and the fix is often a single command.",
)
ENGLISH_WITH_QUOTED_PHRASES = segment(
    "The French call that quality « je ne sais quoi », a phrase that English speakers borrowed in the "
    "seventeenth century because they had no word of their own for a charm that is hard to describe.",
    "In Mandarin the greeting 你好 (nǐ hǎo) is used at any time of day, and the Japanese ありがとう (arigatō) "
    "means thank you; both appear in every phrase book written for travellers to East Asia.",
    "Russian has a word, тоска (toska), that Nabokov said no single English word renders in all its shades, "
    "and the Arabic word صبر (sabr) is usually translated as patience, although it also means endurance.",
    "- The pdb module now reads the .pdbrc configuration file with the 'UTF-8' encoding. (Contributed by "
    "Srinivas Reddy Thatiparthy (శ్రీనివాస్ రెడ్డి తాటిపర్తి) in bpo-41137.)",
    "Loanwords like these keep the spelling of the language they come from for a long time, and dictionaries "
    "mark them with italics until writers stop noticing that they were ever foreign at all.",
)


@pytest.mark.parametrize("text, foreign_paragraphs", [
    # The Italian string in the code is a foreign paragraph, but a short one: it is counted and the segment kept.
    (ENGLISH_WITH_CODE, 1),
    (ENGLISH_WITH_LISTS, 0),
    (ENGLISH_WITH_QUOTED_PHRASES, 0),
], ids=["code", "lists-and-short-lines", "quoted-foreign-phrases"])
def test_english_with_code_lists_and_quoted_phrases_is_kept(text, foreign_paragraphs):
    assert judged(text) >= 2  # the paragraphs were judged one by one, not waved through
    signals = compute_signals("Notes", text, 2)
    assert signals["lang"] == "en"
    assert signals["lang_share"] >= DEFAULT_THRESHOLDS["min_lang_share"]
    assert signals["foreign_paragraphs"] == foreign_paragraphs
    assert drop_reason(signals) is None


def test_a_name_in_another_script_counts_only_its_own_letters():
    # The classifier calls this line Telugu outright (its letters are three bytes each); by width, the name is
    # about a tenth of the line.
    line = ENGLISH_WITH_QUOTED_PHRASES.split("\n")[3]
    assert langid.is_foreign(line, "en")
    signals = paragraph_language_signals(segment(line, ENGLISH[0]), "en")
    assert 0.85 < signals["lang_share"] < 0.99 and signals["foreign_paragraphs"] == 0


def test_a_segment_entirely_in_french_is_wrong_language():
    french = segment(
        FOREIGN["fr"],
        "Le thé pousse sur des collines escarpées où la pluie tombe souvent et où l'air reste frais presque toute "
        "l'année. Les feuilles sont cueillies à la main, en général seulement les deux feuilles du haut et un "
        "bourgeon, parce que ce sont elles qui donnent le meilleur goût.",
        "Une bonne tasse dépend autant de l'eau que des feuilles : elle doit être fraîche et, pour le thé vert, "
        "ne pas bouillir, car une eau très chaude fait ressortir l'amertume et cache les notes plus douces.",
        "Après la cueillette, les feuilles sont étalées pour flétrir, puis roulées pour briser leurs cellules, "
        "ce qui met leur jus au contact de l'air.",
    )
    signals = compute_signals("Comment on fait le thé", french, 2)
    assert signals["lang"] == "fr"
    assert signals["lang_share"] == 1.0  # every paragraph is in the segment's own language
    assert drop_reason(signals) == "wrong_language"


def test_segments_with_fewer_than_two_judgeable_paragraphs_skip_paragraph_language_id(monkeypatch):
    def must_not_run(*args):
        raise AssertionError("paragraph language id ran on a segment with one judgeable paragraph")

    monkeypatch.setattr(langid, "is_foreign", must_not_run)
    one_paragraph = segment(FOREIGN["fr"], "Short line.", "1234 5678 9012 3456 7890 1234 5678 9012 3456 7890")
    assert judged(one_paragraph) == 1
    assert paragraph_language_signals(one_paragraph, "en") == {"lang_share": 1.0, "foreign_paragraphs": 0}
    assert paragraph_language_signals("", "en") == {"lang_share": 1.0, "foreign_paragraphs": 0}


def test_the_threshold_comes_from_the_config():
    assert load_config()["segment"]["min_lang_share"] == DEFAULT_THRESHOLDS["min_lang_share"]
    signals = compute_signals("How tea is made", segment(ENGLISH[0], FOREIGN["de"], ENGLISH[1], ENGLISH[2]), 2)
    assert drop_reason(signals) == "mixed_language"
    lenient = {**DEFAULT_THRESHOLDS, "min_lang_share": signals["lang_share"]}
    assert drop_reason(signals, lenient) is None
