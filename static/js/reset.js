// A password-reset link, /reset.html#token=…: a new password, typed twice, for the account
// the token names. The token travels in the fragment, which browsers never send to a server,
// so it stays out of access logs and Referer headers; this page reads it once and takes it
// out of the address bar too (history, screenshots, a link copied on), keeping it in memory.

import { api, ApiError, retryLater } from './api.js';
import { $, showProblem } from './dom.js';
import { newPasswordPair } from './passwords.js';

/** The token, or '' for a link without one (or one mangled past reading). */
function tokenOf(hash) {
  try { return (new URLSearchParams(hash.slice(1)).get('token') ?? '').trim(); } catch { return ''; }
}
const token = tokenOf(location.hash);
if (location.hash) history.replaceState(history.state, '', location.pathname + location.search);

/**
 * Unknown, used already or expired look the same to the server (404 `reset_invalid`), and
 * to the person the remedy is the same: ask for a new link.
 */
function showInvalid() {
  $('#reset-view').hidden = true;
  $('#reset-invalid').hidden = false;
  document.title = 'Invalid reset link · Super Channels';
  $('#invalid-title').focus();
}

const pair = newPasswordPair('new_password', 'confirm_password');

$('#reset-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('#form-error').textContent = '';
  const bad = pair.check();
  if (bad) { $(`#${bad}`).focus(); return; }
  const button = e.target.querySelector('button[type=submit]');
  button.disabled = true;
  try {
    await api('POST', '/password-resets/confirm', { token, new_password: $('#new_password').value });
    // Every session of the account has ended, this browser's too if it had one: log in anew.
    // replace(): Back must not lead to a form whose link is spent.
    location.replace('/login.html?notice=password_changed');
  } catch (err) {
    const code = err instanceof ApiError ? err.code : null;
    if (code === 'reset_invalid' || err.status === 404) showInvalid();
    else if (code === 'weak_password') { showProblem('new_password', err.message); $('#new_password').focus(); }
    else $('#form-error').textContent = code === 'too_many_attempts' ? retryLater(err, 'Too many attempts.') : err.message;
  } finally {
    button.disabled = false;
  }
});

if (!token) showInvalid();

// Another link pasted into this tab changes only the fragment: read that one instead.
window.addEventListener('hashchange', () => location.reload());
