// Images in the timeline (issue 24): a room whose recent history has images opens at its
// newest message and stays there while they load, since each image's space is set aside
// from the size its message carries; the timeline loads thumbnails, and the whole image
// opens in a lightbox. And a room load asks for its member list once, with everyone's
// avatar in it, rather than for a profile per author.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { launch, newPage, screenshots, unique, api } from '../lib/harness.mjs';
import { signUp, enterRoom, send, waitShown, png } from '../lib/chat.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

/** How far the timeline is from its end, in pixels. */
const fromBottom = (page) => page.locator('#log').evaluate((log) => log.scrollHeight - log.scrollTop - log.clientHeight);

/** Uploads `bytes` as the page's person; the upload's JSON. */
async function upload(page, bytes) {
  const uploaded = await page.evaluate(async (data) => {
    const response = await fetch('/api/v1/uploads', { method: 'POST', body: new Uint8Array(data), credentials: 'same-origin' });
    return { status: response.status, body: await response.json() };
  }, [...bytes]);
  assert.equal(uploaded.status, 201, JSON.stringify(uploaded.body));
  return uploaded.body;
}

async function post(page, room, body) {
  const res = await api(page, 'POST', `/api/v1/rooms/${room}/messages`, { client_msg_id: randomUUID(), ...body });
  assert.equal(res.status, 201, JSON.stringify(res.body));
}

/** A gate the test opens: requests routed through it wait until then. */
function gate() {
  let open;
  const opened = new Promise((resolve) => { open = resolve; });
  return { opened, open };
}

test('a room with images opens at its newest message and stays there while they load', async (t) => {
  const room = unique('gallery');
  const a = await newPage(browser);
  await signUp(a.page, unique('ann'));
  await enterRoom(a.page, room);
  // Ann has an avatar: the member list brings it.
  const avatar = await upload(a.page, png(64, 64));
  const patched = await api(a.page, 'PATCH', '/api/v1/me', { avatar_id: avatar.id });
  assert.equal(patched.status, 200, JSON.stringify(patched.body));
  for (let i = 1; i <= 30; i += 1) await post(a.page, room, { text: `earlier ${i}` });
  const photo = await upload(a.page, png(1200, 900));
  assert.deepEqual([photo.width, photo.height], [1200, 900]);
  for (let i = 1; i <= 3; i += 1) await post(a.page, room, { text: `picture ${i}`, attachment_id: photo.id });

  // Bob opens the room fresh, on a connection where images are slow: they arrive only
  // when the test says so, long after the history is on screen.
  const b = await newPage(browser);
  await signUp(b.page, unique('bob'));
  const images = gate();
  const asked = { members: 0, profiles: 0, images: [] };
  await b.page.route('**/api/v1/uploads/**', async (route) => {
    asked.images.push(new URL(route.request().url()).pathname);
    await images.opened;
    await route.continue();
  });
  b.page.on('request', (request) => {
    const { pathname } = new URL(request.url());
    if (/^\/api\/v1\/rooms\/[^/]+\/members$/.test(pathname)) asked.members += 1;
    if (pathname.startsWith('/api/v1/users/')) asked.profiles += 1;
  });
  await enterRoom(b.page, room);
  await waitShown(b.page, 33);
  await b.page.waitForFunction(() => document.querySelectorAll('#messages .msg-image img').length === 3);

  // Each image's space is set aside before a byte of it arrived: 1200 × 900 fits 352 × 288 as 352 × 264.
  const boxes = await b.page.$$eval('#messages .msg-image img', (imgs) => imgs.map((img) => ({
    width: img.getAttribute('width'), height: img.getAttribute('height'), complete: img.complete && img.naturalWidth > 0,
    shown: Math.round(img.getBoundingClientRect().height),
  })));
  for (const box of boxes) {
    assert.deepEqual([box.width, box.height, box.complete], ['352', '264', false], JSON.stringify(boxes));
    assert.ok(Math.abs(box.shown - 264) <= 2, `the space is kept before the image arrives: ${JSON.stringify(boxes)}`);
  }
  assert.ok(await fromBottom(b.page) < 2, 'opened at the newest message');

  // The images arrive: the view is still at the newest message.
  images.open();
  await b.page.waitForFunction(() => [...document.querySelectorAll('#messages .msg-image img')]
    .every((img) => img.complete && img.naturalWidth > 0));
  assert.ok(await fromBottom(b.page) < 2, `still at the newest message (${await fromBottom(b.page)} px above it)`);
  // Thumbnails, not the whole images (one device pixel per CSS pixel here: the 360).
  const sources = await b.page.$$eval('#messages .msg-image img', (imgs) => imgs.map((img) => new URL(img.currentSrc).pathname));
  assert.deepEqual(sources, Array(3).fill(`/api/v1/uploads/${photo.id}/thumbnails/360`));
  assert.ok(!asked.images.includes(`/api/v1/uploads/${photo.id}`), `the whole image was not fetched: ${asked.images}`);

  // And it follows what comes next.
  await send(a.page, 'after the pictures');
  await waitShown(b.page, 34);
  await b.page.waitForFunction(() => {
    const log = document.querySelector('#log');
    return log.scrollHeight - log.scrollTop - log.clientHeight < 2;
  });

  // One member list, and with it Ann's avatar: no profile read to find it.
  const annAvatar = b.page.locator('#messages li.msg img.avatar').first();
  await annAvatar.waitFor();
  assert.equal(new URL(await annAvatar.evaluate((img) => img.src)).pathname, `/api/v1/uploads/${avatar.id}/thumbnails/160`);
  assert.equal(asked.members, 1, 'the member list is read once per room load');
  assert.equal(asked.profiles, 0, 'no profile request to find avatars');

  // The whole image, in a lightbox over the page; Escape puts the focus back.
  const link = b.page.locator('#messages .msg-image').last();
  await link.click();
  const dialog = b.page.getByRole('dialog', { name: 'Image' });
  await dialog.waitFor();
  const whole = dialog.locator('img.lightbox-image');
  await b.page.waitForFunction(() => {
    const img = document.querySelector('dialog.lightbox img.lightbox-image');
    return img?.complete && img.naturalWidth === 1200;
  });
  assert.equal(new URL(await whole.evaluate((img) => img.src)).pathname, `/api/v1/uploads/${photo.id}`);
  await screenshots(b.page, 'image-lightbox');
  await b.page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  assert.ok(await link.evaluate((node) => node === document.activeElement), 'the focus is back on the image');
  // The keyboard opens it too, and its close button closes it.
  await b.page.keyboard.press('Enter');
  await dialog.waitFor();
  await dialog.getByRole('button', { name: 'Close image' }).click();
  await dialog.waitFor({ state: 'hidden' });
  await screenshots(b.page, 'image-room-sized');

  assert.deepEqual(a.problems, []);
  assert.deepEqual(b.problems, []);
  await a.context.close();
  await b.context.close();
});
