// Notifications and the installable app (issue 24): the tab's title counts the unread
// messages of the person's other rooms, live, and drops a room read in another tab; a
// short sound plays for news in a room that is not open (a brighter one for a mention),
// which the person can turn off, and never for the open room; a room can be muted from its
// row, by keyboard too, after which it keeps a grey badge and makes no sound, no desktop
// notification and no count in the title. The app is installable: every page links the
// manifest and registers a service worker, which keeps the shell so that the app opens
// offline in its own offline state, never keeps anything of /api/, and goes to the network
// first, so that a file changed on the server reaches an online page at once.
//
// Sounds are observed, not heard: the pages get a stand-in AudioContext that records the
// notes started, and the page counts each sound on its root element (`data-sounds`).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch, newPage, screenshots, unique, api, waitFor } from '../lib/harness.mjs';
import { signUp, enterRoom, send, waitShown, waitJoined } from '../lib/chat.mjs';

const staticDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../static');

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

const roomUrl = (room) => `/room.html?name=${encodeURIComponent(room)}`;

/** Waits until the page's title is exactly `title`. */
async function waitTitle(page, title) {
  await page.waitForFunction((t) => document.title === t, title, { timeout: 10_000 })
    .catch(async (error) => { throw new Error(`title is "${await page.title()}", not "${title}": ${error.message}`); });
}

/** The unread badge of a room's row, as the list shows it. */
const badgeOf = (page, room) => page.locator(`li.room-row[data-room="${room}"] .badge`);
async function waitBadge(page, room, count) {
  await page.waitForFunction(({ room, count }) => document.querySelector(`li.room-row[data-room="${room}"] .badge`)?.dataset.count === String(count),
    { room, count }, { timeout: 10_000 });
}

/** How many sounds the page played (its `data-sounds`), and which was last. */
const sounds = (page) => page.evaluate(() => ({
  count: Number(document.documentElement.dataset.sounds ?? 0), last: document.documentElement.dataset.lastSound ?? null,
}));

/**
 * A stand-in for the Web Audio API, which records the frequency of every note started in
 * `window.tones`; headless Chromium has no speakers, and a test must not depend on them.
 */
async function recordSounds(context) {
  await context.addInitScript(() => {
    window.tones = [];
    class Param { setValueAtTime(v) { this.value = v; return this; } exponentialRampToValueAtTime() { return this; } linearRampToValueAtTime() { return this; } }
    class Node { connect(next) { return next; } disconnect() {} }
    window.AudioContext = class {
      constructor() { this.state = 'running'; this.currentTime = 0; this.destination = new Node(); }
      resume() { return Promise.resolve(); }
      createOscillator() {
        const osc = new Node();
        osc.frequency = new Param();
        osc.start = () => window.tones.push(osc.frequency.value);
        osc.stop = () => {};
        return osc;
      }
      createGain() { const gain = new Node(); gain.gain = new Param(); return gain; }
    };
  });
}

/** Desktop notifications, allowed, and recorded in `window.raised` as the page raises them. */
async function recordNotifications(context) {
  await context.grantPermissions(['notifications']);
  await context.addInitScript(() => {
    window.raised = [];
    const Real = window.Notification;
    window.Notification = class extends Real {
      constructor(title, options) {
        window.raised.push({ title, body: options?.body });
        super(title, options);
      }
    };
  });
}

/**
 * Browsers let a page start audio only after the person interacted with it: a click on
 * the page's heading, as someone reading the panel might.
 */
async function interact(page) {
  await page.locator('h1').first().click();
}

/** Two people in two rooms; the first on the panel, connected, the second in `first`. */
async function twoInTwoRooms(prefix, { setUp = async () => {} } = {}) {
  const ann = unique('ann');
  const bob = unique('bob');
  const first = unique(`${prefix}a`);
  const second = unique(`${prefix}b`);
  const a = await newPage(browser);
  const b = await newPage(browser);
  await setUp(a.context);
  await signUp(a.page, ann);
  await enterRoom(a.page, first);
  await enterRoom(a.page, second);
  await signUp(b.page, bob);
  await enterRoom(b.page, second);
  await enterRoom(b.page, first);
  await a.page.goto('/');
  await a.page.locator(`li.room-row[data-room="${second}"]`).waitFor();
  await a.page.locator('#conn-state[data-state="connected"]').waitFor();
  return { ann, bob, first, second, a, b };
}

