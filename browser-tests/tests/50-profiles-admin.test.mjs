// Profiles (your own, edited with a picture; anyone's, viewed) and the administrators' page.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, newPage, screenshots, unique } from '../lib/harness.mjs';
import { signUp, enterRoom, send, waitShown, png } from '../lib/chat.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test('a profile is edited with a picture and seen by others, beside their messages too', async () => {
  const mia = unique('mia');
  const room = unique('faces');
  const m = await newPage(browser);
  const n = await newPage(browser);
  await signUp(m.page, mia);
  await m.page.getByRole('link', { name: 'Profile' }).click();
  await m.page.getByRole('heading', { name: 'Your profile' }).waitFor();
  await m.page.getByLabel('About you').fill('Here for the cats.\nAnd the <b>dogs</b>.');
  await m.page.getByRole('button', { name: 'Save' }).click();
  await m.page.getByText('Saved.').waitFor();
  await m.page.locator('#avatar-file').setInputFiles({ name: 'me.png', mimeType: 'image/png', buffer: png(64, 64) });
  await m.page.getByText('Picture updated.').waitFor();
  await screenshots(m.page, 'profile-own');

  await signUp(n.page, unique('ned'));
  await n.page.goto(`/profile.html?u=${mia.toUpperCase()}`); // usernames are found in any case
  await n.page.getByRole('heading', { name: `Test ${mia}` }).waitFor();
  assert.equal(await n.page.locator('#profile-bio').textContent(), 'Here for the cats.\nAnd the <b>dogs</b>.');
  await n.page.waitForFunction(() => document.querySelector('#profile-avatar img.avatar')?.naturalWidth > 0);
  assert.equal(await n.page.getByRole('link', { name: 'Edit your profile' }).isVisible(), false);
  await screenshots(n.page, 'profile-view');

  // In a room, Mia's messages carry her picture and link to her profile.
  await enterRoom(m.page, room);
  await send(m.page, 'hello, I have a face now');
  await enterRoom(n.page, room);
  await waitShown(n.page, 1);
  await n.page.waitForFunction(() => document.querySelector('#messages li.msg img.avatar')?.naturalWidth > 0);
  assert.equal(await n.page.locator('#messages li.msg .msg-author').getAttribute('href'), `/profile.html?u=${mia}`);
  assert.deepEqual(m.problems, []);
  assert.deepEqual(n.problems, []);
  await m.context.close();
  await n.context.close();
});

test('an administrator deletes a message from the admin page, and it leaves the open room', async () => {
  const room = unique('spam');
  const boss = await newPage(browser);
  const member = await newPage(browser);
  await signUp(member.page, unique('pat'));
  await enterRoom(member.page, room);
  await send(member.page, 'a normal message');
  await send(member.page, 'BUY NOW cheap watches');
  await waitShown(member.page, 2);

  // Someone without the role sees no admin link, and the page says it is not for them.
  assert.equal(await member.page.getByRole('link', { name: 'Admin' }).count(), 0);

  await signUp(boss.page, process.env.ADMIN_USERNAME);
  await boss.page.getByRole('link', { name: 'Admin' }).click();
  await boss.page.getByLabel('Text contains').fill('buy now');
  await boss.page.getByLabel('In room (optional)').fill(room);
  await boss.page.locator('form[data-kind="messages"]').getByRole('button', { name: 'Search' }).click();
  const row = boss.page.locator('#messages tr', { hasText: 'BUY NOW cheap watches' });
  await row.waitFor();
  await row.getByRole('button', { name: 'Delete' }).click();
  await row.getByRole('button', { name: 'Confirm: delete' }).click();
  await boss.page.locator('#audit tr', { hasText: 'delete_message' }).waitFor();
  await screenshots(boss.page, 'admin');

  // Live, in the member's open room: the message collapses to a tombstone, the other stays.
  await member.page.waitForFunction(() => document.querySelectorAll('#messages li.msg.deleted').length === 1);
  assert.equal(await member.page.locator('#messages li.msg.deleted .msg-tombstone').textContent(), 'Message deleted');
  assert.equal(await member.page.locator('#messages li.msg.deleted .msg-text').count(), 0, 'nothing of its text is left');
  assert.equal(await member.page.locator('#messages .msg-text').textContent(), 'a normal message');
  assert.deepEqual(boss.problems, []);
  assert.deepEqual(member.problems, []);
  await boss.context.close();
  await member.context.close();
});
