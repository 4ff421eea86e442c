// The room timeline in the client, two people on two gateways: a mention picked from the
// completion list, an edit with ↑, reactions from the menu and from the chips, a reply that
// leads back to its original, a deletion with its confirmation, the mention badge on the
// panel; and text that must stay text (a javascript: URL, markup in code, HTML in a
// reaction that the server never sent).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, newPage, screenshots, unique } from '../lib/harness.mjs';
import { signUp, enterRoom, send, waitShown, reloadOnto } from '../lib/chat.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

/** The message row with this text (its current text). */
const row = (page, text) => page.locator('#messages li.msg', { has: page.locator('.msg-text', { hasText: text }) });

/** Opens a message's actions menu, as a mouse user does. */
async function menuOf(page, li) {
  await li.hover();
  await li.locator('.msg-menu-button').click();
  const menu = page.getByRole('menu', { name: 'Message actions' });
  await menu.waitFor();
  return menu;
}

/** The reaction chips of a message: emoji, count, and whether they are pressed. */
function chips(li) {
  return li.locator('.reaction').evaluateAll((buttons) => buttons.map((b) => ({
    emoji: b.querySelector('.reaction-emoji').textContent,
    count: Number(b.querySelector('.reaction-count').textContent),
    mine: b.getAttribute('aria-pressed') === 'true',
  })));
}

async function waitChips(page, li, expected) {
  await page.waitForFunction(
    ([seq, want]) => {
      const got = [...document.querySelectorAll(`#messages li.msg[data-seq="${seq}"] .reaction`)]
        .map((b) => `${b.querySelector('.reaction-emoji').textContent}${b.querySelector('.reaction-count').textContent}`);
      return JSON.stringify(got) === JSON.stringify(want);
    },
    [await li.getAttribute('data-seq'), expected.map((c) => `${c.emoji}${c.count}`)],
  );
  assert.deepEqual(await chips(li), expected);
}

test('edit, react, reply, delete and mention, two people on two gateways, each seen by both', async () => {
  const ann = unique('ann');
  const bob = unique('bob');
  const room = unique('timeline');
  const a = await newPage(browser);
  const b = await newPage(browser);
  await signUp(a.page, ann);
  await enterRoom(a.page, room);
  const annGateway = await reloadOnto(a.page);
  await signUp(b.page, bob);
  await enterRoom(b.page, room);
  let bobGateway = await reloadOnto(b.page);
  for (let i = 0; i < 12 && bobGateway === annGateway; i += 1) bobGateway = await reloadOnto(b.page);
  assert.notEqual(bobGateway, annGateway, 'Ann and Bob are on different gateways');

  // A mention, picked from the completion list with the keyboard.
  const field = a.page.getByLabel('Message', { exact: true });
  await field.pressSequentially(`helo @${bob.slice(0, 4)}`);
  const option = a.page.getByRole('option', { name: `@${bob}` });
  await option.waitFor();
  await screenshots(a.page, 'timeline-mention-completion');
  await field.press('Enter');
  assert.equal(await field.inputValue(), `helo @${bob} `);
  await field.press('Enter');
  await waitShown(a.page, 1);
  await waitShown(b.page, 1);
  assert.equal(await b.page.locator('#messages li.msg.mentions-me').count(), 1, 'Bob sees it highlighted');
  assert.equal(await a.page.locator('#messages li.msg.mentions-me').count(), 0);

  // ↑ in the empty composer edits the last message; Enter saves.
  await field.press('ArrowUp');
  const editor = a.page.getByLabel('Edit the message');
  await editor.fill(`hello @${bob}`);
  await editor.press('Enter');
  for (const { page } of [a, b]) {
    await row(page, `hello @${bob}`).locator('.msg-edited').waitFor();
    assert.equal(await page.locator('#messages li.msg').count(), 1, 'an edit is no new message');
  }
  // Escape cancels an edit.
  await field.press('ArrowUp');
  await a.page.getByLabel('Edit the message').fill('never sent');
  await a.page.getByLabel('Edit the message').press('Escape');
  assert.equal(await row(a.page, `hello @${bob}`).count(), 1);

  // Bob reacts from the menu, Ann adds hers from the chip.
  const first = (page) => row(page, `hello @${bob}`);
  const menu = await menuOf(b.page, first(b.page));
  await screenshots(b.page, 'timeline-menu');
  await menu.getByRole('menuitem', { name: 'React with 👍' }).click();
  await waitChips(b.page, first(b.page), [{ emoji: '👍', count: 1, mine: true }]);
  await waitChips(a.page, first(a.page), [{ emoji: '👍', count: 1, mine: false }]);
  assert.match(await first(a.page).locator('.reaction').getAttribute('title'), new RegExp(bob));
  await first(a.page).locator('.reaction').click();
  await waitChips(a.page, first(a.page), [{ emoji: '👍', count: 2, mine: true }]);
  await waitChips(b.page, first(b.page), [{ emoji: '👍', count: 2, mine: true }]);
  await screenshots(a.page, 'timeline-reactions');

  // Bob replies; the quote names the original and leads back to it.
  const replyMenu = await menuOf(b.page, first(b.page));
  await replyMenu.getByRole('menuitem', { name: 'Reply' }).click();
  await b.page.locator('.reply-bar').getByText(ann).waitFor();
  await send(b.page, 'yes?');
  for (const { page } of [a, b]) {
    const reply = row(page, 'yes?');
    await reply.locator('.msg-reply').waitFor();
    assert.match(await reply.locator('.msg-reply').textContent(), new RegExp(`${ann}.*hello @${bob}`));
  }
  await row(a.page, 'yes?').locator('.msg-reply').click();
  await a.page.locator('#messages li.msg.highlight').waitFor();
  assert.equal(await a.page.locator('#messages li.msg.highlight .msg-text').textContent(), `hello @${bob}`);
  await screenshots(a.page, 'timeline-reply');

  // Ann may not delete Bob's message; Bob deletes it after confirming.
  const annMenu = await menuOf(a.page, row(a.page, 'yes?'));
  assert.equal(await annMenu.getByRole('menuitem', { name: 'Delete…' }).count(), 0);
  assert.equal(await annMenu.getByRole('menuitem', { name: 'Edit' }).count(), 0);
  await a.page.keyboard.press('Escape');
  const bobMenu = await menuOf(b.page, row(b.page, 'yes?'));
  await bobMenu.getByRole('menuitem', { name: 'Delete…' }).click();
  await b.page.getByText('Delete this message for everyone?').waitFor();
  await screenshots(b.page, 'timeline-delete-confirm');
  await b.page.getByRole('menuitem', { name: 'Delete', exact: true }).click();
  for (const { page } of [a, b]) {
    await page.locator('#messages li.msg.deleted .msg-tombstone').waitFor();
    assert.equal(await page.locator('#messages li.msg.deleted .msg-tombstone').textContent(), 'Message deleted');
    assert.equal(await page.locator('#messages li.msg.deleted .msg-text').count(), 0);
  }
  await screenshots(a.page, 'timeline-deleted');

  // After a reload, history shows the same: the edit, the reactions, the tombstone.
  await a.page.reload();
  await a.page.locator('body[data-room-state="joined"]').waitFor({ state: 'attached' });
  await first(a.page).locator('.msg-edited').waitFor();
  await waitChips(a.page, first(a.page), [{ emoji: '👍', count: 2, mine: true }]);
  assert.equal(await a.page.locator('#messages li.msg.deleted').count(), 1);

  // Away from the room, a mention raises the panel's mention badge as well as the unread one.
  // Leaving the room page marks what it showed as read; the panel shows that once recorded.
  await b.page.goto('/');
  const bobRow = b.page.locator(`li.room-row[data-room="${room}"]`);
  await bobRow.waitFor();
  for (let i = 0; i < 20 && await bobRow.locator('.badge').isVisible(); i += 1) {
    await b.page.reload();
    await bobRow.waitFor();
  }
  assert.equal(await bobRow.locator('.badge').isVisible(), false, 'all read');
  await b.page.locator('#conn-state[data-state="connected"]').waitFor();
  await send(a.page, `@${bob} come back`);
  await send(a.page, 'no mention here');
  await b.page.waitForFunction((r) => document.querySelector(`li.room-row[data-room="${r}"] .badge`)?.textContent === '2', room);
  assert.equal(await bobRow.locator('.mention-badge').textContent(), '@1');
  assert.equal(await bobRow.locator('.mention-badge').getAttribute('aria-label'), '1 mentioning you');
  await screenshots(b.page, 'timeline-mention-badge');
  // And after a reload the server counts the same.
  await b.page.reload();
  await bobRow.locator('.mention-badge:not([hidden])').waitFor();
  assert.equal(await bobRow.locator('.mention-badge').textContent(), '@1');

  assert.deepEqual(a.problems, []);
  assert.deepEqual(b.problems, []);
  await a.context.close();
  await b.context.close();
});

