// The room page: history, live messages in seq order, sends that show as pending until
// acked, images, members, and a resume with `since_seq` after every reconnect so that
// nothing is missed or shown twice (docs/protocol.md §4–5).

import { api, ApiError, upload, enc } from './api.js';
import {
  $, el, fill, timeEl, avatarEl, profileHref, newId, flash, formatBytes,
} from './dom.js';
import { roomNameError, textError, IMAGE_TYPES } from './rules.js';
import { formatted } from './format.js';
import { RoomList } from './roomlist.js';
import { startShell, desktopNotify } from './shell.js';
import { backoffDelay } from './connection.js';

const PAGE = 50;
const RETRY_JOIN = new Set(['unavailable', 'internal']);

const ui = {
  title: $('#room-title'), banner: $('#banner'), log: $('#log'), earlier: $('#earlier'), start: $('#log-start'),
  messages: $('#messages'), pending: $('#pending'), composer: $('#composer'), text: $('#text'),
  file: $('#file'), attachment: $('#attachment'), hint: $('#composer-hint'), send: $('#send'),
  members: $('#members'), memberList: $('#member-list'), memberCount: $('#member-count'),
  membersToggle: $('#members-toggle'), membersTitle: $('#members-title'), leave: $('#leave'),
  dropZone: $('#drop-zone'), main: $('#main'),
};
const HINT = ui.hint.textContent;

const rawName = new URLSearchParams(location.search).get('name') ?? '';
const nameProblem = roomNameError(rawName);
const room = rawName.toLowerCase();

const { me, conn } = await startShell({ active: 'room' });

// ---------- state ----------
/** Rendered messages by seq; a deleted one stays as null so that it is not shown again. */
const shown = new Map();
/** Our sends without an ack, by client_msg_id. */
const pending = new Map();
const view = {
  joined: false,
  /** The highest seq received in order (history or live): the only safe resume point. */
  resume: null,
  /** The lowest seq whose range has been read; older pages start below it. */
  oldest: null,
  hasMore: false,
  loadingOlder: false,
  gone: false,
  joinAttempt: 0,
};
/** The picked, pasted or dropped image waiting to be sent. */
let attached = null;

// ---------- rendering ----------
const avatars = new Map(); // username → Promise<url|null>
function avatarUrl(user) {
  if (!profileHref(user)) return Promise.resolve(null);
  if (!avatars.has(user.name)) {
    avatars.set(user.name, api('GET', `/users/${enc(user.name)}`).then((p) => p.avatar_url, () => null));
  }
  return avatars.get(user.name);
}

/** An avatar that starts as the initial and becomes the picture once the profile is read. */
function liveAvatar(user, size = 'md') {
  const node = avatarEl(user, null, size);
  avatarUrl(user).then((url) => { if (url) node.replaceWith(avatarEl(user, url, size)); });
  return node;
}

function authorEl(user) {
  const href = profileHref(user);
  const name = el('bdi', {}, String(user?.name ?? ''));
  return href ? el('a.msg-author', { href }, name) : el('span.msg-author', {}, name);
}

function imageEl(url, alt) {
  return el('a.msg-image', { href: url, target: '_blank', rel: 'noopener' },
    el('img', { src: url, alt, loading: 'lazy', decoding: 'async' }));
}

function messageEl(m) {
  const user = m.user ?? {};
  const own = user.id === me.id;
  const li = el(`li.msg${own ? '.own' : ''}`, {
    dataset: { seq: String(m.seq), state: 'sent', id: String(m.id), author: String(user.id ?? ''), at: String(m.sent_at ?? '') },
  });
  const meta = el('p.msg-meta', {}, authorEl(user), ' ', timeEl(m.sent_at),
    own ? el('span.msg-state', { title: 'Delivered' }, el('span', { 'aria-hidden': 'true' }, '✓'), el('span.visually-hidden', {}, 'Sent')) : null);
  const body = el('div.msg-body', {}, meta);
  if (m.text) body.append(el('div.msg-text', { dir: 'auto' }, ...formatted(m.text)));
  if (m.kind === 'image' && m.attachment?.url) body.append(imageEl(m.attachment.url, `Image from ${user.name}`));
  li.append(liveAvatar(user), body);
  return li;
}

