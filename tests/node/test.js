'use strict';
// End-to-end protocol test: a Node.js client written only from docs/protocol.md and docs/world.md
// drives the real otherworld server. Run with `node --test test.js` (see run.sh).
//
// Environment: OW_SERVER_BIN (default /work/main/build/otherworld), OW_TEST_VERBOSE=1 to echo the
// server's log.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');
const { performance } = require('node:perf_hooks');
const WebSocket = require('ws');
const P = require('../../clients/js/protocol');

const { MSG, ACT, BYE, KIND, E, enc } = P;

const SERVER_BIN = process.env.OW_SERVER_BIN || '/work/main/build/otherworld';
const VERBOSE = process.env.OW_TEST_VERBOSE === '1';
const WAIT_MS = 10000; // every single wait is bounded by this (or less)
const STEP_MS = 60000; // and every step by this

const summary = [];
const note = (s) => summary.push(s);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const errName = (c) => `${P.E_NAME[c] || 'code'} (${c})`;

// ---------------------------------------------------------------------------------------------
// The server process

const server = {
  proc: null, dataDir: null, port: 0, stderr: [], exit: null, exitPromise: null,
  tail(n = 30) { return this.stderr.slice(-n).join('\n'); },
};

function killServer() {
  if (server.proc && server.exit === null) {
    try { server.proc.kill('SIGKILL'); } catch (_) { /* already gone */ }
  }
}
process.on('exit', killServer);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => { killServer(); process.exit(130); });
}
process.on('uncaughtException', (e) => { killServer(); console.error(e); process.exit(1); });

const oldDataDirs = []; // of servers started before the current one, removed at the end

// Starts a server with the default settings and `extra` arguments; a server started earlier must
// have exited.
function startServer(extra = []) {
  if (!fs.existsSync(SERVER_BIN)) throw new Error(`server binary not found: ${SERVER_BIN} (set OW_SERVER_BIN)`);
  if (server.dataDir) oldDataDirs.push(server.dataDir);
  Object.assign(server, { proc: null, port: 0, stderr: [], exit: null, exitPromise: null });
  server.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ow-node-test-'));
  const args = ['--data_dir', server.dataDir, '--bind', '127.0.0.1', '--port', '0',
    '--shutdown_notice_s', '0.2', ...extra];
  const proc = spawn(SERVER_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  server.proc = proc;
  server.exitPromise = new Promise((resolve) => {
    proc.on('exit', (code, signal) => { server.exit = { code, signal }; resolve(server.exit); });
  });
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => {
      killServer();
      reject(new Error(`server did not print event=listening within ${WAIT_MS} ms:\n${server.tail()}`));
    }, WAIT_MS);
    const onLine = (line) => {
      server.stderr.push(line);
      if (VERBOSE) console.error(`[server] ${line}`);
      const m = /event=listening url=ws:\/\/127\.0\.0\.1:(\d+)\/ws/.exec(line);
      if (m && !server.port) {
        server.port = Number(m[1]);
        clearTimeout(timer);
        resolve(server.port);
      }
    };
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) { onLine(buf.slice(0, i)); buf = buf.slice(i + 1); }
    });
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (d) => { if (VERBOSE) process.stderr.write(`[server stdout] ${d}`); });
    proc.on('error', (e) => { clearTimeout(timer); reject(e); });
    proc.on('exit', (code, signal) => {
      if (!server.port) {
        clearTimeout(timer);
        reject(new Error(`server exited (code ${code}, signal ${signal}) before listening:\n${server.tail()}`));
      }
    });
  });
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------
// A protocol client

class Client {
  constructor(label) {
    this.label = label;
    this.all = []; // every decoded server message, in arrival order
    this.inbox = []; // messages not yet taken by take()
    this.waiters = new Set();
    this.nextReq = 1;
    this.snap = new P.SnapshotTable();
    this.version = P.PROTO_VERSION; // asked for in HELLO
    this.dec = new P.Decoder(); // this connection's version, region size and POSES slots
    this.history = []; // completed snapshots: {id, base, frame, table, at}
    this.acks = [];
    this.faults = []; // decode / snapshot assembly problems (fail the waiters)
    this.closed = false;
    this.closeCode = null;
    this.wsMessages = 0; // WebSocket messages received
    this.multi = 0; // ... of which carried more than one protocol message
    this.world = null; // JOINED
    this.session = null; // SESSION
  }

  connect(url, protocols) {
    this.ws = new WebSocket(url, protocols, { perMessageDeflate: false, handshakeTimeout: WAIT_MS });
    this.ws.binaryType = 'nodebuffer';
    this.ws.on('message', (data, isBinary) => this._onMessage(data, isBinary));
    this.ws.on('close', (code) => { this.closed = true; this.closeCode = code; this.closedAt = performance.now(); this._wake(); });
    this.ws.on('error', (e) => { this.lastError = e; this._wake(); });
    return withTimeout(new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('error', reject);
    }), WAIT_MS, `${this.label}: WebSocket connect to ${url}`);
  }

  _onMessage(data, isBinary) {
    const at = performance.now();
    if (!isBinary) {
      this.faults.push('server sent a text WebSocket message');
    } else {
      let msgs = [];
      try {
        if (data.length > 60 * 1024) this.faults.push(`server WebSocket message of ${data.length} bytes exceeds 60 KiB`);
        msgs = this.dec.decode(data);
        this.wsMessages += 1;
        if (msgs.length > 1) this.multi += 1;
      } catch (e) {
        this.faults.push(`decode: ${e.message} (raw ${data.toString('hex').slice(0, 200)})`);
      }
      for (const m of msgs) {
        m.at = at;
        this.all.push(m);
        this.inbox.push(m);
        if (m.type === MSG.SNAPSHOT) {
          try {
            const done = this.snap.apply(m);
            if (done) {
              this.history.push({ ...done, at });
              if (this.ws.readyState === WebSocket.OPEN) { this.send(enc.ack(done.id)); this.acks.push(done.id); }
            }
          } catch (e) {
            this.faults.push(`snapshot: ${e.message}`);
          }
        }
      }
    }
    this._wake();
  }

  _wake() {
    for (const w of [...this.waiters]) {
      let v;
      if (this.faults.length) {
        w.reject(new Error(`${this.label}: protocol fault while waiting for ${w.what}: ${this.faults.join('; ')}`));
        continue;
      }
      try { v = w.check(); } catch (e) { w.reject(e); continue; }
      if (v !== undefined) { w.resolve(v); continue; }
      if (this.closed && !w.allowClosed) {
        const tail = this.all.slice(-4).map(describeMsg).join(', ');
        w.reject(new Error(`${this.label}: connection closed (code ${this.closeCode}) while waiting for ${w.what}; last messages: ${tail}`));
      }
    }
  }

  // Resolves with the first value check() returns that is not undefined; checked now and after
  // every incoming message. Bounded by `ms`.
  until(check, what, ms = WAIT_MS, allowClosed = false) {
    return new Promise((resolve, reject) => {
      const w = { check, what, allowClosed };
      const done = () => { clearTimeout(w.timer); this.waiters.delete(w); };
      w.resolve = (v) => { done(); resolve(v); };
      w.reject = (e) => { done(); reject(e); };
      w.timer = setTimeout(() => {
        const tail = this.all.slice(-6).map(describeMsg).join(', ');
        w.reject(new Error(`${this.label}: timeout after ${ms} ms waiting for ${what}; last messages: ${tail || 'none'}`));
      }, ms);
      this.waiters.add(w);
      this._wake();
    });
  }

  // Takes (removes from the inbox) the first message matching pred.
  take(pred, what, ms = WAIT_MS) {
    return this.until(() => {
      const i = this.inbox.findIndex(pred);
      if (i < 0) return undefined;
      return this.inbox.splice(i, 1)[0];
    }, what, ms);
  }

  send(buf) { this.ws.send(buf, { binary: true }); }

  // Sends a request and waits for the reply of `type` echoing its req; an ERROR with that req fails.
  async request(makeMsg, type, what) {
    const req = this.nextReq++;
    this.send(makeMsg(req));
    const m = await this.take((x) => x.req === req && (x.type === type || x.type === MSG.ERROR),
      `${what} reply (req ${req})`);
    if (m.type === MSG.ERROR) {
      const e = new Error(`${this.label}: ${what} got ERROR ${errName(m.code)} "${m.text}"`);
      e.code = m.code;
      throw e;
    }
    return m;
  }

  // Like request, but returns the reply whether it is the expected type or ERROR.
  async requestAny(makeMsg, type, what) {
    const req = this.nextReq++;
    this.send(makeMsg(req));
    return this.take((x) => x.req === req && (x.type === type || x.type === MSG.ERROR), `${what} reply (req ${req})`);
  }

  waitClosed(ms = WAIT_MS) {
    return this.until(() => (this.closed ? this.closeCode : undefined), `${this.label}: close`, ms, true);
  }

  close() {
    if (this.ws && this.ws.readyState !== WebSocket.CLOSED) { try { this.ws.terminate(); } catch (_) { /* ignore */ } }
  }

  typeId(name) {
    const t = this.world.types.find((x) => x.name === name);
    assert.ok(t, `JOINED has no type named ${name}`);
    return t.id;
  }

  typeName(id) { const t = this.world.types.find((x) => x.id === id); return t ? t.name : `type#${id}`; }
}

