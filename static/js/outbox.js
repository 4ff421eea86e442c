// What the room page keeps in localStorage so that a reload, a crash or a switch to another
// room loses nothing the person wrote: the composer's draft, per room, and the sends that
// have no ack yet (docs/protocol.md §5). A send kept here goes again after a reload with
// its own client_msg_id, which the server stores once whatever the number of attempts:
// keeping it is what makes "sent once" survive the page, not only the socket.
//
// Keys start with `sc:<user id>:`, so that another person signing in on the same browser
// does not see them and log-out can remove them all (forgetUser). Each unacked send has a
// key of its own rather than sitting in one list per room: two tabs of the same room then
// add and remove their own sends without writing over each other's.
//
// Storage can be missing or full (a private window, a quota): everything here then does
// nothing, and the page works as it did without it.

function storage() {
  try {
    const s = window.localStorage;
    s.getItem('sc:probe');
    return s;
  } catch {
    return null;
  }
}

const store = storage();

function write(key, value) {
  try { store?.setItem(key, value); } catch { /* full: this draft or send is not kept, as before */ }
}

function remove(key) {
  try { store?.removeItem(key); } catch { /* storage gone: nothing to remove */ }
}

/** The keys that start with `prefix`, read before any is removed (removing reorders them). */
function keysWith(prefix) {
  if (!store) return [];
  const keys = [];
  for (let i = 0; i < store.length; i += 1) {
    const key = store.key(i);
    if (key?.startsWith(prefix)) keys.push(key);
  }
  return keys;
}

const userPrefix = (userId) => `sc:${userId}:`;

/** The composer's unsent text in one room. */
export class Draft {
  constructor(userId, room) {
    this.key = `${userPrefix(userId)}draft:${room}`;
  }

  read() {
    try { return store?.getItem(this.key) ?? ''; } catch { return ''; }
  }

  /** Keeps `text`; an empty composer keeps nothing. */
  save(text) {
    if (text) write(this.key, text); else remove(this.key);
  }
}

/**
 * One room's sends that have no ack yet: `{ id, text, replyTo, attachmentId, status, error,
 * retry, at }`, where `id` is the client_msg_id and `status` is `sending` (it goes again by
 * itself) or `failed` (refused; it waits for Discard, and for Retry unless `retry` is false:
 * the refusal was final). An image is kept once uploaded: its upload's id stands for the
 * file, which storage cannot hold.
 */
export class Outbox {
  constructor(userId, room) {
    this.prefix = `${userPrefix(userId)}outbox:${room}:`;
  }

  /** The kept sends, oldest first. */
  read() {
    const entries = [];
    for (const key of keysWith(this.prefix)) {
      let entry;
      try { entry = JSON.parse(store.getItem(key)); } catch { entry = null; }
      const valid = entry && typeof entry.id === 'string' && `${this.prefix}${entry.id}` === key
        && typeof entry.text === 'string' && (entry.status === 'sending' || entry.status === 'failed');
      if (valid) entries.push(entry); else remove(key); // written by another version, or damaged
    }
    return entries.sort((x, y) => (x.at ?? 0) - (y.at ?? 0));
  }

  /** Keeps a send (again, with its new status). */
  save(entry) {
    write(`${this.prefix}${entry.id}`, JSON.stringify({
      id: entry.id, text: entry.text, replyTo: entry.replyTo ?? null, attachmentId: entry.attachmentId ?? null,
      status: entry.status === 'failed' ? 'failed' : 'sending', error: entry.error ?? null, retry: entry.retry !== false,
      at: entry.at ?? Date.now(),
    }));
  }

  /** The send was acked, or the person discarded it. */
  drop(id) {
    remove(`${this.prefix}${id}`);
  }
}

/** Log-out: the person's drafts and unsent messages leave this browser with them. */
export function forgetUser(userId) {
  for (const key of keysWith(userPrefix(userId))) remove(key);
}

/**
 * Paces one socket's sends and changes under the gateway's limits (docs/protocol.md §9: a
 * token bucket of `send_rate_per_sec` 20 a second after a burst of `send_burst` 40, and at
 * most `send_queue` 64 waiting for their ack), so that a burst, say sixty lines sent in a
 * row, goes out as fast as the gateway takes it instead of having its tail refused, one
 * manual Retry per message.
 *
 * Its own bucket is a little under the gateway's (16 a second, 32 at once): the `read`
 * frames take the same tokens without passing through here, and the network can bunch
 * frames up on the way. Frames go in the order they were first queued, a frame queued again
 * (after a reconnect, after a refusal) keeping its place, and at most `window` wait for
 * their answer at a time.
 *
 * A `rate_limited` answer (a gateway set lower than this, say) puts the frame back in its
 * place and holds everything for a backoff that grows while refusals go on; then the first
 * frame goes alone, and the others only once it is acked: a burst into a gateway that still
 * refuses would be refused whole, and a frame let through among refused ones would be
 * stored ahead of them. The pace halves at each refusal and creeps back with the acks.
 * What no client can keep in order is a frame already on its way when the one before it
 * was refused, which the gateway may take first: pacing under the rate is what keeps that
 * from happening.
 */