/** `b` says `text` in `room`, and waits until it is stored (shown as sent). */
async function say(b, room, text) {
  if (new URL(b.page.url()).searchParams.get('name') !== room) {
    await b.page.goto(roomUrl(room));
    await waitJoined(b.page);
  }
  const before = await b.page.locator('#messages li.msg').count();
  await send(b.page, text);
  await waitShown(b.page, before + 1);
}

test('the tab’s title counts the unread messages of the other rooms, live, and drops a room read in another tab', async () => {
  const { first, second, a, b } = await twoInTwoRooms('title');
  assert.equal(await a.page.title(), 'Your rooms · Super Channels', 'nothing unread yet');

  // Live, from `notify` frames, over all of the person's rooms.
  await say(b, first, 'one');
  await say(b, first, 'two');
  await waitTitle(a.page, '(2) Your rooms · Super Channels');
  await say(b, second, 'three');
  await waitTitle(a.page, '(3) Your rooms · Super Channels');
  await screenshots(a.page, 'notifications-panel');

  // The person opens the first room in another tab: that tab counts only the other room,
  // and the panel's tab hears it was read (its own socket is still told of the messages).
  const reader = await a.context.newPage();
  await reader.goto(roomUrl(first));
  await waitJoined(reader);
  await waitTitle(reader, `(1) #${first} · Super Channels`);
  await waitTitle(a.page, '(1) Your rooms · Super Channels');
  await reader.close();

  // In a room page, the room itself is never counted: a message there is read as it comes.
  await a.page.goto(roomUrl(first));
  await waitJoined(a.page);
  await waitTitle(a.page, `(1) #${first} · Super Channels`);
  await say(b, second, 'four');
  await waitTitle(a.page, `(2) #${first} · Super Channels`);
  await say(b, first, 'five');
  await waitShown(a.page, 3);
  assert.equal(await a.page.title(), `(2) #${first} · Super Channels`, 'the open room adds nothing');

  assert.deepEqual(a.problems, []);
  assert.deepEqual(b.problems, []);
  await a.context.close();
  await b.context.close();
});

test('a sound for news in a room that is not open, another for a mention; it can be turned off', async () => {
  const { ann, first, second, a, b } = await twoInTwoRooms('sound', { setUp: recordSounds });
  const setting = a.page.getByLabel('Sound for new messages');
  assert.equal(await setting.isChecked(), true, 'on unless turned off');
  await interact(a.page);

  await say(b, first, 'hello');
  await a.page.waitForFunction(() => document.documentElement.dataset.sounds === '1');
  assert.deepEqual(await sounds(a.page), { count: 1, last: 'message' });
  assert.equal((await a.page.evaluate(() => window.tones)).length, 2, 'played with Web Audio: two notes');

  // A mention plays its own sound, even right after another one.
  await say(b, second, `@${ann} are you there?`);
  await a.page.waitForFunction(() => document.documentElement.dataset.sounds === '2');
  assert.deepEqual(await sounds(a.page), { count: 2, last: 'mention' });

  // Turned off, nothing plays, not even for a mention; the setting stays for the next page.
  await setting.uncheck();
  await say(b, first, `@${ann} and now?`);
  await waitBadge(a.page, first, 2); // the frame has come (the badge and the sound are one step)
  assert.deepEqual(await sounds(a.page), { count: 2, last: 'mention' });
  await a.page.reload();
  await a.page.locator(`li.room-row[data-room="${second}"]`).waitFor();
  assert.equal(await setting.isChecked(), false, 'kept in this browser');
  await setting.check();

  // In a room page: nothing for the open room, a sound for another room.
  await a.page.goto(roomUrl(first));
  await waitJoined(a.page);
  await a.page.getByLabel('Message', { exact: true }).click();
  await say(b, first, `@${ann} here`);
  await waitShown(a.page, 3);
  assert.deepEqual(await sounds(a.page), { count: 0, last: null }, 'the open room makes no sound');
  await say(b, second, `@${ann} over here`);
  await a.page.waitForFunction(() => document.documentElement.dataset.sounds === '1');
  assert.equal((await sounds(a.page)).last, 'mention');

  assert.deepEqual(a.problems, []);
  assert.deepEqual(b.problems, []);
  await a.context.close();
  await b.context.close();
});

