"""`humpback segment` as a Spark job: drop reasons incl. exact and near duplicates, rejects, idempotence, the sample."""
import json
import shutil
from pathlib import Path

import pytest
from warc_fixtures import gzip_member, response_record

from humpback.sqlfiles import load_sql
from humpback.stages import ingest, segment, sql

REPO = Path(__file__).resolve().parents[2]

ARTICLE = (
    "The river runs through the old town and past the mill, where the water turns a wheel that has been there "
    "for two hundred years. People who live in the town say that the sound of the wheel is the first thing they "
    "hear in the morning and the last thing they hear at night. In the spring the water is high and fast, and the "
    "children are told to stay away from the banks. In the summer it is slow and warm, and the same children swim "
    "in the pool below the weir. The mill itself was built by a family of farmers who wanted to grind their own "
    "grain instead of paying a miller in the next valley. Their grandchildren turned it into a small museum, and "
    "now visitors can see how flour was made before there were machines to do the work. A guide explains each "
    "step, from the cleaning of the grain to the sifting of the flour, and at the end of the tour everyone may "
    "taste bread that was baked with flour from the mill."
)
SECOND = (
    "Tea is grown on steep hills where the rain falls often and the air is cool. The leaves are picked by hand, "
    "usually only the top two leaves and a bud, because these give the best flavour. After picking, the leaves "
    "are spread out to wilt, then rolled to break their cells, which lets the juices meet the air. This is the "
    "step that decides whether the tea will be green, black or something in between. Green tea is heated soon "
    "after rolling so that it keeps its colour, while black tea is left to darken for several hours. Finally the "
    "leaves are dried, sorted by size and packed. A good cup depends on the water as much as on the leaves: it "
    "should be fresh, and for green tea it should not be boiling, since very hot water makes the taste bitter."
)

# A paragraph that the translation of a page left in French: the whole segment still reads as English.
UNTRANSLATED = (
    "Le moulin a été construit par une famille de paysans qui voulaient moudre leur propre grain au lieu de "
    "payer un meunier dans la vallée voisine. Leurs petits-enfants l'ont transformé en un petit musée, et les "
    "visiteurs peuvent aujourd'hui voir comment on fabriquait la farine avant l'arrivée des machines."
)


# Under min_chars (439 characters): dropped as too_short by default; a pair of exact duplicates at min_chars = 400.
BEES = (
    "Bees carry pollen from one flower to the next, and that is how many of the plants in a garden set their "
    "fruit. A single colony can visit thousands of flowers in a day when the weather is warm and dry. The workers "
    "fly out in the morning, return with their loads and tell the others where the best flowers are by dancing on "
    "the comb. Beekeepers leave enough honey in the hive for the winter, and they take only what the colony does "
    "not need."
)


def page(*sections: tuple[str, str], level: int = 2) -> bytes:
    body = "".join(f"<h{level}>{header}</h{level}><p>{text}</p>" for header, text in sections)
    return f"<html><body><nav><a href='/'>Home</a></nav>{body}</body></html>".encode()


@pytest.fixture(scope="module")
def segmented(tmp_path_factory, spark):
    from humpback.lakehouse import Lakehouse
    from humpback.tracking import configure_mlflow

    root = tmp_path_factory.mktemp("segment")
    near = ARTICLE.replace("two hundred years", "three hundred years")
    records = [
        response_record(1, body=page(("The mill by the river", ARTICLE), ("SHOUTING HEADER", SECOND),
                                     ("Related posts", SECOND), ("Short part", "Only a few words here."))),
        response_record(2, body=page(("The mill by the river", ARTICLE))),  # an exact copy of page 1's section
        response_record(3, body=page(("Mill history", near))),  # one word changed: a near duplicate
        response_record(4, body=page(("How tea is made", SECOND))),
        response_record(5, body=b"<html><body><p>No headers on this page at all.</p></body></html>"),
        response_record(6, body=b"<html><body><h2>Deep</h2>" + b"<div>" * 5000 + b"x" + b"</div>" * 5000 + b"</body></html>"),
        response_record(7, body=f"<html><body><h2>A visit to the mill</h2><p>{ARTICLE}</p><p>{UNTRANSLATED}</p>"
                                f"<p>{SECOND}</p></body></html>".encode()),
        response_record(8, body=page(("Bees in the garden", BEES))),
        response_record(9, body=page(("Why gardens need bees", BEES))),
    ]
    warc = root / "pages.warc.gz"
    warc.write_bytes(b"".join(gzip_member(r) for r in records))
    lakehouse = Lakehouse(spark, str(root / "lakehouse"))
    mlflow_uri = configure_mlflow(f"sqlite:///{root / 'mlflow.db'}")
    common = ["--lakehouse", lakehouse.root, "--mlflow-uri", mlflow_uri]
    assert ingest.STAGE.main(["--input", str(warc), *common]) == 0
    assert segment.STAGE.main(common) == 0
    return lakehouse, common


