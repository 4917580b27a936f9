'use strict';
// The coordinator of one bench/colyseus phase: forks the load workers (load.js), waits until every
// player has joined, lets the traffic settle, then opens the measurement window in every worker
// and reads the server's CPU time from /proc/PID/stat (utime + stime, every thread of the process)
// at both ends of the window. Prints key=value lines prefixed with --prefix, and writes the pose
// latency distribution (ms, cumulative fraction) to --dist when given.
//
//   node drive.js --target otherworld|colyseus --port P --server-pid PID [--prefix NAME]
//                 [--clients 100] [--workers 4] [--duration 30] [--warmup 3] [--pose-hz 60]
//                 [--action-ms 2000] [--encoding float32|quantized] [--observe-every 10]
//                 [--dist FILE]
//
// --observe-every N: one player in N decodes the poses it receives and measures their latency
// (see load.js); every player sends, receives and counts bytes.
//
// Exits 1 on real errors only (a worker that cannot join, disconnects, protocol errors, no pose
// received at all); never because of a figure.

const { fork } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const opt = {
  target: '', port: 0, serverPid: 0, prefix: '', clients: 100, workers: 4, duration: 30,
  warmup: 3, poseHz: 60, actionMs: 2000, encoding: 'float32', dist: '', observeEvery: 10, proto: 2,
};
const flags = {
  '--target': ['target', String], '--port': ['port', Number], '--server-pid': ['serverPid', Number],
  '--prefix': ['prefix', String], '--clients': ['clients', Number], '--workers': ['workers', Number],
  '--duration': ['duration', Number], '--warmup': ['warmup', Number], '--pose-hz': ['poseHz', Number],
  '--action-ms': ['actionMs', Number], '--encoding': ['encoding', String], '--dist': ['dist', String],
  '--observe-every': ['observeEvery', Number], '--proto': ['proto', Number],
};
for (let i = 2; i < process.argv.length; i++) {
  const f = flags[process.argv[i]];
  if (!f || i + 1 >= process.argv.length) {
    console.error(`usage: node drive.js --target otherworld|colyseus --port P --server-pid PID [options]` +
      ` (bad argument ${process.argv[i]})`);
    process.exit(2);
  }
  opt[f[0]] = f[1](process.argv[++i]);
}
if (!['otherworld', 'colyseus'].includes(opt.target) || !opt.port || !opt.serverPid) {
  console.error('drive.js: --target, --port and --server-pid are required');
  process.exit(2);
}
const prefix = opt.prefix || opt.target;
const CLK_TCK = 100; // USER_HZ on Linux

