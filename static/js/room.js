// The room page: history, live events in seq order (messages, edits, deletions,
// reactions, and changes to the room itself shown as system lines), sends that show as
// pending until acked, replies, mentions, images, members and who of them is online, how far
// the newest messages have been read (ours sent, theirs shown as "seen by" avatars), and a
// resume with `since_seq` after every reconnect so that nothing is missed or shown twice
// (docs/protocol.md §3–5). The room's title, topic and your role in it come from its
// details; owners and moderators invite, mute, kick and ban from here. A search result
// opens the page at its message (`at`), loading older history until it is shown.
// Scrolled up, new messages bring a "Jump to latest" button; an "Unread" line marks where
// the messages unread on opening began. The draft and the sends not acked yet are kept in
// localStorage (outbox.js), so a room switch or a reload loses neither; sends and changes
// are paced under the gateway's rate, and one it refuses as `rate_limited` goes again by
// itself. On a narrow screen the member list is a drawer that its toggle, Escape and a tap
// outside close. Leaving the room asks first.

import { api, ApiError, upload, enc } from './api.js';
import {
  $, el, fill, timeEl, avatarEl, profileHref, guestBadge, roomHref, newId, flash, formatBytes, shortTime, longDateTime,
} from './dom.js';
import { roomNameError, textError, isReservedRoom, IMAGE_TYPES } from './rules.js';
import { formatted } from './format.js';
import { Timeline, EVENT_TYPES } from './timeline.js';
import { TypingLine, SEND_EVERY_MS } from './typing.js';
import { RoomPresence, onlineText } from './presence.js';
import { ReadMarkers, SEEN_FACES, lastAtOrBelow, seenText } from './receipts.js';
import { RoomList, roomLabel, lockIcon } from './roomlist.js';
import { startShell, desktopNotify } from './shell.js';
import { playSound, setPageTitle, tellRead } from './notifications.js';
import { searchHere } from './search.js';
import { backoffDelay } from './connection.js';
import { Draft, Outbox, Pacer } from './outbox.js';

const PAGE = 50;
const RETRY_JOIN = new Set(['unavailable', 'internal']);

const ui = {
  title: $('#room-title'), banner: $('#banner'), log: $('#log'), earlier: $('#earlier'), start: $('#log-start'),
  messages: $('#messages'), pending: $('#pending'), composer: $('#composer'), text: $('#text'),
  file: $('#file'), attachment: $('#attachment'), hint: $('#composer-hint'), send: $('#send'),
  members: $('#members'), memberList: $('#member-list'), memberCount: $('#member-count'), onlineCount: $('#online-count'),
  membersToggle: $('#members-toggle'), membersTitle: $('#members-title'), leave: $('#leave'),
  dropZone: $('#drop-zone'), main: $('#main'), typing: $('#typing'),
  kind: $('#room-kind'), topic: $('#room-topic'), about: $('#room-about'), description: $('#room-description'),
  inviteOpen: $('#invite-open'), manageOpen: $('#manage-open'), notice: $('#composer-notice'),
  membersStatus: $('#members-status'), jump: $('#jump-latest'), chatHead: $('.chat-head'),
};
const HINT = ui.hint.textContent;

const query = new URLSearchParams(location.search);
const rawName = query.get('name') ?? '';
const nameProblem = roomNameError(rawName);
const room = rawName.toLowerCase();
/** A seq from the address (`at`), or null when there is none or it is no seq. */
const seqParam = (value) => (/^[1-9]\d{0,15}$/.test(value ?? '') && Number.isSafeInteger(Number(value)) ? Number(value) : null);

const { me, conn } = await startShell({ active: 'room' });

// ---------- state ----------
/** The room's messages in their current state, by seq. */
const tl = new Timeline();
/** Their rendered rows, by seq. */
const shown = new Map();
/** Changes (edit, delete, react …) not answered yet, by client_msg_id: { frame, what }. */
const changes = new Map();
/** The message the next send replies to, if any. */
let replyTo = null;
/** The message to open the room at (a search result), shown once the room has joined. */
let target = seqParam(query.get('at'));
/** The message the room was last opened at: marked as the current one while it is on screen. */
let foundSeq = null;
/** Our sends without an ack, by client_msg_id. */
const pending = new Map();
/** The composer's draft and the sends without an ack, kept across room switches and reloads. */
const draft = new Draft(me.id, room);
const outbox = new Outbox(me.id, room);
/** Messages from others that came while the timeline was scrolled up: the "Jump to latest" count. */
let unseen = 0;
/**
 * Where the messages that were unread when the page opened begin, for the "Unread" line.
 * Joining marks the room read, so the panel is read first: `count`, its unread count, and
 * `upTo`, the room's last seq it counted to. The first of them is found by counting back
 * from there (locateUnread); `seq`, once found, stays for the life of the page, so the
 * line does not move while the person reads, and the next opening finds nothing unread.
 */
const unreadAtOpen = { read: false, count: 0, upTo: 0, seq: null };
/** How long the first join waits for the panel: past it the room opens without the line. */
const PANEL_WAIT_MS = 3000;
const view = {
  joined: false,
  /** The highest seq received in order (history or live): the only safe resume point. */
  resume: null,
  /** The lowest seq whose range has been read; older pages start below it. */
  oldest: null,
  hasMore: false,
  gone: false,
  joinAttempt: 0,
};
/**
 * Sends and changes go through it, paced under the gateway's rate, in order, and sent again
 * after a `rate_limited` (outbox.js). Only while joined: the next `joined` queues again
 * whatever a lost socket left unanswered.
 */
const pacer = new Pacer((frame) => view.joined && conn.send(frame));
/** The picked, pasted or dropped image waiting to be sent. */
let attached = null;
/**
 * How far this page has told the server the room was read: `sent`, the seq of the last
 * `read` frame (or what the last `joined` showed, which joining marks read); `seen`, the
 * newest seq seen since, waiting for its frame; `at`, when the last one went.
 */
const reading = { sent: 0, seen: 0, at: -Infinity, timer: 0 };
/** How far the room's other members have read (docs/protocol.md, `read`); unknown while not joined. */
const markers = new ReadMarkers();
/** The "seen by" rows on screen, by the seq of the message they sit under: { node, key }. */
const seenRows = new Map();
/**
 * The room itself, as its details (GET /rooms/{room}) said and its room events since: how
 * it is named, what it is about, your role in it, and until when you are muted, if you are.
 */
const info = {
  loaded: false, visibility: isReservedRoom(room) ? 'private' : 'public', title: null, dmWith: null,
  topic: '', description: '', role: null, mutedUntil: null,
};
const NO_ACCESS = 'This room does not exist or you do not have access.';
/**
 * Counts the room events applied. A read of the details or the member list that saw one
 * arrive meanwhile may predate it (an unmute undone by a reply read just before it): such a
 * reply is read again rather than trusted.
 */
let roomEpoch = 0;

// ---------- rendering ----------
/**
 * Avatars come with the member list (`avatar_url`), read once per join: a room of fifty
 * authors costs no profile request each (issue 24). Until the list is read, an avatar waits
 * for it; someone not in it (who left, or past its first page) keeps their initial.
 */
const memberAvatars = new Map(); // user id → url|null, from the member list
let membersRead;
const firstMembers = new Promise((resolve) => { membersRead = resolve; });
const avatars = new Map(); // user id → Promise<url|null>
function avatarUrl(user) {
  if (!profileHref(user)) return Promise.resolve(null);
  if (!avatars.has(user.id)) avatars.set(user.id, firstMembers.then(() => memberAvatars.get(user.id) ?? null));
  return avatars.get(user.id);
}

/** An avatar that starts as the initial and becomes the picture once the profile is read. */
function liveAvatar(user, size = 'md') {
  const node = avatarEl(user, null, size);
  avatarUrl(user).then((url) => { if (url) node.replaceWith(avatarEl(user, url, size)); });
  return node;
}

/**
 * The author's name (a link to an account's profile), with the guest badge for a guest.
 * The link is for the pointer and for a screen reader's list of links, but no Tab stop: a
 * stop per message's author made the keyboard's way through the timeline twice as long
 * (issue 24). The keyboard reaches the profile from the message's actions (openMenu).
 */
function authorEl(user) {
  const href = profileHref(user);
  const name = el('bdi', {}, String(user?.name ?? ''));
  return [href ? el('a.msg-author', { href, tabindex: -1 }, name) : el('span.msg-author', {}, name), guestBadge(user)];
}

/** The most room an image takes in the timeline, in CSS pixels; its shape is kept. */
const IMAGE_BOX = Object.freeze({ width: 352, height: 288 });

/**
 * An image message's picture. Its size comes with the message, so its space is set aside
 * before a byte of it arrives: the timeline does not jump when it loads (issue 24). It
 * loads a thumbnail (the browser picks the width for the screen's density); a click
 * opens the whole image in the lightbox, and the link still opens it in a tab.
 */
function imageEl(attachment, alt) {
  const { url, width, height, thumbnails = [] } = attachment;
  const img = el('img', { src: url, alt, loading: 'lazy', decoding: 'async' });
  if (width > 0 && height > 0) {
    const scale = Math.min(1, IMAGE_BOX.width / width, IMAGE_BOX.height / height);
    const shown = { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
    img.width = shown.width;
    img.height = shown.height;
    // Thumbnails only: the whole image is for the lightbox. Offered beside them, it is what
    // a phone's dense screen picks whenever the image is narrower than the widest thumbnail
    // (a 700-pixel PNG, hundreds of KB, for a 352-pixel box).
    if (thumbnails.length) {
      img.srcset = thumbnails.map((t) => `${t.url} ${t.width}w`).join(', ');
      img.sizes = `${shown.width}px`;
      img.src = thumbnails[0].url;
    }
  }
  const link = el('a.msg-image', { href: url, target: '_blank', rel: 'noopener' }, img);
  link.addEventListener('click', (e) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return; // a tab, as asked
    e.preventDefault();
    openLightbox(url, alt, link);
  });
  return link;
}

let lightbox = null;
/** The whole image over the page, in a modal dialog: Escape, the close button or a click beside it closes it. */
function openLightbox(url, alt, opener) {
  if (!lightbox) {
    const image = el('img.lightbox-image', { alt: '' });
    const original = el('a.lightbox-original', { target: '_blank', rel: 'noopener' }, 'Open original');
    const close = el('button.lightbox-close', { type: 'button', 'aria-label': 'Close image' }, el('span', { 'aria-hidden': 'true' }, '×'));
    const dialog = el('dialog.lightbox', { 'aria-label': 'Image' }, el('div.lightbox-bar', {}, original, close), image);
    close.addEventListener('click', () => dialog.close());
    dialog.addEventListener('click', (e) => { if (e.target === dialog) dialog.close(); }); // the backdrop
    dialog.addEventListener('close', () => {
      image.removeAttribute('src');
      lightbox.opener?.focus();
    });
    document.body.append(dialog);
    lightbox = { dialog, image, original, opener: null };
  }
  lightbox.image.src = url;
  lightbox.image.alt = alt;
  lightbox.original.href = url;
  lightbox.opener = opener;
  lightbox.dialog.showModal();
}

/** Whether a message mentions the person using this page. */
const mentionsMe = (m) => (m.mentions ?? []).some((u) => u.id === me.id);

