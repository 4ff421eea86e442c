// The room page's actions (issue 24, "web client polish"): a room opened from a link is in
// its own sidebar at once; the composer's error goes as soon as the text is valid again;
// the room's title has the header's first line to itself on a phone, whole when it fits and
// in its tooltip when it does not; leaving asks first, in a dialog that Escape cancels; a
// failed upload offers Retry only when trying again could help; and a burst of sends is
// paced under the gateway's rate, and what it refuses as `rate_limited` goes again by itself,
// once and in order. axe checks each new part at desktop and phone width.
//
// The test cluster runs its gateways with a send rate ten times the default (so that the
// other tests never meet it): where the rate matters, a stand-in between the page and its
// gateway refuses as a gateway with the default settings would.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, newPage, screenshots, unique, api, waitFor, DESKTOP, PHONE } from '../lib/harness.mjs';
import { signUp, enterRoom, send, waitJoined, createPrivateRoom, png } from '../lib/chat.mjs';
import { axeAvailable, axeViolations } from '../lib/axe.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

/** The narrowest phone the client is held to. */
const NARROW = Object.freeze({ width: 360, height: 740 });

/** Runs axe on a part of the page at desktop and phone width, or says why it cannot. */
async function checkAxe(t, page, name, selector) {
  const previous = page.viewportSize();
  for (const [label, viewport] of [['desktop', DESKTOP], ['phone', PHONE]]) {
    await t.test(`axe: ${name} (${label})`, async (st) => {
      if (!axeAvailable) {
        st.skip('axe-core is not installed in browser-tests/node_modules (add it to browser-tests/package.json)');
        return;
      }
      await page.setViewportSize(viewport);
      assert.deepEqual(await axeViolations(page, selector), []);
    });
  }
  if (previous) await page.setViewportSize(previous);
}

/** The room's stored messages, oldest first, as the history API gives them. */
async function storedTexts(page, room) {
  const { status, body } = await api(page, 'GET', `/api/v1/rooms/${room}/messages?after_seq=0&limit=200`);
  assert.equal(status, 200, JSON.stringify(body));
  return body.messages.filter((m) => m.type === 'message').map((m) => m.text);
}

/** The rooms of the page person's panel, by name. */
async function panelRooms(page) {
  const { body } = await api(page, 'GET', '/api/v1/me/panel?limit=100');
  return body.rooms.map((r) => r.name);
}

/** Sends each text at once, from the page itself, as a paste of many lines sent in a row would. */
function burst(page, texts) {
  return page.evaluate((all) => {
    const field = document.querySelector('#text');
    const form = document.querySelector('#composer');
    for (const text of all) {
      field.value = text;
      form.requestSubmit();
    }
  }, texts);
}

/**
 * A stand-in for a gateway with the default limits, between the page and its real gateway:
 * sends and changes take a token from a bucket of `rate` per second holding `burst`, and
 * past it are refused with `rate_limited` (nothing forwarded, as the gateway stores
 * nothing); `read` takes one too and is dropped past it. `holdOff(ms)` makes it refuse every
 * send from the next one on for that long, as a gateway whose bucket is empty would.
 */
function rateLimitedSocket(page, { rate = 20, burst: size = 40 } = {}) {
  const seen = { sends: [], refused: [] };
  let tokens = size;
  let at = Date.now();
  let holdMs = 0;
  let holdUntil = 0;
  const take = () => {
    const now = Date.now();
    tokens = Math.min(size, tokens + ((now - at) / 1000) * rate);
    at = now;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  };
  const ready = page.routeWebSocket(/\/ws$/, (ws) => {
    const server = ws.connectToServer();
    tokens = size; // a new socket starts with a full bucket
    at = Date.now();
    ws.onMessage((message) => {
      const frame = JSON.parse(String(message));
      if (['send', 'edit', 'delete', 'react', 'unreact'].includes(frame.type)) {
        seen.sends.push({ id: frame.client_msg_id, text: frame.text });
        if (holdMs && !holdUntil) holdUntil = Date.now() + holdMs;
        const held = holdUntil && Date.now() < holdUntil;
        if (held || !take()) {
          seen.refused.push(frame.client_msg_id);
          ws.send(JSON.stringify({
            type: 'error', code: 'rate_limited', ref: frame.client_msg_id,
            message: `sending too fast: at most ${rate} messages per second; this one was not sent`,
          }));
          return;
        }
      } else if (frame.type === 'read' && !take()) {
        return;
      }
      server.send(message);
    });
  });
  return { seen, ready, holdOff: (ms) => { holdMs = ms; holdUntil = 0; } };
}