const nearBottom = () => ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 120;
const toBottom = () => { ui.log.scrollTop = ui.log.scrollHeight; };

function banner(text, kind = 'info') {
  ui.banner.hidden = !text;
  ui.banner.textContent = text;
  ui.banner.dataset.kind = kind;
}

/**
 * Shows a committed message once, at its seq's place. The seq decides the order, whatever
 * order frames arrive in, and a seq already shown is ignored.
 */
function addMessage(m) {
  if (m.room !== room || !Number.isSafeInteger(m.seq) || shown.has(m.seq)) return false;
  const li = messageEl(m);
  shown.set(m.seq, li);
  let after = ui.messages.lastElementChild;
  while (after && Number(after.dataset.seq) > m.seq) after = after.previousElementSibling;
  if (after) after.after(li); else ui.messages.prepend(li);
  regroup(li);
  regroup(li.nextElementSibling);
  // Our own message, confirmed by the room's stream (say after a resume): no longer pending.
  const mine = pending.get(m.client_msg_id);
  if (mine && m.user?.id === me.id) settle(m.client_msg_id);
  if (m.user?.id && !memberIds.has(m.user.id)) refreshMembersSoon();
  return true;
}

/** How long after one message its author's next one still reads as the same group. */
const GROUP_MS = 5 * 60 * 1000;

/**
 * A message continues the group above it when the same person sent both, the same day,
 * within a few minutes: its avatar and name are then not shown again (the name stays for
 * screen readers).
 */
function regroup(li) {
  if (!li) return;
  const prev = li.previousElementSibling;
  const gap = prev ? new Date(li.dataset.at) - new Date(prev.dataset.at) : NaN;
  const continued = !!prev && li.dataset.author !== '' && prev.dataset.author === li.dataset.author
    && gap >= 0 && gap < GROUP_MS && new Date(li.dataset.at).toDateString() === new Date(prev.dataset.at).toDateString();
  li.classList.toggle('continued', continued);
  // The hidden name is no stop for the keyboard; the group's first message links the profile.
  const author = li.querySelector('a.msg-author');
  if (continued) author?.setAttribute('tabindex', '-1'); else author?.removeAttribute('tabindex');
}

/** Messages from the ordered stream (`joined.history` and live frames) move the resume point. */
function streamMessage(m) {
  const stick = nearBottom();
  addMessage(m);
  if (view.resume === null || m.seq > view.resume) view.resume = m.seq;
  if (stick) toBottom();
}

function clearView() {
  shown.clear();
  ui.messages.replaceChildren();
  view.oldest = null;
  view.hasMore = false;
  updateEarlier();
}

function updateEarlier() {
  ui.earlier.hidden = !view.hasMore;
  ui.start.hidden = view.hasMore || view.oldest === null;
}

// ---------- joining and resuming ----------
function sendJoin() {
  if (nameProblem || view.gone) return;
  const frame = { type: 'join', room };
  if (view.resume !== null) frame.since_seq = view.resume;
  conn.send(frame);
}

function onJoined(f) {
  if (f.room !== room) return;
  view.joinAttempt = 0;
  const resumed = view.resume !== null;
  if (resumed && f.last_seq < view.resume) {
    // The server holds less than we saw: its data was reset. Start again from scratch.
    clearView();
    view.resume = null;
    conn.send({ type: 'leave', room });
    sendJoin();
    return;
  }
  const fresh = !resumed || f.has_more; // too much missed to show without a hole: start afresh
  if (fresh) clearView();
  view.joined = true;
  ui.messages.setAttribute('aria-busy', 'true');
  for (const m of f.history ?? []) streamMessage(m);
  ui.messages.removeAttribute('aria-busy');
  if (fresh) {
    view.oldest = f.history?.length ? f.history[0].seq : f.last_seq + 1;
    view.hasMore = f.has_more && view.oldest > 1;
    updateEarlier();
    toBottom();
  }
  banner('');
  ui.send.disabled = false;
  document.body.dataset.roomState = 'joined';
  for (const entry of pending.values()) if (entry.status === 'sending') transmit(entry);
  refreshMembers();
}

