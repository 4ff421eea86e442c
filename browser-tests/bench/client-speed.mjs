// The web client's speed, measured with Chromium's own timing and network emulation and
// written down, never asserted. Run it with scripts/client-bench.sh, which starts the browser
// suite's cluster (scripts/browser-test.sh) and runs this with BASE_URL and CHROMIUM set:
//
//   scripts/client-bench.sh [--runs N] [--profiles desktop,slow-phone] [--images 0-8] [--out FILE]
//
// What it sets up, through the HTTP API (docs/api.md): three accounts with avatars; six rooms
// the viewer is a member of, five with a few messages and one ("the image room") with 50
// messages by the three of them, 8 of which are images (photo-like JPEGs and PNGs of
// 250–750 KB, drawn with random shapes and noise on a canvas in Chromium, so real encoders
// made them; uploaded with POST /api/v1/uploads and posted with `attachment_id`).
//
// What it measures, for two profiles:
//   desktop     1280×800, no throttling;
//   slow-phone  Lighthouse's "Slow 4G" figures: 150 ms RTT, 1.6 Mbps down, 750 Kbps up
//               (Network.emulateNetworkConditions), 4× CPU slowdown
//               (Emulation.setCPUThrottlingRate), a 412×823 touch viewport at DPR 1.75;
// and two pages, each loaded first in a fresh browser context (cold cache, "first") and
// then again in a new tab of the same context (warm HTTP cache and any service worker,
// "repeat"): the panel (`/`, logged in, six rooms) and the image room
// (`/room.html?name=…`). A load ends once the page shows its state (the top bar's
// `#conn-state[data-state="connected"]`, and for a room also `body[data-room-state="joined"]`),
// its `load` event has fired, and neither the page nor anything else of the browser has
// made HTTP traffic for 1 s (2 s on the slow profile), so lazy images in view are counted.
// Each figure is the median of --runs runs (default 5), min–max beside it in the JSON.
//
//   wire KB       bytes the server sent the browser for the load, as transferred: counted
//                 by a TCP relay between Chromium and haproxy, so response headers, compressed
//                 bodies, websocket frames and a service worker's own fetches all count;
//                 request bytes are kept apart (`wire_up_bytes`). KB = 1,000 bytes.
//   http KB       the page's own HTTP responses, from Network.loadingFinished's
//                 encodedDataLength (headers and body as received; 0 from the cache).
//   ws KB         the websocket's share of wire KB (frames and the upgrade's answer).
//   other KB      wire KB less http and ws: what the browser fetched beside the page, which
//                 is a service worker's own fetches (its install, its network-first checks).
//   requests      the page's HTTP requests that went to the network; `cached` those the
//                 HTTP cache answered, `sw` those a service worker answered (its own fetches
//                 are in wire KB, not here), `ws` websockets opened.
//   connected     ms from the navigation's start (performance.timeOrigin) until the top bar
//                 shows "Connected"; `joined` until the room page has its `joined` frame
//                 applied; `dcl`, `load` and `fcp` from the Navigation and Paint Timing APIs.
//
// Writes the table and everything behind it (each run, each response of the first run) to
// test-artifacts/client-speed.json, with the build: commit, binaries (release or debug,
// from scripts/client-bench.sh) and the files changed under static/ and services/.

import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { launch, unique } from '../lib/harness.mjs';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    images: { type: 'string', default: '8' },
    profiles: { type: 'string', default: 'desktop,slow-phone' },
    out: { type: 'string', default: path.join(repoRoot, 'test-artifacts', 'client-speed.json') },
  },
});
const RUNS = Number(args.runs);
if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error(`--runs must be a positive integer, not ${args.runs}`);
const IMAGE_COUNT = Number(args.images);
if (!Number.isInteger(IMAGE_COUNT) || IMAGE_COUNT < 0 || IMAGE_COUNT > 8) throw new Error(`--images must be 0–8, not ${args.images}`);

