'use strict';
// One load worker of bench/colyseus, forked by drive.js: N simulated VR players against one
// server, either otherworld (the real protocol, clients/js/protocol.js, over `ws`) or Colyseus (the
// @colyseus/sdk client, which runs on `ws` under Node 20 too). Both kinds behave the same:
//
// - each player sends its rig (root position and rotation, head, two hands) at --pose-hz (60) and
//   one action every --action-ms (2000): otherworld a MOVE of its own avatar to where it stands,
//   counted at APPLIED; Colyseus a "harvest" room message, counted at the server's reply;
// - each player receives everyone's poses (otherworld POSES, Colyseus state patches);
// - the pose carries its send time: the milliseconds of the shared monotonic clock
//   (CLOCK_MONOTONIC, process.hrtime), modulo 65,536, in the head's x offset (int16 millimetres;
//   metres in a float32 for Colyseus), so the receiver computes the latency from the pose itself.
//   otherworld protocol version 2 (--proto 2, the default) carries bones in 4 mm units, which
//   cannot hold a 16-bit code: there it travels in the root's height instead (int16 millimetres
//   in a compact pose, exact), and the head's x offset is 0.
//   The resolution is 1 ms: the send time is truncated to the millisecond, so a latency reads at
//   most 1 ms high (never negative: a pose can reach a receiver well under a millisecond after it
//   was sent when the server publishes right after it arrives).
//
// Decoding everyone's poses 30 times a second in 100 clients costs the Colyseus SDK more than the
// two cores of the machine (a first run had every client process lagging by 140 ms and sending 26
// poses per second instead of 60). So only every --observe-every'th player (an observer) decodes
// what it receives and measures latency; the others read every byte from their socket but skip
// decoding the pose updates (otherworld: POSES messages; Colyseus: state patches, which never
// reach the SDK's decoder). The servers do exactly the same work either way; the rule is the same
// for both. Every player still handles the rest (snapshots and their ACKs, action replies).
//
// Receive time is taken when the WebSocket library hands the message to the client (before the
// SDK decodes a patch, before our codec decodes POSES). Bytes down are WebSocket payload bytes as
// delivered to the client; the socket's TCP bytes read (payload plus WebSocket framing) are counted
// too. Messages from drive.js (IPC): 'start' opens the measurement window, 'stop' closes it and
// reports, 'exit' closes every connection and exits.

const { monitorEventLoopDelay } = require('node:perf_hooks');
const WebSocket = require('ws');
const P = require('../../../clients/js/protocol');

const cfg = JSON.parse(process.argv[2]);
// cfg: {target, port, first, count, poseHz, actionMs, encoding, setupMs, observeEvery}

const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
const HIST_BIN_MS = 0.1;
const HIST_BINS = 100000; // up to 10 s
const MAX_LAT_MS = 30000; // a decoded latency beyond this is a decoding error, not a latency

const st = {
  measuring: false,
  poseHist: new Uint32Array(HIST_BINS),
  poseOver: 0, // samples beyond the histogram
  poseSamples: 0,
  poseBad: 0,
  posesRecv: 0, posesSent: 0,
  actionsSent: 0, actionsOk: 0, actionsRejected: 0, actionHist: new Uint32Array(HIST_BINS),
  errors: 0, disconnects: 0, errorText: [],
  wsMsgs: 0,
};
const players = [];

function fail(msg) {
  st.errors++;
  if (st.errorText.length < 5) st.errorText.push(msg);
}

function histAdd(h, ms) {
  const b = Math.floor(ms / HIST_BIN_MS);
  if (b < 0) return;
  if (b >= HIST_BINS) { st.poseOver++; return; }
  h[b]++;
}

// ---- the rig -------------------------------------------------------------------------------------
// A walking VR player: the root goes round a 0.5 m circle around its home at 0.25 m/s, facing
// where it walks; the head bobs and nods, the hands swing. Every field changes every frame.

function quatYawPitch(yaw, pitch) {
  const cy = Math.cos(yaw / 2), sy = Math.sin(yaw / 2), cp = Math.cos(pitch / 2), sp = Math.sin(pitch / 2);
  // yaw about +y, then pitch about +x
  return [cy * sp, sy * cp, -sy * sp, cy * cp];
}

const TIME_CODE = () => {
  const t = Math.floor(nowMs());
  return (t % 65536) - 32768; // int16
};
const decodeLatency = (recvMs, code) => {
  const sent = code + 32768;
  return (((recvMs - sent) % 65536) + 65536) % 65536;
};

