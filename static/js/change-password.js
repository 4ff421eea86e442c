// Changing your password on the profile page. When it goes through, the server ends every
// other session of yours (whoever held the old password is out, their sockets close) and
// this one goes on, so the page says so and the list of sessions is read again.

import { api, ApiError, retryLater } from './api.js';
import { $, flash, showProblem } from './dom.js';
import { newPasswordPair } from './passwords.js';

/**
 * Wires the form for the account `username` (the new password may not contain it; the
 * hidden username field lets a password manager file the new password under the right
 * account). `onChanged` runs after a change.
 */
export function passwordForm(username, onChanged) {
  const form = $('#password-form');
  const status = $('#password-status');
  const pair = newPasswordPair('new_password', 'confirm_password', () => username);
  $('#password-username').value = username;

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    flash(status, '');
    const current = $('#current_password').value;
    showProblem('current_password', current ? null : 'Enter your current password.');
    const bad = pair.check();
    if (!current || bad) { $(`#${current ? bad : 'current_password'}`).focus(); return; }
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      await api('PUT', '/me/password', { current_password: current, new_password: $('#new_password').value });
      $('#current_password').value = '';
      showProblem('current_password', null);
      pair.clear();
      flash(status, 'Password changed. Your other sessions were logged out.', { ms: 0 });
      onChanged();
    } catch (err) {
      const code = err instanceof ApiError ? err.code : null;
      if (code === 'wrong_password') {
        showProblem('current_password', 'That is not your current password.');
        $('#current_password').focus();
      } else if (code === 'weak_password') {
        showProblem('new_password', err.message);
        $('#new_password').focus();
      } else {
        flash(status, code === 'too_many_attempts' ? retryLater(err) : err.message, { error: true, ms: 0 });
      }
    } finally {
      button.disabled = false;
    }
  });
}
