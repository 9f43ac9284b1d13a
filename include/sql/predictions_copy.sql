-- Load one scoring interval's predictions (a Parquet file PUT to the temporary {stage}; same transaction as the
-- delete). Columns are matched by name; PURGE removes the staged file once it is loaded.
COPY INTO {table}
FROM @{stage}
FILE_FORMAT = (TYPE = PARQUET USE_LOGICAL_TYPE = TRUE)
MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE
PURGE = TRUE
FORCE = TRUE
