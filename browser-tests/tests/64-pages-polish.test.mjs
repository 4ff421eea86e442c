// The pages around the room, polished (issue "web client polish"): sign-up keeps the click
// that follows fixing a field, and sends someone already logged in on; the panel shows
// nothing of itself until the session is known; sessions are named by browser and system;
// the panel's log-in time is called what it is; long names are cut short with their whole
// text in a tooltip, and nothing scrolls sideways on a 360 px phone. axe checks each page
// touched, and both layouts are captured.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, newPage, screenshots, unique, api, DESKTOP } from '../lib/harness.mjs';
import { signUp, PASSWORD } from '../lib/chat.mjs';
import { axeAvailable, axeViolations } from '../lib/axe.mjs';

/** The narrowest phone the pages are made for. */
const NARROW = Object.freeze({ width: 360, height: 740 });
/** Between phone and desktop: the top bar's tightest layout. */
const MIDDLE = Object.freeze({ width: 760, height: 800 });

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

/** The session check of a page opened without a session (401), which the browser logs. */
const noSession = (problems) => problems.filter((p) => !/status of 401 .*\/api\/v1\/session\)$/.test(p));

/** Runs axe on a part of the page, or says why it cannot. */
async function checkAxe(t, page, name, selector = 'main') {
  await t.test(`axe: ${name}`, async (st) => {
    if (!axeAvailable) {
      st.skip('axe-core is not installed in browser-tests/node_modules (add it to browser-tests/package.json)');
      return;
    }
    assert.deepEqual(await axeViolations(page, selector), []);
  });
}

/** Whether the page scrolls sideways at its current width. */
const scrollsSideways = (page) => page.evaluate(() => document.documentElement.scrollWidth > innerWidth);

/** A name of exactly `length` characters that no other test uses (a username or a room name). */
function longName(prefix, length) {
  const name = unique(prefix);
  return name + 'x'.repeat(length - name.length);
}

/** Logs in with a User-Agent of our choosing, as another device would: a session the profile lists. */
async function logInAs(username, userAgent) {
  const response = await fetch(new URL('/api/v1/sessions', process.env.BASE_URL), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': userAgent },
    body: JSON.stringify({ username, password: PASSWORD }),
  });
  assert.equal(response.status, 201, `log-in as ${userAgent}`);
}

test('sign-up: the first click after fixing a field sends the form', async (t) => {
  const { page, problems, context } = await newPage(browser);
  const sue = unique('sue');
  await page.goto('/signup.html');
  await page.getByLabel('Username').fill(sue);
  await page.getByLabel('E-mail').fill(`${sue}@example.com`);
  await page.getByLabel('First name').fill('Sue');
  await page.getByLabel('Last name').fill('Field');
  await page.getByLabel('Password').fill('too short');
  const create = page.getByRole('button', { name: 'Create account' });
  await page.getByLabel('Password').press('Enter');
  await page.getByText('A password needs at least 10 characters.').waitFor();
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'password', 'the field to fix has the focus');
  assert.equal(await page.getByLabel('Password').getAttribute('aria-invalid'), 'true');
  await screenshots(page, 'signup-problem');
  await checkAxe(t, page, 'sign-up with a problem shown');

  // Fixed, the problem goes as it is typed; the field still has the focus.
  await page.getByLabel('Password').fill(PASSWORD);
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'password');
  // Pressing the button takes the focus from the field: the button must not move under the
  // pointer between mouse-down and mouse-up, or the click is lost.
  const before = await create.boundingBox();
  await page.mouse.move(before.x + before.width / 2, before.y + before.height / 2);
  await page.mouse.down();
  const pressed = await create.boundingBox();
  assert.equal(pressed.y, before.y, 'the button stays under the pointer while it is pressed');
  await Promise.all([
    page.waitForURL((url) => url.pathname === '/', { timeout: 10_000 }),
    page.mouse.up(),
  ]);
  await page.getByRole('heading', { name: `Hello, ${sue}` }).waitFor();
  assert.deepEqual(problems, []);
  await context.close();
});

