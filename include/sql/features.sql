-- Card-transaction fraud: model features for one data interval, computed in the warehouse.
--
-- Bind parameters (snowflake-connector-python "pyformat" style, bound by the driver, never formatted in):
--   interval_start  first instant of the interval, inclusive  (naive UTC datetime or 'YYYY-MM-DD HH:MI:SS')
--   interval_end    end of the interval, exclusive            (same)
-- The source table is CARD_TRANSACTIONS, resolved in the session's current database and schema (the
-- snowflake.database / snowflake.schema of the environment config), so one file serves every environment.
--
-- Rows whose EVENT_TS lies in [interval_start, interval_end) are emitted. The per-card window features
-- also look at the 7 days of history before interval_start, so the first rows of an interval see
-- their card's recent past.
--
-- Output columns are quoted lowercase identifiers; their order and types are the dataset contract in
-- include/code/common/features_schema.json. A row whose CARD_ID is missing keeps NULL card features so that
-- validation rejects it instead of the model silently learning from a zero.
--
-- The window features use a bounded self-join rather than RANGE frames: "strictly before this
-- transaction" is awkward to express as a frame, and the join is the same SQL in Snowflake and DuckDB.
-- Note for editors: this text goes through pyformat binding, so never write a bare percent sign here.
WITH interval_tx AS (
    SELECT
        transaction_id,
        event_ts,
        card_id,
        merchant_category,
        amount,
        channel,
        card_present,
        merchant_country,
        card_country,
        customer_segment,
        is_fraud
    FROM CARD_TRANSACTIONS
    WHERE event_ts >= TO_TIMESTAMP_NTZ(%(interval_start)s)
      AND event_ts < TO_TIMESTAMP_NTZ(%(interval_end)s)
),

card_history AS (
    SELECT card_id, event_ts, amount
    FROM CARD_TRANSACTIONS
    WHERE card_id IS NOT NULL
      AND event_ts >= DATEADD(day, -7, TO_TIMESTAMP_NTZ(%(interval_start)s))
      AND event_ts < TO_TIMESTAMP_NTZ(%(interval_end)s)
),

card_windows AS (
    SELECT
        t.transaction_id,
        SUM(CASE WHEN h.event_ts >= DATEADD(hour, -24, t.event_ts) THEN 1 ELSE 0 END) AS txn_count_24h,
        AVG(h.amount) AS avg_amount_7d
    FROM interval_tx AS t
    LEFT JOIN card_history AS h
        ON h.card_id = t.card_id
       AND h.event_ts < t.event_ts
       AND h.event_ts >= DATEADD(day, -7, t.event_ts)
    WHERE t.card_id IS NOT NULL
    GROUP BY t.transaction_id
),

features AS (
    SELECT
        t.transaction_id,
        t.event_ts,
        CAST(t.amount AS FLOAT) AS amount,
        t.channel,
        t.merchant_category,
        t.card_present,
        t.merchant_country,
        t.card_country,
        t.customer_segment,
        t.is_fraud,
        t.card_id,
        w.txn_count_24h,
        -- no earlier transaction on the card in 7 days: the transaction is its own baseline (ratio 1)
        CAST(COALESCE(w.avg_amount_7d, t.amount) AS FLOAT) AS avg_amount_7d
    FROM interval_tx AS t
    LEFT JOIN card_windows AS w
        ON w.transaction_id = t.transaction_id
)

SELECT
    transaction_id AS "transaction_id",
    event_ts AS "event_ts",
    -- an attribute: in the dataset for bias and monitoring, never a model input
    customer_segment AS "customer_segment",
    amount AS "amount",
    -- guarded so that a broken raw amount reaches validation as NULL instead of failing the query
    CASE WHEN amount >= 0 THEN LN(1 + amount) END AS "log_amount",
    CAST(HOUR(event_ts) AS INTEGER) AS "hour_of_day",
    CAST(DAYOFWEEKISO(event_ts) - 1 AS INTEGER) AS "day_of_week",
    DAYOFWEEKISO(event_ts) >= 6 AS "is_weekend",
    card_present AS "card_present",
    merchant_country <> card_country AS "is_foreign",
    channel AS "channel",
    merchant_category AS "merchant_category",
    CASE WHEN card_id IS NOT NULL THEN CAST(COALESCE(txn_count_24h, 0) AS INTEGER) END AS "card_txn_count_24h",
    CASE WHEN card_id IS NOT NULL THEN avg_amount_7d END AS "card_avg_amount_7d",
    CASE WHEN card_id IS NOT NULL THEN amount / NULLIF(avg_amount_7d, 0) END AS "amount_to_card_avg_ratio",
    CASE WHEN is_fraud THEN 1 WHEN NOT is_fraud THEN 0 END AS "is_fraud"
FROM features
ORDER BY event_ts, transaction_id