// [utime, stime] of the server process in seconds (every thread).
function serverCpuS() {
  const s = fs.readFileSync(`/proc/${opt.serverPid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
  return [Number(f[11]) / CLK_TCK, Number(f[12]) / CLK_TCK]; // utime (14), stime (15)
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const workers = [];
let failed = false;

function killAll() {
  for (const w of workers) if (w.exitCode === null) w.kill('SIGKILL');
}
process.on('exit', killAll);

function waitAll(type, ms) {
  return Promise.all(workers.map((w) => new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`worker ${w.pid}: no ${type} within ${ms} ms`)), ms);
    w.on('message', function on(m) {
      if (m.type === type) { clearTimeout(t); w.off('message', on); resolve(m); }
    });
  })));
}

function percentile(hist, total, p) {
  if (!total) return NaN;
  const want = Math.ceil((p / 100) * total);
  let seen = 0;
  for (const [bin, n] of hist) {
    seen += n;
    if (seen >= want) return (bin + 1) * 0.1; // upper edge of the 0.1 ms bin
  }
  return Infinity;
}

function merge(hists) {
  const m = new Map();
  for (const h of hists) for (const [bin, n] of h) m.set(bin, (m.get(bin) || 0) + n);
  return [...m.entries()].sort((a, b) => a[0] - b[0]);
}

async function main() {
  const per = Math.ceil(opt.clients / opt.workers);
  const setupMs = 20000 + opt.clients * 500;
  for (let first = 0; first < opt.clients; first += per) {
    const count = Math.min(per, opt.clients - first);
    const cfg = { target: opt.target, port: opt.port, first, count, poseHz: opt.poseHz, actionMs: opt.actionMs,
      encoding: opt.encoding, setupMs, observeEvery: opt.observeEvery, proto: opt.proto };
    const w = fork(path.join(__dirname, 'load.js'), [JSON.stringify(cfg)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    w.on('message', (m) => {
      if (m.type === 'fatal') { console.error(`${prefix}: ${m.text}`); failed = true; }
    });
    w.on('exit', (code) => { if (code && !w.done) { console.error(`${prefix}: worker ${w.pid} exited ${code}`); failed = true; } });
    workers.push(w);
  }
  const t0 = Date.now();
  await waitAll('ready', setupMs + 5000);
  const setupS = (Date.now() - t0) / 1000;
  await sleep(opt.warmup * 1000);

  const cpu0 = serverCpuS();
  const w0 = process.hrtime.bigint();
  for (const w of workers) w.send('start');
  await sleep(opt.duration * 1000);
  const results = waitAll('result', 30000);
  for (const w of workers) w.send('stop');
  const cpu1 = serverCpuS();
  const wall = Number(process.hrtime.bigint() - w0) / 1e9;
  const rs = await results;
  for (const w of workers) { w.done = true; w.send('exit'); }

  const sum = (k) => rs.reduce((s, r) => s + r[k], 0);
  const clients = sum('clients');
  const secs = rs.reduce((s, r) => s + r.seconds, 0) / rs.length;
  const user = cpu1[0] - cpu0[0], sys = cpu1[1] - cpu0[1];
  const cpu = user + sys;
  const pose = merge(rs.map((r) => r.poseHist));
  const poseN = pose.reduce((s, [, n]) => s + n, 0) + sum('poseOver');
  const act = merge(rs.map((r) => r.actionHist));
  const actN = act.reduce((s, [, n]) => s + n, 0);
  const out = {
    clients, workers: rs.length, duration_s: secs.toFixed(2), setup_s: setupS.toFixed(1),
    server_cpu_s: cpu.toFixed(2),
    server_user_s: user.toFixed(2),
    server_sys_s: sys.toFixed(2),
    server_cpu_pct: (100 * cpu / wall).toFixed(1),
    cpu_s_per_client_min: (cpu / (clients * wall / 60)).toFixed(5),
    down_bytes_per_client_s: (sum('bytes') / clients / secs).toFixed(0),
    down_socket_bytes_per_client_s: (sum('sockBytes') / clients / secs).toFixed(0),
    down_ws_messages_per_client_s: (sum('wsMsgs') / clients / secs).toFixed(1),
    poses_sent_per_client_s: (sum('posesSent') / clients / secs).toFixed(1),
    observers: sum('observers'),
    poses_recv_per_client_s: (sum('posesRecv') / sum('observers') / secs).toFixed(1),
    down_bytes_per_pose_update: ((sum('bytes') / clients) / (sum('posesRecv') / sum('observers'))).toFixed(1),
    // CPU per pose update delivered in the window (every client receives as many as an observer).
    server_cpu_us_per_pose_update: (1e6 * cpu / (clients * sum('posesRecv') / sum('observers'))).toFixed(2),
    pose_p50_ms: percentile(pose, poseN, 50).toFixed(1),
    pose_p99_ms: percentile(pose, poseN, 99).toFixed(1),
    pose_max_ms: (pose.length ? (pose[pose.length - 1][0] + 1) * 0.1 : NaN).toFixed(1),
    pose_samples: poseN,
    pose_undecodable: sum('poseBad'),
    actions_per_s: (sum('actionsOk') / secs).toFixed(1),
    actions_rejected: sum('actionsRejected'),
    action_p50_ms: percentile(act, actN, 50).toFixed(1),
    action_p99_ms: percentile(act, actN, 99).toFixed(1),
    client_loop_lag_p99_ms: Math.max(...rs.map((r) => r.lagP99Ms)).toFixed(1),
    client_loop_lag_max_ms: Math.max(...rs.map((r) => r.lagMaxMs)).toFixed(1),
    errors: sum('errors'),
    disconnects: sum('disconnects'),
  };
  for (const [k, v] of Object.entries(out)) console.log(`${prefix}_${k}=${v}`);
  for (const r of rs) for (const t of r.errorText) console.error(`${prefix}: ${t}`);

  if (opt.dist) {
    let seen = 0;
    const lines = pose.map(([bin, n]) => { seen += n; return `${((bin + 1) * 0.1).toFixed(1)} ${(seen / poseN).toFixed(6)}`; });
    fs.writeFileSync(opt.dist, `# ${prefix} pose latency: ms cumulative_fraction\n${lines.join('\n')}\n`);
  }
  if (out.errors || out.disconnects || !poseN) {
    console.error(`${prefix}: ${out.errors} errors, ${out.disconnects} disconnects, ${poseN} pose samples`);
    failed = true;
  }
  await sleep(300);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(`${prefix}: ${e.stack || e}`);
  killAll();
  process.exit(1);
});