// Returns {root:[mm x3], rootRot, head, left, right} with bone positions in mm relative to the
// root and the time code in head.pos[0].
function rig(p, tMs) {
  const t = tMs / 1000 + p.phase;
  const w = 0.5; // rad/s on a 0.5 m circle
  const root = [p.home[0] + 500 * Math.cos(w * t), p.home[1], p.home[2] + 500 * Math.sin(w * t)];
  const yaw = w * t + Math.PI / 2;
  return {
    root: root.map(Math.round),
    rootRot: quatYawPitch(yaw, 0),
    head: { pos: [TIME_CODE(), Math.round(1650 + 20 * Math.sin(2 * t)), Math.round(30 * Math.cos(1.3 * t))],
      rot: quatYawPitch(yaw + 0.3 * Math.sin(0.7 * t), 0.2 * Math.sin(1.1 * t)) },
    left: { pos: [Math.round(-250 + 50 * Math.sin(3 * t)), Math.round(1100 + 80 * Math.sin(2.1 * t)),
      Math.round(300 + 40 * Math.cos(2.7 * t))], rot: quatYawPitch(yaw + 0.5 * Math.sin(t), 0.4 * Math.cos(2 * t)) },
    right: { pos: [Math.round(250 + 50 * Math.cos(3 * t)), Math.round(1100 + 80 * Math.cos(2.1 * t)),
      Math.round(300 + 40 * Math.sin(2.7 * t))], rot: quatYawPitch(yaw - 0.5 * Math.sin(t), 0.4 * Math.sin(2 * t)) },
  };
}

// ---- otherworld ----------------------------------------------------------------------------------

const OW_POSE_LEN = 3 + 2 + 12 + 4 + 3 * 10; // framed POSE with head and both hands

class OwPlayer {
  constructor(idx) {
    this.idx = idx;
    this.name = `cb${idx}`;
    this.req = 10;
    this.seq = 0n;
    this.avatar = 0n;
    this.joined = false;
    this.home = null;
    this.phase = (idx * 0.37) % 6.283;
    this.pending = new Map(); // req -> send ms of an ACTION
    this.poseBuf = Buffer.alloc(OW_POSE_LEN);
    this.observer = idx % cfg.observeEvery === 0;
    this.bytes = 0;
    this.lastRig = null;
  }

  connect() {
    return new Promise((resolve, reject) => {
      this.ready = resolve;
      this.ws = new WebSocket(`ws://127.0.0.1:${cfg.port}/ws`, { perMessageDeflate: false });
      this.ws.binaryType = 'nodebuffer';
      this.ws.on('open', () => {
        const pw = 'benchpassword';
        this.ws.send(Buffer.concat([P.enc.hello(1, 'bench-colyseus', cfg.proto || P.PROTO_VERSION), P.enc.register(2, this.name, pw),
          P.enc.login(3, this.name, pw), P.enc.join(4)]));
      });
      this.ws.on('message', (data) => this.onMessage(data));
      this.ws.on('error', (e) => { if (!this.joined) reject(e); else fail(`${this.name}: ${e.message}`); });
      this.ws.on('close', () => {
        if (!this.closing) { st.disconnects++; fail(`${this.name}: connection closed`); }
        if (!this.joined) reject(new Error(`${this.name}: closed during setup`));
      });
    });
  }

  onMessage(buf) {
    const at = nowMs();
    this.bytes += buf.length;
    st.wsMsgs++;
    let off = 0;
    while (off + 3 <= buf.length) {
      const type = buf[off];
      const len = buf.readUInt16LE(off + 1);
      const body = off + 3;
      off = body + len;
      if (off > buf.length) { fail('truncated message'); return; }
      if (type === P.MSG.POSES) { if (this.observer) this.onPoses(buf, body, len, at); }
      else if (type === P.MSG.SNAPSHOT) this.onSnapshot(buf.subarray(body - 3, off));
      else this.onOther(buf.subarray(body - 3, off), at);
    }
  }

