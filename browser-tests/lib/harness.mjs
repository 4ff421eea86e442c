// Helpers for the browser tests. scripts/browser-test.sh starts a real cluster (haproxy in
// front of two gateways, a message service, Postgres, Redis) and runs each test file with
// BASE_URL, CLUSTER_DIR, ARTIFACTS_DIR and CHROMIUM in the environment.

import { chromium } from 'playwright-core';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { axeAvailable, axeViolations, describeViolations } from './axe.mjs';

export const DESKTOP = Object.freeze({ width: 1280, height: 800 });
export const PHONE = Object.freeze({ width: 390, height: 844 });

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * Read lazily, so that a test file can be imported (and its mistakes reported) even outside
 * the script; only the helpers that need the cluster fail, and they say how to get one.
 */
function baseUrl() {
  const url = process.env.BASE_URL;
  if (!url) throw new Error('BASE_URL is not set: run the tests with scripts/browser-test.sh');
  return url;
}

function clusterDir() {
  const dir = process.env.CLUSTER_DIR;
  if (!dir) throw new Error('CLUSTER_DIR is not set: run the tests with scripts/browser-test.sh');
  return dir;
}

function artifactsDir() {
  const dir = process.env.ARTIFACTS_DIR || path.join(repoRoot, 'test-artifacts', 'browser');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * Debian's chromium rather than Playwright's own browser builds, which cannot be downloaded
 * here. Without the background-networking flags Chromium phones home at start-up, and the
 * closed network refuses those connections (noise in the logs, slow starts).
 */
export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * A context per page, so each simulated person has their own cookie jar (own session).
 * `problems` gathers what a person would see as breakage (uncaught errors, console
 * errors, alert/confirm/prompt dialogs) so a test can end with
 * `assert.deepEqual(problems, [])`. Dialogs are dismissed, or the page would hang on them.
 * Chromium logs every non-2xx response as a console error ("Failed to load resource"):
 * a test that expects one (a wrong password, say) filters those out itself.
 */
export async function newPage(browser, { viewport = DESKTOP, serviceWorkers = 'block' } = {}) {
  // The pages register a service worker (static/sw.js). It is kept out unless a test asks
  // for it (`serviceWorkers: 'allow'`, as 72-notifications-install does): requests it
  // answers pass by page.route() and by what the tests count of the network, and its cached
  // copies would let a page load while a test means the server to be unreachable.
  const context = await browser.newContext({ baseURL: baseUrl(), viewport, serviceWorkers });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const where = message.location()?.url;
    problems.push(`console.error: ${message.text()}${where ? ` (${where})` : ''}`);
  });
  page.on('dialog', (dialog) => {
    problems.push(`dialog ${dialog.type()}: ${dialog.message()}`);
    dialog.dismiss().catch(() => {});
  });
  page.on('crash', () => problems.push('crash: the page crashed'));
  return { context, page, problems };
}

/** Lets a resize lay out and paint before the capture. */
async function settled(page) {
  await page.evaluate(
    () => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))),
  );
}

/** The impacts that fail screenshots(); axe's others are "moderate" and "minor". */
const FAILING_IMPACTS = new Set(['serious', 'critical']);

/**
 * Both layouts of the same state, for a person to look at in test-artifacts/browser/: the
 * tests assert behaviour, the screenshots show what it looked like. The page gets its own
 * viewport back, so a test can go on as before.
 *
 * Each layout is also checked by axe (lib/axe.mjs), the whole page, so that every state a
 * test thought worth a look is held to the accessibility rules without each test asking:
 * a serious or critical violation at either width fails the call, after both captures (they
 * show what was wrong), with each rule and the elements that break it. Lesser findings
 * (best-practice advice, moderate ones) do not fail a test. axe-core is a dependency of the
 * suite (browser-tests/package.json), so its absence is an error, not a skip.
 */
export async function screenshots(page, name) {
  if (!axeAvailable) throw new Error('axe-core is not installed in browser-tests/node_modules: run npm ci there');
  const safe =
    String(name)
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '') || 'page';
  const dir = artifactsDir();
  const previous = page.viewportSize();
  const shots = [];
  const failures = [];
  for (const [label, viewport] of [['desktop', DESKTOP], ['phone', PHONE]]) {
    await page.setViewportSize(viewport);
    await settled(page);
    const file = path.join(dir, `${safe}-${label}.png`);
    await page.screenshot({ path: file, fullPage: false, animations: 'disabled', caret: 'hide' });
    shots.push(file);
    const serious = (await axeViolations(page, 'body')).filter((v) => FAILING_IMPACTS.has(v.impact));
    if (serious.length) failures.push(`at ${label} width (${viewport.width} px):\n${describeViolations(serious)}`);
  }
  if (previous) await page.setViewportSize(previous);
  if (failures.length) throw new Error(`axe on "${name}" (${page.url()}):\n${failures.join('\n')}`);
  return shots;
}

const issued = new Set();

/**
 * Every run has a fresh database, but test files within a run share it: names must not
 * collide. The shape fits both a username (a letter first, then letters, digits and `_`)
 * and a room name (lowercase), so one helper serves both.
 */
