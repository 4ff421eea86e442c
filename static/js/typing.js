// Who is typing in the open room (docs/protocol.md, `typing`): a line under the timeline.
// Typing is ephemeral: each `typing` frame holds a person for TTL_MS, their message ends it
// at once, and a count stands for "several people" when more type than the server names.

/** How long a typist is shown without a refresh; clients send one every SEND_EVERY_MS. */
export const TTL_MS = 6000;
export const SEND_EVERY_MS = 3000;
/** Names the line shows before it says "several people". */
const NAMES = 3;

export class TypingLine {
  /** Typists by user id: { name, timer }. */
  #typists = new Map();
  /** How many the server last said are typing, until it expires. */
  #count = 0;
  #countTimer = 0;

  /** `node`: the line (a polite live region); `myId`: whose own typing is not shown. */
  constructor(node, myId) {
    this.node = node;
    this.myId = myId;
  }

  /** A `typing` frame for this room. */
  heard(frame) {
    if (frame.user) {
      if (frame.user.id === this.myId) return;
      const known = this.#typists.get(frame.user.id);
      clearTimeout(known?.timer);
      const timer = setTimeout(() => this.stopped(frame.user.id), TTL_MS);
      this.#typists.set(frame.user.id, { name: frame.user.name, timer });
    } else if (frame.count) {
      this.#count = frame.count;
      clearTimeout(this.#countTimer);
      this.#countTimer = setTimeout(() => { this.#count = 0; this.#render(); }, TTL_MS);
    }
    this.#render();
  }

  /** Their message arrived (or their indicator expired): they are no longer typing. */
  stopped(userId) {
    const known = this.#typists.get(userId);
    if (!known) return;
    clearTimeout(known.timer);
    this.#typists.delete(userId);
    this.#render();
  }

  clear() {
    for (const { timer } of this.#typists.values()) clearTimeout(timer);
    this.#typists.clear();
    clearTimeout(this.#countTimer);
    this.#count = 0;
    this.#render();
  }

  /** Text changes only when who is typing does, so a screen reader hears each change once. */
  #render() {
    const names = [...this.#typists.values()].map((t) => t.name);
    const text = typingText(names, this.#count);
    if (this.node.textContent !== text) this.node.textContent = text;
  }
}

/** "Ann is typing…", "Ann and Bob are typing…", …, "Several people are typing…". */
export function typingText(names, count = 0) {
  // The count includes the named: above it, someone unnamed types too.
  if (names.length > NAMES || count > names.length) return 'Several people are typing…';
  if (names.length === 0) return '';
  if (names.length === 1) return `${names[0]} is typing…`;
  return `${names.slice(0, -1).join(', ')} and ${names.at(-1)} are typing…`;
}
