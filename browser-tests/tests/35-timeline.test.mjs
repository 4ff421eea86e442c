// The room timeline in the client, two people on two gateways: a mention picked from the
// completion list, an edit with ↑, reactions from the menu and from the chips, a reply that
// leads back to its original, a deletion with its confirmation, the mention badge on the
// panel; and text that must stay text (a javascript: URL, markup in code, HTML in a
// reaction that the server never sent). Then what goes on around a change: an edit in
// progress while someone reacts, an empty edit, an edit whose connection drops, and a reply
// whose original is deleted meanwhile.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, newPage, screenshots, unique, api, waitFor } from '../lib/harness.mjs';
import { signUp, enterRoom, send, waitShown, reloadOnto, png, twoInRoom } from '../lib/chat.mjs';

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

/** Deletes one's own message, confirming, and waits until the page shows `tombstones` of them. */
async function deleteOwn(page, li, tombstones) {
  const menu = await menuOf(page, li);
  await menu.getByRole('menuitem', { name: 'Delete…' }).click();
  await page.getByRole('menuitem', { name: 'Delete', exact: true }).click();
  await page.locator('#messages li.msg.deleted').nth(tombstones - 1).waitFor();
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

test('an edit in progress survives another person\'s reaction, and the menu button says when its menu is closed', async () => {
  const { a, b } = await twoInRoom(browser, 'editing');
  await send(a.page, 'draft one');
  await waitShown(a.page, 1);
  await waitShown(b.page, 1);
  const seq = await a.page.locator('#messages li.msg').first().getAttribute('data-seq');
  const annRow = a.page.locator(`#messages li.msg[data-seq="${seq}"]`);

  // Ann starts editing and has typed half of it.
  await a.page.getByLabel('Message', { exact: true }).press('ArrowUp');
  const editor = a.page.getByLabel('Edit the message');
  await editor.fill('draft two, half typed');

  // Bob opens the menu and closes it by Escape, by a click elsewhere, then by choosing a reaction.
  const bobRow = row(b.page, 'draft one');
  const opener = bobRow.locator('.msg-menu-button');
  await menuOf(b.page, bobRow);
  assert.equal(await opener.getAttribute('aria-expanded'), 'true');
  await b.page.keyboard.press('Escape');
  await b.page.getByRole('menu', { name: 'Message actions' }).waitFor({ state: 'detached' });
  assert.equal(await opener.getAttribute('aria-expanded'), 'false', 'Escape');
  await menuOf(b.page, bobRow);
  await b.page.locator('#room-title').click();
  await b.page.getByRole('menu', { name: 'Message actions' }).waitFor({ state: 'detached' });
  assert.equal(await opener.getAttribute('aria-expanded'), 'false', 'a click elsewhere');
  const menu = await menuOf(b.page, bobRow);
  await menu.getByRole('menuitem', { name: 'React with 🎉' }).click();
  await waitChips(b.page, bobRow, [{ emoji: '🎉', count: 1, mine: true }]);
  assert.equal(await opener.getAttribute('aria-expanded'), 'false', 'an item chosen');

  // Ann's message shows the reaction, and her editor is still there, with her text and the focus.
  await waitChips(a.page, annRow, [{ emoji: '🎉', count: 1, mine: false }]);
  assert.equal(await editor.inputValue(), 'draft two, half typed');
  assert.ok(await editor.evaluate((node) => node === document.activeElement), 'the editor keeps the focus');
  await screenshots(a.page, 'timeline-edit-kept');
  await a.page.keyboard.type(' and done');
  await a.page.keyboard.press('Enter');
  for (const { page } of [a, b]) {
    await row(page, 'draft two, half typed and done').locator('.msg-edited').waitFor();
    await waitChips(page, row(page, 'draft two, half typed and done'), [{ emoji: '🎉', count: 1, mine: page === b.page }]);
  }
  assert.deepEqual(a.problems, []);
  assert.deepEqual(b.problems, []);
  await a.context.close();
  await b.context.close();
});

test('an image caption cannot be edited down to nothing: Save is disabled, the hint says why, nothing is sent', async () => {
  const a = await newPage(browser);
  const sent = []; // the type of every frame the page sends, in order
  await a.page.routeWebSocket(/\/ws$/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((m) => { sent.push(JSON.parse(String(m)).type); server.send(m); });
  });
  await signUp(a.page, unique('cid'));
  await enterRoom(a.page, unique('caption'));
  await a.page.locator('#file').setInputFiles({ name: 'cat.png', mimeType: 'image/png', buffer: png() });
  await a.page.getByAltText('Preview of cat.png').waitFor();
  await send(a.page, 'our cat');
  await waitShown(a.page, 1);

  await a.page.getByLabel('Message', { exact: true }).press('ArrowUp');
  const editor = a.page.getByLabel('Edit the message');
  const form = a.page.locator('form.edit-form');
  await editor.fill('   ');
  await form.locator('.hint.is-error').waitFor();
  assert.match(await form.locator('.hint').textContent(), /cannot be empty/);
  assert.equal(await form.getByRole('button', { name: 'Save' }).isDisabled(), true);
  await screenshots(a.page, 'timeline-empty-edit');
  await editor.press('Enter');
  assert.equal(await editor.inputValue(), '   ', 'the editor stays open');
  // Typing brings Save back; Escape gives up, and the caption is as it was.
  await editor.fill('our cat, asleep');
  assert.equal(await form.getByRole('button', { name: 'Save' }).isDisabled(), false);
  await editor.press('Escape');
  await row(a.page, 'our cat').waitFor();
  // A message sent next goes on the same socket after anything the edit sent.
  await send(a.page, 'next');
  await waitShown(a.page, 2);
  assert.deepEqual(sent.filter((type) => type === 'send' || type === 'edit'), ['send', 'send'], 'no edit frame');
  assert.deepEqual(a.problems, []);
  await a.context.close();
});

