// Our validator (otherworld-validate-asset) against the Khronos glTF-Validator (npm gltf-validator)
// on the valid seed assets of tests/fuzz/corpus/gltf and on mutants of them made here: JSON-level
// mutations (a value replaced by another of a nasty kind, a property deleted) and byte-level ones
// (bytes of the BIN chunk changed, lengths cut). The verdicts agree when we refuse exactly the
// files in which Khronos reports at least one error. Prints every disagreement and then
// `assets=N agree=A disagree=D`; exits 1 if D > 0.
//
//   node oracle.js VALIDATE_ASSET_BINARY [--mutants N] [--seed S] [--keep DIR]
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const validator = require('gltf-validator');

const args = process.argv.slice(2);
const bin = args[0];
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const nMutants = Number(opt('--mutants', '400'));
let seed = Number(opt('--seed', '1'));
const corpus = path.join(__dirname, '..', '..', 'fuzz', 'corpus', 'gltf');

function rand() { // xorshift32: the same mutants on every run for a seed
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed / 4294967296;
}
const pick = (a) => a[Math.floor(rand() * a.length)];

function parseGlb(b) {
  const jlen = b.readUInt32LE(12);
  const json = JSON.parse(b.subarray(20, 20 + jlen).toString('utf8'));
  const rest = b.subarray(20 + jlen);
  const bin = rest.length >= 8 ? Buffer.from(rest.subarray(8, 8 + rest.readUInt32LE(0))) : null;
  return { json, bin };
}
function glb(json, bin) {
  let js = Buffer.from(JSON.stringify(json));
  js = Buffer.concat([js, Buffer.alloc((4 - (js.length % 4)) % 4, 0x20)]);
  const parts = [Buffer.alloc(8), js];
  parts[0].writeUInt32LE(js.length, 0);
  parts[0].writeUInt32LE(0x4e4f534a, 4);
  if (bin) {
    const b = Buffer.concat([bin, Buffer.alloc((4 - (bin.length % 4)) % 4)]);
    const h = Buffer.alloc(8);
    h.writeUInt32LE(b.length, 0);
    h.writeUInt32LE(0x004e4942, 4);
    parts.push(h, b);
  }
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(12);
  head.writeUInt32LE(0x46546c67, 0);
  head.writeUInt32LE(2, 4);
  head.writeUInt32LE(12 + body.length, 8);
  return Buffer.concat([head, body]);
}

// Every (parent, key) of the JSON tree, for the mutations.
function slots(o, out = []) {
  if (o && typeof o === 'object') {
    for (const k of Object.keys(o)) {
      out.push([o, Array.isArray(o) ? Number(k) : k]);
      slots(o[k], out);
    }
  }
  return out;
}
const nasty = [-1, 0, 1, 2, 3, 4, 7, 255, 256, 65535, 65536, 4294967295, 1e20, 0.5, -0.5, 1.5,
  5120, 5121, 5123, 5125, 5126, 34962, 34963, 'VEC2', 'MAT4', 'SCALAR', '', 'x', null, true, [], {},
  [0, 0, 0], [1, 1, 1], 'data:application/octet-stream;base64,AAAA', '../a.bin', 'image/jpeg'];

function mutateJson(json) {
  const s = slots(json);
  const [o, k] = pick(s);
  const r = rand();
  if (r < 0.15 && !Array.isArray(o)) delete o[k];
  else if (r < 0.3 && typeof o[k] === 'number') o[k] += pick([-1, 1, 3, 1000]);
  else o[k] = JSON.parse(JSON.stringify(pick(nasty)));
}

function mutant(b) {
  const r = rand();
  if (r < 0.1) return b.subarray(0, Math.floor(rand() * b.length)); // cut short
  const { json, bin } = parseGlb(b);
  if (r < 0.35 && bin) { // bytes of the data
    const n = 1 + Math.floor(rand() * 4);
    for (let i = 0; i < n; i++) bin[Math.floor(rand() * bin.length)] = Math.floor(rand() * 256);
  } else {
    const n = 1 + Math.floor(rand() * 2);
    for (let i = 0; i < n; i++) mutateJson(json);
  }
  return glb(json, bin);
}

async function khronos(buf, name) {
  const report = await validator.validateBytes(new Uint8Array(buf), {
    uri: name,
    maxIssues: 20,
    externalResourceFunction: () => Promise.reject(new Error('single-file upload: no external resources')),
  });
  return report.issues;
}

(async () => {
  const dir = opt('--keep', null) || fs.mkdtempSync(path.join(os.tmpdir(), 'ow-oracle-'));
  fs.mkdirSync(dir, { recursive: true });
  const files = [];
  const seeds = fs.readdirSync(corpus).filter((f) => f.endsWith('.glb') || f === 'seed-triangle.gltf');
  for (const f of seeds) files.push([f, fs.readFileSync(path.join(corpus, f))]);
  const glbs = seeds.filter((f) => f.endsWith('.glb')).map((f) => fs.readFileSync(path.join(corpus, f)));
  for (let i = 0; i < nMutants; i++) files.push([`mutant-${String(i).padStart(4, '0')}.glb`, mutant(pick(glbs))]);
  for (const [f, b] of files) fs.writeFileSync(path.join(dir, f), b);
  let out;
  try {
    out = execFileSync(bin, files.map(([f]) => path.join(dir, f)), { encoding: 'utf8' });
  } catch (e) {
    out = e.stdout; // exit 1: some refused
  }
  const ours = new Map();
  for (const line of out.split('\n')) {
    const m = /^(\S+) (ok|refused)\s*(.*)$/.exec(line);
    if (m) ours.set(path.basename(m[1]), { ok: m[2] === 'ok', why: m[3] });
  }
  let agree = 0, disagree = 0;
  let failed = 0;
  for (const [f, b] of files) {
    let issues;
    try {
      issues = await khronos(b, f);
    } catch (e) { // the Khronos validator itself fails on some mangled files: no verdict to compare
      failed++;
      if (args.includes('-v')) console.log(`KHRONOS-FAILED ${f}: ${e}`);
      continue;
    }
    const theyOk = issues.numErrors === 0;
    const us = ours.get(f);
    if (us && us.ok === theyOk) {
      agree++;
      continue;
    }
    disagree++;
    const errs = issues.messages.filter((m) => m.severity === 0).slice(0, 3).map((m) => `${m.code} ${m.pointer || ''} ${m.message}`);
    console.log(`DISAGREE ${f}: ours=${us ? (us.ok ? 'ok' : 'refused ' + us.why) : 'missing'} khronos=${theyOk ? 'ok' : 'errors: ' + errs.join(' | ')}`);
  }
  console.log(`assets=${files.length - failed} agree=${agree} disagree=${disagree} khronos_failed=${failed}`);
  if (!opt('--keep', null)) fs.rmSync(dir, { recursive: true, force: true });
  process.exit(disagree ? 1 : 0);
})();
