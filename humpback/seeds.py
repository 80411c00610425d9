"""Seed-set parsers: (instruction, output) pairs from OASST1, instruction/output records and chat records.

Every parser returns ``(rows, rejects)``:
- rows: ``{example_id, instruction, output, source, split}``, the ``seed`` table's columns (the stage adds
  ``source_file``, the input file the rows came from);
- rejects: ``{source, stage: 'seed', reason, detail}``, the ``rejects`` table's columns.

One input record gives exactly one row or one reject, so nothing is dropped silently. An input record is a
line (or row) of the input: a whole conversation tree for the OASST1 tree format, one message for the OASST1
message table. A tree that yields a pair rejects nothing, even though its other messages go unused; a tree that
yields none is one reject, named after the check that came closest to passing. In the message table every
unused message is a reject (most of them ``not_first_turn``).

Records may be dicts (parquet rows, Spark rows as dicts) or raw JSON lines as ``bytes``/``str``; raw lines are
decoded here so that broken UTF-8 becomes a reject instead of an exception. Blank lines are skipped.
A text field containing U+FFFD is also ``broken_utf8``: it means an upstream reader already replaced bad bytes.

Reject reasons: missing_column, invalid_json, broken_utf8, not_text, empty_instruction, empty_output,
too_long, duplicate, no_user_turn, no_assistant_reply (chat records), and for OASST1 deleted, not_english,
not_rank0, not_first_turn, no_reply, orphan, not_selected.

Row ``source`` is the record's own ``source`` field when it has one (the embedded seed names its FAQ page),
otherwise ``<source>:<locator>``; a reject's ``source`` is always ``<source>:<locator>``. The locator is the
1-based line/record number, or the message id for the OASST1 message table.
"""

import json
from collections import Counter, defaultdict

from humpback.ids import example_id, split_bucket  # noqa: F401 - example_id: named from here too

STAGE = "seed"
DEFAULT_MAX_CHARS = 20_000
DEFAULT_DEV_FRACTION = 0.1

# OASST1 reply checks in the order they are applied; a tree with no usable reply is rejected with the
# reason of the reply that got furthest down this list.
REPLY_CHECKS = ("deleted", "not_english", "not_rank0")


def split_for(example_id: str, dev_fraction: float = DEFAULT_DEV_FRACTION) -> str:
    """'dev' for a stable, hash-chosen dev_fraction of ids, else 'train'."""
    if not 0.0 <= dev_fraction < 1.0:
        raise ValueError(f"dev_fraction must be in [0, 1), got {dev_fraction}")
    return "dev" if split_bucket(example_id) < dev_fraction * 0x1_0000_0000 else "train"


class _SeedCollector:
    """Validates pairs into rows; everything else becomes a reject."""

    def __init__(self, source, max_chars, dev_fraction):
        self.source = source
        self.max_chars = max_chars
        self.dev_fraction = dev_fraction
        self.rows = []
        self.rejects = []
        self._seen = set()

    def reject(self, locator, reason, detail):
        self.rejects.append(
            {"source": f"{self.source}:{locator}", "stage": STAGE, "reason": reason, "detail": detail}
        )

    def add(self, locator, instruction, output, row_source=None):
        problem = self._problem(instruction, output)
        if problem:
            self.reject(locator, *problem)
            return
        instruction, output = instruction.strip(), output.strip()
        key = example_id(instruction, output)
        if key in self._seen:
            self.reject(locator, "duplicate", f"same pair as an earlier record (example_id {key})")
            return
        self._seen.add(key)
        self.rows.append(
            {
                "example_id": key,
                "instruction": instruction,
                "output": output,
                "source": row_source or f"{self.source}:{locator}",
                "split": split_for(key, self.dev_fraction),
            }
        )

    def _problem(self, instruction, output):
        for name, value in (("instruction", instruction), ("output", output)):
            if value is not None and not isinstance(value, str):
                return "not_text", f"{name} is {type(value).__name__}, not text"
            if value and ("\ufffd" in value or _has_lone_surrogate(value)):
                return "broken_utf8", f"{name} contains undecodable characters"
        if not (instruction or "").strip():
            return "empty_instruction", "instruction is empty"
        if not (output or "").strip():
            return "empty_output", "output is empty"
        n_chars = len(instruction) + len(output)
        if n_chars > self.max_chars:
            return "too_long", f"{n_chars} characters > max_chars {self.max_chars}"
        return None


