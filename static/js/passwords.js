// A new password typed twice, as the profile's password change and the reset page ask for
// it: held to the server's rules here first (rules.js) so that people learn why before a
// round trip, and the two must match, so that a typo cannot lock someone out of the account
// they are securing.

import { $, showProblem } from './dom.js';
import { passwordError } from './rules.js';

/**
 * The pair of fields `newId` and `confirmId` (each with its `-error` line). `username`
 * returns what the password may not contain, '' where the page does not know it (the server
 * then says so). The fields are checked when the form is sent, not when one is left: a
 * problem line appearing on blur moves the button away between mouse-down and mouse-up,
 * and the click that left the field is lost.
 */
export function newPasswordPair(newId, confirmId, username = () => '') {
  const problems = {
    [newId]: () => passwordError($(`#${newId}`).value, username()),
    [confirmId]: () => ($(`#${confirmId}`).value === $(`#${newId}`).value ? null : 'The two passwords do not match.'),
  };
  const ids = [newId, confirmId];
  return {
    /** Shows both fields' problems and returns the id of the first bad field, or null when both are fine. */
    check() {
      let first = null;
      for (const id of ids) {
        const problem = problems[id]();
        showProblem(id, problem);
        if (problem && !first) first = id;
      }
      return first;
    },
    /** Clears both fields and their problems (after a change went through). */
    clear() {
      for (const id of ids) { $(`#${id}`).value = ''; showProblem(id, null); }
    },
  };
}
