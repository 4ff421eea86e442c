// One websocket per tab (docs/protocol.md). It reconnects by itself, with exponential
// backoff and full jitter so that thousands of tabs dropped at once by a restarting gateway
// come back spread out rather than in lockstep, and it tells a lost network apart from an
// ended session. It also notices a connection that died without closing: a network that
// stalls (a laptop lid closed, a train in a tunnel) can leave a socket looking open for
// minutes, and browsers cannot send websocket pings of their own. So when it has heard
// nothing for a few seconds it sends a `ping` frame (protocol §2), any frame that comes back
// (a `pong` included) proves the socket alive, and a socket that answers nothing for about
// 10 seconds is given up and replaced. The browser's `offline` event gives it up at once.
// Pages listen for its events:
//   `state`  detail: 'connecting' | 'connected' | 'reconnecting'
//   `open`   the socket is open: (re)join rooms now, with since_seq to resume
//   `close`  the socket is gone; a reconnect is scheduled
//   `ended`  the session is over (close 4001, or the API says 401): log in again
//   one event per server frame type (`joined`, `message`, `ack`, `error`, `notify`, `pong`,
//   …), detail: the frame.

import { currentUser } from './api.js';

const BASE_MS = 500;
const MAX_MS = 30_000;
/** A socket that stayed open this long was a real connection: the next failure starts the backoff afresh. */
const STABLE_MS = 5_000;
const SESSION_ENDED = 4001;
/** Silence after which the socket is pinged, and the spacing of pings while it lasts. */
const PING_AFTER_MS = 4_000;
/** Silence after which a socket that leaves a ping unanswered is presumed dead. */
const DEAD_AFTER_MS = 10_000;
/**
 * The least time a ping is given to be answered. Timers of a background tab may run a minute
 * late, so silence alone proves nothing there: only a ping that went out and got no answer does.
 */
const ANSWER_MS = 4_000;
/** A handshake that has not opened by then is stuck on a stalled network: try again. */
const CONNECT_TIMEOUT_MS = 10_000;
/** How long the session check before a reconnect may take (see sessionCheck). */
const SESSION_CHECK_MS = 5_000;
/** Our close code for a socket given up as dead (4000–4999 are the application's). */
const PRESUMED_DEAD = 4000;
const PING = JSON.stringify({ type: 'ping' });

/** Full jitter: a random delay in [0, min(MAX, BASE · 2^attempt)]. */
export const backoffDelay = (attempt) => Math.random() * Math.min(MAX_MS, BASE_MS * 2 ** attempt);

/**
 * Whether the session still holds before a reconnect: the user, null when it has ended, or
 * undefined when no answer came. A request on a stalled network can hang for minutes (the
 * browser may send it over a pooled connection that is dead), and the reconnect must not
 * wait on it: after SESSION_CHECK_MS it goes ahead as it does when the network fails.
 */
async function sessionCheck() {
  let timer = 0;
  const late = new Promise((resolve) => { timer = setTimeout(resolve, SESSION_CHECK_MS, undefined); });
  try {
    return await Promise.race([currentUser(), late]);
  } catch {
    return undefined; // no answer: the network, keep trying
  } finally {
    clearTimeout(timer);
  }
}

export class Connection extends EventTarget {
  #ws = null;
  /** The scheduled reconnect. */
  #timer = 0;
  /** The open socket's liveness check, or the handshake's deadline while it opens. */
  #watchdog = 0;
  #attempt = 0;
  #stopped = false;
  #openedAt = 0;
  /** When the socket last received a frame (or opened). */
  #heardAt = 0;
  /** When the oldest ping still unanswered went out; not after #heardAt when none is. */
  #pingedAt = 0;
  /** When the last ping went out, to space them. */
  #lastPingAt = 0;
  state = 'connecting';