/** Up to `n` characters of a message's text, for previews. */
const preview = (m, n = 80) => {
  if (!m) return 'an earlier message';
  if (m.deleted) return 'a deleted message';
  const text = m.text || (m.kind === 'image' ? 'an image' : '');
  return text.length > n ? `${text.slice(0, n)}…` : text;
};

function replyEl(seq) {
  const original = tl.get(seq);
  return el('button.msg-reply', {
    type: 'button', dataset: { replyTo: String(seq) },
    'aria-label': `In reply to ${original?.user?.name ?? 'a message'}: ${preview(original)}. Show it`,
    onclick: () => reveal(seq),
  }, el('span', { 'aria-hidden': 'true' }, '↪ '), el('bdi.msg-reply-author', {}, original?.user?.name ?? ''), ' ',
  el('span.msg-reply-text', {}, preview(original)));
}

function reactionsEl(m) {
  if (!m.reactions?.length) return null;
  return el('div.msg-reactions', { role: 'group', 'aria-label': 'Reactions' }, m.reactions.map((r) => {
    const mine = r.users.some((u) => u.id === me.id);
    const who = r.users.map((u) => u.name).join(', ');
    return el(`button.reaction${mine ? '.mine' : ''}`, {
      type: 'button', 'aria-pressed': String(mine), title: `${who} reacted with ${r.emoji}`,
      'aria-label': `${r.emoji} ${r.count}: ${who}. ${mine ? 'Take back your reaction' : 'React with this too'}`,
      onclick: () => sendChange(mine ? 'unreact' : 'react', m.seq, { emoji: r.emoji }),
    }, el('span.reaction-emoji', {}, r.emoji), ' ', el('span.reaction-count', {}, String(r.count)));
  }));
}

function messageEl(m) {
  const user = m.user ?? {};
  const own = user.id === me.id;
  const classes = `li.msg${own ? '.own' : ''}${m.deleted ? '.deleted' : ''}${mentionsMe(m) ? '.mentions-me' : ''}`;
  const found = m.seq === foundSeq; // an edit or a reaction keeps the search result marked
  const li = el(classes, {
    dataset: { seq: String(m.seq), state: 'sent', id: String(m.id), author: String(user.id ?? ''), at: String(m.sent_at ?? '') },
    'aria-current': found ? 'true' : null, tabindex: found ? -1 : null,
  });
  const meta = el('p.msg-meta', {}, authorEl(user), ' ', timeEl(m.sent_at),
    m.edited_at && !m.deleted ? el('span.msg-edited', { title: `Edited ${new Date(m.edited_at).toLocaleString()}` }, '(edited)') : null,
    own ? el('span.msg-state', { title: 'Delivered' }, el('span', { 'aria-hidden': 'true' }, '✓'), el('span.visually-hidden', {}, 'Sent')) : null);
  const body = el('div.msg-body', {}, meta);
  if (m.deleted) {
    body.append(el('p.msg-tombstone', {}, 'Message deleted'));
  } else {
    if (m.reply_to) body.append(replyEl(m.reply_to));
    if (m.text) body.append(el('div.msg-text', { dir: 'auto' }, ...formatted(m.text)));
    if (m.kind === 'image' && m.attachment?.url) body.append(imageEl(m.attachment, `Image from ${user.name}`));
    const reactions = reactionsEl(m);
    if (reactions) body.append(reactions);
    body.append(el('button.msg-menu-button.subtle', {
      type: 'button', 'aria-haspopup': 'menu', 'aria-expanded': 'false', 'aria-label': `Actions for the message from ${user.name ?? 'someone'}`,
      onclick: (e) => openMenu(m.seq, e.currentTarget),
    }, el('span', { 'aria-hidden': 'true' }, '⋯')));
  }
  li.append(liveAvatar(user), body);
  if (m.seq === unreadAtOpen.seq) addUnreadLine(li);
  // A long press on touch opens the same menu.
  li.addEventListener('contextmenu', (e) => {
    if (m.deleted || e.target.closest('a, img')) return;
    e.preventDefault();
    openMenu(m.seq, li.querySelector('.msg-menu-button'));
  });
  return li;
}

const nearBottom = () => ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 120;
const toBottom = () => { ui.log.scrollTop = ui.log.scrollHeight; seenAll(); };

/**
 * At the end of the timeline, the view stays there while what is on screen grows: an image
 * without a known size (uploaded before sizes were recorded, or one's own still sending)
 * loading, a reaction, a typing line. Scrolled up, nothing moves under the reader.
 */
let pinned = true;
ui.log.addEventListener('scroll', () => { pinned = nearBottom(); }, { passive: true });
new ResizeObserver(() => { if (pinned) ui.log.scrollTop = ui.log.scrollHeight; }).observe(ui.messages);

/**
 * The "Jump to latest (n new)" button, shown while messages from others wait below a
 * timeline scrolled up to older ones. It sits in a polite live region, so that a screen
 * reader hears the count as it grows without being interrupted.
 */
function showJump() {
  ui.jump.hidden = unseen === 0;
  const text = `Jump to latest (${unseen} new)`;
  if (unseen && ui.jump.textContent !== text) ui.jump.textContent = text;
}

/** The newest messages are in view: nothing waits below any more. */
function seenAll() {
  if (!unseen) return;
  unseen = 0;
  showJump();
}

/** The "Unread" line: a word to the eye, a sentence to a screen reader. */
function addUnreadLine(li) {
  li.classList.add('first-unread');
  li.prepend(el('p.unread-divider', {}, el('span', {}, 'Unread'), el('span.visually-hidden', {}, ' messages start here')));
}

/**
 * Finds the first message that was unread when the page opened, counting back from the
 * newest one the panel counted, as the server counts (messages, not tombstones nor room
 * events). When the count reaches past what is loaded, older pages go on with it; when it
 * reaches past the room's start, every message was unread.
 */
function locateUnread() {
  if (unreadAtOpen.seq !== null || unreadAtOpen.count <= 0) return;
  let left = unreadAtOpen.count;
  let first = null;
  for (let li = ui.messages.lastElementChild; li && left > 0; li = li.previousElementSibling) {
    if (Number(li.dataset.seq) > unreadAtOpen.upTo || !li.matches('.msg:not(.deleted)')) continue;
    first = li;
    left -= 1;
  }
  if (!first || (left > 0 && view.hasMore)) return;
  unreadAtOpen.seq = Number(first.dataset.seq);
  addUnreadLine(first);
  regroup(first);
}

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
  if (m.room !== room || !Number.isSafeInteger(m.seq)) return false;
  if (tl.apply(m) === null) return false;
  if (shown.has(m.seq)) { rerender(m.seq); return true; }
  const li = messageEl(tl.get(m.seq));
  shown.set(m.seq, li);
  placeRow(li, m.seq);
  refreshReplies(m.seq);
  placeReceipts(); // a member's avatar may now belong under this message
  // Our own message, confirmed by the room's stream (say after a resume): no longer pending.
  const mine = pending.get(m.client_msg_id);
  if (mine && m.user?.id === me.id) settle(m.client_msg_id);
  // A new author is a new member; before the list is first read, every author is "new".
  if (m.user?.id && membersReadAt && !memberIds.has(m.user.id)) refreshMembersSoon();
  return true;
}

/** Puts a new row at its seq's place in the timeline. */
function placeRow(li, seq) {
  let after = ui.messages.lastElementChild;
  while (after && Number(after.dataset.seq) > seq) after = after.previousElementSibling;
  if (after) after.after(li); else ui.messages.prepend(li);
  regroup(li);
  regroup(li.nextElementSibling);
}

/**
 * Draws a message again after a change. A menu open on it closes. An edit in progress on it
 * stays, with what was typed (someone's reaction must not wipe it), unless the message was
 * deleted.
 */
function rerender(seq) {
  const old = shown.get(seq);
  const m = tl.get(seq);
  if (!old || !m) return;
  const focused = old.contains(document.activeElement) ? document.activeElement : null;
  const selection = focused instanceof HTMLTextAreaElement ? [focused.selectionStart, focused.selectionEnd] : null;
  if (menu && old.contains(menu.node)) closeMenu({ focus: false });
  const form = editing === seq ? old.querySelector('.edit-form') : null;
  if (editing === seq && m.deleted) editing = null;
  const li = messageEl(m);
  if (form && !m.deleted) placeEditor(li, form);
  old.replaceWith(li);
  shown.set(seq, li);
  attachSeen(seq);
  regroup(li);
  regroup(li.nextElementSibling);
  refreshReplies(seq);
  if (!focused) return;
  if (focused === old) { // the message a search opened the room at: it keeps the focus
    li.focus({ preventScroll: true });
  } else if (li.contains(focused)) { // moving the form took its focus
    focused.focus({ preventScroll: true });
    if (selection) focused.setSelectionRange(...selection);
  } else if (form?.contains(focused)) {
    ui.text.focus(); // the edit ended with the deletion, as a cancelled one does
  } else {
    (li.querySelector('.msg-menu-button') ?? li.querySelector('a, button'))?.focus();
  }
}

/** Replies quote their original: when it arrives or changes, their previews follow. */
function refreshReplies(seq) {
  for (const quote of ui.messages.querySelectorAll(`.msg-reply[data-reply-to="${seq}"]`)) quote.replaceWith(replyEl(seq));
}

