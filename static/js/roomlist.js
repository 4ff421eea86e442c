// A person's rooms with unread badges, as the panel and the room page's sidebar show them.
// The panel API is the record; `notify` frames only bump the counts until it is read again.
// Private rooms show their title with a lock, direct messages the other person's name:
// their `p.…` / `dm.…` names mean nothing to people.

import { api } from './api.js';
import { el, fill, relativeTime, roomHref } from './dom.js';

/** A room's name as people read it: `#name`, a private room's title, `@name` of a direct message. */
export function roomLabel(room) {
  if (room?.dm_with) return `@${room.dm_with.name}`;
  if (room?.title) return room.title;
  return `#${room?.name ?? ''}`;
}

/** Which kind of room: `dm`, `private` or `public`. */
export const roomKind = (room) => (room?.dm_with ? 'dm' : room?.visibility === 'private' ? 'private' : 'public');

/** The lock that marks a private room; its text alternative says it to a screen reader. */
export const lockIcon = (alt = 'Private room:') => el('img.lock', { src: '/icons/lock.svg', alt, width: 14, height: 14 });

/**
 * A room's name for lists, marked by its kind. Lists cut a long name short on one line
 * (style.css), so its tooltip holds the whole of it.
 */
export function roomNameEl(room) {
  const whole = { title: roomLabel(room) };
  switch (roomKind(room)) {
    case 'dm':
      return el('span.room-name', whole, el('span.visually-hidden', {}, 'Direct message with '),
        el('span.hash', { 'aria-hidden': 'true' }, '@'), el('bdi', {}, room.dm_with.name));
    case 'private':
      return el('span.room-name', whole, lockIcon(), el('bdi', {}, room.title || room.name));
    default: // a private room made public keeps its title
      return room.title ? el('span.room-name', whole, el('bdi', {}, room.title))
        : el('span.room-name', whole, el('span.hash', { 'aria-hidden': 'true' }, '#'), room.name);
  }
}

export class RoomList {
  /** `current`: the room open on this page, whose unread count is not shown. */
  constructor(list, { current = null, compact = false, onChange = () => {} } = {}) {
    this.list = list;
    this.current = current;
    this.compact = compact;
    this.onChange = onChange;
    this.rooms = new Map();
    this.nextAfter = null;
    this.reloading = null;
    /** Counts the reads of the panel: only the answer to the latest one is shown. */
    this.reads = 0;
    /** The rooms include() read the panel again for, at most once each. */
    this.included = new Set();
  }

  /**
   * Reads the first page of the panel again; returns the panel. An answer that a later
   * read overtook is not shown: it may predate a room entered since.
   */
  async reload(limit = 100) {
    const read = ++this.reads;
    const panel = await api('GET', `/me/panel?limit=${limit}`);
    if (read !== this.reads) return panel;
    this.rooms = new Map(panel.rooms.map((r) => [r.name, r]));
    this.nextAfter = panel.next_after;
    this.render();
    return panel;
  }

  async more(limit = 100) {
    if (!this.nextAfter) return;
    const panel = await api('GET', `/me/panel?limit=${limit}&after=${encodeURIComponent(this.nextAfter)}`);
    for (const r of panel.rooms) this.rooms.set(r.name, r);
    this.nextAfter = panel.next_after;
    this.render();
  }

  /**
   * A `notify` frame: one more unread message in a room, and one more mention if it names
   * you. Unknown rooms mean the list is stale.
   */
  bump(frame) {
    const room = this.rooms.get(frame.room);
    if (!room) {
      this.reloading ??= this.reload().catch(() => {}).finally(() => { this.reloading = null; });
      return;
    }
    // Seqs only grow: a repeated `notify` (it can happen) counts once.
    if (frame.seq <= room.last_seq) return;
    room.last_seq = frame.seq;
    room.unread += 1;
    if (frame.mention) room.mentions = (room.mentions ?? 0) + 1;
    room.last_activity = new Date().toISOString();
    this.render();
  }

  /**
   * A room just entered, which the list may not have: one opened from a link joins it
   * after the panel was read. The panel is read again when it is missing, once per room,
   * so that a room past the panel's first page does not cost a read at every reconnect.
   */
  include(name) {
    if (this.rooms.has(name) || this.included.has(name)) return;
    this.included.add(name);
    this.reload().catch(() => {});
  }

  /** How a room of this list is named to people (a desktop notification, say). */
  label(name) {
    return roomLabel(this.rooms.get(name) ?? { name });
  }

  render() {
    const rows = [...this.rooms.values()].map((room) => this.#row(room));
    fill(this.list, rows);
    this.onChange(this);
  }

  #row(room) {
    const unread = room.name === this.current ? 0 : room.unread;
    const mentions = room.name === this.current ? 0 : (room.mentions ?? 0);
    const badge = el('span.badge', {
      'aria-label': `${unread} unread`, hidden: unread === 0, dataset: { count: String(unread) },
    }, unread > 99 ? '99+' : String(unread));
    const mentionBadge = el('span.mention-badge', {
      'aria-label': `${mentions} mentioning you`, hidden: mentions === 0, dataset: { count: String(mentions) },
    }, `@${mentions > 99 ? '99+' : mentions}`);
    const activity = this.compact ? null : el('span.room-activity', {},
      room.last_activity ? `Active ${relativeTime(room.last_activity)}` : 'No messages yet');
    return el('li.room-row', { dataset: { room: room.name, unread: String(unread), kind: roomKind(room) } },
      el('a', { href: roomHref(room.name), 'aria-current': room.name === this.current ? 'page' : null },
        roomNameEl(room), activity, mentionBadge, badge));
  }
}
