-- The curated pairs with their rewritten outputs (`humpback trainset --output-source rewritten`): each curated
-- pair of sql/curated_pairs.sql with the rewrite of its web text by one rewriter under one rewrite prompt
-- (`humpback rewrite`), and whether that rewrite is usable. Only rows with rewrite_status = 'ok' enter the set;
-- the others are left out (a flagged rewrite falls back to nothing, not to the web text) and counted by status.
--
-- Parameters (bound by spark.sql(text, args=...); see sql/README.md):
--   :backward_model    string  the backward model of the curated pairs (candidates.backward_model, pinned)
--   :rewriter_model    string  rewrites by this model only (a pinned rewrites.rewriter_model)
--   :prompt_version    string  rewrites under this rewrite prompt only (humpback/prompts.py REWRITE_TEMPLATE_VERSION)
--   :max_eval_overlap  double  a rewrite whose eval_overlap() is >= this is left out ('decontaminated')
--
-- Reads: the view web_curated_pairs (the result of sql/curated_pairs.sql), candidates, rewrites, and the function
-- eval_overlap(text) (humpback/decontamination.py).
-- Output: segment_id, instruction, output (the rewrite; NULL unless usable), score, n_ratings, rewrite_status
-- ('ok', 'missing', 'error', 'flagged' or 'decontaminated').

WITH keyed AS (
  -- The pair's stored instruction_hash (the key rewrites were written under), never recomputed in SQL.
  SELECT p.segment_id, p.instruction, p.score, p.n_ratings, c.instruction_hash
  FROM web_curated_pairs AS p
  JOIN (
    SELECT DISTINCT segment_id, instruction, instruction_hash
    FROM candidates
    WHERE backward_model = :backward_model
  ) AS c
    ON c.segment_id = p.segment_id
   AND c.instruction = p.instruction
),

chosen_rewrites AS (
  SELECT segment_id, instruction_hash, output, status, flags
  FROM rewrites
  WHERE rewriter_model = :rewriter_model
    AND prompt_version = :prompt_version
),

judged AS (
  SELECT
    k.segment_id,
    k.instruction,
    r.output,
    k.score,
    k.n_ratings,
    CASE
      WHEN r.segment_id IS NULL THEN 'missing'
      WHEN r.status <> 'ok' OR r.output IS NULL THEN 'error'
      WHEN coalesce(size(r.flags), 0) > 0 THEN 'flagged'
      WHEN eval_overlap(r.output) >= :max_eval_overlap THEN 'decontaminated'
      ELSE 'ok'
    END AS rewrite_status
  FROM keyed AS k
  LEFT JOIN chosen_rewrites AS r
    ON r.segment_id = k.segment_id
   AND r.instruction_hash = k.instruction_hash
)

SELECT
  segment_id,
  instruction,
  CASE WHEN rewrite_status = 'ok' THEN output END AS output,
  score,
  n_ratings,
  rewrite_status
FROM judged