  constructor() {
    super();
    // The browser knows the network is gone: say so now rather than when a ping goes
    // unanswered, and wait for `online` (below) before trying again.
    window.addEventListener('offline', () => { if (this.#ws) this.#drop(this.#ws); });
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
    clearTimeout(this.#watchdog);
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
    this.#openedAt = 0;
    clearTimeout(this.#watchdog);
    this.#watchdog = setTimeout(() => this.#drop(ws), CONNECT_TIMEOUT_MS);
    ws.onopen = () => {
      this.#openedAt = Date.now();
      this.#heardAt = this.#openedAt;
      this.#pingedAt = 0;
      this.#lastPingAt = 0;
      this.#watch(ws);
      this.#setState('connected');
      this.#emit('open');
    };
    ws.onmessage = (ev) => {
      // Any frame at all proves the socket alive: no timer is touched, the watchdog reads this.
      this.#heardAt = Date.now();
      let frame;
      try { frame = JSON.parse(ev.data); } catch { return; }
      if (frame && typeof frame.type === 'string') this.#emit(frame.type, frame);
    };
    ws.onclose = (ev) => this.#closed(ws, ev.code);
  }

  /**
   * The open socket's watchdog: pings into a silence, and gives up on a socket that has left
   * a ping unanswered for ANSWER_MS with nothing heard for DEAD_AFTER_MS. It sleeps until the
   * next of those moments, so a busy socket costs one timer every few seconds and no pings.
   */
  #watch(ws) {
    clearTimeout(this.#watchdog);
    if (this.#ws !== ws) return;
    const now = Date.now();
    const unanswered = this.#pingedAt > this.#heardAt;
    if (unanswered && now - this.#heardAt >= DEAD_AFTER_MS && now - this.#pingedAt >= ANSWER_MS) {
      this.#drop(ws);
      return;
    }
    if (now >= Math.max(this.#heardAt, this.#lastPingAt) + PING_AFTER_MS) {
      if (!unanswered) this.#pingedAt = now;
      this.#lastPingAt = now;
      ws.send(PING);
    }
    let next = Math.max(this.#heardAt, this.#lastPingAt) + PING_AFTER_MS;
    if (this.#pingedAt > this.#heardAt) {
      next = Math.min(next, Math.max(this.#heardAt + DEAD_AFTER_MS, this.#pingedAt + ANSWER_MS));
    }
    this.#watchdog = setTimeout(() => this.#watch(ws), Math.max(0, next - now));
  }

  /**
   * Gives up on a socket that is dead or stuck. Its close handshake could wait on the dead
   * network for as long as the browser likes, so the socket is let go at once.
   */
  #drop(ws) {
    if (this.#ws !== ws) return;
    ws.onopen = null;
    ws.onmessage = null;
    ws.onclose = null;
    try { ws.close(PRESUMED_DEAD, 'no answer'); } catch { /* already closing */ }
    this.#closed(ws, PRESUMED_DEAD);
  }

  #closed(ws, code) {
    if (this.#ws !== ws) return;
    clearTimeout(this.#watchdog);
    this.#ws = null;
    this.#emit('close', code);
    if (code === SESSION_ENDED) { this.#end(); return; }
    if (this.#openedAt && Date.now() - this.#openedAt > STABLE_MS) this.#attempt = 0;
    this.#schedule();
  }

  #schedule() {
    if (this.#stopped) return;
    this.#setState('reconnecting');
    clearTimeout(this.#timer);
    // While the browser says it is offline, trying only fails (and fills the console):
    // `online` cuts this wait short, and the long delay covers a browser that is wrong.
    const delay = navigator.onLine === false ? MAX_MS : backoffDelay(this.#attempt);
    const timer = setTimeout(async () => {
      this.#attempt += 1;
      // A refused handshake looks like any other failure to a script (1006), so ask the
      // API whether the session still holds before trying again.
      const user = await sessionCheck();
      // Superseded while it asked: back online (a new attempt is under way), or stopped.
      if (this.#timer !== timer || this.#stopped || this.#ws) return;
      if (user === null) { this.#end(); return; }
      this.#connect();
    }, delay);
    this.#timer = timer;
  }

  #end() {
    this.stop();
    this.#emit('ended');
  }
}