test('sign-up sends someone already logged in on, and lets a guest sign up', async (t) => {
  const ivy = await newPage(browser);
  await signUp(ivy.page, unique('ivy'));
  await ivy.page.goto('/signup.html?next=%2Fprofile.html');
  await ivy.page.waitForURL((url) => url.pathname === '/profile.html', { timeout: 10_000 });
  await ivy.page.goto('/signup.html');
  await ivy.page.waitForURL((url) => url.pathname === '/', { timeout: 10_000 });
  await ivy.page.getByRole('heading', { name: /^Hello, / }).waitFor();
  // Only an address of this site is followed.
  await ivy.page.goto('/signup.html?next=%2F%2Fevil.example%2F');
  await ivy.page.waitForURL((url) => url.pathname === '/', { timeout: 10_000 });
  assert.deepEqual(ivy.problems, []);
  await ivy.context.close();

  // A guest stays: signing up is how a guest keeps their rooms.
  const gus = await newPage(browser);
  await gus.page.goto('/login.html');
  await gus.page.getByLabel('Display name').fill('Guest Gus');
  await Promise.all([
    gus.page.waitForURL((url) => url.pathname === '/'),
    gus.page.getByRole('button', { name: 'Continue as guest' }).click(),
  ]);
  await gus.page.getByRole('heading', { name: 'Hello, Guest Gus' }).waitFor();
  const asked = gus.page.waitForResponse((r) => new URL(r.url()).pathname === '/api/v1/session', { timeout: 10_000 });
  await gus.page.goto('/signup.html');
  assert.equal((await asked).status(), 200);
  await gus.page.evaluate(() => new Promise((resolve) => { setTimeout(resolve, 300); }));
  assert.equal(new URL(gus.page.url()).pathname, '/signup.html');
  assert.equal(await gus.page.getByRole('heading', { name: 'Create an account' }).isVisible(), true);
  await checkAxe(t, gus.page, 'sign-up', 'main');
  // The log-in page asked once, before the guest had a session.
  assert.deepEqual(noSession(gus.problems), []);
  await gus.context.close();
});

test('the panel shows nothing of itself until the session is known', async () => {
  const { page, problems, context } = await newPage(browser);
  let answered = 0;
  const slowSession = async (route) => {
    await new Promise((resolve) => { setTimeout(resolve, 3000); });
    answered += 1;
    // The page may have moved on (or the context closed) during the wait: that request
    // has no one left to answer.
    await route.continue().catch(() => {});
  };
  const hidden = async (what) => {
    assert.equal(answered, 0, `${what}: the session check is still waiting`);
    for (const part of [page.getByRole('heading', { name: 'Create or enter a room' }), page.locator('#enter-form'),
      page.getByRole('heading', { name: 'Public rooms' }), page.locator('#stats')]) {
      assert.equal(await part.isVisible(), false, `${what}: the panel is out of sight`);
    }
  };

  // Not logged in: on to the log-in page, without a glimpse of the panel on the way. The
  // page's script runs, and its style sheet is in, by the time the document has loaded.
  await page.route('**/api/v1/session', slowSession);
  await page.goto('/', { waitUntil: 'domcontentloaded' });
  await hidden('logged out');
  await page.waitForURL((url) => url.pathname === '/login.html');
  await page.unroute('**/api/v1/session');

  // Logged in: the same wait, then the panel.
  const kit = unique('kit');
  await signUp(page, kit);
  answered = 0;
  await page.route('**/api/v1/session', slowSession);
  await page.goto('/', { waitUntil: 'domcontentloaded' });
  await hidden('logged in');
  await page.getByRole('heading', { name: `Hello, ${kit}` }).waitFor();
  assert.equal(await page.locator('#enter-form').isVisible(), true);
  assert.deepEqual(noSession(problems), []);
  await context.close();
});

