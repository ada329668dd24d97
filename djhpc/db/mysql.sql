-- Named statements of the reservation library, MySQL/MariaDB dialect.
-- {jobs} is the quoted jobs table; every value is a parameter.

-- name: create_jobs
CREATE TABLE IF NOT EXISTS {jobs} (
  `table_name` varchar(255) NOT NULL COMMENT 'the table whose key this is',
  `key_hash` char(32) NOT NULL COMMENT 'sha256 of the key in canonical form, 128 bits',
  `status` enum('reserved','error','ignore','pending') NOT NULL,
  `key` longblob COMMENT 'the key, djhpc blob',
  `error_message` varchar(2047) NOT NULL DEFAULT '',
  `error_stack` mediumtext,
  `user` varchar(255) NOT NULL DEFAULT '',
  `host` varchar(255) NOT NULL DEFAULT '',
  `pid` int unsigned NOT NULL DEFAULT 0,
  `connection_id` bigint unsigned NOT NULL DEFAULT 0,
  `timestamp` timestamp(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  `token` char(32) NOT NULL DEFAULT '' COMMENT 'fencing token of the current reservation',
  `owner` char(32) NOT NULL DEFAULT '' COMMENT 'worker id',
  `pid_start` double NOT NULL DEFAULT 0 COMMENT 'process start time, to tell reused PIDs apart',
  `boot_id` varchar(64) NOT NULL DEFAULT '',
  `sched_job_id` varchar(64) NOT NULL DEFAULT '',
  `sched_task_id` varchar(64) NOT NULL DEFAULT '',
  `attempts` smallint unsigned NOT NULL DEFAULT 0,
  `failures` smallint unsigned NOT NULL DEFAULT 0,
  `deaths` smallint unsigned NOT NULL DEFAULT 0,
  `position` smallint unsigned NOT NULL DEFAULT 0 COMMENT 'order of the key in its reservation batch',
  `heartbeat_at` datetime(6) NULL DEFAULT NULL,
  `retry_after` datetime(6) NULL DEFAULT NULL,
  `history` mediumtext COMMENT 'JSON list of earlier attempts',
  PRIMARY KEY (`table_name`, `key_hash`),
  KEY `status` (`table_name`, `status`),
  KEY `owner` (`owner`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='djhpc jobs: reserved, failed and ignored keys'

-- name: complete
DELETE FROM {jobs} WHERE `table_name` = %s AND `key_hash` = %s AND `token` = %s AND `status` = 'reserved'

-- name: complete_made
-- The fenced completion of a make, which must also have inserted its key's row: it removes the reservation only
-- when the row is there, so a make that inserted nothing (or another key's row) changes no row and never commits.
-- Slots: {done} the quoted target table; {match} "t.`col` = %s AND ..." over its quoted key columns.
DELETE FROM {jobs} WHERE `table_name` = %s AND `key_hash` = %s AND `token` = %s AND `status` = 'reserved'
  AND EXISTS (SELECT 1 FROM {done} AS t WHERE {match})

-- name: release
DELETE FROM {jobs} WHERE `table_name` = %s AND `key_hash` = %s AND `token` = %s AND `status` = 'reserved'
  AND `attempts` <= 1 AND `failures` = 0 AND `deaths` = 0

-- name: release_orphans
-- Rows this worker holds but does not know of (a reservation whose reply was lost): {tokens} is a list of
-- placeholders, the tokens it does know, never empty
DELETE FROM {jobs} WHERE `owner` = %s AND `status` = 'reserved' AND `token` NOT IN ({tokens})
  AND `attempts` <= 1 AND `failures` = 0 AND `deaths` = 0

-- name: release_orphans_keep_history
UPDATE {jobs} SET `status` = 'pending', `token` = '', `owner` = '', `retry_after` = UTC_TIMESTAMP(6)
WHERE `owner` = %s AND `status` = 'reserved' AND `token` NOT IN ({tokens})

-- name: release_keep_history
UPDATE {jobs} SET `status` = 'pending', `token` = '', `owner` = '', `retry_after` = UTC_TIMESTAMP(6)
WHERE `table_name` = %s AND `key_hash` = %s AND `token` = %s AND `status` = 'reserved'

-- name: fail
UPDATE {jobs} SET `status` = %s, `error_message` = %s, `error_stack` = %s, `failures` = `failures` + 1,
  `retry_after` = UTC_TIMESTAMP(6) + INTERVAL %s SECOND, `history` = %s, `timestamp` = UTC_TIMESTAMP(6)
WHERE `table_name` = %s AND `key_hash` = %s AND `token` = %s AND `status` = 'reserved'

-- name: winners
SELECT `key_hash` FROM {jobs} WHERE `table_name` = %s AND `token` = %s

-- name: ignore
INSERT INTO {jobs} (`table_name`, `key_hash`, `status`, `key`, `user`, `host`, `pid`)
VALUES (%s, %s, 'ignore', %s, %s, %s, %s)
ON DUPLICATE KEY UPDATE `status` = IF(`status` = 'reserved', `status`, 'ignore')

-- name: count_by_status
SELECT `status`, COUNT(*) FROM {jobs} WHERE `table_name` = %s GROUP BY `status`

-- name: keys_by_status
-- the key of each of a table's rows: progress under a restriction counts those of its keys
SELECT `status`, `key` FROM {jobs} WHERE `table_name` = %s

-- name: count_status
SELECT COUNT(*) FROM {jobs} WHERE `table_name` = %s AND `status` = %s

-- name: held_and_holders
SELECT COUNT(*), COUNT(DISTINCT `owner`) FROM {jobs} WHERE `table_name` = %s AND `status` = 'reserved'

-- name: pending_hashes
SELECT `key_hash` FROM {jobs} WHERE `table_name` = %s AND `status` = 'pending'
  AND (`retry_after` IS NULL OR `retry_after` <= UTC_TIMESTAMP(6)) LIMIT %s

-- name: claim_pending
UPDATE {jobs} SET `status` = 'reserved', `token` = %s, `owner` = %s, `user` = %s, `host` = %s, `pid` = %s,
  `connection_id` = %s, `pid_start` = %s, `boot_id` = %s, `sched_job_id` = %s, `sched_task_id` = %s,
  `attempts` = `attempts` + 1, `heartbeat_at` = UTC_TIMESTAMP(6), `timestamp` = UTC_TIMESTAMP(6)
WHERE `table_name` = %s AND `key_hash` IN ({hashes}) AND `status` = 'pending'

-- name: claimed
SELECT `key_hash`, `key`, `attempts`, `failures`, `deaths`, `history` FROM {jobs}
WHERE `table_name` = %s AND `token` = %s

-- name: heartbeat
UPDATE {jobs} SET `heartbeat_at` = UTC_TIMESTAMP(6) WHERE `owner` = %s AND `status` = 'reserved'

-- name: reserved_rows
SELECT `table_name`, `key_hash`, `token`, `owner`, `host`, `pid`, `pid_start`, `boot_id`, `sched_job_id`,
  `sched_task_id`, `connection_id`, TIMESTAMPDIFF(MICROSECOND, `heartbeat_at`, UTC_TIMESTAMP(6)) / 1e6,
  `deaths`, `history`, `key`, `position`
FROM {jobs} WHERE `status` = 'reserved'

-- name: reclaim
UPDATE {jobs} SET `status` = %s, `token` = '', `owner` = '', `deaths` = `deaths` + %s, `history` = %s,
  `error_message` = %s, `retry_after` = UTC_TIMESTAMP(6), `timestamp` = UTC_TIMESTAMP(6)
WHERE `table_name` = %s AND `key_hash` = %s AND `token` = %s AND `status` = 'reserved'

-- name: server_uptime
-- only: mysql
-- and the server's clock (seconds since the epoch), to notice a worker's clock far from it
SELECT VARIABLE_VALUE, UNIX_TIMESTAMP(NOW(6)) FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'UPTIME'

-- name: take_session_lock
-- only: mysql
SELECT GET_LOCK(%s, 0)

-- name: release_session_lock
-- only: mysql
SELECT RELEASE_LOCK(%s)

-- name: token_of
SELECT `token` FROM {jobs} WHERE `table_name` = %s AND `key_hash` = %s

-- name: create_history
CREATE TABLE IF NOT EXISTS {history} (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `table_name` varchar(255) NOT NULL,
  `key_hash` char(32) NOT NULL,
  `host` varchar(255) NOT NULL DEFAULT '',
  `pid` int unsigned NOT NULL DEFAULT 0,
  `sched_job_id` varchar(64) NOT NULL DEFAULT '',
  `sched_task_id` varchar(64) NOT NULL DEFAULT '',
  `started_at` datetime(6) NOT NULL,
  `duration` double NOT NULL COMMENT 'seconds of make, wall clock',
  `cpu_seconds` double NOT NULL DEFAULT 0,
  `max_rss_mb` double NOT NULL DEFAULT 0 COMMENT 'peak resident memory of the worker after make',
  PRIMARY KEY (`id`),
  KEY `table_time` (`table_name`, `started_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='djhpc: one row per successful make'

-- name: record_history
INSERT INTO {history} (`table_name`, `key_hash`, `host`, `pid`, `sched_job_id`, `sched_task_id`, `started_at`,
  `duration`, `cpu_seconds`, `max_rss_mb`) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)

-- name: record_history_checked
-- only: mysql. record_history that also checks the fence before it (Connection.commit_with): it fails (error 1242)
-- unless the statement before it changed exactly one row, so the separate fence_check statement is not needed
INSERT INTO {history} (`table_name`, `key_hash`, `host`, `pid`, `sched_job_id`, `sched_task_id`, `started_at`,
  `duration`, `cpu_seconds`, `max_rss_mb`) VALUES (IF(ROW_COUNT() = 1, %s, (SELECT 1 UNION ALL SELECT 2)),
  %s, %s, %s, %s, %s, %s, %s, %s, %s)

-- name: recent_durations
SELECT `duration` FROM {history} WHERE `table_name` = %s ORDER BY `id` DESC LIMIT %s

-- name: prune_history
DELETE FROM {history} WHERE `started_at` < UTC_TIMESTAMP(6) - INTERVAL %s SECOND

-- name: create_submissions
CREATE TABLE IF NOT EXISTS {submissions} (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `job_id` varchar(64) NOT NULL COMMENT 'the scheduler job id of one array',
  `scheduler` varchar(16) NOT NULL,
  `target` varchar(1024) NOT NULL,
  `table_name` varchar(255) NOT NULL,
  `array_size` int unsigned NOT NULL,
  `index_offset` int unsigned NOT NULL DEFAULT 0,
  `total_tasks` int unsigned NOT NULL,
  `submitted_at` datetime(6) NOT NULL,
  `user` varchar(255) NOT NULL DEFAULT '',
  `host` varchar(255) NOT NULL DEFAULT '',
  `script` varchar(1024) NOT NULL DEFAULT '',
  `settings` mediumtext COMMENT 'the profile as JSON (never a password)',
  PRIMARY KEY (`id`),
  KEY `job` (`job_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='djhpc: submitted job arrays'

-- name: record_submission
INSERT INTO {submissions} (`job_id`, `scheduler`, `target`, `table_name`, `array_size`, `index_offset`,
  `total_tasks`, `submitted_at`, `user`, `host`, `script`, `settings`)
VALUES (%s, %s, %s, %s, %s, %s, %s, UTC_TIMESTAMP(6), %s, %s, %s, %s)

-- name: list_submissions
SELECT `id`, `job_id`, `scheduler`, `target`, `table_name`, `array_size`, `index_offset`, `total_tasks`,
  `submitted_at`, `user`, `host`, `script`, `settings` FROM {submissions} ORDER BY `id` DESC LIMIT %s

-- Progress, jobs, status and report (djhpc/progress.py, jobrows.py, report.py). Counts, never keys.

-- name: history_summary
SELECT COUNT(*), COALESCE(SUM(CASE WHEN `started_at` >= %s THEN 1 ELSE 0 END), 0),
  MIN(CASE WHEN `started_at` >= %s THEN `started_at` END), MAX(`started_at`)
FROM {history} WHERE `table_name` = %s

-- name: history_sample
SELECT `duration`, `cpu_seconds`, `max_rss_mb` FROM {history} WHERE `table_name` = %s ORDER BY `id` DESC LIMIT %s

-- name: history_rows
SELECT `started_at`, `duration`, `host`, `sched_job_id`, `sched_task_id`, `cpu_seconds`, `max_rss_mb`,
  `pid`
FROM {history} WHERE `table_name` = %s ORDER BY `id` DESC LIMIT %s

-- name: count_history_older
SELECT COUNT(*) FROM {history} WHERE `started_at` < UTC_TIMESTAMP(6) - INTERVAL %s SECOND

-- name: count_jobs_by_table
SELECT `table_name`, `status`, COUNT(*) FROM {jobs} GROUP BY `table_name`, `status`

-- name: error_groups
SELECT `table_name`, `error_message`, COUNT(*), MIN(`key_hash`) FROM {jobs}
WHERE `status` = 'error' AND (%s = '' OR `table_name` = %s)
GROUP BY `table_name`, `error_message`

-- name: count_rows
SELECT COUNT(*) FROM {table}

-- name: fence_check
-- only: mysql (Connection.commit_with's one_row_at; SQLite reads the row count itself)
-- fails (error 1242) unless the statement before it changed exactly one row: the server then runs nothing
-- more of the batch, so a make whose reservation was reclaimed never reaches its COMMIT
SELECT IF(ROW_COUNT() = 1, 0, (SELECT 1 UNION ALL SELECT 2))

-- name: reserve
-- Reserve the offered keys nobody holds (and, with {skip_done}, nobody made), in the order offered.
-- Slots: {jobs} the quoted jobs table; {offer} one row of placeholders per key, "SELECT %s AS _tn, %s AS _kh,
-- %s AS _k, %s AS _pos[, %s AS _c0, ...] UNION ALL SELECT %s, ..."; {skip_done} the reserve_skip_done block
-- or nothing; {limit} the reserve_limit block or nothing. Parameters: the worker's identity, the token, each
-- key's row, the limit.
INSERT IGNORE INTO {jobs} (`table_name`, `key_hash`, `status`, `key`, `user`, `host`, `pid`, `connection_id`,
  `owner`, `pid_start`, `boot_id`, `sched_job_id`, `sched_task_id`, `token`, `attempts`, `heartbeat_at`,
  `position`)
SELECT v._tn, v._kh, 'reserved', v._k, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 1, UTC_TIMESTAMP(6), v._pos
FROM ({offer}) AS v
WHERE NOT EXISTS (SELECT 1 FROM {jobs} AS j WHERE j.`table_name` = v._tn AND j.`key_hash` = v._kh){skip_done}
{limit}{returning}

-- name: reserve_skip_done
-- Slots: {done} the quoted target table; {match} "t.`col` = v._c0 AND ..." over its quoted key columns.
 AND NOT EXISTS (SELECT 1 FROM {done} AS t WHERE {match})

-- name: reserve_limit
ORDER BY v._pos LIMIT %s

-- name: reserve_returning
-- only: mysql
-- MariaDB >= 10.5: the keys won come back with the reservation itself (INSERT IGNORE returns the rows it inserted),
-- so the winners read is not needed; MySQL has no RETURNING.
 RETURNING `key_hash`

-- name: made_meanwhile
-- only: mysql
-- Of the keys offered to a reservation that ran without its turn: those whose row is in the target table now.
-- That reservation read an older view of the table, in which a worker could reserve, make and commit a key
-- between the view and the insert. Slots: {offer} "SELECT %s AS _kh[, %s AS _c0, ...] UNION ALL ..."; {done},
-- {match} as in reserve_skip_done.
SELECT v._kh FROM ({offer}) AS v WHERE EXISTS (SELECT 1 FROM {done} AS t WHERE {match})

-- name: take_reserve_lock
-- only: mysql
SELECT GET_LOCK(%s, %s)

-- name: release_reserve_lock
-- only: mysql
SELECT RELEASE_LOCK(%s)

-- name: read_committed_next
-- only: mysql
SET TRANSACTION ISOLATION LEVEL READ COMMITTED

-- name: is_free_lock
-- only: mysql
-- one column of a SELECT per owner: whether its session lock is free
IS_FREE_LOCK(%s)

-- name: session_holder
-- only: mysql
SELECT IS_USED_LOCK(%s)

-- name: running_makes
-- Reserved rows with their age on the server's clock; the first of each token's batch is the one being made.
SELECT `table_name`, `key`, `host`, `pid`, `sched_job_id`, `sched_task_id`, `token`, `position`,
  TIMESTAMPDIFF(MICROSECOND, `timestamp`, UTC_TIMESTAMP(6)) / 1e6
FROM {jobs} WHERE `status` = 'reserved'

-- name: last_make_ends
-- Seconds since each worker's latest make of the last day ended: when its current make began, at the latest.
SELECT `table_name`, `host`, `pid`,
  MIN(TIMESTAMPDIFF(MICROSECOND, `started_at`, UTC_TIMESTAMP(6)) / 1e6 - `duration`)
FROM {history} WHERE `started_at` > UTC_TIMESTAMP(6) - INTERVAL 1 DAY GROUP BY `table_name`, `host`, `pid`
