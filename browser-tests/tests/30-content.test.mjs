// What people send: images for both users, and hostile text shown as text.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, newPage, screenshots, unique } from '../lib/harness.mjs';
import { signUp, enterRoom, send, waitShown, png } from '../lib/chat.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

async function twoInRoom() {
  const room = unique('pics');
  const a = await newPage(browser);
  const b = await newPage(browser);
  await signUp(a.page, unique('gus'));
  await signUp(b.page, unique('hal'));
  await enterRoom(a.page, room);
  await enterRoom(b.page, room);
  return { a, b, room };
}

test('an image message appears for both users (picked, then dropped)', async () => {
  const { a, b } = await twoInRoom();
  // Picked with the file chooser, with a caption, previewed before sending.
  await a.page.locator('#file').setInputFiles({ name: 'gradient.png', mimeType: 'image/png', buffer: png() });
  await a.page.getByAltText('Preview of gradient.png').waitFor();
  await screenshots(a.page, 'image-preview');
  await send(a.page, 'a gradient');
  // Dropped onto the room, without a caption.
  await b.page.evaluate((bytes) => {
    const transfer = new DataTransfer();
    transfer.items.add(new File([new Uint8Array(bytes)], 'dropped.png', { type: 'image/png' }));
    const target = document.querySelector('#main');
    for (const type of ['dragenter', 'dragover', 'drop']) {
      target.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
    }
  }, [...png(32, 24)]);
  await b.page.getByAltText('Preview of dropped.png').waitFor();
  await b.page.getByRole('button', { name: 'Send' }).click();

  for (const { page } of [a, b]) {
    const messages = await waitShown(page, 2);
    assert.equal(messages.length, 2);
    assert.ok(messages.every((m) => /^\/api\/v1\/uploads\/\d+$/.test(m.image)), JSON.stringify(messages));
    assert.equal(messages[0].text, 'a gradient');
    assert.equal(messages[1].text, '');
    // The pictures really load (a broken image has no natural width).
    await page.waitForFunction(() => [...document.querySelectorAll('#messages .msg-image img')]
      .every((img) => img.complete && img.naturalWidth > 0));
  }
  await screenshots(b.page, 'image-room');
  assert.deepEqual(a.problems, []);
  assert.deepEqual(b.problems, []);
  await a.context.close();
  await b.context.close();
});

test('markup in messages is shown literally and runs nothing', async () => {
  const { a, b } = await twoInRoom();
  const hostile = ['<img src=x onerror=alert(1)>', '<script>alert(2)</script>', '<b>not bold</b> & "quotes"'];
  for (const text of hostile) {
    await send(a.page, text);
    await waitShown(a.page, hostile.indexOf(text) + 1);
  }
  for (const { page } of [a, b]) {
    const messages = await waitShown(page, hostile.length);
    assert.deepEqual(messages.map((m) => m.text), hostile);
    assert.equal(await page.locator('#messages img[src="x"], #messages script, #messages b').count(), 0);
  }
  await screenshots(b.page, 'xss-room');
  // No dialog opened and nothing failed on either page.
  assert.deepEqual(a.problems, []);
  assert.deepEqual(b.problems, []);
  await a.context.close();
  await b.context.close();
});