test('sessions are named by browser and system, the raw User-Agent a click away', async (t) => {
  const cases = [
    ['Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36', 'Chrome on Linux'],
    ['Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1', 'Safari on iPhone'],
    ['Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0', 'Firefox on Windows'],
    ['Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0', 'Edge on Windows'],
    ['Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 OPR/112.0.0.0', 'Opera on Windows'],
    ['Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15', 'Safari on macOS'],
    ['Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36', 'Chrome on Android'],
    ['Mozilla/5.0 (Linux; Android 13; SM-S901B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36', 'Samsung Internet on Android'],
    ['Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1', 'Chrome on iPhone'],
    ['Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/127.0 Mobile/15E148 Safari/605.1.15', 'Firefox on iPad'],
    ['Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36', 'Chrome on ChromeOS'],
    ['Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0.0.0 Safari/537.36', 'Chrome on Linux'],
    ['Mozilla/5.0 (X11; Linux x86_64) SomethingNew/1.0', 'A browser on Linux'],
    ['Firefox/128.0', 'Firefox'],
    ['curl/8.5.0', 'curl'],
    ['python-requests/2.32.3', 'python-requests'],
    ['Mozilla/5.0 (compatible; Unheard-of)', 'Unknown browser'],
    ['<img src=x onerror=alert(1)>', 'Unknown browser'],
    ['', 'Unknown browser'],
    [null, 'Unknown browser'],
  ];
  const firefox = cases[2][0];
  const iphone = cases[1][0];
  const hostile = '<img src=x onerror=alert(1)> curl/8';
  const { page, problems, context } = await newPage(browser);
  const kim = unique('kim');
  await signUp(page, kim);
  for (const agent of [firefox, iphone, hostile]) await logInAs(kim, agent);

  await page.goto('/profile.html');
  await page.waitForFunction(() => document.querySelectorAll('#sessions li').length === 4);
  // The rule itself, from the page's own module (already loaded, so it runs nothing again).
  const named = await page.evaluate(async (agents) => {
    const { deviceName } = await import('/js/profile.js');
    return agents.map((agent) => deviceName(agent));
  }, cases.map(([agent]) => agent));
  assert.deepEqual(named, cases.map(([, name]) => name));

  const names = await page.locator('#sessions .session-device strong').allTextContents();
  assert.deepEqual([...names].sort(), ['Chrome on Linux', 'Firefox on Windows', 'Safari on iPhone', 'Unknown browser']);
  const current = page.locator('#sessions li', { hasText: 'this browser' });
  assert.equal(await current.locator('strong').textContent(), 'Chrome on Linux', 'this browser is headless Chromium on Linux');

  // The raw string, for the curious, from the keyboard; text, never markup.
  const row = page.locator('#sessions li', { hasText: 'Firefox on Windows' });
  const raw = row.locator('.session-agent');
  assert.equal(await raw.isVisible(), false);
  await row.locator('summary').focus();
  await page.keyboard.press('Enter');
  assert.equal(await raw.isVisible(), true);
  assert.equal(await raw.textContent(), firefox);
  const odd = page.locator('#sessions li', { hasText: 'Unknown browser' });
  await odd.locator('summary').click();
  assert.equal(await odd.locator('.session-agent').textContent(), hostile);
  assert.equal(await page.locator('#sessions img').count(), 0);

  await page.setViewportSize(NARROW);
  assert.equal(await scrollsSideways(page), false, 'the profile page scrolls sideways at 360 px');
  await page.setViewportSize(DESKTOP);
  await screenshots(page, 'profile-sessions');
  await checkAxe(t, page, 'the sessions', '#sessions-card');
  assert.deepEqual(problems, []);
  await context.close();
});

test('the panel\'s last log-in is the one before this session, not this session', async () => {
  const { page, problems, context } = await newPage(browser);
  const lou = unique('lou');
  await signUp(page, lou);
  const lastLogIn = page.locator('.stat', { hasText: 'Last log-in' }).locator('dd');
  assert.equal(await lastLogIn.textContent(), 'None before this one', 'signed up just now');
  const first = await api(page, 'GET', '/api/v1/me/panel');
  assert.equal(first.body.last_login, null);
  // Log in again (a new session): the sign-up is now the log-in before the latest.
  const again = await api(page, 'POST', '/api/v1/sessions', { username: lou, password: PASSWORD });
  assert.equal(again.status, 201);
  await page.reload();
  await page.locator('.stat', { hasText: 'Last log-in' }).waitFor();
  const second = await api(page, 'GET', '/api/v1/me/panel');
  assert.equal(typeof second.body.last_login, 'string');
  assert.notEqual(await lastLogIn.textContent(), 'None before this one');
  assert.deepEqual(problems, []);
  await context.close();
});

