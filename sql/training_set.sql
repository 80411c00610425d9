-- One training set: the whole seed (train and dev splits) tagged S_a plus the curated pairs tagged S_w
-- (paper section 1.7), with seed rows optionally repeated.
--
-- Parameters (bound by spark.sql(text, args=...); see sql/README.md):
--   :set_name       string  the name every row carries (training_sets.set_name)
--   :iteration      int     the iteration the curated pairs come from
--   :seed_upsample  int     how many copies of each seed row (1 = no upsampling)
--   :seed_tag, :web_tag  string  the paper's source tags (humpback/prompts.py SEED_TAG, WEB_TAG)
--   :scorer_model, :rating_mode  string  who chose the set's curated pairs (on every row of the set)
--   :backward_model  string  who wrote their instructions (NULL on seed rows)
--   :max_eval_overlap  double  seed rows whose instruction or output has eval_overlap() >= this are left out
--
-- Reads: seed, the view curated_pairs (the result of sql/curated_pairs.sql) and the function eval_overlap(text).
-- Output: set_name, iteration, example_key, instruction, output, source, tag, scorer_model, rating_mode,
-- backward_model.
-- example_key = the first 32 hex characters of sha256(source, instruction, output[, copy number]) with the
-- parts joined by NUL; the copy number is added from the second copy on, so copy 1 keeps the same key whatever
-- the upsampling factor.

WITH seed_pairs AS (
  -- DISTINCT: two identical seed pairs would otherwise share one example_key.
  SELECT DISTINCT instruction, output
  FROM seed
  -- every split: forward models train on the whole seed (paper); only the backward model holds out dev
),

seed_copies AS (
  SELECT instruction, output, explode(sequence(1, :seed_upsample)) AS copy
  FROM seed_pairs
  WHERE eval_overlap(instruction) < :max_eval_overlap
    AND eval_overlap(output) < :max_eval_overlap
),

tagged AS (
  SELECT
    instruction,
    output,
    'seed' AS source,
    :seed_tag AS tag,
    copy
  FROM seed_copies

  UNION ALL

  SELECT
    instruction,
    output,
    'augmented' AS source,
    :web_tag AS tag,
    1 AS copy
  FROM curated_pairs
)

SELECT
  CAST(:set_name AS string) AS set_name,
  CAST(:iteration AS int) AS iteration,
  substr(
    sha2(concat_ws(chr(0), source, instruction, output, CASE WHEN copy > 1 THEN CAST(copy AS string) END), 256),
    1, 32
  ) AS example_key,
  instruction,
  output,
  source,
  tag,
  CAST(:scorer_model AS string) AS scorer_model,
  CAST(:rating_mode AS string) AS rating_mode,
  CASE WHEN source = 'augmented' THEN CAST(:backward_model AS string) END AS backward_model
FROM tagged
