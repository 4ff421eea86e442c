// Accessibility, checked rather than hoped for (issue 24): every page of the client passes
// axe at desktop and phone widths (screenshots() runs it at each state a test captures; this
// file reaches the pages and dialogs no other test captures), a message still being sent is
// as legible as any other, every control the keyboard reaches shows where the focus is, and
// the room's timeline does not make each author's name a stop of its own.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, newPage, screenshots, unique, api, DESKTOP, PHONE } from '../lib/harness.mjs';
import { signUp, enterRoom, createPrivateRoom, send, waitShown, waitJoined, PASSWORD } from '../lib/chat.mjs';
import { axeViolations } from '../lib/axe.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

/**
 * What the browser logs for a response a step expects: the session check of someone not
 * logged in (401) and the 404 page itself.
 */
const expected = (problems) => problems.filter((p) => !/status of 40[14] /.test(p));

/**
 * The administrator: the account is made by whichever test file gets there first (it is the
 * configured ADMIN_USERNAME, so signing up gives it the role), and logged into after that.
 */
async function asAdmin(page) {
  const username = process.env.ADMIN_USERNAME;
  assert.ok(username, 'ADMIN_USERNAME is set by scripts/browser-test.sh');
  await page.goto('/login.html');
  const login = await api(page, 'POST', '/api/v1/sessions', { username, password: PASSWORD });
  if (login.status !== 201) await signUp(page, username);
}

/**
 * Tabs through the whole page, as someone with a keyboard does, until the focus comes back
 * round to where it started, and says of each stop what it is (`what`), whether it is an
 * author's name in the timeline (`author`), and whether its focus shows (`ring`).
 *
 * The focus shows when the element, or the label that stands for it when it is hidden to
 * the eye (the image picker's file field), has an outline or a shadow while focused that it
 * does not have once the focus has moved on: a shadow an element always wears is no ring,
 * so each stop is judged again on the next Tab, unfocused. The computed style says what is
 * drawn; what covers it (an ancestor's clipping) is left to the screenshots.
 */
