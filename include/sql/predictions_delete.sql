-- Remove one scoring interval's predictions before they are written again (same transaction as the insert).
DELETE FROM {table}
WHERE EVENT_TS >= %(interval_start)s
  AND EVENT_TS < %(interval_end)s
