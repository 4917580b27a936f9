'use strict';
// The Colyseus side of bench/colyseus: a Colyseus 0.18 server (@colyseus/core, the server that the
// `colyseus` package re-exports, on @colyseus/ws-transport) with one room type, "vr", written from
// Colyseus's public API. The room's @colyseus/schema state holds every avatar's VR rig, as
// otherworld's pose does: root position and rotation, head, left hand, right hand; plus a wood
// counter that the one action ("harvest") changes.
//
//   node server.js [--port 0] [--patch-hz 30] [--encoding float32|quantized]
//
// --encoding float32 (default): positions in metres and quaternions as float32 fields, the way the
//   schema documentation declares positions. --encoding quantized: the same information as
//   otherworld's wire pose (root int32 mm, bones int16 mm relative to the root, rotations as one
//   uint32 "smallest three" packed quaternion), to separate the encoding from the architecture.
//
// Messages from clients (room.send):
//   "pose"    an array of numbers, the rig (28 floats, or 16 integers when quantized); validated
//             (length, finite, root within the world) and applied to the sender's avatar; latest
//             value wins, no reply.
//   "harvest" {x, z}: harvest wood at that spot. Validated (finite, within 3 m of the avatar's
//             root, at most 4 per second) and applied to the state (wood += 1); the handler's
//             return value is the reply ({ok, wood} or {ok: false, error}), which the SDK delivers
//             to room.send's callback.
//
// Prints `event=listening port=N pid=P` on stdout once it accepts connections.

const { Room, defineServer, defineRoom } = require('@colyseus/core');
const { WebSocketTransport } = require('@colyseus/ws-transport');
const { schema, t } = require('@colyseus/schema');

function parseArgs(argv) {
  const o = { port: 0, patchHz: 30, encoding: 'float32' };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--port') o.port = Number(v());
    else if (a === '--patch-hz') o.patchHz = Number(v());
    else if (a === '--encoding') o.encoding = v();
    else if (a === '--help' || a === '-h') {
      console.log('usage: node server.js [--port 0] [--patch-hz 30] [--encoding float32|quantized]');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!['float32', 'quantized'].includes(o.encoding)) throw new Error(`bad --encoding ${o.encoding}`);
  if (!(o.patchHz > 0)) throw new Error('--patch-hz must be positive');
  return o;
}

const opt = parseArgs(process.argv);
const QUANT = opt.encoding === 'quantized';
const WORLD_HALF_M = 10000; // avatars' roots must stay within +-10 km, as a sanity check
const REACH_M = 3;
const HARVEST_PER_S = 4;

const Bone = QUANT
  ? schema({ x: t.int16(), y: t.int16(), z: t.int16(), rot: t.uint32() }, 'Bone')
  : schema({
    x: t.float32(), y: t.float32(), z: t.float32(),
    qx: t.float32(), qy: t.float32(), qz: t.float32(), qw: t.float32(),
  }, 'Bone');
const Avatar = QUANT
  ? schema({
    x: t.int32(), y: t.int32(), z: t.int32(), rot: t.uint32(),
    head: Bone, left: Bone, right: Bone, wood: t.uint16(),
  }, 'Avatar')
  : schema({
    x: t.float32(), y: t.float32(), z: t.float32(),
    qx: t.float32(), qy: t.float32(), qz: t.float32(), qw: t.float32(),
    head: Bone, left: Bone, right: Bone, wood: t.uint16(),
  }, 'Avatar');
const VrState = schema({ avatars: t.map(Avatar) }, 'VrState');

const POSE_LEN = QUANT ? 16 : 28;

function setBoneF(b, m, o) {
  b.x = m[o]; b.y = m[o + 1]; b.z = m[o + 2];
  b.qx = m[o + 3]; b.qy = m[o + 4]; b.qz = m[o + 5]; b.qw = m[o + 6];
}
function setBoneQ(b, m, o) {
  b.x = m[o]; b.y = m[o + 1]; b.z = m[o + 2]; b.rot = m[o + 3];
}

class VrRoom extends Room {
  maxClients = 1000;
  patchRate = 1000 / opt.patchHz;
  state = new VrState();
  lastHarvest = new Map(); // sessionId -> ms of the last accepted harvest

  messages = {
    pose: (client, m) => {
      const a = this.state.avatars.get(client.sessionId);
      if (!a || !Array.isArray(m) || m.length !== POSE_LEN) return;
      for (let i = 0; i < POSE_LEN; i++) if (typeof m[i] !== 'number' || !Number.isFinite(m[i])) return;
      const half = QUANT ? WORLD_HALF_M * 1000 : WORLD_HALF_M;
      if (Math.abs(m[0]) > half || Math.abs(m[2]) > half) return;
      if (QUANT) {
        a.x = m[0]; a.y = m[1]; a.z = m[2]; a.rot = m[3];
        setBoneQ(a.head, m, 4); setBoneQ(a.left, m, 8); setBoneQ(a.right, m, 12);
      } else {
        a.x = m[0]; a.y = m[1]; a.z = m[2];
        a.qx = m[3]; a.qy = m[4]; a.qz = m[5]; a.qw = m[6];
        setBoneF(a.head, m, 7); setBoneF(a.left, m, 14); setBoneF(a.right, m, 21);
      }
    },
    harvest: (client, m) => {
      const a = this.state.avatars.get(client.sessionId);
      if (!a) return { ok: false, error: 'not in the room' };
      if (!m || typeof m.x !== 'number' || typeof m.z !== 'number' ||
          !Number.isFinite(m.x) || !Number.isFinite(m.z)) return { ok: false, error: 'bad spot' };
      const scale = QUANT ? 1000 : 1;
      const dx = a.x / scale - m.x, dz = a.z / scale - m.z;
      if (dx * dx + dz * dz > REACH_M * REACH_M) return { ok: false, error: 'too far' };
      const now = Date.now();
      const last = this.lastHarvest.get(client.sessionId) || 0;
      if (now - last < 1000 / HARVEST_PER_S) return { ok: false, error: 'too fast' };
      if (a.wood >= 65535) return { ok: false, error: 'full' };
      this.lastHarvest.set(client.sessionId, now);
      a.wood += 1;
      return { ok: true, wood: a.wood };
    },
  };

  onJoin(client) {
    const a = new Avatar();
    a.wood = 0;
    this.state.avatars.set(client.sessionId, a);
  }

  onLeave(client) {
    this.state.avatars.delete(client.sessionId);
    this.lastHarvest.delete(client.sessionId);
  }
}

const server = defineServer({
  rooms: { vr: defineRoom(VrRoom) },
  // ws-transport's defaults: permessage-deflate off, 4 KiB max incoming payload.
  transport: new WebSocketTransport(),
  greet: false,
});

server.listen(opt.port, '127.0.0.1').then(() => {
  const addr = server.transport.server.address();
  console.log(`event=listening port=${addr.port} pid=${process.pid} encoding=${opt.encoding} ` +
    `patch_hz=${opt.patchHz} node_env=${process.env.NODE_ENV || ''}`);
}).catch((e) => {
  console.error(e);
  process.exit(1);
});
