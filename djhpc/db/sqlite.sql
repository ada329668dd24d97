-- Named statements of the reservation library, SQLite dialect (same names as mysql.sql).
-- {jobs} is the quoted jobs table; every value is a parameter. Times are UTC text.

-- name: create_jobs
CREATE TABLE IF NOT EXISTS {jobs} (
  "table_name" TEXT NOT NULL,
  "key_hash" TEXT NOT NULL,
  "status" TEXT NOT NULL CHECK ("status" IN ('reserved', 'error', 'ignore', 'pending')),
  "key" BLOB,
  "error_message" TEXT NOT NULL DEFAULT '',
  "error_stack" TEXT,
  "user" TEXT NOT NULL DEFAULT '',
  "host" TEXT NOT NULL DEFAULT '',
  "pid" INTEGER NOT NULL DEFAULT 0,
  "connection_id" INTEGER NOT NULL DEFAULT 0,
  "timestamp" TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
  "token" TEXT NOT NULL DEFAULT '',
  "owner" TEXT NOT NULL DEFAULT '',
  "pid_start" REAL NOT NULL DEFAULT 0,
  "boot_id" TEXT NOT NULL DEFAULT '',
  "sched_job_id" TEXT NOT NULL DEFAULT '',
  "sched_task_id" TEXT NOT NULL DEFAULT '',
  "attempts" INTEGER NOT NULL DEFAULT 0,
  "failures" INTEGER NOT NULL DEFAULT 0,
  "deaths" INTEGER NOT NULL DEFAULT 0,
  "position" INTEGER NOT NULL DEFAULT 0,
  "heartbeat_at" TEXT,
  "retry_after" TEXT,
  "history" TEXT,
  PRIMARY KEY ("table_name", "key_hash")
)

-- name: complete
DELETE FROM {jobs} WHERE "table_name" = ? AND "key_hash" = ? AND "token" = ? AND "status" = 'reserved'

-- name: complete_made
-- Slots: {done} the quoted target table; {match} "t."col" = ? AND ..." over its quoted key columns.
DELETE FROM {jobs} WHERE "table_name" = ? AND "key_hash" = ? AND "token" = ? AND "status" = 'reserved'
  AND EXISTS (SELECT 1 FROM {done} AS t WHERE {match})

-- name: release
DELETE FROM {jobs} WHERE "table_name" = ? AND "key_hash" = ? AND "token" = ? AND "status" = 'reserved'
  AND "attempts" <= 1 AND "failures" = 0 AND "deaths" = 0

-- name: release_orphans
-- Rows this worker holds but does not know of (a reservation whose reply was lost): {tokens} is a list of
-- placeholders, the tokens it does know, never empty
DELETE FROM {jobs} WHERE "owner" = ? AND "status" = 'reserved' AND "token" NOT IN ({tokens})
  AND "attempts" <= 1 AND "failures" = 0 AND "deaths" = 0

-- name: release_orphans_keep_history
UPDATE {jobs} SET "status" = 'pending', "token" = '', "owner" = '', "retry_after" = strftime('%Y-%m-%d %H:%M:%f', 'now')
WHERE "owner" = ? AND "status" = 'reserved' AND "token" NOT IN ({tokens})

-- name: release_keep_history
UPDATE {jobs} SET "status" = 'pending', "token" = '', "owner" = '',
  "retry_after" = strftime('%Y-%m-%d %H:%M:%f', 'now')
WHERE "table_name" = ? AND "key_hash" = ? AND "token" = ? AND "status" = 'reserved'

-- name: fail
UPDATE {jobs} SET "status" = ?, "error_message" = ?, "error_stack" = ?, "failures" = "failures" + 1,
  "retry_after" = strftime('%Y-%m-%d %H:%M:%f', 'now', '+' || ? || ' seconds'), "history" = ?,
  "timestamp" = strftime('%Y-%m-%d %H:%M:%f', 'now')
WHERE "table_name" = ? AND "key_hash" = ? AND "token" = ? AND "status" = 'reserved'

-- name: winners
SELECT "key_hash" FROM {jobs} WHERE "table_name" = ? AND "token" = ?

-- name: ignore
INSERT INTO {jobs} ("table_name", "key_hash", "status", "key", "user", "host", "pid")
VALUES (?, ?, 'ignore', ?, ?, ?, ?)
ON CONFLICT ("table_name", "key_hash") DO UPDATE SET "status" =
  CASE WHEN "status" = 'reserved' THEN "status" ELSE 'ignore' END

