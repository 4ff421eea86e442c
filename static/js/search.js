// Message search (GET /search): a box in the top bar of every signed-in page, reached with
// Ctrl+K (⌘K on a Mac) from anywhere, the composer included. Its results open in a modal
// dialog, grouped by room and labelled as the panel labels rooms, each a link that opens
// the room at that message. Snippets arrive as segments and go in as text nodes, the words
// found inside <mark>: nothing a message holds can become markup.

import { api, enc } from './api.js';
import { el, timeEl, roomHref, guestBadge } from './dom.js';
import { roomNameEl } from './roomlist.js';
import { isReservedRoom } from './rules.js';

const PAGE = 20;
const MAC = /Mac|iPhone|iPad|iPod/.test(navigator.userAgentData?.platform ?? navigator.platform ?? '');

/** The dialog's parts, built once by `searchBox()`. */
let ui = null;
/** The room page's room, once it says so: "This room only" searches it, and its results open in place. */
let here = null;
/**
 * The search on screen: its query and parameters (for the next page), the cursor of the
 * next page, the room groups shown, and a generation that makes late answers to an older
 * search count for nothing.
 */
const current = { q: '', params: null, next: null, count: 0, groups: new Map(), generation: 0 };
/** Your rooms as the panel names them (room name → panel entry), read again each time the dialog opens. */
let labels = null;

/** The top bar's search form; also builds the results dialog and listens for the shortcut. */
export function searchBox() {
  const box = el('input.topsearch-input', {
    id: 'search-box', type: 'search', name: 'q', autocomplete: 'off', spellcheck: 'false', enterkeyhint: 'search',
    placeholder: 'Search messages', 'aria-keyshortcuts': 'Control+K Meta+K', title: `Search messages (${MAC ? '⌘K' : 'Ctrl+K'})`,
  });
  const form = el('form.topsearch', {
    role: 'search', 'aria-label': 'Messages', novalidate: true,
    onsubmit: (e) => { e.preventDefault(); open(box.value); },
  },
  el('label.visually-hidden', { for: 'search-box' }, 'Search messages'), box,
  // For the eye; a screen reader hears the shortcut from aria-keyshortcuts.
  el('span.topsearch-keys', { 'aria-hidden': 'true' }, el('kbd', {}, MAC ? '⌘' : 'Ctrl'), el('kbd', {}, 'K')));
  ui = buildDialog(box);
  document.body.append(ui.dialog);
  // Capturing, so the composer's own keys (its completion list) never see it first.
  window.addEventListener('keydown', onShortcut, true);
  return form;
}

/**
 * Called by the room page: its room can be searched alone, and a result in it is shown
 * without loading the page again (`open(seq)`).
 */
export function searchHere(room, openAt) {
  here = { room, open: openAt };
  if (ui) ui.hereRow.hidden = false;
}

function onShortcut(e) {
  if (!(e.ctrlKey || e.metaKey) || e.altKey || e.shiftKey || e.key?.toLowerCase() !== 'k' || e.isComposing) return;
  // Another dialog holds the page (inviting, managing): the box behind it cannot take the focus.
  if (document.querySelector('dialog[open]:not(#search-dialog)')) return;
  e.preventDefault(); // the browser's own Ctrl+K goes to its address bar
  const field = ui.dialog.open ? ui.field : ui.box;
  field.focus();
  field.select();
}

