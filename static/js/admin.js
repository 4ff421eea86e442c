// The operators' page: search accounts, rooms and messages, disable accounts, delete rooms
// and messages, and read the audit log. The server checks the admin role on every call;
// this page only hides itself from others.

import { api, enc } from './api.js';
import { $, el, fill, longDateTime, roomHref, flash, guestBadge } from './dom.js';
import { startShell } from './shell.js';

const { me } = await startShell({ active: 'admin', live: false });
const status = $('#page-status');

/** A destructive button asks once more, in place, rather than through a modal dialog. */
function confirmButton(label, action) {
  const button = el('button.subtle.danger', { type: 'button' }, label);
  let armed = 0;
  button.addEventListener('click', async () => {
    if (!armed) {
      button.textContent = `Confirm: ${label.toLowerCase()}`;
      armed = setTimeout(() => { armed = 0; button.textContent = label; }, 5000);
      return;
    }
    clearTimeout(armed);
    armed = 0;
    button.disabled = true;
    try {
      await action();
    } catch (e) {
      flash(status, e.message, { error: true });
      button.disabled = false;
      button.textContent = label;
    }
  });
  return button;
}

const cell = (...children) => el('td', {}, ...children);

/** Each list: how to fetch a page, where its cursor is, and how a row looks. */
const lists = {
  users: {
    url: (q, cursor) => `/admin/users?limit=50&q=${enc(q.q ?? '')}${cursor ? `&after=${enc(cursor)}` : ''}`,
    items: (page) => page.users, cursor: (page) => page.next_after,
    row: (u) => el('tr', {},
      cell(el('a', { href: `/profile.html?u=${enc(u.username)}` }, u.username), el('br'), el('span.muted', {}, `${u.first_name} ${u.last_name}`)),
      cell(u.email), cell(u.role), cell(longDateTime(u.last_login)), cell(u.disabled ? 'disabled' : 'active'),
      cell(u.id === me.id ? '' : u.disabled
        ? el('button.subtle', { type: 'button', onclick: () => setDisabled(u.username, false) }, 'Enable')
        : confirmButton('Disable', () => setDisabled(u.username, true)))),
  },
  rooms: {
    url: (q, cursor) => `/admin/rooms?limit=50&q=${enc(q.q ?? '')}${cursor ? `&after=${enc(cursor)}` : ''}`,
    items: (page) => page.rooms, cursor: (page) => page.next_after,
    row: (r) => el('tr', {},
      cell(el('a', { href: roomHref(r.name) }, `#${r.name}`)), cell(String(r.last_seq)), cell(longDateTime(r.created_at)),
      cell(confirmButton('Delete room', async () => {
        await api('DELETE', `/admin/rooms/${enc(r.name)}`);
        flash(status, `#${r.name} was deleted.`);
        search('rooms'); search('audit');
      }))),
  },
  messages: {
    url: (q, cursor) => `/admin/messages?limit=50&q=${enc(q.q ?? '')}${q.room ? `&room=${enc(q.room)}` : ''}${cursor ? `&before_id=${cursor}` : ''}`,
    items: (page) => page.messages, cursor: (page) => page.next_before_id,
    row: (m) => el('tr', {},
      cell(el('a', { href: roomHref(m.room) }, `#${m.room}`), ` · ${m.seq}`), cell(el('bdi', {}, m.user.name), guestBadge(m.user)),
      cell(el('span.clip', { dir: 'auto' }, m.text), m.kind === 'image' ? el('span.tag', {}, 'image') : ''),
      cell(longDateTime(m.sent_at)),
      cell(confirmButton('Delete', async () => {
        await api('DELETE', `/admin/messages/${m.id}`);
        search('messages'); search('audit');
      }))),
  },
  audit: {
    url: (_q, cursor) => `/admin/audit?limit=50${cursor ? `&before_id=${cursor}` : ''}`,
    items: (page) => page.entries, cursor: (page) => page.next_before_id,
    row: (a) => el('tr', {}, cell(longDateTime(a.at)), cell(el('bdi', {}, a.actor_name)), cell(a.action),
      cell(el('bdi', {}, a.target)), cell(el('span.clip', {}, a.detail))),
  },
};

const state = {};

async function search(kind, more = false) {
  const list = lists[kind];
  const form = document.querySelector(`form.search[data-kind="${kind}"]`);
  const query = form ? Object.fromEntries(new FormData(form)) : {};
  const s = (state[kind] = more ? state[kind] : { query, cursor: null });
  try {
    const page = await api('GET', list.url(s.query, more ? s.cursor : null));
    const rows = list.items(page).map(list.row);
    const body = $(`#${kind}`);
    if (more) body.append(...rows); else fill(body, rows.length ? rows : el('tr', {}, el('td.muted', { colspan: 6 }, 'Nothing found.')));
    s.cursor = list.cursor(page);
    document.querySelector(`button.more[data-kind="${kind}"]`).hidden = !s.cursor;
  } catch (e) {
    flash(status, e.message, { error: true });
  }
}

async function setDisabled(username, disabled) {
  await api('PUT', `/admin/users/${enc(username)}/disabled`, { disabled });
  flash(status, `${username} is ${disabled ? 'disabled' : 'enabled again'}.`);
  search('users'); search('audit');
}

if (me.role !== 'admin') {
  flash(status, 'This page is for administrators.', { error: true, ms: 0 });
} else {
  $('#sections').hidden = false;
  for (const form of document.querySelectorAll('form.search')) {
    form.addEventListener('submit', (e) => { e.preventDefault(); search(form.dataset.kind); });
  }
  for (const button of document.querySelectorAll('button.more')) {
    button.addEventListener('click', () => search(button.dataset.kind, true));
  }
  for (const kind of Object.keys(lists)) search(kind);
}
