// Profiles: anyone's, to view (`?u=name`) and to message directly, and your own, to edit,
// with its picture, your password and the sessions you can end.

import { api, ApiError, upload, enc } from './api.js';
import { $, el, fill, avatarEl, longDate, longDateTime, flash, timeEl, relativeTime, roomHref } from './dom.js';
import { personNameError, emailError, bioError } from './rules.js';
import { startShell } from './shell.js';
import { passwordForm } from './change-password.js';

const wanted = new URLSearchParams(location.search).get('u');
const { me } = await startShell({ active: wanted ? '' : 'profile', live: false });
const status = $('#page-status');

const fullName = (p) => `${p.first_name} ${p.last_name}`.trim();

async function showProfile(username) {
  try {
    const p = await api('GET', `/users/${enc(username)}`);
    document.title = `${p.username} · Super Channels`;
    $('#profile-avatar').replaceChildren(avatarEl({ id: p.id, name: p.username }, p.avatar_url, 'xl'));
    $('#profile-name').textContent = fullName(p) || p.username;
    $('#profile-username').replaceChildren(`@${p.username}`, p.role === 'admin' ? el('span.tag', {}, 'admin') : '');
    $('#profile-bio').textContent = p.bio;
    fill($('#profile-facts'), el('div.stat', {}, el('dt', {}, 'Member since'), el('dd', {}, longDate(p.joined_at))),
      p.id !== me.id && typeof p.online === 'boolean' ? el('div.stat', {}, el('dt', {}, 'Status'), el('dd', {}, presenceEl(p))) : null);
    $('#profile-edit').hidden = !(me.kind === 'account' && p.id === me.id);
    // Guests cannot have direct messages; nor can you with yourself.
    $('#profile-message').hidden = me.kind === 'guest' || p.id === me.id;
    $('#message-button').onclick = () => openDm(p.username);
    $('#view').hidden = false;
  } catch (e) {
    flash(status, e.status === 404 ? `There is no user called “${username}”.` : e.message, { error: true, ms: 0 });
  }
}

/** Opens the direct-message room with this person: the same room each time, made the first time. */
async function openDm(username) {
  const button = $('#message-button');
  button.disabled = true;
  try {
    const dm = await api('POST', '/dms', { username });
    location.assign(roomHref(dm.room.name));
  } catch (e) {
    flash(status, `Could not open a conversation: ${e.message}`, { error: true });
  } finally {
    button.disabled = false;
  }
}

/**
 * "Online", or when they were last seen ("Last seen 5 minutes ago", the exact time on
 * hover). The server leaves both out when presence is switched off, and `last_seen` out
 * for someone never seen.
 */
function presenceEl(p) {
  const dot = el('span.presence-dot', { 'aria-hidden': 'true' });
  const state = { dataset: { online: String(p.online) } };
  if (p.online) return el('span.presence', state, dot, 'Online');
  if (!p.last_seen || Number.isNaN(new Date(p.last_seen).getTime())) return el('span.presence', state, dot, 'Offline');
  return el('span.presence', state, dot, 'Last seen ', timeEl(p.last_seen, relativeTime(p.last_seen)));
}

// ---------- your own profile ----------
const fields = ['first_name', 'last_name', 'email', 'bio'];
const checks = {
  first_name: (v) => personNameError(v, 'A first name'),
  last_name: (v) => personNameError(v, 'A last name'),
  email: emailError,
  bio: bioError,
};
let mine = null;

function fillOwn(p) {
  mine = p;
  $('#edit-avatar').replaceChildren(avatarEl({ id: p.id, name: p.username }, p.avatar_url, 'xl'));
  $('#avatar-remove').hidden = !p.avatar_url;
  $('#edit-username').textContent = p.username;
  $('#public-link').href = `/profile.html?u=${enc(p.username)}`;
  for (const f of fields) $(`#${f}`).value = p[f];
  // A server without read receipts has no such setting: offer none rather than one that does nothing.
  const receipts = typeof p.read_receipts === 'boolean';
  $('#read_receipts-field').hidden = !receipts;
  if (receipts) $('#read_receipts').checked = p.read_receipts;
}

async function patch(body) {
  fillOwn(await api('PATCH', '/me', body));
}

async function showOwn() {
  if (me.kind !== 'account') {
    fill(status, me.kind === 'guest' ? 'Guests have no profile. ' : 'Your organisation manages your profile. ',
      me.kind === 'guest' ? el('a', { href: '/signup.html' }, 'Create an account') : '');
    return;
  }
  try {
    fillOwn(await api('GET', '/me'));
  } catch (e) {
    flash(status, e.message, { error: true, ms: 0 });
    return;
  }
  $('#edit').hidden = false;
  // Accounts only: guests and organisation users (returned above) have no password here.
  passwordForm(mine.username, loadSessions);
  $('#password-card').hidden = false;
  loadSessions();
}