  // The hot path: only what the measurement needs (the head's x, which carries the send time).
  onPoses(buf, body, len, at) {
    if ((cfg.proto || P.PROTO_VERSION) >= 2) { this.onPoses2(buf, body, len, at); return; }
    const end = body + len;
    const n = buf.readUInt16LE(body + 4);
    let o = body + 6;
    for (let i = 0; i < n; i++) {
      const mask = buf[o + 8];
      const nbones = (mask & 1) + ((mask >> 1) & 1) + ((mask >> 2) & 1) + buf[o + 9];
      if (st.measuring) {
        st.posesRecv++;
        if (mask & 1) {
          const lat = decodeLatency(at, buf.readInt16LE(o + 8 + 18));
          if (lat > MAX_LAT_MS) st.poseBad++;
          else { histAdd(st.poseHist, lat); st.poseSamples++; }
        }
      }
      o += 8 + 18 + 10 * nbones;
    }
    if (o !== end) fail(`POSES: ${end - o} bytes left over`);
  }

  // Version 2 (docs/protocol.md "Compact poses"): the time code is the root's height.
  onPoses2(buf, body, len, at) {
    const end = body + len;
    const n = buf.readUInt16LE(body + 12);
    let o = body + 14;
    for (let i = 0; i < n; i++) {
      if (buf.readUInt16LE(o) & 0x8000) o += 8; // the slot's avatar id
      o += 2;
      const shape = buf[o];
      const nbones = (shape & 1) + ((shape >> 1) & 1) + ((shape >> 2) & 1) + ((shape >> 3) & 15);
      const wide = (shape & 0x80) !== 0;
      if (st.measuring) {
        st.posesRecv++;
        const lat = decodeLatency(at, wide ? buf.readInt32LE(o + 5) : buf.readInt16LE(o + 7));
        if (lat > MAX_LAT_MS) st.poseBad++;
        else { histAdd(st.poseHist, lat); st.poseSamples++; }
      }
      o += 1 + (wide ? 12 : 8) + 4 + 8 * nbones;
    }
    if (o !== end) fail(`POSES: ${end - o} bytes left over`);
  }

  onSnapshot(raw) {
    const body = 3;
    const id = raw.readUInt32LE(body);
    const flags = raw[body + 16];
    if (!this.home) {
      const [m] = P.decodeServer(raw);
      for (const e of m.entities) {
        if (e.id === this.avatar) this.home = e.pos.slice();
      }
    }
    if (!(flags & 1)) this.ws.send(P.enc.ack(id)); // after a snapshot's last chunk
    if (this.home && this.joined === false && this.joinedReply) {
      this.joined = true;
      // Spread the players over a 10 x 10 m square around the spawn point, all in one room.
      this.home = [this.home[0] + ((this.idx % 10) - 4.5) * 1000, this.home[1],
        this.home[2] + (Math.floor(this.idx / 10) % 10 - 4.5) * 1000];
      this.ready();
    }
  }

  onOther(raw, at) {
    let m;
    try {
      [m] = P.decodeServer(raw);
    } catch (e) {
      fail(`${this.name}: ${e.message}`);
      return;
    }
    switch (m.type) {
      case P.MSG.SESSION: this.avatar = m.avatar; break;
      case P.MSG.JOINED: this.joinedReply = true; break;
      case P.MSG.APPLIED: {
        const sent = this.pending.get(m.req);
        this.pending.delete(m.req);
        if (st.measuring && sent !== undefined) {
          if (m.code === 0) { st.actionsOk++; histAdd(st.actionHist, at - sent); } else st.actionsRejected++;
        }
        break;
      }
      case P.MSG.ERROR:
        // A taken name on REGISTER is expected when a data directory is reused.
        if (m.req === 2 && m.code === P.E.NAME_TAKEN) break;
        fail(`${this.name}: ERROR ${P.E_NAME[m.code] || m.code} req=${m.req}: ${m.text}`);
        break;
      case P.MSG.SERVER_BYE:
        fail(`${this.name}: SERVER_BYE ${m.reason} ${m.text}`);
        break;
      default: break; // WELCOME, OK, DURABLE, EVENT
    }
  }

  sendPose(tMs) {
    const r = rig(this, tMs);
    if ((cfg.proto || P.PROTO_VERSION) >= 2) {
      r.root[1] = r.head.pos[0];
      r.head.pos[0] = 0;
    }
    this.lastRig = r;
    const b = this.poseBuf;
    b[0] = P.MSG.POSE;
    b.writeUInt16LE(OW_POSE_LEN - 3, 1);
    b[3] = 7; // head, left hand, right hand
    b[4] = 0;
    let o = 5;
    for (let i = 0; i < 3; i++, o += 4) b.writeInt32LE(r.root[i], o);
    b.writeUInt32LE(P.packQuat(r.rootRot), o); o += 4;
    for (const bone of [r.head, r.left, r.right]) {
      for (let i = 0; i < 3; i++, o += 2) b.writeInt16LE(bone.pos[i], o);
      b.writeUInt32LE(P.packQuat(bone.rot), o); o += 4;
    }
    this.ws.send(b);
  }

