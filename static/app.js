// Super Channels browser client. Protocol: docs/protocol.md.
// All user-supplied text goes into the DOM through textContent, never as HTML.

const $ = (id) => document.getElementById(id);
const ui = {
  who: $('who'), conn: $('conn'), status: $('status'),
  loginView: $('login-view'), loginForm: $('login-form'), name: $('name'), nameError: $('name-error'),
  roomView: $('room-view'), roomForm: $('room-form'), room: $('room'), roomError: $('room-error'),
  chatView: $('chat-view'), roomName: $('room-name'), leave: $('leave'), earlier: $('earlier'),
  log: $('log'), messages: $('messages'), pending: $('pending'),
  composer: $('composer'), text: $('text'), textHint: $('text-hint'),
};
const TEXT_HINT = ui.textHint.textContent;
const API = '/api/v1';
const BACKOFF_BASE_MS = 500, BACKOFF_MAX_MS = 30000;
const STABLE_MS = 5000; // a socket open this long resets the backoff
const RETRY_JOIN = new Set(['unavailable', 'internal']);

let me = null;        // {id, name} from the session
let ws = null, timer = 0;
let attempt = 0;      // reconnect attempts since the last stable connection
let room = null;      // the one open room: {name, msgs: Map seq→message, lastSeq, joined, resumed, top}
const pending = new Map(); // client_msg_id → {text, el, failed}

// ---------- validation, mirroring services/chat-domain/src/names.rs ----------
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const TEXT_CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;

const roomNameError = (s) => (s === '' ? 'Enter a room name.'
  : new TextEncoder().encode(s).length > 64 ? 'A room name is at most 64 characters.'
  : !/^[a-z0-9]/i.test(s) ? 'A room name must start with a letter or a digit.'
  : !/^[a-z0-9_.-]+$/i.test(s) ? "A room name may only hold letters a–z, digits, '_', '.' and '-'."
  : null);

const displayNameError = (s) => (s === '' ? 'Enter a name.'
  : [...s].length > 32 ? 'A name is at most 32 characters.'
  : CONTROL.test(s) ? 'A name cannot hold control characters.'
  : null);

const textError = (s) => (s.trim() === '' ? 'The message is empty.'
  : [...s].length > 4000 ? `The message is ${[...s].length} characters long; the limit is 4000.`
  : TEXT_CONTROL.test(s) ? 'The message holds control characters.'
  : null);

const newId = () => (crypto.randomUUID ? crypto.randomUUID()
  : Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join(''));

// ---------- UI helpers ----------
const show = (view) => { for (const v of [ui.loginView, ui.roomView, ui.chatView]) v.hidden = v !== view; };

function setStatus(text, isError = false) {
  ui.status.textContent = text;
  ui.status.classList.toggle('is-error', isError);
}

const CONN_LABELS = { connecting: 'Connecting…', connected: 'Connected', reconnecting: 'Reconnecting…', offline: 'Offline' };
function setConn(state) {
  ui.conn.dataset.state = state;
  ui.conn.textContent = CONN_LABELS[state];
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function formatTime(iso) { // today: the time; earlier: date and time
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return d.toDateString() === new Date().toDateString()
    ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
}

function messageNode(author, own, sentAt, text) {
  const li = el('li', own ? 'msg own' : 'msg');
  const meta = el('p', 'meta');
  meta.append(el('bdi', 'author', author));
  if (sentAt) {
    const time = el('time', 'time', formatTime(sentAt));
    time.dateTime = sentAt;
    time.title = new Date(sentAt).toLocaleString();
    meta.append(time);
  }
  const body = el('p', 'text', text);
  body.dir = 'auto';
  li.append(meta, body);
  return li;
}

const nearBottom = () => ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 80;
const toBottom = () => { ui.log.scrollTop = ui.log.scrollHeight; };

// ---------- messages ----------
// Inserts a committed message once, in seq order. Returns false for a repeat.
function addMessage(m) {
  if (!room || m.room !== room.name || !Number.isSafeInteger(m.seq) || room.msgs.has(m.seq)) return false;
  room.msgs.set(m.seq, m);
  const user = m.user || {};
  const li = messageNode(String(user.name ?? ''), !!me && user.id === me.id, m.sent_at, String(m.text ?? ''));
  li.dataset.seq = String(m.seq);
  let after = ui.messages.lastElementChild;
  while (after && Number(after.dataset.seq) > m.seq) after = after.previousElementSibling;
  if (after) after.after(li); else ui.messages.prepend(li);
  // Our own message, confirmed by the room's stream (e.g. after a resume): no longer pending.
  const mine = pending.get(m.client_msg_id);
  if (mine && me && user.id === me.id) { mine.el.remove(); pending.delete(m.client_msg_id); }
  return true;
}

// Messages from joined.history and live frames: the ordered stream, the only resume point.
function streamMessage(m) {
  if (!room || m.room !== room.name) return;
  const stick = nearBottom();
  addMessage(m);
  if (m.seq > room.lastSeq) room.lastSeq = m.seq;
  if (stick) toBottom();
}

const clearRoomView = () => { ui.messages.replaceChildren(); ui.earlier.hidden = true; };

// ---------- sending ----------
function wsSend(frame) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
}

