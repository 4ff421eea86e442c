// The connection and the top bar, polished (issue "web client polish"): a network that stalls
// without closing the socket is noticed within about 10 seconds (the page pings when it has
// heard nothing, and gives up on a socket that does not answer), the browser's `offline` and
// `online` events are heeded at once, and the room catches up on what it missed, each
// message once; a quiet but healthy connection is left alone; the connection state says
// itself by more than a colour at phone width; and the top bar shows the account's picture.
// axe checks the top bar in each state at both widths.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, newPage, screenshots, unique, api, waitFor, DESKTOP, PHONE } from '../lib/harness.mjs';
import { signUp, enterRoom, send, waitShown, twoInRoom, png } from '../lib/chat.mjs';
import { axeAvailable, axeViolations } from '../lib/axe.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

/** Runs axe on a part of the page, or says why it cannot. */
async function checkAxe(t, page, name, selector) {
  await t.test(`axe: ${name}`, async (st) => {
    if (!axeAvailable) {
      st.skip('axe-core is not installed in browser-tests/node_modules (add it to browser-tests/package.json)');
      return;
    }
    assert.deepEqual(await axeViolations(page, selector), []);
  });
}

/** axe on the top bar at both widths; the page gets its own viewport back. */
async function checkTopbarAxe(t, page, name) {
  const previous = page.viewportSize();
  for (const [label, viewport] of [['desktop', DESKTOP], ['phone', PHONE]]) {
    await page.setViewportSize(viewport);
    await checkAxe(t, page, `${name}, ${label}`, '#topbar');
  }
  if (previous) await page.setViewportSize(previous);
}

/**
 * Sits between a page and its gateway, as a network that can stall without saying so.
 * `stall()` loses every frame from the server (the downlink dies; what the page sends still
 * gets through, so a message sent into the stall is stored while its ack is lost), holds
 * every API request and every new socket's handshake unanswered, and keeps the open socket
 * open: nothing the browser could notice. `restore()` lets everything through again. `pings`
 * counts the `ping` frames the page sends, on any socket.
 */
function flakyNetwork() {
  const net = { stalled: false, pings: 0, held: [], release: null, open: new Set() };
  let restored = Promise.resolve();
  net.routeSocket = async (ws) => {
    let closedByPage = false;
    ws.onClose(() => { closedByPage = true; });
    // A handshake in a stalled network neither opens nor fails: it hangs.
    while (net.stalled) await restored;
    if (closedByPage) return;
    const server = ws.connectToServer();
    const pair = { ws, server };
    net.open.add(pair);
    ws.onMessage((m) => {
      if (JSON.parse(String(m)).type === 'ping') net.pings += 1;
      server.send(m);
    });
    ws.onClose((code, reason) => { net.open.delete(pair); server.close({ code, reason }).catch(() => {}); });
    server.onMessage((m) => { if (!net.stalled) ws.send(m); });
    server.onClose((code, reason) => { net.open.delete(pair); ws.close({ code, reason }).catch(() => {}); });
  };
  /** Ends every open socket as a restarting gateway does (1012). */
  net.dropSockets = async () => {
    for (const pair of [...net.open]) {
      net.open.delete(pair);
      await pair.ws.close({ code: 1012, reason: 'server restarting, reconnect' }).catch(() => {});
      await pair.server.close().catch(() => {});
    }
  };
  net.routeApi = async (route) => {
    if (net.stalled) net.held.push(route); else await route.continue();
  };
  net.stall = () => {
    net.stalled = true;
    restored = new Promise((resolve) => { net.release = resolve; });
  };
  net.restore = async () => {
    net.stalled = false;
    net.release();
    for (const route of net.held.splice(0)) await route.continue().catch(() => {});
  };
  return net;
}

/** Records every state the connection pill goes through, so a brief one is not missed. */
async function recordStates(page) {
  await page.evaluate(() => {
    const pill = document.querySelector('#conn-state');
    window.connStates = [pill.dataset.state];
    new MutationObserver(() => window.connStates.push(pill.dataset.state))
      .observe(pill, { attributes: true, attributeFilter: ['data-state'] });
  });
}

