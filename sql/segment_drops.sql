-- Segment drop rules: the name of the first rule a segment fails, decided over its stored signals.
--
-- `humpback segment` applies this query to the segments it has just cut and measured, before it writes them;
-- `humpback segment --redecide` applies it to the stored `segments` table, so that a threshold change is a
-- rerun of this query and not a re-parse of every page. The duplicate rules (exact_duplicate, near_duplicate)
-- need all segments at once: the stage marks them afterwards, among the segments no rule here dropped.
--
-- Parameters (bound by spark.sql(text, args=...)): the [segment] settings of conf/defaults.toml, same names.
--   :min_chars, :max_chars                 int     too_short below, too_long above (paper: 600..3,000)
--   :max_repetition                        double  repetitive above (largest word-3-gram Jaccard of two sentences)
--   :target_lang                           string  wrong_language when the language differs (ISO 639-1)...
--   :min_lang_score                        double  ...or its classifier score is below this
--   :min_lang_share                        double  mixed_language below (share of judged paragraph text)
--   :min_mean_word_length, :max_mean_word_length, :min_alpha_word_frac, :min_stop_words,
--   :max_symbol_to_word_ratio, :max_bullet_line_frac, :max_ellipsis_line_frac, :max_duplicate_line_frac
--                                                  low_quality (Gopher) when any one of them fails
--
-- Reads: the view segment_signals, any columns, with `signals` shaped as in the segments table.
-- Output: every column of segment_signals, then rule_drop: the first rule that fires, in this order, else NULL.
--
-- A value on a threshold passes. A NULL signal (a row written before that signal existed) fires no rule: a WHEN
-- is taken only when its condition is true, and a condition of several comparisons is true when one of them is.
-- humpback/quality/rules.py drop_reason is the same rules in Python for plain-Python use; the test
-- tests/sql/test_segment_drops.py runs both over the same rows and requires the same reasons.

SELECT
  *,
  CASE
    WHEN signals.n_chars < :min_chars THEN 'too_short'
    WHEN signals.n_chars > :max_chars THEN 'too_long'
    -- level 0: a text document's paragraphs before any header (or a headerless document) have no header to judge
    WHEN signals.header_chars = 0 AND signals.header_level > 0 THEN 'empty_header'
    WHEN signals.header_all_caps THEN 'all_caps_header'
    WHEN signals.header_is_nav THEN 'nav_header'
    WHEN signals.repetition > :max_repetition THEN 'repetitive'
    WHEN signals.lang <> :target_lang
      OR signals.lang_score < :min_lang_score THEN 'wrong_language'
    WHEN signals.lang_share < :min_lang_share THEN 'mixed_language'
    WHEN signals.mean_word_length < :min_mean_word_length
      OR signals.mean_word_length > :max_mean_word_length
      OR signals.alpha_word_frac < :min_alpha_word_frac
      OR signals.stop_word_count < :min_stop_words
      OR signals.symbol_to_word_ratio > :max_symbol_to_word_ratio
      OR signals.bullet_line_frac > :max_bullet_line_frac
      OR signals.ellipsis_line_frac > :max_ellipsis_line_frac
      OR signals.duplicate_line_frac > :max_duplicate_line_frac THEN 'low_quality'
  END AS rule_drop
FROM segment_signals