/** What a page shows as still sending or failed, and whether it offers Retry anywhere. */
const pendingState = (page) => page.evaluate(() => ({
  pending: document.querySelectorAll('#pending li').length,
  failed: document.querySelectorAll('#pending li[data-state="failed"]').length,
}));

/** Chromium reports every refused request as a console error; a test that expects some drops those. */
const withoutLoadErrors = (problems) => problems.filter((p) => !/Failed to load resource|net::ERR_FAILED/.test(p));

test('a room opened from a link is in its own sidebar at once, marked as the current one', async (t) => {
  const { page, problems, context } = await newPage(browser);
  await signUp(page, unique('lena'));
  const older = unique('older');
  await enterRoom(page, older);

  // A room she was not in, opened from its address: entering it makes it hers.
  const room = unique('linked');
  await page.goto(`/room.html?name=${room}`);
  await waitJoined(page);
  const entry = page.locator(`#room-list li.room-row[data-room="${room}"]`);
  await entry.waitFor({ timeout: 5000 });
  assert.equal(await entry.locator('a').getAttribute('aria-current'), 'page', 'marked as the page open');
  assert.equal(await page.locator(`#room-list li.room-row[data-room="${older}"]`).count(), 1, 'her other rooms stay');
  assert.ok((await panelRooms(page)).includes(room), 'the panel API has it too');
  await checkAxe(t, page, 'the sidebar', '.sidebar');

  assert.deepEqual(problems, []);
  await context.close();
});

test("the composer's error goes as soon as the text is valid again, and shows on a phone too", async (t) => {
  const { page, problems, context } = await newPage(browser);
  await signUp(page, unique('vera'));
  await enterRoom(page, unique('composer'));
  const field = page.getByLabel('Message', { exact: true });
  const hint = page.locator('#composer-hint');
  const normal = await hint.textContent();

  // Nothing to send: the error says so, and the field is marked invalid.
  await field.focus();
  await field.press('Enter');
  await page.waitForFunction(() => document.querySelector('#composer-hint').textContent === 'The message is empty.');
  assert.ok(await hint.evaluate((node) => node.classList.contains('is-error')));

  // One letter makes it a message: the error goes at once, before any send.
  await field.pressSequentially('h');
  assert.equal(await hint.textContent(), normal, 'the usual hint is back');
  assert.ok(!(await hint.evaluate((node) => node.classList.contains('is-error'))));
  assert.notEqual(await field.getAttribute('aria-invalid'), 'true');

  // Too long by two: one character less is still too long, the next makes it valid.
  await field.fill('x'.repeat(4002));
  await field.press('Enter');
  await page.waitForFunction(() => /4002 characters long/.test(document.querySelector('#composer-hint').textContent));
  assert.equal(await field.getAttribute('aria-invalid'), 'true', 'the field is marked invalid while the error shows');
  await checkAxe(t, page, 'the composer with its error', '#composer');
  await field.press('End');
  await field.press('Backspace');
  assert.match(await hint.textContent(), /4001 characters long; the limit is 4000/, 'still too long: the error stays, counted anew');
  await field.press('Backspace');
  assert.equal(await hint.textContent(), normal, 'valid: the error goes');
  assert.notEqual(await field.getAttribute('aria-invalid'), 'true');

  // On a phone the hint line is hidden, but an error in it shows.
  await page.setViewportSize(PHONE);
  await field.fill('');
  await field.press('Enter');
  await page.waitForFunction(() => document.querySelector('#composer-hint').textContent === 'The message is empty.');
  assert.ok(await hint.isVisible(), 'the error is visible at phone width');
  await screenshots(page, 'room-composer-error');
  await field.pressSequentially('ok');
  assert.equal(await hint.textContent(), normal);
  assert.ok(!(await hint.isVisible()), 'and goes with the error');

  assert.deepEqual(problems, []);
  await context.close();
});

