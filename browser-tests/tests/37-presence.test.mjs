// Who is here, two people on two gateways: each sees the other type, the line ends when
// their message arrives, and it expires when they stop typing without sending. Each sees the
// other online in the member list and counted in the header, and offline once they leave.
// Each sees who has seen their message, unless that person turned read receipts off.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, screenshots, api, newPage, unique, waitFor, DESKTOP, PHONE } from '../lib/harness.mjs';
import { waitShown, twoInRoom, signUp, enterRoom, send, waitJoined } from '../lib/chat.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

/** The typing line's text, once it is `text`. */
async function typingLine(page, text) {
  await page.waitForFunction((want) => document.querySelector('#typing').textContent === want, text);
}

test('each sees the other type; the line ends with their message, or expires', async () => {
  const { a, b } = await twoInRoom(browser, 'typing');
  const bob = (await api(b.page, 'GET', '/api/v1/session')).body.user.name;

  await b.page.locator('#text').pressSequentially('hel');
  await typingLine(a.page, `${bob} is typing…`);
  assert.equal(await b.page.locator('#typing').textContent(), '', 'not their own');
  await screenshots(a.page, 'typing');

  await b.page.locator('#text').press('Enter');
  await waitShown(a.page, 1);
  await typingLine(a.page, '');

  // Typing again is news at once after a send; without a send, it expires by itself.
  await b.page.locator('#text').pressSequentially('more');
  await typingLine(a.page, `${bob} is typing…`);
  await typingLine(a.page, '');
});

/** Who the page's person is: `{ id, name }`. */
async function whoAmI(page) {
  return (await api(page, 'GET', '/api/v1/session')).body.user;
}

/** Waits until the member list marks `userId` as `state`: 'true' online, 'false' offline. */
async function memberOnline(page, userId, state) {
  await page.waitForFunction(({ id, want }) => [...document.querySelectorAll('#member-list li.member')]
    .find((li) => li.dataset.userId === id)?.dataset.online === want, { id: userId, want: state });
}

/** Waits until the room header says `text` (e.g. "2 online"). */
async function onlineCount(page, text) {
  await page.waitForFunction((want) => {
    const count = document.querySelector('#online-count');
    return !count.hidden && count.textContent === want;
  }, text);
}

/** The member list's user ids, in the order shown. */
function listed(page) {
  return page.$$eval('#member-list li.member', (items) => items.map((li) => li.dataset.userId));
}

/** What a screen reader hears of a member's presence. */
function spoken(page, userId) {
  return page.$$eval('#member-list li.member', (items, id) => items.find((li) => li.dataset.userId === id)
    ?.querySelector('.member-status')?.textContent ?? null, userId);
}

test('each sees the other online, and offline when they leave', async () => {
  const { room, a, b } = await twoInRoom(browser, 'presence');
  const ann = await whoAmI(a.page);
  const bob = await whoAmI(b.page);

  // On a desktop the member list is in view beside the timeline.
  await memberOnline(a.page, bob.id, 'true');
  await memberOnline(b.page, ann.id, 'true');
  await memberOnline(a.page, ann.id, 'true');
  await onlineCount(a.page, '2 online');
  await onlineCount(b.page, '2 online');
  assert.equal(await spoken(a.page, bob.id), ', online');
  assert.ok(await a.page.locator('#members').isVisible(), 'the member list shows on a desktop');

  // On a phone the list opens from the header: open it, so the phone shot shows the dots too.
  await a.page.setViewportSize(PHONE);
  await a.page.getByRole('button', { name: /^Members/ }).click();
  await a.page.locator('#members').waitFor({ state: 'visible' });
  await screenshots(a.page, 'presence-online');
  await a.page.setViewportSize(DESKTOP);

  // Someone who comes and goes: announced while online (a new member, so the list reads
  // them in), and once gone listed after those online, though their name sorts first.
  const al = await newPage(browser);
  await signUp(al.page, unique('al'));
  await enterRoom(al.page, room);
  const alice = await whoAmI(al.page);
  await memberOnline(a.page, alice.id, 'true');
  await onlineCount(a.page, '3 online');
  await al.context.close();
  await memberOnline(a.page, alice.id, 'false');
  await onlineCount(a.page, '2 online');
  assert.deepEqual(await listed(a.page), [ann.id, bob.id, alice.id], 'online first, then by name');

  // Bob's page closes: his last socket is gone, on whichever gateway it was.
  await b.context.close();
  await memberOnline(a.page, bob.id, 'false');
  await onlineCount(a.page, '1 online');
  assert.equal(await spoken(a.page, bob.id), ', offline');
  assert.deepEqual(await listed(a.page), [ann.id, alice.id, bob.id], 'online first, then by name');
  await screenshots(a.page, 'presence-offline');

  assert.deepEqual(a.problems, []);
  await a.context.close();
});

/** The confirmed message that says `text`, on a room page. */
function message(page, text) {
  return page.locator('#messages li.msg', { hasText: text });
}

/** The unread count of `room` on the page's person's panel: it follows their read marker. */
async function unread(page, room) {
  const { body } = await api(page, 'GET', '/api/v1/me/panel?limit=100');
  return body.rooms.find((r) => r.name === room)?.unread;
}

test('each sees who has seen their message, unless receipts are off', async () => {
  const { room, a, b } = await twoInRoom(browser, 'seen');
  const bob = (await whoAmI(b.page)).name;
  const seenByBob = (page, text) => message(page, text).getByRole('group', { name: `Seen by ${bob}` });

  // Bob's page has the room open at its end, so the message is in front of him: it says so.
  await send(a.page, 'did you see this?');
  await waitShown(b.page, 1);
  await seenByBob(a.page, 'did you see this?').waitFor();
  await screenshots(a.page, 'seen-by');
  // A page that opens the room later learns it from `joined`.
  await a.page.reload();
  await waitJoined(a.page);
  await seenByBob(a.page, 'did you see this?').waitFor();

  // Bob turns receipts off in his profile, in another tab: his room page stays open.
  const settings = await b.context.newPage();
  await settings.goto('/profile.html');
  const receipts = settings.getByLabel('Send read receipts');
  await receipts.waitFor(); // shown once the profile is read into the form
  assert.equal(await receipts.isChecked(), true, 'on by default');
  await receipts.uncheck();
  await settings.getByRole('button', { name: 'Save' }).click();
  await settings.getByText('Saved.', { exact: true }).waitFor();
  await settings.close();
  assert.equal((await api(b.page, 'GET', '/api/v1/me')).body.read_receipts, false);

  // Bob sees the next message, and his page says so: his own unread count goes to 0, which
  // only his page's `read` can do while it stays in the room.
  await send(a.page, 'and this one?');
  await waitShown(b.page, 2);
  await waitFor(async () => (await unread(b.page, room)) === 0, { message: "Bob's read marker to reach the second message" });
  // Ann's page was not told: his avatar stays where it was.
  assert.equal(await seenByBob(a.page, 'did you see this?').count(), 1);
  assert.equal(await seenByBob(a.page, 'and this one?').count(), 0);
  // The room's state says so as well: a `joined` leaves out whoever sends no receipts, and
  // the page draws its receipts before it marks itself joined, so nothing is still to come.
  await a.page.reload();
  await waitJoined(a.page);
  assert.equal(await a.page.getByRole('group', { name: /^Seen by/ }).count(), 0, 'Bob is not shown as having seen anything');

  assert.deepEqual(a.problems, []);
  assert.deepEqual(b.problems, []);
  await a.context.close();
  await b.context.close();
});