function onJoinError(f) {
  if (f.code === 'already_joined') return;
  if (RETRY_JOIN.has(f.code)) {
    banner(`Could not open #${room}: ${f.message} Retrying…`, 'error');
    setTimeout(() => { if (!view.joined) sendJoin(); }, 1000 + backoffDelay(view.joinAttempt++));
    return;
  }
  banner(f.message, 'error');
  ui.send.disabled = true;
}

// ---------- older history ----------
async function loadEarlier() {
  if (view.loadingOlder || !view.hasMore || view.oldest === null) return;
  view.loadingOlder = true;
  ui.earlier.disabled = true;
  const before = view.oldest;
  try {
    const page = await api('GET', `/rooms/${enc(room)}/messages?before_seq=${before}&limit=${PAGE}`);
    const height = ui.log.scrollHeight;
    const top = ui.log.scrollTop;
    for (const m of page.messages) addMessage(m);
    // Each page covers `PAGE` seqs whatever was deleted among them: page by the range.
    view.oldest = Math.max(1, before - PAGE);
    view.hasMore = view.oldest > 1;
    ui.log.scrollTop = top + (ui.log.scrollHeight - height); // keep what was on screen in place
    updateEarlier();
  } catch (e) {
    banner(`Could not load earlier messages: ${e.message}`, 'error');
  } finally {
    view.loadingOlder = false;
    ui.earlier.disabled = false;
  }
  // A page of deleted messages adds nothing to scroll past: keep going while the top shows.
  if (view.hasMore && ui.log.scrollTop < 40) loadEarlier();
}

// ---------- sending ----------
function pendingEl(entry) {
  const li = el('li.msg.own', { dataset: { state: entry.status === 'failed' ? 'failed' : 'pending', clientMsgId: entry.id } });
  const state = entry.status === 'failed'
    ? el('p.msg-error', { role: 'alert' }, `Not sent: ${entry.error}`)
    : el('p.msg-pending', {}, entry.status === 'uploading' ? 'Uploading image…' : 'Sending…');
  const body = el('div.msg-body', {}, el('p.msg-meta', {}, authorEl(me)));
  if (entry.text) body.append(el('div.msg-text', { dir: 'auto' }, ...formatted(entry.text)));
  if (entry.previewUrl) body.append(el('span.msg-image', {}, el('img', { src: entry.previewUrl, alt: 'Your image' })));
  body.append(state);
  if (entry.status === 'failed') {
    body.append(el('div.msg-actions', {},
      el('button.subtle', { type: 'button', onclick: () => retry(entry) }, 'Retry'),
      el('button.subtle', { type: 'button', onclick: () => discard(entry) }, 'Discard')));
  }
  li.append(liveAvatar(me), body);
  return li;
}

function renderPending(entry) {
  const li = pendingEl(entry);
  if (entry.li) entry.li.replaceWith(li); else ui.pending.append(li);
  entry.li = li;
}

function fail(entry, message) {
  entry.status = 'failed';
  entry.error = message;
  renderPending(entry);
}

/** Sends when the room is joined; otherwise the send goes out with the next `joined`. */
function transmit(entry) {
  if (!view.joined) return;
  const frame = { type: 'send', room, client_msg_id: entry.id, text: entry.text };
  if (entry.attachmentId) frame.attachment_id = entry.attachmentId;
  conn.send(frame);
}

async function dispatch(entry) {
  if (entry.file && !entry.attachmentId) {
    entry.status = 'uploading';
    renderPending(entry);
    try {
      entry.attachmentId = (await upload(entry.file)).id;
    } catch (e) {
      fail(entry, e.message);
      return;
    }
  }
  entry.status = 'sending';
  renderPending(entry);
  transmit(entry);
}

/** A retry reuses the same client_msg_id, so a send that did commit is not stored twice. */
function retry(entry) {
  entry.error = null;
  dispatch(entry);
}

function discard(entry) {
  entry.li?.remove();
  if (entry.previewUrl) URL.revokeObjectURL(entry.previewUrl);
  pending.delete(entry.id);
}

/** The send is committed: the pending bubble goes, the message takes its seq's place. */
function settle(id) {
  const entry = pending.get(id);
  if (!entry) return;
  pending.delete(id);
  entry.li?.remove();
  if (entry.previewUrl) URL.revokeObjectURL(entry.previewUrl);
}