-- name: count_by_status
SELECT "status", COUNT(*) FROM {jobs} WHERE "table_name" = ? GROUP BY "status"

-- name: keys_by_status
-- the key of each of a table's rows: progress under a restriction counts those of its keys
SELECT "status", "key" FROM {jobs} WHERE "table_name" = ?

-- name: count_status
SELECT COUNT(*) FROM {jobs} WHERE "table_name" = ? AND "status" = ?

-- name: held_and_holders
SELECT COUNT(*), COUNT(DISTINCT "owner") FROM {jobs} WHERE "table_name" = ? AND "status" = 'reserved'

-- name: pending_hashes
SELECT "key_hash" FROM {jobs} WHERE "table_name" = ? AND "status" = 'pending'
  AND ("retry_after" IS NULL OR "retry_after" <= strftime('%Y-%m-%d %H:%M:%f', 'now')) LIMIT ?

-- name: claim_pending
UPDATE {jobs} SET "status" = 'reserved', "token" = ?, "owner" = ?, "user" = ?, "host" = ?, "pid" = ?,
  "connection_id" = ?, "pid_start" = ?, "boot_id" = ?, "sched_job_id" = ?, "sched_task_id" = ?,
  "attempts" = "attempts" + 1, "heartbeat_at" = strftime('%Y-%m-%d %H:%M:%f', 'now'),
  "timestamp" = strftime('%Y-%m-%d %H:%M:%f', 'now')
WHERE "table_name" = ? AND "key_hash" IN ({hashes}) AND "status" = 'pending'

-- name: create_jobs_index
-- only: sqlite (MySQL declares the index in create_jobs)
CREATE INDEX IF NOT EXISTS {jobs_index} ON {jobs} ("table_name", "status")

-- name: claimed
SELECT "key_hash", "key", "attempts", "failures", "deaths", "history" FROM {jobs}
WHERE "table_name" = ? AND "token" = ?

-- name: heartbeat
UPDATE {jobs} SET "heartbeat_at" = strftime('%Y-%m-%d %H:%M:%f', 'now') WHERE "owner" = ? AND "status" = 'reserved'

-- name: reserved_rows
SELECT "table_name", "key_hash", "token", "owner", "host", "pid", "pid_start", "boot_id", "sched_job_id",
  "sched_task_id", "connection_id",
  (julianday('now') - julianday("heartbeat_at")) * 86400.0,
  "deaths", "history", "key", "position"
FROM {jobs} WHERE "status" = 'reserved'

-- name: reclaim
UPDATE {jobs} SET "status" = ?, "token" = '', "owner" = '', "deaths" = "deaths" + ?, "history" = ?,
  "error_message" = ?, "retry_after" = strftime('%Y-%m-%d %H:%M:%f', 'now'),
  "timestamp" = strftime('%Y-%m-%d %H:%M:%f', 'now')
WHERE "table_name" = ? AND "key_hash" = ? AND "token" = ? AND "status" = 'reserved'

-- name: token_of
SELECT "token" FROM {jobs} WHERE "table_name" = ? AND "key_hash" = ?

-- name: create_history
CREATE TABLE IF NOT EXISTS {history} (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "table_name" TEXT NOT NULL,
  "key_hash" TEXT NOT NULL,
  "host" TEXT NOT NULL DEFAULT '',
  "pid" INTEGER NOT NULL DEFAULT 0,
  "sched_job_id" TEXT NOT NULL DEFAULT '',
  "sched_task_id" TEXT NOT NULL DEFAULT '',
  "started_at" TEXT NOT NULL,
  "duration" REAL NOT NULL,
  "cpu_seconds" REAL NOT NULL DEFAULT 0,
  "max_rss_mb" REAL NOT NULL DEFAULT 0
)

-- name: record_history
INSERT INTO {history} ("table_name", "key_hash", "host", "pid", "sched_job_id", "sched_task_id", "started_at",
  "duration", "cpu_seconds", "max_rss_mb") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)

-- name: recent_durations
SELECT "duration" FROM {history} WHERE "table_name" = ? ORDER BY "id" DESC LIMIT ?

-- name: prune_history
DELETE FROM {history} WHERE "started_at" < strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || ? || ' seconds')