$('#profile-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const changes = {};
  let first = null;
  for (const f of fields) {
    const value = $(`#${f}`).value;
    const problem = checks[f](value);
    $(`#${f}-error`).textContent = problem ?? '';
    $(`#${f}`).setAttribute('aria-invalid', problem ? 'true' : 'false');
    if (problem && !first) first = f;
    if (value !== mine[f]) changes[f] = value;
  }
  // Saved with the rest, as the form's other fields are: the Save button is the one commitment.
  const receipts = $('#read_receipts').checked;
  if (typeof mine.read_receipts === 'boolean' && receipts !== mine.read_receipts) changes.read_receipts = receipts;
  if (first) { $(`#${first}`).focus(); return; }
  if (!Object.keys(changes).length) { flash($('#saved'), 'Nothing to save.'); return; }
  try {
    await patch(changes);
    flash($('#saved'), 'Saved.');
  } catch (err) {
    const field = err instanceof ApiError && err.code === 'invalid_email' ? 'email' : null;
    if (field) $(`#${field}-error`).textContent = err.message; else flash($('#saved'), err.message, { error: true });
  }
});

$('#avatar-file').addEventListener('change', async (e) => {
  const file = e.target.files[0];
  $('#avatar-error').textContent = '';
  if (!file) return;
  try {
    const uploaded = await upload(file);
    await patch({ avatar_id: uploaded.id });
    flash($('#saved'), 'Picture updated.');
  } catch (err) {
    $('#avatar-error').textContent = err.message;
  } finally {
    e.target.value = '';
  }
});

$('#avatar-remove').addEventListener('click', async () => {
  try { await patch({ avatar_id: null }); } catch (err) { $('#avatar-error').textContent = err.message; }
});

/**
 * Browsers by the token that names them, in the order they are tried: each one's User-Agent
 * also names the engines it is built on (Edge's says Chrome and Safari, Chrome's says
 * Safari), so the most specific comes first.
 */
const BROWSERS = [
  ['Edge', /\bEdg(?:e|A|iOS)?\//],
  ['Opera', /\bOPR\/|\bOpera\b/],
  ['Samsung Internet', /\bSamsungBrowser\//],
  ['Firefox', /\b(?:Firefox|FxiOS)\//],
  ['Chrome', /(?:Chrome|CriOS)\//], // HeadlessChrome and Chromium too
  ['Safari', /\bVersion\/[\d.]+\b.*\bSafari\//],
];
/** Systems likewise: an iPhone's says "like Mac OS X", an Android phone's says Linux. */
const SYSTEMS = [
  ['iPhone', /\biPhone\b/],
  ['iPad', /\biPad\b/],
  ['Android', /\bAndroid\b/],
  ['Windows', /\bWindows\b/],
  ['ChromeOS', /\bCrOS\b/],
  ['macOS', /\bMacintosh\b|\bMac OS X\b/],
  ['Linux', /\bLinux\b|\bX11\b/],
];

/**
 * A session's browser and system as people name them ("Chrome on Linux", "Safari on
 * iPhone"), from the User-Agent it logged in with, which is long and means little to most
 * people. A guess from well-known tokens, for telling one's sessions apart: anything can
 * send any User-Agent, so the raw string stays a click away. Without a known browser, a
 * program's own name (`curl/8.5.0` is "curl"), or a plain fallback.
 */
export function deviceName(userAgent) {
  const ua = String(userAgent ?? '').trim();
  if (!ua) return 'Unknown browser';
  const browser = BROWSERS.find(([, token]) => token.test(ua))?.[0];
  const system = SYSTEMS.find(([, token]) => token.test(ua))?.[0];
  if (browser && system) return `${browser} on ${system}`;
  if (browser) return browser;
  if (system) return `A browser on ${system}`;
  const product = /^([A-Za-z][\w.-]{0,31})\//.exec(ua)?.[1];
  return product && product !== 'Mozilla' ? product : 'Unknown browser';
}

/** A session's name, which opens onto the raw User-Agent for the curious. */
function sessionDevice(s) {
  const name = [el('strong', {}, deviceName(s.user_agent)), s.current ? el('span.tag', {}, 'this browser') : ''];
  if (!s.user_agent) return el('div.session-device', {}, ...name);
  return el('details.session-device', {}, el('summary', {}, ...name), el('code.session-agent', {}, s.user_agent));
}

async function loadSessions() {
  try {
    const { sessions } = await api('GET', '/me/sessions');
    fill($('#sessions'), sessions.map((s) => el('li.session', {},
      el('div.session-about', {}, sessionDevice(s),
        el('p.muted', {}, `Since ${longDateTime(s.created_at)} · until ${longDateTime(s.expires_at)}`)),
      s.current ? null : el('button.subtle.danger', {
        type: 'button',
        onclick: async () => {
          try { await api('DELETE', `/me/sessions/${enc(s.id)}`); loadSessions(); } catch (err) { flash(status, err.message, { error: true }); }
        },
      }, 'Log out there'))));
    $('#sessions-card').hidden = false;
  } catch { /* optional */ }
}

if (wanted) await showProfile(wanted); else await showOwn();
