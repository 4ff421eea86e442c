// Log in with an account, or take a guest session. Either way the server sets the HttpOnly
// session cookie; the token in the reply body is ignored on purpose.

import { api, currentUser, safeNext } from './api.js';
import { $ } from './dom.js';
import { displayNameError } from './rules.js';

const params = new URLSearchParams(location.search);
const next = safeNext(params.get('next'));
for (const link of [$('#signup-link')]) link.href = `/signup.html?next=${encodeURIComponent(next)}`;

const reason = params.get('reason');
if (reason) { $('#reason').textContent = reason; $('#reason').hidden = false; }

// Already signed in (a second tab, or the back button): go straight on.
currentUser().then((user) => { if (user && !reason) location.replace(next); }, () => {});

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
      errorNode.textContent = err.message;
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
