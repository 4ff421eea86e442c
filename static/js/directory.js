// The public room directory on the panel: every public room by name, filtered by a part of
// its name as the person types, a page at a time. Private rooms and direct messages are
// never listed (the server leaves them out).

import { api } from './api.js';
import { el, fill, relativeTime, roomHref, flash } from './dom.js';

const PAGE = 20;
/** Typing pauses this long before the list is read again. */
const TYPE_MS = 250;

export class Directory {
  /** The nodes of index.html's "Public rooms" card. */
  constructor({ form, input, list, empty, more, status }) {
    Object.assign(this, { form, input, list, empty, more, status });
    this.q = '';
    this.after = null;
    /** Only the newest request's answer is shown: an older one may come back after it. */
    this.ticket = 0;
    this.timer = 0;
    input.addEventListener('input', () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.search(input.value), TYPE_MS);
    });
    form.addEventListener('submit', (e) => { e.preventDefault(); clearTimeout(this.timer); this.search(input.value); });
    more.addEventListener('click', () => this.#read(false));
  }

  /** Reads the first page of the rooms whose names hold `q`. */
  search(q = '') {
    this.q = q.trim();
    this.after = null;
    return this.#read(true);
  }

  async #read(fresh) {
    const ticket = ++this.ticket;
    const params = new URLSearchParams({ limit: String(PAGE) });
    if (this.q) params.set('q', this.q);
    if (!fresh && this.after) params.set('after', this.after);
    this.more.disabled = true;
    try {
      const page = await api('GET', `/rooms?${params}`);
      if (ticket !== this.ticket) return;
      const rows = page.rooms.map((room) => row(room));
      const focusNext = !fresh && document.activeElement === this.more;
      if (fresh) fill(this.list, rows); else this.list.append(...rows);
      this.after = page.next_after ?? null;
      this.more.hidden = !this.after;
      const none = this.list.children.length === 0;
      this.empty.hidden = !none;
      this.empty.textContent = none ? (this.q ? `No public room’s name holds “${this.q}”.` : 'There are no public rooms yet.') : '';
      // The button went with the last page: the keyboard goes on from the first new room.
      if (focusNext && this.more.hidden) rows[0]?.querySelector('a')?.focus();
    } catch (e) {
      if (ticket === this.ticket) flash(this.status, `Could not read the public rooms: ${e.message}`, { error: true });
    } finally {
      if (ticket === this.ticket) this.more.disabled = false;
    }
  }
}

function row(room) {
  const members = Number(room.member_count ?? 0);
  const facts = [
    `${members.toLocaleString()} ${members === 1 ? 'member' : 'members'}`,
    room.last_activity ? `active ${relativeTime(room.last_activity)}` : 'no messages yet',
  ].join(' · ');
  return el('li.directory-row', { dataset: { room: room.name } },
    el('a', { href: roomHref(room.name) },
      el('span.room-name', {}, el('span.hash', { 'aria-hidden': 'true' }, '#'), room.name),
      room.topic ? el('span.room-topic', { dir: 'auto' }, room.topic) : null,
      el('span.room-activity', {}, facts)));
}
