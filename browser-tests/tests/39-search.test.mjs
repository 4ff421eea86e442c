// Message search in the client: Ctrl+K from the composer, results grouped by room and
// named as the panel names rooms, the words found inside <mark>; never a private room one
// is not in, nor a deleted message; an edited one by its new text; markup that stays text;
// public rooms and this room only on request; the server's refusal of a query said in
// words. Then a result far back in a room's history, chosen with the keyboard alone, opens
// the room at it (in place, and from another room), and the room goes on as before: live
// messages arrive, scrolling back reads older pages. Both layouts are captured, and axe
// checks the results.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { launch, newPage, screenshots, unique, api, waitFor, PHONE, DESKTOP } from '../lib/harness.mjs';
import { signUp, enterRoom, send, waitShown, waitJoined, createPrivateRoom, shown, assertOrdered } from '../lib/chat.mjs';
import { axeAvailable, axeViolations } from '../lib/axe.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

/**
 * A word no other test's messages hold (the run's test files share a database): letters
 * only, so that every tokenizer takes it as one word.
 */
const word = (prefix) => prefix + [...randomBytes(8)].map((b) => String.fromCharCode(97 + (b % 26))).join('');

/** What a page logs for the refusals a test asks for: a 400 for a query the server refuses. */
const expected400 = (problems) => problems.filter((p) => !/status of 400/.test(p));

/** Publishes through the HTTP API as the page's person; resolves with the ack (its seq). */
async function post(page, room, text) {
  const res = await api(page, 'POST', `/api/v1/rooms/${room}/messages`, { text, client_msg_id: randomUUID() });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body;
}

const dialogOf = (page) => page.getByRole('dialog', { name: 'Search messages' });

/** Ctrl+K from wherever the focus is, then the query and Enter in the top bar's box. */
async function searchFor(page, q) {
  await page.keyboard.press('Control+k');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'search-box', 'Ctrl+K focuses the box');
  await page.keyboard.type(q);
  await page.keyboard.press('Enter');
  await dialogOf(page).waitFor();
  return waitSummary(page);
}

/** Waits until the search has answered (its status no longer says it is searching); returns the status. */
async function waitSummary(page) {
  await page.waitForFunction(() => {
    const status = document.querySelector('#search-status').textContent;
    return status !== '' && status !== 'Searching…' && !document.querySelector('#search-results[aria-busy]');
  });
  return page.locator('#search-status').textContent();
}

/** The results on screen, by room group: `{ room, label, hits: [{ seq, author, snippet, marks, edited }] }`. */
function results(page) {
  return page.$$eval('#search-results .search-group', (groups) => groups.map((g) => ({
    room: g.dataset.room,
    label: g.querySelector('h3').textContent,
    hits: [...g.querySelectorAll('a.search-hit')].map((a) => ({
      seq: Number(a.dataset.seq),
      author: a.querySelector('.search-author').textContent,
      snippet: a.querySelector('.search-snippet').textContent,
      marks: [...a.querySelectorAll('.search-snippet mark')].map((m) => m.textContent),
      edited: !!a.querySelector('.msg-edited'),
    })),
  })));
}

/** Runs axe on a part of the page (the results dialog, the top bar), or says why it cannot. */
async function checkAxe(t, page, name, selector) {
  await t.test(`axe: ${name}`, async (st) => {
    if (!axeAvailable) {
      st.skip('axe-core is not installed in browser-tests/node_modules (add it to browser-tests/package.json)');
      return;
    }
    assert.deepEqual(await axeViolations(page, selector), []);
  });
}

/** Nothing in the dialog, nor the page, sticks out past the phone's width. */
async function assertFitsPhone(page) {
  await page.setViewportSize(PHONE);
  const layout = await page.evaluate(() => {
    const dialog = document.querySelector('#search-dialog');
    const box = dialog.getBoundingClientRect();
    const wide = [...document.querySelectorAll('#search-dialog *, #topbar *')]
      .filter((n) => n.getClientRects().length && n.getBoundingClientRect().right > innerWidth + 0.5)
      .map((n) => n.tagName + (n.className ? `.${n.className}` : ''));
    return {
      dialog: [box.left, box.top, box.width, box.height], view: [0, 0, innerWidth, innerHeight],
      overflow: dialog.scrollWidth > dialog.clientWidth || document.documentElement.scrollWidth > innerWidth,
      wide,
    };
  });
  assert.deepEqual(layout.dialog, layout.view, 'the results fill the screen');
  assert.equal(layout.overflow, false, 'nothing scrolls sideways');
  assert.deepEqual(layout.wide, []);
  await page.setViewportSize(DESKTOP);
}