test('a javascript: URL, markup in code and HTML in a reaction all stay text', async () => {
  const a = await newPage(browser);
  const room = unique('hostile');
  // Between page and server, so a frame the server would never send can be slipped in.
  let toPage = null;
  await a.page.routeWebSocket(/\/ws$/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((m) => server.send(m));
    server.onMessage((m) => ws.send(m));
    toPage = (frame) => ws.send(JSON.stringify(frame));
  });
  await signUp(a.page, unique('ivy'));
  await enterRoom(a.page, room);
  await send(a.page, 'see [this](javascript:alert(1)) and javascript:alert(2) and `<b>not bold</b>` **<i>x</i>**');
  const [message] = await waitShown(a.page, 1);
  const li = a.page.locator('#messages li.msg').first();
  assert.equal(await li.locator('a[href^="javascript"]').count(), 0, 'no javascript: link');
  assert.equal(await li.locator('.msg-text b, .msg-text i').count(), 0, 'markup inside stays text');
  assert.equal(await li.locator('.msg-text code').textContent(), '<b>not bold</b>');
  assert.match(await li.locator('.msg-text strong').textContent(), /<i>x<\/i>/);

  const seq = message.seq;
  const me = await li.getAttribute('data-author');
  toPage({
    type: 'reacted', room, seq: seq + 1, id: 999999, target_seq: seq, user: { id: 'guest:x', name: '<b>Mallory</b>' },
    client_msg_id: 'x', at: new Date().toISOString(), emoji: '<img src=x onerror=alert(3)>',
  });
  await li.locator('.reaction').waitFor();
  assert.equal(await li.locator('.reaction-emoji').textContent(), '<img src=x onerror=alert(3)>');
  assert.equal(await li.locator('.msg-reactions img').count(), 0, 'no element made from it');
  assert.match(await li.locator('.reaction').getAttribute('title'), /<b>Mallory<\/b>/);
  assert.ok(me);
  await screenshots(a.page, 'timeline-hostile');
  assert.deepEqual(a.problems, []);
  await a.context.close();
});
