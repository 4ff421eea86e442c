// The room page's polish: what someone scrolled up to older messages is told of new ones
// (a "Jump to latest" button that counts them), where the messages they had not read begin
// (an "Unread" line that stays put while they read), drafts and unacked sends that outlive
// a room switch and a reload (the sends stored once, by their client_msg_id), and the
// members drawer on a phone, which its toggle, Escape and a tap outside all close. axe
// checks each new part.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { launch, newPage, screenshots, unique, api, waitFor, PHONE } from '../lib/harness.mjs';
import { signUp, enterRoom, send, waitShown, waitJoined, twoInRoom } from '../lib/chat.mjs';
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

/** The confirmed message row that says `text`. */
const row = (page, text) => page.locator('#messages li.msg', { has: page.locator('.msg-text', { hasText: text }) });

/** Publishes through the HTTP API as the page's person. */
async function post(page, room, text) {
  const res = await api(page, 'POST', `/api/v1/rooms/${room}/messages`, { text, client_msg_id: randomUUID() });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body;
}

/** The page person's unread count of `room`, as the panel API says it. */
async function unread(page, room) {
  const { body } = await api(page, 'GET', '/api/v1/me/panel?limit=100');
  return body.rooms.find((r) => r.name === room)?.unread;
}

/** How far the timeline is from its end, in pixels. */
const fromBottom = (page) => page.locator('#log').evaluate((log) => log.scrollHeight - log.scrollTop - log.clientHeight);

/** Scrolls the timeline to its top, as someone reading back does, and lets the page hear of it. */
async function scrollUp(page) {
  await page.locator('#log').evaluate((log) => { log.scrollTop = 0; });
  await page.waitForFunction(() => document.querySelector('#log').scrollTop === 0);
  assert.ok(await fromBottom(page) > 300, 'the timeline is long enough to scroll');
}

/** The room's stored messages with this client_msg_id, as the history API gives them. */
async function stored(page, room, clientMsgId) {
  const { status, body } = await api(page, 'GET', `/api/v1/rooms/${room}/messages?after_seq=0&limit=200`);
  assert.equal(status, 200);
  return body.messages.filter((m) => m.type === 'message' && m.client_msg_id === clientMsgId);
}

test('scrolled up, new messages bring a "Jump to latest" button that counts them, scrolls down, and goes', async (t) => {
  const { room, a, b } = await twoInRoom(browser, 'jump');
  for (let i = 1; i <= 40; i += 1) await post(b.page, room, `older message ${i}`);
  await waitShown(a.page, 40);
  const jump = a.page.getByRole('button', { name: /^Jump to latest/ });

  // At the end of the timeline new messages simply show: no button.
  await send(b.page, 'seen as it comes');
  await waitShown(a.page, 41);
  assert.ok(await fromBottom(a.page) < 120, 'the page followed the new message');
  assert.equal(await jump.count(), 0, 'no button at the end of the timeline');

  // Scrolled up, two new messages: the button says so, and the view stays where it was.
  await scrollUp(a.page);
  await send(b.page, 'new one');
  await send(b.page, 'new two');
  await waitShown(a.page, 43);
  await a.page.getByRole('button', { name: 'Jump to latest (2 new)' }).waitFor();
  assert.ok(await fromBottom(a.page) > 300, 'the view was not moved');
  // Announced politely: the button sits in a polite live region.
  assert.ok(await jump.evaluate((button) => !!button.closest('[role="status"], [aria-live="polite"]')),
    'the button is in a polite live region');
  await checkAxe(t, a.page, 'the jump button', '#jump-latest');
  await screenshots(a.page, 'room-jump-to-latest');

  // The keyboard reaches it (back from the message field), and Enter takes the view down.
  const field = a.page.getByLabel('Message', { exact: true });
  await field.focus();
  for (let i = 0; i < 6 && !(await jump.evaluate((button) => button === document.activeElement)); i += 1) {
    await a.page.keyboard.press('Shift+Tab');
  }
  assert.ok(await jump.evaluate((button) => button === document.activeElement), 'Shift+Tab from the message field reaches the button');
  await a.page.keyboard.press('Enter');
  await jump.waitFor({ state: 'hidden' });
  assert.ok(await fromBottom(a.page) < 120, 'the view is at the newest message');
  assert.equal(await a.page.evaluate(() => document.activeElement?.id), 'log', 'the focus goes to the timeline, not lost');

  // Scrolled up again, one more: the count starts afresh; scrolling down by hand ends it too.
  await scrollUp(a.page);
  await send(b.page, 'new three');
  await waitShown(a.page, 44);
  await a.page.getByRole('button', { name: 'Jump to latest (1 new)' }).waitFor();
  await a.page.locator('#log').evaluate((log) => { log.scrollTop = log.scrollHeight; });
  await jump.waitFor({ state: 'hidden' });

  assert.deepEqual(a.problems, []);
  assert.deepEqual(b.problems, []);
  await a.context.close();
  await b.context.close();
});

