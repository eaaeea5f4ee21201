// @ts-check
'use strict';
/**
 * Showing what went wrong, with the buttons that help, and progress for what takes time.
 */

const vscode = require('vscode');
const { ACTIONS, describeError } = require('./errors');

/**
 * Tell the user about a failed request (nothing for a cancellation) and run the button they press.
 * @param {unknown} error
 * @param {vscode.OutputChannel} output
 * @param {{[title: string]: () => unknown}} [handlers] what the buttons of describeError do, beyond
 *   Show Output and Open Settings
 */
async function reportError(error, output, handlers = {}) {
  const described = describeError(error);
  if (!described) return;
  output.appendLine(described.message);
  if (described.detail) output.appendLine(described.detail);
  /** @type {{[title: string]: () => unknown}} */
  const all = {
    [ACTIONS.SHOW_OUTPUT]: () => output.show(true),
    [ACTIONS.OPEN_SETTINGS]: () => vscode.commands.executeCommand('workbench.action.openSettings', 'pymirrord'),
    ...handlers,
  };
  const buttons = described.actions.filter((title) => all[title]);
  if (described.detail && !buttons.includes(ACTIONS.SHOW_OUTPUT)) buttons.push(ACTIONS.SHOW_OUTPUT);
  const choice = await vscode.window.showErrorMessage(described.message, ...buttons);
  if (choice) await all[choice]();
}

/**
 * Run a helper request under a cancellable notification.
 * @template T
 * @param {string} title
 * @param {(token: vscode.CancellationToken, progress: vscode.Progress<{message?: string, increment?: number}>) => Promise<T>} work
 * @returns {Promise<T>}
 */
function withProgress(title, work) {
  return Promise.resolve(vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title, cancellable: true },
    (progress, token) => work(token, progress),
  ));
}

module.exports = { reportError, withProgress };
