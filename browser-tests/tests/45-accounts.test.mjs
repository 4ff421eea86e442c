// Accounts in the client: a password changed on the profile page (the old one refused after,
// the other sessions ended), a forgotten one reset by the link in a real mail (read from the
// SMTP sink scripts/browser-test.sh runs), a link that works once, and guests marked as
// guests wherever their names are shown. axe checks each new page and state, and both
// layouts are captured.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, newPage, screenshots, unique, api, PHONE } from '../lib/harness.mjs';
import { signUp, enterRoom, send, waitShown, whoAmI, PASSWORD } from '../lib/chat.mjs';
import { axeAvailable, axeViolations } from '../lib/axe.mjs';
import { mailTo, linkIn } from '../lib/mail.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

/**
 * What a page logs for the refusals these tests ask for: the log-in page's session probe
 * and a wrong password at log-in (401), a wrong current password (403), a spent reset link
 * (404).
 */
const expected = (problems) => problems.filter((p) => !/status of 40[134]/.test(p));

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

/** Nothing on the page sticks out past a phone's width; the page gets its viewport back. */
async function assertFitsPhone(page) {
  const previous = page.viewportSize();
  await page.setViewportSize(PHONE);
  const wide = await page.evaluate(() => document.documentElement.scrollWidth > innerWidth);
  await page.setViewportSize(previous);
  assert.equal(wide, false, `${new URL(page.url()).pathname} scrolls sideways at phone width`);
}

/** Fills the log-in form and sends it with Enter, from the keyboard as a person would. */
async function logIn(page, username, password) {
  if (new URL(page.url()).pathname !== '/login.html') await page.goto('/login.html');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByLabel('Password', { exact: true }).press('Enter');
}

/** Logs in and waits for the panel. */
async function logInToPanel(page, username, password) {
  await Promise.all([page.waitForURL((url) => url.pathname === '/'), logIn(page, username, password)]);
  await page.getByRole('heading', { name: `Hello, ${username}` }).waitFor();
}

/** A log-in refused: the page stays, and says why. */
async function logInRefused(page, username, password) {
  await logIn(page, username, password);
  await page.waitForFunction(() => document.querySelector('#login-error').textContent !== '');
  assert.equal(new URL(page.url()).pathname, '/login.html');
}

/** The page's two new-password fields, typed in. */
async function typeNewPassword(page, password, confirmation = password) {
  await page.getByLabel('New password', { exact: true }).fill(password);
  await page.getByLabel('Confirm new password').fill(confirmation);
}

test('a password changed on the profile page: the old one is refused, the other sessions end', async (t) => {
  const pam = unique('pam');
  const renewed = 'a different passphrase, longer';
  const me = await newPage(browser);
  const elsewhere = await newPage(browser);
  await signUp(me.page, pam);
  await elsewhere.page.goto('/login.html');
  await logInToPanel(elsewhere.page, pam, PASSWORD);
  await elsewhere.page.locator('#conn-state[data-state="connected"]').waitFor();

  await me.page.getByRole('link', { name: 'Profile' }).click();
  await me.page.getByRole('heading', { name: 'Change password' }).waitFor();
  await me.page.waitForFunction(() => document.querySelectorAll('#sessions li').length === 2);
  const change = me.page.getByRole('button', { name: 'Change password' });

  // The two new fields must match; the page says so before asking the server.
  await me.page.getByLabel('Current password').fill(PASSWORD);
  await typeNewPassword(me.page, renewed, `${renewed}!`);
  await change.click();
  await me.page.getByText('The two passwords do not match.').waitFor();
  assert.equal(await me.page.evaluate(() => document.activeElement?.id), 'confirm_password');

  // The server's refusal of a wrong current password is shown beside that field.
  await me.page.getByLabel('Current password').fill('not my password at all');
  await typeNewPassword(me.page, renewed);
  await change.click();
  await me.page.getByText('That is not your current password.').waitFor();
  assert.equal(await me.page.getByLabel('Current password').getAttribute('aria-invalid'), 'true');

  await me.page.getByLabel('Current password').fill(PASSWORD);
  await change.click();
  await me.page.getByText('Password changed. Your other sessions were logged out.').waitFor();
  assert.equal(await me.page.getByLabel('Current password').inputValue(), '', 'the form is emptied');
  // This session goes on; the other one ended, and its open page says so on the log-in page.
  await me.page.waitForFunction(() => document.querySelectorAll('#sessions li').length === 1);
  await elsewhere.page.waitForURL((url) => url.pathname === '/login.html');
  await elsewhere.page.getByText('Your session has ended. Please log in again.').waitFor();
  await screenshots(me.page, 'accounts-password-changed');
  await checkAxe(t, me.page, 'the password form', '#password-card');

  await Promise.all([
    me.page.waitForURL((url) => url.pathname === '/login.html'),
    me.page.getByRole('button', { name: 'Log out', exact: true }).click(),
  ]);
  await logInRefused(me.page, pam, PASSWORD);
  await logInToPanel(me.page, pam, renewed);

  assert.deepEqual(expected(me.problems), []);
  assert.deepEqual(expected(elsewhere.problems), []);
  await Promise.all([me.context.close(), elsewhere.context.close()]);
});

