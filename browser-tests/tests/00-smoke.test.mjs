// A first visit: the client is served under its strict policy, a visitor without a session
// is sent to log in, and a guest gets in with a display name alone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, newPage, screenshots } from '../lib/harness.mjs';
import { axeAvailable, axeViolations } from '../lib/axe.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** The session probe answers 401 to a visitor, and Chromium logs every 4xx as a console error. */
const expectedProbe = (problem) => /status of 401 .*\/api\/v1\/session\)$/.test(problem);

test('a first visit lands on log-in, and a guest gets in', async () => {
  const { context, page, problems } = await newPage(browser);
  try {
    const response = await page.goto('/');
    assert.equal(response.status(), 200);
    const csp = response.headers()['content-security-policy'] ?? '';
    assert.match(csp, /script-src 'self'(;|$)/, 'no inline script, no eval');
    assert.match(csp, /style-src 'self'(;|$)/);
    // No page carries inline script or style for the policy to have to allow.
    for (const path of ['/', '/login.html', '/signup.html', '/forgot.html', '/reset.html', '/room.html', '/profile.html', '/admin.html']) {
      const html = await (await page.request.get(path)).text();
      assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, `${path} has no inline script`);
      assert.doesNotMatch(html, /\sstyle=|<style|\son[a-z]+=/i, `${path} has no inline style or handler`);
    }

    await page.waitForURL((url) => url.pathname === '/login.html');
    assert.match(await page.title(), /Super Channels/);
    await screenshots(page, 'login');

    await page.getByLabel('Display name').fill('  ');
    await page.getByRole('button', { name: 'Continue as guest' }).click();
    await page.getByText('Enter a name.').waitFor();
    await page.getByLabel('Display name').fill('Visiting Vera');
    await page.getByRole('button', { name: 'Continue as guest' }).click();
    await page.waitForURL((url) => url.pathname === '/');
    await page.getByRole('heading', { name: 'Hello, Visiting Vera' }).waitFor();
    await page.getByText('You are chatting as a guest.').waitFor();
    await page.locator('#conn-state[data-state="connected"]').waitFor();
    await screenshots(page, 'panel-guest');
    assert.deepEqual(problems.filter((p) => !expectedProbe(p)), []);
  } finally {
    await context.close();
  }
});

test('an address that is no page gets our page, with 404, that leads back in', async () => {
  const { context, page } = await newPage(browser);
  try {
    const response = await page.goto('/no/such/page');
    assert.equal(response.status(), 404);
    await page.getByRole('heading', { name: 'There is no page here' }).waitFor();
    if (axeAvailable) assert.deepEqual(await axeViolations(page, 'body'), []);
    await screenshots(page, 'not-found');
    await page.getByRole('link', { name: 'Go to your rooms' }).click();
    // Without a session, the rooms lead to log-in.
    await page.waitForURL((url) => url.pathname === '/login.html');
  } finally {
    await context.close();
  }
});
