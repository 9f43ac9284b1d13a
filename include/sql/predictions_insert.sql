-- One scored transaction (values bound by the connector).
INSERT INTO {table} (
    TRANSACTION_ID, EVENT_TS, FRAUD_PROBABILITY, IS_FRAUD_PREDICTED, MODEL_PACKAGE_ARN, MODEL_VERSION,
    INTERVAL_START, INTERVAL_END, DAG_RUN_ID, SCORED_AT
) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