const PROFILES = {
  desktop: {
    viewport: { width: 1280, height: 800 },
    network: null,
    cpu: 1,
    quietMs: 1000,
  },
  'slow-phone': {
    viewport: { width: 412, height: 823 },
    deviceScaleFactor: 1.75,
    isMobile: true,
    hasTouch: true,
    // Lighthouse's Slow 4G: 150 ms RTT, 1.6 Mbps down, 750 Kbps up (bytes per second here).
    network: { latency: 150, downloadThroughput: 1_600_000 / 8, uploadThroughput: 750_000 / 8 },
    cpu: 4,
    quietMs: 2000,
  },
};
const profileNames = args.profiles.split(',').map((p) => p.trim()).filter(Boolean);
for (const name of profileNames) if (!PROFILES[name]) throw new Error(`unknown profile ${name}`);

const BASE_URL = process.env.BASE_URL;
if (!BASE_URL) throw new Error('BASE_URL is not set: run this with scripts/client-bench.sh');
const PASSWORD = 'correct horse battery staple';
const ROOM_MESSAGES = 50;
/** Photo-like images: width, height, type. Their sizes come out at about 250–750 KB. */
const IMAGES = [
  [1600, 1200, 'image/jpeg'], [1200, 900, 'image/jpeg'], [1800, 1350, 'image/jpeg'],
  [1024, 768, 'image/jpeg'], [520, 390, 'image/png'], [1280, 960, 'image/jpeg'],
  [420, 315, 'image/png'], [1400, 1050, 'image/jpeg'],
];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (...parts) => console.error('[client-speed]', ...parts);

// ---------- the relay that counts bytes on the wire ----------

/**
 * A TCP relay in front of haproxy: the browser talks to it as it would to the server (the
 * Host and Origin headers pass through unchanged, so the origin checks hold), and it counts
 * every byte each way. A connection whose first bytes are a websocket upgrade is counted
 * apart; any other traffic marks the time of the last HTTP activity.
 */