const states = (page) => page.evaluate(() => window.connStates);
const pill = (page, state) => page.locator(`#conn-state[data-state="${state}"]`);

test('a quiet, healthy connection is kept: the page pings when it hears nothing, and the answers keep it up', async () => {
  const net = flakyNetwork();
  const { page, problems, context } = await newPage(browser);
  await page.routeWebSocket(/\/ws$/, net.routeSocket);
  await signUp(page, unique('quinn'));
  await enterRoom(page, unique('quiet'));
  await recordStates(page);
  const from = net.pings;
  // Three pings with nothing else said: well past the 10 seconds after which an unanswered
  // socket is given up.
  await waitFor(() => net.pings - from >= 3, { timeout: 20_000, message: 'three pings from a quiet page' });
  assert.deepEqual(await states(page), ['connected'], 'the answered pings keep the connection as it was');
  assert.deepEqual(problems, []);
  await context.close();
});

test('a network that stalls silently is noticed within about 10 s, and the room catches up once it is back', async (t) => {
  const net = flakyNetwork();
  const { room, a, b } = await twoInRoom(browser, 'stall', net.routeSocket);
  await a.page.route('**/api/**', net.routeApi);
  await send(a.page, 'before the stall');
  await waitShown(a.page, 1);
  await waitShown(b.page, 1);
  await recordStates(a.page);

  net.stall();
  const stalledAt = Date.now();
  // Into the stall: the server stores it, but the page never hears so.
  await send(a.page, 'sent into the stall');
  await waitShown(b.page, 2);
  await pill(a.page, 'reconnecting').waitFor({ timeout: 14_000 });
  const noticed = Date.now() - stalledAt;
  t.diagnostic(`the stall was shown after ${noticed} ms`);
  assert.equal(await a.page.locator('#conn-state').textContent(), 'Reconnecting…');
  await screenshots(a.page, 'connection-stalled');
  await checkTopbarAxe(t, a.page, 'the top bar while reconnecting');

  // Bob goes on talking while Ann's network is stalled.
  await send(b.page, 'while you were stalled');
  await waitShown(b.page, 3);
  await net.restore();
  await pill(a.page, 'connected').waitFor({ timeout: 30_000 });
  const expected = ['before the stall', 'sent into the stall', 'while you were stalled'];
  for (const { page } of [a, b]) {
    const messages = await waitShown(page, expected.length, 30_000);
    assert.deepEqual(messages.map((m) => m.text), expected, 'each message exactly once, in order');
  }
  const stored = await api(a.page, 'GET', `/api/v1/rooms/${room}/messages?after_seq=0&limit=50`);
  assert.deepEqual(stored.body.messages.filter((m) => m.type === 'message').map((m) => m.text), expected, 'stored once');
  assert.ok((await states(a.page)).includes('reconnecting'));
  assert.deepEqual(a.problems, []);
  assert.deepEqual(b.problems, []);
  await a.context.close();
  await b.context.close();
});

test('the browser going offline shows reconnecting at once, and coming back online reconnects promptly', async () => {
  const { a, b } = await twoInRoom(browser, 'offline');
  await send(a.page, 'before going offline');
  await waitShown(b.page, 1);
  // Ann's page has read the member list again since Bob came in: nothing of hers is still on its way.
  await a.page.locator('#member-count', { hasText: '(2)' }).waitFor({ state: 'attached' });

  await a.context.setOffline(true);
  await pill(a.page, 'reconnecting').waitFor({ timeout: 2_000 });
  await send(b.page, 'while you were offline');
  await waitShown(b.page, 2);
  // Offline for a while, long enough for a reconnect attempt were one made (a wait that
  // checks for something not happening, not one that stands in for synchronisation).
  await a.page.evaluate(() => new Promise((resolve) => { setTimeout(resolve, 3000); }));
  assert.equal(await a.page.locator('#conn-state').getAttribute('data-state'), 'reconnecting');

  const onlineAt = Date.now();
  await a.context.setOffline(false);
  await pill(a.page, 'connected').waitFor({ timeout: 5_000 });
  const back = Date.now() - onlineAt;
  assert.ok(back < 5_000, `connected ${back} ms after coming back online`);
  const messages = await waitShown(a.page, 2);
  assert.deepEqual(messages.map((m) => m.text), ['before going offline', 'while you were offline']);
  // No attempt was made while the browser said it was offline: none failed in the console.
  assert.deepEqual(a.problems, []);
  assert.deepEqual(b.problems, []);
  await a.context.close();
  await b.context.close();
});