function describeMsg(m) {
  switch (m.type) {
    case MSG.ERROR: return `ERROR(req ${m.req}, ${errName(m.code)}, "${m.text}")`;
    case MSG.SERVER_BYE: return `SERVER_BYE(${m.reason}, "${m.text}")`;
    case MSG.EVENT: return `EVENT(${m.kind}, "${m.text}")`;
    case MSG.APPLIED: return `APPLIED(seq ${m.seq}, code ${m.code}, replayed ${m.replayed})`;
    case MSG.DURABLE: return `DURABLE(frame ${m.frame}, status ${m.status}, [${m.seqs.join(',')}])`;
    case MSG.SNAPSHOT: return `SNAPSHOT(id ${m.id}, base ${m.base}, n ${m.entities.length})`;
    default: return `${m.name}${m.req !== undefined ? `(req ${m.req})` : ''}`;
  }
}

const url = () => `ws://127.0.0.1:${server.port}/ws`;
const clients = [];
function newClient(label) { const c = new Client(label); clients.push(c); return c; }

const randName = (prefix) => `${prefix}_${crypto.randomBytes(5).toString('hex')}`;

// HELLO -> WELCOME
async function hello(c) {
  const w = await c.request((req) => enc.hello(req, 'node-protocol-test', c.version), MSG.WELCOME, 'HELLO');
  assert.equal(w.version, c.version, 'WELCOME.version: the version asked for');
  assert.ok(w.maxMessage >= 4096, `WELCOME.max_message ${w.maxMessage}`);
  assert.ok(w.tickHz > 0 && w.poseHz > 0, 'WELCOME tick_hz/pose_hz');
  c.welcome = w;
  return w;
}

// HELLO, REGISTER, LOGIN, JOIN and the first complete snapshot.
async function enterWorld(c, name, password) {
  await c.connect(url(), c.label === 'A' ? ['otherworld.v1'] : undefined);
  await hello(c);
  await c.request((req) => enc.register(req, name, password), MSG.OK, 'REGISTER');
  const s = await c.request((req) => enc.login(req, name, password), MSG.SESSION, 'LOGIN');
  assert.equal(s.token.length, 32);
  assert.ok(s.account > 0n, 'SESSION.account');
  assert.ok(s.avatar > 0n, 'SESSION.avatar');
  assert.equal(s.resumed, 0, 'SESSION.resumed after LOGIN');
  assert.equal(s.role, P.ROLE.PLAYER, 'a new account is a player');
  assert.ok(s.expiresInS > 0, 'SESSION.expires_in_s');
  c.session = s;
  c.account = s.account;
  c.avatar = s.avatar;
  c.seq = s.lastSeq;
  await join(c);
  return s;
}

async function join(c) {
  const j = await c.request((req) => enc.join(req), MSG.JOINED, 'JOIN');
  assert.ok(j.regionSize > 0 && j.interestRadius > 0, 'JOINED sizes');
  c.world = j;
  const iJoined = c.all.indexOf(j);
  const firstSnap = c.all.findIndex((m) => m.type === MSG.SNAPSHOT);
  assert.ok(firstSnap < 0 || firstSnap > iJoined, 'SNAPSHOTs come after JOINED');
  // the first complete snapshot after JOINED must contain our avatar
  await c.until(() => (c.snap.current.has(c.avatar) ? true : undefined), `${c.label}: own avatar in a snapshot`);
  return j;
}

function distM(a, b) { // mm positions -> metres
  return Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]) / 1000;
}

async function act(c, fields, what) {
  c.seq += 1n;
  const seq = c.seq;
  const a = await c.request((req) => enc.action({ req, seq, ...fields }), MSG.APPLIED, what);
  assert.equal(a.seq, seq, `${what}: APPLIED.seq echoes the seq`);
  return a;
}

function durableFor(c, seq, what) {
  return c.until(() => c.all.find((m) => m.type === MSG.DURABLE && m.seqs.includes(seq)), `${what}: DURABLE listing seq ${seq}`);
}

// ---------------------------------------------------------------------------------------------
// Issue 18: the answers docs/protocol.md gives, read from the page itself

const DOC = fs.readFileSync(path.join(__dirname, '..', '..', 'docs', 'protocol.md'), 'utf8');
const docSection = (title) => {
  const i = DOC.indexOf(`\n## ${title}\n`);
  assert.ok(i >= 0, `docs/protocol.md has a section "${title}"`);
  const j = DOC.indexOf('\n## ', i + 1);
  return DOC.slice(i, j < 0 ? DOC.length : j);
};

// The page's table of error codes: name (without OW_E_) -> number.
function pageCodes() {
  const out = {};
  for (const m of docSection('Error codes').matchAll(/^\| (-\d+) \| `OW_E_([A-Z_]+)` \|/gm)) out[m[2]] = Number(m[1]);
  return out;
}
const D = pageCodes();

// The page's interest area: the cells within r = ceil(interest_radius / region_size) of the cell
// of the avatar, cell = floor(coordinate / region_size) on x and z.
const cellOf = (w, x, z) => [Math.floor(x / w.regionSize), Math.floor(z / w.regionSize)];
function inArea(w, centre, x, z) {
  const r = Math.ceil(w.interestRadius / w.regionSize);
  const c = cellOf(w, x, z);
  return Math.abs(c[0] - centre[0]) <= r && Math.abs(c[1] - centre[1]) <= r;
}

// The page's rule for a player's inventory: the entities whose parent is the avatar and whose type
// has kind container.
function inventoriesOf(c, table, avatar) {
  const kinds = new Map(c.world.types.map((t) => [t.id, t.kind]));
  return [...table.values()].filter((e) => e.parent === avatar && kinds.get(e.type) === KIND.CONTAINER);
}

