// Who is here, two people on two gateways: each sees the other type, the line ends when
// their message arrives, and it expires when they stop typing without sending.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, screenshots, api } from '../lib/harness.mjs';
import { waitShown, twoInRoom } from '../lib/chat.mjs';

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
