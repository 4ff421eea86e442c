// One websocket per tab (docs/protocol.md). It reconnects by itself, with exponential
// backoff and full jitter so that thousands of tabs dropped at once by a restarting gateway
// come back spread out rather than in lockstep, and it tells a lost network apart from an
// ended session. Pages listen for its events:
//   `state`  detail: 'connecting' | 'connected' | 'reconnecting'
//   `open`   the socket is open: (re)join rooms now, with since_seq to resume
//   `close`  the socket is gone; a reconnect is scheduled
//   `ended`  the session is over (close 4001, or the API says 401): log in again
//   one event per server frame type (`joined`, `message`, `ack`, `error`, `notify`, …),
//   detail: the frame.

import { currentUser } from './api.js';

const BASE_MS = 500;
const MAX_MS = 30_000;
/** A socket that stayed open this long was a real connection: the next failure starts the backoff afresh. */
const STABLE_MS = 5_000;
const SESSION_ENDED = 4001;

/** Full jitter: a random delay in [0, min(MAX, BASE · 2^attempt)]. */
export const backoffDelay = (attempt) => Math.random() * Math.min(MAX_MS, BASE_MS * 2 ** attempt);

export class Connection extends EventTarget {
  #ws = null;
  #timer = 0;
  #attempt = 0;
  #stopped = false;
  state = 'connecting';

  constructor() {
    super();
    // Back on the network: try now rather than at the end of a long backoff.
    window.addEventListener('online', () => {
      if (!this.#ws && !this.#stopped) { clearTimeout(this.#timer); this.#attempt = 0; this.#schedule(); }
    });
    // Leaving the page: close cleanly so the server records how far this tab read.
    window.addEventListener('pagehide', () => this.stop());
    // Back from the browser's page cache, the stopped socket and the view are stale.
    window.addEventListener('pageshow', (e) => { if (e.persisted) location.reload(); });
  }

  start() { this.#connect(); }

  stop() {
    this.#stopped = true;
    clearTimeout(this.#timer);
    const ws = this.#ws;
    this.#ws = null;
    if (ws) { ws.onclose = null; ws.close(1000); }
  }

  get isOpen() { return this.#ws?.readyState === WebSocket.OPEN; }

  /** Sends a frame if the socket is open; returns whether it went. */
  send(frame) {
    if (!this.isOpen) return false;
    this.#ws.send(JSON.stringify(frame));
    return true;
  }

  #emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  #setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.#emit('state', state);
  }

  #connect() {
    if (this.#stopped) return;
    this.#setState(this.#attempt ? 'reconnecting' : 'connecting');
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${location.host}/ws`);
    this.#ws = ws;
    let openedAt = 0;
    ws.onopen = () => {
      openedAt = Date.now();
      this.#setState('connected');
      this.#emit('open');
    };
    ws.onmessage = (ev) => {
      let frame;
      try { frame = JSON.parse(ev.data); } catch { return; }
      if (frame && typeof frame.type === 'string') this.#emit(frame.type, frame);
    };
    ws.onclose = (ev) => {
      if (this.#ws !== ws) return;
      this.#ws = null;
      this.#emit('close', ev.code);
      if (ev.code === SESSION_ENDED) { this.#end(); return; }
      if (openedAt && Date.now() - openedAt > STABLE_MS) this.#attempt = 0;
      this.#schedule();
    };
  }

  #schedule() {
    if (this.#stopped) return;
    this.#setState('reconnecting');
    clearTimeout(this.#timer);
    this.#timer = setTimeout(async () => {
      this.#attempt += 1;
      // A refused handshake looks like any other failure to a script (1006), so ask the
      // API whether the session still holds before trying again.
      let user;
      try { user = await currentUser(); } catch { user = undefined; /* no answer: the network, keep trying */ }
      if (user === null) { this.#end(); return; }
      this.#connect();
    }, backoffDelay(this.#attempt));
  }

  #end() {
    this.stop();
    this.#emit('ended');
  }
}
