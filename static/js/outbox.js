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
 * at }`, where `id` is the client_msg_id and `status` is `sending` (it goes again by itself)
 * or `failed` (refused; it waits for Retry or Discard). An image is kept once uploaded: its
 * upload's id stands for the file, which storage cannot hold.
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
      status: entry.status === 'failed' ? 'failed' : 'sending', error: entry.error ?? null, at: entry.at ?? Date.now(),
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