def test_each_rule_names_its_drop_reason(segmented):
    lakehouse, _ = segmented
    by_header = {}
    for row in lakehouse.read("segments").collect():
        by_header.setdefault(row.header, []).append(row.drop_reason)
    assert by_header["SHOUTING HEADER"] == ["all_caps_header"]
    assert by_header["Related posts"] == ["nav_header"]
    assert by_header["Short part"] == ["too_short"]
    assert by_header["How tea is made"] == [None]
    assert by_header["Mill history"] == ["near_duplicate"]
    assert by_header["A visit to the mill"] == ["mixed_language"]
    assert by_header["Bees in the garden"] == by_header["Why gardens need bees"] == ["too_short"]
    # The same text on two pages: exactly one copy is kept.
    assert sorted(by_header["The mill by the river"], key=str) == [None, "exact_duplicate"]


def test_segments_carry_signals_as_columns(segmented):
    lakehouse, _ = segmented
    row = lakehouse.read("segments").where("header = 'How tea is made'").first()
    assert row.lang == "en" and row.n_chars == len(SECOND) and row.header_level == 2
    assert row.signals.lang_score > 0.9 and row.signals.repetition < 0.5 and row.signals.n_words > 100
    assert row.page_id and len(row.segment_id) == 32
    assert row.signals.lang_share == 1.0 and row.signals.foreign_paragraphs == 0
    mixed = lakehouse.read("segments").where("header = 'A visit to the mill'").first()
    assert mixed.lang == "en" and mixed.signals.foreign_paragraphs == 1 and mixed.signals.lang_share < 0.9


def test_unparseable_pages_are_rejected_with_a_reason(segmented):
    lakehouse, _ = segmented
    rejects = {r.reason: r for r in lakehouse.read("rejects").where("stage = 'segment'").collect()}
    assert set(rejects) == {"too_complex", "no_segments"}
    assert rejects["no_segments"].source.startswith("pages:") and "page-5" in rejects["no_segments"].detail


def test_rerun_changes_nothing(segmented):
    lakehouse, common = segmented
    before = sorted((r.segment_id, r.drop_reason or "") for r in lakehouse.read("segments").collect())
    rejects = lakehouse.read("rejects").count()
    assert segment.STAGE.main(common) == 0
    assert sorted((r.segment_id, r.drop_reason or "") for r in lakehouse.read("segments").collect()) == before
    assert lakehouse.read("rejects").count() == rejects


def test_segment_without_pages_says_what_to_run(tmp_path, mlflow_store, capsys):
    assert segment.STAGE.main(["--lakehouse", str(tmp_path / "empty"), "--mlflow-uri", mlflow_store]) == 2
    assert "humpback ingest" in capsys.readouterr().err


def copy_tables(source_root: str, target_root: Path, tables: list[str]) -> None:
    """Delta tables are folders with relative paths inside: a copy is the same table elsewhere."""
    for table in tables:
        shutil.copytree(Path(source_root) / table, target_root / table)


def reasons_by_id(lakehouse) -> dict:
    return {row.segment_id: row.drop_reason for row in lakehouse.read("segments").collect()}


def reasons_by_header(lakehouse) -> dict:
    by_header = {}
    for row in lakehouse.read("segments").orderBy("segment_id").collect():
        by_header.setdefault(row.header, []).append(row.drop_reason)
    return {header: sorted(reasons, key=str) for header, reasons in by_header.items()}


