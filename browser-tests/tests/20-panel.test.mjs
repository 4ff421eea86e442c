// The panel: unread badges raised live by `notify`, and room names refused with the reason.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, newPage, screenshots, unique, api } from '../lib/harness.mjs';
import { signUp, enterRoom, send, waitShown } from '../lib/chat.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test('a message in another room of the user raises that room’s unread badge on the panel', async () => {
  const dee = unique('dee');
  const eve = unique('eve');
  const quiet = unique('quiet');
  const busy = unique('busy');
  const d = await newPage(browser);
  const e = await newPage(browser);
  // Desktop notifications, allowed, and recorded as the page raises them.
  await d.context.grantPermissions(['notifications']);
  await d.context.addInitScript(() => {
    window.raised = [];
    const Real = window.Notification;
    window.Notification = class extends Real {
      constructor(title, options) {
        window.raised.push({ title, body: options?.body });
        super(title, options);
      }
    };
  });
  await signUp(d.page, dee);
  await enterRoom(d.page, busy);
  await enterRoom(d.page, quiet);
  await d.page.goto('/');
  const badge = d.page.locator(`li.room-row[data-room="${busy}"] .badge`);
  await d.page.locator(`li.room-row[data-room="${busy}"]`).waitFor();
  assert.equal(await badge.isVisible(), false, 'no unread messages yet');
  await d.page.locator('#conn-state[data-state="connected"]').waitFor();

  await signUp(e.page, eve);
  await enterRoom(e.page, busy);
  await send(e.page, 'anyone here?');
  await waitShown(e.page, 1);
  await send(e.page, 'hello?');
  await waitShown(e.page, 2);

  // Live, without a reload: the panel counts both.
  await d.page.waitForFunction((room) => document.querySelector(`li.room-row[data-room="${room}"] .badge`)?.textContent === '2', busy);
  assert.equal(await badge.getAttribute('aria-label'), '2 unread');
  assert.equal(await d.page.locator(`li.room-row[data-room="${quiet}"] .badge`).isVisible(), false);
  assert.deepEqual(await d.page.evaluate(() => window.raised), [
    { title: `New in #${busy}`, body: `${eve}: anyone here?` },
    { title: `New in #${busy}`, body: `${eve}: hello?` },
  ]);
  await screenshots(d.page, 'panel-unread');

  // The room page's sidebar shows it too, and opening the room reads it.
  await d.page.locator(`li.room-row[data-room="${busy}"] a`).click();
  await waitShown(d.page, 2);
  await d.page.goto('/');
  await d.page.locator(`li.room-row[data-room="${busy}"]`).waitFor();
  assert.equal(await badge.isVisible(), false, 'read once opened');
  assert.deepEqual(d.problems, []);
  assert.deepEqual(e.problems, []);
  await d.context.close();
  await e.context.close();
});

test('bad room names are refused with the reason shown', async () => {
  const { page, problems, context } = await newPage(browser);
  await signUp(page, unique('fay'));
  const field = page.getByLabel('Room name');
  const error = page.locator('#room-error');
  const cases = [
    ['has space', /letters a–z, digits/],
    ['-dash-first', /start with a letter or a digit/],
    ['x'.repeat(65), /at most 64/],
    ['café', /letters a–z, digits/],
  ];
  for (const [name, reason] of cases) {
    await field.fill(name);
    await page.getByRole('button', { name: 'Enter', exact: true }).click();
    await error.waitFor();
    assert.match(await error.textContent(), reason, name);
    assert.equal(await field.getAttribute('aria-invalid'), 'true');
    assert.equal(new URL(page.url()).pathname, '/', 'stays on the panel');
  }
  await screenshots(page, 'panel-bad-room-name');
  // The server refuses what the page would not have sent, with its own reason.
  const refused = await api(page, 'POST', '/api/v1/rooms', { name: 'has space' });
  assert.equal(refused.status, 400);
  assert.equal(refused.body.error.code, 'invalid_room');
  // A bad name in a link shows the reason on the room page instead of joining.
  await page.goto('/room.html?name=bad%20name');
  await page.getByText('is not a room name').waitFor();
  assert.ok(await page.locator('#send').isDisabled());
  await screenshots(page, 'room-bad-name');
  // Only the refusal asked for above was an error response.
  assert.deepEqual(problems.filter((p) => !/status of 400 .*\/api\/v1\/rooms\)$/.test(p)), []);
  await context.close();
});
