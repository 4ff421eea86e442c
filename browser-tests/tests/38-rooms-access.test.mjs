// Who may be in a room, in the client: a private room made from the panel and joined by its
// invite link, closed to everyone else (the page and the API alike); an invite link that
// leads nowhere; a direct message opened from a profile and listed under the other
// person's name; and a moderator muting a member from the member list, whose sends are
// refused and never stored until the mute is lifted.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, newPage, screenshots, unique, api } from '../lib/harness.mjs';
import {
  signUp, enterRoom, send, waitShown, waitJoined, createPrivateRoom, whoAmI, PASSWORD,
} from '../lib/chat.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

/** What a page logs for a response it was meant to get: a 404 (a room or link it may not see). */
const expected404 = (problems) => problems.filter((p) => !/status of 404/.test(p));

/** Waits until the room header names the room `text`. */
async function titled(page, text) {
  await page.waitForFunction((want) => document.querySelector('#room-title').textContent === want, text);
}

/** Picks `item` from the member list's actions for `name`, as a mouse user does. */
async function memberAction(page, name, item) {
  await page.getByRole('button', { name: `Actions for ${name}`, exact: true }).click();
  await page.getByRole('menu', { name: `Actions for ${name}` }).getByRole('menuitem', { name: item, exact: true }).click();
}

/** The system line of a room event that says `text`. */
const systemLine = (page, action, text) => page.locator(`#messages li.sys-event[data-action="${action}"]`, { hasText: text });

