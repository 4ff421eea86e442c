// What people send: images for both users, hostile text shown as text, links and formatting.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, screenshots } from '../lib/harness.mjs';
import { send, waitShown, shown, png, twoInRoom } from '../lib/chat.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test('an image message appears for both users (picked, then dropped)', async () => {
  const { a, b } = await twoInRoom(browser, 'pics');
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
  const { a, b } = await twoInRoom(browser, 'pics');
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

test('links and formatting render as elements, and nothing else becomes markup or a link', async () => {
  const { a, b } = await twoInRoom(browser, 'pics');
  const texts = [
    'see https://example.com/a_b?x=1. and (https://example.org/wiki/Rust_(language)) too',
    'javascript:alert(1) and <a href=x onclick=alert(1)>a tag</a> and www.example.com',
    '**bold** and _italic_ and `code with **stars** and https://example.com/in-code`',
    'snake_case and ann_1 or bob_2 stay plain',
    '```\n<b>not bold</b> **nor this**\n```',
    '> a quote with _emphasis_\nand a reply',
  ];
  for (const text of texts) {
    await send(a.page, text);
    await waitShown(a.page, texts.indexOf(text) + 1);
  }
  for (const { page } of [a, b]) {
    await waitShown(page, texts.length);
    const rendered = await page.$$eval('#messages li.msg .msg-text', (bodies) => bodies.map((body) => ({
      text: body.textContent,
      links: [...body.querySelectorAll('a')].map((link) => ({
        href: link.getAttribute('href'), text: link.textContent, target: link.target, rel: link.rel,
      })),
      strong: [...body.querySelectorAll('strong')].map((n) => n.textContent),
      em: [...body.querySelectorAll('em')].map((n) => n.textContent),
      code: [...body.querySelectorAll('code')].map((n) => n.textContent),
      pre: [...body.querySelectorAll('pre')].map((n) => n.textContent),
      quote: [...body.querySelectorAll('blockquote')].map((n) => n.textContent),
      elements: [...body.querySelectorAll('*')].map((n) => n.tagName.toLowerCase()),
    })));
    const rel = 'noopener noreferrer nofollow';
    // Addresses are links that open in a new tab, without the sentence's punctuation.
    assert.deepEqual(rendered[0].links, [
      { href: 'https://example.com/a_b?x=1', text: 'https://example.com/a_b?x=1', target: '_blank', rel },
      { href: 'https://example.org/wiki/Rust_(language)', text: 'https://example.org/wiki/Rust_(language)', target: '_blank', rel },
    ]);
    assert.equal(rendered[0].text, texts[0], 'the text reads as sent');
    // No other scheme, no markup and no bare host is ever a link.
    assert.deepEqual(rendered[1], { ...rendered[1], text: texts[1], links: [], elements: [] });
    // Bold, italic and code; nothing inside code is formatted or linked.
    assert.deepEqual(
      { strong: rendered[2].strong, em: rendered[2].em, code: rendered[2].code, links: rendered[2].links },
      { strong: ['bold'], em: ['italic'], code: ['code with **stars** and https://example.com/in-code'], links: [] },
    );
    assert.deepEqual(rendered[3].elements, [], 'underscores inside words are not emphasis');
    // A fenced block shows its markup literally.
    assert.deepEqual(rendered[4].pre, ['<b>not bold</b> **nor this**']);
    assert.deepEqual(rendered[4].elements, ['pre', 'code']);
    assert.deepEqual(rendered[5].quote, ['a quote with emphasis']);
    assert.deepEqual(rendered[5].em, ['emphasis']);
    assert.equal(await page.locator('#messages b, #messages script').count(), 0);
  }
  await screenshots(b.page, 'formatting-room');
  assert.deepEqual(a.problems, []);
  assert.deepEqual(b.problems, []);
  await a.context.close();
  await b.context.close();
});

test('consecutive messages from one person are grouped, and another person starts a new group', async () => {
  const { a, b } = await twoInRoom(browser, 'pics');
  const order = [[a, 'first'], [a, 'second'], [a, 'third'], [b, 'a reply'], [a, 'back again']];
  for (const [{ page }, text] of order) {
    await send(page, text);
    await waitShown(page, order.findIndex(([, t]) => t === text) + 1);
  }
  for (const { page } of [a, b]) {
    await waitShown(page, order.length);
    const rows = await page.$$eval('#messages li.msg', (items) => items.map((li) => ({
      continued: li.classList.contains('continued'),
      avatarShown: getComputedStyle(li.querySelector('.avatar')).visibility === 'visible',
      nameShown: li.querySelector('.msg-author').getBoundingClientRect().width > 1,
      name: li.querySelector('.msg-author').textContent,
    })));
    assert.deepEqual(rows.map((r) => r.continued), [false, true, true, false, false]);
    assert.deepEqual(rows.map((r) => r.avatarShown), [true, false, false, true, true]);
    assert.deepEqual(rows.map((r) => r.nameShown), [true, false, false, true, true]);
    // The name stays in the page for screen readers and for whoever reads the text.
    const messages = await shown(page);
    assert.equal(new Set(messages.slice(0, 3).map((m) => m.author)).size, 1);
    assert.notEqual(messages[3].author, messages[0].author);
    assert.ok(messages.every((m) => m.author.length > 0));
  }
  await screenshots(a.page, 'grouped-room');
  assert.deepEqual(a.problems, []);
  assert.deepEqual(b.problems, []);
  await a.context.close();
  await b.context.close();
});