test('long names are cut short, whole in their tooltips, and nothing scrolls sideways at 360 px', async (t) => {
  const lena = longName('lena', 32); // the longest username
  const otto = longName('otto', 32);
  const room = longName('long', 64); // the longest room name
  const title = `T${'o'.repeat(63)}`; // the longest private room title, one unbreakable word
  const invite = `I${'n'.repeat(63)}`;
  const [l, o] = await Promise.all([newPage(browser, { viewport: NARROW }), newPage(browser)]);
  await Promise.all([signUp(l.page, lena), signUp(o.page, otto)]);
  const ok = (response) => { assert.ok(response.status < 300, JSON.stringify(response)); return response.body; };
  ok(await api(l.page, 'POST', '/api/v1/rooms', { name: room }));
  ok(await api(l.page, 'POST', '/api/v1/rooms', { name: title, visibility: 'private' }));
  ok(await api(l.page, 'POST', '/api/v1/dms', { username: otto }));
  const invited = ok(await api(o.page, 'POST', '/api/v1/rooms', { name: invite, visibility: 'private' })).room.name;
  ok(await api(o.page, 'POST', `/api/v1/rooms/${encodeURIComponent(invited)}/actions`, { action: 'invite', username: lena }));

  await l.page.goto('/');
  await l.page.waitForFunction(() => document.querySelectorAll('#room-list li').length === 3
    && document.querySelectorAll('#invitation-list li').length === 1);
  assert.equal(await scrollsSideways(l.page), false, 'the panel scrolls sideways at 360 px');

  /** Each name: its tooltip, whether its text is cut, and whether it ends inside the screen. */
  const names = (selector) => l.page.$$eval(selector, (nodes) => nodes.map((node) => ({
    title: node.title,
    cut: node.scrollWidth > node.clientWidth && getComputedStyle(node).textOverflow === 'ellipsis',
    inside: node.getBoundingClientRect().right <= innerWidth,
  })));
  const whole = (title) => ({ title, cut: true, inside: true });
  assert.deepEqual(await names('#greeting'), [whole(`Hello, ${lena}`)]);
  const listed = await names('#room-list .room-name');
  assert.deepEqual([...listed].sort((a, b) => a.title.localeCompare(b.title)),
    [whole(`#${room}`), whole(`@${otto}`), whole(title)].sort((a, b) => a.title.localeCompare(b.title)));
  assert.deepEqual(await names('#invitation-list .room-name'), [whole(invite)]);
  // The top bar fits, its log-out button within reach.
  const logOut = await l.page.getByRole('button', { name: 'Log out', exact: true }).boundingBox();
  assert.ok(logOut.x + logOut.width <= NARROW.width, 'the log-out button is inside the screen');
  await checkAxe(t, l.page, 'the panel with long names at 360 px');

  // Between phone and desktop, the top bar shows the name, cut short, and still fits.
  await l.page.setViewportSize(MIDDLE);
  assert.equal(await scrollsSideways(l.page), false, 'the panel scrolls sideways at 760 px');
  assert.deepEqual(await names('#topbar .me bdi'), [{ title: '', cut: true, inside: true }]);
  assert.equal(await l.page.locator('#topbar .me').getAttribute('title'), lena);
  await screenshots(l.page, 'panel-long-names');

  assert.deepEqual(l.problems, []);
  assert.deepEqual(o.problems, []);
  await Promise.all([l.context.close(), o.context.close()]);
});

test('what you sent yourself, from another tab or device, is not unread on your panel', async () => {
  const { page, problems, context } = await newPage(browser);
  const other = await newPage(browser);
  const sid = unique('sid');
  await signUp(page, sid);
  const room = unique('mine');
  // Someone else speaks first; then this account answers from somewhere that is not this
  // page (the HTTP API, as a second device would), without reading anything there.
  await signUp(other.page, unique('olga'));
  assert.equal((await api(other.page, 'POST', '/api/v1/rooms', { name: room })).status, 200);
  assert.equal((await api(page, 'POST', '/api/v1/rooms', { name: room })).status, 200);
  const publish = (p, text, id) => api(p, 'POST', `/api/v1/rooms/${room}/messages`, { text, client_msg_id: id });
  assert.equal((await publish(other.page, 'a question', 'q-1')).status, 201);
  assert.equal((await publish(page, 'my answer', 'a-1')).status, 201);

  await page.reload();
  const row = page.locator(`li.room-row[data-room="${room}"]`);
  await row.waitFor();
  assert.equal(await row.locator('.badge').isVisible(), false, 'no unread: sending read up to it');
  const panel = await api(page, 'GET', '/api/v1/me/panel');
  const listed = panel.body.rooms.find((r) => r.name === room);
  assert.equal(listed.unread, 0);

  // What comes after the answer is news again.
  assert.equal((await publish(other.page, 'a follow-up', 'q-2')).status, 201);
  await page.reload();
  await page.waitForFunction((name) => document.querySelector(`li.room-row[data-room="${name}"] .badge`)?.textContent === '1', room);
  assert.deepEqual(problems, []);
  await context.close();
  await other.context.close();
});