test('search from a room: grouped by room, words marked, only what may be seen, markup as text', async (t) => {
  const [alice, bob, carol] = [unique('alice'), unique('bob'), unique('carol')];
  const [a, b, c] = await Promise.all([newPage(browser), newPage(browser), newPage(browser)]);
  await Promise.all([signUp(a.page, alice), signUp(b.page, bob), signUp(c.page, carol)]);
  const w = word('kiwi');
  const before = word('draft');
  const [orchard, harbour, elsewhere] = [unique('orchard'), unique('harbour'), unique('elsewhere')];

  // Carol's private room, which Alice is not in, and a public room Alice never entered.
  await createPrivateRoom(c.page, 'Carol alone');
  const secret = new URL(c.page.url()).searchParams.get('name');
  await send(c.page, `${w} secret plans`);
  await waitShown(c.page, 1);
  await enterRoom(c.page, elsewhere);
  await send(c.page, `${w} out in a public room`);
  await waitShown(c.page, 1);

  // Alice's own private room, titled; and a second public room.
  const title = `Search plans ${unique('t')}`;
  const titled = await createPrivateRoom(a.page, title);
  await send(a.page, `${w} in a titled room`);
  await waitShown(a.page, 1);
  await enterRoom(a.page, harbour);
  await send(a.page, `${w} over in the harbour`);
  await waitShown(a.page, 1);

  // The orchard: an edited message, a deleted one, markup, and a plain one.
  await enterRoom(b.page, orchard);
  await enterRoom(a.page, orchard);
  const field = a.page.getByLabel('Message', { exact: true });
  await send(a.page, `${before} of the message`);
  await waitShown(a.page, 1);
  await field.press('ArrowUp'); // edits the last message
  await a.page.getByLabel('Edit the message').fill(`${w} after the edit`);
  await a.page.getByLabel('Edit the message').press('Enter');
  await a.page.locator('#messages li.msg .msg-edited').waitFor();
  await send(a.page, `${w} this one goes away`);
  const doomed = a.page.locator('#messages li.msg', { hasText: 'this one goes away' });
  await doomed.hover();
  await doomed.locator('.msg-menu-button').click();
  await a.page.getByRole('menuitem', { name: 'Delete…' }).click();
  await a.page.getByRole('menuitem', { name: 'Delete', exact: true }).click();
  await a.page.locator('#messages li.msg.deleted').waitFor();
  const markup = `<img src=x onerror=alert(1)> ${w}`;
  await post(b.page, orchard, markup);
  await post(b.page, orchard, `Plain words, then ${w.toUpperCase()} and more words around it`);
  await waitShown(a.page, 4);
  // The message services index after the commit (every search.index_interval_ms): wait
  // until the index holds the five messages and no longer the edited one's old text.
  await waitFor(async () => {
    const [now, old] = await Promise.all([w, before].map((q) => api(a.page, 'GET', `/api/v1/search?q=${q}`)));
    return now.body.results.length === 5 && old.body.results.length === 0;
  }, { message: 'the search index to catch up' });

  // Ctrl+K from the composer, while typing.
  await field.click();
  await field.pressSequentially('half a thought');
  const summary = await searchFor(a.page, w);
  assert.equal(summary, '5 messages in 3 rooms.');
  assert.equal(await a.page.evaluate(() => document.activeElement?.id), 'search-field', 'the dialog takes the focus');
  assert.equal(await field.inputValue(), 'half a thought', 'the composer keeps what was typed');

  const groups = await results(a.page);
  assert.deepEqual(groups.map((g) => [g.room, g.label]), [[orchard, `#${orchard}`], [harbour, `#${harbour}`], [titled, title]],
    'grouped by room, newest first, each named as the panel names it');
  const orchardHits = groups[0].hits;
  assert.deepEqual(orchardHits.map((h) => h.author), [bob, bob, alice]);
  assert.deepEqual(orchardHits.map((h) => h.snippet), [
    `Plain words, then ${w.toUpperCase()} and more words around it`, markup, `${w} after the edit`,
  ]);
  for (const hit of groups.flatMap((g) => g.hits)) {
    assert.equal(hit.marks.length, 1, `one word marked in “${hit.snippet}”`);
    assert.equal(hit.marks[0].toLowerCase(), w);
  }
  assert.deepEqual(orchardHits.map((h) => h.edited), [false, false, true], 'the edited one is found by its new text');
  // Never the private room Alice is not in, never the deleted message, nor a public room unasked.
  assert.equal(groups.some((g) => g.room === secret || g.room === elsewhere), false);
  const dialog = dialogOf(a.page);
  assert.equal(await dialog.getByText('secret plans').count(), 0);
  assert.equal(await dialog.getByText('this one goes away').count(), 0);
  // The markup is text: no element was made of it, and no script ran (problems would say).
  assert.equal(await a.page.locator('#search-results .search-snippet *:not(mark)').count(), 0);
  assert.equal(await a.page.locator('#search-results img').count(), 1, 'only the titled room’s lock');
  await screenshots(a.page, 'search-results');
  await checkAxe(t, a.page, 'the results', '#search-dialog');
  await assertFitsPhone(a.page);

  // The old text of the edited message is gone: the empty state says so.
  await a.page.getByLabel('Search for').fill(before);
  await a.page.getByLabel('Search for').press('Enter');
  assert.equal(await waitSummary(a.page), `No messages match “${before}” in your rooms.`);
  assert.equal(await a.page.locator('#search-results .search-group').count(), 0);

  // Public rooms too, then this room only.
  await a.page.getByLabel('Search for').fill(w);
  await a.page.getByLabel('Search public rooms too').check();
  assert.equal(await waitSummary(a.page), '6 messages in 4 rooms.');
  const everywhere = await results(a.page);
  assert.deepEqual(everywhere.find((g) => g.room === elsewhere)?.label, `#${elsewhere}`);
  assert.equal(everywhere.some((g) => g.room === secret), false, 'a private room stays private');
  await a.page.getByLabel('This room only').check();
  assert.equal(await waitSummary(a.page), '3 messages in 1 room.');
  assert.deepEqual((await results(a.page)).map((g) => g.room), [orchard]);
  await a.page.getByLabel('This room only').uncheck();
  await a.page.getByLabel('Search public rooms too').uncheck();
  await waitSummary(a.page);

  // Escape closes and gives the focus back to the box, which keeps the query.
  await a.page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  assert.deepEqual(await a.page.evaluate(() => [document.activeElement?.id, document.activeElement?.value]), ['search-box', w]);
  await checkAxe(t, a.page, 'the top bar and its search box', '#topbar');

  // A query with nothing to look for: the server's words, in the live region.
  await a.page.keyboard.press('Control+k');
  await a.page.keyboard.type(`-${w}`);
  await a.page.keyboard.press('Enter');
  await dialog.waitFor();
  assert.equal(await waitSummary(a.page), 'The search query has no word to look for.');
  assert.equal(await a.page.locator('#search-status').getAttribute('role'), 'status');
  assert.match(await a.page.locator('#search-status').getAttribute('class'), /is-error/);
  await screenshots(a.page, 'search-error');
  await a.page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });

  assert.deepEqual(expected400(a.problems), []);
  assert.deepEqual(b.problems, []);
  assert.deepEqual(c.problems, []);
  await Promise.all([a.context.close(), b.context.close(), c.context.close()]);
});