test('a muted room, muted by keyboard from its row, keeps a grey badge and makes no sound, notification or title count', async () => {
  const { ann, bob, first: loud, second: quiet, a, b } = await twoInTwoRooms('mute', {
    setUp: async (context) => { await recordSounds(context); await recordNotifications(context); },
  });
  const panel = (await api(a.page, 'GET', '/api/v1/me/panel')).body;
  assert.ok(panel.rooms.every((r) => typeof r.muted === 'boolean'),
    'the server says whether each room is muted (GET /me/panel, and PATCH /rooms/{room}/membership to set it)');
  await interact(a.page);
  const toggle = a.page.getByRole('button', { name: `Mute notifications from #${quiet}`, exact: true });
  assert.equal(await toggle.getAttribute('aria-pressed'), 'false');

  // By keyboard: the toggle keeps the focus when its row is drawn again.
  await toggle.focus();
  await a.page.keyboard.press('Enter');
  await a.page.locator(`li.room-row[data-room="${quiet}"][data-muted="true"]`).waitFor();
  assert.equal(await toggle.getAttribute('aria-pressed'), 'true');
  assert.equal(await a.page.evaluate(() => document.activeElement?.getAttribute('aria-label')), `Mute notifications from #${quiet}`);
  assert.equal(await a.page.locator(`li.room-row[data-room="${quiet}"] .mute-toggle img`).getAttribute('src'), '/icons/bell-off.svg');

  // The server keeps it.
  await a.page.reload();
  await a.page.locator(`li.room-row[data-room="${quiet}"][data-muted="true"]`).waitFor();
  assert.equal((await api(a.page, 'GET', '/api/v1/me/panel')).body.rooms.find((r) => r.name === quiet)?.muted, true);
  await interact(a.page);

  // News in the muted room: its badge counts it, and nothing else does.
  await say(b, quiet, `@${ann} psst`);
  await waitBadge(a.page, quiet, 1);
  assert.equal(await a.page.title(), 'Your rooms · Super Channels');
  assert.deepEqual(await sounds(a.page), { count: 0, last: null });
  assert.deepEqual(await a.page.evaluate(() => window.raised), []);
  await screenshots(a.page, 'notifications-muted-room');

  // News in the other room: all of it.
  await say(b, loud, 'hello');
  await waitTitle(a.page, '(1) Your rooms · Super Channels');
  assert.deepEqual(await sounds(a.page), { count: 1, last: 'message' });
  assert.deepEqual(await a.page.evaluate(() => window.raised), [{ title: `New in #${loud}`, body: `${bob}: hello` }]);

  // Unmuted, it counts again.
  await toggle.click();
  await a.page.locator(`li.room-row[data-room="${quiet}"][data-muted="false"]`).waitFor();
  await waitTitle(a.page, '(2) Your rooms · Super Channels');

  // The room page's sidebar has the same toggle.
  await a.page.goto(roomUrl(loud));
  await waitJoined(a.page);
  await waitTitle(a.page, `(1) #${loud} · Super Channels`);
  await a.page.locator('#room-list').getByRole('button', { name: `Mute notifications from #${quiet}`, exact: true }).press('Enter');
  await a.page.locator(`#room-list li.room-row[data-room="${quiet}"][data-muted="true"]`).waitFor();
  await waitTitle(a.page, `#${loud} · Super Channels`);
  await screenshots(a.page, 'notifications-muted-sidebar');

  assert.deepEqual(a.problems, []);
  assert.deepEqual(b.problems, []);
  await a.context.close();
  await b.context.close();
});