// A fresh account's first login: REGISTER, then LOGIN and JOIN in one WebSocket message (the
// case in which the avatar and inventory are not durable yet when JOINED is sent). Returns the
// first complete snapshot.
async function enterPipelined(c, name, password) {
  await c.connect(url());
  await hello(c);
  await c.request((req) => enc.register(req, name, password), MSG.OK, 'REGISTER');
  const rl = c.nextReq++, rj = c.nextReq++;
  c.send(Buffer.concat([enc.login(rl, name, password), enc.join(rj)]));
  const s = await c.take((m) => m.req === rl && (m.type === MSG.SESSION || m.type === MSG.ERROR), 'SESSION');
  assert.equal(s.type, MSG.SESSION, describeMsg(s));
  const j = await c.take((m) => m.req === rj && (m.type === MSG.JOINED || m.type === MSG.ERROR), 'JOINED');
  assert.equal(j.type, MSG.JOINED, describeMsg(j));
  Object.assign(c, { session: s, account: s.account, avatar: s.avatar, seq: s.lastSeq, world: j });
  return c.until(() => c.history[0], `${c.label}: first complete snapshot`);
}

// The first snapshot holds the avatar and exactly one inventory.
function assertHoldsSelf(c, snap, what) {
  assert.equal(snap.base, 0, `${what}: the first snapshot is a full state`);
  assert.ok(snap.table.has(c.avatar), `${what}: snapshot ${snap.id} (${snap.table.size} entities) lacks the avatar ${c.avatar}`);
  const inv = inventoriesOf(c, snap.table, c.avatar);
  assert.equal(inv.length, 1, `${what}: snapshot ${snap.id} holds ${inv.length} inventories of avatar ${c.avatar}`);
}

function httpStatus() {
  return withTimeout(new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: server.port, path: '/status' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => { try { resolve(JSON.parse(body)); } catch (e) { reject(e); } });
    }).on('error', reject);
  }), WAIT_MS, 'GET /status');
}

// ---------------------------------------------------------------------------------------------
// The test

const st = {}; // shared state between steps
let broken = null;

function step(name, fn) {
  it(name, { timeout: STEP_MS }, async (t) => {
    if (broken) { t.skip(`an earlier step failed (${broken})`); return; }
    try {
      await fn(t);
      note(`ok   ${name}`);
    } catch (e) {
      broken = name;
      note(`FAIL ${name}: ${e.message}`);
      throw e;
    }
  });
}