test('an "Unread" line marks where the unread messages began, stays put while they are read, and is gone once read', async (t) => {
  const { room, a, b } = await twoInRoom(browser, 'divider');
  await send(b.page, 'already read');
  await waitShown(a.page, 1);
  const divider = a.page.locator('#messages .unread-divider');
  assert.equal(await divider.count(), 0, 'nothing unread when the room was opened');

  // Ann goes back to her rooms (her marker stays at what her page showed); Bob writes on.
  await a.page.goto('/');
  await waitFor(async () => (await unread(a.page, room)) === 0, { message: "Ann's marker at what she saw" });
  for (const text of ['unread one', 'unread two', 'unread three']) await post(b.page, room, text);
  await waitFor(async () => (await unread(a.page, room)) === 3, { message: 'three unread for Ann' });

  // She opens the room: the line sits before the first message she had not read.
  await a.page.locator(`li.room-row[data-room="${room}"] a`).click();
  await waitJoined(a.page);
  await waitShown(a.page, 4);
  await row(a.page, 'unread one').locator('.unread-divider').waitFor();
  assert.equal(await divider.count(), 1);
  assert.ok(await divider.isVisible());
  assert.equal(await divider.textContent(), 'Unread messages start here', '"Unread" to the eye, the rest to a screen reader');
  await checkAxe(t, a.page, 'the unread line', '#messages li:has(.unread-divider)');
  await screenshots(a.page, 'room-unread-divider');

  // Her page reads them (the marker moves), and more come: the line does not move.
  await waitFor(async () => (await unread(a.page, room)) === 0, { message: 'the page to mark the room read' });
  await send(b.page, 'while reading');
  await waitShown(a.page, 5);
  assert.equal(await divider.count(), 1);
  assert.equal(await row(a.page, 'unread one').locator('.unread-divider').count(), 1, 'still before the first unread');

  // The next time she opens the room, all of it was read: no line.
  await a.page.goto('/');
  await waitFor(async () => (await unread(a.page, room)) === 0, { message: 'all read' });
  await a.page.locator(`li.room-row[data-room="${room}"] a`).click();
  await waitJoined(a.page);
  await waitShown(a.page, 5);
  assert.equal(await divider.count(), 0, 'no line once everything was read');

  assert.deepEqual(a.problems, []);
  assert.deepEqual(b.problems, []);
  await a.context.close();
  await b.context.close();
});

test('a draft is kept per room across a room switch and a reload, and goes when it is sent', async () => {
  const { page, problems, context } = await newPage(browser);
  await signUp(page, unique('dora'));
  const [first, second] = [unique('drafts'), unique('elsewhere')];
  await enterRoom(page, second);
  await enterRoom(page, first);
  const field = page.getByLabel('Message', { exact: true });
  /** Opens a room from the sidebar, as a person switching rooms does. */
  const switchTo = async (room) => {
    await Promise.all([
      page.waitForURL((url) => url.searchParams.get('name') === room),
      page.locator(`#room-list li.room-row[data-room="${room}"] a`).click(),
    ]);
    await waitJoined(page);
  };

  await field.pressSequentially('half a thought');
  await switchTo(second);
  assert.equal(await field.inputValue(), '', 'each room has its own draft');
  await field.fill('words for the other room');
  await switchTo(first);
  assert.equal(await field.inputValue(), 'half a thought', 'the draft survives a room switch');
  await page.reload();
  await waitJoined(page);
  assert.equal(await field.inputValue(), 'half a thought', 'and a reload');

  // Sent, it is no draft any more.
  await field.press('Enter');
  await waitShown(page, 1);
  assert.equal(await field.inputValue(), '');
  await page.reload();
  await waitJoined(page);
  assert.equal(await field.inputValue(), '', 'a sent draft does not come back');
  await switchTo(second);
  assert.equal(await field.inputValue(), 'words for the other room');

  assert.deepEqual(problems, []);
  await context.close();
});

