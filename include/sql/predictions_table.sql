-- Batch-scoring results, one row per scored transaction. Created by batch_score when absent.
-- {table} is the fully qualified name from config (snowflake.database.schema.predictions_table).
CREATE TABLE IF NOT EXISTS {table} (
    TRANSACTION_ID VARCHAR NOT NULL,
    EVENT_TS TIMESTAMP_NTZ NOT NULL,
    FRAUD_PROBABILITY FLOAT NOT NULL,
    IS_FRAUD_PREDICTED NUMBER(1, 0) NOT NULL,
    MODEL_PACKAGE_ARN VARCHAR NOT NULL,
    MODEL_VERSION NUMBER(10, 0),
    INTERVAL_START TIMESTAMP_NTZ NOT NULL,
    INTERVAL_END TIMESTAMP_NTZ NOT NULL,
    DAG_RUN_ID VARCHAR NOT NULL,
    SCORED_AT TIMESTAMP_NTZ NOT NULL
)