test('a forgotten password is reset by the link in the mail, and the link works once', async (t) => {
  const rex = unique('rex');
  const address = `${rex}@example.com`; // as signUp() gives it
  const fresh = 'a brand new passphrase, 2';
  const { page, problems, context } = await newPage(browser);
  await signUp(page, rex);
  await Promise.all([
    page.waitForURL((url) => url.pathname === '/login.html'),
    page.getByRole('button', { name: 'Log out', exact: true }).click(),
  ]);

  // The log-in page shows only notices it knows by code, never text from its address.
  for (const query of ['?notice=constructor', '?notice=Your+account+is+locked', '?reason=Call+us+at+555']) {
    await page.goto(`/login.html${query}`);
    await page.getByRole('heading', { name: 'Log in' }).waitFor();
    assert.equal(await page.locator('#notice').isVisible(), false, query);
  }

  // Waiting for the load: the form is the script's only once the script has run.
  await Promise.all([
    page.waitForURL((url) => url.pathname === '/forgot.html'),
    page.getByRole('link', { name: 'Forgot your password?' }).click(),
  ]);
  await page.getByRole('heading', { name: 'Forgot your password?' }).waitFor();
  await checkAxe(t, page, 'forgot.html', 'main');
  await assertFitsPhone(page);
  const email = page.getByLabel('E-mail');
  await email.fill('not an address');
  await email.press('Enter');
  await page.getByText('Enter an address like name@example.com.').waitFor();
  await email.fill(address);
  await email.press('Enter');
  const sent = page.getByText('If an account has this address, we sent a link to it. It works once, for an hour.');
  await sent.waitFor();
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'sent-text', 'the answer takes the focus');
  await screenshots(page, 'accounts-forgot-sent');
  await checkAxe(t, page, 'forgot.html, sent', 'main');

  // An address no account has gets the same answer: the page cannot tell who has an account.
  const unknown = await api(page, 'POST', '/api/v1/password-resets', { email: `${unique('nobody')}@example.com` });
  assert.deepEqual(unknown, { status: 202, body: { status: 'sent' } });

  const mail = await mailTo(address);
  const link = linkIn(mail, '/reset.html');
  assert.ok(link?.startsWith(`${process.env.BASE_URL}/reset.html#token=`), `the mail's link: ${link}`);

  await page.goto(link);
  // The token is taken out of the address bar (and the script has run).
  await page.waitForURL((url) => url.pathname === '/reset.html' && url.hash === '');
  await page.getByRole('heading', { name: 'Choose a new password' }).waitFor();
  await checkAxe(t, page, 'reset.html', 'main');
  await assertFitsPhone(page);
  await typeNewPassword(page, 'short');
  await page.getByLabel('Confirm new password').press('Enter');
  await page.getByText('A password needs at least 10 characters.').waitFor();
  await typeNewPassword(page, fresh, 'something else entirely');
  await page.getByLabel('Confirm new password').press('Enter');
  await page.getByText('The two passwords do not match.').waitFor();
  await screenshots(page, 'accounts-reset');

  await typeNewPassword(page, fresh);
  await Promise.all([
    page.waitForURL((url) => url.pathname === '/login.html' && url.searchParams.get('notice') === 'password_changed'),
    page.getByLabel('Confirm new password').press('Enter'),
  ]);
  await page.getByText('Your password was changed. Log in with the new one.').waitFor();
  await checkAxe(t, page, 'log-in with its notice', 'main');
  await logInRefused(page, rex, PASSWORD);
  await logInToPanel(page, rex, fresh);

  // The same link again: refused when used, with the way to ask for another.
  await page.goto(link);
  await typeNewPassword(page, 'yet another passphrase');
  await page.getByRole('button', { name: 'Set the new password' }).click();
  await page.getByRole('heading', { name: 'This reset link is invalid or has been used' }).waitFor();
  assert.equal(await page.getByRole('link', { name: 'Ask for a new link' }).getAttribute('href'), '/forgot.html');
  assert.equal(await page.locator('#reset-form').isVisible(), false);
  await screenshots(page, 'accounts-reset-invalid');
  await checkAxe(t, page, 'reset.html, spent link', 'main');

  // A page opened without a token says the same at once.
  await page.goto('/reset.html');
  await page.getByRole('heading', { name: 'This reset link is invalid or has been used' }).waitFor();

  assert.deepEqual(expected(problems), []);
  await context.close();
});