describe('otherworld protocol (client written from docs/protocol.md)', () => {
  before(async () => {
    await startServer();
    note(`server ${SERVER_BIN} listening on port ${server.port}, data_dir ${server.dataDir}`);
  });

  after(async () => {
    for (const c of clients) c.close();
    if (server.proc && server.exit === null) {
      killServer();
      await withTimeout(server.exitPromise, 5000, 'server exit after SIGKILL').catch(() => {});
    }
    for (const d of [...oldDataDirs, server.dataDir]) if (d) fs.rmSync(d, { recursive: true, force: true });
    console.log('\n--- otherworld node protocol test summary ---\n' + summary.join('\n'));
    if (broken) console.log(`\nlast server log lines:\n${server.tail(25)}`);
  });

  step('0. codec self-check (no server): packed quaternions, framing, strict decoding', async () => {
    let worst = 0;
    let seed = 12345;
    const rnd = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648 * 2 - 1; };
    for (let i = 0; i < 20000; i++) {
      const q = [rnd(), rnd(), rnd(), rnd()];
      const n = Math.hypot(...q);
      const u = q.map((v) => v / n);
      worst = Math.max(worst, P.quatAngleDeg(u, P.unpackQuat(P.packQuat(u))));
    }
    assert.ok(worst < 0.25, `packed quaternion error ${worst} degrees (doc: under 0.25)`);
    assert.equal(P.packQuat([0, 0, 0, 1]), 0xc0000000, 'identity packs to index 3, zeros');
    // two server messages in one WebSocket message, and strictness
    const ok = P.frame(MSG.OK, new P.Writer().u32(7).build());
    const pong = P.frame(MSG.PONG, new P.Writer().u32(8).u64(1n).u64(2n).build());
    const both = P.decodeServer(Buffer.concat([ok, pong]));
    assert.deepEqual(both.map((m) => m.name), ['OK', 'PONG']);
    assert.throws(() => P.decodeServer(Buffer.concat([ok, Buffer.from([0x82])])), /truncated header/);
    assert.throws(() => P.decodeServer(P.frame(MSG.OK, Buffer.alloc(5))), /expected 4/);
    assert.throws(() => P.decodeServer(P.frame(0x8f, Buffer.alloc(0))), /unknown/);
    assert.equal(enc.action({ seq: 1n, action: ACT.MOVE }).length, 3 + 75);
    const pose = { root: [1, -2, 3], rootRot: [0, 0, 0, 1], head: { pos: [4, 5, 6], rot: [0, 1, 0, 0] } };
    const r = new P.Reader(enc.pose(pose).subarray(3), 'POSE');
    const back = P.readPose(r);
    r.end();
    assert.deepEqual(back.root, [1, -2, 3]);
    assert.deepEqual(back.head.pos, [4, 5, 6]);
    // Compact poses (version 2): relative to base cell (-1, 0) of 256 m cells; 200 cells away or
    // above 32.767 m the root is wide (exact); bones in 4 mm, clamped at 2.044 m.
    const two = (p, bx, bz) => {
      const w2 = new P.Writer();
      P.writePose2(w2, p, 256, bx, bz);
      const r2 = new P.Reader(w2.build(), 'POSE2');
      const o = P.readPose2(r2, 256, bx, bz);
      r2.end();
      return o;
    };
    const c2 = two({ root: [-1000, 1500, 255999], head: { pos: [5, -3, 3000], rot: [0, 0, 0, 1] } }, -1, 0);
    assert.ok(Math.abs(c2.root[0] + 1000) <= 2 && c2.root[1] === 1500 && Math.abs(c2.root[2] - 255999) <= 2, `compact root ${c2.root}`);
    assert.deepEqual(c2.head.pos, [4, -4, 2044]);
    const w2 = two({ root: [200 * 256000, 40000, 7], rootRot: [0, 0, 0, 1] }, 0, 0);
    assert.deepEqual(w2.root, [200 * 256000, 40000, 7]);
    note(`     packed quaternion worst error over 20000 random rotations: ${worst.toFixed(3)} degrees`);
  });

  step('1. client A: HELLO, REGISTER, LOGIN, JOIN, snapshots show the seed world', async () => {
    const A = newClient('A');
    st.A = A;
    st.passA = 'correct-horse-' + crypto.randomBytes(4).toString('hex');
    st.nameA = randName('nodeA');
    await enterWorld(A, st.nameA, st.passA);
    const w = A.world;
    // type/recipe/key tables
    const kindOf = (name) => (w.types.find((t) => t.name === name) || {}).kind;
    assert.equal(kindOf('marker3d'), KIND.MARKER, 'marker3d is a marker');
    assert.equal(kindOf('quad_plane'), KIND.PLANE, 'quad_plane is a plane');
    assert.equal(kindOf('tree'), KIND.RESOURCE, 'tree is a resource');
    assert.equal(kindOf('wall'), KIND.STRUCTURE, 'wall is a structure');
    assert.equal(kindOf('avatar'), KIND.AVATAR, 'avatar is an avatar');
    assert.ok(w.recipes.some((r) => r.name === 'planks'), 'recipe planks');
    assert.ok(new Set(w.types.map((t) => t.id)).size === w.types.length, 'type ids unique');

    // the world as the snapshots describe it
    const table = A.snap.current;
    const ents = [...table.values()];
    const ofType = (n) => ents.filter((e) => e.type === A.typeId(n));
    const marker = ofType('marker3d').find((e) => e.parent === 0n && e.pos[0] === 0 && e.pos[1] === 0 && e.pos[2] === 1000);
    assert.ok(marker, `a marker3d at (0,0,1000) mm; markers: ${JSON.stringify(ofType('marker3d').map((e) => e.pos))}`);
    assert.ok(ofType('quad_plane').length >= 1, 'a quad_plane');
    for (const e of ents) {
      for (const p of e.props) assert.ok(p.key < w.keys.length, `entity ${e.id}: property key ${p.key} beyond the ${w.keys.length} keys`);
    }
    const labels = marker.props.map((p) => `${w.keys[p.key]}=${p.value}`);
    const av = table.get(A.avatar);
    assert.equal(av.type, A.typeId('avatar'), 'the session avatar has the avatar type');
    assert.equal(av.owner, A.account, 'the avatar is owned by the account');
    assert.ok(distM(av.pos, [0, 0, 2000]) < 0.01, `avatar at the spawn (0,0,2) m, got ${av.pos} mm`);
    const trees = ofType('tree').map((e) => ({ e, d: distM(e.pos, av.pos) })).sort((x, y) => x.d - y.d);
    assert.ok(trees.length > 0, 'trees in the area of interest');
    assert.ok(trees[0].d <= 8, `nearest tree ${trees[0].d.toFixed(2)} m away (reach 8 m)`);
    st.tree = trees[0].e;
    assert.ok(A.acks.length >= 1, 'client ACKed its snapshot');
    const full = A.history.filter((h) => h.base === 0).length;
    note(`     A: account ${A.account}, avatar ${A.avatar}, ${w.types.length} types, ${w.recipes.length} recipes, ` +
      `${w.keys.length} keys; ${table.size} entities visible (${trees.length} trees); marker props [${labels}]; ` +
      `${A.history.length} snapshot(s) so far (${full} full); nearest tree ${st.tree.id} at ${st.tree.pos} mm (${trees[0].d.toFixed(2)} m)`);
  });

  step('2. client B joins (before A acts) and sees A\'s avatar', async () => {
    const B = newClient('B');
    st.B = B;
    await enterWorld(B, randName('nodeB'), 'another-password-' + crypto.randomBytes(4).toString('hex'));
    assert.notEqual(B.account, st.A.account);
    assert.notEqual(B.avatar, st.A.avatar);
    await B.until(() => (B.snap.current.has(st.A.avatar) ? true : undefined), "B: A's avatar in B's snapshots");
    // V1 speaks protocol version 1: the server serves it as before (POSES with avatar ids).
    const V1 = newClient('V1');
    V1.version = 1;
    st.V1 = V1;
    await enterWorld(V1, randName('nodeV1'), 'version-one-' + crypto.randomBytes(4).toString('hex'));
    // two protocol messages in one WebSocket message
    const r1 = B.nextReq++, r2 = B.nextReq++;
    B.send(Buffer.concat([enc.ping(r1, 111n), enc.ping(r2, 222n)]));
    const p1 = await B.take((m) => m.type === MSG.PONG && m.req === r1, 'PONG 1 of a batched pair');
    const p2 = await B.take((m) => m.type === MSG.PONG && m.req === r2, 'PONG 2 of a batched pair');
    assert.equal(p1.clientTime, 111n);
    assert.equal(p2.clientTime, 222n);
    assert.ok(B.all.indexOf(p1) < B.all.indexOf(p2), 'replies in request order');
    note(`     B: account ${B.account}, avatar ${B.avatar}; two PINGs in one WebSocket message -> two PONGs; ` +
      `subprotocol selected for A (requested otherworld.v1): "${st.A.ws.protocol}", for B (none requested): "${B.ws.protocol}"`);
  });

  step('3. A: harvest, craft planks, build a wall (APPLIED 0, then DURABLE); replay; unknown entity', async () => {
    const { A } = st;
    const typeWall = A.typeId('wall');
    const planks = A.world.recipes.find((r) => r.name === 'planks').id;

    // harvest the nearest tree
    const h = await act(A, { action: ACT.HARVEST, target: st.tree.id }, 'harvest');
    assert.equal(h.code, 0, `harvest code ${errName(h.code)}`);
    assert.equal(h.replayed, 0);
    assert.ok(h.count > 0, 'harvest yields units');
    assert.ok(h.entity > 0n, 'harvest names the receiving stack');
    const hd = await durableFor(A, h.seq, 'harvest');
    assert.equal(hd.status, 0, 'DURABLE.status');
    assert.ok(hd.frame >= h.frame, `DURABLE frame ${hd.frame} >= APPLIED frame ${h.frame}`);
    st.harvest = h;

    // harvest until there are at least 2 wood (one harvest should do it)
    let wood = h.count;
    while (wood < 2) {
      const more = await act(A, { action: ACT.HARVEST, target: st.tree.id }, 'harvest again');
      assert.equal(more.code, 0);
      wood += more.count;
    }

    // craft planks until 4 (the wall's cost in the default content) are there
    const c = await act(A, { action: ACT.CRAFT, kind: planks }, 'craft planks');
    assert.equal(c.code, 0, `craft code ${errName(c.code)}`);
    assert.ok(c.count > 0, 'craft yields units');
    const cd = await durableFor(A, c.seq, 'craft');
    assert.equal(cd.status, 0);

    // build a wall 2 m away from the avatar
    const av = A.snap.current.get(A.avatar);
    const pos = [av.pos[0] / 1000 + 2, av.pos[1] / 1000, av.pos[2] / 1000 + 2];
    const yaw = [0, Math.sin(Math.PI / 8), 0, Math.cos(Math.PI / 8)]; // 45 degrees about Y
    const b = await act(A, { action: ACT.BUILD, kind: typeWall, pos, rot: yaw, scale: [1, 1, 1] }, 'build wall');
    st.buildSentAt = performance.now();
    assert.equal(b.code, 0, `build code ${errName(b.code)}`);
    assert.equal(b.count, 1, 'build count');
    assert.ok(b.entity > 0n, 'build returns the new id');
    const bd = await durableFor(A, b.seq, 'build');
    st.buildDurableAt = bd.at;
    assert.equal(bd.status, 0);
    assert.ok(bd.frame >= b.frame);
    st.build = b;
    st.buildDurable = bd;
    st.wallPos = pos;
    st.wallRot = yaw;

    // replay the harvest: the original result, nothing changes again
    const r = await A.request((req) => enc.action({ req, seq: h.seq, action: ACT.HARVEST, target: st.tree.id }),
      MSG.APPLIED, 'replayed harvest');
    assert.equal(r.replayed, 1, 'APPLIED.replayed for an old seq');
    assert.equal(r.seq, h.seq);
    assert.equal(r.code, h.code);
    assert.equal(r.entity, h.entity);
    assert.equal(r.count, h.count);
    assert.equal(r.frame, h.frame, 'a replay reports the original frame');

    // unknown entity
    const u = await act(A, { action: ACT.HARVEST, target: 0x7fffffff00000001n }, 'harvest unknown entity');
    assert.equal(u.code, E.NOT_FOUND, `unknown entity: ${errName(u.code)}`);
    assert.equal(u.entity, 0x7fffffff00000001n, 'on failure entity = target');
    assert.equal(u.count, 0);
    st.lastSeqSent = A.seq;
    st.unknown = u;

    // A sees its own wall (it may take a snapshot)
    await A.until(() => (A.snap.current.has(b.entity) ? true : undefined), 'A: own wall in a snapshot');
    note(`     harvest seq ${h.seq}: ${h.count} units -> stack ${h.entity}, frame ${h.frame}, durable in frame ${hd.frame}; ` +
      `craft seq ${c.seq}: ${c.count} units; build seq ${b.seq}: wall ${b.entity} in frame ${b.frame}; replay ok; unknown entity -> ${errName(u.code)}`);
  });

  step('4a. B sees the wall only through durable snapshots (confirmed reads)', async () => {
    const { B, build, buildDurable } = st;
    const wallId = build.entity;
    const snap = await B.until(() => B.history.find((h) => h.table.has(wallId)), 'B: the wall in a snapshot');
    const wall = snap.table.get(wallId);
    assert.equal(wall.type, B.typeId('wall'));
    assert.equal(wall.owner, st.A.account, 'wall owner is A');
    assert.equal(wall.parent, 0n);
    const want = st.wallPos.map((v) => Math.round(v * 1000));
    assert.ok(distM(wall.pos, want) < 0.002, `wall at ${wall.pos} mm, expected ${want}`);
    assert.ok(P.quatAngleDeg(wall.rot, st.wallRot) < 0.5, `wall rotation ${wall.rot} vs ${st.wallRot}`);
    assert.deepEqual(wall.scale, [1, 1, 1]);
    assert.ok(snap.frame >= build.frame,
      `B's first snapshot with the wall reflects durable frame ${snap.frame}, but the wall was built in frame ${build.frame}`);
    const earlier = B.history.filter((h) => h.frame < build.frame && h.table.has(wallId));
    assert.equal(earlier.length, 0, 'no snapshot older than the build frame shows the wall');
    // the harvested tree lost hp (or vanished) for B too, once durable
    const tree = B.snap.current.get(st.tree.id);
    assert.ok(!tree || tree.hp < st.tree.hp, `tree hp ${tree && tree.hp} after harvest (was ${st.tree.hp})`);
    const lag = (snap.at - buildDurable.at).toFixed(1);
    note(`     B saw wall ${wallId} in snapshot ${snap.id} (frame ${snap.frame} >= build frame ${build.frame}); ` +
      `${lag} ms after A's DURABLE; tree hp ${tree ? tree.hp : 'gone'}`);
  });

  step('4b. A streams POSEs (head + hands, ~30 Hz); B receives them in POSES', async () => {
    const { A, B } = st;
    const av = A.snap.current.get(A.avatar);
    const sent = [];
    const posesBefore = B.all.length, posesBeforeV1 = st.V1.all.length;
    for (let i = 0; i < 12; i++) {
      const ang = (i * Math.PI) / 36;
      const pose = {
        root: [av.pos[0] + 10 * i, av.pos[1], av.pos[2]],
        rootRot: [0, Math.sin(ang / 2), 0, Math.cos(ang / 2)],
        head: { pos: [0, 1650 + i, 20], rot: [0.0998, 0, 0, 0.995] },
        leftHand: { pos: [-300, 1200, 250 + i], rot: [0.1, 0.2, 0.3, 0.927] },
        rightHand: { pos: [300, 1180, 260], rot: [-0.5, 0.5, -0.5, 0.5] },
      };
      sent.push(pose);
      A.send(enc.pose(pose));
      await sleep(33);
    }
    // B speaks version 2: compact poses, the root's X and Z to region_size / 65536 (within 2 mm
    // at 256 m), its height and the rotations as sent, bones to 4 mm (within 2 mm). V1 gets
    // version 1 poses: every millimetre as sent.
    const check = async (R, from, slack, what) => {
      const near = (a, b) => Math.abs(a - b) <= slack;
      const match = (got) => sent.find((s) => near(s.root[0], got.root[0]) && s.root[1] === got.root[1] &&
        near(s.root[2], got.root[2]) && near(s.head.pos[1], got.head.pos[1]));
      const hit = await R.until(() => {
        for (let i = from; i < R.all.length; i++) {
          const m = R.all[i];
          if (m.type !== MSG.POSES) continue;
          const p = m.poses.find((x) => x.avatar === A.avatar);
          if (p && p.pose.head && match(p.pose)) return { m, p };
        }
        return undefined;
      }, `${R.label}: POSES containing A's avatar with a pose A sent (${what})`);
      const got = hit.p.pose;
      const want = match(got);
      assert.equal(got.mask, 0b111, 'pose mask: head, left hand, right hand');
      assert.equal(got.trackers.length, 0);
      for (const bone of ['head', 'leftHand', 'rightHand']) {
        got[bone].pos.forEach((v, k) => assert.ok(near(v, want[bone].pos[k]), `${R.label}: ${bone} position ${got[bone].pos} for ${want[bone].pos}`));
        const d = P.quatAngleDeg(got[bone].rot, want[bone].rot);
        assert.ok(d < 0.5, `${bone} rotation off by ${d.toFixed(3)} degrees`);
      }
      assert.ok(P.quatAngleDeg(got.rootRot, want.rootRot) < 0.5, 'root rotation');
      assert.ok(!hit.m.poses.some((x) => x.avatar === R.avatar), `${R.label}'s POSES do not include itself`);
      const count = R.all.slice(from).filter((m) => m.type === MSG.POSES).length;
      note(`     ${R.label} (${what}) got ${count} POSES message(s); matched pose root ${got.root} (tick ${hit.m.tick})`);
      return hit;
    };
    const hit = await check(B, posesBefore, 2, 'version 2');
    assert.equal(B.dec.version, 2);
    assert.ok(hit.m.baseX !== undefined, 'version 2 POSES carry a base cell');
    // Slots: every POSES after the first names A by its slot alone, and still decodes to A.
    const namedA = B.all.slice(posesBefore).filter((m) => m.type === MSG.POSES && m.poses.some((x) => x.avatar === A.avatar));
    assert.ok(namedA.length >= 2, `B got A's pose in ${namedA.length} POSES`);
    await check(st.V1, posesBeforeV1, 0, 'version 1');
    st.lastPose = sent[sent.length - 1];
  });

  step('4c. CHAT from B reaches A as an EVENT (kind 1)', async () => {
    const { A, B } = st;
    const text = `hello from B ${crypto.randomBytes(3).toString('hex')} ✓`;
    const req = B.nextReq++;
    B.send(enc.chat(req, text));
    const ev = await A.take((m) => m.type === MSG.EVENT && m.text === text, 'A: chat EVENT');
    assert.equal(ev.kind, P.EVENT_KIND.CHAT);
    assert.equal(ev.fromAccount, B.account);
    // the doc does not say whether CHAT is answered; record what happened
    await sleep(200);
    const reply = B.all.find((m) => m.req === req && (m.type === MSG.OK || m.type === MSG.ERROR));
    note(`     chat delivered; CHAT reply to the sender: ${reply ? describeMsg(reply) : 'none'}`);
  });

  step('5. RESUME on a new connection takes over A\'s session (old one gets SERVER_BYE 3)', async () => {
    const { A } = st;
    const A2 = newClient('A2');
    st.A2 = A2;
    await A2.connect(url());
    await hello(A2);
    const s = await A2.request((req) => enc.resume(req, A.session.token), MSG.SESSION, 'RESUME');
    assert.equal(s.resumed, 1, 'SESSION.resumed');
    assert.equal(s.account, A.account, 'same account');
    assert.equal(s.avatar, A.avatar, 'same avatar');
    assert.ok(s.lastSeq >= st.build.seq && s.lastSeq <= st.lastSeqSent,
      `SESSION.last_seq ${s.lastSeq} should be the last applied seq (build ${st.build.seq}, last sent ${st.lastSeqSent})`);
    const bye = await A.take((m) => m.type === MSG.SERVER_BYE, 'A: SERVER_BYE after takeover');
    assert.equal(bye.reason, BYE.TAKEN_OVER, `SERVER_BYE reason ${bye.reason} "${bye.text}"`);
    await A.waitClosed();
    const last = A.all[A.all.length - 1];
    assert.equal(last.type, MSG.SERVER_BYE, 'SERVER_BYE is the last message on the old connection');
    A2.session = s;
    A2.account = s.account;
    A2.avatar = s.avatar;
    A2.seq = s.lastSeq;
    await join(A2);
    // the session continues: exactly-once across the reconnect, and new actions work
    const r = await A2.request((req) => enc.action({ req, seq: st.build.seq, action: ACT.BUILD, kind: A2.typeId('wall'),
      pos: st.wallPos, rot: st.wallRot }), MSG.APPLIED, 'resent build after resume');
    assert.equal(r.replayed, 1, 'resent build is a replay');
    assert.equal(r.entity, st.build.entity, 'replay returns the original wall id');
    const h = await act(A2, { action: ACT.HARVEST, target: st.tree.id }, 'harvest after resume');
    assert.equal(h.code, 0, `harvest after resume: ${errName(h.code)}`);
    await durableFor(A2, h.seq, 'harvest after resume');
    const failedDurable = A.all.some((m) => m.type === MSG.DURABLE && m.seqs.includes(st.unknown.seq));
    note(`     failed action seq ${st.unknown.seq} (frame ${st.unknown.frame}) listed in a DURABLE before the takeover: ${failedDurable}; ` +
      `old connection close code ${A.closeCode}`);
    note(`     resumed: last_seq ${s.lastSeq} (last sent ${st.lastSeqSent}); old connection BYE ${bye.reason} "${bye.text}"; ` +
      `replayed build -> wall ${r.entity}; new harvest seq ${h.seq} durable`);
  });

  const badInputs = [
    { name: 'text WebSocket message', send: (c) => c.ws.send('HELLO?', { binary: false }), code: E.PROTO },
    { name: 'unknown message type 0x42', send: (c) => c.send(Buffer.from([0x42, 0, 0])), code: E.PROTO },
    { name: 'truncated message (PING header says 12 bytes, 4 follow)',
      send: (c) => c.send(enc.ping(7, 1n).subarray(0, 3 + 4)), code: E.PROTO },
    { name: 'short fixed-size body (PING with a 4-byte body)',
      send: (c) => c.send(P.frame(MSG.PING, Buffer.from([1, 0, 0, 0]))), code: E.PROTO },
    { name: 'valid PING followed by 2 stray bytes',
      send: (c) => c.send(Buffer.concat([enc.ping(8, 2n), Buffer.from([0x0c, 0x00])])), code: E.PROTO },
    { name: 'oversized message (5000 bytes)',
      send: (c) => c.send(P.frame(MSG.CHAT, Buffer.alloc(4997, 0x41))), code: E.TOO_LARGE },
  ];

  for (const bad of badInputs) {
    step(`6. bad input: ${bad.name} -> ERROR ${bad.code}, SERVER_BYE 4, close; others unaffected`, async () => {
      const c = newClient(`bad(${bad.name})`);
      await c.connect(url());
      await hello(c);
      bad.send(c);
      const err = await c.take((m) => m.type === MSG.ERROR, 'ERROR');
      assert.equal(err.code, bad.code, `ERROR code ${errName(err.code)} "${err.text}"`);
      const bye = await c.take((m) => m.type === MSG.SERVER_BYE, 'SERVER_BYE');
      assert.equal(bye.reason, BYE.PROTOCOL, `SERVER_BYE reason ${bye.reason}`);
      const iErr = c.all.indexOf(err), iBye = c.all.indexOf(bye);
      assert.ok(iErr < iBye, 'ERROR comes before SERVER_BYE');
      assert.equal(iBye, c.all.length - 1, 'SERVER_BYE is the last message');
      await c.waitClosed();
      const pongs = c.all.filter((m) => m.type === MSG.PONG).length;
      // the other players keep working
      for (const other of [st.B, st.A2]) {
        const t = BigInt(Date.now());
        const pong = await other.request((req) => enc.ping(req, t), MSG.PONG, `${other.label}: PING`);
        assert.equal(pong.clientTime, t, 'PONG echoes client_time');
      }
      note(`     ${bad.name}: ERROR ${errName(err.code)} "${err.text}" (req ${err.req}), BYE ${bye.reason} "${bye.text}", close code ${c.closeCode}${pongs ? `, ${pongs} PONG(s) before it` : ''}`);
    });
  }

  step('6b. a message in the wrong state gets ERROR OW_E_STATE and the connection stays open', async () => {
    const c = newClient('state');
    await c.connect(url());
    await hello(c);
    const r = await c.requestAny((req) => enc.join(req), MSG.JOINED, 'JOIN before LOGIN');
    assert.equal(r.type, MSG.ERROR);
    assert.equal(r.code, E.STATE, `JOIN before LOGIN: ${errName(r.code)}`);
    const t = 42n;
    const pong = await c.request((req) => enc.ping(req, t), MSG.PONG, 'PING after OW_E_STATE');
    assert.equal(pong.clientTime, t);
    const bad = await c.requestAny((req) => enc.login(req, st.nameA, 'wrong-password'), MSG.SESSION, 'LOGIN wrong password');
    assert.equal(bad.type, MSG.ERROR);
    assert.equal(bad.code, E.AUTH, `wrong password: ${errName(bad.code)}`);
    c.close();
  });

  // Issue 18: one check per answer the page gives, each named by the item.

  step('18.0 clients C and D: a first LOGIN and JOIN sent in one WebSocket message', async () => {
    st.C = newClient('C');
    st.D = newClient('D');
    st.firstC = await enterPipelined(st.C, randName('nodeC'), 'password-C-' + crypto.randomBytes(4).toString('hex'));
    st.firstD = await enterPipelined(st.D, randName('nodeD'), 'password-D-' + crypto.randomBytes(4).toString('hex'));
  });

  step('18.1 error codes: the page lists every code of error.h, and the server sends those numbers', async () => {
    const header = fs.readFileSync(path.join(__dirname, '..', '..', 'include', 'otherworld', 'error.h'), 'utf8');
    const want = {};
    for (const m of header.matchAll(/X\((\w+), (-\d+),/g)) want[m[1]] = Number(m[2]);
    assert.ok(Object.keys(want).length >= 44, 'error.h parsed');
    assert.deepEqual(D, want, 'the page\'s table of error codes is error.h\'s, none missing');

    const v = newClient('18.1 version');
    await v.connect(url());
    v.send(enc.hello(1, 'node-protocol-test', 3));
    const ev = await v.take((m) => m.type === MSG.ERROR, 'ERROR for HELLO version 3');
    assert.equal(ev.code, D.VERSION, `HELLO version 3: ${errName(ev.code)}`);
    const bye = await v.take((m) => m.type === MSG.SERVER_BYE, 'SERVER_BYE after a bad version');
    assert.equal(bye.reason, BYE.PROTOCOL);

    const { C } = st;
    const zero = await C.requestAny((req) => enc.action({ req, seq: 0n, action: ACT.HARVEST, target: 1n }), MSG.APPLIED, 'ACTION seq 0');
    assert.equal(zero.type, MSG.ERROR, describeMsg(zero));
    assert.equal(zero.code, D.INVAL, `seq 0: ${errName(zero.code)}`);
    C.seq = 4n; // 5 next: a gap, so 3 is skipped
    const nf = await act(C, { action: ACT.HARVEST, target: 0x7fffffff00000002n }, 'harvest unknown entity');
    assert.equal(nf.code, D.NOT_FOUND, `unknown entity: ${errName(nf.code)}`);
    // ACTION of a type that is not built-in: the type, then its own argument bytes (the body's
    // length delimits them). The server has no row for 200: applied as refused, not a protocol error.
    const own = await act(C, { action: 200, args: Buffer.from('five!') }, 'ACTION type 200 with 5 argument bytes');
    assert.equal(own.code, D.UNKNOWN_ACTION, `type without a row: ${errName(own.code)}`);
    const old = await C.requestAny((req) => enc.action({ req, seq: 3n, action: ACT.HARVEST, target: 1n }), MSG.APPLIED, 'ACTION skipped seq 3');
    assert.equal(old.type, MSG.ERROR, describeMsg(old));
    assert.equal(old.code, D.SEQ_TOO_OLD, `skipped seq: ${errName(old.code)}`);
    const again = await C.requestAny((req) => enc.join(req), MSG.JOINED, 'JOIN twice');
    assert.equal(again.code, D.STATE, `JOIN twice: ${errName(again.code)}`);

    const g = newClient('18.1 greeted');
    await g.connect(url());
    await hello(g);
    const codeOf = async (make, what) => (await g.requestAny(make, MSG.OK, what)).code;
    assert.equal(await codeOf((req) => enc.register(req, 'ab', 'long-enough-password'), 'REGISTER short name'), D.BAD_NAME);
    assert.equal(await codeOf((req) => enc.resume(req, crypto.randomBytes(32)), 'RESUME forged token'), D.TOKEN);
    assert.equal(await codeOf((req) => enc.login(req, st.nameA, 'not-the-password'), 'LOGIN wrong password'), D.AUTH);
    assert.equal(await codeOf((req) => enc.register(req, st.nameA, 'long-enough-password'), 'REGISTER taken name'), D.NAME_TAKEN);
    g.close();
    note(`     the page lists ${Object.keys(D).length} codes; the server sent VERSION ${ev.code}, INVAL ${zero.code}, ` +
      `NOT_FOUND ${nf.code}, SEQ_TOO_OLD ${old.code}, STATE ${again.code}, BAD_NAME, TOKEN, AUTH, NAME_TAKEN as listed`);
  });

  step('18.3 the first SNAPSHOT after JOIN holds the player\'s own avatar and inventory', async () => {
    assertHoldsSelf(st.C, st.firstC, 'C, first login');
    assertHoldsSelf(st.D, st.firstD, 'D, first login');
    // more first logins: the race the fix closed was hit in most of them
    for (let i = 0; i < 3; i++) {
      const e = newClient(`E${i}`);
      const first = await enterPipelined(e, randName(`nodeE${i}`), 'password-E-' + crypto.randomBytes(4).toString('hex'));
      assertHoldsSelf(e, first, `E${i}, first login`);
      e.close();
    }
    // and after LEAVE and JOIN again
    const { C } = st;
    await C.request((req) => enc.leave(req), MSG.OK, 'LEAVE');
    const mark = C.history.length;
    const j = await C.request((req) => enc.join(req), MSG.JOINED, 'JOIN again');
    const iJ = C.all.indexOf(j);
    const snap = await C.until(() => C.history[mark], 'C: first complete snapshot after the second JOIN');
    assert.ok(C.all.findIndex((m, k) => k > iJ && m.type === MSG.SNAPSHOT && m.id === snap.id) > iJ, 'after JOINED');
    assertHoldsSelf(C, snap, 'C, JOIN after LEAVE');
  });

  step('18.4 a client finds its inventory: the avatar\'s one child of kind container; harvest fills it', async () => {
    const { C } = st;
    const inv = inventoriesOf(C, C.snap.current, C.avatar);
    assert.equal(inv.length, 1, 'one inventory');
    assert.equal(inv[0].owner, C.account, 'owned by the account');
    assert.equal(C.typeName(inv[0].type), 'inventory', 'type inventory in the default content');
    const av = C.snap.current.get(C.avatar);
    const trees = [...C.snap.current.values()].filter((e) => e.type === C.typeId('tree') && e.hp > 0)
      .map((e) => ({ e, d: distM(e.pos, av.pos) })).sort((x, y) => x.d - y.d);
    assert.ok(trees.length && trees[0].d <= 8, 'a tree within reach');
    const h = await act(C, { action: ACT.HARVEST, target: trees[0].e.id }, 'C: harvest');
    assert.equal(h.code, 0, `harvest: ${errName(h.code)}`);
    const stack = await C.until(() => C.snap.current.get(h.entity), 'C: the harvested stack in a snapshot');
    assert.equal(stack.parent, inv[0].id, 'the harvested stack is in the inventory found by the page\'s rule');
    st.invC = inv[0];
    st.stackC = h.entity;
    note(`     C: avatar ${C.avatar}, inventory ${inv[0].id}; harvest put ${h.count} units in stack ${h.entity}`);
  });

  step('18.5 another player\'s avatar, inventory and item stacks are replicated', async () => {
    const { C, D: d } = st;
    const stack = await d.until(() => d.snap.current.get(st.stackC), "D: C's item stack in a snapshot");
    const t = d.snap.current;
    assert.ok(t.has(C.avatar), "D holds C's avatar");
    const inv = inventoriesOf(d, t, C.avatar);
    assert.equal(inv.length, 1, "D holds C's inventory");
    assert.equal(inv[0].id, st.invC.id);
    assert.equal(inv[0].owner, C.account);
    assert.equal(stack.parent, inv[0].id, "the stack's parent is C's inventory");
    assert.equal(stack.owner, C.account, 'items carry the owner of their container');
    assert.ok(stack.count > 0, 'with its count');
  });

  step('18.2 interest cells: floor(x / region_size), r = ceil(interest_radius / region_size), the page\'s example', async () => {
    const { C, D: d } = st;
    const w = C.world;
    assert.equal(w.regionSize, 256);
    assert.equal(w.interestRadius, 128);
    const ex = /an avatar at x = (-?[\d.]+), z = (-?[\d.]+) is in cell/.exec(docSection('Replication'));
    assert.ok(ex, 'the page has a worked example');
    const at = [Number(ex[1]), Number(ex[2])];
    const rows = [...docSection('Replication').matchAll(/^\| \((-?[\d.]+), (-?[\d.]+)\) \| \((-?\d+), (-?\d+)\) \| (yes|no)/gm)]
      .map((m) => ({ x: Number(m[1]), z: Number(m[2]), cell: [Number(m[3]), Number(m[4])], seen: m[5] === 'yes' }));
    assert.ok(rows.length >= 4 && rows.some((r) => r.seen) && rows.some((r) => !r.seen), 'the example table');
    const centre = cellOf(w, at[0], at[1]);
    assert.deepEqual(centre, [-1, -1], 'the example avatar\'s cell');
    const mv = await act(C, { action: ACT.MOVE, target: C.avatar, pos: [at[0], 0, at[1]] }, 'C: move to the example');
    assert.equal(mv.code, 0, errName(mv.code));
    const seenAt = (x, z) => { const e = C.snap.current.get(d.avatar); return e && e.pos[0] === Math.round(x * 1000) && e.pos[2] === Math.round(z * 1000); };
    let prev = null;
    for (const r of rows) {
      assert.deepEqual(cellOf(w, r.x, r.z), r.cell, `the page's cell of (${r.x}, ${r.z})`);
      assert.equal(inArea(w, centre, r.x, r.z), r.seen, `the page's formula and its table agree on (${r.x}, ${r.z})`);
      // a removal only shows after a snapshot that held D: each "no" follows a "yes"
      assert.ok(r.seen || prev === true, 'rows alternate so that each removal is observable');
      const m = await act(d, { action: ACT.MOVE, target: d.avatar, pos: [r.x, 0, r.z] }, `D: move to (${r.x}, ${r.z})`);
      assert.equal(m.code, 0, errName(m.code));
      await durableFor(d, m.seq, 'D: move');
      if (r.seen) await C.until(() => (seenAt(r.x, r.z) ? true : undefined), `C sees D at (${r.x}, ${r.z}), cell ${r.cell}`);
      else await C.until(() => (C.snap.current.has(d.avatar) ? undefined : true), `D at (${r.x}, ${r.z}), cell ${r.cell}, leaves C's snapshots`);
      prev = r.seen;
    }
    // back to the spawn
    for (const c of [C, d]) {
      const b = await act(c, { action: ACT.MOVE, target: c.avatar, pos: [0, 0, 2] }, `${c.label}: back to the spawn`);
      assert.equal(b.code, 0);
    }
    note(`     C in cell ${centre}: D seen or not at ${rows.map((r) => `(${r.x}, ${r.z}) ${r.seen ? 'yes' : 'no'}`).join(', ')}, as the page says`);
  });

  step('18.6 a server-to-client type and a POSE with ntrackers 9: ERROR OW_E_PROTO, SERVER_BYE 4, close', async () => {
    const cases = [
      { name: 'OK (0x82) sent by the client', msg: P.frame(MSG.OK, new P.Writer().u32(77).build()), req: 77 },
      { name: 'SERVER_BYE (0x8c) sent by the client', msg: P.frame(MSG.SERVER_BYE, new P.Writer().u16(1).str16('').build()), req: 0 },
      { name: 'POSE with ntrackers 9', req: 0, msg: (() => {
        const w = new P.Writer().u8(0).u8(9).i32(0).i32(0).i32(0).u32(0xc0000000);
        for (let i = 0; i < 9; i++) w.i16(0).i16(0).i16(0).u32(0xc0000000);
        return P.frame(MSG.POSE, w.build());
      })() },
    ];
    for (const k of cases) {
      const c = newClient(`18.6 ${k.name}`);
      await c.connect(url());
      await hello(c);
      c.send(k.msg);
      const err = await c.take((m) => m.type === MSG.ERROR, `${k.name}: ERROR`);
      assert.equal(err.code, D.PROTO, `${k.name}: ${errName(err.code)} "${err.text}"`);
      assert.equal(err.req, k.req, `${k.name}: ERROR.req`);
      const bye = await c.take((m) => m.type === MSG.SERVER_BYE, `${k.name}: SERVER_BYE`);
      assert.equal(bye.reason, 4, `${k.name}: SERVER_BYE reason`);
      await c.waitClosed();
      note(`     ${k.name}: ERROR ${err.code} (req ${err.req}) "${err.text}", BYE ${bye.reason}`);
    }
  });

  step('7. SIGTERM: clients get EVENT (system, "restarting in ...") then SERVER_BYE 2; exit code 0', async () => {
    const live = [st.B, st.A2];
    const marks = live.map((c) => c.all.length);
    server.proc.kill('SIGTERM');
    for (const [i, c] of live.entries()) {
      const ev = await c.until(() => c.all.slice(marks[i]).find((m) => m.type === MSG.EVENT && m.kind === P.EVENT_KIND.SYSTEM),
        `${c.label}: system EVENT`, WAIT_MS, true);
      assert.equal(ev.fromAccount, 0n, 'system EVENT from account 0');
      assert.match(ev.text, /restart/i, `system EVENT text "${ev.text}"`);
      const bye = await c.until(() => c.all.slice(marks[i]).find((m) => m.type === MSG.SERVER_BYE),
        `${c.label}: SERVER_BYE`, WAIT_MS, true);
      assert.equal(bye.reason, BYE.SHUTDOWN, `SERVER_BYE reason ${bye.reason} "${bye.text}"`);
      assert.ok(c.all.indexOf(ev) < c.all.indexOf(bye), 'EVENT before SERVER_BYE');
      await c.waitClosed();
      if (i === 0) note(`     ${c.label}: EVENT "${ev.text}", then BYE ${bye.reason} "${bye.text}" ${(bye.at - ev.at).toFixed(0)} ms later; close code ${c.closeCode}`);
    }
    const ex = await withTimeout(server.exitPromise, WAIT_MS, 'server exit after SIGTERM');
    const ws = clients.reduce((a, c) => a + c.wsMessages, 0), multi = clients.reduce((a, c) => a + c.multi, 0);
    note(`     ${ws} WebSocket messages received in all, ${multi} carried several protocol messages`);
    assert.equal(ex.signal, null, `server killed by ${ex.signal}`);
    assert.equal(ex.code, 0, `server exit code ${ex.code}`);
    note(`     server exited with code 0; last log line: ${server.stderr[server.stderr.length - 1] || ''}`);
  });

  step('18.7 undelivered DURABLE confirmations come right after RESUME\'s SESSION, before JOINED', async () => {
    // Commits only at ticks, one a second: an action sent just after a tick is applied, its
    // connection closed, and the frame made durable a second later, with no connection holding
    // the session.
    await startServer(['--tick_hz', '1', '--eager_commit', '0']);
    const g = newClient('G');
    await enterWorld(g, randName('nodeG'), 'password-G-' + crypto.randomBytes(4).toString('hex'));
    const first = await act(g, { action: ACT.HARVEST, target: 0x7fffffff00000003n }, 'G: first action');
    await durableFor(g, first.seq, 'G: first action'); // a tick has just committed
    g.seq += 1n;
    const seq = g.seq, req = g.nextReq++;
    g.send(Buffer.concat([enc.action({ req, seq, action: ACT.HARVEST, target: 0x7fffffff00000003n }), enc.bye(BYE.NORMAL, 'leaving')]));
    const applied = await g.until(() => g.all.find((m) => m.type === MSG.APPLIED && m.req === req), 'G: APPLIED before the close', WAIT_MS, true);
    await g.waitClosed();
    assert.ok(!g.all.some((m) => m.type === MSG.DURABLE && m.seqs.includes(seq)), 'not confirmed on the closed connection');
    for (let i = 0; ; i++) {
      const s = await httpStatus();
      if (BigInt(s.durable_frame) >= applied.frame) break;
      assert.ok(i < 100, `durable_frame ${s.durable_frame} did not reach ${applied.frame}`);
      await sleep(100);
    }
    const g2 = newClient('G2');
    await g2.connect(url());
    await hello(g2);
    const rr = g2.nextReq++, rj = g2.nextReq++;
    g2.send(Buffer.concat([enc.resume(rr, g.session.token), enc.join(rj)]));
    const s = await g2.take((m) => m.req === rr && (m.type === MSG.SESSION || m.type === MSG.ERROR), 'G2: SESSION');
    assert.equal(s.type, MSG.SESSION, describeMsg(s));
    assert.ok(s.lastSeq >= seq, `last_seq ${s.lastSeq}`);
    const j = await g2.take((m) => m.req === rj && (m.type === MSG.JOINED || m.type === MSG.ERROR), 'G2: JOINED');
    assert.equal(j.type, MSG.JOINED, describeMsg(j));
    const iS = g2.all.indexOf(s), iJ = g2.all.indexOf(j);
    const iD = g2.all.findIndex((m) => m.type === MSG.DURABLE && m.seqs.includes(seq));
    assert.ok(iD >= 0, `no DURABLE for seq ${seq} after RESUME: ${g2.all.map(describeMsg).join(', ')}`);
    assert.ok(iS < iD && iD < iJ, `DURABLE at ${iD}, SESSION at ${iS}, JOINED at ${iJ}`);
    assert.equal(g2.all[iD].status, 0);
    note(`     G: seq ${seq} applied in frame ${applied.frame}, connection closed; after RESUME: SESSION, DURABLE [${g2.all[iD].seqs}], then JOINED`);
  });
});
