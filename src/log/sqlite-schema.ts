/**
 * The layout of an event log file and its migrations. A file carries `PRAGMA application_id`
 * "EvpL" and `meta.schema_version`; a newer version than this code knows is refused rather than
 * misread, and older versions are migrated in place, one step per version.
 */
import type Database from 'better-sqlite3'
import { EventplaneError } from '../core/errors.ts'

/** The schema version this code writes; a file with a newer one is refused. */
export const sqliteSchemaVersion = 3
/** `PRAGMA application_id` of an Eventplane log file ("EvpL"). */
const applicationId = 0x4576704c

const schema = `
  CREATE TABLE topics (
    name TEXT PRIMARY KEY,
    partitions INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
  ) STRICT;
  CREATE TABLE partitions (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL REFERENCES topics (name),
    partition INTEGER NOT NULL,
    -- the log start offset once retention has deleted every batch
    start_offset INTEGER NOT NULL DEFAULT 0,
    UNIQUE (topic, partition)
  ) STRICT;
  CREATE TABLE batches (
    id INTEGER PRIMARY KEY,
    part_id INTEGER NOT NULL,
    base_offset INTEGER NOT NULL,
    count INTEGER NOT NULL,
    min_ts INTEGER NOT NULL,
    max_ts INTEGER NOT NULL,
    ts_high INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    bytes_end INTEGER NOT NULL,
    payload BLOB NOT NULL,
    -- the latest append time up to and including the batch (NULL: written before version 3)
    appended_high INTEGER
  ) STRICT;
  CREATE UNIQUE INDEX batches_by_offset ON batches (part_id, base_offset);
`
// Version 2 dropped the index by time, (part_id, ts_high, base_offset): ts_high grows with the
// offset, so a search by time can bisect the index by offset instead, and every commit writes
// one B-tree page fewer (a third of the pages of a small commit).
//
// Version 3 added appended_high, the running maximum of append times that retention by age
// goes by: ts_high comes from the producers' meta.dt, so a record dated 1971 was deleted at the
// next pass and one dated 9999 stopped age retention of its partition for good. The column is
// nullable so that the migration is an O(1) ALTER TABLE: filling it in with an UPDATE rewrote
// every row, payloads included (measured: a 410 MB file put 412 MB in the WAL, in one
// transaction, on open). A row without it reads as appendedHighSql says.

/** meta key: when the file was migrated to version 3 (ms); see appendedHighSql. */
const appendedHighUnknownBefore = 'v3_migrated_ms'

/**
 * A batch row's appended_high as SQL. Rows written before version 3 have none and read as
 * min(ts_high, the migration time), which neither deletes them at once nor keeps them forever.
 * Not forever: they were appended before the migration, so no timestamp, even one in 9999,
 * keeps them past the migration time plus the maximum age. Not at once: for honest producers
 * meta.dt is about the append time, so ts_high (the latest timestamp up to the row) is about
 * its real age; the rows the first pass deletes are those whose every timestamp so far is past
 * the age, which the version 2 rule deleted at its next pass as well. Both arguments grow with
 * the offset, so this is still a running maximum and retention still deletes a prefix.
 */
export const appendedHighSql = `coalesce(appended_high, min(ts_high,
  (SELECT CAST(value AS INTEGER) FROM meta WHERE key = '${appendedHighUnknownBefore}')))`

/**
 * WAL, durability and the schema; refuses files that are not (or are newer) Eventplane logs.
 * `now` is the log's clock, recorded by the migration to version 3.
 */
export function prepareDatabase(db: Database.Database, path: string, sync: 'normal' | 'full', now: number): void {
  const mode = db.pragma('journal_mode = WAL', { simple: true })
  if (mode !== 'wal') throw new EventplaneError('EVP_LOG_UNAVAILABLE', `${path}: cannot use WAL mode (got ${String(mode)})`)
  db.pragma(`synchronous = ${sync === 'full' ? 'FULL' : 'NORMAL'}`)
  // Without a limit the WAL file keeps the largest size it ever had.
  db.pragma('journal_size_limit = 67108864')
  // Checkpoints run in a worker (checkpointer.ts); the writer checkpoints itself only when the
  // WAL passes this many pages (256 MiB), should the worker fall behind.
  db.pragma('wal_autocheckpoint = 65536')
  db.transaction(() => {
    const app = db.pragma('application_id', { simple: true }) as number
    const hasTables = db.prepare("SELECT count(*) FROM sqlite_schema WHERE type = 'table'").pluck().get() as number
    if (app !== applicationId && (app !== 0 || hasTables > 0)) {
      throw new EventplaneError('EVP_LOG_UNAVAILABLE', `${path} is a SQLite file but not an Eventplane event log`)
    }
    if (app === 0) {
      db.pragma(`application_id = ${applicationId}`)
      db.exec('CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT')
      db.exec(schema)
      db.prepare("INSERT INTO meta (key, value) VALUES ('schema_version', ?)").run(String(sqliteSchemaVersion))
      return
    }
    const version = Number(db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").pluck().get())
    if (version > sqliteSchemaVersion) {
      throw new EventplaneError(
        'EVP_LOG_UNAVAILABLE',
        `${path} has log schema version ${version}; this Eventplane reads up to ${sqliteSchemaVersion}`,
      )
    }
    // Migrations from older versions, one step per version.
    if (version < 2) db.exec('DROP INDEX IF EXISTS batches_by_time')
    if (version < 3) {
      db.exec('ALTER TABLE batches ADD COLUMN appended_high INTEGER')
      db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)').run(appendedHighUnknownBefore, String(Math.floor(now)))
    }
    if (version < sqliteSchemaVersion) {
      db.prepare("UPDATE meta SET value = ? WHERE key = 'schema_version'").run(String(sqliteSchemaVersion))
    }
  }).immediate()
}
