'use strict';
// Shared by the tests: they run against a real convd and PostgreSQL that
// tests/integration/test_node_client.py sets up, and find them through the
// environment:
//   CONVD_SOCKET          a running convd
//   CONVD_BIN             the convd binary (restart.test.js starts its own)
//   CONVD_RESTART_CONFIG  a config file for that convd (its own socket)
//   CONVD_PSQL            psql, with PGHOST/PGPORT/PGUSER/PGDATABASE set
//   CONVD_NODE_RESULTS    a directory where tests leave what they did, for
//                         the Python side to check against the database

const { execFileSync, spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const client = require('convd-client');

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run through tests/integration/test_node_client.py)`);
  return v;
}

function uid(tag = 'node') {
  return `${tag}-${crypto.randomBytes(8).toString('hex')}`;
}

function lit(s) {
  return `'${String(s).replace(/'/g, "''")}'`;
}

/** Runs SQL with psql; returns the rows (unaligned, tuples only) as an
 * array of arrays of strings. */
function psql(sql, db) {
  const args = ['-X', '-A', '-t', '-q', '-F', '\t', '-v', 'ON_ERROR_STOP=1', '-c', sql];
  if (db) args.push('-d', db);
  const out = execFileSync(need('CONVD_PSQL'), args, { encoding: 'utf8' });
  return out.split('\n').filter((l) => l !== '').map((l) => l.split('\t'));
}

/** A psql session holding `LOCK TABLE table` in an open transaction, so
 * that statements on the table wait; release() commits. */
async function lockTable(table, mode = 'ACCESS EXCLUSIVE') {
  const proc = spawn(need('CONVD_PSQL'), ['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1'],
    { stdio: ['pipe', 'pipe', 'inherit'] });
  proc.stdin.write(`BEGIN;\nLOCK TABLE "${table}" IN ${mode} MODE;\nSELECT 'locked';\n`);
  await new Promise((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      if (out.includes('locked')) resolve();
    });
    proc.on('exit', (code) => reject(new Error(`psql exited with ${code}: ${out}`)));
  });
  return {
    release() {
      return new Promise((resolve) => {
        proc.on('exit', resolve);
        proc.stdin.end('COMMIT;\n');
      });
    },
  };
}

/** Polls fn until it returns a truthy value (returned), for up to ms. */
async function waitFor(fn, what, ms = 15000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The socket named in a convd config file. */
function configSocket(config) {
  const m = /^\s*socket\s*=\s*(\S+)/m.exec(fs.readFileSync(config, 'utf8'));
  return m[1];
}

/** A convd process of our own (for restarts). */
class Daemon {
  constructor(config = need('CONVD_RESTART_CONFIG')) {
    this.config = config;
    this.socket = configSocket(config);
    this.log = path.join(path.dirname(config), 'convd-node.log');
    this.proc = null;
  }

  async start() {
    const fd = fs.openSync(this.log, 'a');
    this.proc = spawn(need('CONVD_BIN'), ['-c', this.config], { stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    const proc = this.proc;
    if (process.env.CONVD_NODE_RESULTS) {
      // for the Python side to end it, should this process die first
      fs.appendFileSync(path.join(process.env.CONVD_NODE_RESULTS, 'daemons.pids'), `${proc.pid}\n`);
    }
    const exited = new Promise((resolve) => proc.once('exit', (code, sig) => resolve(code ?? sig)));
    this.exited = exited;
    const probe = new client.ConversationManager(this.socket,
      { reconnectTimeout: 0, maxRetries: 0, timeout: 2000 });
    try {
      await waitFor(async () => {
        if (proc.exitCode !== null) throw new Error(`convd exited: ${fs.readFileSync(this.log, 'utf8')}`);
        return probe.ping().catch(() => false);
      }, 'convd to answer ping');
    } finally {
      probe.close();
    }
    return this;
  }

  /** Sends sig and waits for the process to end; returns its exit code or
   * signal. */
  async stop(sig = 'SIGTERM') {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return null;
    this.proc.kill(sig);
    return this.exited;
  }
}

/** Leaves a JSON record for the Python side. */
function record(name, data) {
  const dir = process.env.CONVD_NODE_RESULTS;
  if (!dir) return;
  fs.writeFileSync(path.join(dir, `${name}.json`), JSON.stringify(data, (k, v) =>
    (typeof v === 'bigint' ? v.toString() : v)));
}

module.exports = { client, need, uid, lit, psql, lockTable, waitFor, Daemon, record };