test('installable: every page links the manifest and registers the worker; the manifest is served and read without errors', async () => {
  const base = process.env.BASE_URL;
  const pages = readdirSync(staticDir).filter((f) => f.endsWith('.html'));
  assert.ok(pages.length >= 10, `pages found: ${pages}`);
  for (const file of pages) {
    const html = await (await fetch(new URL(`/${file}`, base))).text();
    const head = html.slice(0, html.indexOf('</head>'));
    assert.match(head, /<link rel="manifest" href="\/manifest\.webmanifest">/, `${file} links the manifest`);
    assert.match(head, /<script type="module" src="\/js\/sw-register\.js"><\/script>/, `${file} registers the worker`);
  }
  const response = await fetch(new URL('/manifest.webmanifest', base));
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type'), /^application\/manifest\+json/);
  const manifest = await response.json();
  assert.equal(manifest.name, 'Super Channels');
  assert.equal(manifest.start_url, '/');
  assert.equal(manifest.display, 'standalone');
  assert.ok(manifest.theme_color && manifest.background_color && manifest.short_name);
  for (const icon of manifest.icons) {
    assert.ok(icon.src.startsWith('/icons/'), icon.src);
    const got = await fetch(new URL(icon.src, base));
    assert.equal(got.status, 200, icon.src);
    assert.equal(got.headers.get('content-type'), icon.type);
  }

  // Chromium's own reading of it, on a page anyone may open.
  const { context, page, problems } = await newPage(browser, { serviceWorkers: 'allow' });
  await page.goto('/signup.html'); // a page anyone may open, which asks the server nothing
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 15_000 });
  const cdp = await context.newCDPSession(page);
  const read = await cdp.send('Page.getAppManifest');
  assert.equal(new URL(read.url).pathname, '/manifest.webmanifest');
  assert.deepEqual(read.errors, []);
  // Whether Chromium would offer to install it (icons, display, start URL, a worker): a
  // test's browser context is off the record, which alone stops it here.
  const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
  assert.deepEqual(installabilityErrors.filter((e) => e.errorId !== 'in-incognito'), []);
  assert.deepEqual(problems, []);
  await context.close();
});

test('the service worker keeps the shell, never /api/: the panel opens offline in its offline state', async () => {
  const { context, page, problems } = await newPage(browser, { serviceWorkers: 'allow' });
  const ann = unique('ann');
  const room = unique('offline');
  await signUp(page, ann);
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 15_000 });
  assert.equal(await page.evaluate(async () => (await navigator.serviceWorker.ready).active?.scriptURL),
    new URL('/sw.js', process.env.BASE_URL).href);

  // Private data passes through the worker: the panel's, a room's, a message sent.
  await enterRoom(page, room);
  await send(page, 'kept out of every cache');
  await waitShown(page, 1);
  await page.goto('/');
  await page.getByRole('heading', { name: `Hello, ${ann}` }).waitFor();
  const kept = await page.evaluate(async () => {
    const paths = [];
    for (const name of await caches.keys()) {
      for (const request of await (await caches.open(name)).keys()) paths.push(`${name} ${new URL(request.url).pathname}`);
    }
    return paths;
  });
  const keptPaths = kept.map((entry) => entry.split(' ')[1]);
  for (const shell of ['/', '/room.html', '/style.css', '/js/panel.js', '/js/room.js', '/manifest.webmanifest']) {
    assert.ok(keptPaths.includes(shell), `${shell} is kept: ${kept}`);
  }
  assert.deepEqual(keptPaths.filter((p) => p.startsWith('/api') || p.startsWith('/ws')), [], 'nothing private is kept');
  assert.ok(kept.every((entry) => entry.startsWith('sc-shell-')), `one versioned cache: ${kept.slice(0, 3)}`);

  // Offline, a reload opens the panel's page, styled, saying it cannot reach the server.
  await context.setOffline(true);
  await page.reload();
  await page.locator('#page-status', { hasText: 'The server cannot be reached. Retrying…' }).waitFor();
  assert.equal(await page.title(), 'Your rooms · Super Channels');
  assert.equal(await page.evaluate(() => getComputedStyle(document.querySelector('.skip-link')).position), 'absolute', 'styled');
  // A room too, from its link.
  await page.goto(roomUrl(room));
  await page.locator('#banner', { hasText: 'The server cannot be reached. Retrying…' }).waitFor();
  await screenshots(page, 'offline-room');

  // Back online, the page carries on by itself.
  await context.setOffline(false);
  await waitJoined(page);
  await waitShown(page, 1);

  // What a page offline logs is the network's failures, which are the point here.
  const offlineNoise = /ERR_INTERNET_DISCONNECTED|Failed to load resource|Failed to fetch|FetchEvent|WebSocket/;
  assert.deepEqual(problems.filter((p) => !offlineNoise.test(p)), []);
  await context.close();
});

