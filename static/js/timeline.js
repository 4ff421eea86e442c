// A room's messages in their current state, folded from the events of its timeline
// (docs/protocol.md §3): messages, edits, deletions, reactions added and taken back.
//
// Every rule is an idempotent set operation, as the server's fold is: a message that comes
// in its current state (history, a gap fill) followed by the replay of its changes ends as
// it would from the events alone, and a repeated event changes nothing.

/**
 * Event frame types: each takes a seq of the room's timeline. A `room_event` (a change to
 * the room itself: moderation, roles, topic, visibility) takes one too, so it moves the
 * resume point like the rest; it changes no message, and the room page draws it itself.
 */
export const EVENT_TYPES = new Set(['message', 'edited', 'deleted', 'reacted', 'unreacted', 'room_event']);

export class Timeline {
  /** Changes to messages not held yet, by target seq, in seq order (see hold()). */
  #early = new Map();
  /** While a page is read, changes to unheld messages below this seq are kept; 0: none are. */
  #below = 0;

  constructor() {
    /** Messages by seq. */
    this.messages = new Map();
  }

  get(seq) { return this.messages.get(seq); }

  has(seq) { return this.messages.has(seq); }

  clear() { this.messages.clear(); this.#early.clear(); }

  /**
   * A page of older messages (below `seq`) is being read. A change to one of them can arrive
   * live before the page, and the page can have been read before the change: keep such
   * changes and apply them when their message comes. One the page already shows changes
   * nothing again, so the result is what replaying every event gives.
   */
  hold(seq) { this.#below = seq; }

  /** The page is in. A page read later is read after these changes, so it shows them. */
  release() { this.#below = 0; this.#early.clear(); }

  /**
   * Applies one event frame. Returns the seq of the message whose display changed (the
   * new message, or the one a change targets), or null when nothing changed.
   */
  apply(f) {
    if (f.type === 'message') return this.#message(f);
    if (f.type === 'room_event') return null; // no message of the room changes
    const target = this.messages.get(f.target_seq);
    if (!target) {
      if (f.target_seq < this.#below) {
        const early = this.#early.get(f.target_seq);
        if (early) early.push(f); else this.#early.set(f.target_seq, [f]);
      }
      return null;
    }
    if (target.deleted) return null;
    switch (f.type) {
      case 'edited':
        target.text = f.text ?? '';
        target.mentions = [...(f.mentions ?? [])];
        target.edited_at = f.at;
        break;
      case 'deleted':
        erase(target);
        break;
      case 'reacted': {
        const reactions = target.reactions ?? (target.reactions = []);
        let entry = reactions.find((r) => r.emoji === f.emoji);
        if (!entry) reactions.push(entry = { emoji: f.emoji, count: 0, users: [] });
        if (entry.users.some((u) => u.id === f.user.id)) return null;
        entry.users.push(f.user);
        entry.count = entry.users.length;
        break;
      }
      case 'unreacted': {
        const reactions = target.reactions ?? [];
        const entry = reactions.find((r) => r.emoji === f.emoji);
        if (!entry || !entry.users.some((u) => u.id === f.user.id)) return null;
        entry.users = entry.users.filter((u) => u.id !== f.user.id);
        entry.count = entry.users.length;
        if (!entry.count) target.reactions = reactions.filter((r) => r !== entry);
        break;
      }
      default:
        return null;
    }
    return f.target_seq;
  }

  /** A message keeps the first state it arrived in, unless a later one is its tombstone. */
  #message(m) {
    const known = this.messages.get(m.seq);
    if (known && (known.deleted || !m.deleted)) return null;
    if (known) { erase(known); return m.seq; }
    this.messages.set(m.seq, {
      ...m,
      mentions: [...(m.mentions ?? [])],
      reactions: (m.reactions ?? []).map((r) => ({ ...r, users: [...r.users] })),
    });
    const early = this.#early.get(m.seq);
    this.#early.delete(m.seq);
    for (const f of early ?? []) this.apply(f);
    return m.seq;
  }

  /** The newest message of `userId` that can still be edited. */
  lastOwn(userId) {
    let found = null;
    for (const m of this.messages.values()) {
      if (m.user?.id === userId && !m.deleted && (!found || m.seq > found.seq)) found = m;
    }
    return found;
  }
}

/** A tombstone keeps its place, author and time; its content is gone. */
function erase(m) {
  m.deleted = true;
  m.text = '';
  delete m.attachment;
  delete m.reply_to;
  delete m.edited_at;
  m.mentions = [];
  m.reactions = [];
}
