'use strict';
// otherworld protocol codec (versions 1 and 2) for Node.js, written only from docs/protocol.md and
// docs/world.md (constants from include/otherworld/protocol.h and include/otherworld/error.h).
//
// All integers are little-endian; u64 values are BigInt. Every protocol message is
// `u8 type, u16 length, body[length]`; a WebSocket message carries one or more of them.
// Version 2 differs only in POSES (compact poses), whose avatars are slots bound on the
// connection: decode a connection's messages with one Decoder (or pass decodeServer a state).

const PROTO_VERSION = 2; // the newest version this codec speaks, sent by enc.hello by default
const PROTO_VERSION_MIN = 1;

const MSG = Object.freeze({
  HELLO: 0x01, REGISTER: 0x02, LOGIN: 0x03, RESUME: 0x04, JOIN: 0x05, LEAVE: 0x06,
  LOGOUT: 0x07, ACTION: 0x08, POSE: 0x09, ACK: 0x0a, CHAT: 0x0b, PING: 0x0c, BYE: 0x0d,
  WELCOME: 0x81, OK: 0x82, SESSION: 0x83, ERROR: 0x84, JOINED: 0x85, APPLIED: 0x86,
  DURABLE: 0x87, SNAPSHOT: 0x88, POSES: 0x89, EVENT: 0x8a, PONG: 0x8b, SERVER_BYE: 0x8c,
});
const MSG_NAME = Object.freeze(Object.fromEntries(Object.entries(MSG).map(([k, v]) => [v, k])));

const ACT = Object.freeze({
  MOVE: 1, HARVEST: 2, BUILD: 3, CRAFT: 4, TRANSFER: 5, INTERACT: 6, DESTROY: 7,
});

const BYE = Object.freeze({
  NORMAL: 1, SHUTDOWN: 2, TAKEN_OVER: 3, PROTOCOL: 4, TOO_SLOW: 5, RATE: 6, IDLE: 7,
  FULL: 8, KICKED: 9,
});

const ROLE = Object.freeze({ PLAYER: 0, BUILDER: 1, ADMIN: 2 });
const EVENT_KIND = Object.freeze({ CHAT: 1, SYSTEM: 2 });

const KIND = Object.freeze({
  RESOURCE: 1, ITEM: 2, STRUCTURE: 3, CONTAINER: 4, VEHICLE: 5, COLLIDER: 6, CAPSULE: 7,
  MARKER: 8, PLANE: 9, AVATAR: 10,
});

const PROP_TYPE = Object.freeze({ I64: 1, F64: 2, STR16: 3, ENTITY: 4 });

// Error codes (include/otherworld/error.h).
const E = Object.freeze({
  INVAL: -1001, NOMEM: -1002, NOT_FOUND: -1003, FORBIDDEN: -1004, BAD_COUNT: -1005,
  UNKNOWN_ACTION: -1006, NOT_ENOUGH: -1007, FULL: -1008, NOT_CONTAINER: -1009,
  NOT_HARVESTABLE: -1010, NOT_BUILDABLE: -1011, UNKNOWN_TYPE: -1012, UNKNOWN_RECIPE: -1013,
  NOT_EMPTY: -1014, NOT_INTERACTIVE: -1015, OUT_OF_BOUNDS: -1016, TOO_FAR: -1017,
  NOT_MOVABLE: -1018, NOT_ITEM: -1019, NOT_DESTROYABLE: -1020, SEQ_TOO_OLD: -1021,
  NO_SESSION: -1022, CONTENT: -1023, CONFIG: -1024, STORE: -1025, CORRUPT: -1026, BUSY: -1027,
  STORE_FAILED: -1028, SAME_CONTAINER: -1029, NO_AVATAR: -1030, VERSION: -1031, PROTO: -1032,
  TOO_LARGE: -1033, AUTH: -1034, NAME_TAKEN: -1035, TOKEN: -1036, RATE: -1037, STATE: -1038,
  SERVER_FULL: -1039, TOO_MANY_SESSIONS: -1040, BAD_NAME: -1041, TEXT_TOO_LONG: -1042,
  SHUTTING_DOWN: -1043,
});
const E_NAME = Object.freeze(Object.fromEntries(Object.entries(E).map(([k, v]) => [v, 'OW_E_' + k])));