test('at 360 px the room title shows whole when it fits, and is cut only when too long, its tooltip whole', async (t) => {
  const { page, problems, context } = await newPage(browser, { viewport: NARROW });
  await signUp(page, unique('tara'));
  const heading = page.getByRole('heading', { level: 1 });
  /** How the title is laid out: whether it is cut, how wide it is, how wide the header is. */
  const layout = () => heading.evaluate((h1) => ({
    text: h1.textContent,
    title: h1.title,
    cut: h1.scrollWidth > h1.clientWidth + 1,
    width: h1.getBoundingClientRect().width,
    head: h1.closest('.chat-head').clientWidth,
    pageOverflow: document.documentElement.scrollWidth > window.innerWidth,
  }));
  /** Every header button is on screen, none cut by its edge. */
  const buttonsOnScreen = () => page.locator('.chat-actions button:not([hidden])').evaluateAll((buttons) => buttons
    .every((b) => { const r = b.getBoundingClientRect(); return r.width > 0 && r.left >= 0 && r.right <= window.innerWidth; }));

  // A private room she owns: every action (invite, manage, members, leave) is in the header.
  const title = 'Weekend hiking club';
  await createPrivateRoom(page, title);
  await page.waitForFunction((t) => document.querySelector('#room-title').textContent === t, title);
  await page.locator('#manage-open:not([hidden])').waitFor();
  let seen = await layout();
  assert.ok(!seen.cut, `"${title}" fits in 360 px and is not cut (${JSON.stringify(seen)})`);
  assert.equal(seen.title, title, 'the tooltip holds the title');
  assert.ok(!seen.pageOverflow, 'nothing is wider than the screen');
  assert.ok(await buttonsOnScreen(), 'every action stays on screen');
  await checkAxe(t, page, 'the room header', '.chat-head');
  await page.setViewportSize(NARROW);
  await screenshots(page, 'room-title-phone');
  await page.setViewportSize(NARROW);

  // A public room: its name fits too.
  const room = unique('trail_talk');
  await enterRoom(page, room);
  seen = await layout();
  assert.equal(seen.text, `#${room}`);
  assert.equal(seen.title, `#${room}`);
  assert.ok(!seen.cut, `#${room} is not cut (${JSON.stringify(seen)})`);

  // Too long for any phone: cut with an ellipsis, but across the whole header, not a few letters.
  const long = 'The long-running committee for the planning of weekend hikes';
  await createPrivateRoom(page, long);
  await page.waitForFunction((t) => document.querySelector('#room-title').textContent === t, long);
  seen = await layout();
  assert.ok(seen.cut, 'a title this long is cut');
  assert.equal(await heading.evaluate((h1) => getComputedStyle(h1).textOverflow), 'ellipsis');
  assert.equal(seen.title, long, 'its tooltip holds all of it');
  assert.ok(seen.width > seen.head * 0.5, `it takes more than half the header's width (${JSON.stringify(seen)})`);
  assert.ok(!seen.pageOverflow);
  assert.ok(await buttonsOnScreen());

  assert.deepEqual(problems, []);
  await context.close();
});

