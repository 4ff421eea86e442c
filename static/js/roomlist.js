// A person's rooms with unread badges, as the panel and the room page's sidebar show them.
// The panel API is the record; `notify` frames only bump the counts until it is read again.
// Private rooms show their title with a lock, direct messages the other person's name:
// their `p.…` / `dm.…` names mean nothing to people. Each room can be muted from its row:
// a muted room still shows its unread count (in a muted style) but is left out of the
// count in the tab's title, and its news makes no sound and no desktop notification.

import { api, enc } from './api.js';
import { el, fill, relativeTime, roomHref } from './dom.js';
import { showUnread, onReadElsewhere } from './notifications.js';

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
  /**
   * `current`: the room open on this page, whose unread count is not shown. `onError`
   * shows a failed action (muting) to the person.
   */
  constructor(list, { current = null, compact = false, onChange = () => {}, onError = () => {} } = {}) {
    this.list = list;
    this.current = current;
    this.compact = compact;
    this.onChange = onChange;
    this.onError = onError;
    this.rooms = new Map();
    this.nextAfter = null;
    this.reloading = null;
    /** Counts the reads of the panel: only the answer to the latest one is shown. */
    this.reads = 0;
    /** The rooms include() read the panel again for, at most once each. */
    this.included = new Set();
    onReadElsewhere(({ room, seq }) => this.markRead(room, seq));
    // Rooms read on another device say nothing to this page: a page shown again reads the
    // panel again, so that the counts (and the title) are right when the person looks.
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible' && this.rooms.size > 0) this.reload().catch(() => {});
    });
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
   * you. Unknown rooms mean the list is stale. False for a frame already counted (or a
   * message already read in another tab), which is no news.
   */
  bump(frame) {
    const room = this.rooms.get(frame.room);
    if (!room) {
      this.reloading ??= this.reload().catch(() => {}).finally(() => { this.reloading = null; });
      return true;
    }
    // Seqs only grow: a repeated `notify` (it can happen) counts once.
    if (frame.seq <= room.last_seq) return false;
    room.last_seq = frame.seq;
    room.unread += 1;
    if (frame.mention) room.mentions = (room.mentions ?? 0) + 1;
    room.last_activity = new Date().toISOString();
    this.render();
    return true;
  }

  /**
   * Another tab read `room` up to `seq`. When that covers every message counted here, the
   * room has nothing unread; when a newer `notify` came first, how many are left is not
   * known here, and the count stays until the panel is read again.
   */
  markRead(name, seq) {
    const room = this.rooms.get(name);
    if (!room || seq < room.last_seq || (room.unread === 0 && !room.mentions)) return;
    room.last_seq = seq;
    room.unread = 0;
    room.mentions = 0;
    this.render();
  }

  /** Whether the person muted this room (its news makes no sound and no notification). */
  isMuted(name) {
    return !!this.rooms.get(name)?.muted;
  }

  /** Mutes or unmutes a room on the server, then shows what the server says it is. */
  async setMuted(name, muted) {
    try {
      const answer = await api('PATCH', `/rooms/${enc(name)}/membership`, { muted });
      const room = this.rooms.get(name);
      if (room) room.muted = !!answer?.muted;
      this.render();
    } catch (e) {
      this.onError(`Could not ${muted ? 'mute' : 'unmute'} ${roomLabel(this.rooms.get(name) ?? { name })}: ${e.message}`);
    }
  }

  /** What the tab's title counts: unread messages in rooms not muted and not open here. */
  unreadTotal() {
    let total = 0;
    for (const room of this.rooms.values()) {
      if (room.name !== this.current && !room.muted) total += room.unread ?? 0;
    }
    return total;
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
    // The rows are drawn anew: whoever was on one of them (a keyboard on its mute button,
    // say) stays on the same control of the same room.
    const active = this.list.contains(document.activeElement) ? document.activeElement : null;
    const focused = active && { room: active.closest('[data-room]')?.dataset.room, mute: active.matches('.mute-toggle') };
    const rows = [...this.rooms.values()].map((room) => this.#row(room));
    fill(this.list, rows);
    if (focused?.room) {
      const row = [...this.list.children].find((li) => li.dataset.room === focused.room);
      row?.querySelector(focused.mute ? '.mute-toggle' : 'a')?.focus({ preventScroll: true });
    }
    showUnread(this.unreadTotal());
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
    const muted = !!room.muted;
    // One name whatever the state (a toggle's state is its `aria-pressed`), so that a
    // screen reader hears "Mute notifications from #lobby, pressed" for a muted room. Not
    // "Mute #lobby": a moderator's mute stops a member sending, which this is not.
    const label = roomLabel(room);
    const mute = el('button.mute-toggle', {
      type: 'button', 'aria-label': `Mute notifications from ${label}`, 'aria-pressed': String(muted),
      title: muted ? `Muted: no sound, no desktop notification, not in the tab's count. Click to unmute ${label}.` : `Mute notifications from ${label}`,
      onclick: () => this.setMuted(room.name, !muted),
    }, el('img', { src: muted ? '/icons/bell-off.svg' : '/icons/bell.svg', alt: '', width: 16, height: 16 }));
    return el('li.room-row.with-mute', { dataset: { room: room.name, unread: String(unread), kind: roomKind(room), muted: String(muted) } },
      el('a', { href: roomHref(room.name), 'aria-current': room.name === this.current ? 'page' : null },
        roomNameEl(room), muted ? el('span.visually-hidden', {}, ' (muted)') : null, activity, mentionBadge, badge),
      mute);
  }
}