def _has_lone_surrogate(text):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _decoded_records(items, collector):
    """Yields (locator, dict) for every usable item; rejects the rest. Locators are 1-based."""
    for number, item in enumerate(items, start=1):
        if isinstance(item, dict):
            yield number, item
            continue
        record, problem = _decode_line(item)
        if problem:
            collector.reject(number, *problem)
        elif record is not None:
            yield number, record


def _decode_line(line):
    """(record, None) for a JSON object line, (None, None) for a blank line, else (None, (reason, detail))."""
    if isinstance(line, (bytes, bytearray)):
        try:
            line = bytes(line).decode("utf-8")
        except UnicodeDecodeError as err:
            return None, ("broken_utf8", f"invalid UTF-8 at byte {err.start}")
    line = line.lstrip("\ufeff").strip()
    if not line:
        return None, None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        return None, ("invalid_json", f"{err.msg} at column {err.colno}")
    if not isinstance(record, dict):
        return None, ("invalid_json", f"a JSON {type(record).__name__}, not an object")
    return record, None


def _missing(record, columns):
    absent = [name for name in columns if name not in record]
    return ("missing_column", "no column " + ", ".join(repr(n) for n in absent)) if absent else None


def _own_source(record):
    value = record.get("source")
    return value if isinstance(value, str) and value.strip() else None


def parse_instruction_output(
    records,
    source,
    instruction_col="instruction",
    output_col="output",
    *,
    max_chars=DEFAULT_MAX_CHARS,
    dev_fraction=DEFAULT_DEV_FRACTION,
):
    """Pairs from records with an instruction column and an output column (jsonl lines or parquet rows)."""
    collector = _SeedCollector(source, max_chars, dev_fraction)
    for locator, record in _decoded_records(records, collector):
        problem = _missing(record, (instruction_col, output_col))
        if problem:
            collector.reject(locator, *problem)
            continue
        collector.add(locator, record[instruction_col], record[output_col], _own_source(record))
    return collector.rows, collector.rejects


def parse_messages(records, source, *, max_chars=DEFAULT_MAX_CHARS, dev_fraction=DEFAULT_DEV_FRACTION):
    """Pairs from chat records {"messages": [{"role", "content"}, ...]}: the first user turn and the first
    assistant reply after it. System turns are ignored."""
    collector = _SeedCollector(source, max_chars, dev_fraction)
    for locator, record in _decoded_records(records, collector):
        pair, problem = _first_chat_pair(record.get("messages"))
        if problem:
            collector.reject(locator, *problem)
            continue
        collector.add(locator, *pair, _own_source(record))
    return collector.rows, collector.rejects


def _first_chat_pair(messages):
    if not isinstance(messages, list):
        return None, ("missing_column", "no list column 'messages'")
    roles = [m.get("role") if isinstance(m, dict) else None for m in messages]
    if "user" not in roles:
        return None, ("no_user_turn", f"roles {roles}")
    user_at = roles.index("user")
    if "assistant" not in roles[user_at + 1 :]:
        return None, ("no_assistant_reply", "no assistant turn after the first user turn")
    reply_at = roles.index("assistant", user_at + 1)
    return (_content_text(messages[user_at]), _content_text(messages[reply_at])), None


def _content_text(message):
    """A message's content: a string, or the text parts of a list of content parts joined by newlines."""
    content = message.get("content")
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if all(isinstance(t, str) for t in texts):
            return "\n".join(texts)
    return content


def _reply_failure(reply):
    """The first paper rule an OASST1 reply breaks, or None for a usable reply."""
    if reply.get("deleted"):
        return "deleted"
    if reply.get("lang") != "en":
        return "not_english"
    if reply.get("rank") != 0:
        return "not_rank0"
    return None


def _pick_first_turn_reply(prompt, replies):
    """The paper's OASST1 selection for one root prompt: the first direct assistant reply that is English,
    ranked 0 and not deleted, under a prompt that is not deleted. Returns (reply, None) or (None, problem)."""
    if prompt.get("deleted"):
        return None, ("deleted", "root prompt deleted")
    answers = [r for r in replies if r.get("role") == "assistant"]
    if not answers:
        return None, ("no_reply", "root prompt has no assistant reply")
    failures = []
    for reply in answers:
        failure = _reply_failure(reply)
        if failure is None:
            return reply, None
        failures.append(failure)
    counts = Counter(failures)
    detail = f"{len(answers)} replies: " + ", ".join(f"{counts[r]} {r}" for r in REPLY_CHECKS if counts[r])
    return None, (max(failures, key=REPLY_CHECKS.index), detail)