function buildDialog(box) {
  const field = el('input', {
    id: 'search-field', type: 'search', autocomplete: 'off', spellcheck: 'false', enterkeyhint: 'search',
    'aria-describedby': 'search-syntax',
  });
  const everywhere = el('input', { id: 'search-public', type: 'checkbox', onchange: rerun });
  const thisRoom = el('input', { id: 'search-here', type: 'checkbox', onchange: rerun });
  const hereRow = el('div.check', { hidden: !here }, thisRoom, el('label', { for: 'search-here' }, 'This room only'));
  const status = el('p.search-status', { id: 'search-status', role: 'status', 'aria-live': 'polite' });
  const results = el('div.search-results', { id: 'search-results' });
  const more = el('button.search-more', { type: 'button', hidden: true, onclick: () => loadMore() }, 'Load more results');
  const dialog = el('dialog.dialog.search-dialog', { id: 'search-dialog', 'aria-labelledby': 'search-title' },
    el('div.dialog-head', {},
      el('h2', { id: 'search-title' }, 'Search messages'),
      el('button.subtle', { type: 'button', 'aria-label': 'Close the search', onclick: () => close() }, '×')),
    el('form.search-form', { novalidate: true, onsubmit: (e) => { e.preventDefault(); run(field.value); } },
      el('label', { for: 'search-field' }, 'Search for'),
      el('div.field-row', {}, field, el('button.primary', { type: 'submit' }, 'Search')),
      el('p.hint', { id: 'search-syntax' }, 'Every word must match; ', el('code', {}, '"a phrase"'), ' matches as a whole; ',
        el('code', {}, '-word'), ' leaves out the messages with it.'),
      el('div.search-options', {},
        el('div.check', {}, everywhere, el('label', { for: 'search-public' }, 'Search public rooms too')),
        hereRow)),
    status, results, more);
  dialog.addEventListener('keydown', onDialogKey);
  // A click on the backdrop (outside the dialog's box) closes it, as Escape does.
  dialog.addEventListener('click', (e) => {
    if (e.target !== dialog) return;
    const r = dialog.getBoundingClientRect();
    if (e.clientX < r.left || e.clientX > r.right || e.clientY < r.top || e.clientY > r.bottom) close();
  });
  // Whatever closed it (Escape, ×, a click on a result), the top bar keeps the query.
  dialog.addEventListener('close', () => {
    box.value = field.value;
    if (dialog.dataset.restore !== 'no') box.focus();
    delete dialog.dataset.restore;
  });
  return { box, dialog, field, everywhere, thisRoom, hereRow, status, results, more };
}

/** Opens the dialog (if it is not open) and searches for `q`. */
function open(q) {
  ui.field.value = q;
  if (!ui.dialog.open) {
    labels = null; // rooms may have been joined or renamed since
    ui.dialog.showModal();
  }
  ui.field.focus();
  run(q);
}

/** Closes the dialog; the focus goes back to the box unless a result takes it. */
function close({ restore = true } = {}) {
  if (!ui.dialog.open) return;
  if (!restore) ui.dialog.dataset.restore = 'no';
  ui.dialog.close();
}

/** A change of where to look searches again for what the field holds. */
function rerun() {
  ui.everywhere.disabled = ui.thisRoom.checked; // one room is one room, public or not
  if (ui.field.value.trim() !== '' || current.params) run(ui.field.value);
}

/** The query's parameters, for where the options say to look. */
function paramsFor(q) {
  const params = new URLSearchParams({ q, limit: String(PAGE) });
  if (here && ui.thisRoom.checked) params.set('room', here.room);
  else if (ui.everywhere.checked) params.set('scope', 'public');
  return params;
}

/** Where a search looked, in words, for its summary. */
function scopeWords(params) {
  if (params.has('room')) return 'in this room';
  return params.get('scope') === 'public' ? 'in your rooms or public rooms' : 'in your rooms';
}

/** Reads one page of results and their rooms' names; null when a newer search replaced this one. */
async function readPage(params, generation) {
  const page = await api('GET', `/search?${params}`);
  const names = await roomsOf(page.results);
  return generation === current.generation ? { page, names } : null;
}

async function run(q) {
  const generation = ++current.generation;
  const params = paramsFor(q);
  Object.assign(current, { q, params, next: null, count: 0 });
  current.groups.clear();
  ui.results.replaceChildren();
  ui.more.hidden = true;
  say('Searching…');
  ui.results.setAttribute('aria-busy', 'true');
  try {
    const read = await readPage(params, generation);
    if (read) show(read.page, read.names);
  } catch (e) {
    if (generation === current.generation) say(sentence(e.message), { error: true });
  } finally {
    if (generation === current.generation) ui.results.removeAttribute('aria-busy');
  }
}

/** The next page, after the results shown; the focus goes to the first new one. */
async function loadMore() {
  if (current.next === null || ui.more.disabled) return;
  const generation = current.generation;
  const params = new URLSearchParams(current.params);
  params.set('before', String(current.next));
  ui.more.disabled = true;
  try {
    const read = await readPage(params, generation);
    if (!read) return;
    const first = show(read.page, read.names);
    const links = ui.results.querySelectorAll('a.search-hit');
    (first ?? (ui.more.hidden ? links[links.length - 1] : ui.more) ?? ui.field).focus();
  } catch (e) {
    if (generation === current.generation) say(sentence(e.message), { error: true });
  } finally {
    ui.more.disabled = false;
  }
}

/** Adds a page of results to their rooms' groups; returns the first new result's link. */
function show(page, names) {
  let first = null;
  for (const hit of page.results) {
    const link = hitEl(hit);
    first ??= link;
    groupOf(hit.message.room, names).append(el('li', {}, link));
  }
  current.count += page.results.length;
  current.next = page.next_before ?? null;
  ui.more.hidden = current.next === null;
  say(summary());
  return first;
}

