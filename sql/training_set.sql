-- One training set: the seed's train split tagged S_a plus the curated pairs tagged S_w (paper section 1.7),
-- with seed rows optionally repeated.
--
-- Parameters (bound by spark.sql(text, args=...); see sql/README.md):
--   :set_name       string  the name every row carries (training_sets.set_name)
--   :iteration      int     the iteration the curated pairs come from
--   :seed_upsample  int     how many copies of each seed row (1 = no upsampling)
--
-- Reads: seed, and the view curated_pairs (the result of sql/curated_pairs.sql).
-- Output: set_name, iteration, example_key, instruction, output, source, tag.
-- example_key = the first 32 hex characters of sha256(source, instruction, output[, copy number]) with the
-- parts joined by NUL; the copy number is added from the second copy on, so copy 1 keeps the same key whatever
-- the upsampling factor.

WITH seed_pairs AS (
  -- DISTINCT: two identical seed pairs would otherwise share one example_key.
  SELECT DISTINCT instruction, output
  FROM seed
  WHERE split = 'train'
),

seed_copies AS (
  SELECT instruction, output, explode(sequence(1, :seed_upsample)) AS copy
  FROM seed_pairs
),

tagged AS (
  SELECT
    instruction,
    output,
    'seed' AS source,
    'Answer in the style of an AI Assistant.' AS tag,
    copy
  FROM seed_copies

  UNION ALL

  SELECT
    instruction,
    output,
    'augmented' AS source,
    'Answer with knowledge from web search.' AS tag,
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
  tag
FROM tagged