function renderPending(id) {
  const p = pending.get(id);
  const li = messageNode(me ? me.name : '', true, null, p.text);
  li.classList.add(p.failed ? 'failed' : 'pending');
  li.append(el('p', 'state', p.failed ? `Not sent: ${p.failed}` : 'Sending…'));
  if (p.failed) {
    const retry = el('button', 'link', 'Retry');
    retry.type = 'button';
    retry.addEventListener('click', () => { p.failed = null; renderPending(id); transmit(id); });
    li.append(retry);
  }
  if (p.el) p.el.replaceWith(li); else ui.pending.append(li);
  p.el = li;
}

function transmit(id) {
  const p = pending.get(id);
  // Otherwise it goes out when the room is (re)joined.
  if (p && !p.failed && room && room.joined) wsSend({ type: 'send', room: room.name, text: p.text, client_msg_id: id });
}

function onAck(f) {
  const p = pending.get(f.client_msg_id);
  if (!p || !room || f.room !== room.name) return;
  p.el.remove();
  pending.delete(f.client_msg_id);
  const stick = nearBottom();
  // The ack is not part of the ordered stream: show the message but do not move lastSeq.
  addMessage({ type: 'message', room: f.room, seq: f.seq, id: f.id, user: me, text: p.text,
    sent_at: f.sent_at, client_msg_id: f.client_msg_id, kind: 'text' });
  if (stick) toBottom();
}

// ---------- rooms ----------
function sendJoin() {
  if (!room) return;
  const frame = { type: 'join', room: room.name };
  if (room.resumed) frame.since_seq = room.lastSeq;
  wsSend(frame);
}

function onJoined(f) {
  if (!room || f.room !== room.name) { wsSend({ type: 'leave', room: f.room }); return; } // left meanwhile
  const sent = room.resumed ? room.lastSeq : null;
  if (sent !== null && (f.last_seq < sent || f.has_more)) {
    // Data reset, or too much missed to show without a hole: start the view afresh.
    room.msgs.clear();
    clearRoomView();
    if (f.last_seq < sent) { // the server has less than we saw: rejoin from scratch
      room.lastSeq = 0;
      room.resumed = false;
      wsSend({ type: 'leave', room: f.room });
      wsSend({ type: 'join', room: f.room });
      return;
    }
  }
  room.joined = true;
  room.resumed = true;
  room.top = f.last_seq;
  ui.messages.setAttribute('aria-busy', 'true');
  for (const m of f.history || []) streamMessage(m);
  ui.messages.removeAttribute('aria-busy');
  if (f.has_more) ui.earlier.hidden = false;
  setStatus('');
  for (const id of pending.keys()) transmit(id);
  toBottom();
}

async function loadEarlier() {
  if (!room) return;
  const name = room.name;
  const seqs = [...room.msgs.keys()];
  const before = seqs.length ? Math.min(...seqs) : room.top + 1;
  ui.earlier.disabled = true;
  try {
    const res = await fetch(`${API}/rooms/${encodeURIComponent(name)}/messages?before_seq=${before}&limit=50`,
      { credentials: 'same-origin' });
    if (res.status === 401) return showLogin('Your session has ended. Enter your name again.');
    const body = await res.json();
    if (!res.ok) throw new Error(body.error?.message || `HTTP ${res.status}`);
    if (!room || room.name !== name) return;
    const height = ui.log.scrollHeight;
    for (const m of body.messages) addMessage(m);
    ui.log.scrollTop += ui.log.scrollHeight - height; // keep the view where it was
    ui.earlier.hidden = !(body.messages.length && body.messages[0].seq > 1);
  } catch (e) {
    setStatus(`Could not load earlier messages: ${e.message}`, true);
  } finally {
    ui.earlier.disabled = false;
  }
}

function enterRoom(name) {
  room = { name, msgs: new Map(), lastSeq: 0, joined: false, resumed: false, top: 0 };
  clearRoomView();
  ui.roomName.textContent = `#${name}`;
  show(ui.chatView);
  ui.text.focus();
  sendJoin(); // if the socket is not open yet, onopen joins
}

function dropRoom() {
  room = null;
  pending.clear();
  ui.pending.replaceChildren();
  clearRoomView();
}

function leaveRoom() {
  if (room && room.joined) wsSend({ type: 'leave', room: room.name });
  dropRoom();
  show(ui.roomView);
  ui.room.focus();
}

// ---------- the websocket ----------
function onFrame(ev) {
  let f;
  try { f = JSON.parse(ev.data); } catch { return; }
  switch (f.type) {
    case 'joined': return onJoined(f);
    case 'message': if (room && room.joined) streamMessage(f); return;
    case 'ack': return onAck(f);
    case 'error': return onError(f);
    default: // `left`, and frame types this client does not know yet (e.g. notify)
  }
}