test('network first: a file changed on the server reaches an online page at once, and the offline copy follows', async () => {
  const { context, page, problems } = await newPage(browser, { serviceWorkers: 'allow' });
  // A file of this test's own, served from disk as the shell is: none of the app's files
  // changes under the other tests. Its times are set a minute apart, because the server's
  // validator (Last-Modified) counts whole seconds.
  const name = `sw-probe-${unique('p')}.txt`;
  const file = path.join(staticDir, name);
  const now = Date.now() / 1000;
  try {
    writeFileSync(file, 'version one\n');
    utimesSync(file, now - 60, now - 60);
    await page.goto('/signup.html'); // a page anyone may open, which asks the server nothing
    await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 15_000 });
    await page.goto(`/${name}`);
    assert.equal((await page.textContent('body')).trim(), 'version one');
    await waitFor(() => page.evaluate(async (p) => !!(await caches.match(p)), `/${name}`), { message: 'the probe to be kept' });

    // A deploy: online, the next load has the new file, not the kept one.
    writeFileSync(file, 'version two\n');
    utimesSync(file, now, now);
    await page.reload();
    assert.equal((await page.textContent('body')).trim(), 'version two');
    // And the kept copy is the new one too.
    await waitFor(() => page.evaluate(async (p) => (await (await caches.match(p))?.text())?.trim() === 'version two', `/${name}`),
      { message: 'the kept copy to be the new one' });
    await context.setOffline(true);
    await page.reload();
    assert.equal((await page.textContent('body')).trim(), 'version two');
    await context.setOffline(false);
  } finally {
    rmSync(file, { force: true });
  }
  // A text file has no icon link: the browser asks for /favicon.ico, which is not ours.
  assert.deepEqual(problems.filter((p) => !p.includes('/favicon.ico')), []);
  await context.close();
});

test('the worker’s list of the shell names every file the app serves from static/', () => {
  const source = readFileSync(path.join(staticDir, 'sw.js'), 'utf8');
  const list = /const SHELL = \[([\s\S]*?)\];/.exec(source)?.[1];
  assert.ok(list, 'sw.js has its SHELL list');
  const named = new Set([...list.matchAll(/'([^']+)'/g)].map((m) => m[1]));
  const onDisk = [];
  const walk = (dir, prefix) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name.startsWith('.')) continue;
      if (entry.isDirectory()) walk(path.join(dir, entry.name), `${prefix}${entry.name}/`);
      else onDisk.push(`${prefix}${entry.name}`);
    }
  };
  walk(staticDir, '/');
  const files = onDisk.filter((f) => f !== '/sw.js' && !f.startsWith('/sw-probe-'));
  assert.deepEqual(files.filter((f) => !named.has(f)).sort(), [], 'files missing from SHELL in static/sw.js');
  assert.deepEqual([...named].filter((f) => f !== '/' && !onDisk.includes(f)).sort(), [], 'SHELL names files that do not exist');
});
