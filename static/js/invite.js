// An invite link, /invite.html#<token>: what room it opens, and a Join button that redeems
// it. The token travels in the fragment, which browsers do not send when they load the page;
// only the API calls below carry it. Someone not logged in comes back here, fragment and
// all, after logging in (toLogin keeps it).

import { api, enc } from './api.js';
import { $, el, fill, roomHref } from './dom.js';
import { lockIcon } from './roomlist.js';
import { startShell } from './shell.js';

await startShell({ live: false });
const status = $('#page-status');
/** The token, or '' for a link without one (or one mangled past reading). */
function tokenOf(hash) {
  try { return decodeURIComponent(hash.slice(1)).trim(); } catch { return ''; }
}
const token = tokenOf(location.hash);

function showInvalid() {
  status.textContent = '';
  $('#invite-view').hidden = true;
  $('#invite-invalid').hidden = false;
  document.title = 'Invalid invite · Super Channels';
  $('#main').focus();
}

function showInvite(invite) {
  const priv = invite.visibility === 'private';
  const name = invite.title || `#${invite.room}`;
  fill($('#invite-heading'), priv ? lockIcon('Private room:') : null, el('bdi', {}, name));
  const members = Number(invite.member_count ?? 0);
  $('#invite-facts').textContent = `${priv ? 'A private room' : 'A public room'} with ${members.toLocaleString()} ${members === 1 ? 'member' : 'members'}.`;
  document.title = `Join ${name} · Super Channels`;
  status.textContent = '';
  $('#invite-view').hidden = false;
  $('#invite-join').focus();
}

$('#invite-join').addEventListener('click', async () => {
  const button = $('#invite-join');
  const error = $('#invite-error');
  error.textContent = '';
  button.disabled = true;
  try {
    const joined = await api('POST', `/invites/${enc(token)}`);
    location.assign(roomHref(joined.room.name));
  } catch (e) {
    if (e.code === 'invite_invalid' || e.status === 404) showInvalid();
    else error.textContent = e.code === 'banned' ? 'You are banned from this room.' : e.message;
  } finally {
    button.disabled = false;
  }
});

if (!token) {
  showInvalid();
} else {
  status.textContent = 'Reading the invitation…';
  try {
    showInvite(await api('GET', `/invites/${enc(token)}`));
  } catch (e) {
    if (e.code === 'invite_invalid' || e.status === 404) showInvalid();
    else status.textContent = `Could not read the invitation: ${e.message}`;
  }
}

// Another link pasted into this tab changes only the fragment: read that one instead.
window.addEventListener('hashchange', () => location.reload());