test('"Leave room" asks first, in a dialog that Escape and Cancel close, and leaves only when confirmed', async (t) => {
  const { page, problems, context } = await newPage(browser);
  await signUp(page, unique('lars'));
  const room = unique('leaving');
  await enterRoom(page, room);
  const leave = page.getByRole('button', { name: 'Leave room' });
  const dialog = page.getByRole('dialog', { name: `Leave #${room}?` });

  await leave.click();
  await dialog.waitFor({ timeout: 5000 });
  assert.equal(new URL(page.url()).pathname, '/room.html', 'still in the room');
  assert.ok(await dialog.evaluate((node) => node.contains(document.activeElement)), 'the focus is in the dialog');
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Cancel', 'on the harmless choice');
  assert.match(await dialog.textContent(), /come back/, 'it says whether one can come back');
  await checkAxe(t, page, 'the leave dialog', '#leave-dialog');
  await screenshots(page, 'room-leave-dialog');

  // Escape cancels: the focus goes back to the button, and she is still a member.
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  assert.ok(await leave.evaluate((button) => button === document.activeElement), 'the focus is back on "Leave room"');
  assert.ok((await panelRooms(page)).includes(room), 'still a member after Escape');

  // By keyboard: Enter opens it, Enter on Cancel closes it.
  await page.keyboard.press('Enter');
  await dialog.waitFor();
  await page.keyboard.press('Enter');
  await dialog.waitFor({ state: 'hidden' });
  assert.ok((await panelRooms(page)).includes(room), 'still a member after Cancel');

  // Confirmed by keyboard: she leaves, and the room leaves her panel.
  await page.keyboard.press('Enter');
  await dialog.waitFor();
  await page.keyboard.press('Shift+Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Leave');
  await Promise.all([
    page.waitForURL((url) => url.pathname === '/'),
    page.keyboard.press('Enter'),
  ]);
  assert.ok(!(await panelRooms(page)).includes(room), 'no longer a member');

  assert.deepEqual(problems, []);
  await context.close();
});

test('a failed upload offers Retry only when it could succeed later: not for 413 or 415', async (t) => {
  const { page, problems, context } = await newPage(browser);
  await signUp(page, unique('uma'));
  await enterRoom(page, unique('uploads'));
  const field = page.getByLabel('Message', { exact: true });
  const failed = page.locator('#pending li[data-state="failed"]');
  /** Attaches a file as a person picking one does, and sends it with its caption. */
  const sendFile = async (file, caption) => {
    await page.locator('#file').setInputFiles(file);
    await field.fill(caption);
    await field.press('Enter');
  };

  // Not an image, whatever its name says: the server answers 415. Nothing to retry.
  await sendFile({ name: 'notes.png', mimeType: 'image/png', buffer: Buffer.from('<html>not an image</html>') }, 'fake');
  await failed.waitFor();
  assert.match(await failed.getByRole('alert').textContent(), /^Not sent: /);
  assert.equal(await failed.getByRole('button', { name: 'Retry' }).count(), 0, 'no Retry for 415');
  assert.equal(await failed.getByRole('button', { name: 'Discard' }).count(), 1);
  await checkAxe(t, page, 'a failed upload', '#pending');
  await screenshots(page, 'room-upload-refused');
  await failed.getByRole('button', { name: 'Discard' }).click();
  await failed.waitFor({ state: 'detached' });

  // Too large (the server's answer, given here without sending megabytes): no Retry either.
  const answer = (status, code, message) => (route) => route.fulfill({
    status, contentType: 'application/json', body: JSON.stringify({ error: { code, message } }),
  });
  await page.route('**/api/v1/uploads', answer(413, 'payload_too_large', 'the upload is larger than 5242880 bytes'));
  await sendFile({ name: 'big.png', mimeType: 'image/png', buffer: png() }, 'big');
  await failed.waitFor();
  assert.match(await failed.getByRole('alert').textContent(), /larger than/);
  assert.equal(await failed.getByRole('button', { name: 'Retry' }).count(), 0, 'no Retry for 413');
  await failed.getByRole('button', { name: 'Discard' }).click();
  await failed.waitFor({ state: 'detached' });
  await page.unroute('**/api/v1/uploads');

  // The server is down for a moment (503), then the network: Retry is offered, and works.
  for (const fault of [answer(503, 'unavailable', 'the service is unavailable; retry later'), (route) => route.abort('failed')]) {
    await page.route('**/api/v1/uploads', fault);
    await sendFile({ name: 'cat.png', mimeType: 'image/png', buffer: png() }, 'worth a retry');
    await failed.waitFor();
    const retry = failed.getByRole('button', { name: 'Retry' });
    assert.equal(await retry.count(), 1, 'Retry for a failure that may pass');
    await page.unroute('**/api/v1/uploads');
    await retry.click();
    await failed.waitFor({ state: 'detached' });
    await page.waitForFunction(() => document.querySelectorAll('#pending li').length === 0);
  }
  await page.locator('#messages li.msg .msg-image img').nth(1).waitFor();
  assert.equal(await page.locator('#messages li.msg', { hasText: 'worth a retry' }).count(), 2, 'both delivered');

  assert.deepEqual(withoutLoadErrors(problems), []);
  await context.close();
});

