// @ts-check
'use strict';
/**
 * The helper process (`pymirrord lsp` over stdio) through vscode-languageclient: config-file features come
 * from the language client itself; pymirrord's own requests go through `request`.
 */

const fs = require('node:fs');
const vscode = require('vscode');
const { LanguageClient, RevealOutputChannelOn, WorkDoneProgress } = require('vscode-languageclient/node');
const { DOCUMENT_PATTERNS } = require('./config-files');
const { helperCommand } = require('./helper-path');
const { CHOOSE_TARGET_COMMAND, SESSION_EVENT } = require('./protocol');

class Helper {
  /**
   * @param {vscode.OutputChannel} output
   * @param {{onSessionEvent: (event: any) => void, onStarted: () => void,
   *   chooseTarget: (uri: string | undefined) => Promise<unknown>}} hooks
   */
  constructor(output, hooks) {
    this.output = output;
    this.hooks = hooks;
    /** @type {LanguageClient | undefined} */
    this.client = undefined;
    /** @type {string | undefined} why the helper is not running, when it is not */
    this.failure = undefined;
  }

  /** Start the helper (stopping a running one first); a failure is shown and remembered, not thrown. */
  async start() {
    await this.stop();
    const setting = vscode.workspace.getConfiguration('pymirrord').get('path', '');
    const folders = (vscode.workspace.workspaceFolders || []).map((folder) => folder.uri.fsPath);
    const found = helperCommand(String(setting || ''), { folders, exists: (file) => fs.existsSync(file) });
    if ('error' in found) {
      this.failure = `pymirrord: ${found.error}`;
      this.output.appendLine(this.failure);
      void showSettingsError(this.failure);
      return;
    }
    this.output.appendLine(`starting ${found.command} ${found.args.join(' ')} (from ${found.source})`);
    const client = new LanguageClient('pymirrord', 'pymirrord', { command: found.command, args: found.args }, {
      documentSelector: DOCUMENT_PATTERNS.map((pattern) => ({ scheme: 'file', pattern })),
      outputChannel: this.output,
      // Failed requests are reported by the extension, with the helper's message and a button.
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      middleware: {
        executeCommand: (command, args, next) =>
          command === CHOOSE_TARGET_COMMAND ? this.hooks.chooseTarget(args[0]) : next(command, args),
      },
    });
    client.onNotification(SESSION_EVENT, (event) => this.hooks.onSessionEvent(event));
    try {
      await client.start();
    } catch (error) {
      this.failure = `pymirrord: the helper ${found.command} (from ${found.source}) did not start: ` +
        `${/** @type {Error} */ (error).message}. Install pymirrord (pip install pymirrord) or set pymirrord.path.`;
      this.output.appendLine(this.failure);
      void showSettingsError(this.failure);
      return;
    }
    this.client = client;
    this.failure = undefined;
    this.hooks.onStarted();
  }

  async stop() {
    const client = this.client;
    this.client = undefined;
    if (client) await client.stop().catch((error) => this.output.appendLine(`stopping the helper: ${error}`));
  }

  /**
   * A pymirrord request; rejects with the helper's JSON-RPC error (code, message, data).
   * @param {string} method
   * @param {unknown} params
   * @param {vscode.CancellationToken} [token]
   * @returns {Promise<any>}
   */
  async request(method, params, token) {
    if (!this.client) {
      const reason = this.failure ?? 'pymirrord: the helper (pymirrord lsp) is not running.';
      throw Object.assign(new Error(reason), { code: -32096 });
    }
    return token ? this.client.sendRequest(method, params, token) : this.client.sendRequest(method, params);
  }

  /**
   * Receive the helper's `$/progress` values for a token the extension passed as `workDoneToken`.
   * @param {string} token
   * @param {(value: any) => void} handler
   * @returns {vscode.Disposable}
   */
  onProgress(token, handler) {
    return this.client ? this.client.onProgress(WorkDoneProgress.type, token, handler) : { dispose() {} };
  }
}

/** @param {string} message */
async function showSettingsError(message) {
  const choice = await vscode.window.showErrorMessage(message, 'Open Settings');
  if (choice) await vscode.commands.executeCommand('workbench.action.openSettings', 'pymirrord.path');
}

module.exports = { Helper };
