// Read receipts (docs/protocol.md, `joined.reads` and the `read` frame): how far each member
// of the open room has read, for the "seen by" avatars that sit, as in Element, under the
// last message each of them has read. Receipts are ephemeral, like presence: `joined` gives
// the state, frames raise it, and while the socket is away nothing is known until the next
// `joined`. A room of more than 100 members gets none (its `joined` has no `reads`).

/** How many avatars a "seen by" row shows before "+N". */
export const SEEN_FACES = 5;

export class ReadMarkers {
  /** Each member's furthest seq, by user id. */
  #seq = new Map();
  /** Whether `joined` gave the room's markers: without them, a few frames would tell half the story. */
  known = false;

  /** `joined.reads`; absent in a room too big for receipts. */
  joined(reads) {
    this.#seq.clear();
    this.known = Array.isArray(reads);
    for (const r of this.known ? reads : []) this.#raise(r?.user_id, r?.seq);
  }

  /** A `read` frame for the room: whether it moved someone's marker. */
  heard(f) {
    return this.known && this.#raise(f.user_id, f.seq);
  }

  /**
   * Markers only rise: a frame relayed by another gateway can arrive after a newer one, or
   * after a `joined` that already counted it.
   */
  #raise(userId, seq) {
    if (typeof userId !== 'string' || !Number.isSafeInteger(seq) || seq <= 0) return false;
    if ((this.#seq.get(userId) ?? 0) >= seq) return false;
    this.#seq.set(userId, seq);
    return true;
  }

  get(userId) { return this.#seq.get(userId); }

  entries() { return this.#seq.entries(); }

  /** The socket is gone: nothing is known until the next `joined`. */
  clear() {
    this.known = false;
    this.#seq.clear();
  }
}

/**
 * The index of the largest value at or below `max` in an ascending sequence of `length`
 * values read with `at(i)`, or -1 when all are above it. A binary search, so placing a
 * marker costs a few reads however long the timeline is.
 */
export function lastAtOrBelow(length, at, max) {
  let lo = 0;
  let hi = length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (at(mid) <= max) { found = mid; lo = mid + 1; } else hi = mid - 1;
  }
  return found;
}

/**
 * "Seen by Ann", "Seen by Ann and Bob", "Seen by Ann, Bob and Cy"; past SEEN_FACES names,
 * the ones the avatars show and a count of the rest, as the row does.
 */
export function seenText(names) {
  if (names.length === 0) return '';
  if (names.length === 1) return `Seen by ${names[0]}`;
  if (names.length <= SEEN_FACES) return `Seen by ${names.slice(0, -1).join(', ')} and ${names.at(-1)}`;
  const rest = names.length - SEEN_FACES;
  return `Seen by ${names.slice(0, SEEN_FACES).join(', ')} and ${rest} ${rest === 1 ? 'other' : 'others'}`;
}
