// @ts-check
'use strict';
/**
 * What the user sees when a helper request fails. The helper's JSON-RPC error messages already say what
 * went wrong and what to do; this adds the button that does it and leaves cancellations silent.
 */

/** The helper's error codes (docs/helper-protocol.md), plus the JSON-RPC ones the client produces. */
const CODES = Object.freeze({
  INVALID_PARAMS: -32602,
  CONFIG_INVALID: -32001,
  NO_TARGET: -32002,
  LAUNCH_INVALID: -32004,
  SESSION_FAILED: -32005,
  UNKNOWN_SESSION: -32006,
  NOT_PERMITTED: -32007,
  CANCELLED: -32800,
  PENDING_RESPONSE_REJECTED: -32097,
  CONNECTION_INACTIVE: -32096,
});

/** Button titles; the extension maps each to what it does. */
const ACTIONS = Object.freeze({
  SELECT_TARGET: 'Select Target',
  OPEN_CONFIG: 'Open Config',
  SHOW_OUTPUT: 'Show Output',
  OPEN_SETTINGS: 'Open Settings',
});

const HELPER_DOWN = 'pymirrord: the helper (pymirrord lsp) is not running. The pymirrord output says why it ' +
  'stopped; check the pymirrord.path setting (the helper restarts when it changes).';

/**
 * @typedef {{message: string, actions: string[], detail?: string}} UserError
 */

/**
 * @param {unknown} error what a request rejected with (a vscode-jsonrpc ResponseError, or any error)
 * @returns {UserError | null} null for a cancellation, which needs no message
 */
function describeError(error) {
  const { code, message, data } = /** @type {{code?: unknown, message?: unknown, data?: any}} */ (error ?? {});
  const text = typeof message === 'string' && message ? message : String(error);
  if (code === CODES.CANCELLED || (error instanceof Error && error.name === 'Canceled')) return null;
  if (code === CODES.CONNECTION_INACTIVE || code === CODES.PENDING_RESPONSE_REJECTED) {
    // The extension's own reason (why the helper did not start) already reads as a sentence for the user.
    const reason = text.startsWith('pymirrord: ') ? text : HELPER_DOWN;
    return { message: reason, actions: [ACTIONS.SHOW_OUTPUT, ACTIONS.OPEN_SETTINGS] };
  }
  /** @type {UserError} */
  const result = { message: `pymirrord: ${text}`, actions: [] };
  switch (code) {
    case CODES.NO_TARGET:
      result.actions.push(ACTIONS.SELECT_TARGET);
      break;
    case CODES.CONFIG_INVALID:
      result.actions.push(ACTIONS.OPEN_CONFIG);
      if (Array.isArray(data?.errors) && data.errors.length) result.detail = data.errors.join('\n');
      break;
    case CODES.SESSION_FAILED:
    case CODES.NOT_PERMITTED:
    case undefined:
      result.actions.push(ACTIONS.SHOW_OUTPUT);
      break;
    default:
      break;
  }
  return result;
}

module.exports = { CODES, ACTIONS, describeError };