/** A change to a message, from the ordered stream. */
function applyChange(f) {
  const seq = tl.apply(f);
  if (seq !== null) rerender(seq);
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
  const continued = !!prev && !li.classList.contains('first-unread') && li.dataset.author !== '' && prev.dataset.author === li.dataset.author
    && gap >= 0 && gap < GROUP_MS && new Date(li.dataset.at).toDateString() === new Date(prev.dataset.at).toDateString();
  li.classList.toggle('continued', continued);
  // Days are separated by a line with the date.
  const day = new Date(li.dataset.at);
  const newDay = !Number.isNaN(day.getTime()) && (!prev || day.toDateString() !== new Date(prev.dataset.at).toDateString());
  li.classList.toggle('new-day', newDay);
  if (newDay) li.dataset.day = day.toLocaleDateString([], { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' });
  else delete li.dataset.day;
}

/** Events from the ordered stream (`joined.history` and live frames) move the resume point. */
function streamEvent(f) {
  if (f.room !== room || !EVENT_TYPES.has(f.type)) return;
  const stick = nearBottom();
  const news = f.type === 'message' && !f.deleted && !shown.has(f.seq) && f.user?.id !== me.id;
  if (f.type === 'message') { addMessage(f); typing.stopped(f.user?.id); } else if (f.type === 'room_event') addRoomEvent(f); else applyChange(f);
  if (view.resume === null || f.seq > view.resume) view.resume = f.seq;
  // The message being replied to is gone: the next send must not reply to it (it would be refused).
  if (replyTo !== null && tl.get(replyTo)?.deleted) {
    setReply(null);
    flash(ui.hint, 'The message you were replying to was deleted.');
  }
  if (stick) toBottom();
  else if (news && shown.has(f.seq)) { unseen += 1; showJump(); }
  noteSeen();
}

function clearView() {
  shown.clear();
  seenRows.clear(); // their nodes went with the rows
  tl.clear();
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
  // The first join waits for the panel's unread count, which the join itself resets.
  if (nameProblem || view.gone || !unreadAtOpen.read) return;
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
    changes.clear(); // their seqs named messages that are gone
    conn.send({ type: 'leave', room });
    sendJoin();
    return;
  }
  const fresh = !resumed || f.has_more; // too much missed to show without a hole: start afresh
  if (fresh) clearView();
  // Joining moved our marker to what `joined` shows (§2 `join`): only newer messages are news.
  reading.sent = f.last_seq;
  reading.seen = 0;
  tellRead(room, f.last_seq); // this browser's other tabs stop counting it
  view.joined = true;
  ui.messages.setAttribute('aria-busy', 'true');
  for (const item of f.history ?? []) streamEvent(item);
  locateUnread();
  ui.messages.removeAttribute('aria-busy');
  if (fresh) {
    view.oldest = f.history?.length ? f.history[0].seq : f.last_seq + 1;
    view.hasMore = f.has_more && view.oldest > 1;
    updateEarlier();
    toBottom();
  }
  // A room entered from a link was not yours yet when the sidebar was read: it is now.
  sidebar.include(room);
  // Before the page says it is joined: whoever waits for that sees the room's receipts too.
  markers.joined(f.reads);
  placeReceipts();
  banner('');
  syncComposer(); // enabled again, unless you are muted
  document.body.dataset.roomState = 'joined';
  for (const entry of pending.values()) if (entry.status === 'sending') transmit(entry);
  // Unanswered changes go again with their client_msg_id: one that did commit is only acked again.
  for (const [id, { frame }] of changes) pacer.push(id, frame);
  presence.joined(f.presence);
  renderPresence();
  refreshMembers();
  loadDetails(); // what changed while away (a role, a mute) is in it
  if (target !== null) { // after the newest page is on screen: reveal reads back from it
    const seq = target;
    target = null;
    reveal(seq, { found: true });
  }
}

function onJoinError(f) {
  if (f.code === 'already_joined') return;
  // A private room you may not see answers as a room that does not exist: nothing to retry.
  if (f.code === 'not_found') { refuse(NO_ACCESS, 'no-access'); return; }
  if (f.code === 'banned') { refuse('You are banned from this room.', 'banned'); return; }
  if (RETRY_JOIN.has(f.code)) {
    banner(`Could not open ${ui.title.textContent}: ${f.message} Retrying…`, 'error');
    setTimeout(() => { if (!view.joined) sendJoin(); }, 1000 + backoffDelay(view.joinAttempt++));
    return;
  }
  banner(f.message, 'error');
  ui.send.disabled = true;
}

// ---------- older history ----------
/** The page being read, if any: another caller waits for it rather than giving up. */
let olderPage = null;

/** Reads the page before the oldest message shown; resolves to false when it could not. */
function loadEarlier() {
  if (!olderPage && view.hasMore && view.oldest !== null) olderPage = readEarlier().finally(() => { olderPage = null; });
  return olderPage ?? Promise.resolve(true);
}

async function readEarlier() {
  ui.earlier.disabled = true;
  const before = view.oldest;
  tl.hold(before); // changes to the page's messages that arrive while it is read
  try {
    const page = await api('GET', `/rooms/${enc(room)}/messages?before_seq=${before}&limit=${PAGE}`);
    if (view.oldest !== before) return true; // a fresh join replaced the view: the page no longer borders it
    const height = ui.log.scrollHeight;
    const top = ui.log.scrollTop;
    for (const m of page.messages) addMessage(m);
    // A page holds messages only (changes are folded into them): a short page is the start.
    if (page.messages.length) view.oldest = page.messages[0].seq;
    view.hasMore = page.messages.length === PAGE && view.oldest > 1;
    locateUnread();
    ui.log.scrollTop = top + (ui.log.scrollHeight - height); // keep what was on screen in place
    updateEarlier();
    return true;
  } catch (e) {
    banner(`Could not load earlier messages: ${e.message}`, 'error');
    return false;
  } finally {
    tl.release();
    ui.earlier.disabled = false;
  }
}

// ---------- sending ----------
function pendingEl(entry) {
  const li = el('li.msg.own', { dataset: { state: entry.status === 'failed' ? 'failed' : 'pending', clientMsgId: entry.id } });
  const state = entry.status === 'failed'
    ? el('p.msg-error', { role: 'alert' }, `Not sent: ${entry.error}`)
    : el('p.msg-pending', {}, entry.status === 'uploading' ? 'Uploading image…' : 'Sending…');
  const body = el('div.msg-body', {}, el('p.msg-meta', {}, authorEl(me)));
  if (entry.text) body.append(el('div.msg-text', { dir: 'auto' }, ...formatted(entry.text)));
  // A send restored after a reload has no local file any more, but its upload is on the server.
  const image = entry.previewUrl ?? (entry.attachmentId ? `/api/v1/uploads/${entry.attachmentId}` : null);
  if (image) body.append(el('span.msg-image', {}, el('img', { src: image, alt: 'Your image' })));
  body.append(state);
  if (entry.status === 'failed') {
    body.append(el('div.msg-actions', {},
      entry.retry === false ? null : el('button.subtle', { type: 'button', onclick: () => retry(entry) }, 'Retry'),
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

/**
 * The send failed. `retry: false` when sending it again cannot help (an image the server
 * will never take, a room one was removed from): the bubble then offers Discard only.
 */
function fail(entry, message, { retry = true } = {}) {
  entry.status = 'failed';
  entry.error = message;
  entry.retry = retry;
  keep(entry);
  renderPending(entry);
}

/**
 * Whether an upload that failed could pass if tried again: after a lost network, a server
 * error or a 429, yes; an answer about the file itself (413 too large, 415 not an image,
 * or another 4xx) would only come again.
 */
const uploadMayPass = (e) => !(e instanceof ApiError) || e.status === 0 || e.status === 429 || e.status >= 500;

/** Websocket refusals of a send that the same send would get again (docs/protocol.md §6). */
const FINAL_REFUSALS = new Set(['invalid_text', 'invalid_argument', 'not_found', 'message_deleted', 'forbidden', 'banned']);

/**
 * Keeps a send in the outbox until its ack. An image not uploaded yet cannot be kept (the
 * file is only in this page); once uploaded, its upload's id stands for it.
 */
function keep(entry) {
  if (!entry.file || entry.attachmentId) outbox.save(entry);
}

/**
 * The sends a reload, a crash or a closed tab left without an ack: shown again as they
 * were, and those still sending go with the next `joined`, each with its own client_msg_id,
 * so the server stores each once, however many times it went. One that was stored after
 * all is settled by the history `joined` brings, before anything is sent again.
 */
function restoreOutbox() {
  for (const kept of outbox.read()) {
    if (pending.has(kept.id)) continue;
    const entry = {
      id: kept.id, text: kept.text, file: null, previewUrl: null, attachmentId: kept.attachmentId,
      status: kept.status, error: kept.error, retry: kept.retry !== false, li: null, replyTo: kept.replyTo, at: kept.at,
    };
    pending.set(entry.id, entry);
    renderPending(entry);
  }
}

/** Sends (at the pacer's pace) when the room is joined; otherwise with the next `joined`. */
function transmit(entry) {
  if (!view.joined) return;
  const frame = { type: 'send', room, client_msg_id: entry.id, text: entry.text };
  if (entry.attachmentId) frame.attachment_id = entry.attachmentId;
  if (entry.replyTo) frame.reply_to = entry.replyTo;
  pacer.push(entry.id, frame);
}

async function dispatch(entry) {
  if (entry.file && !entry.attachmentId) {
    entry.status = 'uploading';
    renderPending(entry);
    try {
      const uploaded = await upload(entry.file);
      entry.attachmentId = uploaded.id;
      entry.attachmentSize = { width: uploaded.width, height: uploaded.height }; // its space, once shown
    } catch (e) {
      fail(entry, e.message, { retry: uploadMayPass(e) });
      return;
    }
  }
  entry.status = 'sending';
  keep(entry);
  renderPending(entry);
  transmit(entry);
}

/** A retry reuses the same client_msg_id, so a send that did commit is not stored twice. */
function retry(entry) {
  if (view.gone || entry.retry === false) return;
  entry.error = null;
  dispatch(entry);
}

function discard(entry) {
  pacer.drop(entry.id);
  outbox.drop(entry.id);
  entry.li?.remove();
  if (entry.previewUrl) URL.revokeObjectURL(entry.previewUrl);
  pending.delete(entry.id);
}

/** The send is committed: the pending bubble goes, the message takes its seq's place. */
function settle(id) {
  const entry = pending.get(id);
  if (!entry) return;
  pending.delete(id);
  pacer.drop(id);
  outbox.drop(id);
  entry.li?.remove();
  if (entry.previewUrl) URL.revokeObjectURL(entry.previewUrl);
}

function onAck(f) {
  if (f.room === room) pacer.answered(f.client_msg_id);
  if (changes.delete(f.client_msg_id)) return; // the change itself comes in the stream
  const entry = pending.get(f.client_msg_id);
  if (!entry || f.room !== room) return;
  const stick = nearBottom();
  settle(f.client_msg_id);
  // The ack is not part of the ordered stream: show the message, but do not resume from it.
  addMessage({
    type: 'message', room, seq: f.seq, id: f.id, user: { id: me.id, name: me.name }, text: entry.text,
    sent_at: f.sent_at, client_msg_id: f.client_msg_id, kind: entry.attachmentId ? 'image' : 'text',
    reply_to: entry.replyTo ?? undefined,
    attachment: entry.attachmentId
      ? { id: entry.attachmentId, url: `/api/v1/uploads/${entry.attachmentId}`, ...entry.attachmentSize }
      : undefined,
  });
  if (stick) toBottom();
  noteSeen();
}

function onError(f) {
  const ours = f.ref !== undefined && (changes.has(f.ref) || pending.has(f.ref));
  // Too fast for the gateway, which stored nothing: the pacer sends it again after a while,
  // with the same client_msg_id, and it shows as sending until then.
  if (ours && f.code === 'rate_limited') { pacer.answered(f.ref, { refused: true }); return; }
  if (ours) pacer.answered(f.ref);
  const change = f.ref !== undefined ? changes.get(f.ref) : null;
  if (change) {
    changes.delete(f.ref);
    banner(`Could not ${change.what}: ${f.message || f.code}`, 'error');
    return;
  }
  const entry = f.ref !== undefined ? pending.get(f.ref) : null;
  if (entry) {
    fail(entry, f.message || f.code, { retry: !FINAL_REFUSALS.has(f.code) }); // failed: no longer sent again on reconnect
    if (f.code === 'muted') mutedRefused();
    if (f.code === 'banned') removed('banned');
    // Its original is gone (deleted, or never was): the bar must not offer it again.
    const gone = f.code === 'message_deleted' || f.code === 'not_found';
    if (gone && entry.replyTo != null && entry.replyTo === replyTo) setReply(null);
    return;
  }
  if (f.ref === room || f.ref === rawName) { onJoinError(f); return; }
  banner(f.message || f.code, 'error');
}

/** Whether the hint line says why the composer's text cannot be sent (a send found it). */
let composerProblem = false;

/** Shows why the text cannot be sent, in the hint line the field names, or the hint again. */
function showComposerProblem(problem) {
  composerProblem = !!problem;
  if (ui.hint.textContent !== (problem ?? HINT)) flash(ui.hint, problem ?? HINT, { error: composerProblem, ms: 0 });
  if (problem) ui.text.setAttribute('aria-invalid', 'true'); else ui.text.removeAttribute('aria-invalid');
}

/**
 * After a refused send, the error follows the text as it is edited: it goes as soon as the
 * text could be sent (a letter typed, an image attached), and is counted anew while not.
 */
function recheckComposer() {
  if (composerProblem) showComposerProblem(textError(ui.text.value, { caption: !!attached }));
}

function submit() {
  const text = ui.text.value;
  const problem = textError(text, { caption: !!attached });
  showComposerProblem(problem);
  if (problem || view.gone || nameProblem) return;
  if (mutedNow()) { syncComposer(); return; } // the notice says until when
  const entry = {
    id: newId(), text: attached && text.trim() === '' ? '' : text, file: attached?.file ?? null,
    previewUrl: attached?.url ?? null, attachmentId: null, status: 'sending', error: null, li: null,
    replyTo, at: Date.now(),
  };
  pending.set(entry.id, entry);
  attached = null;
  typingSentAt = 0; // what they type next is news again
  renderAttachment();
  setReply(null);
  ui.text.value = '';
  draft.save('');
  autosize();
  dispatch(entry);
  toBottom();
}

// ---------- changes: edit, delete, react, reply ----------
/** The seq of the message being edited in place, if any. */
let editing = null;
const QUICK_EMOJI = ['👍', '❤️', '😂', '🎉', '😮', '😢', '🙏', '🔥', '👀', '✅', '🚀', '💯'];
const isAdmin = me.role === 'admin';

/**
 * Sends a change of the message at `seq`; its result comes back as an event in the stream.
 * It is kept until acked or refused, and sent again after a reconnect, as sends are.
 */
function sendChange(type, seq, fields = {}) {
  const frame = { type, room, seq, client_msg_id: newId(), ...fields };
  const what = { edit: 'edit the message', delete: 'delete the message', react: 'react', unreact: 'take back the reaction' }[type];
  changes.set(frame.client_msg_id, { frame, what });
  if (view.joined) pacer.push(frame.client_msg_id, frame);
  else banner('Not connected: the change will be sent when the connection is back.', 'info');
}

let menu = null;
function closeMenu({ focus = true } = {}) {
  if (!menu) return;
  const { node, opener } = menu;
  menu = null;
  node.remove();
  opener?.setAttribute('aria-expanded', 'false');
  if (focus && opener?.isConnected) opener.focus();
}

/** The actions menu of one message: react, reply, and for its author edit and delete. */
function openMenu(seq, opener) {
  closeMenu({ focus: false });
  const m = tl.get(seq);
  if (!m || m.deleted) return;
  const own = m.user?.id === me.id;
  const item = (label, onclick, cls = '') => el(`button.menu-item${cls}`, { type: 'button', role: 'menuitem', onclick }, label);
  const node = el('div.msg-menu', { role: 'menu', 'aria-label': 'Message actions' },
    el('div.emoji-picker', { role: 'group', 'aria-label': 'React' }, QUICK_EMOJI.map((emoji) => {
      const mine = m.reactions?.some((r) => r.emoji === emoji && r.users.some((u) => u.id === me.id));
      // A menu item may not be pressed (aria-pressed is for buttons, axe's aria-allowed-attr):
      // its name says what choosing it does, and a class draws one's own reactions.
      return el(`button.menu-item.emoji${mine ? '.mine' : ''}`, {
        type: 'button', role: 'menuitem', 'aria-label': mine ? `Take back your ${emoji}` : `React with ${emoji}`,
        onclick: () => { closeMenu(); sendChange(mine ? 'unreact' : 'react', seq, { emoji }); },
      }, emoji);
    })),
    item('Reply', () => { closeMenu({ focus: false }); setReply(seq); }),
    // The author's profile, for the keyboard: the name in the message is no Tab stop (authorEl).
    profileHref(m.user) ? el('a.menu-item', { href: profileHref(m.user), role: 'menuitem' }, own ? 'Your profile' : `Profile of ${m.user.name}`) : null,
    own ? item('Edit', () => { closeMenu({ focus: false }); startEdit(seq); }) : null,
    own || isAdmin ? item('Delete…', () => confirmDelete(seq, node), '.danger') : null);
  menuKeys(node, closeMenu);
  opener.after(node);
  opener.setAttribute('aria-expanded', 'true');
  menu = { node, opener };
  node.querySelector('[role="menuitem"]')?.focus();
}

/** A menu's keys: arrows move between its items, Escape closes it, Tab leaves it. */
function menuKeys(node, close) {
  node.addEventListener('keydown', (e) => {
    const items = [...node.querySelectorAll('[role="menuitem"]')];
    const at = items.indexOf(document.activeElement);
    if (e.key === 'Escape') { e.preventDefault(); close(); }
    else if (e.key === 'ArrowDown' || e.key === 'ArrowRight') { e.preventDefault(); items[(at + 1) % items.length]?.focus(); }
    else if (e.key === 'ArrowUp' || e.key === 'ArrowLeft') { e.preventDefault(); items[(at - 1 + items.length) % items.length]?.focus(); }
    else if (e.key === 'Tab') close({ focus: false });
  });
}

document.addEventListener('pointerdown', (e) => {
  if (menu && !menu.node.contains(e.target) && e.target !== menu.opener) closeMenu({ focus: false });
  if (memberMenu && !memberMenu.node.contains(e.target) && !memberMenu.opener.contains(e.target)) closeMemberMenu({ focus: false });
});

/** Deleting asks once more, in place. */
function confirmDelete(seq, node) {
  const m = tl.get(seq);
  // Someone else's message: an administrator's deletion, through the audited admin API.
  const remove = m?.user?.id === me.id ? () => sendChange('delete', seq)
    : () => api('DELETE', `/admin/messages/${enc(String(m.id))}`).catch((e) => banner(`Could not delete: ${e.message}`, 'error'));
  const yes = el('button.danger', { type: 'button', role: 'menuitem', onclick: () => { closeMenu(); remove(); } }, 'Delete');
  fill(node, el('p.menu-question', { id: 'confirm-delete' }, 'Delete this message for everyone?'), yes,
    el('button.subtle', { type: 'button', role: 'menuitem', onclick: () => closeMenu() }, 'Cancel'));
  node.setAttribute('aria-labelledby', 'confirm-delete');
  yes.focus();
}

/** Edits a message in place: Enter saves, Escape cancels. */
function startEdit(seq) {
  const m = tl.get(seq);
  if (!m || m.deleted || !shown.has(seq) || m.user?.id !== me.id) return;
  const open = editing === seq ? shown.get(seq).querySelector('.edit-text') : null;
  if (open) { open.focus(); return; } // already being edited: keep what was typed
  if (editing !== null) { const previous = editing; editing = null; rerender(previous); }
  const li = shown.get(seq);
  editing = seq;
  const input = el('textarea.edit-text', { rows: 2, 'aria-label': 'Edit the message', 'aria-describedby': 'edit-hint', value: m.text });
  const hint = el('p.hint', { id: 'edit-hint', 'aria-live': 'polite' });
  const saveButton = el('button.primary', { type: 'submit' }, 'Save');
  // The server refuses an empty edit, an image's caption included (protocol §7): never offer one.
  const check = () => {
    const empty = input.value.trim() === '';
    const says = empty ? 'An edit cannot be empty: Escape to cancel, or delete the message instead.' : 'Enter to save · Escape to cancel';
    saveButton.disabled = empty;
    if (hint.textContent !== says) flash(hint, says, { error: empty, ms: 0 }); // not announced again on every key
  };
  const save = () => {
    if (saveButton.disabled) return; // empty: the hint says why
    const text = input.value;
    const problem = textError(text);
    if (problem) { flash(hint, problem, { error: true, ms: 0 }); return; }
    if (text !== m.text) sendChange('edit', seq, { text });
    cancel();
  };
  const cancel = () => { editing = null; rerender(seq); ui.text.focus(); };
  const form = el('form.edit-form', { onsubmit: (e) => { e.preventDefault(); save(); } }, input, hint,
    el('div.msg-actions', {}, saveButton,
      el('button.subtle', { type: 'button', onclick: cancel }, 'Cancel')));
  input.addEventListener('input', check);
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); save(); }
    if (e.key === 'Escape') { e.preventDefault(); cancel(); }
  });
  check();
  placeEditor(li, form);
  input.focus();
  input.setSelectionRange(input.value.length, input.value.length);
}

/** The edit form takes the text's place; a caption-less image has none, so it goes last. */
function placeEditor(li, form) {
  const text = li.querySelector('.msg-text');
  if (text) text.replaceWith(form); else li.querySelector('.msg-body').append(form);
}

/** The bar above the composer that says what the next message replies to. */
const replyBar = el('div.reply-bar', { hidden: true, role: 'status' });
ui.composer.prepend(replyBar);
function setReply(seq) {
  replyTo = seq;
  replyBar.hidden = seq === null;
  if (seq === null) { replyBar.replaceChildren(); return; }
  const original = tl.get(seq);
  fill(replyBar, el('span', {}, 'Replying to ', el('bdi', {}, original?.user?.name ?? 'a message'), ': ',
    el('span.muted', {}, preview(original, 60))),
  el('button.subtle', { type: 'button', 'aria-label': 'Cancel the reply', onclick: () => { setReply(null); ui.text.focus(); } }, '×'));
  ui.text.focus();
}

/**
 * Scrolls to a message, loading older history until it is there. A reply's original is
 * outlined for a moment; a search result (`found`) is marked as the current message and
 * takes the focus, so a screen reader reads it.
 */
async function reveal(seq, { found = false } = {}) {
  // Pages read on the way are not news to announce, one message at a time.
  if (!shown.has(seq)) ui.messages.setAttribute('aria-busy', 'true');
  try {
    while (!shown.has(seq) && view.hasMore && view.oldest > seq) {
      const before = view.oldest;
      if (!await loadEarlier()) return; // could not read it: its banner says so
      if (view.oldest === before) break;
    }
  } finally {
    ui.messages.removeAttribute('aria-busy');
  }
  const li = shown.get(seq);
  if (!li) { banner('That message is no longer in the room.', 'info'); return; }
  li.scrollIntoView({ block: 'center' });
  if (found) { markFound(seq, li); return; }
  li.classList.add('highlight');
  setTimeout(() => li.classList.remove('highlight'), 2000);
  (li.querySelector('.msg-menu-button') ?? li.querySelector('a'))?.focus({ preventScroll: true });
}

/** The message a search opened the room at: a fading highlight, `aria-current`, and the focus. */
function markFound(seq, li) {
  const previous = shown.get(foundSeq);
  if (previous && previous !== li) {
    previous.classList.remove('found');
    previous.removeAttribute('aria-current');
    previous.removeAttribute('tabindex');
  }
  foundSeq = seq;
  li.setAttribute('aria-current', 'true');
  li.tabIndex = -1;
  li.classList.remove('found');
  void li.offsetWidth; // the fade starts over when the same message is found again
  li.classList.add('found');
  li.focus({ preventScroll: true });
}

/** Opens the room at a message: now when joined, else once the room has joined. */
function openAt(seq) {
  history.replaceState(history.state, '', roomHref(room, seq));
  if (view.joined) reveal(seq, { found: true }); else target = seq;
}

// ---------- mentions: @ completes the room's members ----------
const completion = el('ul.completion', { id: 'mention-list', role: 'listbox', 'aria-label': 'People to mention', hidden: true });
ui.composer.append(completion);
ui.text.setAttribute('aria-autocomplete', 'list');
ui.text.setAttribute('aria-controls', 'mention-list');
const members = new Map(); // user id → name, from the member list
let choices = [];
let chosen = 0;

/** The `@name` being typed just before the caret, if any. */
function mentionAtCaret() {
  const before = ui.text.value.slice(0, ui.text.selectionStart);
  const found = /(^|[^\w.@-])@(\w{0,32})$/.exec(before);
  return found ? { start: before.length - found[2].length - 1, prefix: found[2].toLowerCase() } : null;
}

/** Whether an `@name` is being typed: each new one reads the member list again. */
let mentioning = false;

function updateCompletion() {
  const at = mentionAtCaret();
  if (at && !mentioning) refreshMembers().then(() => { if (mentionAtCaret()) updateCompletion(); });
  mentioning = !!at;
  choices = at ? [...members.entries()]
    .filter(([id, name]) => id.startsWith('u:') && id !== me.id && name.toLowerCase().startsWith(at.prefix))
    .slice(0, 8) : [];
  chosen = 0;
  renderCompletion();
}

function renderCompletion() {
  // No aria-expanded: a text field (the textbox role) does not take it; the list it
  // controls and its active option say what is offered.
  completion.hidden = choices.length === 0;
  fill(completion, choices.map(([id, name], i) => el('li.completion-item', {
    id: `mention-${i}`, role: 'option', 'aria-selected': String(i === chosen),
    onpointerdown: (e) => { e.preventDefault(); chosen = i; acceptCompletion(); },
  }, '@', el('bdi', {}, name))));
  if (completion.hidden) ui.text.removeAttribute('aria-activedescendant');
  else ui.text.setAttribute('aria-activedescendant', `mention-${chosen}`);
}

function acceptCompletion() {
  const at = mentionAtCaret();
  const pick = choices[chosen];
  if (!at || !pick) return;
  const value = ui.text.value;
  const insert = `@${pick[1]} `;
  ui.text.value = value.slice(0, at.start) + insert + value.slice(ui.text.selectionStart);
  const caret = at.start + insert.length;
  ui.text.setSelectionRange(caret, caret);
  choices = [];
  renderCompletion();
  autosize();
  draft.save(ui.text.value);
}

ui.text.addEventListener('input', updateCompletion);
ui.text.addEventListener('blur', () => { choices = []; renderCompletion(); });
ui.text.addEventListener('keydown', (e) => {
  if (!completion.hidden) {
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      chosen = (chosen + (e.key === 'ArrowDown' ? 1 : choices.length - 1)) % choices.length;
      renderCompletion();
      return;
    }
    if (e.key === 'Enter' || e.key === 'Tab') { e.preventDefault(); e.stopImmediatePropagation(); acceptCompletion(); return; }
    if (e.key === 'Escape') { e.preventDefault(); choices = []; renderCompletion(); return; }
  }
  // ↑ in an empty composer edits your last message; Escape drops a reply.
  if (e.key === 'ArrowUp' && ui.text.value === '' && !e.shiftKey) {
    const last = tl.lastOwn(me.id);
    if (last) { e.preventDefault(); startEdit(last.seq); }
  }
  if (e.key === 'Escape' && replyTo !== null) { e.preventDefault(); setReply(null); }
});

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
  recheckComposer(); // an image may be sent with no text, and without it the text must say something
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
/** Who is online in the room (docs/protocol.md, `presence`); unknown while not joined. */
const presence = new RoomPresence();
/** The member list's rows by user id ({ li, name, flag, online }), kept across reloads so focus stays put. */
let memberRows = new Map();
/** The "and N more" line under a list longer than one page. */
let moreRow = null;
let memberTotal = null;
/** When the member list was last read (ms), so a big room's recounts do not re-read it each time. */
let membersReadAt = 0;
const byName = new Intl.Collator(undefined, { sensitivity: 'base', numeric: true }).compare;

