// Log in with an account, or take a guest session. Either way the server sets the HttpOnly
// session cookie; the token in the reply body is ignored on purpose.

import { api, ApiError, currentUser, retryLater, safeNext } from './api.js';
import { $ } from './dom.js';
import { displayNameError } from './rules.js';

const params = new URLSearchParams(location.search);
const next = safeNext(params.get('next'));
for (const link of [$('#signup-link')]) link.href = `/signup.html?next=${encodeURIComponent(next)}`;

/**
 * What other pages may ask this one to say (`?notice=code`, see toLogin), in its own words.
 * Text is never taken from the URL: anyone can make a link, and a log-in page that says
 * whatever the link says is a phishing tool.
 */
const NOTICES = new Map([
  ['session_ended', 'Your session has ended. Please log in again.'],
  ['password_changed', 'Your password was changed. Log in with the new one.'],
]);
const notice = NOTICES.get(params.get('notice')) ?? null;
if (notice) { $('#notice').textContent = notice; $('#notice').hidden = false; }

// Already signed in (a second tab, or the back button): go straight on.
currentUser().then((user) => { if (user && !notice) location.replace(next); }, () => {});

/** The server's reason, or how long to wait when it is holding off after failed attempts. */
const reasonOf = (err) => (err instanceof ApiError && err.code === 'too_many_attempts' ? retryLater(err) : err.message);

/** Runs a form's request with its button disabled, showing the server's reason on failure. */
function submitWith(form, errorNode, request) {
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    errorNode.textContent = '';
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      if (await request() !== false) location.assign(next);
    } catch (err) {
      errorNode.textContent = reasonOf(err);
    } finally {
      button.disabled = false;
    }
  });
}

submitWith($('#login-form'), $('#login-error'), async () => {
  const username = $('#username').value.trim();
  const password = $('#password').value;
  if (!username || !password) { $('#login-error').textContent = 'Enter your username and password.'; return false; }
  await api('POST', '/sessions', { username, password });
  return true;
});

submitWith($('#guest-form'), $('#guest-error'), async () => {
  const name = $('#guest-name').value;
  const problem = displayNameError(name);
  if (problem) { $('#guest-error').textContent = problem; $('#guest-name').focus(); return false; }
  await api('POST', '/sessions', { name: name.trim() });
  return true;
});