def parse_oasst1_trees(lines, source, *, max_chars=DEFAULT_MAX_CHARS, dev_fraction=DEFAULT_DEV_FRACTION):
    """Pairs from the OASST1 message-tree JSONL: one tree per line, {"prompt": {..., "replies": [...]}}."""
    collector = _SeedCollector(source, max_chars, dev_fraction)
    for locator, tree in _decoded_records(lines, collector):
        prompt = tree.get("prompt")
        if not isinstance(prompt, dict):
            collector.reject(locator, "missing_column", "no object column 'prompt'")
            continue
        reply, problem = _pick_first_turn_reply(prompt, prompt.get("replies") or [])
        if problem:
            collector.reject(locator, *problem)
            continue
        row_source = f"{source}:{reply.get('message_id', locator)}"
        collector.add(locator, prompt.get("text"), reply.get("text"), row_source)
    return collector.rows, collector.rejects


MESSAGE_COLUMNS = ("message_id", "parent_id", "role", "text")


def parse_oasst1_messages(records, source, *, max_chars=DEFAULT_MAX_CHARS, dev_fraction=DEFAULT_DEV_FRACTION):
    """Pairs from the flat OASST1 message table (message_id, parent_id, text, role, lang, rank, deleted, ...).
    Holds the table in memory to join replies to their root prompts (OASST1 has about 90k messages)."""
    collector = _SeedCollector(source, max_chars, dev_fraction)
    messages = []
    for number, record in _decoded_records(records, collector):
        problem = _missing(record, MESSAGE_COLUMNS)
        if problem:
            collector.reject(number, *problem)
        else:
            messages.append(record)
    by_id = {m["message_id"]: m for m in messages}
    children = defaultdict(list)
    for message in messages:
        if message["parent_id"] is not None:
            children[message["parent_id"]].append(message)
    for message in messages:
        _place_message(message, by_id, children, collector)
    return collector.rows, collector.rejects


def _is_root_prompt(message):
    return message["parent_id"] is None and message["role"] == "prompter"


def _place_message(message, by_id, children, collector):
    """Turns one message of the table into its row (a selected root prompt) or its reject."""
    locator = message["message_id"]
    parent = by_id.get(message["parent_id"])
    if _is_root_prompt(message):
        reply, problem = _pick_first_turn_reply(message, children[locator])
        if problem:
            collector.reject(locator, *problem)
        else:
            collector.add(locator, message["text"], reply["text"], f"{collector.source}:{reply['message_id']}")
    elif message["parent_id"] is None:
        collector.reject(locator, "orphan", f"a {message['role']} message without a parent")
    elif parent is None:
        collector.reject(locator, "orphan", f"parent {message['parent_id']} not in the table")
    elif not _is_root_prompt(parent) or message["role"] != "assistant":
        collector.reject(locator, "not_first_turn", "not a direct assistant reply to a root prompt")
    else:
        _place_first_turn_reply(message, parent, children, collector)


def _place_first_turn_reply(reply, prompt, children, collector):
    """A direct reply to a root prompt: used inside its prompt's row when selected, else rejected here."""
    selected, problem = _pick_first_turn_reply(prompt, children[prompt["message_id"]])
    if selected is reply:
        return
    locator = reply["message_id"]
    if problem and problem[0] == "deleted" and prompt.get("deleted"):
        collector.reject(locator, "deleted", "root prompt deleted")
    elif _reply_failure(reply):
        collector.reject(locator, _reply_failure(reply), "reply breaks the selection rule")
    else:
        collector.reject(locator, "not_selected", "an earlier rank-0 reply to the same prompt was chosen")


# ----- the `seed` table -----

def table_summary(lakehouse, version: int | None = None) -> dict:
    """What `seed` holds at a version (default: the latest): {version, rows, splits: Counter, files: Counter}.
    Rows from before `source_file` existed count under the file name '(not recorded)'."""
    from pyspark.sql import functions as F

    version = lakehouse.version(STAGE) if version is None else version
    frame = lakehouse.read(STAGE, version)
    file_column = F.col("source_file") if "source_file" in frame.columns else F.lit(None).cast("string")
    counts = frame.groupBy("split", F.coalesce(file_column, F.lit("(not recorded)")).alias("file")).count().collect()
    splits, files = Counter(), Counter()
    for row in counts:
        splits[row["split"]] += row["count"]
        files[row["file"]] += row["count"]
    return {"version": version, "rows": sum(splits.values()), "splits": splits, "files": files}


def format_summary(summary: dict) -> str:
    splits = ", ".join(f"{name} {summary['splits'][name]}" for name in sorted(summary["splits"]))
    return (f"seed@v{summary['version']} holds {summary['rows']} pairs ({splits or 'no rows'}) "
            f"from {len(summary['files'])} file(s)")