function memberEl(m) {
  const user = { id: m.user_id, name: m.name };
  const href = profileHref(user);
  // The dot says it to the eye (a filled dot or a ring); the hidden words say it to a screen reader.
  const name = [el('bdi', {}, m.name), el('span.visually-hidden.member-status')];
  return el('li.member', { dataset: { userId: m.user_id } },
    el('span.member-avatar', {}, liveAvatar(user, 'sm'), el('span.presence-dot', { 'aria-hidden': 'true' })),
    href ? el('a.member-name', { href }, ...name) : el('span.member-name', {}, ...name),
    guestBadge(user),
    m.user_id === me.id ? el('span.muted', {}, ' (you)') : null,
    el('span.member-tags'),
    // Shown to owners and moderators, for the people they may act on (decorate()).
    el('button.member-menu-button.subtle', {
      type: 'button', hidden: true, 'aria-haspopup': 'menu', 'aria-expanded': 'false', 'aria-label': `Actions for ${m.name}`,
      onclick: (e) => toggleMemberMenu(m.user_id, e.currentTarget),
    }, el('span', { 'aria-hidden': 'true' }, '⋯')));
}

async function refreshMembers(attempt = 0) {
  try {
    const epoch = roomEpoch;
    const page = await api('GET', `/rooms/${enc(room)}/members?limit=200`);
    if (epoch !== roomEpoch && attempt < 3) { await refreshMembers(attempt + 1); return; } // roles or mutes may be stale
    memberIds.clear();
    members.clear();
    const rows = new Map();
    for (const m of page.members) {
      memberIds.add(m.user_id);
      members.set(m.user_id, m.name);
      memberAvatars.set(m.user_id, m.avatar_url ?? null);
      const known = memberRows.get(m.user_id);
      const row = known?.name === m.name ? known : { li: memberEl(m), name: m.name, online: undefined };
      row.flag = typeof m.online === 'boolean' ? m.online : null; // absent: presence is switched off
      row.member = { user_id: m.user_id, name: m.name, role: m.role ?? null, muted_until: m.muted_until ?? null };
      rows.set(m.user_id, row);
    }
    if (memberMenu && rows.get(memberMenu.row.member.user_id) !== memberMenu.row) closeMemberMenu({ focus: false }); // they left
    memberRows = rows;
    membersRead();
    decorateMembers();
    membersReadAt = Date.now();
    memberTotal = page.count;
    ui.memberCount.textContent = `(${page.count})`;
    ui.membersTitle.textContent = `Members (${page.count})`;
    moreRow = page.count > page.members.length ? el('li.muted', {}, `and ${page.count - page.members.length} more`) : null;
    renderPresence();
    placeReceipts(); // names known now, or changed
  } catch { /* the list is a convenience; the next join or new author refreshes it */ }
}