/** Whether the message `seq` is the found one: marked, focused, and inside the log's view. */
function found(page, seq) {
  return page.waitForFunction((s) => {
    const li = document.querySelector(`#messages li[data-seq="${s}"]`);
    const log = document.querySelector('#log').getBoundingClientRect();
    if (!li) return false;
    const at = li.getBoundingClientRect();
    return li.classList.contains('found') && li.getAttribute('aria-current') === 'true'
      && document.activeElement === li && at.top >= log.top - 1 && at.bottom <= log.bottom + 1;
  }, seq);
}

/** Presses `key` until the result for `seq` has the focus (at most `max` times). */
async function focusResult(page, key, seq, max = 12) {
  for (let i = 0; i < max; i += 1) {
    await page.keyboard.press(key);
    const at = await page.evaluate(() => document.activeElement?.dataset?.seq ?? null);
    if (at === String(seq)) return;
  }
  assert.fail(`${key} never reached the result for seq ${seq}`);
}

test('a result far back, chosen by keyboard, opens its room at it; the room goes on as before', async () => {
  const [alice, bob] = [unique('alice'), unique('bob')];
  const [a, b] = await Promise.all([newPage(browser), newPage(browser)]);
  await Promise.all([signUp(a.page, alice), signUp(b.page, bob)]);
  const w = word('needle');
  const filler = word('hay');
  const [stack, lobby] = [unique('stack'), unique('lobby')];
  await enterRoom(a.page, lobby);
  await enterRoom(a.page, stack);
  await a.page.goto('/');

  // Two needles, then more than a page of hay after them: neither is on the page a join shows.
  const first = await post(b.page, stack, `the first ${w} of the stack`);
  const second = await post(b.page, stack, `the second ${w} of the stack`);
  const HAY = 64;
  for (let i = 1; i <= HAY; i += 1) await post(b.page, stack, `${filler} number ${i}`);
  // The message services index after the commit: wait until the index holds all of them.
  await waitFor(async () => {
    const [needles, hay] = await Promise.all([w, filler].map((q) => api(a.page, 'GET', `/api/v1/search?q=${q}&limit=100`)));
    return needles.body.results.length === 2 && hay.body.results.length === HAY;
  }, { message: 'the search index to catch up' });

  // In the room itself: the result opens in place, loading older pages until it is there.
  await a.page.goto(`/room.html?name=${stack}`);
  await waitJoined(a.page);
  await waitShown(a.page, 50);
  assert.equal(await a.page.locator(`#messages li[data-seq="${first.seq}"]`).count(), 0, 'not on the first page');
  await a.page.evaluate(() => { window.samePage = true; });
  assert.equal(await searchFor(a.page, w), '2 messages in 1 room.');
  await a.page.keyboard.press('ArrowDown'); // from the field to the newest result
  assert.equal(await a.page.evaluate(() => document.activeElement.dataset.seq), String(second.seq));
  await a.page.keyboard.press('ArrowDown');
  assert.equal(await a.page.evaluate(() => document.activeElement.dataset.seq), String(first.seq));
  await a.page.keyboard.press('Enter');
  await found(a.page, first.seq);
  assert.equal(await a.page.evaluate(() => window.samePage), true, 'the same page, not loaded again');
  assert.equal(new URL(a.page.url()).searchParams.get('at'), String(first.seq));
  assert.equal(await dialogOf(a.page).isVisible(), false);
  await screenshots(a.page, 'search-opened-in-place');

  // Live messages still arrive, at the end, without pulling the view away from the message found.
  await post(b.page, stack, 'live after the jump');
  await a.page.locator('#messages li.msg', { hasText: 'live after the jump' }).waitFor();
  let messages = await shown(a.page);
  assertOrdered(assert, messages);
  assert.equal(messages.at(-1).text, 'live after the jump');
  await found(a.page, first.seq);
  // Scrolling back reads the older pages, down to the start of the room.
  await a.page.locator('#log').evaluate((log) => { log.scrollTop = 0; });
  await a.page.getByText('This is the start of the room.').waitFor();
  messages = await shown(a.page);
  assertOrdered(assert, messages);
  assert.equal(messages.length, 2 + HAY + 1, 'every message once');

  // From another room, Tab alone reaches the result; Enter opens its room at it.
  await a.page.goto(`/room.html?name=${lobby}`);
  await waitJoined(a.page);
  await searchFor(a.page, w);
  await focusResult(a.page, 'Tab', second.seq);
  await Promise.all([
    a.page.waitForURL((url) => url.searchParams.get('name') === stack && url.searchParams.get('at') === String(second.seq)),
    a.page.keyboard.press('Enter'),
  ]);
  await waitJoined(a.page);
  await found(a.page, second.seq);
  assertOrdered(assert, await shown(a.page));
  await screenshots(a.page, 'search-opened-room');

  // More than a page of results: Load more, by keyboard, appends the next page and focuses it.
  assert.equal(await searchFor(a.page, filler), '20 messages in 1 room so far; more can be loaded.');
  const more = a.page.getByRole('button', { name: 'Load more results' });
  await more.focus();
  await a.page.keyboard.press('Enter');
  await a.page.waitForFunction(() => document.querySelectorAll('#search-results a.search-hit').length === 40);
  const focused = await a.page.evaluate(() => {
    const hits = [...document.querySelectorAll('#search-results a.search-hit')];
    return hits.indexOf(document.activeElement);
  });
  assert.equal(focused, 20, 'the focus is on the first new result');
  const seqs = (await results(a.page))[0].hits.map((h) => h.seq);
  assert.deepEqual(seqs, [...seqs].sort((x, y) => y - x), 'newest first');
  assert.equal(new Set(seqs).size, 40, 'no result twice');
  await screenshots(a.page, 'search-load-more');

  assert.deepEqual(a.problems, []);
  assert.deepEqual(b.problems, []);
  await Promise.all([a.context.close(), b.context.close()]);
});
