// The message store: the tutorial's table in SQLite. better-sqlite3 is
// synchronous, so an insert is committed before the next line runs, and a
// catch-up read cannot interleave with a broadcast (both run to completion on
// the one event loop).

import Database from 'better-sqlite3';

import { ConfigError } from './config.js';

function schema(unique) {
  return `CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    client_offset TEXT${unique ? ' UNIQUE' : ''},
    content TEXT
  )`;
}

export class Store {
  /** exactly-once keeps client_offset UNIQUE; weaker levels keep the column without it. */
  constructor(path, { unique, busyTimeoutMs, pragmas }) {
    this.db = new Database(path, { timeout: busyTimeoutMs });
    for (const [name, value] of pragmas) this.db.pragma(`${name} = ${value}`);
    this.db.exec(schema(unique));
    this.checkSchema(unique);
    this.insertStmt = this.db.prepare('INSERT INTO messages (content, client_offset) VALUES (?, ?)');
    this.afterStmt = this.db.prepare('SELECT id, content FROM messages WHERE id > ? ORDER BY id');
    this.countStmt = this.db.prepare('SELECT count(*) AS n, coalesce(max(id), 0) AS max FROM messages');
  }

  /** An existing file made for another level would silently change the guarantee: refuse it. */
  checkSchema(unique) {
    const indexes = this.db.prepare("SELECT name FROM pragma_index_list('messages') WHERE \"unique\" = 1").all();
    if (indexes.length > 0 !== unique) {
      throw new ConfigError(
        `DB: table messages ${unique ? 'lacks' : 'has'} a UNIQUE client_offset; ` +
        `this level needs ${unique ? 'it' : 'none'} (use a fresh file)`,
      );
    }
  }

  /** Returns the new row id; throws SQLITE_CONSTRAINT_UNIQUE for a known client offset. */
  insert(content, clientOffset) {
    return Number(this.insertStmt.run(content, clientOffset).lastInsertRowid);
  }

  *after(id) {
    yield* this.afterStmt.iterate(id);
  }

  stats() {
    return this.countStmt.get();
  }

  close() {
    if (this.db.open) this.db.close();
  }
}