/** One member's dot and words: online, offline, or none when that is not known. */
function showOnline(row, online) {
  if (row.online === online) return;
  row.online = online;
  const known = online !== null;
  if (known) row.li.dataset.online = String(online); else delete row.li.dataset.online;
  row.li.querySelector('.member-status').textContent = known ? (online ? ', online' : ', offline') : '';
  const avatar = row.li.querySelector('.member-avatar');
  if (known) avatar.title = online ? 'Online' : 'Offline'; else avatar.removeAttribute('title');
}

/**
 * The member list's dots and order, and the header's count, from what presence and the
 * member list say now. Online members come first, then by name. While presence is unknown
 * (the socket is away) the dots and the count go, and the order stays as it was rather
 * than jumping on every reconnect.
 */
function renderPresence() {
  const known = presence.known;
  for (const [id, row] of memberRows) showOnline(row, known ? presence.online(id, row.flag) : null);
  const rows = [...memberRows.values()];
  if (presence.mode === 'unknown') {
    const place = new Map([...ui.memberList.children].map((li, i) => [li, i]));
    const at = (row) => place.get(row.li) ?? Infinity; // new rows go last
    rows.sort((x, y) => (at(x) - at(y)) || byName(x.name, y.name));
  } else {
    rows.sort((x, y) => (Number(y.online === true) - Number(x.online === true)) || byName(x.name, y.name));
  }
  placeRows(ui.memberList, [...rows.map((row) => row.li), moreRow].filter(Boolean));

  // Not a live region: a count that changes with every arrival would talk over the room.
  const count = presence.count;
  const text = count === null ? '' : onlineText(count);
  ui.onlineCount.hidden = count === null;
  if (ui.onlineCount.textContent !== text) ui.onlineCount.textContent = text;
  if (count === null || memberTotal === null) ui.onlineCount.removeAttribute('title');
  else ui.onlineCount.title = `${count} of ${memberTotal} members online now`;
}

/**
 * Puts `nodes` in `list` in this order, moving only those out of place, and drops the rest.
 * A moved node loses the focus, so it goes back to where it was.
 */
function placeRows(list, nodes) {
  const focused = list.contains(document.activeElement) ? document.activeElement : null;
  let at = list.firstChild;
  for (const node of nodes) {
    if (node === at) at = at.nextSibling;
    else list.insertBefore(node, at);
  }
  while (at) { const next = at.nextSibling; at.remove(); at = next; }
  if (focused?.isConnected && document.activeElement !== focused) focused.focus({ preventScroll: true });
}

/** How long a big room's member list (its `online` flags) is kept before a recount reads it again. */
const FLAGS_MS = 30_000;
let flagsTimer = 0;
const listVisible = () => ui.members.getClientRects().length > 0 && document.visibilityState === 'visible';

function onPresence(f) {
  const changed = presence.heard(f);
  if (!changed) return;
  renderPresence();
  // Someone online entered the room: they are a new member.
  if (changed === 'person' && f.online && membersReadAt && !memberIds.has(f.user_id)) refreshMembersSoon();
  // A big room says only how many: who they are comes from the member list's flags, read
  // again now and then while the list is in view, spread out so the room's pages do not all
  // ask at once.
  if (changed === 'count' && listVisible() && !flagsTimer && Date.now() - membersReadAt > FLAGS_MS) {
    flagsTimer = setTimeout(() => { flagsTimer = 0; refreshMembers(); }, 500 + Math.random() * 5000);
  }
}

// ---------- the member list as a drawer (narrow screens) ----------
/** Whether the member list is a drawer over the timeline, opened by its toggle (a narrow screen). */
const drawerMode = () => ui.membersToggle.getClientRects().length > 0;
const drawerOpen = () => ui.membersToggle.getAttribute('aria-expanded') === 'true';

/**
 * The drawer starts below the room's header, whatever its height (a topic, actions on two
 * lines), so that it never covers its own toggle.
 */
function placeDrawer() {
  ui.members.style.setProperty('--drawer-top', `${Math.round(ui.chatHead.getBoundingClientRect().bottom)}px`);
}
new ResizeObserver(() => { if (drawerOpen()) placeDrawer(); }).observe(ui.chatHead);
window.addEventListener('resize', () => { if (drawerOpen()) placeDrawer(); });

/**
 * Opens or closes the member list. Opened as a drawer, it takes the focus, since it covers
 * what had it; closed, the focus goes back to the toggle when it was in the drawer (it
 * would otherwise fall to the page's start), unless a tap elsewhere is taking it there.
 */
