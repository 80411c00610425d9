-- Curated pairs A_k for one iteration: candidate instructions whose rating passes :min_score, taken from kept
-- segments, with duplicate instructions and evaluation-prompt look-alikes removed.
--
-- Parameters (bound by spark.sql(text, args=...); see sql/README.md):
--   :iteration         int     ratings of this iteration only
--   :min_score         double  keep pairs whose average score is >= this (paper: A5 = 4.5, A4 = 4)
--   :scorer_model      string  ratings by this scorer only; NULL = any scorer
--   :mode              string  'generate' or 'logprob' ratings only; NULL = any mode
--   :ngram             int     word n-gram size for decontamination (default 8)
--   :max_eval_overlap  double  drop pairs whose share of instruction n-grams found in `eval_ngrams` is >= this
--
-- Reads: candidates, ratings, segments, and the view eval_ngrams(ngram string) of the evaluation prompts' n-grams.
-- Output: segment_id, instruction, output (the segment's text), score (average), n_ratings.

WITH usable_candidates AS (
  -- One row per (segment, instruction): several backward models or prompt versions may write the same one.
  SELECT DISTINCT
    segment_id,
    instruction,
    sha2(instruction, 256) AS instruction_hash
  FROM candidates
  WHERE status = 'ok'
    AND coalesce(size(flags), 0) = 0
),

usable_ratings AS (
  -- A generated rating counts only when its score parsed; a logprob rating always has an expected score.
  SELECT segment_id, instruction_hash, score
  FROM ratings
  WHERE iteration = :iteration
    AND score IS NOT NULL
    AND (parse_status = 'ok' OR mode = 'logprob')
    AND (:scorer_model IS NULL OR scorer_model = :scorer_model)
    AND (:mode IS NULL OR mode = :mode)
),

rated AS (
  -- Several ratings of one pair (samples, or scorers when :scorer_model is NULL) are averaged, then thresholded.
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

instruction_words AS (
  -- The same word rule as humpback/decontamination.py: runs of ASCII letters and digits, lower-cased.
  SELECT
    segment_id,
    instruction,
    filter(split(regexp_replace(lower(instruction), '[^a-z0-9]+', ' '), ' '), w -> w != '') AS words
  FROM on_kept_segments
),

instruction_ngrams AS (
  -- Distinct word n-grams; a text shorter than :ngram words is one gram of all its words.
  SELECT segment_id, instruction, explode(array_distinct(grams)) AS ngram
  FROM (
    SELECT
      segment_id,
      instruction,
      CASE
        WHEN size(words) = 0 THEN CAST(array() AS array<string>)
        WHEN size(words) < :ngram THEN array(array_join(words, ' '))
        ELSE transform(sequence(1, size(words) - :ngram + 1), i -> array_join(slice(words, i, :ngram), ' '))
      END AS grams
    FROM instruction_words
  )
),

eval_overlap AS (
  SELECT
    g.segment_id,
    g.instruction,
    count(e.ngram) / count(*) AS overlap
  FROM instruction_ngrams AS g
  LEFT JOIN (SELECT DISTINCT ngram FROM eval_ngrams) AS e
    ON e.ngram = g.ngram
  GROUP BY g.segment_id, g.instruction
),

decontaminated AS (
  -- An instruction without words has no n-grams and so no overlap.
  SELECT p.*
  FROM on_kept_segments AS p
  LEFT JOIN eval_overlap AS o
    ON o.segment_id = p.segment_id
   AND o.instruction = p.instruction
  WHERE coalesce(o.overlap, 0.0) < :max_eval_overlap
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
