"""`humpback ingest` as a Spark job: good records kept around bad ones, every bad one a reject, reruns idempotent."""
import pytest
from warc_fixtures import gzip_member, page_html, response_record, warcinfo_record

from humpback.stages import ingest


def damaged_member(record: bytes) -> bytes:
    member = gzip_member(record)
    return member[: len(member) // 2]  # a truncated gzip member


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    first = [
        gzip_member(warcinfo_record()),
        gzip_member(response_record(1)),
        damaged_member(response_record(2, body=page_html("Lost", "x" * 4000))),
        gzip_member(response_record(3)),
        gzip_member(response_record(4, body=b"%PDF-1.4 binary", content_type="application/pdf")),
        gzip_member(response_record(5, body=b"\x00\x01\x02\x03" * 500)),
        gzip_member(response_record(6, body=b"")),
        gzip_member(response_record(7, status="404 Not Found")),
        gzip_member(response_record(8, body=b"<html><body>" + b"<p>big</p>" * 300_000 + b"</body></html>")),
        gzip_member(response_record(9)),
    ]
    (folder / "a.warc.gz").write_bytes(b"".join(first))
    (folder / "b.warc.gz").write_bytes(gzip_member(response_record(10)) + gzip_member(response_record(11)))
    return folder


def run_ingest(corpus, lakehouse, mlflow_store, *patterns):
    args = [arg for pattern in patterns for arg in ("--input", str(corpus / pattern))]
    return ingest.STAGE.main([*args, "--lakehouse", lakehouse.root, "--mlflow-uri", mlflow_store])


def test_good_records_around_bad_ones_are_kept_and_bad_ones_rejected(corpus, lakehouse, mlflow_store, capsys):
    assert run_ingest(corpus, lakehouse, mlflow_store, "a.warc.gz", "b.warc.gz") == 0
    urls = sorted(r.url for r in lakehouse.read("pages").collect())
    assert urls == [f"https://example.com/page-{n}" for n in (1, 10, 11, 3, 9)]
    reasons = sorted(r.reason for r in lakehouse.read("rejects").collect())
    assert "truncated_gzip" in reasons or "corrupt_gzip" in reasons
    for reason in ("not_html", "binary_payload", "empty_body", "http_error_status", "too_large"):
        assert reason in reasons
    assert all(r.stage == "ingest" for r in lakehouse.read("rejects").collect())
    out = capsys.readouterr().out
    assert "5 pages" in out and "rejects by reason" in out


def test_pages_have_the_design_columns(corpus, lakehouse, mlflow_store):
    run_ingest(corpus, lakehouse, mlflow_store, "b.warc.gz")
    page = lakehouse.read("pages").where("url LIKE '%page-10'").first()
    assert page.http_status == 200 and page.content_type == "text/html"
    assert page.warc_file.endswith("b.warc.gz") and page.warc_record_id.startswith("<urn:uuid:")
    assert "Page 10" in page.html and page.n_bytes == len(page_html("Page 10"))
    assert len(page.page_id) == 64


def test_rerun_changes_no_row_count(corpus, lakehouse, mlflow_store):
    run_ingest(corpus, lakehouse, mlflow_store, "*.warc.gz")
    counts = (lakehouse.read("pages").count(), lakehouse.read("rejects").count())
    run_ingest(corpus, lakehouse, mlflow_store, "*.warc.gz")
    assert (lakehouse.read("pages").count(), lakehouse.read("rejects").count()) == counts


def test_a_glob_matching_nothing_is_one_clear_error(corpus, lakehouse, mlflow_store, capsys):
    assert run_ingest(corpus, lakehouse, mlflow_store, "nothing-*.warc.gz") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "matches no files" in err[0]


def test_a_record_in_two_files_is_one_page(corpus, lakehouse, mlflow_store, capsys):
    # The same record (id, URL and payload) archived twice: the first read sees the repeat and the page write
    # drops it; without repeats that write skips the shuffle.
    twin = corpus / "twin"
    twin.mkdir()
    (twin / "c.warc.gz").write_bytes((corpus / "b.warc.gz").read_bytes())
    assert run_ingest(corpus, lakehouse, mlflow_store, "b.warc.gz", "twin/c.warc.gz") == 0
    assert "4 pages (2 new" in capsys.readouterr().out
    assert sorted(r.url for r in lakehouse.read("pages").collect()) == [
        "https://example.com/page-10", "https://example.com/page-11"]


def test_wholly_wrong_input_fails_in_one_line_pointing_at_rejects(tmp_path, lakehouse, mlflow_store, capsys):
    """A text file, a PNG, gzipped text and an empty file: every record of every file is rejected."""
    import gzip

    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "notes.txt").write_text("just some text, not a WARC file\n" * 10)
    (wrong / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    (wrong / "text.gz").write_bytes(gzip.compress(b"gzipped text, not a WARC\n" * 10))
    (wrong / "empty.warc.gz").write_bytes(b"")
    assert run_ingest(wrong, lakehouse, mlflow_store, "*") == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "no page in 4 file(s): every record was rejected" in err[0], captured.err
    assert "rejects" in err[0] and "empty_file 1" in err[0]
    reasons = {row.source.rsplit("/", 1)[-1]: row.reason for row in lakehouse.read("rejects").collect()}
    assert reasons == {"notes.txt@0": "warc_read_error", "image.png@0": "warc_read_error",
                       "text.gz@0": "warc_read_error", "empty.warc.gz": "empty_file"}
    assert not lakehouse.exists("pages")  # no empty table is made


def test_an_empty_file_beside_good_ones_is_recorded(corpus, lakehouse, mlflow_store, tmp_path):
    (tmp_path / "empty.warc.gz").write_bytes(b"")
    assert ingest.STAGE.main(["--input", str(corpus / "b.warc.gz"), "--input", str(tmp_path / "empty.warc.gz"),
                        "--lakehouse", lakehouse.root, "--mlflow-uri", mlflow_store]) == 0
    assert [row.reason for row in lakehouse.read("rejects").collect()] == ["empty_file"]
    assert lakehouse.read("pages").count() == 2
