// Building the DOM without HTML strings: every piece of text a user or the server supplied
// goes in as a text node, so nothing anyone types can become markup or script.

export const $ = (selector, root = document) => root.querySelector(selector);

/**
 * `el('a.link', { href }, 'text', child)`: a tag with optional classes after dots, then
 * attributes (properties for `on*`, `hidden`, `disabled`, `value`), then children, where
 * strings and numbers become text nodes and null/false are skipped.
 */
export function el(spec, attrs = {}, ...children) {
  const [tag, ...classes] = spec.split('.');
  const node = document.createElement(tag);
  if (classes.length) node.className = classes.join(' ');
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'hidden' || key === 'disabled' || key === 'value' || key === 'checked') node[key] = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces a node's children. */
export const fill = (node, ...children) => { node.replaceChildren(); append(node, children); return node; };

const sameDay = (a, b) => a.toDateString() === b.toDateString();

/** A message time: the time today, the date and time before that. */
export function shortTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return sameDay(d, new Date())
    ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

/** "5 min ago"-style times for lists, where the exact minute matters less than recency. */
export function relativeTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  const secs = (Date.now() - d.getTime()) / 1000;
  if (Number.isNaN(secs)) return '';
  const rtf = new Intl.RelativeTimeFormat([], { numeric: 'auto' });
  if (secs < 45) return 'just now';
  if (secs < 3600) return rtf.format(-Math.round(secs / 60), 'minute');
  if (secs < 86400) return rtf.format(-Math.round(secs / 3600), 'hour');
  if (secs < 86400 * 7) return rtf.format(-Math.round(secs / 86400), 'day');
  return d.toLocaleDateString([], { dateStyle: 'medium' });
}

export const longDate = (iso) => (iso ? new Date(iso).toLocaleDateString([], { dateStyle: 'medium' }) : '—');
export const longDateTime = (iso) => (iso ? new Date(iso).toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' }) : '—');

/** A `<time>` element whose tooltip carries the full local date. */
export function timeEl(iso, text = shortTime(iso)) {
  return el('time', { datetime: iso, title: iso ? new Date(iso).toLocaleString() : '' }, text);
}

/** A stable colour slot (0–11) per user id, so a person keeps their colour everywhere. */
export function hueOf(id) {
  let h = 0;
  for (const ch of String(id)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return String(h % 12);
}

/**
 * An avatar: the uploaded picture when there is one, otherwise the name's first letter on
 * the user's colour. `size` picks the CSS size class.
 */
export function avatarEl(user, url = null, size = 'md') {
  const name = String(user?.name ?? '?');
  if (url) return el(`img.avatar.avatar-${size}`, { src: url, alt: '', loading: 'lazy', decoding: 'async' });
  const initial = [...name.trim()][0]?.toUpperCase() ?? '?';
  return el(`span.avatar.avatar-${size}`, { 'aria-hidden': 'true', dataset: { hue: hueOf(user?.id ?? name) } }, initial);
}

/** Whether a user is a guest: the server gives `guest:` ids to guests and to no one else. */
export const isGuest = (user) => String(user?.id ?? '').startsWith('guest:');

/**
 * The "guest" badge beside a guest's name, or null for anyone else. Guest names are neither
 * unique nor reserved, so a reader must be able to tell "Ann" the guest from an account:
 * the word says it (not a colour), and the hidden brackets make a screen reader say
 * "Ann (guest)" rather than run the two words together.
 */
export function guestBadge(user) {
  if (!isGuest(user)) return null;
  return el('span.tag.guest-tag', {}, el('span.visually-hidden', {}, '('), 'guest', el('span.visually-hidden', {}, ')'));
}

/** Where a user's profile lives; only accounts (`u:` ids) have one. */
export const profileHref = (user) => (String(user?.id ?? '').startsWith('u:')
  ? `/profile.html?u=${encodeURIComponent(user.name)}` : null);

/** A room's page; `at`, a message's seq, opens it at that message (a search result). */
export const roomHref = (name, at = null) => `/room.html?name=${encodeURIComponent(name)}${at === null ? '' : `&at=${at}`}`;

/** A random idempotency key for a send. */
export const newId = () => (crypto.randomUUID ? crypto.randomUUID()
  : Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join(''));

/**
 * Shows the problem with form field `#id` in its `#id-error` line, or clears it, and marks
 * the field invalid or not for assistive technology.
 */
export function showProblem(id, problem) {
  $(`#${id}-error`).textContent = problem ?? '';
  $(`#${id}`).setAttribute('aria-invalid', problem ? 'true' : 'false');
}

/** Shows a status line for a few seconds (or until replaced). */
export function flash(node, text, { error = false, ms = 6000 } = {}) {
  node.textContent = text;
  node.classList.toggle('is-error', error);
  clearTimeout(node._flashTimer);
  if (text && ms) node._flashTimer = setTimeout(() => { node.textContent = ''; }, ms);
}

export const formatBytes = (n) => (n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(0)} KiB` : `${(n / 1048576).toFixed(1)} MiB`);