test('a private room: made on the panel, joined by its invite link, closed to anyone else', async () => {
  const [alice, bob, carol] = [unique('alice'), unique('bob'), unique('carol')];
  const [a, b, c] = await Promise.all([newPage(browser), newPage(browser), newPage(browser)]);
  await Promise.all([signUp(a.page, alice), signUp(b.page, bob), signUp(c.page, carol)]);

  // The name typed is the title; the server names the room.
  const title = `Weekend plans ${unique('t')}`;
  const room = await createPrivateRoom(a.page, title);
  assert.match(room, /^p\.[a-z0-9]{16}$/);
  await titled(a.page, title);
  assert.match(await a.page.locator('#room-kind').textContent(), /Private/);

  // Alice makes an invite link; the field shows it whether or not the clipboard took it.
  await a.page.getByRole('button', { name: 'Invite people', exact: true }).click();
  const dialog = a.page.getByRole('dialog', { name: 'Invite people' });
  await dialog.getByRole('button', { name: 'Copy invite link' }).click();
  await a.page.waitForFunction(() => document.querySelector('#invite-link').value !== '');
  const link = await a.page.locator('#invite-link').inputValue();
  assert.match(link, /^https?:\/\/[^/]+\/invite\.html#.+/);
  await screenshots(a.page, 'rooms-invite-link');
  await dialog.getByRole('button', { name: 'Close' }).click();
  assert.equal(await dialog.isVisible(), false);

  // Bob follows it: the room's title and a Join button, then the room.
  await b.page.goto(link);
  await b.page.getByRole('heading', { name: title }).waitFor();
  assert.match(await b.page.locator('#invite-facts').textContent(), /private room with 1 member/);
  await screenshots(b.page, 'rooms-invite-page');
  await Promise.all([
    b.page.waitForURL((url) => url.pathname === '/room.html'),
    b.page.getByRole('button', { name: 'Join', exact: true }).click(),
  ]);
  await waitJoined(b.page);
  assert.equal(new URL(b.page.url()).searchParams.get('name'), room);
  await titled(b.page, title);

  // Each sees the other's message.
  await send(a.page, 'welcome, bob');
  await waitShown(b.page, 1);
  await send(b.page, 'thanks, alice');
  for (const page of [a.page, b.page]) {
    const messages = await waitShown(page, 2);
    assert.deepEqual(messages.map((m) => [m.author, m.text]), [[alice, 'welcome, bob'], [bob, 'thanks, alice']]);
  }

  // Carol, with the room's name but no invitation, is told no more than for a room that
  // does not exist, and sees nothing of it.
  await c.page.goto(`/room.html?name=${room}`);
  await c.page.locator('body[data-room-state="no-access"]').waitFor({ state: 'attached' });
  await c.page.getByText('This room does not exist or you do not have access').waitFor();
  assert.equal(await c.page.locator('#messages li').count(), 0);
  assert.equal(await c.page.getByText('welcome, bob').count(), 0);
  assert.equal(await c.page.locator('#composer').isVisible(), false);
  assert.notEqual(await c.page.locator('#room-title').textContent(), room, 'the raw name is not shown');
  await screenshots(c.page, 'rooms-private-refused');
  const refused = await api(c.page, 'GET', `/api/v1/rooms/${room}/messages`);
  assert.equal(refused.status, 404);
  const unknown = await api(c.page, 'GET', `/api/v1/rooms/p.${'q'.repeat(16)}/messages`);
  assert.deepEqual([refused.status, refused.body.error.code], [unknown.status, unknown.body.error.code]);

  // Alice's panel lists the room by its title, with the lock, not by its name.
  await a.page.goto('/');
  const row = a.page.locator(`#room-list li.room-row[data-room="${room}"]`);
  await row.waitFor();
  assert.equal(await row.getAttribute('data-kind'), 'private');
  assert.equal(await row.locator('.room-name').textContent(), title);
  assert.equal(await row.locator('img.lock').getAttribute('alt'), 'Private room:');

  assert.deepEqual(a.problems, []);
  assert.deepEqual(b.problems, []);
  assert.deepEqual(expected404(c.problems), []);
  await Promise.all([a.context.close(), b.context.close(), c.context.close()]);
});

test('an invite link that is invalid or expired says so, after a log-in too', async () => {
  const ivy = unique('ivy');
  const { page, problems, context } = await newPage(browser);
  await signUp(page, ivy);
  const invalid = 'This invite link is invalid or has expired';

  await page.goto('/invite.html#nonsense');
  await page.getByRole('heading', { name: invalid }).waitFor();
  assert.equal(await page.locator('#invite-join').isVisible(), false);
  await page.getByRole('link', { name: 'Back to your rooms' }).waitFor();
  await screenshots(page, 'rooms-invite-invalid');

  // A link without its token.
  await page.goto('/invite.html');
  await page.getByRole('heading', { name: invalid }).waitFor();

  // Someone not logged in logs in first and comes back to the same link, token and all.
  const out = await newPage(browser);
  await out.page.goto('/invite.html#nonsense');
  await out.page.waitForURL((url) => url.pathname === '/login.html');
  await out.page.getByLabel('Username').fill(ivy);
  await out.page.getByLabel('Password').fill(PASSWORD);
  await Promise.all([
    out.page.waitForURL((url) => url.pathname === '/invite.html' && url.hash === '#nonsense'),
    out.page.getByRole('button', { name: 'Log in', exact: true }).click(),
  ]);
  await out.page.getByRole('heading', { name: invalid }).waitFor();

  // Only the refusals asked for above were error responses (and the log-in page's session check).
  assert.deepEqual(expected404(problems), []);
  assert.deepEqual(out.problems.filter((p) => !/status of 40[14]/.test(p)), []);
  await Promise.all([context.close(), out.context.close()]);
});

test('a direct message from a profile, listed under the other person, the same room each time', async () => {
  const [alice, bob] = [unique('alice'), unique('bob')];
  const [a, b] = await Promise.all([newPage(browser), newPage(browser)]);
  await Promise.all([signUp(a.page, alice), signUp(b.page, bob)]);

  const openDm = async () => {
    await b.page.goto(`/profile.html?u=${alice}`);
    await Promise.all([
      b.page.waitForURL((url) => url.pathname === '/room.html'),
      b.page.getByRole('button', { name: 'Message', exact: true }).click(),
    ]);
    await waitJoined(b.page);
    return new URL(b.page.url()).searchParams.get('name');
  };

  const room = await openDm();
  assert.match(room, /^dm\./);
  await titled(b.page, `@${alice}`);
  await send(b.page, 'hi alice, just between us');
  await waitShown(b.page, 1);

  // Alice's panel: the conversation under Bob's name, never under its `dm.` name.
  await a.page.goto('/');
  const row = a.page.locator(`#room-list li.room-row[data-room="${room}"]`);
  await row.waitFor();
  assert.equal(await row.getAttribute('data-kind'), 'dm');
  assert.equal(await row.locator('.room-name').textContent(), `Direct message with @${bob}`);
  assert.ok(!(await row.textContent()).includes(room));
  await screenshots(a.page, 'rooms-dm-panel');
  await Promise.all([a.page.waitForURL((url) => url.pathname === '/room.html'), row.locator('a').click()]);
  await waitJoined(a.page);
  await titled(a.page, `@${bob}`);
  const messages = await waitShown(a.page, 1);
  assert.deepEqual(messages.map((m) => [m.author, m.text]), [[bob, 'hi alice, just between us']]);
  await screenshots(a.page, 'rooms-dm');

  // Again from the profile: the same room.
  assert.equal(await openDm(), room);

  assert.deepEqual(a.problems, []);
  assert.deepEqual(b.problems, []);
  await Promise.all([a.context.close(), b.context.close()]);
});

test('a member muted from the member list cannot send until unmuted; nothing of it is stored', async () => {
  const [alice, bob] = [unique('alice'), unique('bob')];
  const room = unique('mods');
  const [a, b] = await Promise.all([newPage(browser), newPage(browser)]);
  // Bob's page gets the first `muted` event late: so it sends, as a page that has not heard
  // yet would, and the server's refusal is what it shows.
  let holding = true;
  const held = [];
  await b.page.routeWebSocket(/\/ws$/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((m) => server.send(m));
    server.onMessage((m) => {
      let frame = null;
      try { frame = JSON.parse(String(m)); } catch { /* not JSON: pass it on */ }
      if (holding && frame?.type === 'room_event' && frame.action === 'muted') { held.push(() => ws.send(m)); return; }
      ws.send(m);
    });
  });
  await Promise.all([signUp(a.page, alice), signUp(b.page, bob)]);
  await enterRoom(a.page, room); // a new room: Alice owns it
  await enterRoom(b.page, room);
  const bobId = (await whoAmI(b.page)).id;

  // Alice mutes Bob from the member list; she sees it in the timeline and on his row.
  await memberAction(a.page, bob, 'Mute for 10 minutes');
  await systemLine(a.page, 'muted', `${alice} muted ${bob} for 10 minutes`).waitFor();
  await a.page.locator(`#member-list li.member[data-user-id="${bobId}"][data-muted="true"]`).waitFor();
  await screenshots(a.page, 'rooms-muted-owner');

  // Bob sends: refused, and his page says he is muted, until when, and stops him sending more.
  await send(b.page, 'can anyone hear me?');
  await b.page.locator('#pending li[data-state="failed"]', { hasText: 'can anyone hear me?' }).waitFor();
  await b.page.waitForFunction(() => /^You are muted in this room until .+/.test(document.querySelector('#composer-notice').textContent)
    && document.querySelector('#text').disabled && document.querySelector('#send').disabled);
  await screenshots(b.page, 'rooms-muted-member');
  // The late event takes its place in his timeline, as any event does.
  holding = false;
  for (const deliver of held.splice(0)) deliver();
  await systemLine(b.page, 'muted', `${alice} muted ${bob} for 10 minutes`).waitFor();

  // Alice unmutes him: his page hears it and lets him send again.
  await memberAction(a.page, bob, 'Unmute');
  await systemLine(a.page, 'unmuted', `${alice} unmuted ${bob}`).waitFor();
  await b.page.waitForFunction(() => !document.querySelector('#text').disabled
    && document.querySelector('#composer-notice').textContent === '');
  await b.page.locator('#pending li[data-state="failed"]').getByRole('button', { name: 'Discard' }).click();
  await send(b.page, 'back again');
  await a.page.locator('#messages li.msg', { hasText: 'back again' }).waitFor();
  // What was refused never came: it would have come before the message after it.
  const texts = (await waitShown(a.page, 1)).map((m) => m.text);
  assert.deepEqual(texts, ['back again']);
  const history = await api(a.page, 'GET', `/api/v1/rooms/${room}/messages?limit=50`);
  assert.equal(history.status, 200);
  assert.deepEqual(history.body.messages.map((m) => m.text), ['back again']);

  // Muted again, his page hears it live.
  await memberAction(a.page, bob, 'Mute for 1 hour');
  await systemLine(b.page, 'muted', `${alice} muted ${bob} for 1 hour`).waitFor();
  await b.page.waitForFunction(() => document.querySelector('#text').disabled
    && document.querySelector('#composer-notice').textContent.startsWith('You are muted in this room until'));

  assert.deepEqual(a.problems, []);
  assert.deepEqual(b.problems, []);
  await Promise.all([a.context.close(), b.context.close()]);
});