const POSE_BONES = Object.freeze(['head', 'leftHand', 'rightHand']);
const POSE_MAX_TRACKERS = 8;
const TOKEN_LEN = 32;
const ACTION_ARGS_MAX = 1024; // argument bytes of an action that is not built-in

class ProtocolError extends Error {}

// ---------------------------------------------------------------------------------------------
// Writer / Reader

class Writer {
  constructor() { this.parts = []; this.len = 0; }
  _push(buf) { this.parts.push(buf); this.len += buf.length; return this; }
  _fixed(n, fn) { const b = Buffer.alloc(n); fn(b); return this._push(b); }
  u8(v) { return this._fixed(1, (b) => b.writeUInt8(v)); }
  i8(v) { return this._fixed(1, (b) => b.writeInt8(v)); }
  u16(v) { return this._fixed(2, (b) => b.writeUInt16LE(v)); }
  u32(v) { return this._fixed(4, (b) => b.writeUInt32LE(v >>> 0)); }
  u64(v) { return this._fixed(8, (b) => b.writeBigUInt64LE(BigInt(v))); }
  i16(v) { return this._fixed(2, (b) => b.writeInt16LE(v)); }
  i32(v) { return this._fixed(4, (b) => b.writeInt32LE(v)); }
  f32(v) { return this._fixed(4, (b) => b.writeFloatLE(v)); }
  f64(v) { return this._fixed(8, (b) => b.writeDoubleLE(v)); }
  bytes(buf) { return this._push(Buffer.from(buf)); }
  str8(s) {
    const b = Buffer.from(s, 'utf8');
    if (b.length > 0xff) throw new RangeError('str8 too long');
    return this.u8(b.length).bytes(b);
  }
  str16(s) {
    const b = Buffer.from(s, 'utf8');
    if (b.length > 0xffff) throw new RangeError('str16 too long');
    return this.u16(b.length).bytes(b);
  }
  build() { return Buffer.concat(this.parts, this.len); }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

class Reader {
  constructor(buf, what) { this.buf = buf; this.off = 0; this.what = what || 'message'; }
  remaining() { return this.buf.length - this.off; }
  need(n) {
    if (this.off + n > this.buf.length) {
      throw new ProtocolError(`${this.what}: need ${n} bytes at offset ${this.off}, body is ${this.buf.length}`);
    }
  }
  u8() { this.need(1); const v = this.buf.readUInt8(this.off); this.off += 1; return v; }
  i8() { this.need(1); const v = this.buf.readInt8(this.off); this.off += 1; return v; }
  u16() { this.need(2); const v = this.buf.readUInt16LE(this.off); this.off += 2; return v; }
  u32() { this.need(4); const v = this.buf.readUInt32LE(this.off); this.off += 4; return v; }
  u64() { this.need(8); const v = this.buf.readBigUInt64LE(this.off); this.off += 8; return v; }
  i16() { this.need(2); const v = this.buf.readInt16LE(this.off); this.off += 2; return v; }
  i32() { this.need(4); const v = this.buf.readInt32LE(this.off); this.off += 4; return v; }
  i64() { this.need(8); const v = this.buf.readBigInt64LE(this.off); this.off += 8; return v; }
  f32() { this.need(4); const v = this.buf.readFloatLE(this.off); this.off += 4; return v; }
  f64() { this.need(8); const v = this.buf.readDoubleLE(this.off); this.off += 8; return v; }
  bytes(n) { this.need(n); const v = Buffer.from(this.buf.subarray(this.off, this.off + n)); this.off += n; return v; }
  _str(n) {
    const b = this.bytes(n);
    let s;
    try { s = utf8.decode(b); } catch (e) { throw new ProtocolError(`${this.what}: invalid UTF-8`); }
    if (s.includes('\0')) throw new ProtocolError(`${this.what}: NUL in string`);
    return s;
  }
  str8() { return this._str(this.u8()); }
  str16() { return this._str(this.u16()); }
  end() {
    if (this.off !== this.buf.length) {
      throw new ProtocolError(`${this.what}: ${this.buf.length - this.off} trailing bytes`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Framing

function frame(type, body) {
  body = body || Buffer.alloc(0);
  if (body.length > 0xffff) throw new RangeError('body too long');
  const h = Buffer.alloc(3);
  h.writeUInt8(type, 0);
  h.writeUInt16LE(body.length, 1);
  return Buffer.concat([h, body]);
}

// Splits one WebSocket message into [{type, body}] (throws on a truncated header/body).
function splitMessages(buf) {
  const out = [];
  let off = 0;
  while (off < buf.length) {
    if (buf.length - off < 3) throw new ProtocolError(`truncated header at offset ${off}`);
    const type = buf.readUInt8(off);
    const len = buf.readUInt16LE(off + 1);
    if (off + 3 + len > buf.length) {
      throw new ProtocolError(`message 0x${type.toString(16)} length ${len} runs past the WebSocket message`);
    }
    out.push({ type, body: buf.subarray(off + 3, off + 3 + len) });
    off += 3 + len;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Packed quaternion ("smallest three", 32 bits)

const QSCALE = 0.70710678;

function packQuat(q) {
  let [x, y, z, w] = q;
  const n = Math.hypot(x, y, z, w) || 1;
  const c = [x / n, y / n, z / n, w / n];
  let big = 0;
  for (let i = 1; i < 4; i++) if (Math.abs(c[i]) > Math.abs(c[big])) big = i;
  if (c[big] < 0) for (let i = 0; i < 4; i++) c[i] = -c[i];
  let bits = big << 30;
  let shift = 20;
  for (let i = 0; i < 4; i++) {
    if (i === big) continue;
    let v = Math.round((c[i] / QSCALE) * 511);
    if (v > 511) v = 511;
    if (v < -511) v = -511;
    bits |= (v & 0x3ff) << shift;
    shift -= 10;
  }
  return bits >>> 0;
}

function unpackQuat(bits) {
  bits >>>= 0;
  const big = bits >>> 30;
  const out = [0, 0, 0, 0];
  let shift = 20;
  let sum = 0;
  for (let i = 0; i < 4; i++) {
    if (i === big) continue;
    let v = (bits >>> shift) & 0x3ff;
    if (v & 0x200) v -= 0x400; // 10-bit two's complement
    out[i] = (v / 511) * QSCALE;
    sum += out[i] * out[i];
    shift -= 10;
  }
  out[big] = Math.sqrt(Math.max(0, 1 - sum));
  return out;
}

// Angle in degrees between two unit quaternions (q and -q are the same rotation).
function quatAngleDeg(a, b) {
  const na = Math.hypot(...a), nb = Math.hypot(...b);
  let d = Math.abs((a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3]) / (na * nb));
  if (d > 1) d = 1;
  return (2 * Math.acos(d) * 180) / Math.PI;
}

// ---------------------------------------------------------------------------------------------
// Poses
// pose = { root: [x,y,z] mm (i32), rootRot: [x,y,z,w], head?, leftHand?, rightHand?: {pos:[mm i16 x3], rot:[x,y,z,w]},
//          trackers?: [{pos, rot}] }

function writePose(w, p) {
  let mask = 0;
  POSE_BONES.forEach((name, i) => { if (p[name]) mask |= 1 << i; });
  const trackers = p.trackers || [];
  if (trackers.length > POSE_MAX_TRACKERS) throw new RangeError('too many trackers');
  w.u8(mask).u8(trackers.length);
  for (const v of p.root) w.i32(Math.round(v));
  w.u32(packQuat(p.rootRot || [0, 0, 0, 1]));
  const bones = POSE_BONES.filter((n) => p[n]).map((n) => p[n]).concat(trackers);
  for (const b of bones) {
    for (const v of b.pos) w.i16(Math.round(v));
    w.u32(packQuat(b.rot || [0, 0, 0, 1]));
  }
}

function readPose(r) {
  const mask = r.u8();
  const ntrackers = r.u8();
  if (ntrackers > POSE_MAX_TRACKERS) throw new ProtocolError(`pose: ${ntrackers} trackers`);
  const root = [r.i32(), r.i32(), r.i32()];
  const rootRot = unpackQuat(r.u32());
  const pose = { mask, root, rootRot, trackers: [] };
  const readBone = () => ({ pos: [r.i16(), r.i16(), r.i16()], rot: unpackQuat(r.u32()) });
  POSE_BONES.forEach((name, i) => { if (mask & (1 << i)) pose[name] = readBone(); });
  for (let i = 0; i < ntrackers; i++) pose.trackers.push(readBone());
  return pose;
}

// Compact poses (protocol version 2, docs/protocol.md "Compact poses"): the root relative to a
// base region cell, bones in 4 mm units packed three to a u32. readPose2 gives the same shape as
// readPose, with the root in world millimetres; writePose2 is the server's side (for tests).
const POSE2_WIDE = 0x80;
const BONE_UNIT_MM = 4;

function packBone(pos) {
  let out = 0;
  for (let i = 0; i < 3; i++) {
    const mm = Math.round(pos[i]);
    let v = mm >= 0 ? Math.trunc((mm + 2) / BONE_UNIT_MM) : -Math.trunc((-mm + 2) / BONE_UNIT_MM);
    v = Math.max(-511, Math.min(511, v));
    out |= (v & 0x3ff) << (20 - 10 * i);
  }
  return out >>> 0;
}

function unpackBone(v) {
  const pos = [];
  for (let i = 0; i < 3; i++) {
    let q = (v >>> (20 - 10 * i)) & 0x3ff;
    if (q & 0x200) q -= 0x400;
    pos.push(q * BONE_UNIT_MM);
  }
  return pos;
}

function writePose2(w, p, regionSize, baseX, baseZ) {
  let mask = 0;
  POSE_BONES.forEach((name, i) => { if (p[name]) mask |= 1 << i; });
  const trackers = p.trackers || [];
  if (trackers.length > POSE_MAX_TRACKERS) throw new RangeError('too many trackers');
  const cellMm = regionSize * 1000;
  const root = p.root.map((v) => Math.round(v));
  const cell = [], f = [];
  for (const k of [0, 2]) {
    let c = Math.floor(root[k] / cellMm);
    let q = Math.round(((root[k] - c * cellMm) / cellMm) * 65536);
    if (q >= 65536) { q = 0; c += 1; }
    cell.push(c); f.push(q);
  }
  const dx = cell[0] - baseX, dz = cell[1] - baseZ;
  const wide = dx < -128 || dx > 127 || dz < -128 || dz > 127 || root[1] < -32768 || root[1] > 32767;
  w.u8(mask | (trackers.length << 3) | (wide ? POSE2_WIDE : 0));
  if (wide) for (const v of root) w.i32(v);
  else w.i8(dx).i8(dz).u16(f[0]).u16(f[1]).i16(root[1]);
  w.u32(packQuat(p.rootRot || [0, 0, 0, 1]));
  const bones = POSE_BONES.filter((n) => p[n]).map((n) => p[n]).concat(trackers);
  for (const b of bones) w.u32(packBone(b.pos)).u32(packQuat(b.rot || [0, 0, 0, 1]));
}

function readPose2(r, regionSize, baseX, baseZ) {
  const shape = r.u8();
  const mask = shape & 7, ntrackers = (shape >> 3) & 15;
  if (ntrackers > POSE_MAX_TRACKERS) throw new ProtocolError(`pose: ${ntrackers} trackers`);
  let root;
  if (shape & POSE2_WIDE) {
    root = [r.i32(), r.i32(), r.i32()];
  } else {
    const dx = r.i8(), dz = r.i8(), fx = r.u16(), fz = r.u16(), y = r.i16();
    const cellMm = regionSize * 1000;
    root = [Math.round((baseX + dx + fx / 65536) * cellMm), y, Math.round((baseZ + dz + fz / 65536) * cellMm)];
  }
  const rootRot = unpackQuat(r.u32());
  const pose = { mask, root, rootRot, trackers: [] };
  const readBone = () => ({ pos: unpackBone(r.u32()), rot: unpackQuat(r.u32()) });
  POSE_BONES.forEach((name, i) => { if (mask & (1 << i)) pose[name] = readBone(); });
  for (let i = 0; i < ntrackers; i++) pose.trackers.push(readBone());
  return pose;
}

// ---------------------------------------------------------------------------------------------
// Client -> server encoders (each returns one framed protocol message)

const enc = {
  hello(req, client, version = PROTO_VERSION) {
    return frame(MSG.HELLO, new Writer().u32(req).u16(version).str8(client).build());
  },
  register(req, name, password) {
    return frame(MSG.REGISTER, new Writer().u32(req).str8(name).str8(password).build());
  },
  login(req, name, password) {
    return frame(MSG.LOGIN, new Writer().u32(req).str8(name).str8(password).build());
  },
  resume(req, token) {
    if (token.length !== TOKEN_LEN) throw new RangeError('token must be 32 bytes');
    return frame(MSG.RESUME, new Writer().u32(req).bytes(token).build());
  },
  join(req) { return frame(MSG.JOIN, new Writer().u32(req).build()); },
  leave(req) { return frame(MSG.LEAVE, new Writer().u32(req).build()); },
  logout(req) { return frame(MSG.LOGOUT, new Writer().u32(req).build()); },
  // a = {req, seq, action, kind, target, dest, count, pos:[3] metres, rot:[x,y,z,w], scale:[3]}
  // for a built-in action (1..7); a = {req, seq, action, args: Buffer} for any other type, whose
  // argument bytes (at most ACTION_ARGS_MAX) follow the type as they are.
  action(a) {
    if (a.args !== undefined) {
      if (a.action >= 1 && a.action <= 7) throw new RangeError('a built-in action has named fields, not args');
      if (a.args.length > ACTION_ARGS_MAX) throw new RangeError(`ACTION args of ${a.args.length} bytes, at most ${ACTION_ARGS_MAX}`);
      return frame(MSG.ACTION, new Writer().u32(a.req || 0).u64(a.seq).u8(a.action).bytes(a.args).build());
    }
    const w = new Writer()
      .u32(a.req || 0).u64(a.seq).u8(a.action).u16(a.kind || 0)
      .u64(a.target || 0n).u64(a.dest || 0n).u32(a.count || 0);
    for (const v of a.pos || [0, 0, 0]) w.f32(v);
    for (const v of a.rot || [0, 0, 0, 1]) w.f32(v);
    for (const v of a.scale || [1, 1, 1]) w.f32(v);
    const body = w.build();
    if (body.length !== 75) throw new Error(`ACTION body is ${body.length}, expected 75`);
    return frame(MSG.ACTION, body);
  },
  pose(p) { const w = new Writer(); writePose(w, p); return frame(MSG.POSE, w.build()); },
  ack(snapshotId) { return frame(MSG.ACK, new Writer().u32(snapshotId).build()); },
  chat(req, text) { return frame(MSG.CHAT, new Writer().u32(req).str16(text).build()); },
  ping(req, clientTime) { return frame(MSG.PING, new Writer().u32(req).u64(clientTime).build()); },
  bye(reason, text) { return frame(MSG.BYE, new Writer().u16(reason).str16(text || '').build()); },
};

// ---------------------------------------------------------------------------------------------
// Server -> client decoders

function readEntity(r) {
  const e = {
    id: r.u64(), type: r.u16(), owner: r.u64(), parent: r.u64(),
    pos: [r.i32(), r.i32(), r.i32()],
    rot: unpackQuat(r.u32()),
    scale: [r.f32(), r.f32(), r.f32()],
    hp: r.i32(), count: r.u32(), props: [],
  };
  const nprops = r.u8();
  for (let i = 0; i < nprops; i++) {
    const key = r.u16();
    const type = r.u8();
    let value;
    switch (type) {
      case PROP_TYPE.I64: value = r.i64(); break;
      case PROP_TYPE.F64: value = r.f64(); break;
      case PROP_TYPE.STR16: value = r.str16(); break;
      case PROP_TYPE.ENTITY: value = r.u64(); break;
      default: throw new ProtocolError(`entity ${e.id}: unknown property type ${type}`);
    }
    e.props.push({ key, type, value });
  }
  return e;
}

const FIXED_SIZE = { [MSG.OK]: 4, [MSG.SESSION]: 66, [MSG.APPLIED]: 37, [MSG.PONG]: 20 };

const dec = {
  [MSG.WELCOME](r) {
    return {
      req: r.u32(), version: r.u16(), tickHz: r.u16(), poseHz: r.u16(),
      serverTimeUs: r.u64(), maxMessage: r.u32(), serverName: r.str8(),
    };
  },
  [MSG.OK](r) { return { req: r.u32() }; },
  [MSG.SESSION](r) {
    return {
      req: r.u32(), token: r.bytes(TOKEN_LEN), account: r.u64(), avatar: r.u64(), role: r.u8(),
      lastSeq: r.u64(), expiresInS: r.u32(), resumed: r.u8(),
    };
  },
  [MSG.ERROR](r) { return { req: r.u32(), code: r.i32(), text: r.str16() }; },
  [MSG.JOINED](r) {
    const m = { req: r.u32(), regionSize: r.f32(), interestRadius: r.f32(), types: [], recipes: [], keys: [] };
    const ntypes = r.u16();
    for (let i = 0; i < ntypes; i++) m.types.push({ id: r.u16(), kind: r.u8(), name: r.str8() });
    const nrecipes = r.u16();
    for (let i = 0; i < nrecipes; i++) m.recipes.push({ id: r.u16(), name: r.str8() });
    const nkeys = r.u16();
    for (let i = 0; i < nkeys; i++) m.keys.push(r.str8());
    return m;
  },
  [MSG.APPLIED](r) {
    return {
      req: r.u32(), seq: r.u64(), code: r.i32(), entity: r.u64(), count: r.u32(), frame: r.u64(),
      replayed: r.u8(),
    };
  },
  [MSG.DURABLE](r) {
    const m = { frame: r.u64(), status: r.i32(), seqs: [] };
    const n = r.u16();
    for (let i = 0; i < n; i++) m.seqs.push(r.u64());
    return m;
  },
  [MSG.SNAPSHOT](r) {
    const m = { id: r.u32(), base: r.u32(), frame: r.u64(), flags: r.u8(), entities: [], removed: [] };
    m.more = (m.flags & 1) !== 0;
    const n = r.u16();
    for (let i = 0; i < n; i++) m.entities.push(readEntity(r));
    const nremoved = r.u16();
    for (let i = 0; i < nremoved; i++) m.removed.push(r.u64());
    return m;
  },
  [MSG.POSES](r, st) {
    if (st && st.version >= 2) return readPoses2(r, st);
    const m = { tick: r.u32(), poses: [] };
    const n = r.u16();
    for (let i = 0; i < n; i++) m.poses.push({ avatar: r.u64(), pose: readPose(r) });
    return m;
  },
  [MSG.EVENT](r) { return { kind: r.u8(), fromAccount: r.u64(), text: r.str16() }; },
  [MSG.PONG](r) { return { req: r.u32(), clientTime: r.u64(), serverTimeUs: r.u64() }; },
  [MSG.SERVER_BYE](r) { return { reason: r.u16(), text: r.str16() }; },
};

// POSES of version 2: `u32 server_time_ms, i32 base cell x, z, u16 n`, then per entry a u16 slot
// (bit 15: a u64 avatar follows and binds the slot) and a compact pose.
function readPoses2(r, st) {
  if (!(st.regionSize > 0)) throw new ProtocolError('POSES: version 2 before JOINED (no region size)');
  const m = { tick: r.u32(), baseX: r.i32(), baseZ: r.i32(), poses: [] };
  const n = r.u16();
  for (let i = 0; i < n; i++) {
    const slot = r.u16();
    let avatar;
    if (slot & 0x8000) {
      avatar = r.u64();
      st.slots.set(slot & 0x7fff, avatar);
    } else {
      avatar = st.slots.get(slot);
      if (avatar === undefined) throw new ProtocolError(`POSES: slot ${slot} was never bound`);
    }
    m.poses.push({ avatar, pose: readPose2(r, st.regionSize, m.baseX, m.baseZ) });
  }
  return m;
}

// What decoding a connection's messages needs to remember: the version WELCOME agreed, JOINED's
// region size and the POSES slots (version 2). One per connection; a new connection, a new one.
class Decoder {
  constructor() { this.version = 1; this.regionSize = 0; this.slots = new Map(); }
  decode(buf) { return decodeServer(buf, this); }
}

// Decodes one WebSocket message from the server into an array of {type, name, ...fields}.
// Strict: unknown types, wrong fixed sizes, short bodies and trailing bytes throw. Without a state
// (a Decoder) POSES are read as version 1.
function decodeServer(buf, st) {
  return splitMessages(buf).map(({ type, body }) => {
    const name = MSG_NAME[type];
    const fn = dec[type];
    if (!fn || type < 0x80) throw new ProtocolError(`unknown server message type 0x${type.toString(16)}`);
    if (FIXED_SIZE[type] !== undefined && body.length !== FIXED_SIZE[type]) {
      throw new ProtocolError(`${name}: body is ${body.length} bytes, expected ${FIXED_SIZE[type]}`);
    }
    const r = new Reader(body, name);
    const m = fn(r, st);
    r.end();
    if (st && type === MSG.WELCOME) {
      if (m.version < PROTO_VERSION_MIN || m.version > PROTO_VERSION) throw new ProtocolError(`WELCOME: version ${m.version}`);
      st.version = m.version;
    }
    if (st && type === MSG.JOINED) st.regionSize = m.regionSize;
    return { type, name, ...m };
  });
}

// ---------------------------------------------------------------------------------------------
// Snapshot assembly (Quake III style: deltas apply against the acknowledged base snapshot)

class SnapshotTable {
  constructor(keep = 64) {
    this.keep = keep;
    this.complete = new Map(); // snapshot id -> Map(id -> entity) for complete snapshots
    this.pending = null; // {id, base, frame, table, listed}
    this.current = new Map(); // entities of the newest complete snapshot
    this.currentId = 0;
    this.currentFrame = 0n;
  }

  // Applies one SNAPSHOT chunk; returns the completed snapshot {id, frame, table} after the last
  // chunk, else null.
  apply(m) {
    if (!this.pending || this.pending.id !== m.id) {
      if (this.pending) throw new Error(`snapshot ${this.pending.id} was not finished before ${m.id}`);
      let table;
      if (m.base === 0) {
        table = new Map();
      } else {
        const base = this.complete.get(m.base);
        if (!base) throw new Error(`snapshot ${m.id} is a delta against unknown snapshot ${m.base}`);
        table = new Map(base);
      }
      this.pending = { id: m.id, base: m.base, frame: m.frame, table };
    }
    const p = this.pending;
    if (m.base !== p.base) throw new Error(`snapshot ${m.id}: chunks disagree on base`);
    for (const e of m.entities) p.table.set(e.id, e);
    for (const id of m.removed) p.table.delete(id);
    if (m.more) return null;
    this.pending = null;
    this.complete.set(p.id, p.table);
    while (this.complete.size > this.keep) this.complete.delete(this.complete.keys().next().value);
    this.current = p.table;
    this.currentId = p.id;
    this.currentFrame = p.frame;
    return { id: p.id, frame: p.frame, base: p.base, table: p.table };
  }
}

module.exports = {
  PROTO_VERSION, PROTO_VERSION_MIN, Decoder, writePose2, readPose2, MSG, MSG_NAME, ACT, BYE, ROLE, EVENT_KIND, KIND, PROP_TYPE, E, E_NAME,
  POSE_BONES, TOKEN_LEN, ACTION_ARGS_MAX, ProtocolError, Writer, Reader, frame, splitMessages,
  packQuat, unpackQuat, quatAngleDeg, writePose, readPose, enc, decodeServer, readEntity,
  SnapshotTable,
};