function onAck(f) {
  const entry = pending.get(f.client_msg_id);
  if (!entry || f.room !== room) return;
  const stick = nearBottom();
  settle(f.client_msg_id);
  // The ack is not part of the ordered stream: show the message, but do not resume from it.
  addMessage({
    type: 'message', room, seq: f.seq, id: f.id, user: { id: me.id, name: me.name }, text: entry.text,
    sent_at: f.sent_at, client_msg_id: f.client_msg_id, kind: entry.attachmentId ? 'image' : 'text',
    attachment: entry.attachmentId ? { id: entry.attachmentId, url: `/api/v1/uploads/${entry.attachmentId}` } : undefined,
  });
  if (stick) toBottom();
}

function onError(f) {
  const entry = f.ref !== undefined ? pending.get(f.ref) : null;
  if (entry) { fail(entry, f.message || f.code); return; }
  if (f.ref === room || f.ref === rawName) { onJoinError(f); return; }
  banner(f.message || f.code, 'error');
}

function submit() {
  const text = ui.text.value;
  const problem = textError(text, { caption: !!attached });
  ui.hint.textContent = problem ?? HINT;
  ui.hint.classList.toggle('is-error', !!problem);
  if (problem || view.gone || nameProblem) return;
  const entry = {
    id: newId(), text: attached && text.trim() === '' ? '' : text, file: attached?.file ?? null,
    previewUrl: attached?.url ?? null, attachmentId: null, status: 'sending', error: null, li: null,
  };
  pending.set(entry.id, entry);
  attached = null;
  renderAttachment();
  ui.text.value = '';
  autosize();
  dispatch(entry);
  toBottom();
}

// ---------- attachments ----------
function attach(file) {
  if (!file) return;
  if (!IMAGE_TYPES.includes(file.type)) {
    flash(ui.hint, 'Only PNG, JPEG, GIF and WebP images can be sent.', { error: true });
    return;
  }
  if (attached) URL.revokeObjectURL(attached.url);
  attached = { file, url: URL.createObjectURL(file) };
  renderAttachment();
  ui.text.focus();
}

function renderAttachment() {
  ui.attachment.hidden = !attached;
  if (!attached) { ui.attachment.replaceChildren(); ui.file.value = ''; return; }
  const name = attached.file.name || 'pasted image';
  fill(ui.attachment,
    el('img', { src: attached.url, alt: `Preview of ${name}` }),
    el('span.attachment-name', {}, `${name} · ${formatBytes(attached.file.size)}`),
    el('button.subtle', {
      type: 'button', 'aria-label': 'Remove the image',
      onclick: () => { URL.revokeObjectURL(attached.url); attached = null; renderAttachment(); ui.text.focus(); },
    }, 'Remove'));
}

const hasFiles = (e) => [...(e.dataTransfer?.types ?? [])].includes('Files');
let dragDepth = 0;
ui.main.addEventListener('dragenter', (e) => { if (hasFiles(e)) { dragDepth += 1; ui.dropZone.hidden = false; } });
ui.main.addEventListener('dragleave', () => { dragDepth = Math.max(0, dragDepth - 1); if (!dragDepth) ui.dropZone.hidden = true; });
ui.main.addEventListener('dragover', (e) => { if (hasFiles(e)) e.preventDefault(); });
ui.main.addEventListener('drop', (e) => {
  if (!hasFiles(e)) return;
  e.preventDefault();
  dragDepth = 0;
  ui.dropZone.hidden = true;
  attach(e.dataTransfer.files[0]);
});
ui.text.addEventListener('paste', (e) => {
  const file = [...(e.clipboardData?.files ?? [])].find((f) => f.type.startsWith('image/'));
  if (file) { e.preventDefault(); attach(file); }
});
ui.file.addEventListener('change', () => attach(ui.file.files[0]));

// ---------- members ----------
const memberIds = new Set();
let membersTimer = 0;
const refreshMembersSoon = () => { clearTimeout(membersTimer); membersTimer = setTimeout(refreshMembers, 500); };

