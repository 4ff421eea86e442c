// Asking for a password-reset link by e-mail. The server answers the same whether or not an
// account has the address (so this page cannot be used to find out who has an account), and
// so does the page: it never says that a mail was sent, only that one was if the address is
// known.

import { api, ApiError, retryLater } from './api.js';
import { $, showProblem } from './dom.js';
import { emailError } from './rules.js';

const form = $('#forgot-form');
const email = $('#email');

email.addEventListener('blur', () => { if (email.value !== '') showProblem('email', emailError(email.value)); });

form.addEventListener('submit', async (e) => {
  e.preventDefault();
  $('#form-error').textContent = '';
  const problem = emailError(email.value);
  showProblem('email', problem);
  if (problem) { email.focus(); return; }
  const button = form.querySelector('button[type=submit]');
  button.disabled = true;
  try {
    await api('POST', '/password-resets', { email: email.value.trim() });
    form.hidden = true;
    $('#sent').hidden = false;
    // Moving the focus to the answer has a screen reader read it, and keeps keyboard users in place.
    $('#sent-text').focus();
  } catch (err) {
    const code = err instanceof ApiError ? err.code : null;
    if (code === 'invalid_email') { showProblem('email', err.message); email.focus(); }
    else $('#form-error').textContent = code === 'too_many_attempts' ? retryLater(err, 'Too many attempts.') : err.message;
  } finally {
    button.disabled = false;
  }
});
