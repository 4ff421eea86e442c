// Who of the open room is online (docs/protocol.md, `joined` field `presence` and the
// `presence` frame). Presence is ephemeral, like typing: `joined` gives the state, frames
// change it, and while the socket is away nothing is known until the next `joined`.
//
// A room of at most 100 members is told person by person: `joined` lists who is online and a
// frame comes for each change, so the set kept here is the whole truth and the count is its
// size. A bigger room gets only a count (in `joined`, then a recount at most every 10 s); who
// of it is online comes from the member list's `online` flags (HTTP), which the page reads
// for the members it shows.

export class RoomPresence {
  /**
   * 'unknown': not joined, or the socket is away; 'off': the server has presence switched
   * off; 'people': told person by person; 'count': a big room, told by counts.
   */
  mode = 'unknown';
  /** 'people': the ids online, all of them (each → true). 'count': those a frame named, over the HTTP flags. */
  #online = new Map();
  #count = null;

  /** Whether there is a state to show. */
  get known() { return this.mode === 'people' || this.mode === 'count'; }

  /** How many members are online, or null when that is not known. */
  get count() {
    if (this.mode === 'people') return this.#online.size;
    if (this.mode === 'count') return this.#count;
    return null;
  }

  /** `joined.presence`; absent when the server has presence switched off. */
  joined(p) {
    this.#online.clear();
    this.#count = null;
    if (!p || typeof p !== 'object') { this.mode = 'off'; return; }
    if (Array.isArray(p.online)) {
      this.mode = 'people';
      for (const id of p.online) this.#online.set(String(id), true);
    } else {
      this.mode = 'count';
      this.#count = Number.isSafeInteger(p.online_count) ? p.online_count : null;
    }
  }

  /**
   * A `presence` frame for the room. Returns what changed: 'person' (someone came or went),
   * 'count' (a big room's count, or the room became big), or null (nothing: a repeat).
   */
  heard(f) {
    if (!this.known) return null; // the next `joined` tells the whole state
    if (typeof f.user_id === 'string' && typeof f.online === 'boolean') {
      if (this.mode === 'people') {
        if (this.#online.has(f.user_id) === f.online) return null; // a repeat, or our own arrival
        if (f.online) this.#online.set(f.user_id, true); else this.#online.delete(f.user_id);
      } else {
        // A room that was big when joined and has shrunk: this names one person, over the
        // member list's flag; the count stays the server's until the next `joined`.
        if (this.#online.get(f.user_id) === f.online) return null;
        this.#online.set(f.user_id, f.online);
      }
      return 'person';
    }
    if (Number.isSafeInteger(f.online_count)) {
      // The room grew past person-by-person presence: the set would go stale from here on.
      const grew = this.mode === 'people';
      if (grew) { this.mode = 'count'; this.#online.clear(); }
      if (!grew && this.#count === f.online_count) return null;
      this.#count = f.online_count;
      return 'count';
    }
    return null;
  }

  /**
   * Whether a member is online: true, false, or null when not known. `flag` is what the
   * member list (HTTP) said of them, which a big room relies on.
   */
  online(userId, flag = null) {
    if (this.mode === 'people') return this.#online.get(userId) === true;
    if (this.mode === 'count') return this.#online.get(userId) ?? (typeof flag === 'boolean' ? flag : null);
    return null;
  }

  /** The socket is gone: nothing is known until the next `joined`. */
  clear() {
    this.mode = 'unknown';
    this.#online.clear();
    this.#count = null;
  }
}

/** "1 online", "12 online". */
export const onlineText = (count) => `${count} online`;
