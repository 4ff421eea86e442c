// Runs last: it kills a gateway. The page shows it is reconnecting, comes back through the
// balancer on the other gateway, and shows what was sent meanwhile exactly once.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, newPage, screenshots, unique, killGateway } from '../lib/harness.mjs';
import { signUp, enterRoom, reloadOnto, send, waitShown, assertOrdered } from '../lib/chat.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test('a gateway dies mid-conversation: the page reconnects elsewhere and misses nothing', async () => {
  const room = unique('fail');
  const ida = unique('ida');
  const jon = unique('jon');
  const i = await newPage(browser);
  const j = await newPage(browser);
  await signUp(i.page, ida);
  await signUp(j.page, jon);
  await enterRoom(j.page, room);
  await enterRoom(i.page, room);
  const victim = await reloadOnto(i.page);

  await send(i.page, 'before the crash');
  await waitShown(j.page, 1);

  // Every state the connection pill goes through, so a brief `reconnecting` is not missed.
  await i.page.evaluate(() => {
    const pill = document.querySelector('#conn-state');
    window.connStates = [];
    new MutationObserver(() => window.connStates.push(pill.dataset.state))
      .observe(pill, { attributes: true, attributeFilter: ['data-state'] });
  });
  await killGateway(victim);
  await i.page.waitForFunction(() => window.connStates.includes('reconnecting'));
  await screenshots(i.page, 'gateway-failure-reconnecting');

  // Jon goes on talking (if he was on the same gateway, his sends wait and go on reconnect).
  const meanwhile = ['while you were away 1', 'while you were away 2', 'while you were away 3'];
  for (const text of meanwhile) await send(j.page, text);

  await i.page.locator('#conn-state[data-state="connected"]').waitFor({ timeout: 30_000 });
  const expected = ['before the crash', ...meanwhile];
  for (const { page } of [i, j]) {
    const messages = await waitShown(page, expected.length, 30_000);
    assert.deepEqual(messages.map((m) => m.text), expected, 'each message exactly once, in order');
    assertOrdered(assert, messages);
  }
  // And the conversation goes on through the surviving gateway.
  await send(i.page, 'back again');
  await waitShown(j.page, expected.length + 1);
  await screenshots(i.page, 'gateway-failure-recovered');
  assert.deepEqual(i.problems, []);
  assert.deepEqual(j.problems, []);
  await i.context.close();
  await j.context.close();
});