-- name: create_submissions
CREATE TABLE IF NOT EXISTS {submissions} (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "job_id" TEXT NOT NULL,
  "scheduler" TEXT NOT NULL,
  "target" TEXT NOT NULL,
  "table_name" TEXT NOT NULL,
  "array_size" INTEGER NOT NULL,
  "index_offset" INTEGER NOT NULL DEFAULT 0,
  "total_tasks" INTEGER NOT NULL,
  "submitted_at" TEXT NOT NULL,
  "user" TEXT NOT NULL DEFAULT '',
  "host" TEXT NOT NULL DEFAULT '',
  "script" TEXT NOT NULL DEFAULT '',
  "settings" TEXT
)

-- name: record_submission
INSERT INTO {submissions} ("job_id", "scheduler", "target", "table_name", "array_size", "index_offset",
  "total_tasks", "submitted_at", "user", "host", "script", "settings")
VALUES (?, ?, ?, ?, ?, ?, ?, strftime('%Y-%m-%d %H:%M:%f', 'now'), ?, ?, ?, ?)

-- name: list_submissions
SELECT "id", "job_id", "scheduler", "target", "table_name", "array_size", "index_offset", "total_tasks",
  "submitted_at", "user", "host", "script", "settings" FROM {submissions} ORDER BY "id" DESC LIMIT ?

-- Progress, jobs, status and report (djhpc/progress.py, jobrows.py, report.py). Counts, never keys.

-- name: history_summary
SELECT COUNT(*), COALESCE(SUM(CASE WHEN "started_at" >= ? THEN 1 ELSE 0 END), 0),
  MIN(CASE WHEN "started_at" >= ? THEN "started_at" END), MAX("started_at")
FROM {history} WHERE "table_name" = ?

-- name: history_sample
SELECT "duration", "cpu_seconds", "max_rss_mb" FROM {history} WHERE "table_name" = ? ORDER BY "id" DESC LIMIT ?

-- name: history_rows
SELECT "started_at", "duration", "host", "sched_job_id", "sched_task_id", "cpu_seconds", "max_rss_mb",
  "pid"
FROM {history} WHERE "table_name" = ? ORDER BY "id" DESC LIMIT ?

-- name: count_history_older
SELECT COUNT(*) FROM {history} WHERE "started_at" < strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || ? || ' seconds')

-- name: count_jobs_by_table
SELECT "table_name", "status", COUNT(*) FROM {jobs} GROUP BY "table_name", "status"

-- name: error_groups
SELECT "table_name", "error_message", COUNT(*), MIN("key_hash") FROM {jobs}
WHERE "status" = 'error' AND (? = '' OR "table_name" = ?)
GROUP BY "table_name", "error_message"

-- name: count_rows
SELECT COUNT(*) FROM {table}

-- name: reserve
-- As in mysql.sql; one statement is one write transaction, so it reads the latest state under the write lock.
INSERT OR IGNORE INTO {jobs} ("table_name", "key_hash", "status", "key", "user", "host", "pid", "connection_id",
  "owner", "pid_start", "boot_id", "sched_job_id", "sched_task_id", "token", "attempts", "heartbeat_at",
  "position")
SELECT v._tn, v._kh, 'reserved', v._k, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, strftime('%Y-%m-%d %H:%M:%f', 'now'),
  v._pos
FROM ({offer}) AS v
WHERE NOT EXISTS (SELECT 1 FROM {jobs} AS j WHERE j."table_name" = v._tn AND j."key_hash" = v._kh){skip_done}
{limit}

-- name: reserve_skip_done
 AND NOT EXISTS (SELECT 1 FROM {done} AS t WHERE {match})

-- name: reserve_limit
ORDER BY v._pos LIMIT ?

-- name: running_makes
SELECT "table_name", "key", "host", "pid", "sched_job_id", "sched_task_id", "token", "position",
  (julianday('now') - julianday("timestamp")) * 86400.0
FROM {jobs} WHERE "status" = 'reserved'

-- name: last_make_ends
SELECT "table_name", "host", "pid", MIN((julianday('now') - julianday("started_at")) * 86400.0 - "duration")
FROM {history} WHERE "started_at" > strftime('%Y-%m-%d %H:%M:%f', 'now', '-1 day')
GROUP BY "table_name", "host", "pid"
