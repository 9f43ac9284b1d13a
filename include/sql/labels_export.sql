-- Late ground truth: the fraud outcomes that became known in one window of arrival time.
--
-- Bind parameters (snowflake-connector-python "pyformat" style, bound by the driver, never formatted in):
--   arrived_from   first instant of the arrival window, inclusive (naive UTC 'YYYY-MM-DD HH:MI:SS')
--   arrived_until  end of the arrival window, exclusive           (same)
-- The tables FRAUD_LABELS (TRANSACTION_ID, IS_FRAUD, LABELED_AT) and CARD_TRANSACTIONS are resolved in the
-- session's current database and schema (the snowflake.database / snowflake.schema of the environment config).
--
-- A label counts once LABELED_AT, when the outcome became known (a chargeback, or the review closing
-- without a dispute), lies in the window: a row whose LABELED_AT is later has not arrived yet for this
-- window, whether the table already holds it or not. The transaction's customer segment comes along as an
-- attribute (the bias facet); every output column after "labeled_at" is written as an attribute.
-- Note for editors: this text goes through pyformat binding, so never write a bare percent sign here.
SELECT
    l.transaction_id AS "transaction_id",
    CASE WHEN l.is_fraud THEN 1 ELSE 0 END AS "is_fraud",
    l.labeled_at AS "labeled_at",
    t.customer_segment AS "customer_segment"
FROM FRAUD_LABELS AS l
LEFT JOIN CARD_TRANSACTIONS AS t
    ON t.transaction_id = l.transaction_id
WHERE l.labeled_at >= TO_TIMESTAMP_NTZ(%(arrived_from)s)
  AND l.labeled_at < TO_TIMESTAMP_NTZ(%(arrived_until)s)
  AND l.is_fraud IS NOT NULL
ORDER BY l.labeled_at, l.transaction_id, t.customer_segment