def test_redecide_applies_new_thresholds_to_the_stored_signals_without_reading_a_page(segmented, spark, tmp_path,
                                                                                      capsys):
    from humpback.lakehouse import Lakehouse

    source, common = segmented
    mlflow_uri = common[common.index("--mlflow-uri") + 1]
    copy = Lakehouse(spark, str(tmp_path / "copy"))
    copy_tables(source.root, Path(copy.root), ["pages", "segments"])
    # No pages: a run that parsed pages would find none, so every change below comes from the stored signals.
    copy.write(spark.createDataFrame([], copy.read("pages").schema), "pages", mode="overwrite")
    options = ["--lakehouse", copy.root, "--mlflow-uri", mlflow_uri, "--redecide"]
    stored = sorted((row.segment_id, row.text, row.signals) for row in copy.read("segments").collect())
    n_chars = {row.header: row.n_chars for row in copy.read("segments").collect()}
    before, total = reasons_by_id(copy), len(stored)
    capsys.readouterr()

    # 1. A rule threshold that moves a segment from one rule to another: the segments the rules keep stay the
    # same, so the duplicate marks are kept, and one row is updated in place.
    visit = copy.read("segments").where("header = 'A visit to the mill'").first().segment_id
    assert segment.STAGE.main([*options, "--set", f"segment.max_chars={n_chars['A visit to the mill'] - 1}"]) == 0
    out = capsys.readouterr().out
    assert f"1 of {total} segments changed drop reason" in out and "duplicate marks kept" in out
    after = reasons_by_id(copy)
    assert {key: (before[key], after[key]) for key in before if before[key] != after[key]} == \
        {visit: ("mixed_language", "too_long")}
    commit = copy.history("segments", 1)[0]
    metrics = commit["operationMetrics"]
    assert commit["operation"] == "MERGE"
    assert (int(metrics["numSourceRows"]), int(metrics["numTargetRowsUpdated"]),
            int(metrics["numTargetRowsInserted"])) == (1, 1, 0)
    metadata = json.loads(commit["userMetadata"])
    assert metadata["thresholds"]["max_chars"] == n_chars["A visit to the mill"] - 1
    assert metadata["segment_drops_sql_sha256"] == load_sql("segment_drops").sha256

    # 2. A threshold that changes which segments the rules keep: the mill's two copies become too short, and the
    # near duplicate of them is now the only copy left, so it is kept (kept marks would have lost the whole group).
    assert segment.STAGE.main([*options, "--set", f"segment.min_chars={len(ARTICLE) + 1}"]) == 0
    out = capsys.readouterr().out
    assert "duplicates are marked again" in out
    assert reasons_by_header(copy) == {
        "The mill by the river": ["too_short", "too_short"], "Mill history": [None],
        "How tea is made": ["too_short"], "SHOUTING HEADER": ["too_short"], "Related posts": ["too_short"],
        "Short part": ["too_short"], "A visit to the mill": ["mixed_language"],
        "Bees in the garden": ["too_short"], "Why gardens need bees": ["too_short"],
    }

    # 3. Segments that now pass include two copies of one text: one is kept, the other is an exact duplicate, and
    # the table is what a full run with the same settings writes from the pages.
    assert segment.STAGE.main([*options, "--set", "segment.min_chars=400"]) == 0
    assert sorted(reasons_by_header(copy)["Bees in the garden"] + reasons_by_header(copy)["Why gardens need bees"],
                  key=str) == [None, "exact_duplicate"]
    fresh = Lakehouse(spark, str(tmp_path / "fresh"))
    copy_tables(source.root, Path(fresh.root), ["pages"])
    assert segment.STAGE.main(["--lakehouse", fresh.root, "--mlflow-uri", mlflow_uri,
                               "--set", "segment.min_chars=400"]) == 0
    assert reasons_by_id(copy) == reasons_by_id(fresh)

    # Pages were never read: the copy's stay empty, and no segment was added or re-measured.
    assert copy.read("pages").count() == 0
    assert sorted((row.segment_id, row.text, row.signals) for row in copy.read("segments").collect()) == stored
    assert all(commit["operation"] == "MERGE" and int(commit["operationMetrics"]["numTargetRowsInserted"]) == 0
               for commit in copy.history("segments", 3))


def test_redecide_without_changes_writes_nothing(segmented, spark, tmp_path, capsys):
    from humpback.lakehouse import Lakehouse

    source, common = segmented
    copy = Lakehouse(spark, str(tmp_path / "copy"))
    copy_tables(source.root, Path(copy.root), ["pages", "segments"])
    version = copy.version("segments")
    assert segment.STAGE.main(["--lakehouse", copy.root, *common[2:], "--redecide"]) == 0
    assert "0 of " in capsys.readouterr().out
    assert copy.version("segments") == version


def test_redecide_without_segments_says_what_to_run(segmented, spark, tmp_path, capsys):
    source, common = segmented
    copy_tables(source.root, tmp_path / "copy", ["pages"])
    assert segment.STAGE.main(["--lakehouse", str(tmp_path / "copy"), *common[2:], "--redecide"]) == 2
    assert "run `humpback segment` first" in capsys.readouterr().err


@pytest.mark.slow
def test_the_sample_corpus_yields_at_least_300_kept_segments(spark, tmp_path, mlflow_store, capsys):
    common = ["--lakehouse", str(tmp_path / "lakehouse"), "--mlflow-uri", mlflow_store]
    assert ingest.STAGE.main(["--input", str(REPO / "data/sample/*.warc.gz"), *common]) == 0
    assert segment.STAGE.main(common) == 0
    capsys.readouterr()
    assert sql.STAGE.main(["SELECT coalesce(drop_reason, 'kept') AS reason, count(*) AS n FROM segments GROUP BY 1",
                     "--format", "jsonl", *common]) == 0
    counts = {row["reason"]: row["n"] for row in map(json.loads, capsys.readouterr().out.splitlines())}
    assert counts["kept"] >= 300
    assert {"too_short", "too_long"} <= set(counts)

    import mlflow

    run = mlflow.search_runs(experiment_names=["humpback"], filter_string="tags.`humpback.stage` = 'segment'",
                             output_format="list")[0]
    assert run.data.metrics["kept"] == counts["kept"]
    assert run.data.params["settings.dedup.bands"] == "14"
    artifacts = [a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)]
    assert "segment_lengths.png" in artifacts