function setDrawer(open, { refocus = true } = {}) {
  ui.membersToggle.setAttribute('aria-expanded', String(open));
  document.body.classList.toggle('members-open', open);
  if (open) {
    placeDrawer();
    refreshMembers();
    if (drawerMode()) ui.members.focus({ preventScroll: true });
    return;
  }
  closeMemberMenu({ focus: false });
  if (!refocus) return;
  if (ui.members.contains(document.activeElement) || document.activeElement === document.body) ui.membersToggle.focus();
}

ui.membersToggle.addEventListener('click', () => setDrawer(!drawerOpen()));
// Escape closes the drawer, unless something inside took it first (a menu, a dialog).
document.addEventListener('keydown', (e) => {
  if (e.key !== 'Escape' || e.defaultPrevented || !drawerOpen() || !drawerMode()) return;
  if (document.querySelector('dialog[open]')) return;
  e.preventDefault();
  setDrawer(false);
});
// So does a tap beside it, which goes on to do what it does there.
document.addEventListener('pointerdown', (e) => {
  if (!drawerOpen() || !drawerMode() || ui.members.contains(e.target) || ui.membersToggle.contains(e.target)) return;
  setDrawer(false, { refocus: false });
});

// ---------- read position and receipts ----------
/** The server takes a `read` at most this often from a page (docs/protocol.md §2 `read`). */
const READ_EVERY_MS = 2000;

/** The newest seq shown: the newest message, or a change after it (an edit, a reaction). */
const newestSeq = () => Math.max(view.resume ?? 0, Number(ui.messages.lastElementChild?.dataset.seq ?? 0));

/**
 * Called whenever the newest messages may have come into view (a new one, a scroll, the
 * page shown again): if they are in front of the person, the server hears how far they
 * have read, which their unread counts and the room's "seen by" follow. A hidden page or
 * a log scrolled up to older messages has not seen them.
 */
function noteSeen() {
  if (!view.joined || document.visibilityState !== 'visible') return;
  const seq = newestSeq();
  if (seq <= Math.max(reading.sent, reading.seen) || !nearBottom()) return;
  reading.seen = seq;
  sendRead();
}

/**
 * At most one `read` per READ_EVERY_MS: a busy room would otherwise cost a frame (and a
 * database write) per message. What is seen in between goes in a trailing frame, so the
 * last position is never lost; it was seen when noted, so it goes even if the page has
 * been hidden since.
 */
function sendRead() {
  if (reading.timer || reading.seen <= reading.sent) return;
  const wait = reading.at + READ_EVERY_MS - Date.now();
  if (wait > 0) {
    reading.timer = setTimeout(() => { reading.timer = 0; sendRead(); }, wait);
    return;
  }
  if (!view.joined) return; // the next `joined` marks read what it shows, which covers this
  reading.sent = reading.seen;
  reading.at = Date.now();
  conn.send({ type: 'read', room, seq: reading.sent });
  tellRead(room, reading.sent);
}

document.addEventListener('visibilitychange', noteSeen);
ui.log.addEventListener('scroll', noteSeen, { passive: true });

function onRead(f) {
  // Our own marker, moved by another of our pages: no need to say it again from this one.
  if (f.user_id === me.id && Number.isSafeInteger(f.seq)) reading.sent = Math.max(reading.sent, f.seq);
  if (!markers.heard(f) || f.user_id === me.id) return;
  if (membersReadAt && !memberIds.has(f.user_id)) refreshMembersSoon(); // a new member: the list has their name
  const stick = nearBottom(); // a row under the newest message must not push it out of view
  placeReceipts();
  if (stick) toBottom();
}

/**
 * Puts each other member's avatar under the last message shown that they have read: the
 * largest shown seq at or below their marker (a marker can name a change, or a message
 * not loaded). Called on every marker, message or name that could move one; only the
 * rows whose people changed are drawn again.
 */
function placeReceipts() {
  const rows = ui.messages.children; // one per message, in seq order
  const seqAt = (i) => Number(rows[i].dataset.seq);
  const under = new Map(); // seq → the user ids whose avatar goes there
  for (const [id, seq] of markers.entries()) {
    if (id === me.id) continue; // you know what you have read
    const i = lastAtOrBelow(rows.length, seqAt, seq);
    if (i < 0) continue; // read only what is older than what is loaded
    const at = seqAt(i);
    if (under.has(at)) under.get(at).push(id); else under.set(at, [id]);
  }
  for (const seq of [...seenRows.keys()]) if (!under.has(seq)) drawSeen(seq, []);
  for (const [seq, ids] of under) drawSeen(seq, ids);
}

/** The "seen by" row under one message: drawn only when its people or their names changed. */
function drawSeen(seq, ids) {
  const row = seenRows.get(seq);
  // The member list names them; until it is read (or for someone not in it yet), the id.
  const people = ids.map((id) => ({ id, name: members.get(id) ?? id })).sort((x, y) => byName(x.name, y.name));
  const key = people.map((p) => `${p.id} ${p.name}`).join('\n');
  if ((row?.key ?? '') === key) return;
  if (!people.length) {
    row.node.remove();
    shown.get(seq)?.classList.remove('seen');
    seenRows.delete(seq);
    return;
  }
  const label = seenText(people.map((p) => p.name));
  const rest = people.slice(SEEN_FACES);
  // The label says it all to a screen reader; the faces are for the eye, each named on hover.
  const faces = el('span.seen-faces', { 'aria-hidden': 'true' },
    people.slice(0, SEEN_FACES).map((p) => el('span.seen-face', { title: p.name },
      members.has(p.id) ? liveAvatar(p, 'xs') : avatarEl(p, null, 'xs'))), // an id is no username to look up
    rest.length ? el('span.seen-more', { title: rest.map((p) => p.name).join(', ') }, `+${rest.length}`) : null);
  if (row) {
    // Changed in place: the timeline is a live region, and a row added to it is announced.
    row.node.setAttribute('aria-label', label);
    row.node.title = label;
    row.node.replaceChildren(faces);
    row.key = key;
    return;
  }
  // `aria-live="off"`: a receipt is read with its message, not announced each time one moves.
  const node = el('div.seen-by', { role: 'group', 'aria-label': label, title: label, 'aria-live': 'off' }, faces);
  seenRows.set(seq, { node, key });
  attachSeen(seq);
}

/** Puts a message's "seen by" row into its rendered row (again, after a re-render). */
function attachSeen(seq) {
  const row = seenRows.get(seq);
  const li = shown.get(seq);
  if (!row || !li) return;
  li.append(row.node);
  li.classList.add('seen');
}

// ---------- the room: its name and topic, your role, moderation ----------
const RANK = { member: 1, moderator: 2, owner: 3 };
const rankOf = (role) => RANK[role] ?? 0;
/** Whether you may invite, mute, kick and ban here (a direct message has no such roles). */
const moderating = () => !view.gone && !info.dmWith && rankOf(info.role) >= RANK.moderator;
/** Whether you may act on this member: an account, of a lower role than yours, not you. */
const canModerate = (m) => moderating() && m.user_id !== me.id && m.user_id.startsWith('u:') && rankOf(m.role) < rankOf(info.role);
const mutedNow = () => !!info.mutedUntil && Date.parse(info.mutedUntil) > Date.now();
const activeMute = (until) => (until && Date.parse(until) > Date.now() ? until : null);

/** The header: a private room's title or the other person of a direct message, never `p.…`/`dm.…`. */
function renderHeader() {
  if (nameProblem) return;
  const placeholder = room.startsWith('dm.') ? 'Direct message' : 'Private room';
  const label = info.loaded || !isReservedRoom(room) ? roomLabel({ name: room, title: info.title, dm_with: info.dmWith }) : placeholder;
  ui.title.textContent = label;
  ui.title.title = label; // cut short when the header is too narrow for it (style.css)
  setPageTitle(`${label} · Super Channels`); // after the unread count of the other rooms
  const kind = info.dmWith ? 'dm' : info.visibility === 'private' ? 'private' : 'public';
  ui.kind.hidden = !info.loaded || kind === 'public';
  ui.kind.dataset.kind = kind;
  // On a phone the word is left to screen readers (style.css), so the title has the room.
  const word = el('span.room-kind-word', {}, kind === 'private' ? 'Private' : 'Direct message');
  if (kind === 'private') fill(ui.kind, lockIcon(''), word); else fill(ui.kind, word);
  ui.topic.textContent = info.topic;
  ui.topic.title = info.topic;
  ui.topic.hidden = !info.topic;
  ui.description.textContent = info.description;
  ui.about.hidden = !info.description;
}

let detailsTimer = 0;
/** Reads the room's details; a private room you may not see answers 404, as an unknown one does. */
async function loadDetails(attempt = 0) {
  clearTimeout(detailsTimer);
  if (nameProblem || view.gone) return;
  try {
    const epoch = roomEpoch;
    const d = await api('GET', `/rooms/${enc(room)}`);
    if (view.gone) return;
    if (epoch !== roomEpoch && attempt < 3) { loadDetails(attempt + 1); return; }
    Object.assign(info, {
      loaded: true, visibility: d.visibility ?? 'public', title: d.title ?? null, dmWith: d.dm_with ?? null,
      topic: d.topic ?? '', description: d.description ?? '', role: d.your_role ?? null, mutedUntil: d.muted_until ?? null,
    });
    roomChanged();
  } catch (e) {
    if (view.gone) return;
    if (e.code === 'banned') refuse('You are banned from this room.', 'banned');
    else if (e.status === 404 && isReservedRoom(room)) refuse(NO_ACCESS, 'no-access');
    // Otherwise the header keeps what it had; the next `joined` reads it again.
  }
}
const loadDetailsSoon = () => { clearTimeout(detailsTimer); detailsTimer = setTimeout(() => loadDetails(), 300); };

function roomChanged() {
  renderHeader();
  renderRole();
  syncComposer();
}

/** What owners and moderators get: the invite and manage buttons, and the member actions. */
function renderRole() {
  const mod = moderating();
  ui.inviteOpen.hidden = !mod;
  ui.manageOpen.hidden = !mod;
  for (const form of manageDialog.querySelectorAll('.owner-only')) form.hidden = !(mod && info.role === 'owner');
  if (!mod) for (const dialog of [inviteDialog, manageDialog]) if (dialog.open) dialog.close();
  decorateMembers();
}

let mutesTimer = 0;
/**
 * The composer follows your mute: off until it ends, with the notice saying until when. A
 * room you were removed from, or may not see, takes no messages at all.
 */
function syncComposer() {
  if (nameProblem) return;
  const muted = !view.gone && mutedNow();
  const blocked = view.gone || muted;
  ui.text.disabled = ui.file.disabled = ui.send.disabled = blocked;
  ui.composer.classList.toggle('is-blocked', blocked);
  const says = muted ? `You are muted in this room until ${shortTime(info.mutedUntil)}.` : '';
  if (ui.notice.textContent !== says) ui.notice.textContent = says;
  scheduleMutes();
}

/** When the soonest mute shown ends (yours or a member's), the page says so without a reload. */
function scheduleMutes() {
  clearTimeout(mutesTimer);
  const now = Date.now();
  const ends = [info.mutedUntil, ...[...memberRows.values()].map((row) => row.member?.muted_until)]
    .map((t) => (t ? Date.parse(t) : NaN)).filter((t) => t > now);
  if (!ends.length) return;
  mutesTimer = setTimeout(() => { syncComposer(); decorateMembers(); }, Math.min(Math.min(...ends) - now + 250, 2 ** 31 - 1));
}

