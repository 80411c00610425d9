-- Curated pairs A_k for one iteration: the candidate instructions of one backward model whose rating by one
-- scorer in one mode passes :min_score, taken from kept segments, with duplicate instructions and pairs that
-- overlap the evaluation prompts removed.
--
-- Parameters (bound by spark.sql(text, args=...); see sql/README.md):
--   :iteration            int     ratings of this iteration only
--   :scorer_model         string  ratings by this scorer only (a pinned ratings.scorer_model)
--   :mode                 string  'generate' or 'logprob' ratings only: expected and integer scores never mix
--   :backward_model       string  instructions written by this backward model only (candidates.backward_model)
--   :min_score            double  keep pairs whose average score is >= this (paper: A5 = 4.5, A4 = 4)
--   :include_constrained  boolean also count generate-mode ratings whose score came from the constrained
--                                 fallback (score_source = 'constrained'); false keeps only parsed scores
--   :max_eval_overlap     double  drop pairs whose instruction or output has eval_overlap() >= this
--
-- Reads: candidates, ratings, segments, and the function eval_overlap(text) (humpback/decontamination.py).
-- Output: segment_id, instruction, output (the segment's text), score (average), n_ratings.

WITH usable_candidates AS (
  -- One row per (segment, instruction): several prompt versions may write the same one.
  SELECT DISTINCT
    segment_id,
    instruction,
    instruction_hash  -- stored by augment (humpback.ids.instruction_hash): the key ratings were written under
  FROM candidates
  WHERE backward_model = :backward_model
    AND status = 'ok'
    AND coalesce(size(flags), 0) = 0
),

usable_ratings AS (
  -- A generated rating counts only when its score parsed; a logprob rating always has an expected score.
  SELECT segment_id, instruction_hash, score
  FROM ratings
  WHERE iteration = :iteration
    AND scorer_model = :scorer_model
    AND mode = :mode
    AND score IS NOT NULL
    AND (parse_status = 'ok' OR mode = 'logprob')
    AND (:include_constrained OR coalesce(score_source, '') <> 'constrained')
),

rated AS (
  -- One rating row per pair under the key above (generate mode averages a pair's samples inside its row).
  SELECT
    c.segment_id,
    c.instruction,
    avg(r.score) AS score,
    count(*) AS n_ratings
  FROM usable_candidates AS c
  JOIN usable_ratings AS r
    ON r.segment_id = c.segment_id
   AND r.instruction_hash = c.instruction_hash
  GROUP BY c.segment_id, c.instruction
  HAVING avg(r.score) >= :min_score
),

on_kept_segments AS (
  SELECT rated.*, s.text AS output
  FROM rated
  JOIN segments AS s
    ON s.segment_id = rated.segment_id
  WHERE s.drop_reason IS NULL
),

decontaminated AS (
  SELECT *
  FROM on_kept_segments
  WHERE eval_overlap(instruction) < :max_eval_overlap
    AND eval_overlap(output) < :max_eval_overlap
),

ranked AS (
  -- Duplicate instructions (same text after lower-casing, trimming and collapsing whitespace): the best-rated
  -- pair is kept, ties going to the smallest segment_id so that every run keeps the same one.
  SELECT
    *,
    row_number() OVER (
      PARTITION BY regexp_replace(lower(trim(instruction)), '\\s+', ' ')
      ORDER BY score DESC, segment_id, instruction
    ) AS copy_rank
  FROM decontaminated
)

SELECT segment_id, instruction, output, score, n_ratings
FROM ranked
WHERE copy_rank = 1
