// Sign-up: each field is checked as the server checks it, and the server's refusal is shown
// beside the field it concerns.

import { api, ApiError, safeNext } from './api.js';
import { $ } from './dom.js';
import { usernameError, emailError, personNameError, passwordError } from './rules.js';

const next = safeNext(new URLSearchParams(location.search).get('next'));
$('#login-link').href = `/login.html?next=${encodeURIComponent(next)}`;

const fields = ['username', 'email', 'first_name', 'last_name', 'password'];
const value = (name) => $(`#${name}`).value;
const checks = {
  username: () => usernameError(value('username')),
  email: () => emailError(value('email')),
  first_name: () => personNameError(value('first_name'), 'A first name'),
  last_name: () => personNameError(value('last_name'), 'A last name'),
  password: () => passwordError(value('password'), value('username')),
};
/** Which field a server error code belongs to. */
const FIELD_OF = {
  invalid_username: 'username', username_taken: 'username', invalid_email: 'email', weak_password: 'password',
};

function show(name, problem) {
  $(`#${name}-error`).textContent = problem ?? '';
  $(`#${name}`).setAttribute('aria-invalid', problem ? 'true' : 'false');
}

for (const name of fields) {
  // Explain as soon as someone leaves a field, not while they are still typing it.
  $(`#${name}`).addEventListener('blur', () => { if (value(name) !== '') show(name, checks[name]()); });
}

$('#signup-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('#form-error').textContent = '';
  let first = null;
  for (const name of fields) {
    const problem = checks[name]();
    show(name, problem);
    if (problem && !first) first = name;
  }
  if (first) { $(`#${first}`).focus(); return; }
  const button = e.target.querySelector('button[type=submit]');
  button.disabled = true;
  try {
    await api('POST', '/accounts', Object.fromEntries(fields.map((name) => [name, value(name)])));
    location.assign(next);
  } catch (err) {
    const field = err instanceof ApiError
      ? FIELD_OF[err.code] ?? (err.code === 'invalid_profile' ? (/last/i.test(err.message) ? 'last_name' : 'first_name') : null)
      : null;
    if (field) { show(field, err.message); $(`#${field}`).focus(); } else $('#form-error').textContent = err.message;
  } finally {
    button.disabled = false;
  }
});