/** A send was refused because you are muted: say so now, and learn until when. */
function mutedRefused() {
  if (!mutedNow()) ui.notice.textContent = 'You are muted in this room.';
  loadDetails();
}

/** Stops the page for good: nothing to show or send here, and no joining again. */
function stopRoom() {
  view.gone = true;
  view.joined = false;
  pacer.reset();
  typing.clear();
  presence.clear();
  renderPresence();
  markers.clear();
  placeReceipts();
  changes.clear();
  closeMenu({ focus: false });
  closeMemberMenu({ focus: false });
  closeDialogs();
}

/** The room cannot be opened: it does not exist, you may not see it, or you are banned. */
function refuse(text, state) {
  if (view.gone) return;
  stopRoom();
  clearView();
  for (const entry of [...pending.values()]) discard(entry);
  ui.send.disabled = true;
  ui.composer.hidden = ui.leave.hidden = ui.membersToggle.hidden = ui.members.hidden = true;
  renderRole();
  banner(text, 'error');
  document.body.dataset.roomState = state;
}

/** A `removed` frame: you were kicked or banned. What was here stays to read; nothing more comes. */
function removed(reason) {
  if (view.gone) return;
  stopRoom();
  info.role = null;
  info.mutedUntil = null;
  for (const entry of [...pending.values()]) {
    if (entry.status !== 'failed') fail(entry, 'You are no longer in this room.', { retry: false });
  }
  renderRole();
  syncComposer();
  ui.leave.hidden = true;
  banner(reason === 'banned' ? 'You were banned from this room.' : 'You were removed from this room.', 'error');
  document.body.dataset.roomState = 'removed';
  sidebar.reload().catch(() => {});
}

// ---------- room events: system lines in the timeline ----------
const nameEl = (user) => el('bdi', {}, String(user?.name ?? 'someone'));

/** "10 minutes", "1 hour", "2 days": how long a mute from `at` to `until` lasts. */
function muteSpan(at, until) {
  const minutes = Math.round((Date.parse(until) - Date.parse(at)) / 60000);
  if (!(minutes > 0)) return '';
  const unit = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
  if (minutes % 1440 === 0) return unit(minutes / 1440, 'day');
  if (minutes % 60 === 0) return unit(minutes / 60, 'hour');
  return unit(minutes, 'minute');
}

/** What a room event says, in words (names as text, never markup). Read before it is applied. */
function eventWords(f) {
  const who = nameEl(f.user);
  const whom = nameEl(f.target);
  switch (f.action) {
    case 'invited': return [who, ' invited ', whom];
    case 'kicked': return [whom, ' was removed by ', who];
    case 'banned': return [who, ' banned ', whom];
    case 'unbanned': return [who, ' lifted the ban on ', whom];
    case 'muted': {
      const span = f.until ? muteSpan(f.at, f.until) : '';
      return [who, ' muted ', whom, span ? ` for ${span}` : ''];
    }
    case 'unmuted': return [who, ' unmuted ', whom];
    case 'role_changed': return f.role === 'moderator' ? [who, ' made ', whom, ' a moderator'] : [who, ' removed ', whom, ' as a moderator'];
    case 'owner_changed': return [who, ' made ', whom, ' the owner'];
    case 'visibility_changed': return [who, f.visibility === 'private' ? ' made the room private' : ' made the room public'];
    case 'updated': {
      const topic = f.topic !== undefined && f.topic !== info.topic;
      const description = f.description !== undefined && f.description !== info.description;
      if (topic && !description) return f.topic ? [who, ' set the topic to “', f.topic, '”'] : [who, ' cleared the topic'];
      if (description && !topic) return [who, f.description ? ' changed the description' : ' cleared the description'];
      return [who, ' changed the topic and description'];
    }
    default: return [who, ' changed the room'];
  }
}

/** A room event's effect on what the page knows: the header, your role and mute, the member list. */
function applyRoomEvent(f) {
  roomEpoch += 1;
  const target = f.target?.id;
  const member = (id, patch) => {
    const row = memberRows.get(id);
    if (row?.member) Object.assign(row.member, patch);
  };
  switch (f.action) {
    case 'muted':
      if (target === me.id) info.mutedUntil = f.until ?? null;
      member(target, { muted_until: f.until ?? null });
      break;
    case 'unmuted':
      if (target === me.id) info.mutedUntil = null;
      member(target, { muted_until: null });
      break;
    case 'role_changed':
      if (target === me.id) info.role = f.role;
      member(target, { role: f.role });
      break;
    case 'owner_changed': // the old owner (who acted) becomes a moderator
      if (target === me.id) info.role = 'owner';
      else if (f.user?.id === me.id) info.role = 'moderator';
      member(f.user?.id, { role: 'moderator' });
      member(target, { role: 'owner' });
      break;
    case 'updated':
      if (f.topic !== undefined) info.topic = f.topic ?? '';
      if (f.description !== undefined) info.description = f.description ?? '';
      break;
    case 'visibility_changed':
      if (f.visibility) info.visibility = f.visibility;
      break;
    default:
      break;
  }
  roomChanged();
  if (['invited', 'kicked', 'banned', 'unbanned'].includes(f.action) || (target && !memberRows.has(target))) refreshMembersSoon();
  // About you: the details are the record (say a mute that came while this page was away).
  if (view.joined && (target === me.id || f.action === 'owner_changed')) loadDetailsSoon();
}

/** A room event, once, at its seq's place: a small system line. */
function addRoomEvent(f) {
  if (f.room !== room || !Number.isSafeInteger(f.seq) || shown.has(f.seq)) return false;
  const words = eventWords(f);
  applyRoomEvent(f);
  const li = el('li.sys-event', { dataset: { seq: String(f.seq), at: String(f.at ?? ''), author: '', action: String(f.action) } },
    el('p.sys-text', {}, el('span', {}, ...words), ' ', timeEl(f.at)));
  shown.set(f.seq, li);
  placeRow(li, f.seq);
  placeReceipts();
  return true;
}

/**
 * An owner's or moderator's action. Its answer is the room event it committed, shown at
 * once (it also comes in the stream, where its seq makes it count once). Returns the event,
 * or null after saying in `status` why it was refused.
 */
async function moderate(body, status = ui.membersStatus) {
  try {
    const frame = await api('POST', `/rooms/${enc(room)}/actions`, body);
    if (frame && Number.isSafeInteger(frame.seq)) {
      const stick = nearBottom();
      addRoomEvent({ ...frame, type: 'room_event', room });
      if (stick) toBottom();
    }
    return frame ?? {};
  } catch (e) {
    flash(status, e.message, { error: true });
    return null;
  }
}

// ---------- member roles, mutes and actions ----------
/** A member row's role and mute tags, and its actions button for those who may act on them. */
function decorate(row) {
  const m = row.member;
  if (!m) return;
  const until = activeMute(m.muted_until);
  const key = `${m.role ?? ''}|${until ?? ''}`;
  const tags = row.li.querySelector('.member-tags');
  if (tags.dataset.key !== key) {
    tags.dataset.key = key;
    fill(tags,
      m.role === 'owner' || m.role === 'moderator' ? el('span.tag.role-tag', { dataset: { role: m.role } }, m.role) : null,
      until ? el('span.tag.muted-tag', { title: `Muted until ${longDateTime(until)}` },
        'muted', el('span.visually-hidden', {}, ` until ${shortTime(until)}`)) : null);
  }
  if (m.role) row.li.dataset.role = m.role; else delete row.li.dataset.role;
  if (until) row.li.dataset.muted = 'true'; else delete row.li.dataset.muted;
  const allowed = canModerate(m);
  row.li.querySelector('.member-menu-button').hidden = !allowed;
  if (!allowed && memberMenu?.row === row) closeMemberMenu({ focus: false });
}

function decorateMembers() {
  for (const row of memberRows.values()) decorate(row);
  scheduleMutes();
}

const MUTES = [[10, '10 minutes'], [60, '1 hour'], [1440, '1 day']];
/** The open member menu, if any: { node, opener, row }. */
let memberMenu = null;

function closeMemberMenu({ focus = true } = {}) {
  if (!memberMenu) return;
  const { node, opener } = memberMenu;
  memberMenu = null;
  node.remove();
  opener.setAttribute('aria-expanded', 'false');
  if (focus && opener.isConnected && !opener.hidden) opener.focus();
}

function toggleMemberMenu(userId, opener) {
  if (memberMenu?.opener === opener) { closeMemberMenu(); return; }
  openMemberMenu(userId, opener);
}

/** What an owner or moderator may do to one member: mute, unmute, kick, ban; the owner also roles and ownership. */
function openMemberMenu(userId, opener) {
  closeMemberMenu({ focus: false });
  closeMenu({ focus: false });
  const row = memberRows.get(userId);
  if (!row?.member || !canModerate(row.member)) return;
  const m = row.member;
  const owner = info.role === 'owner';
  const item = (label, onclick, cls = '') => el(`button.menu-item${cls}`, { type: 'button', role: 'menuitem', onclick }, label);
  const act = (body) => () => { closeMemberMenu(); moderate({ ...body, username: m.name }); };
  const ask = (question, yes, body) => () => confirmMember(node, question, yes, () => moderate({ ...body, username: m.name }));
  const node = el('div.member-menu', { role: 'menu', 'aria-label': `Actions for ${m.name}` },
    MUTES.map(([minutes, label]) => item(`Mute for ${label}`, act({ action: 'mute', minutes }))),
    activeMute(m.muted_until) ? item('Unmute', act({ action: 'unmute' })) : null,
    owner ? item(m.role === 'moderator' ? 'Remove moderator' : 'Make moderator',
      act({ action: 'set_role', role: m.role === 'moderator' ? 'member' : 'moderator' })) : null,
    item('Kick…', ask(`Remove ${m.name} from the room?`, 'Kick', { action: 'kick' }), '.danger'),
    item('Ban…', ask(`Ban ${m.name}? They are removed and cannot come back until unbanned.`, 'Ban', { action: 'ban' }), '.danger'),
    owner ? item('Transfer ownership…', ask(`Make ${m.name} the owner? You will be a moderator.`, 'Transfer', { action: 'transfer' })) : null);
  menuKeys(node, closeMemberMenu);
  row.li.append(node);
  opener.setAttribute('aria-expanded', 'true');
  memberMenu = { node, opener, row };
  node.querySelector('[role="menuitem"]')?.focus();
}

/** The grave actions ask once more, in place. */
function confirmMember(node, question, yes, run) {
  const button = el('button.danger', { type: 'button', role: 'menuitem', onclick: () => { closeMemberMenu(); run(); } }, yes);
  fill(node, el('p.menu-question', { id: 'confirm-member' }, question), button,
    el('button.subtle', { type: 'button', role: 'menuitem', onclick: () => closeMemberMenu() }, 'Cancel'));
  node.removeAttribute('aria-label');
  node.setAttribute('aria-labelledby', 'confirm-member');
  button.focus();
}

// ---------- inviting and managing: dialogs for owners and moderators ----------
const inviteDialog = $('#invite-dialog');
const manageDialog = $('#manage-dialog');
const leaveDialog = $('#leave-dialog');