  sendAction(tMs) {
    const r = this.lastRig || rig(this, tMs);
    const req = ++this.req;
    this.seq += 1n;
    this.pending.set(req, tMs);
    this.ws.send(P.enc.action({ req, seq: this.seq, action: P.ACT.MOVE, target: this.avatar,
      pos: r.root.map((v) => v / 1000), rot: r.rootRot }));
  }

  socketBytes() { return this.ws._socket ? this.ws._socket.bytesRead : 0; }
  close() { this.closing = true; this.ws.terminate(); }
}

// ---- Colyseus ------------------------------------------------------------------------------------

let Colyseus = null;
let colyseusClient = null;

class CsPlayer {
  constructor(idx) {
    this.idx = idx;
    this.phase = (idx * 0.37) % 6.283;
    this.home = [((idx % 10) - 4.5) * 1000, 0, (Math.floor(idx / 10) % 10 - 4.5) * 1000];
    this.bytes = 0;
    this.lastHeadX = new Map(); // sessionId -> last decoded head time code
    this.recvAt = 0;
    this.quant = cfg.encoding === 'quantized';
    this.observer = idx % cfg.observeEvery === 0;
  }

  async connect() {
    if (!Colyseus) {
      Colyseus = require('@colyseus/sdk');
      colyseusClient = new Colyseus.Client(`ws://127.0.0.1:${cfg.port}`);
    }
    this.room = await colyseusClient.joinOrCreate('vr', {});
    this.sid = this.room.sessionId;
    const tr = this.room.connection.transport;
    this.ws = tr.ws;
    // Take the receive time and count the payload before the SDK decodes the message.
    const inner = tr.events.onmessage;
    const PATCH = Colyseus.Protocol.ROOM_STATE_PATCH;
    tr.events.onmessage = (ev) => {
      this.recvAt = nowMs();
      this.bytes += ev.data.byteLength;
      st.wsMsgs++;
      // 31: the protocol code bits of the first byte (the top bits are modifiers).
      if (!this.observer && (new Uint8Array(ev.data, 0, 1)[0] & 31) === PATCH) return;
      inner(ev);
    };
    this.room.onStateChange((state) => this.onState(state));
    this.room.onLeave((code) => {
      if (!this.closing) { st.disconnects++; fail(`colyseus ${this.sid}: left, code ${code}`); }
    });
    this.room.onError((code, msg) => fail(`colyseus ${this.sid}: error ${code} ${msg}`));
  }

  onState(state) {
    if (!st.measuring) return;
    const at = this.recvAt;
    for (const [sid, a] of state.avatars) {
      if (sid === this.sid) continue;
      const code = this.quant ? a.head.x : Math.round(a.head.x * 1000);
      if (this.lastHeadX.get(sid) === code) continue; // this avatar did not change in this patch
      this.lastHeadX.set(sid, code);
      st.posesRecv++;
      const lat = decodeLatency(at, code);
      if (lat > MAX_LAT_MS) st.poseBad++;
      else { histAdd(st.poseHist, lat); st.poseSamples++; }
    }
  }

  sendPose(tMs) {
    const r = rig(this, tMs);
    this.lastRig = r;
    let m;
    if (this.quant) {
      m = [r.root[0], r.root[1], r.root[2], P.packQuat(r.rootRot)];
      for (const b of [r.head, r.left, r.right]) m.push(b.pos[0], b.pos[1], b.pos[2], P.packQuat(b.rot));
    } else {
      m = [r.root[0] / 1000, r.root[1] / 1000, r.root[2] / 1000, ...r.rootRot];
      for (const b of [r.head, r.left, r.right]) m.push(b.pos[0] / 1000, b.pos[1] / 1000, b.pos[2] / 1000, ...b.rot);
    }
    this.room.send('pose', m);
  }