test('a guest is marked as one beside their messages and in the member list; an account is not', async (t) => {
  const room = unique('visitors');
  const guest = await newPage(browser);
  const member = await newPage(browser);
  await guest.page.goto('/login.html');
  await guest.page.getByLabel('Display name').fill('Visiting Gina');
  await Promise.all([
    guest.page.waitForURL((url) => url.pathname === '/'),
    guest.page.getByRole('button', { name: 'Continue as guest' }).click(),
  ]);
  await guest.page.getByRole('heading', { name: 'Hello, Visiting Gina' }).waitFor();
  await signUp(member.page, unique('reg'));
  const [gina, reg] = await Promise.all([whoAmI(guest.page), whoAmI(member.page)]);
  assert.match(gina.id, /^guest:/);

  await enterRoom(member.page, room);
  await send(member.page, 'welcome, visitor');
  await waitShown(member.page, 1);
  await enterRoom(guest.page, room);
  await send(guest.page, 'hello from a guest');
  await waitShown(guest.page, 2);
  await waitShown(member.page, 2);

  for (const { page } of [guest, member]) {
    const byAuthor = (id) => page.locator(`#messages li.msg[data-author="${id}"]`);
    const badge = byAuthor(gina.id).locator('.guest-tag');
    await badge.waitFor();
    assert.equal(await badge.textContent(), '(guest)', 'a screen reader hears "Visiting Gina (guest)"');
    assert.equal(await badge.isVisible(), true);
    assert.equal(await byAuthor(gina.id).locator('.msg-author').textContent(), 'Visiting Gina');
    assert.equal(await byAuthor(reg.id).locator('.guest-tag').count(), 0, 'no badge on an account');

    const row = (id) => page.locator(`#members li.member[data-user-id="${id}"]`);
    await row(gina.id).waitFor();
    await row(reg.id).waitFor();
    assert.equal(await row(gina.id).locator('.guest-tag').isVisible(), true);
    assert.equal(await row(reg.id).locator('.guest-tag').count(), 0);
  }
  // The guest's own top bar says it too.
  assert.equal(await guest.page.locator('#topbar .me .guest-tag').isVisible(), true);
  await screenshots(member.page, 'accounts-guest-badge');
  await checkAxe(t, member.page, "a guest's message", `#messages li.msg[data-author="${gina.id}"]`);
  await checkAxe(t, member.page, "the guest's member row", `#members li.member[data-user-id="${gina.id}"]`);

  assert.deepEqual(expected(guest.problems), []);
  assert.deepEqual(member.problems, []);
  await Promise.all([guest.context.close(), member.context.close()]);
});
