// The panel (index page): who you are, your counts, your rooms with unread badges kept live
// by `notify` frames, the field that creates or enters a room (or creates a private one),
// and the directory of public rooms.

import { api, ApiError } from './api.js';
import { $, el, fill, longDate, longDateTime, roomHref, flash } from './dom.js';
import { roomNameError, roomTitleError } from './rules.js';
import { RoomList } from './roomlist.js';
import { Directory } from './directory.js';
import { startShell, desktopNotify } from './shell.js';
import { playSound, soundOn, setSoundOn } from './notifications.js';

const { me, conn } = await startShell({ active: 'panel' });
const status = $('#page-status');
const rooms = new RoomList($('#room-list'), {
  onChange: (list) => {
    $('#rooms-empty').hidden = list.rooms.size > 0;
    $('#more-rooms').hidden = !list.nextAfter;
  },
  onError: (message) => flash(status, message, { error: true }),
});

function renderSummary(panel) {
  const greeting = $('#greeting');
  greeting.textContent = `Hello, ${me.name}`;
  greeting.title = greeting.textContent; // a long name is cut short on one line
  const stats = [
    ['Messages sent', panel.message_count.toLocaleString()],
    ['Rooms', panel.room_count.toLocaleString()],
  ];
  if (me.kind === 'account') {
    // `last_login` is the log-in before the latest (the latest is most likely the one that
    // opened this session, which would tell nothing); there is none until the second.
    const last = panel.last_login ? longDateTime(panel.last_login) : 'None before this one';
    stats.push(['Member since', longDate(panel.joined_at)], ['Last log-in', last]);
    $('#subtitle').textContent = '';
  } else {
    $('#subtitle').replaceChildren(
      me.kind === 'guest' ? 'You are chatting as a guest. ' : 'You are signed in by your organisation. ',
      me.kind === 'guest' ? el('a', { href: '/signup.html' }, 'Create an account') : '',
      me.kind === 'guest' ? ' to keep your rooms, under a name no one else can take.' : '');
  }
  fill($('#stats'), stats.map(([term, value]) => el('div.stat', {}, el('dt', {}, term), el('dd', {}, value))));
}

/**
 * Private rooms someone invited you to by name: each opens the room, which lets you in. A
 * long title is cut short on one line, its tooltip keeping all of it.
 */
function renderInvitations(invitations) {
  $('#invitations').hidden = invitations.length === 0;
  fill($('#invitation-list'), invitations.map((i) => {
    const label = i.title ?? `#${i.room}`;
    return el('li.room-row.invitation-row', { dataset: { room: i.room } },
      el('a', { href: roomHref(i.room) }, el('span.room-name', { title: label }, el('bdi', {}, label))),
      el('span.muted.one-line', { title: i.by ? `invited by ${i.by}` : null }, i.by ? ` invited by ${i.by}` : ' invited'));
  }));
}

async function load() {
  try {
    const panel = await rooms.reload();
    renderSummary(panel);
    renderInvitations(panel.invitations ?? []);
    status.textContent = '';
  } catch (e) {
    flash(status, `Could not load your rooms: ${e.message}`, { error: true, ms: 0 });
  }
}

// Create or enter: checked here as the server checks, then by the server, which creates the
// room and makes you a member before the room page opens. A private room is always new: what
// was typed is its title, and the server names it.
const form = $('#enter-form');
const input = $('#room-name');
const error = $('#room-error');
const privateBox = $('#room-private');
const enterButton = $('#enter-button');
const problemOf = (value) => (privateBox.checked ? roomTitleError(value) : roomNameError(value));
const showProblem = (problem) => {
  error.textContent = problem ?? '';
  input.setAttribute('aria-invalid', problem ? 'true' : 'false');
};
function showKind() {
  const priv = privateBox.checked;
  $('#room-hint').hidden = priv;
  $('#room-hint-private').hidden = !priv;
  input.setAttribute('aria-describedby', `${priv ? 'room-hint-private' : 'room-hint'} room-error`);
  enterButton.textContent = priv ? 'Create' : 'Enter';
  input.placeholder = priv ? 'e.g. Weekend plans' : 'e.g. lobby';
  showProblem(input.value === '' ? null : problemOf(input.value));
}
privateBox.addEventListener('change', showKind);
input.addEventListener('input', () => showProblem(input.value === '' ? null : problemOf(input.value)));
form.addEventListener('submit', async (e) => {
  e.preventDefault();
  const problem = problemOf(input.value);
  showProblem(problem);
  if (problem) { input.focus(); return; }
  enterButton.disabled = true;
  try {
    const body = privateBox.checked ? { name: input.value.trim(), visibility: 'private' } : { name: input.value };
    const entered = await api('POST', '/rooms', body);
    location.assign(roomHref(entered.room.name));
  } catch (err) {
    showProblem(err instanceof ApiError ? err.message : String(err));
    input.focus();
  } finally {
    enterButton.disabled = false;
  }
});
showKind(); // the browser may have kept the box ticked from before

$('#more-rooms').addEventListener('click', () => rooms.more().catch((e) => flash(status, e.message, { error: true })));

const directory = new Directory({
  form: $('#directory-form'), input: $('#directory-q'), list: $('#directory-list'),
  empty: $('#directory-empty'), more: $('#directory-more'), status,
});

// Desktop notifications need a click to ask for permission.
const notifyButton = $('#notify-button');
if ('Notification' in window && Notification.permission === 'default') {
  notifyButton.hidden = false;
  notifyButton.addEventListener('click', async () => {
    const answer = await Notification.requestPermission();
    notifyButton.hidden = true;
    flash(status, answer === 'granted' ? 'Desktop notifications are on.' : 'Desktop notifications stay off.');
  });
}

let opened = 0;
conn.addEventListener('open', () => {
  // `notify` is a hint that is not replayed: after a reconnect the panel API is the record.
  if (opened++ > 0) load();
});
conn.addEventListener('notify', (e) => {
  const f = e.detail;
  // A muted room keeps its badge, and nothing more; a repeated frame is no news.
  if (!rooms.bump(f) || rooms.isMuted(f.room) || f.user?.id === me.id) return;
  desktopNotify(f, rooms.label(f.room));
  playSound(f.mention ? 'mention' : 'message', `${f.room}:${f.seq}`);
});

// The sound for news is a setting of this browser, next to desktop notifications.
const soundBox = el('input', { type: 'checkbox', id: 'sound-toggle', checked: soundOn() });
soundBox.addEventListener('change', () => setSoundOn(soundBox.checked));
$('#rooms-title').closest('.card-head').append(
  el('div.check.sound-setting', {}, soundBox, el('label', { for: 'sound-toggle' }, 'Sound for new messages')));

await Promise.all([load(), directory.search($('#directory-q').value)]);