async function startRelay(target) {
  const counters = { down: 0, up: 0, wsDown: 0, wsUp: 0, connections: 0, lastHttp: 0 };
  const sockets = new Set();
  const server = net.createServer((client) => {
    counters.connections += 1;
    const upstream = net.connect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    let ws = null;
    client.on('data', (chunk) => {
      if (ws === null) ws = /\r\nupgrade:[ \t]*websocket/i.test(chunk.toString('latin1'));
      counters.up += chunk.length;
      if (ws) counters.wsUp += chunk.length;
      else counters.lastHttp = performance.now();
    });
    upstream.on('data', (chunk) => {
      counters.down += chunk.length;
      if (ws) counters.wsDown += chunk.length;
      else counters.lastHttp = performance.now();
    });
    const end = () => { client.destroy(); upstream.destroy(); sockets.delete(client); sockets.delete(upstream); };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    counters,
    snapshot: () => ({ ...counters }),
    close: () => { for (const s of sockets) s.destroy(); server.close(); },
  };
}

// ---------- setting up the data ----------

async function call(token, method, urlPath, body, { raw = null, type = null } = {}) {
  for (let attempt = 0; ; attempt += 1) {
    const headers = {};
    if (token) headers.authorization = `Bearer ${token}`;
    let payload;
    if (raw) { payload = raw; headers['content-type'] = type; }
    else if (body !== undefined) { payload = JSON.stringify(body); headers['content-type'] = 'application/json'; }
    const response = await fetch(new URL(urlPath, BASE_URL), { method, headers, body: payload });
    const text = await response.text();
    if ((response.status === 429 || response.status === 503) && attempt < 20) {
      await sleep(1000 * Number(response.headers.get('retry-after') || 1));
      continue;
    }
    if (!response.ok) throw new Error(`${method} ${urlPath}: ${response.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }
}

/**
 * Photo-like images drawn in Chromium (soft blurred shapes on a gradient, then grain) and
 * encoded by its own JPEG and PNG encoders: noise keeps them from compressing away, as a
 * photo would. Deterministic (a seeded generator), so every run uploads the same bytes.
 */
async function makeImages(browser, specs) {
  const page = await browser.newPage();
  const images = [];
  for (const [index, [width, height, type]] of specs.entries()) {
    const base64 = await page.evaluate(async ({ width, height, type, seed }) => {
      let s = (seed * 2654435761) >>> 0;
      const rnd = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 4294967296; };
      const canvas = new OffscreenCanvas(width, height);
      const g = canvas.getContext('2d');
      const sky = g.createLinearGradient(0, 0, 0, height);
      sky.addColorStop(0, `hsl(${rnd() * 360},60%,70%)`);
      sky.addColorStop(1, `hsl(${rnd() * 360},50%,30%)`);
      g.fillStyle = sky;
      g.fillRect(0, 0, width, height);
      g.filter = 'blur(12px)';
      for (let i = 0; i < 60; i += 1) {
        g.fillStyle = `hsla(${rnd() * 360},${40 + rnd() * 40}%,${30 + rnd() * 40}%,0.6)`;
        g.beginPath();
        g.ellipse(rnd() * width, rnd() * height, 20 + (rnd() * width) / 4, 20 + (rnd() * height) / 4, rnd() * 3, 0, 7);
        g.fill();
      }
      g.filter = 'none';
      const img = g.getImageData(0, 0, width, height);
      const d = img.data;
      for (let i = 0; i < d.length; i += 4) {
        const n = (rnd() - 0.5) * 40;
        d[i] += n; d[i + 1] += n + (rnd() - 0.5) * 10; d[i + 2] += n;
      }
      g.putImageData(img, 0, 0);
      const blob = await canvas.convertToBlob({ type, quality: 0.85 });
      const bytes = new Uint8Array(await blob.arrayBuffer());
      let bin = '';
      for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      return btoa(bin);
    }, { width, height, type, seed: index + 1 });
    images.push({ width, height, type, bytes: Buffer.from(base64, 'base64') });
  }
  await page.close();
  return images;
}

async function signUp(prefix) {
  const username = unique(prefix);
  const reply = await call(null, 'POST', '/api/v1/accounts', {
    username, email: `${username}@example.com`, first_name: prefix[0].toUpperCase() + prefix.slice(1),
    last_name: 'Bench', password: PASSWORD,
  });
  return { username, token: reply.token };
}

const post = (who, room, fields) => call(who.token, 'POST', `/api/v1/rooms/${encodeURIComponent(room)}/messages`,
  { client_msg_id: randomUUID(), ...fields });

const LINES = [
  'Morning all, the deploy went out at nine and nothing has caught fire yet.',
  'Has anyone looked at the figures from last night? The p99 moved a little.',
  'ok',
  'I will take the review after lunch, send it my way.',
  'Here is what the view from the office looked like this morning 👇',
  'Lovely. Did the train run on time for once?',
  'It did! First time this week.',
  'Reminder: retro at 4, bring one thing that went well and one that did not.',
  'Can we move the planning to Thursday? Half the team is out tomorrow.',
  'Sure, Thursday 10:00 works for me. @everyone shout if not.',
];

async function setUp(browser) {
  const t0 = performance.now();
  const viewer = await signUp('viewer');
  const authors = [await signUp('ann'), await signUp('bob')];
  const people = [viewer, ...authors];
  const avatars = await makeImages(browser, [[256, 256, 'image/jpeg'], [256, 256, 'image/jpeg'], [256, 256, 'image/jpeg']]);
  // Best effort: a server that cannot set an avatar is still measured, and the JSON says so.
  let withAvatars = true;
  for (const [i, who] of people.entries()) {
    try {
      const { id } = await call(who.token, 'POST', '/api/v1/uploads', undefined, { raw: avatars[i].bytes, type: avatars[i].type });
      await call(who.token, 'PATCH', '/api/v1/me', { avatar_id: id });
    } catch (error) {
      log(`warning: no avatar for ${who.username}: ${error.message}`);
      withAvatars = false;
    }
  }
  const rooms = [];
  for (let r = 0; r < 5; r += 1) {
    const room = unique(`bench${r}`);
    rooms.push(room);
    for (const who of people) await call(who.token, 'POST', '/api/v1/rooms', { name: room });
    for (let m = 0; m < 3; m += 1) await post(people[(r + m) % 3], room, { text: LINES[(r * 3 + m) % LINES.length] });
  }
  const imageRoom = unique('photos');
  rooms.push(imageRoom);
  for (const who of people) await call(who.token, 'POST', '/api/v1/rooms', { name: imageRoom });
  const images = await makeImages(browser, IMAGES.slice(0, IMAGE_COUNT));
  // The images spread over the 50 messages, the last one among the newest (in view on load).
  const imageAt = new Map(images.map((image, i) => [Math.round(3 + (i * (ROOM_MESSAGES - 5)) / Math.max(1, images.length - 1)), image]));
  for (let m = 0; m < ROOM_MESSAGES; m += 1) {
    const who = people[m % 3];
    const image = imageAt.get(m);
    if (image) {
      const { id } = await call(who.token, 'POST', '/api/v1/uploads', undefined, { raw: image.bytes, type: image.type });
      await post(who, imageRoom, { attachment_id: id, text: m % 2 ? '' : 'from the walk today' });
    } else {
      await post(who, imageRoom, { text: `${LINES[m % LINES.length]}${m % 7 === 0 ? ` (${m})` : ''}` });
    }
  }
  log(`set up in ${Math.round(performance.now() - t0)} ms: ${rooms.length} rooms, ${ROOM_MESSAGES} messages in #${imageRoom}`
    + ` with ${images.length} images of ${images.map((i) => Math.round(i.bytes.length / 1000)).join(', ')} KB`);
  return {
    viewer, rooms, imageRoom, withAvatars,
    images: images.map(({ width, height, type, bytes }) => ({ width, height, type, bytes: bytes.length })),
  };
}

// ---------- one page load ----------

/** Marks, in the page, when it shows "Connected" and when the room is joined. */
function marker() {
  const marks = {};
  Object.defineProperty(window, '__clientSpeed', { value: marks });
  const check = () => {
    if (marks.connected === undefined && document.querySelector('#conn-state[data-state="connected"]')) {
      marks.connected = performance.now();
    }
    if (marks.joined === undefined && document.body?.dataset.roomState === 'joined') marks.joined = performance.now();
  };
  new MutationObserver(check).observe(document, {
    subtree: true, childList: true, attributes: true, attributeFilter: ['data-state', 'data-room-state'],
  });
}

/** The page's own network activity, from the DevTools protocol. */
async function instrument(page, profile) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  if (profile.network) {
    await cdp.send('Network.emulateNetworkConditions', { offline: false, connectionType: 'cellular4g', ...profile.network });
  }
  if (profile.cpu > 1) await cdp.send('Emulation.setCPUThrottlingRate', { rate: profile.cpu });
  const requests = new Map();
  const sockets = [];
  const state = { lastActivity: performance.now() };
  const touch = () => { state.lastActivity = performance.now(); };
  let redirects = 0;
  cdp.on('Network.requestWillBeSent', (e) => {
    if (!/^https?:/.test(e.request.url)) return;
    touch();
    if (e.redirectResponse) redirects += 1;
    requests.set(e.requestId, { url: e.request.url, type: e.type, done: false, bytes: 0 });
  });
  cdp.on('Network.requestServedFromCache', (e) => { const r = requests.get(e.requestId); if (r) r.cache = true; });
  cdp.on('Network.responseReceived', (e) => {
    const r = requests.get(e.requestId);
    if (!r) return;
    touch();
    r.status = e.response.status;
    r.mime = e.response.mimeType;
    r.encoding = e.response.headers['content-encoding'] ?? e.response.headers['Content-Encoding'] ?? null;
    if (e.response.fromDiskCache || e.response.fromPrefetchCache) r.cache = true;
    if (e.response.fromServiceWorker) r.sw = true;
  });
  cdp.on('Network.loadingFinished', (e) => {
    const r = requests.get(e.requestId);
    if (!r) return;
    touch();
    r.done = true;
    r.bytes = e.encodedDataLength;
  });
  cdp.on('Network.loadingFailed', (e) => {
    const r = requests.get(e.requestId);
    if (!r) return;
    touch();
    r.done = true;
    r.failed = e.errorText;
  });
  cdp.on('Network.webSocketCreated', (e) => sockets.push(e.url));
  return {
    state,
    inflight: () => [...requests.values()].filter((r) => !r.done).length,
    summary() {
      const all = [...requests.values()];
      const network = all.filter((r) => !r.cache && !r.sw);
      return {
        requests: network.length,
        cached: all.filter((r) => r.cache).length,
        sw: all.filter((r) => r.sw && !r.cache).length,
        redirects,
        ws: sockets.length,
        http_bytes: network.reduce((sum, r) => sum + (r.bytes || 0), 0),
        responses: all.map((r) => ({
          path: new URL(r.url).pathname + new URL(r.url).search, type: r.type, status: r.status ?? null,
          bytes: r.bytes, encoding: r.encoding ?? null, from: r.cache ? 'cache' : r.sw ? 'sw' : 'network',
          ...(r.failed ? { failed: r.failed } : {}),
        })),
      };
    },
  };
}

async function settle(probe, relay, quietMs, timeoutMs = 120_000) {
  const start = performance.now();
  for (;;) {
    const now = performance.now();
    if (probe.inflight() === 0 && now - probe.state.lastActivity >= quietMs && now - relay.counters.lastHttp >= quietMs) {
      return true;
    }
    if (now - start > timeoutMs) {
      log(`warning: the network did not go quiet within ${timeoutMs} ms (${probe.inflight()} requests in flight)`);
      return false;
    }
    await sleep(100);
  }
}

async function load(context, profile, relay, urlPath, room) {
  const page = await context.newPage();
  const probe = await instrument(page, profile);
  const before = relay.snapshot();
  await page.goto(urlPath, { waitUntil: 'load', timeout: 180_000 });
  await page.waitForFunction((isRoom) => {
    const m = window.__clientSpeed;
    return m && m.connected !== undefined && (!isRoom || m.joined !== undefined);
  }, room, { timeout: 120_000, polling: 100 });
  await settle(probe, relay, profile.quietMs);
  const after = relay.snapshot();
  const timing = await page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const fcp = performance.getEntriesByName('first-contentful-paint')[0];
    const m = window.__clientSpeed;
    return {
      connected_ms: m.connected ?? null,
      joined_ms: m.joined ?? null,
      dcl_ms: nav?.domContentLoadedEventEnd ?? null,
      load_ms: nav?.loadEventEnd ?? null,
      fcp_ms: fcp?.startTime ?? null,
      messages: document.querySelectorAll('#messages li.msg').length,
      images_shown: [...document.querySelectorAll('#messages .msg-image img')].filter((i) => i.complete && i.naturalWidth > 0).length,
      service_worker: Boolean(navigator.serviceWorker?.controller),
    };
  });
  const summary = probe.summary();
  await page.close();
  return {
    wire_bytes: after.down - before.down,
    wire_up_bytes: after.up - before.up,
    ws_bytes: after.wsDown - before.wsDown,
    ...summary,
    other_bytes: (after.down - before.down) - (after.wsDown - before.wsDown) - summary.http_bytes,
    ...timing,
  };
}