test('an edit unanswered when the connection drops is sent again after the reconnect, and stored once', async () => {
  const edits = []; // the client_msg_id of every edit frame Ann's page sends, on any socket
  const acked = new Set();
  let dropAtEdit = true;
  const { room, a, b } = await twoInRoom(browser, 'redo', (ws) => {
    const server = ws.connectToServer();
    let cut = false;
    ws.onMessage((m) => {
      const frame = JSON.parse(String(m));
      if (frame.type === 'edit') edits.push(frame.client_msg_id);
      server.send(m);
      // The first edit reaches the gateway, and the connection drops before any answer gets
      // back: committed or not, the page cannot tell.
      if (frame.type === 'edit' && dropAtEdit) {
        dropAtEdit = false;
        cut = true;
        ws.close({ code: 1012, reason: 'server restarting, reconnect' }).catch(() => {});
      }
    });
    server.onMessage((m) => {
      if (cut) return;
      const frame = JSON.parse(String(m));
      if (frame.type === 'ack') acked.add(frame.client_msg_id);
      ws.send(m);
    });
  });
  await send(a.page, 'before the drop');
  await waitShown(a.page, 1);
  await waitShown(b.page, 1);

  await a.page.getByLabel('Message', { exact: true }).press('ArrowUp');
  const editor = a.page.getByLabel('Edit the message');
  await editor.fill('after the drop');
  await editor.press('Enter');
  for (const { page } of [a, b]) await row(page, 'after the drop').locator('.msg-edited').waitFor();
  await waitFor(() => edits.length === 2 && acked.has(edits[1]), { message: 'the edit sent again to be acked' });
  assert.equal(edits[0], edits[1], 'sent again with the same client_msg_id');

  // The room holds one edit event, whichever attempt committed it.
  const { status, body } = await api(a.page, 'GET', `/api/v1/rooms/${room}/messages?after_seq=0&limit=200`);
  assert.equal(status, 200);
  assert.deepEqual(body.messages.filter((e) => e.type === 'edited').map((e) => e.client_msg_id), [edits[0]]);
  for (const { page } of [a, b]) assert.equal(await page.locator('#messages li.msg').count(), 1);
  assert.deepEqual(a.problems, []);
  assert.deepEqual(b.problems, []);
  await a.context.close();
  await b.context.close();
});

test('a reply whose original is deleted: the reply bar lets go of it, and a refused reply fails once', async () => {
  const replies = []; // the client_msg_id of every send with reply_to from Ann's page
  let holdDeletions = false;
  const held = [];
  let toPage = null;
  const { a, b } = await twoInRoom(browser, 'gone', (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((m) => {
      const frame = JSON.parse(String(m));
      if (frame.type === 'send' && frame.reply_to !== undefined) replies.push(frame.client_msg_id);
      server.send(m);
    });
    server.onMessage((m) => {
      if (holdDeletions && JSON.parse(String(m)).type === 'deleted') held.push(m); else ws.send(m);
    });
    toPage = (m) => ws.send(m);
  });
  await send(b.page, 'first');
  await waitShown(b.page, 1);
  await send(b.page, 'second');
  await waitShown(b.page, 2);
  await waitShown(a.page, 2);
  const bar = a.page.locator('.reply-bar');

  // Ann is replying to Bob's first message when he deletes it: her reply bar lets go of it.
  await (await menuOf(a.page, row(a.page, 'first'))).getByRole('menuitem', { name: 'Reply' }).click();
  await bar.getByText('first').waitFor();
  await deleteOwn(b.page, row(b.page, 'first'), 1);
  await bar.waitFor({ state: 'hidden' });

  // Bob deletes his second message before Ann's page hears of it (the frame is held back):
  // her reply to it is refused, and it shows as failed, without being sent again.
  await (await menuOf(a.page, row(a.page, 'second'))).getByRole('menuitem', { name: 'Reply' }).click();
  await bar.getByText('second').waitFor();
  holdDeletions = true;
  await deleteOwn(b.page, row(b.page, 'second'), 2);
  await send(a.page, 'too late');
  const failed = a.page.locator('#pending li[data-state="failed"]');
  await failed.waitFor();
  assert.match(await failed.getByRole('alert').textContent(), /^Not sent: /);
  await screenshots(a.page, 'timeline-reply-refused');
  holdDeletions = false;
  for (const frame of held.splice(0)) toPage(frame);
  await a.page.locator('#messages li.msg.deleted').nth(1).waitFor();

  await send(a.page, 'a plain one');
  await row(a.page, 'a plain one').waitFor();
  assert.equal(replies.length, 1, 'the refused reply went once');
  assert.equal(await failed.count(), 1);
  assert.deepEqual(a.problems, []);
  assert.deepEqual(b.problems, []);
  await a.context.close();
  await b.context.close();
});