async function refreshMembers() {
  try {
    const page = await api('GET', `/rooms/${enc(room)}/members?limit=200`);
    memberIds.clear();
    for (const m of page.members) memberIds.add(m.user_id);
    ui.memberCount.textContent = `(${page.count})`;
    ui.membersTitle.textContent = `Members (${page.count})`;
    const rows = page.members.map((m) => {
      const user = { id: m.user_id, name: m.name };
      const href = profileHref(user);
      const name = el('bdi', {}, m.name);
      return el('li.member', { dataset: { userId: m.user_id } }, liveAvatar(user, 'sm'),
        href ? el('a', { href }, name) : name,
        m.user_id === me.id ? el('span.muted', {}, ' (you)') : null);
    });
    if (page.count > page.members.length) rows.push(el('li.muted', {}, `and ${page.count - page.members.length} more`));
    fill(ui.memberList, rows);
  } catch { /* the list is a convenience; the next join or new author refreshes it */ }
}

ui.membersToggle.addEventListener('click', () => {
  const open = ui.membersToggle.getAttribute('aria-expanded') !== 'true';
  ui.membersToggle.setAttribute('aria-expanded', String(open));
  document.body.classList.toggle('members-open', open);
  if (open) refreshMembers();
});

// ---------- leaving ----------
ui.leave.addEventListener('click', async () => {
  ui.leave.disabled = true;
  try {
    await api('DELETE', `/rooms/${enc(room)}/membership`);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 404)) { banner(`Could not leave: ${e.message}`, 'error'); ui.leave.disabled = false; return; }
  }
  conn.send({ type: 'leave', room });
  location.assign('/');
});

// ---------- wiring ----------
function autosize() {
  ui.text.style.height = 'auto';
  ui.text.style.height = `${Math.min(ui.text.scrollHeight, 200)}px`;
}
ui.text.addEventListener('input', autosize);
ui.text.addEventListener('keydown', (e) => { // Enter sends, Shift+Enter is a new line
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
});
ui.composer.addEventListener('submit', (e) => { e.preventDefault(); submit(); });
ui.earlier.addEventListener('click', loadEarlier);
new IntersectionObserver((entries) => {
  if (entries.some((e) => e.isIntersecting)) loadEarlier();
}, { root: ui.log, rootMargin: '200px 0px 0px 0px' }).observe(ui.earlier);

const sidebar = new RoomList($('#room-list'), { current: room, compact: true });
sidebar.reload().catch(() => {});

conn.addEventListener('open', () => { view.joined = false; sendJoin(); });
conn.addEventListener('close', () => { view.joined = false; document.body.dataset.roomState = 'away'; });
conn.addEventListener('joined', (e) => onJoined(e.detail));
conn.addEventListener('message', (e) => { if (e.detail.room === room && view.joined) streamMessage(e.detail); });
conn.addEventListener('ack', (e) => onAck(e.detail));
conn.addEventListener('error', (e) => onError(e.detail));
conn.addEventListener('notify', (e) => {
  if (e.detail.room === room) return;
  sidebar.bump(e.detail);
  desktopNotify(e.detail);
});
conn.addEventListener('deleted', (e) => {
  const f = e.detail;
  if (f.room !== room) return;
  const gone = shown.get(f.seq);
  const next = gone?.nextElementSibling;
  gone?.remove();
  shown.set(f.seq, null);
  regroup(next);
});
conn.addEventListener('room_deleted', (e) => {
  if (e.detail.room !== room) return;
  view.gone = true;
  view.joined = false;
  conn.send({ type: 'leave', room });
  clearView();
  for (const entry of [...pending.values()]) discard(entry);
  ui.send.disabled = true;
  ui.composer.hidden = ui.leave.hidden = true;
  banner('An administrator deleted this room.', 'error');
});

if (nameProblem) {
  ui.title.textContent = 'No such room';
  banner(`“${rawName}” is not a room name: ${nameProblem}`, 'error');
  ui.send.disabled = true;
  ui.composer.hidden = ui.leave.hidden = ui.membersToggle.hidden = ui.members.hidden = true;
} else {
  ui.title.textContent = `#${room}`;
  document.title = `#${room} · Super Channels`;
  ui.text.focus();
  if (conn.isOpen) sendJoin();
}
