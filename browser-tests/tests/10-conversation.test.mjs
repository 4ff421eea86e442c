// Two people on two gateways: sign-up, a new room, messages both ways, then a reload with
// history and paging back through older messages.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, newPage, screenshots, unique, waitFor, api } from '../lib/harness.mjs';
import { signUp, enterRoom, reloadOnto, send, waitShown, shown, assertOrdered } from '../lib/chat.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test('two users on two gateways exchange messages, each seen once, in order, with the right author', async () => {
  const ann = unique('ann');
  const bob = unique('bob');
  const room = unique('room');
  const a = await newPage(browser);
  const b = await newPage(browser);

  await signUp(a.page, ann);
  await screenshots(a.page, 'conversation-panel-new-user');
  await enterRoom(a.page, room);
  const annGateway = await reloadOnto(a.page);

  // The balancer picks the gateway; reload Bob until his socket lands on the other one.
  await signUp(b.page, bob);
  await enterRoom(b.page, room);
  let bobGateway = await reloadOnto(b.page);
  for (let attempt = 0; attempt < 12 && bobGateway === annGateway; attempt += 1) bobGateway = await reloadOnto(b.page);
  assert.notEqual(bobGateway, annGateway, 'Ann and Bob are on different gateways');

  await send(a.page, `hello from ${ann}`);
  await waitShown(a.page, 1);
  await send(b.page, `hi ${ann}, ${bob} here`);

  const expected = [
    { author: ann, text: `hello from ${ann}` },
    { author: bob, text: `hi ${ann}, ${bob} here` },
  ];
  for (const { page } of [a, b]) {
    const messages = await waitShown(page, 2);
    assert.deepEqual(messages.map(({ author, text }) => ({ author, text })), expected);
    assertOrdered(assert, messages);
    assert.ok(messages.every((m) => m.state === 'sent'), 'every message is confirmed');
  }
  // Own messages are marked as one's own and confirmed.
  assert.equal(await a.page.locator('#messages li.msg.own').count(), 1);
  assert.equal(await b.page.locator('#messages li.msg.own').count(), 1);
  // The member list counts both.
  await a.page.waitForFunction(() => document.querySelector('#member-count').textContent === '(2)');

  // The session is an HttpOnly, SameSite cookie, and its token is in no web storage (which
  // holds only what is not secret: drafts, unsent messages, a hint of the session's kind).
  const [cookie] = (await a.context.cookies()).filter((c) => c.name === 'sc_session');
  assert.ok(cookie, 'a session cookie');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Lax');
  assert.equal(await a.page.evaluate(() => document.cookie), '', 'scripts cannot read the session');
  const storage = await a.page.evaluate(() => JSON.stringify([{ ...localStorage }, { ...sessionStorage }]));
  assert.ok(!storage.includes(cookie.value), 'the session token is not in web storage');

  await screenshots(a.page, 'conversation-room');
  await a.page.goto('/');
  await screenshots(a.page, 'conversation-panel');
  assert.deepEqual(a.problems, []);
  assert.deepEqual(b.problems, []);
  await a.context.close();
  await b.context.close();
});

test('after a reload the history is there, and scrolling up loads older messages without duplicates', async () => {
  const cy = unique('cy');
  const room = unique('long');
  const { page, problems, context } = await newPage(browser);
  await signUp(page, cy);
  await enterRoom(page, room);

  // More messages than a join shows (50), published through the API as another client would.
  const total = 120;
  for (let i = 1; i <= total; i += 1) {
    const res = await api(page, 'POST', `/api/v1/rooms/${room}/messages`, { text: `message ${i}`, client_msg_id: `m-${i}` });
    assert.equal(res.status, 201, JSON.stringify(res.body));
  }
  await waitShown(page, total);

  await page.reload();
  const first = await waitShown(page, 50);
  assert.equal(first.length, 50, 'a join shows the newest 50');
  assert.equal(first.at(-1).text, `message ${total}`);
  assert.ok(await page.getByRole('button', { name: 'Load earlier messages' }).isVisible());

  // Scroll to the top until everything is loaded, as a reader would.
  await waitFor(async () => {
    await page.locator('#log').evaluate((log) => { log.scrollTop = 0; });
    return (await page.locator('#messages li.msg').count()) === total;
  }, { timeout: 20_000, interval: 200 });
  const all = await shown(page);
  assert.deepEqual(all.map((m) => m.text), Array.from({ length: total }, (_, i) => `message ${i + 1}`));
  assert.deepEqual(all.map((m) => m.seq), Array.from({ length: total }, (_, i) => i + 1));
  await page.getByText('This is the start of the room.').waitFor();
  await screenshots(page, 'history-start');
  assert.deepEqual(problems, []);
  await context.close();
});
