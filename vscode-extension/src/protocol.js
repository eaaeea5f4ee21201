// @ts-check
'use strict';
/**
 * The names of the helper's requests, notification and workspace commands (docs/helper-protocol.md) that
 * the extension uses. test/helper.test.js checks them against the real helper.
 */

const METHODS = Object.freeze({
  listTargets: 'pymirrord/listTargets',
  verifyConfig: 'pymirrord/verifyConfig',
  prepareLaunch: 'pymirrord/prepareLaunch',
  testFilter: 'pymirrord/testFilter',
  filterDocument: 'pymirrord/filterDocument',
  filterEdit: 'pymirrord/filterEdit',
  sessions: 'pymirrord/sessions',
  stopSession: 'pymirrord/stopSession',
  executeCommand: 'workspace/executeCommand',
});

/** Notification: one per new session, process, port, connection, request, or end. */
const SESSION_EVENT = 'pymirrord/sessionEvent';
/** Helper command [uri, target]: write the target into that config document. */
const SET_TARGET_COMMAND = 'pymirrord.setTarget';
/** Helper command [uri]: the helper's own picker, which the extension answers with its QuickPick. */
const CHOOSE_TARGET_COMMAND = 'pymirrord.chooseTarget';

module.exports = { METHODS, SESSION_EVENT, SET_TARGET_COMMAND, CHOOSE_TARGET_COMMAND };