/**
 * The pill as a screen reader has it: a status whose words are `words` and nothing else (its
 * name, from the tooltip, and its text, when they differ, are both shown).
 */
const spoken = (words) => new RegExp(`^- status(?: "${words}"(?:: ${words})?|: ${words})$`);

test('at phone width the connection state is more than a colour', async (t) => {
  const net = flakyNetwork();
  const { page, problems, context } = await newPage(browser, { viewport: PHONE });
  await page.routeWebSocket(/\/ws$/, net.routeSocket);
  await page.route('**/api/**', net.routeApi);
  await signUp(page, unique('pia'));
  await enterRoom(page, unique('phone'));
  const conn = page.locator('#conn-state');
  await pill(page, 'connected').waitFor();

  // What a screen reader is given: the state in words, in the status region.
  assert.match(await conn.ariaSnapshot(), spoken('Connected'));
  await checkTopbarAxe(t, page, 'the top bar while connected');

  // With forced colours (high contrast), colour says nothing: the mark itself must differ.
  await page.emulateMedia({ forcedColors: 'active' });
  const connectedShot = await conn.screenshot({ animations: 'disabled' });

  // The gateway goes away and the network holds the way back: reconnecting, for as long as
  // the test needs.
  net.stall();
  await net.dropSockets();
  await pill(page, 'reconnecting').waitFor({ timeout: 5_000 });
  assert.match(await conn.ariaSnapshot(), spoken('Reconnecting…'));
  const reconnectingShot = await conn.screenshot({ animations: 'disabled' });
  assert.ok(!connectedShot.equals(reconnectingShot), 'connected and reconnecting look different without colour');
  await page.emulateMedia({ forcedColors: 'none' });
  await screenshots(page, 'connection-phone-reconnecting');
  await checkTopbarAxe(t, page, 'the top bar while reconnecting');

  await net.restore();
  await pill(page, 'connected').waitFor({ timeout: 30_000 });
  assert.deepEqual(problems, []);
  await context.close();
});

test('the top bar shows the account\'s picture, and the initial for an account without one', async (t) => {
  const { page, problems, context } = await newPage(browser);
  const name = unique('ava');
  await signUp(page, name);
  const initial = page.locator('#topbar .me .avatar');
  assert.equal(await initial.textContent(), name[0].toUpperCase(), 'no picture yet: the initial');

  await page.getByRole('link', { name: 'Profile' }).click();
  await page.getByRole('heading', { name: 'Your profile' }).waitFor();
  await page.locator('#avatar-file').setInputFiles({ name: 'me.png', mimeType: 'image/png', buffer: png(64, 64) });
  await page.getByText('Picture updated.').waitFor();
  const { body: profile } = await api(page, 'GET', '/api/v1/me');
  assert.ok(profile.avatar_url);

  await page.getByRole('link', { name: 'Rooms' }).click();
  await page.getByRole('heading', { name: `Hello, ${name}` }).waitFor();
  await page.waitForFunction(() => document.querySelector('#topbar .me img.avatar')?.naturalWidth > 0, null, { timeout: 10_000 });
  const picture = page.locator('#topbar .me img.avatar');
  assert.equal(await picture.getAttribute('src'), profile.avatar_url);
  assert.equal(await picture.getAttribute('alt'), '', 'decorative: the name beside it says who');
  assert.equal(await page.locator('#topbar .me span.avatar').count(), 0, 'the picture replaces the initial');
  await screenshots(page, 'topbar-avatar');
  await checkTopbarAxe(t, page, 'the top bar with a picture');
  assert.deepEqual(problems, []);
  await context.close();
});
