// Sending as a person sees it: Shift+Enter for new lines, a pending message that turns into
// a confirmed one, and a refused send that is retried with the same client_msg_id.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, newPage, screenshots, unique } from '../lib/harness.mjs';
import { signUp, enterRoom, send, waitShown } from '../lib/chat.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test('a refused send shows its error, and Retry delivers it once with the same client_msg_id', async () => {
  const room = unique('retry');
  const a = await newPage(browser);
  const b = await newPage(browser);
  // A fault on the way: the first send never reaches the gateway, and the page gets the
  // error frame a gateway sends when the message service is down. Everything else passes
  // through to the real gateway untouched.
  const sends = [];
  let refuse = true;
  await a.page.routeWebSocket(/\/ws$/, (socket) => {
    const server = socket.connectToServer();
    socket.onMessage((message) => {
      const frame = JSON.parse(String(message));
      if (frame.type === 'send') {
        sends.push(frame.client_msg_id);
        if (refuse) {
          refuse = false;
          socket.send(JSON.stringify({
            type: 'error', code: 'unavailable', ref: frame.client_msg_id,
            message: 'the message service is unavailable; retry later with the same client_msg_id',
          }));
          return;
        }
      }
      server.send(message);
    });
  });
  await signUp(a.page, unique('kim'));
  await signUp(b.page, unique('lou'));
  await enterRoom(a.page, room);
  await enterRoom(b.page, room);

  // Shift+Enter makes a new line; Enter sends.
  const field = a.page.getByLabel('Message', { exact: true });
  await field.pressSequentially('first line');
  await field.press('Shift+Enter');
  await field.pressSequentially('second line');
  await field.press('Enter');

  const failed = a.page.locator('#pending li[data-state="failed"]');
  await failed.waitFor();
  assert.match(await failed.getByRole('alert').textContent(), /^Not sent: the message service is unavailable/);
  assert.equal(await field.inputValue(), '', 'the field is free for the next message');
  await screenshots(a.page, 'send-failed');

  await failed.getByRole('button', { name: 'Retry' }).click();
  for (const { page } of [a, b]) {
    const messages = await waitShown(page, 1);
    assert.deepEqual(messages.map((m) => m.text), ['first line\nsecond line']);
  }
  assert.equal(sends.length, 2);
  assert.equal(sends[0], sends[1], 'the retry reuses the client_msg_id');

  // A normal send: pending first, then confirmed in place.
  await send(a.page, 'and a normal one');
  const mine = await waitShown(a.page, 2);
  assert.equal(mine[1].state, 'sent');
  assert.deepEqual((await waitShown(b.page, 2)).map((m) => m.text), ['first line\nsecond line', 'and a normal one']);
  assert.deepEqual(a.problems, []);
  assert.deepEqual(b.problems, []);
  await a.context.close();
  await b.context.close();
});