function onError(f) {
  const p = f.ref !== undefined && pending.get(f.ref);
  if (p) {
    p.failed = f.message || f.code;
    renderPending(f.ref);
    setStatus(`A message was not sent: ${p.failed}`, true);
    return;
  }
  if (f.code === 'already_joined') return; // harmless: a join crossed a reconnect
  if (room && f.ref === room.name && !room.joined) {
    if (RETRY_JOIN.has(f.code)) {
      setStatus(`Could not join #${room.name} (${f.message}). Retrying…`, true);
      setTimeout(() => { if (room && !room.joined) sendJoin(); }, 1000 + backoff(2));
    } else {
      leaveRoom();
      ui.roomError.textContent = f.message;
    }
    return;
  }
  setStatus(`${f.code}: ${f.message}`, true);
}

function connect() {
  disconnect(false);
  setConn(attempt ? 'reconnecting' : 'connecting');
  const socket = new WebSocket(`${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`);
  let openedAt = 0;
  ws = socket;
  socket.onopen = () => {
    openedAt = Date.now();
    setConn('connected');
    if (room) { room.joined = false; sendJoin(); }
  };
  socket.onmessage = onFrame;
  socket.onclose = (ev) => {
    if (ws !== socket) return;
    ws = null;
    if (room) room.joined = false;
    if (ev.code === 4001) return showLogin('Your session has ended. Enter your name again.');
    if (openedAt && Date.now() - openedAt > STABLE_MS) attempt = 0;
    if (ev.code === 4008) setStatus('The connection fell behind; catching up…');
    scheduleReconnect();
  };
}

// Full jitter: a random delay in [0, min(max, base · 2^n)].
const backoff = (n) => Math.random() * Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** n);

function scheduleReconnect() {
  setConn('reconnecting');
  clearTimeout(timer);
  timer = setTimeout(async () => {
    attempt += 1;
    // The handshake's 401 is invisible to scripts: ask the API whether the session still holds.
    const session = await fetchSession().catch(() => undefined);
    if (!me) return;
    if (session === null) return showLogin('Your session has ended. Enter your name again.');
    connect();
  }, backoff(attempt));
}

function disconnect(resetBackoff = true) {
  clearTimeout(timer);
  if (ws) { const s = ws; ws = null; s.onclose = null; s.close(1000); }
  if (resetBackoff) attempt = 0;
}

// ---------- session ----------
// The user on success, null on 401; throws on other failures.
async function fetchSession() {
  const res = await fetch(`${API}/session`, { credentials: 'same-origin' });
  if (res.status === 401) return null;
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return (await res.json()).user;
}

function signedIn(user) {
  me = user;
  ui.who.textContent = user.name;
  ui.who.hidden = ui.conn.hidden = false;
  show(ui.roomView);
  ui.room.focus();
  connect();
}

function showLogin(reason = '') {
  disconnect();
  dropRoom();
  me = null;
  ui.who.hidden = ui.conn.hidden = true;
  setConn('offline');
  ui.nameError.textContent = reason;
  show(ui.loginView);
  ui.name.focus();
}

async function boot(tries = 0) {
  try {
    const user = await fetchSession();
    if (user) signedIn(user); else showLogin();
    setStatus('');
  } catch {
    setStatus('The server cannot be reached. Retrying…', true);
    setTimeout(() => boot(tries + 1), Math.max(1000, backoff(tries)));
  }
}

// ---------- wiring ----------
ui.loginForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  const name = ui.name.value.trim();
  const problem = displayNameError(name);
  ui.nameError.textContent = problem || '';
  if (problem) return ui.name.focus();
  const button = ui.loginForm.querySelector('button');
  button.disabled = true;
  try {
    const res = await fetch(`${API}/sessions`, {
      method: 'POST', credentials: 'same-origin',
      headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name }),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) { ui.nameError.textContent = body.error?.message || `Failed (HTTP ${res.status})`; return; }
    signedIn(body.user); // the token itself stays in the HttpOnly cookie only
  } catch {
    ui.nameError.textContent = 'The server cannot be reached. Try again.';
  } finally {
    button.disabled = false;
  }
});

ui.roomForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const name = ui.room.value.trim();
  const problem = roomNameError(name);
  ui.roomError.textContent = problem || '';
  if (problem) return ui.room.focus();
  enterRoom(name.toLowerCase());
});

ui.composer.addEventListener('submit', (e) => {
  e.preventDefault();
  const text = ui.text.value;
  const problem = textError(text);
  ui.textHint.textContent = problem || TEXT_HINT;
  ui.textHint.classList.toggle('is-error', !!problem);
  if (problem || !room) return;
  const id = newId();
  pending.set(id, { text, el: null, failed: null });
  renderPending(id);
  toBottom();
  ui.text.value = '';
  transmit(id);
});

ui.text.addEventListener('keydown', (e) => { // Enter sends, Shift+Enter is a new line
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); ui.composer.requestSubmit(); }
});

ui.leave.addEventListener('click', leaveRoom);
ui.earlier.addEventListener('click', loadEarlier);
window.addEventListener('online', () => { if (me && !ws) { attempt = 0; connect(); } });

boot();