async function tabThrough(page, limit = 400) {
  await page.evaluate(() => { window.__walk = { stops: [], prev: null, first: null, done: false }; });
  for (let i = 0; i < limit; i += 1) {
    await page.keyboard.press('Tab');
    const done = await page.evaluate(() => {
      const walk = window.__walk;
      const seen = (node) => {
        const box = node.getBoundingClientRect();
        return box.width > 2 && box.height > 2 && getComputedStyle(node).visibility !== 'hidden';
      };
      const look = (node) => {
        const s = getComputedStyle(node);
        const outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0
          && !/^(transparent|rgba\(.*,\s*0\))$/.test(s.outlineColor);
        return { outline, shadow: s.boxShadow !== 'none', style: `${s.outlineStyle} ${s.outlineWidth} ${s.outlineColor} | ${s.boxShadow}` };
      };
      if (walk.prev) {
        const { stop, targets, focused } = walk.prev;
        const now = targets.map(look);
        stop.ring = focused.some((f, t) => (f.outline || f.shadow) && f.style !== now[t].style);
        walk.prev = null;
      }
      const node = document.activeElement;
      if (!node || node === document.body) return false; // off the page's end: the next Tab comes back in
      if (node === walk.first) return true;
      walk.first ??= node;
      const targets = seen(node) ? [node] : [...(node.labels ?? [])].filter(seen);
      const name = (node.getAttribute('aria-label') || node.textContent || node.value || '').trim().replace(/\s+/g, ' ').slice(0, 40);
      const classes = typeof node.className === 'string' && node.className.trim() ? `.${node.className.trim().split(/\s+/).join('.')}` : '';
      const stop = { what: `${node.tagName.toLowerCase()}${node.id ? `#${node.id}` : ''}${classes} "${name}"`, author: node.matches('.msg-author'), ring: false };
      walk.stops.push(stop);
      walk.prev = { stop, targets, focused: targets.map(look) };
      return false;
    });
    if (done) return page.evaluate(() => window.__walk.stops);
  }
  throw new Error(`the focus did not come back round within ${limit} presses of Tab`);
}

test('every page, and the dialogs no other test opens, pass axe at both widths', async () => {
  // Before logging in: the pages anyone may open.
  const visitor = await newPage(browser);
  await visitor.page.goto('/login.html');
  await visitor.page.getByRole('heading', { name: 'Log in' }).waitFor();
  await screenshots(visitor.page, 'a11y-login');
  await visitor.page.goto('/signup.html');
  await visitor.page.getByRole('heading', { name: 'Create an account' }).waitFor();
  await screenshots(visitor.page, 'a11y-signup');
  await visitor.page.goto('/forgot.html');
  await visitor.page.getByRole('heading', { name: 'Forgot your password?' }).waitFor();
  await screenshots(visitor.page, 'a11y-forgot');
  await visitor.page.goto('/reset.html');
  await visitor.page.getByRole('heading', { name: 'This reset link is invalid or has been used' }).waitFor();
  await screenshots(visitor.page, 'a11y-reset-invalid');
  await visitor.page.goto('/no/such/page');
  await visitor.page.getByRole('heading', { name: 'There is no page here' }).waitFor();
  await screenshots(visitor.page, 'a11y-not-found');
  assert.deepEqual(expected(visitor.problems), []);
  await visitor.context.close();

  // Logged in: the panel, a room of one's own with its dialogs, the profile.
  const [ann, bob] = [unique('ann'), unique('bob')];
  const a = await newPage(browser);
  const b = await newPage(browser);
  await signUp(a.page, ann);
  await screenshots(a.page, 'a11y-panel');
  const title = `Reading club ${unique('t')}`;
  await createPrivateRoom(a.page, title);
  await send(a.page, 'welcome, everyone');
  await waitShown(a.page, 1);
  await screenshots(a.page, 'a11y-room');

  await a.page.getByRole('button', { name: 'Manage room' }).click();
  const manage = a.page.getByRole('dialog', { name: 'Manage room' });
  await manage.waitFor();
  await screenshots(a.page, 'a11y-manage-dialog');
  await manage.getByRole('button', { name: 'Close' }).click();

  await a.page.getByRole('button', { name: 'Invite people', exact: true }).click();
  const invite = a.page.getByRole('dialog', { name: 'Invite people' });
  await invite.getByRole('button', { name: 'Copy invite link' }).click();
  await a.page.waitForFunction(() => document.querySelector('#invite-link').value !== '');
  const link = await a.page.locator('#invite-link').inputValue();
  await screenshots(a.page, 'a11y-invite-dialog');
  await invite.getByRole('button', { name: 'Close' }).click();

  await a.page.getByRole('link', { name: 'Profile' }).click();
  await a.page.getByRole('heading', { name: 'Your profile' }).waitFor();
  await screenshots(a.page, 'a11y-profile-own');

  // Someone else: the invite page (a good link and a bad one) and another's profile.
  await signUp(b.page, bob);
  await b.page.goto(link);
  await b.page.getByRole('heading', { name: title }).waitFor();
  await screenshots(b.page, 'a11y-invite');
  await b.page.goto('/invite.html#nonsense');
  await b.page.getByRole('heading', { name: 'This invite link is invalid or has expired' }).waitFor();
  await screenshots(b.page, 'a11y-invite-invalid');
  await b.page.goto(`/profile.html?u=${ann}`);
  await b.page.getByRole('heading', { name: `Test ${ann}` }).waitFor();
  await screenshots(b.page, 'a11y-profile-other');

  // The administrators' page.
  const boss = await newPage(browser);
  await asAdmin(boss.page);
  await boss.page.goto('/admin.html');
  await boss.page.getByRole('heading', { name: 'Administration' }).waitFor();
  await screenshots(boss.page, 'a11y-admin');

  assert.deepEqual(a.problems, []);
  assert.deepEqual(expected(b.problems), []); // the bad invite link's 404
  assert.deepEqual(expected(boss.problems), []);
  await Promise.all([a.context.close(), b.context.close(), boss.context.close()]);
});

test('the top bar passes axe at the widths between phone and desktop too', async () => {
  // screenshots() looks at 390 and 1280 px; the bar changes its layout at 400, 720 and 960
  // px (style.css), and phones and tablets come in every width between.
  const { page, problems, context } = await newPage(browser);
  await signUp(page, unique('wid'));
  const found = [];
  for (const width of [412, 600, 760, 1000]) {
    await page.setViewportSize({ width, height: 800 });
    for (const v of await axeViolations(page, '#topbar')) found.push(`${width} px: ${v.id} (${v.impact}) at ${v.nodes.join(', ')}`);
  }
  assert.deepEqual(found, []);
  assert.deepEqual(problems, []);
  await context.close();
});

test('a message still being sent is legible: "Sending…" meets the contrast rule', async () => {
  // The page's sends are held back on their way to the gateway, so that the message stays
  // "Sending…" for as long as the test looks at it; then they go on, and it is delivered.
  const held = [];
  let holding = true;
  let toServer = null;
  const { page, problems, context } = await newPage(browser);
  await page.routeWebSocket(/\/ws$/, (socket) => {
    const server = socket.connectToServer();
    toServer = server;
    socket.onMessage((message) => {
      if (holding && JSON.parse(String(message)).type === 'send') held.push(message);
      else server.send(message);
    });
  });
  await signUp(page, unique('sal'));
  await enterRoom(page, unique('slow'));
  await send(page, 'on its way');
  const sending = page.locator('#pending li[data-state="pending"] .msg-pending');
  await sending.waitFor();
  assert.equal(await sending.textContent(), 'Sending…');
  assert.equal(held.length, 1, 'the send is held');

  assert.deepEqual(await axeViolations(page, '#pending'), [], 'the message being sent');
  await screenshots(page, 'a11y-sending');

  holding = false;
  for (const message of held.splice(0)) toServer.send(message);
  const messages = await waitShown(page, 1);
  assert.deepEqual(messages.map((m) => m.text), ['on its way']);
  assert.deepEqual(problems, []);
  await context.close();
});

test('every control on the panel, in a room and on the profile shows its focus, at both widths', async () => {
  const { room, people: [a] } = await roomWithTalk();
  for (const viewport of [DESKTOP, PHONE]) {
    await a.page.setViewportSize(viewport);
    await a.page.goto('/');
    await a.page.getByRole('heading', { name: /^Hello, / }).waitFor();
    await a.page.locator('#room-list a').first().waitFor();
    const panel = await tabThrough(a.page);
    assert.ok(panel.length > 5, `the walk went through the panel: ${panel.map((s) => s.what).join(', ')}`);
    assert.deepEqual(panel.filter((s) => !s.ring).map((s) => s.what), [], `panel at ${viewport.width} px: stops without a visible focus`);

    await a.page.goto(`/room.html?name=${room}`);
    await waitJoined(a.page);
    await waitShown(a.page, 3);
    const stops = await tabThrough(a.page);
    assert.ok(stops.some((s) => s.what.startsWith('input#file')), 'the walk reached the image picker');
    assert.deepEqual(stops.filter((s) => !s.ring).map((s) => s.what), [], `room at ${viewport.width} px: stops without a visible focus`);

    // The profile's picture is chosen by a hidden file field too.
    await a.page.goto('/profile.html');
    await a.page.getByRole('heading', { name: 'Your profile' }).waitFor();
    const profile = await tabThrough(a.page);
    assert.ok(profile.some((s) => s.what.startsWith('input#avatar-file')), 'the walk reached the picture picker');
    assert.deepEqual(profile.filter((s) => !s.ring).map((s) => s.what), [], `profile at ${viewport.width} px: stops without a visible focus`);
  }
  await a.page.setViewportSize(DESKTOP);
  assert.deepEqual(a.problems, []);
  await a.context.close();
});

test("authors' names are not each a stop for the keyboard, and their profiles are still in reach", async () => {
  const { room, people: [a], names: [, bob] } = await roomWithTalk();
  await a.page.goto(`/room.html?name=${room}`);
  await waitJoined(a.page);
  await waitShown(a.page, 3);
  assert.ok(await a.page.locator('#messages a.msg-author').count() >= 2, 'the timeline shows linked names');

  const stops = await tabThrough(a.page);
  assert.ok(stops.some((s) => s.what.includes('msg-menu-button')), 'the walk went through the timeline');
  assert.deepEqual(stops.filter((s) => s.author).map((s) => s.what), [], 'Tab never lands on an author');

  // The keyboard's way to a profile: the message's actions.
  const message = a.page.locator('#messages li.msg', { has: a.page.locator('.msg-text', { hasText: 'hello from bob' }) });
  await message.getByRole('button', { name: /^Actions for the message/ }).press('Enter');
  const item = a.page.getByRole('menuitem', { name: `Profile of ${bob}` });
  await item.waitFor();
  await item.focus();
  await Promise.all([a.page.waitForURL((url) => url.pathname === '/profile.html'), a.page.keyboard.press('Enter')]);
  await a.page.getByRole('heading', { name: `Test ${bob}` }).waitFor();

  // The pointer's: the name itself, still a link.
  await a.page.goto(`/room.html?name=${room}`);
  await waitJoined(a.page);
  await waitShown(a.page, 3);
  await Promise.all([
    a.page.waitForURL((url) => url.pathname === '/profile.html'),
    message.locator('a.msg-author').click(),
  ]);
  await a.page.getByRole('heading', { name: `Test ${bob}` }).waitFor();
  assert.deepEqual(a.problems, []);
  await a.context.close();
});

/**
 * A public room where two people have talked (two messages from one, then one from the
 * other, so that there are a group and a lone message), and the first person's page on
 * the panel with the room in its list. The second person's page is closed.
 */
async function roomWithTalk() {
  const room = unique('talk');
  const names = [unique('ann'), unique('bob')];
  const people = [await newPage(browser), await newPage(browser)];
  await signUp(people[0].page, names[0]);
  await signUp(people[1].page, names[1]);
  await enterRoom(people[0].page, room);
  await send(people[0].page, 'hello from ann');
  await send(people[0].page, 'and again');
  await waitShown(people[0].page, 2);
  await enterRoom(people[1].page, room);
  await send(people[1].page, 'hello from bob');
  await waitShown(people[1].page, 3);
  await people[1].context.close();
  return { room, people: [people[0]], names };
}