test('invited by username, the invitation waits on the panel and opens the room', async () => {
  const [alice, bob] = [unique('alice'), unique('bob')];
  const [a, b] = await Promise.all([newPage(browser), newPage(browser)]);
  await Promise.all([signUp(a.page, alice), signUp(b.page, bob)]);
  const title = `Tea ${unique('t')}`;
  const room = await createPrivateRoom(a.page, title);

  await a.page.getByRole('button', { name: 'Invite people', exact: true }).click();
  const dialog = a.page.getByRole('dialog', { name: 'Invite people' });
  await dialog.getByLabel('Invite by username').fill(bob);
  await dialog.getByRole('button', { name: 'Invite', exact: true }).click();
  await a.page.locator('#messages li.sys-event[data-action="invited"]').waitFor();

  // Bob's panel lists it under its title, with who invited him; it opens the room.
  await b.page.goto('/');
  const invitation = b.page.locator('#invitation-list li', { hasText: title });
  await invitation.waitFor();
  assert.match(await invitation.textContent(), new RegExp(`invited by ${alice}`));
  await screenshots(b.page, 'rooms-invitation');
  await invitation.getByRole('link', { name: title }).click();
  await waitJoined(b.page);
  assert.equal(new URL(b.page.url()).searchParams.get('name'), room);
  await send(b.page, 'thanks for the tea');
  await waitShown(a.page, 1);

  // Taken up, it is no longer waiting.
  await b.page.goto('/');
  await b.page.locator('#room-list li', { hasText: title }).waitFor();
  assert.equal(await b.page.locator('#invitations').isHidden(), true);
  await Promise.all([a.context.close(), b.context.close()]);
});
