// @ts-check
'use strict';
const assert = require('node:assert/strict');
const { test } = require('node:test');
const { ACTIONS, CODES, describeError } = require('../src/errors');

/**
 * @param {number} code
 * @param {string} message
 * @param {any} [data]
 */
function rpcError(code, message, data) {
  return Object.assign(new Error(message), { code, data });
}

test('the helper\'s message is shown as it is, with the button that helps', () => {
  assert.deepEqual(describeError(rpcError(CODES.NO_TARGET, 'no target: pymirrord needs a target. Pick a target')), {
    message: 'pymirrord: no target: pymirrord needs a target. Pick a target',
    actions: [ACTIONS.SELECT_TARGET],
  });
  assert.deepEqual(describeError(rpcError(CODES.CONFIG_INVALID, 'the config has errors', { errors: ['a.json:1:2: error: x', 'a.json:3:4: error: y'] })), {
    message: 'pymirrord: the config has errors',
    actions: [ACTIONS.OPEN_CONFIG],
    detail: 'a.json:1:2: error: x\na.json:3:4: error: y',
  });
  assert.deepEqual(describeError(rpcError(CODES.NOT_PERMITTED, 'not permitted')), { message: 'pymirrord: not permitted', actions: [ACTIONS.SHOW_OUTPUT] });
  assert.deepEqual(describeError(rpcError(CODES.LAUNCH_INVALID, 'the program x does not exist')),
    { message: 'pymirrord: the program x does not exist', actions: [] });
});

test('cancellations are silent', () => {
  assert.equal(describeError(rpcError(CODES.CANCELLED, 'cancelled')), null);
  assert.equal(describeError(Object.assign(new Error('Canceled'), { name: 'Canceled' })), null);
});

test('a helper that is not running: its reason, or what to check', () => {
  const down = describeError(rpcError(CODES.CONNECTION_INACTIVE, 'Client is not running'));
  assert.match(down?.message ?? '', /helper \(pymirrord lsp\) is not running.*pymirrord\.path/);
  assert.deepEqual(down?.actions, [ACTIONS.SHOW_OUTPUT, ACTIONS.OPEN_SETTINGS]);
  const reason = describeError(rpcError(CODES.CONNECTION_INACTIVE, 'pymirrord: pymirrord.path is /x, which does not exist.'));
  assert.equal(reason?.message, 'pymirrord: pymirrord.path is /x, which does not exist.');
});

test('anything else still reads as a sentence', () => {
  assert.deepEqual(describeError(new Error('boom')), { message: 'pymirrord: boom', actions: [ACTIONS.SHOW_OUTPUT] });
  assert.deepEqual(describeError('odd'), { message: 'pymirrord: odd', actions: [ACTIONS.SHOW_OUTPUT] });
});
