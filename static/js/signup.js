// Sign-up: each field is checked as the server checks it, and the server's refusal is shown
// beside the field it concerns.

import { api, ApiError, currentUser, safeNext } from './api.js';
import { $ } from './dom.js';
import { usernameError, emailError, personNameError, passwordError } from './rules.js';
import { sessionHint, setSessionHint } from './shell.js';

const next = safeNext(new URLSearchParams(location.search).get('next'));
$('#login-link').href = `/login.html?next=${encodeURIComponent(next)}`;

// Already signed in with an account (a second tab, the back button, a bookmark): go straight
// on, as the log-in page does. A guest stays, since signing up is how a guest keeps their
// rooms. The server is asked only when this browser has had a session: asking without one
// costs every new visitor a 401, which the browser logs as an error.
if (sessionHint()) {
  currentUser().then((user) => {
    if (!user) setSessionHint(null);
    else if (user.kind !== 'guest') location.replace(next);
  }, () => {});
}

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

// Problems appear when the form is sent, never when a field is left: a line appearing or
// vanishing on blur moves the button between mouse-down and mouse-up, and the click that
// left the field is lost (passwords.js does the same). A problem already shown is checked
// again as the person types in its field, so it goes away the moment the value is right,
// before the pointer reaches the button; the password's too when the username changes,
// since its rule reads the username.
const RECHECK = { username: ['username', 'password'] };
$('#signup-form').addEventListener('input', (e) => {
  for (const name of RECHECK[e.target.id] ?? [e.target.id]) {
    if (checks[name] && $(`#${name}`).getAttribute('aria-invalid') === 'true') show(name, checks[name]());
  }
});

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
    setSessionHint('account');
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