// ---------- the runs ----------

const FIGURES = ['wire_bytes', 'wire_up_bytes', 'ws_bytes', 'http_bytes', 'other_bytes', 'requests', 'cached', 'sw', 'ws',
  'connected_ms', 'joined_ms', 'dcl_ms', 'load_ms', 'fcp_ms', 'images_shown'];

function median(values) {
  const v = values.filter((x) => typeof x === 'number').sort((a, b) => a - b);
  if (!v.length) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

function aggregate(runs) {
  const out = {};
  for (const key of FIGURES) {
    const values = runs.map((r) => r[key]).filter((x) => typeof x === 'number');
    if (!values.length) continue;
    out[key] = { median: Math.round(median(values) * 10) / 10, min: Math.min(...values), max: Math.max(...values) };
  }
  return out;
}

function buildInfo() {
  const git = (...a) => { try { return execFileSync('git', ['-C', repoRoot, ...a], { encoding: 'utf8' }).trimEnd(); } catch { return null; } };
  const changed = git('status', '--short', '--', 'static', 'services');
  let chromium = null;
  try { chromium = execFileSync(process.env.CHROMIUM || '/usr/bin/chromium', ['--version'], { encoding: 'utf8' }).trim(); } catch { /* unknown */ }
  return {
    commit: git('log', '-1', '--format=%h'),
    changed_files: changed ? changed.split('\n') : [],
    binaries: process.env.BENCH_BINARIES || 'unknown',
    chromium,
  };
}

const LEGEND = `wire KB: all the server sent the browser (KB = 1,000 bytes), of which http (the page's own
responses), ws (the websocket) and other (a service worker's fetches); requests: the page's
requests to the network, cache/sw: those answered by the HTTP cache / a service worker;
connected, joined: ms from the navigation's start, median (min–max); images: message images
shown once the network is quiet.`;

const kb = (bytes) => (bytes == null ? '—' : (bytes / 1000).toFixed(1));
const ms = (v) => (v == null ? '—' : String(Math.round(v)));

function table(results) {
  const rows = [['profile', 'page', 'load', 'wire KB', 'http', 'ws', 'other', 'requests', 'cache/sw', 'connected ms', 'joined ms', 'images']];
  for (const [profile, pages] of Object.entries(results)) {
    for (const [pageName, loads] of Object.entries(pages)) {
      for (const [kind, { median: m }] of Object.entries(loads)) {
        const g = (k) => m[k]?.median;
        const range = (k) => (m[k] ? `${ms(m[k].median)} (${ms(m[k].min)}–${ms(m[k].max)})` : '—');
        rows.push([profile, pageName, kind, kb(g('wire_bytes')), kb(g('http_bytes')), kb(g('ws_bytes')),
          kb(g('other_bytes')), String(g('requests') ?? '—'), `${g('cached') ?? 0}/${g('sw') ?? 0}`,
          range('connected_ms'), pageName === 'room' ? range('joined_ms') : '—',
          pageName === 'room' ? String(g('images_shown') ?? '—') : '—']);
      }
    }
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r, n) => {
    const line = r.map((c, i) => (i < 3 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
    return n === 0 ? `${line}\n${widths.map((w) => '-'.repeat(w)).join('  ')}` : line;
  }).join('\n');
}

async function main() {
  const build = buildInfo();
  log(`build ${build.commit}${build.changed_files.length ? ` with ${build.changed_files.length} changed file(s) under static/ or services/` : ''},`
    + ` ${build.binaries} binaries, ${build.chromium}`);
  const relay = await startRelay(new URL(BASE_URL));
  const browser = await launch();
  try {
    const setup = await setUp(browser);
    const pages = { panel: '/', room: `/room.html?name=${encodeURIComponent(setup.imageRoom)}` };
    const results = {};
    const firstRun = {};
    for (const profileName of profileNames) {
      const profile = PROFILES[profileName];
      results[profileName] = {};
      for (const [pageName, urlPath] of Object.entries(pages)) {
        const runs = { first: [], repeat: [] };
        for (let run = 0; run < RUNS; run += 1) {
          const context = await browser.newContext({
            baseURL: relay.url,
            viewport: profile.viewport,
            deviceScaleFactor: profile.deviceScaleFactor ?? 1,
            isMobile: profile.isMobile ?? false,
            hasTouch: profile.hasTouch ?? false,
          });
          await context.addCookies([{ name: 'sc_session', value: setup.viewer.token, url: relay.url }]);
          await context.addInitScript(marker);
          try {
            for (const kind of ['first', 'repeat']) {
              const result = await load(context, profile, relay, urlPath, pageName === 'room');
              if (run === 0) (firstRun[`${profileName} ${pageName} ${kind}`] = result.responses);
              delete result.responses;
              runs[kind].push(result);
              log(`${profileName} ${pageName} ${kind} #${run + 1}: ${kb(result.wire_bytes)} KB, ${result.requests} requests`
                + ` (${result.cached} cached, ${result.sw} sw), connected ${ms(result.connected_ms)} ms`
                + `${pageName === 'room' ? `, joined ${ms(result.joined_ms)} ms, ${result.messages} messages, ${result.images_shown} images` : ''}`);
            }
          } finally {
            await context.close();
          }
        }
        results[profileName][pageName] = Object.fromEntries(
          Object.entries(runs).map(([kind, list]) => [kind, { median: aggregate(list), runs: list }]));
      }
    }
    const text = table(results);
    console.log(`\nClient speed at ${build.commit}${build.changed_files.length ? ' (with uncommitted changes)' : ''},`
      + ` ${build.binaries} binaries, median of ${RUNS} run(s)\n\n${text}\n\n${LEGEND}\n`);
    const report = {
      date: new Date().toISOString(),
      build,
      runs: RUNS,
      profiles: Object.fromEntries(profileNames.map((p) => [p, PROFILES[p]])),
      setup: { rooms: setup.rooms.length, room_messages: ROOM_MESSAGES, avatars: setup.withAvatars, images: setup.images },
      table: text,
      results,
      responses_of_the_first_run: firstRun,
    };
    mkdirSync(path.dirname(args.out), { recursive: true });
    writeFileSync(args.out, `${JSON.stringify(report, null, 2)}\n`);
    log(`written to ${path.relative(process.cwd(), args.out) || args.out}`);
  } finally {
    await browser.close();
    relay.close();
  }
}

await main();