test('a message still sending survives a reload, goes again with the same client_msg_id, and is stored once', async () => {
  const { page, problems, context } = await newPage(browser);
  // Between the page and its gateway: `drop-sends` loses the page's sends on the way (the
  // server never hears of them); `drop-acks` lets them through and loses the answers (the
  // message is stored, the page is never told).
  let mode = 'pass';
  const sends = []; // { id, text } of every send frame the page sends, on any socket
  const dropped = []; // the frames `drop-acks` kept from the page
  await page.routeWebSocket(/\/ws$/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((m) => {
      const frame = JSON.parse(String(m));
      if (frame.type === 'send') {
        sends.push({ id: frame.client_msg_id, text: frame.text });
        if (mode === 'drop-sends') return;
      }
      server.send(m);
    });
    server.onMessage((m) => {
      const frame = JSON.parse(String(m));
      if (mode === 'drop-acks' && (frame.type === 'ack' || frame.type === 'message')) { dropped.push(frame); return; }
      ws.send(m);
    });
  });
  await signUp(page, unique('otto'));
  const room = unique('outbox');
  await enterRoom(page, room);
  const sending = page.locator('#pending li[data-state="pending"]', { hasText: 'Sending…' });

  // Lost on the way: it shows as sending, and the reload sends it again, with the same id.
  mode = 'drop-sends';
  await send(page, 'lost on the way');
  await sending.waitFor();
  const lost = sends.find((s) => s.text === 'lost on the way').id;
  assert.ok(await page.evaluate((id) => JSON.stringify({ ...localStorage }).includes(id), lost), 'kept in localStorage');
  mode = 'pass';
  await page.reload();
  await waitJoined(page);
  await waitFor(async () => (await stored(page, room, lost)).length === 1, { message: 'the lost send to be stored after the reload' });
  await waitShown(page, 1);
  assert.deepEqual(sends.filter((s) => s.text === 'lost on the way').map((s) => s.id), [lost, lost], 'sent again with the same client_msg_id');

  // Stored, but the answer is lost: after the reload it shows once, and is stored once.
  mode = 'drop-acks';
  await send(page, 'stored, never acked');
  const unacked = await waitFor(() => dropped.find((f) => f.type === 'ack')?.client_msg_id, { message: 'the ack to be held back' });
  assert.equal(unacked, sends.at(-1).id);
  assert.equal(await sending.count(), 1, 'the page still shows it as sending');
  mode = 'pass';
  await page.reload();
  await waitJoined(page);
  await waitShown(page, 2);
  await waitFor(async () => await page.evaluate((id) => !JSON.stringify({ ...localStorage }).includes(id), unacked),
    { message: 'the send to leave localStorage once confirmed' });
  assert.equal(await row(page, 'stored, never acked').count(), 1, 'shown once');
  assert.equal(await page.locator('#pending li').count(), 0, 'nothing left sending');
  assert.equal((await stored(page, room, unacked)).length, 1, 'stored once');
  assert.equal((await stored(page, room, lost)).length, 1);

  assert.deepEqual(problems, []);
  await context.close();
});

test('on a phone the members drawer closes by its toggle, by Escape and by a tap outside', async (t) => {
  const { page, problems, context } = await newPage(browser, { viewport: PHONE });
  await signUp(page, unique('pia'));
  await enterRoom(page, unique('drawer'));
  const toggle = page.getByRole('button', { name: /^Members/ });
  const drawer = page.locator('#members');
  /** Whether the toggle is what a tap on its middle reaches, or something covers it. */
  const toggleOnTop = () => toggle.evaluate((button) => {
    const box = button.getBoundingClientRect();
    return button.contains(document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2));
  });

  await toggle.click();
  await drawer.waitFor({ state: 'visible' });
  assert.equal(await toggle.getAttribute('aria-expanded'), 'true');
  assert.ok(await toggleOnTop(), 'the open drawer does not cover its toggle');
  await checkAxe(t, page, 'the open drawer', '#members');
  await screenshots(page, 'room-members-drawer');

  // Its toggle closes it.
  await toggle.click();
  await drawer.waitFor({ state: 'hidden' });
  assert.equal(await toggle.getAttribute('aria-expanded'), 'false');

  // By keyboard: Enter opens it and takes the focus in; Escape closes it and gives it back.
  await toggle.focus();
  await page.keyboard.press('Enter');
  await drawer.waitFor({ state: 'visible' });
  assert.ok(await drawer.evaluate((node) => node.contains(document.activeElement)), 'the focus is in the drawer');
  await page.keyboard.press('Escape');
  await drawer.waitFor({ state: 'hidden' });
  assert.equal(await toggle.getAttribute('aria-expanded'), 'false');
  assert.ok(await toggle.evaluate((button) => button === document.activeElement), 'the focus is back on the toggle');

  // A tap beside it, on the timeline, closes it.
  await toggle.click();
  await drawer.waitFor({ state: 'visible' });
  const log = await page.locator('#log').boundingBox();
  await page.mouse.click(log.x + 20, log.y + log.height / 2);
  await drawer.waitFor({ state: 'hidden' });
  assert.equal(await toggle.getAttribute('aria-expanded'), 'false');

  assert.deepEqual(problems, []);
  await context.close();
});