export class Pacer {
  /** `transmit(frame)` sends a frame and says whether it went (false: the socket is away). */
  constructor(transmit, { rate = 16, burst = 32, window = 32 } = {}) {
    this.transmit = transmit;
    this.fullRate = rate;
    this.rate = rate;
    this.burst = burst;
    this.window = window;
    this.tokens = burst;
    this.at = performance.now();
    /** Frames not sent yet, in their order: `{ id, frame, place }`. */
    this.queue = [];
    /** Sent frames without an answer yet, by client_msg_id. */
    this.waiting = new Map();
    /** Each frame's place in the order, from its first queuing until its answer. */
    this.places = new Map();
    this.nextPlace = 0;
    /** After a refusal: nothing goes before this time, then one frame (`probe`) alone until it is acked. */
    this.holdUntil = 0;
    this.probing = false;
    this.probe = null;
    this.refusals = 0;
    this.timer = 0;
  }

  /** Queues a frame for sending; one queued already under this id is replaced. */
  push(id, frame) {
    const place = this.places.get(id) ?? this.nextPlace++;
    this.places.set(id, place);
    this.queue = this.queue.filter((item) => item.id !== id);
    this.#insert({ id, frame, place });
    this.#pump();
  }

  /**
   * The gateway answered the frame `id`: an ack or an error, or, with `refused`, a
   * `rate_limited` error, after which the frame goes again by itself.
   */
  answered(id, { refused = false } = {}) {
    const frame = this.waiting.get(id);
    this.waiting.delete(id);
    if (refused && frame) {
      this.#insert({ id, frame, place: this.places.get(id) ?? this.nextPlace++ });
      // Frames sent before the first refusal was heard are refused in the same breath: one round.
      if (!this.probing || id === this.probe) this.#holdOff();
    } else {
      this.places.delete(id);
      if (id === this.probe) { // the gateway takes frames again
        this.probing = false;
        this.probe = null;
        this.refusals = 0;
      }
      if (frame) this.rate = Math.min(this.fullRate, this.rate + 0.25);
    }
    this.#pump();
  }

  /** The frame is no longer to be sent (acked another way, or discarded). */
  drop(id) {
    this.queue = this.queue.filter((item) => item.id !== id);
    this.waiting.delete(id);
    this.places.delete(id);
    if (id === this.probe) this.probe = null;
    this.#pump();
  }

  /**
   * The socket is gone, and whatever it carried with it: the page queues its unanswered
   * frames again on the next `joined`, in their places. A new socket starts with a full
   * bucket at the gateway, and so does this one.
   */
  reset() {
    clearTimeout(this.timer);
    this.timer = 0;
    this.queue = [];
    this.waiting.clear();
    this.tokens = this.burst;
    this.at = performance.now();
    this.holdUntil = 0;
    this.probing = false;
    this.probe = null;
    this.refusals = 0;
  }

  #insert(item) {
    const at = this.queue.findIndex((other) => other.place > item.place);
    if (at < 0) this.queue.push(item); else this.queue.splice(at, 0, item);
  }

  /** A refusal: the gateway's bucket is empty. Wait (longer each time), slow down, then probe. */
  #holdOff() {
    this.refusals += 1;
    const wait = Math.min(8000, 500 * 2 ** (this.refusals - 1)) * (0.5 + Math.random() / 2);
    this.holdUntil = performance.now() + wait;
    if (!this.probing) this.rate = Math.max(1, this.rate / 2);
    this.tokens = 0;
    this.at = performance.now();
    this.probing = true;
    this.probe = null;
  }

  #pump() {
    clearTimeout(this.timer);
    this.timer = 0;
    while (this.queue.length) {
      const now = performance.now();
      if (now < this.holdUntil) { this.#wake(this.holdUntil - now); return; }
      if (this.waiting.size >= (this.probing ? 1 : this.window)) return; // an answer pumps again
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.rate);
      this.at = now;
      if (this.tokens < 1) { this.#wake(((1 - this.tokens) / this.rate) * 1000); return; }
      const { id, frame } = this.queue[0];
      if (!this.transmit(frame)) return; // the socket is away: see reset()
      this.queue.shift();
      this.tokens -= 1;
      this.waiting.set(id, frame);
      if (this.probing) this.probe = id;
    }
  }

  #wake(ms) {
    this.timer = setTimeout(() => { this.timer = 0; this.#pump(); }, Math.max(1, Math.ceil(ms)));
  }
}