/** A modal dialog: the page behind is inert while it is open; closing it gives the focus back. */
function openDialog(dialog, opener, first) {
  if (dialog.open) return;
  closeMenu({ focus: false });
  closeMemberMenu({ focus: false });
  for (const status of dialog.querySelectorAll('.dialog-status')) status.textContent = '';
  dialog.showModal();
  first?.focus();
  dialog.addEventListener('close', () => {
    if (opener.isConnected && !opener.hidden) opener.focus(); else if (!ui.text.disabled) ui.text.focus();
  }, { once: true });
}

function closeDialogs() {
  for (const dialog of [inviteDialog, manageDialog, leaveDialog]) if (dialog.open) dialog.close();
}

for (const dialog of [inviteDialog, manageDialog]) {
  dialog.querySelector('[data-close]').addEventListener('click', () => dialog.close());
}

/** Runs a dialog's action with its button disabled. */
async function busy(button, run) {
  button.disabled = true;
  try { return await run(); } finally { button.disabled = false; }
}

ui.inviteOpen.addEventListener('click', () => openDialog(inviteDialog, ui.inviteOpen, $('#invite-username')));

$('#invite-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const field = $('#invite-username');
  const result = $('#invite-result');
  const username = field.value.trim();
  if (!username) { flash(result, 'Enter the username of the person to invite.', { error: true }); field.focus(); return; }
  const done = await busy(e.submitter ?? e.target.querySelector('button'), () => moderate({ action: 'invite', username }, result));
  if (done) { field.value = ''; flash(result, `Invited ${username}.`); }
  field.focus();
});

$('#invite-link-create').addEventListener('click', (e) => busy(e.currentTarget, async () => {
  const field = $('#invite-link');
  const status = $('#invite-link-status');
  let link;
  try {
    link = await api('POST', `/rooms/${enc(room)}/invite-links`, { expires_in_minutes: Number($('#invite-expiry').value) });
  } catch (err) {
    flash(status, `Could not make a link: ${err.message}`, { error: true, ms: 0 });
    return;
  }
  field.value = location.origin + link.url;
  $('#invite-link-field').hidden = false;
  const lasts = `It works until ${longDateTime(link.expires_at)}${link.max_uses ? `, ${link.max_uses} times at most` : ''}.`;
  let copied = false;
  try {
    await navigator.clipboard.writeText(field.value);
    copied = true;
  } catch { /* no clipboard here (or no permission): the field holds the link */ }
  flash(status, copied ? `Link copied. ${lasts}` : `Copy the link from the field above. ${lasts}`, { ms: 0 });
  if (!copied) { field.focus(); field.select(); }
}));

ui.manageOpen.addEventListener('click', () => {
  $('#topic-field').value = info.topic;
  $('#description-field').value = info.description;
  $(info.visibility === 'private' ? '#visibility-private' : '#visibility-public').checked = true;
  openDialog(manageDialog, ui.manageOpen, info.role === 'owner' ? $('#topic-field') : $('#ban-username'));
});

$('#about-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const status = $('#about-status');
  const body = { action: 'update' };
  const topic = $('#topic-field').value.trim();
  const description = $('#description-field').value.trim();
  if (topic !== info.topic) body.topic = topic;
  if (description !== info.description) body.description = description;
  if (Object.keys(body).length === 1) { flash(status, 'Nothing to save.'); return; }
  if (await busy(e.submitter ?? e.target.querySelector('button'), () => moderate(body, status))) flash(status, 'Saved.');
});

$('#visibility-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const status = $('#visibility-status');
  const visibility = $('#visibility-private').checked ? 'private' : 'public';
  if (visibility === info.visibility) { flash(status, `The room is ${visibility} already.`); return; }
  const done = await busy(e.submitter ?? e.target.querySelector('button'), () => moderate({ action: 'set_visibility', visibility }, status));
  if (done) flash(status, visibility === 'private' ? 'The room is private now: only people who are invited can enter.' : 'The room is public now: anyone can find and enter it.');
});

// Enter in the field does nothing: banning is never the default.
$('#ban-form').addEventListener('submit', (e) => e.preventDefault());
for (const [id, action] of [['#ban-button', 'ban'], ['#unban-button', 'unban']]) {
  $(id).addEventListener('click', (e) => busy(e.currentTarget, async () => {
    const field = $('#ban-username');
    const status = $('#ban-status');
    const username = field.value.trim();
    if (!username) { flash(status, 'Enter a username.', { error: true }); field.focus(); return; }
    if (await moderate({ action, username }, status)) {
      field.value = '';
      flash(status, action === 'ban' ? `Banned ${username}.` : `${username} is no longer banned.`);
    }
  }));
}

// ---------- leaving ----------
/**
 * Leaving asks first, in a modal dialog (Escape or Cancel keeps you in), since it cannot
 * always be undone: a private room takes you back only with a new invitation, and an owner
 * who leaves leaves the room without one. The focus starts on Cancel, the harmless choice.
 */
ui.leave.addEventListener('click', () => {
  const label = roomLabel({ name: room, title: info.title, dm_with: info.dmWith });
  fill($('#leave-title'), 'Leave ', el('bdi', {}, label), '?');
  const back = info.dmWith ? 'You can open this conversation again at any time.'
    : info.visibility === 'private' ? 'It is private: you can come back only if someone invites you again.'
      : 'You can come back at any time: it is a public room.';
  const owner = info.role === 'owner' && !info.dmWith
    ? ' You own it: leaving without handing it over (“Transfer ownership…” in a member’s actions) leaves it with no owner.' : '';
  $('#leave-about').textContent = back + owner;
  openDialog(leaveDialog, ui.leave, $('#leave-cancel'));
});

$('#leave-cancel').addEventListener('click', () => leaveDialog.close());

$('#leave-confirm').addEventListener('click', (e) => busy(e.currentTarget, async () => {
  try {
    await api('DELETE', `/rooms/${enc(room)}/membership`);
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) { // 404: not a member any more, which is what was asked
      flash($('#leave-status'), `Could not leave: ${err.message}`, { error: true, ms: 0 });
      return;
    }
  }
  conn.send({ type: 'leave', room });
  location.assign('/');
}));

// ---------- wiring ----------
function autosize() {
  ui.text.style.height = 'auto';
  ui.text.style.height = `${Math.min(ui.text.scrollHeight, 200)}px`;
}
ui.text.addEventListener('input', autosize);
ui.text.addEventListener('input', recheckComposer);
// The draft is kept as it is typed: a tab that crashes or is closed loses nothing either.
ui.text.addEventListener('input', () => draft.save(ui.text.value));

ui.jump.addEventListener('click', () => {
  const focused = document.activeElement === ui.jump;
  toBottom(); // the button goes: the focus moves on to the timeline rather than to the page's start
  if (focused) ui.log.focus({ preventScroll: true });
});
ui.log.addEventListener('scroll', () => { if (nearBottom()) seenAll(); }, { passive: true });

// ---------- typing ----------
const typing = new TypingLine(ui.typing, me.id);
let typingSentAt = 0;
/** While the person types, the room hears so every few seconds (never stored). */
ui.text.addEventListener('input', () => {
  if (!view.joined || ui.text.value.trim() === '' || Date.now() - typingSentAt < SEND_EVERY_MS) return;
  typingSentAt = Date.now();
  conn.send({ type: 'typing', room });
});
ui.text.addEventListener('keydown', (e) => { // Enter sends, Shift+Enter is a new line
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
});
ui.composer.addEventListener('submit', (e) => { e.preventDefault(); submit(); });
ui.earlier.addEventListener('click', loadEarlier);
new IntersectionObserver((entries) => {
  if (entries.some((e) => e.isIntersecting)) loadEarlier();
}, { root: ui.log, rootMargin: '200px 0px 0px 0px' }).observe(ui.earlier);

const sidebar = new RoomList($('#room-list'), { current: room, compact: true, onError: (message) => banner(message, 'error') });
// The panel says how much of the room was unread before this page's join marks it read:
// the first join waits for it (a while at most), see unreadAtOpen.
Promise.race([
  sidebar.reload().then((panel) => panel.rooms.find((r) => r.name === room) ?? null),
  new Promise((resolve) => { setTimeout(resolve, PANEL_WAIT_MS, null); }),
]).catch(() => null).then((mine) => {
  unreadAtOpen.read = true;
  unreadAtOpen.count = mine?.unread ?? 0;
  unreadAtOpen.upTo = mine?.last_seq ?? 0;
  if (conn.isOpen && !view.joined) sendJoin();
});

conn.addEventListener('open', () => { view.joined = false; sendJoin(); });
conn.addEventListener('close', () => {
  view.joined = false;
  pacer.reset(); // what it carried goes again with the next `joined`
  typing.clear();
  presence.clear(); // unknown until the next `joined`
  renderPresence();
  markers.clear(); // likewise
  placeReceipts();
  if (!view.gone) document.body.dataset.roomState = 'away';
});
conn.addEventListener('joined', (e) => onJoined(e.detail));
for (const type of EVENT_TYPES) {
  conn.addEventListener(type, (e) => { if (e.detail.room === room && view.joined) streamEvent(e.detail); });
}
conn.addEventListener('typing', (e) => { if (e.detail.room === room && view.joined) typing.heard(e.detail); });
conn.addEventListener('presence', (e) => { if (e.detail.room === room && view.joined) onPresence(e.detail); });
conn.addEventListener('read', (e) => { if (e.detail.room === room && view.joined) onRead(e.detail); });
conn.addEventListener('ack', (e) => onAck(e.detail));
conn.addEventListener('error', (e) => onError(e.detail));
conn.addEventListener('notify', (e) => {
  const f = e.detail;
  if (f.room === room) return;
  // A muted room keeps its badge, and nothing more; a repeated frame is no news.
  if (!sidebar.bump(f) || sidebar.isMuted(f.room) || f.user?.id === me.id) return;
  desktopNotify(f, sidebar.label(f.room));
  playSound(f.mention ? 'mention' : 'message', `${f.room}:${f.seq}`);
});
conn.addEventListener('removed', (e) => { if (e.detail.room === room) removed(e.detail.reason); });
conn.addEventListener('room_deleted', (e) => {
  if (e.detail.room !== room) return;
  view.gone = true;
  view.joined = false;
  conn.send({ type: 'leave', room });
  pacer.reset();
  clearView();
  for (const entry of [...pending.values()]) discard(entry);
  changes.clear();
  presence.clear();
  renderPresence();
  markers.clear();
  ui.send.disabled = true;
  ui.composer.hidden = ui.leave.hidden = true;
  renderRole(); // nothing left to manage
  banner('An administrator deleted this room.', 'error');
});

if (nameProblem) {
  ui.title.textContent = 'No such room';
  banner(`“${rawName}” is not a room name: ${nameProblem}`, 'error');
  ui.send.disabled = true;
  ui.composer.hidden = ui.leave.hidden = ui.membersToggle.hidden = ui.members.hidden = true;
} else {
  renderHeader();
  searchHere(room, openAt);
  ui.text.value = draft.read();
  autosize();
  restoreOutbox();
  ui.text.focus();
  // A public room is read once joined (joining makes a new one); a private room or a
  // direct message at once, for its title, or to learn that this person may not see it.
  if (isReservedRoom(room)) loadDetails();
  if (conn.isOpen) sendJoin();
}