function summary() {
  const { count, params } = current;
  if (count === 0) return `No messages match “${current.q.trim()}” ${scopeWords(params)}.`;
  const rooms = current.groups.size;
  const found = `${count} message${count === 1 ? '' : 's'} in ${rooms} room${rooms === 1 ? '' : 's'}`;
  return current.next === null ? `${found}.` : `${found} so far; more can be loaded.`;
}

/** A room's group of results: its name as a heading, then its results, newest first. */
function groupOf(name, names) {
  const known = current.groups.get(name);
  if (known) return known;
  const id = `search-room-${current.groups.size + 1}`;
  const list = el('ul.search-hits', { 'aria-labelledby': id });
  ui.results.append(el('div.search-group', { dataset: { room: name } },
    el('h3.search-room', { id }, roomNameEl(names.get(name) ?? { name })), list));
  current.groups.set(name, list);
  return list;
}

/** One result: who, when, and the snippet with the words found marked; a link to the message. */
function hitEl({ message: m, snippet }) {
  return el('a.search-hit', {
    href: roomHref(m.room, m.seq), dataset: { room: m.room, seq: String(m.seq) }, onclick: (e) => choose(e, m),
  },
  el('span.search-hit-meta', {},
    el('bdi.search-author', {}, String(m.user?.name ?? '')), guestBadge(m.user), ' ', timeEl(m.sent_at),
    m.edited_at ? el('span.msg-edited', {}, '(edited)') : null),
  el('span.search-snippet', { dir: 'auto' }, snippetNodes(snippet, m)));
}

/** The segments as text, the hits inside <mark>; never parsed as HTML. */
function snippetNodes(snippet, m) {
  if (!snippet?.length) return m.kind === 'image' ? 'An image' : '';
  return snippet.map((segment) => (segment.hit ? el('mark', {}, segment.text) : segment.text));
}

/**
 * A result in the room this page shows opens in place; any other follows its link (a new
 * tab, with a modifier key, as links do).
 */
function choose(e, m) {
  if (!here || m.room !== here.room || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  close({ restore: false });
  here.open(m.seq);
}

/**
 * Up and down move through the results (and Load more) and back to the field, Home and End
 * to the first and last result; Tab goes through them as links. Escape closes from anywhere
 * in the dialog, even a search field that holds text (whose own Escape would only empty it).
 */
function onDialogKey(e) {
  if (e.key === 'Escape' && !e.isComposing) { e.preventDefault(); close(); return; }
  if (!['ArrowDown', 'ArrowUp', 'Home', 'End'].includes(e.key) || e.altKey || e.ctrlKey || e.metaKey) return;
  const stops = [...ui.results.querySelectorAll('a.search-hit'), ...(ui.more.hidden ? [] : [ui.more])];
  if (document.activeElement === ui.field) {
    if (e.key === 'ArrowDown' && stops.length) { e.preventDefault(); stops[0].focus(); }
    return; // elsewhere in the field the keys move the caret
  }
  const at = stops.indexOf(document.activeElement);
  if (at === -1) return;
  e.preventDefault();
  const to = { ArrowDown: Math.min(at + 1, stops.length - 1), ArrowUp: at - 1, Home: 0, End: stops.length - 1 }[e.key];
  (to < 0 ? ui.field : stops[to]).focus();
}

function say(text, { error = false } = {}) {
  ui.status.textContent = text;
  ui.status.classList.toggle('is-error', error);
}

/** The server's messages are lowercase clauses; shown as a sentence. */
const sentence = (text) => {
  const s = String(text ?? '').trim();
  const capital = s.charAt(0).toUpperCase() + s.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
};

/**
 * How each room of the results is named: as the panel names your rooms, a private room you
 * are not a member of any more (made public) from its details, any other public room `#name`.
 */
async function roomsOf(results) {
  labels ??= api('GET', '/me/panel?limit=100')
    .then((panel) => new Map(panel.rooms.map((r) => [r.name, r])), () => new Map());
  const names = await labels;
  const missing = [...new Set(results.map((r) => r.message.room))].filter((n) => !names.has(n) && isReservedRoom(n));
  await Promise.all(missing.map(async (name) => {
    try {
      names.set(name, await api('GET', `/rooms/${enc(name)}`));
    } catch { // never its raw `p.…`/`dm.…` name
      names.set(name, { name, visibility: 'private', title: name.startsWith('dm.') ? 'Direct message' : 'Private room' });
    }
  }));
  return names;
}