test('a burst of 60 sends is paced under the gateway rate: none refused, all stored once and in order', async () => {
  const { page, problems, context } = await newPage(browser);
  const gateway = rateLimitedSocket(page);
  await gateway.ready;
  await signUp(page, unique('pace'));
  const room = unique('burst');
  await enterRoom(page, room);

  const texts = Array.from({ length: 60 }, (_, i) => `burst ${i + 1}`);
  await burst(page, texts);
  await waitFor(async () => (await storedTexts(page, room)).length >= 60 || (await pendingState(page)).failed > 0,
    { timeout: 20_000, message: 'all 60 stored, or one failed' });
  const state = await pendingState(page);
  assert.equal(state.failed, 0, `no send failed (${gateway.seen.refused.length} refused as rate_limited)`);
  await waitFor(async () => (await storedTexts(page, room)).length === 60, { timeout: 20_000, message: 'all 60 stored' });
  assert.deepEqual(await storedTexts(page, room), texts, 'each stored once, in the order sent');
  assert.deepEqual(gateway.seen.refused, [], 'paced under the rate, the page was never refused');
  await page.waitForFunction(() => document.querySelectorAll('#messages li.msg').length === 60
    && document.querySelectorAll('#pending li').length === 0, null, { timeout: 10_000 });

  assert.deepEqual(problems, []);
  await context.close();
});

test('sends refused as rate_limited go again by themselves, with their client_msg_id, once and in order', async () => {
  const { page, problems, context } = await newPage(browser);
  const gateway = rateLimitedSocket(page);
  await gateway.ready;
  await signUp(page, unique('again'));
  const room = unique('refused');
  await enterRoom(page, room);
  await send(page, 'before');
  await waitFor(async () => (await storedTexts(page, room)).length === 1);

  // The gateway refuses every send for a second and a half from the next one on.
  gateway.holdOff(1500);
  const texts = Array.from({ length: 20 }, (_, i) => `refused ${i + 1}`);
  await burst(page, texts);
  await waitFor(() => gateway.seen.refused.length > 0, { message: 'the gateway to refuse' });
  await waitFor(async () => (await storedTexts(page, room)).length >= 21 || (await pendingState(page)).failed > 0,
    { timeout: 20_000, message: 'all stored, or one failed' });
  assert.equal((await pendingState(page)).failed, 0, 'nothing waits for a manual Retry');
  assert.equal(await page.getByRole('button', { name: 'Retry' }).count(), 0);
  await waitFor(async () => (await storedTexts(page, room)).length === 21, { timeout: 20_000, message: 'all 21 stored' });
  assert.deepEqual(await storedTexts(page, room), ['before', ...texts], 'each stored once, in the order sent');
  for (const id of new Set(gateway.seen.refused)) {
    const text = gateway.seen.sends.find((s) => s.id === id).text;
    assert.ok(gateway.seen.sends.filter((s) => s.id === id).length >= 2, `"${text}" went again`);
    assert.ok(gateway.seen.sends.filter((s) => s.text === text).every((s) => s.id === id), `"${text}" kept its client_msg_id`);
  }
  await page.waitForFunction(() => document.querySelectorAll('#messages li.msg').length === 21
    && document.querySelectorAll('#pending li').length === 0, null, { timeout: 10_000 });

  assert.deepEqual(problems, []);
  await context.close();
});
