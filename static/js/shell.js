// What every signed-in page shares: the session check, the top bar (navigation, message
// search, the connection state, log-out), the one websocket, and desktop notifications.

import { api, currentUser, toLogin } from './api.js';
import { Connection, backoffDelay } from './connection.js';
import { $, el, fill, avatarEl, guestBadge, roomHref } from './dom.js';
import { searchBox } from './search.js';
import { forgetUser } from './outbox.js';

const STATE_LABELS = { connecting: 'Connecting…', connected: 'Connected', reconnecting: 'Reconnecting…' };

/**
 * Resolves with `{ me, conn }` once the session is known, or sends the person to log in.
 * `live: false` skips the websocket (pages that need no live data).
 */
export async function startShell({ active = '', live = true } = {}) {
  const me = await sessionOrRetry();
  setSessionHint(me?.kind ?? null);
  if (!me) { toLogin(); return new Promise(() => {}); }
  // A page whose body says `data-session="checking"` keeps its content out of sight until
  // now (style.css), so that someone who is not logged in never glimpses it on the way to
  // the log-in page.
  delete document.body.dataset.session;
  const conn = live ? new Connection() : null;
  renderTopbar(me, active, conn);
  if (conn) {
    conn.addEventListener('ended', () => { setSessionHint(null); toLogin('session_ended'); });
    conn.start();
  }
  return { me, conn };
}

const HINT_KEY = 'sc.session-kind';

/**
 * The kind of session this browser last had (`account`, `guest`, `external`), or null. Only
 * a hint, kept by this file and sign-up, never trusted: it tells a page that anyone may open
 * (sign-up) whether asking the server who is signed in is worth a request, since asking
 * without a session costs a 401 that the browser logs as an error. The server's answer
 * decides; the session cookie itself is HttpOnly, out of reach of scripts.
 */
export function sessionHint() {
  try { return localStorage.getItem(HINT_KEY); } catch { return null; } // storage switched off
}

export function setSessionHint(kind) {
  try {
    if (kind) localStorage.setItem(HINT_KEY, kind); else localStorage.removeItem(HINT_KEY);
  } catch { /* storage switched off: pages ask the server, or not, without a hint */ }
}

/** Waits out a server that cannot be reached rather than showing a log-in form it cannot serve. */
async function sessionOrRetry() {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await currentUser();
    } catch {
      // Most pages have a status line, the room page its banner (cleared once it joins).
      // Offline, the service worker's copy of the page (sw.js) gets this far, and says so.
      const banner = $('#page-status') ?? $('#banner');
      if (banner) { banner.hidden = false; banner.textContent = 'The server cannot be reached. Retrying…'; }
      await new Promise((resolve) => setTimeout(resolve, 1000 + backoffDelay(Math.min(attempt, 5))));
    }
  }
}

function renderTopbar(me, active, conn) {
  const bar = $('#topbar');
  const link = (href, label, key) => el('a', { href, 'aria-current': active === key ? 'page' : null }, label);
  const nav = el('nav.topnav', { 'aria-label': 'Main' },
    link('/', 'Rooms', 'panel'),
    me.kind === 'account' ? link('/profile.html', 'Profile', 'profile') : null,
    me.role === 'admin' ? link('/admin.html', 'Admin', 'admin') : null);
  // The state in words, and a mark whose shape (a disc, an open ring) differs by state as
  // well as its colour: where the bar is narrow the words are left to screen readers (and
  // the tooltip), and the shape still tells it without colour (style.css).
  const label = el('span.conn-label');
  const pill = el('span.conn', { id: 'conn-state', role: 'status', 'aria-live': 'polite', hidden: !conn },
    el('span.conn-mark', { 'aria-hidden': 'true' }), label);
  const setState = (state) => {
    const text = STATE_LABELS[state] ?? state;
    pill.dataset.state = state;
    pill.title = text;
    label.textContent = text;
  };
  if (conn) {
    setState(conn.state);
    conn.addEventListener('state', (e) => setState(e.detail));
  }
  const avatar = avatarEl(me, null, 'sm');
  if (me.kind === 'account') showPicture(me, avatar);
  const logout = el('button.subtle', { type: 'button', onclick: () => logOut(conn, me) }, 'Log out');
  fill(bar,
    el('a.brand', { href: '/' }, el('img', { src: '/favicon.svg', alt: '', width: 24, height: 24 }), el('span', {}, 'Super Channels')),
    nav,
    searchBox(),
    el('div.topbar-end', {}, pill,
      // The name is cut short on a narrow bar; the tooltip keeps all of it.
      el('span.me', { title: me.kind === 'guest' ? `${me.name} (guest)` : me.name }, avatar, el('bdi', {}, me.name), guestBadge(me)),
      logout));
}

/**
 * Puts the account's picture in place of the initial once the profile says there is one.
 * The session names no picture, so this asks the profile (accounts only: guests and external
 * users have none) and leaves the initial meanwhile, and for good when the answer does not
 * come or the picture does not load: the bar is drawn without waiting for either.
 */
async function showPicture(me, initial) {
  let url;
  try { url = (await api('GET', '/me'))?.avatar_url; } catch { return; }
  if (!url) return;
  // As avatarEl draws one, but not lazy: it loads out of the page, at the top of every page,
  // and the initial stays until it has.
  const picture = el('img.avatar.avatar-sm', { src: url, alt: '', decoding: 'async' });
  picture.addEventListener('load', () => initial.replaceWith(picture), { once: true });
}

/** Logging out also takes the person's drafts and unsent messages off this browser (outbox.js). */
async function logOut(conn, me) {
  conn?.stop();
  forgetUser(me.id);
  setSessionHint(null);
  try { await api('DELETE', '/session'); } catch { /* the cookie is cleared or the session is gone either way */ }
  location.assign('/login.html');
}

/** True when the browser may show desktop notifications now. */
export const canNotify = () => 'Notification' in window && Notification.permission === 'granted';

/**
 * A desktop notification for a `notify` frame (only for rooms that are not open). `label`
 * names the room as its lists do (a private room's title, a direct message's person).
 */
export function desktopNotify(frame, label = `#${frame.room}`) {
  if (!canNotify()) return;
  const body = frame.kind === 'image' && !frame.preview ? `${frame.user?.name}: sent an image` : `${frame.user?.name}: ${frame.preview}`;
  const n = new Notification(`New in ${label}`, { body, tag: `room-${frame.room}`, icon: '/favicon.svg' });
  n.onclick = () => { window.focus(); location.assign(roomHref(frame.room)); };
}
