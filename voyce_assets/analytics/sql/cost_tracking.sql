-- analytics.cost_tracking, the stages' part: per day of data, organization and what was
-- bought, the quantity each stage's own rows say it used. Prices are applied afterwards
-- from the Pricing resource (price_key); ingestion's rows come from the mirrors' runs.
-- Spark SQL; parameters :start_date, :end_date (inclusive). Quantities are DOUBLE: a
-- literal such as 1000.0 is a DECIMAL on both engines.
WITH feedback AS (
    SELECT id, organization_id, audio_duration_seconds
    FROM raw_data.voice_feedback
    WHERE event_date BETWEEN :start_date AND :end_date
),
-- Whisper: GPU time as each transcription recorded it; a failed file cost its time too.
voice AS (
    SELECT t.event_date AS cost_date, f.organization_id,
           'speech_to_text' AS resource_type, t.transcription_engine AS resource_id,
           'transcribe' AS operation, 'voice' AS stage, 'gpu.second' AS price_key,
           CAST(SUM(COALESCE(t.processing_time_ms, 0)) AS DOUBLE) / 1000 AS quantity,
           COUNT(*) AS items,
           SUM(f.audio_duration_seconds) / 60 AS audio_minutes
    FROM raw_data.transcriptions t
    JOIN feedback f ON f.id = t.voice_feedback_id
    WHERE t.event_date BETWEEN :start_date AND :end_date
    GROUP BY t.event_date, f.organization_id, t.transcription_engine
),
-- Language models: billed tokens by provider and API mode (a cached answer billed 0), the
-- prompt cache's writes and reads apart (each its own price; a direction with none is dropped
-- when priced, as every zero quantity is).
analysed AS (
    SELECT s.event_date, f.organization_id, s.provider, s.api_mode, s.model_used,
           COALESCE(s.input_tokens, 0) AS input_tokens,
           COALESCE(s.output_tokens, 0) AS output_tokens,
           COALESCE(s.cache_write_tokens, 0) AS cache_write_tokens,
           COALESCE(s.cache_read_tokens, 0) AS cache_read_tokens,
           COALESCE(s.cached, FALSE) AS cached
    FROM raw_data.sentiment_analysis s
    JOIN feedback f ON f.id = s.voice_feedback_id
    WHERE s.event_date BETWEEN :start_date AND :end_date
),
tokens AS (
    SELECT event_date AS cost_date, organization_id, 'llm_api' AS resource_type,
           model_used AS resource_id, concat('sentiment_analysis_', direction) AS operation,
           'text' AS stage,
           concat(provider, CASE WHEN api_mode = 'batch' THEN '.batch_' ELSE '.' END,
                  direction, '_mtok') AS price_key,
           CAST(SUM(CASE direction WHEN 'input' THEN input_tokens
                                   WHEN 'output' THEN output_tokens
                                   WHEN 'cache_write' THEN cache_write_tokens
                                   ELSE cache_read_tokens END)
                AS DOUBLE) / 1000000 AS quantity,
           SUM(CASE WHEN cached THEN 0 ELSE 1 END) AS items,
           CAST(NULL AS DOUBLE) AS audio_minutes
    FROM analysed
    CROSS JOIN (SELECT 'input' AS direction UNION ALL SELECT 'output' AS direction
                UNION ALL SELECT 'cache_write' AS direction
                UNION ALL SELECT 'cache_read' AS direction) d
    WHERE provider <> 'local'
    GROUP BY event_date, organization_id, model_used, provider, api_mode, direction
),
-- The local analyzer costs CPU per text it analysed (not per cached answer).
local_analysis AS (
    SELECT event_date AS cost_date, organization_id, 'compute' AS resource_type,
           model_used AS resource_id, 'sentiment_analysis' AS operation, 'text' AS stage,
           'local.ktext' AS price_key,
           CAST(SUM(CASE WHEN cached THEN 0 ELSE 1 END) AS DOUBLE) / 1000 AS quantity,
           SUM(CASE WHEN cached THEN 0 ELSE 1 END) AS items,
           CAST(NULL AS DOUBLE) AS audio_minutes
    FROM analysed
    WHERE provider = 'local'
    GROUP BY event_date, organization_id, model_used
),
embeddings AS (
    SELECT e.event_date AS cost_date, f.organization_id, 'compute' AS resource_type,
           e.embedding_model AS resource_id, 'embed' AS operation, 'text' AS stage,
           'embedding.ktext' AS price_key,
           CAST(COUNT(*) AS DOUBLE) / 1000 AS quantity, COUNT(*) AS items,
           CAST(NULL AS DOUBLE) AS audio_minutes
    FROM processed_data.enhanced_transcriptions e
    JOIN feedback f ON f.id = e.voice_feedback_id
    WHERE e.event_date BETWEEN :start_date AND :end_date
      AND e.text_embedding IS NOT NULL AND NOT COALESCE(e.embedding_cached, FALSE)
    GROUP BY e.event_date, f.organization_id, e.embedding_model
),
inference AS (
    SELECT p.event_date AS cost_date, f.organization_id, 'compute' AS resource_type,
           p.model_id AS resource_id, 'predict' AS operation, 'inference' AS stage,
           'compute.second' AS price_key,
           SUM(COALESCE(p.inference_time_ms, 0)) / 1000 AS quantity, COUNT(*) AS items,
           CAST(NULL AS DOUBLE) AS audio_minutes
    FROM ml_models.predictions p
    JOIN feedback f ON f.id = p.voice_feedback_id
    WHERE p.event_date BETWEEN :start_date AND :end_date
    GROUP BY p.event_date, f.organization_id, p.model_id
),
-- Training: the GPU seconds each registered model version took to fit (AutoML included), on
-- the day it was trained for; no organization, so it is shared out by feedback.
training AS (
    SELECT m.event_date AS cost_date, CAST(NULL AS STRING) AS organization_id,
           'compute' AS resource_type, m.model_name AS resource_id, 'train' AS operation,
           'training' AS stage, 'gpu.second' AS price_key,
           SUM(COALESCE(m.training_seconds, 0)) AS quantity, COUNT(*) AS items,
           CAST(NULL AS DOUBLE) AS audio_minutes
    FROM ml_models.model_registry m
    WHERE m.event_date BETWEEN :start_date AND :end_date
    GROUP BY m.event_date, m.model_name
)
SELECT * FROM voice
UNION ALL SELECT * FROM tokens
UNION ALL SELECT * FROM training
UNION ALL SELECT * FROM local_analysis
UNION ALL SELECT * FROM embeddings
UNION ALL SELECT * FROM inference
