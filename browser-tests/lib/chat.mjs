// What a person does in the client, as steps the tests share: sign up, enter a room, send,
// and read back what the page shows. Selectors are the page's labels and roles where it has
// them, so the tests also hold the client to being usable by keyboard and screen reader.

import { deflateSync } from 'node:zlib';
import { api, metricByGateway, newPage, unique } from './harness.mjs';

export const PASSWORD = 'correct horse battery staple';

/**
 * Two people, newly signed up, in a new room named after `prefix`; `route`, if given, sits
 * between the first one's page and the server (page.routeWebSocket).
 */
export async function twoInRoom(browser, prefix, route = null) {
  const room = unique(prefix);
  const a = await newPage(browser);
  const b = await newPage(browser);
  if (route) await a.page.routeWebSocket(/\/ws$/, route);
  await signUp(a.page, unique('ann'));
  await signUp(b.page, unique('bob'));
  await enterRoom(a.page, room);
  await enterRoom(b.page, room);
  return { room, a, b };
}

/**
 * Signs up through the sign-up page; resolves on the panel. The wait for the panel is a
 * bound on liveness, longer than Playwright's 30 s: three sign-ups at once hash three
 * passwords, and on a slower machine (2026-12-07) that once took longer.
 */
export async function signUp(page, username) {
  await page.goto('/signup.html');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('E-mail').fill(`${username}@example.com`);
  await page.getByLabel('First name').fill('Test');
  await page.getByLabel('Last name').fill(username);
  await page.getByLabel('Password').fill(PASSWORD);
  await Promise.all([
    page.waitForURL((url) => url.pathname === '/', { timeout: 120_000 }),
    page.getByRole('button', { name: 'Create account' }).click(),
  ]);
  await page.getByRole('heading', { name: `Hello, ${username}` }).waitFor();
}

/** Enters a room from the panel's field; resolves once the room is joined live. */
export async function enterRoom(page, room) {
  if (new URL(page.url()).pathname !== '/') await page.goto('/');
  await page.getByLabel('Room name').fill(room);
  await Promise.all([
    page.waitForURL((url) => url.pathname === '/room.html'),
    page.getByRole('button', { name: 'Enter', exact: true }).click(),
  ]);
  await waitJoined(page);
}

/**
 * Creates a private room from the panel's form (its name is the room's title); resolves
 * with the room's name (`p.…`, the server's choice) once the room page has joined it.
 */
export async function createPrivateRoom(page, title) {
  if (new URL(page.url()).pathname !== '/') await page.goto('/');
  await page.getByLabel('Room name').fill(title);
  await page.getByLabel('Private', { exact: true }).check();
  await Promise.all([
    page.waitForURL((url) => url.pathname === '/room.html'),
    page.getByRole('button', { name: 'Create', exact: true }).click(),
  ]);
  await waitJoined(page);
  return new URL(page.url()).searchParams.get('name');
}

/** Who the page's person is: `{ id, name, kind, role }`. */
export async function whoAmI(page) {
  return (await api(page, 'GET', '/api/v1/session')).body.user;
}

/** The room page marks the moment its `joined` frame arrived. */
export async function waitJoined(page) {
  await page.locator('body[data-room-state="joined"]').waitFor({ state: 'attached' });
}

/**
 * Reloads a room page and tells which gateway its new socket is on: the one that received
 * the `join` the reload sends (only this page sends frames meanwhile; pongs are not counted).
 */
export async function reloadOnto(page) {
  for (let attempt = 0; attempt < 5; attempt += 1) {
    const before = await metricByGateway('sc_gateway_frames_in_total');
    await page.reload();
    await waitJoined(page);
    const after = await metricByGateway('sc_gateway_frames_in_total');
    const rose = Object.keys(after).filter((g) => after[g] > (before[g] ?? 0));
    if (rose.length === 1) return rose[0];
  }
  throw new Error('could not tell which gateway the page is on');
}

/** Types a message and sends it with Enter, as a person would. */
export async function send(page, text) {
  const field = page.getByLabel('Message', { exact: true });
  await field.fill(text);
  await field.press('Enter');
}

/** The confirmed messages on a room page, in the order shown. */
export function shown(page) {
  return page.$$eval('#messages li.msg', (items) => items.map((li) => ({
    seq: Number(li.dataset.seq),
    state: li.dataset.state,
    author: li.querySelector('.msg-author')?.textContent ?? '',
    text: li.querySelector('.msg-text')?.textContent ?? '',
    image: li.querySelector('.msg-image img')?.getAttribute('src') ?? null,
  })));
}

/** Waits until the page shows `count` confirmed messages and nothing is still pending. */
export async function waitShown(page, count, timeout = 15_000) {
  await page.waitForFunction((n) => document.querySelectorAll('#messages li.msg').length >= n
    && document.querySelectorAll('#pending li').length === 0, count, { timeout });
  return shown(page);
}

/** Asserts the invariant of every room view: each seq once, strictly increasing. */
export function assertOrdered(assert, messages) {
  for (let i = 1; i < messages.length; i += 1) {
    assert.ok(messages[i].seq > messages[i - 1].seq, `seq ${messages[i].seq} follows ${messages[i - 1].seq}`);
  }
}

/** A small but real PNG (a colour gradient), so that sniffing and rendering are exercised. */
export function png(width = 48, height = 48) {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y += 1) {
    const row = y * (width * 3 + 1);
    for (let x = 0; x < width; x += 1) {
      raw[row + 1 + x * 3] = (x * 255) / width;
      raw[row + 2 + x * 3] = (y * 255) / height;
      raw[row + 3 + x * 3] = 160;
    }
  }
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc32(body), 8 + data.length);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0)),
  ]);
}

function crc32(bytes) {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k += 1) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}