export function unique(prefix = 'u') {
  let head = String(prefix).toLowerCase().replace(/[^a-z0-9_]/g, '');
  if (!/^[a-z]/.test(head)) head = `u${head}`;
  head = head.slice(0, 14);
  for (;;) {
    const tail = [...randomBytes(5)].map((b) => (b % 36).toString(36)).join('');
    const name = `${head}_${tail}`;
    if (!issued.has(name)) {
      issued.add(name);
      return name;
    }
  }
}

/**
 * Every gateway cluster.sh started, dead or alive: a pid file stays after killGateway(),
 * so a test can still name the gateway it killed.
 */
export function gateways() {
  return readdirSync(path.join(clusterDir(), 'pids'))
    .map((file) => /^(gateway-(\d+))\.pid$/.exec(file))
    .filter(Boolean)
    .sort((a, b) => Number(a[2]) - Number(b[2]))
    .map((match) => match[1]);
}

/**
 * One metric as each gateway's own /metrics reports it, `{ 'gateway-1': n, ... }`: which
 * gateway did something is known from the servers' counters rather than assumed from the
 * balancer's round-robin. `metric` is the exposition name (`sc_gateway_frames_in_total`
 * for a counter); labelled series are summed. A labelled family (`sc_gateway_errors_total`)
 * is not exposed at all until its first series, so a name that is absent reads as 0: check
 * the spelling against /metrics. A gateway that does not answer (killed) maps to null. Ops
 * ports follow cluster.sh: gateway i serves /metrics on P+100+i, P being the balancer's port.
 */
export async function metricByGateway(metric) {
  const port = Number(new URL(baseUrl()).port);
  const values = {};
  for (const name of gateways()) {
    const i = Number(name.slice('gateway-'.length));
    let text;
    try {
      const response = await fetch(`http://127.0.0.1:${port + 100 + i}/metrics`, {
        signal: AbortSignal.timeout(2000),
      });
      text = await response.text();
    } catch {
      values[name] = null;
      continue;
    }
    values[name] = parseMetric(text, metric);
  }
  return values;
}

function parseMetric(text, metric) {
  let sum = 0;
  for (const line of text.split('\n')) {
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})? (\S+)/.exec(line);
    if (sample && sample[1] === metric) sum += Number(sample[2]);
  }
  return sum;
}

/**
 * Open websockets per gateway (`sc_gateway_connections`), null for one that does not
 * answer: tells where pages are connected, and that a killed gateway's sockets moved.
 */
export async function connectionsByGateway() {
  return metricByGateway('sc_gateway_connections');
}

/**
 * Reads /proc rather than trusting kill(pid, 0): a SIGKILLed gateway whose parent never
 * reaps it stays a zombie, which kill(pid, 0) still reports as alive.
 */
function processGone(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch (error) {
    if (error.code === 'ENOENT') return true;
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true;
    }
  }
}

/**
 * A crash, not a shutdown: SIGKILL gives the gateway no chance to drain or to close its
 * sockets with 1012, which is what the clients' recovery must survive. Returns once the
 * process is gone, so its port is closed when the test goes on.
 */
export async function killGateway(name) {
  const pid = Number(readFileSync(path.join(clusterDir(), 'pids', `${name}.pid`), 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 1) throw new Error(`bad pid file for ${name}`);
  try {
    process.kill(pid, 'SIGKILL');
  } catch (error) {
    if (error.code !== 'ESRCH') throw error;
  }
  await waitFor(() => processGone(pid), { timeout: 10000, message: `${name} (pid ${pid}) to exit` });
}

/**
 * For server-side state that settles on its own time (metrics, a reconnect), where a fixed
 * sleep is either flaky or slow. A predicate that throws counts as "not yet"; its last
 * error is in the timeout message. Returns the predicate's truthy value.
 */
export async function waitFor(fn, { timeout = 10000, interval = 100, message } = {}) {
  const deadline = Date.now() + timeout;
  let lastError;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const what = message || fn.toString();
      const why = lastError ? `; last error: ${lastError.message}` : '';
      throw new Error(`waitFor: gave up after ${timeout} ms waiting for ${what}${why}`);
    }
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

/**
 * The API as the page's person, from inside the page: the session cookie is HttpOnly, so
 * only the browser can send it. The page must already be on the BASE_URL origin (after a
 * goto). A JSON body is parsed; any other body comes back as text (null when empty).
 */
export async function api(page, method, urlPath, body) {
  const origin = new URL(baseUrl()).origin;
  if (!page.url().startsWith(origin)) {
    throw new Error(`api(): the page is at ${page.url()}, not on ${origin}; page.goto() a page first`);
  }
  return page.evaluate(
    async ({ method, urlPath, body }) => {
      const init = { method, credentials: 'same-origin', headers: {} };
      if (body !== undefined) {
        init.headers['content-type'] = 'application/json';
        init.body = JSON.stringify(body);
      }
      const response = await fetch(urlPath, init);
      const text = await response.text();
      let parsed = text || null;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        // not JSON: keep the text
      }
      return { status: response.status, body: parsed };
    },
    { method, urlPath, body },
  );
}