  sendAction(tMs) {
    const r = this.lastRig || rig(this, tMs);
    const sent = tMs;
    const measured = st.measuring;
    this.room.send('harvest', { x: r.root[0] / 1000 + 1, z: r.root[2] / 1000 }, (resp, err) => {
      if (!measured || !st.measuring) return;
      if (err) { fail(`harvest: ${err.message}`); return; }
      if (resp && resp.ok) { st.actionsOk++; histAdd(st.actionHist, nowMs() - sent); } else st.actionsRejected++;
    });
  }

  socketBytes() { return this.ws && this.ws._socket ? this.ws._socket.bytesRead : 0; }
  // A consented leave: a dropped socket would make the SDK try to reconnect.
  close() { this.closing = true; this.room.leave(true).catch(() => {}); }
}

// ---- schedule ------------------------------------------------------------------------------------

let timer = null;
function startTraffic() {
  const t0 = nowMs();
  const posePeriod = 1000 / cfg.poseHz;
  for (const p of players) {
    // Spread each player's first pose and action over one period, so the load is smooth.
    p.nextPose = t0 + Math.random() * posePeriod;
    p.nextAction = cfg.actionMs > 0 ? t0 + Math.random() * cfg.actionMs : Infinity;
  }
  timer = setInterval(() => {
    const now = nowMs();
    for (const p of players) {
      if (now >= p.nextPose) {
        p.sendPose(now);
        if (st.measuring) st.posesSent++;
        p.nextPose += posePeriod;
        // A player more than a period behind skips what it missed instead of sending a burst.
        if (p.nextPose < now - posePeriod) p.nextPose = now + posePeriod;
      }
      if (now >= p.nextAction) {
        p.sendAction(now);
        if (st.measuring) st.actionsSent++;
        p.nextAction += cfg.actionMs;
      }
    }
  }, 1);
}

function sparse(h) {
  const out = [];
  for (let i = 0; i < h.length; i++) if (h[i]) out.push([i, h[i]]);
  return out;
}

let base = null;
let lag = null;
process.on('message', (msg) => {
  if (msg === 'start') {
    lag = monitorEventLoopDelay({ resolution: 5 });
    lag.enable();
    base = { t: nowMs(), bytes: players.map((p) => p.bytes), sock: players.map((p) => p.socketBytes()),
      wsMsgs: st.wsMsgs };
    st.measuring = true;
  } else if (msg === 'stop') {
    st.measuring = false;
    lag.disable();
    const seconds = (nowMs() - base.t) / 1000;
    const bytes = players.reduce((s, p, i) => s + p.bytes - base.bytes[i], 0);
    const sock = players.reduce((s, p, i) => s + p.socketBytes() - base.sock[i], 0);
    process.send({
      type: 'result', seconds, clients: players.length, bytes, sockBytes: sock,
      observers: players.filter((p) => p.observer).length,
      posesRecv: st.posesRecv, posesSent: st.posesSent, poseSamples: st.poseSamples, poseBad: st.poseBad,
      poseOver: st.poseOver, poseHist: sparse(st.poseHist), actionHist: sparse(st.actionHist),
      actionsSent: st.actionsSent, actionsOk: st.actionsOk, actionsRejected: st.actionsRejected,
      errors: st.errors, errorText: st.errorText, disconnects: st.disconnects, wsMsgs: st.wsMsgs - base.wsMsgs,
      lagP99Ms: lag.percentile(99) / 1e6, lagMaxMs: lag.max / 1e6,
    });
  } else if (msg === 'exit') {
    clearInterval(timer);
    for (const p of players) p.close();
    setTimeout(() => process.exit(0), 100);
  }
});

(async () => {
  const Kind = cfg.target === 'otherworld' ? OwPlayer : CsPlayer;
  for (let i = 0; i < cfg.count; i++) players.push(new Kind(cfg.first + i));
  const setup = setTimeout(() => {
    process.send({ type: 'fatal', text: `setup took longer than ${cfg.setupMs} ms` });
    process.exit(1);
  }, cfg.setupMs);
  // Join a few at a time: the server hashes passwords (otherworld) or reserves seats (Colyseus).
  for (let i = 0; i < players.length; i += 5) await Promise.all(players.slice(i, i + 5).map((p) => p.connect()));
  clearTimeout(setup);
  startTraffic();
  process.send({ type: 'ready' });
})().catch((e) => {
  process.send({ type: 'fatal', text: `${cfg.target} worker: ${e && e.stack ? e.stack : e}` });
  setTimeout(() => process.exit(1), 50);
});
