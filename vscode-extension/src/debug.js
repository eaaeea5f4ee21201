// @ts-check
'use strict';
/**
 * Python debug launches with `"pymirrord": true`: before the debugger starts, the helper starts a session
 * (`pymirrord/prepareLaunch`, under a cancellable progress notification) and the launch gets its env.
 */

const vscode = require('vscode');
const { ACTIONS } = require('./errors');
const { mergeLaunchEnv, prepareLaunchParams, pymirrordOptions, unsupportedReason } = require('./launch');
const { resolveConfigFile } = require('./config-files');
const { ProgressSteps } = require('./progress');
const { reportError, withProgress } = require('./ui');
const { findConfig } = require('./workspace');
const { METHODS } = require('./protocol');

/**
 * @typedef {import('./client').Helper} Helper
 * @typedef {{helper: Helper, output: vscode.OutputChannel, rememberedTarget: () => string | undefined,
 *   selectTarget: () => Promise<unknown>, openConfig: (uri: vscode.Uri) => Thenable<unknown>}} Context
 */

let launches = 0;

/** @implements {vscode.DebugConfigurationProvider} */
class LaunchProvider {
  /** @param {Context} ctx */
  constructor(ctx) {
    this.ctx = ctx;
  }

  /**
   * @param {vscode.WorkspaceFolder | undefined} folder
   * @param {vscode.DebugConfiguration} config
   * @param {vscode.CancellationToken} [token]
   * @returns {Promise<vscode.DebugConfiguration | undefined>} undefined stops the launch (the user was told why)
   */
  async resolveDebugConfigurationWithSubstitutedVariables(folder, config, token) {
    const options = pymirrordOptions(config);
    if (!options) return config;
    const { helper, output } = this.ctx;
    if (!vscode.workspace.getConfiguration('pymirrord', folder?.uri).get('enabled', true)) {
      output.appendLine(`${config.name}: pymirrord.enabled is off, launching without pymirrord`);
      return config;
    }
    const unsupported = unsupportedReason(config);
    if (unsupported) {
      void vscode.window.showErrorMessage(`pymirrord: ${unsupported}`);
      return undefined;
    }
    const configUri = options.configFile
      ? vscode.Uri.file(resolveConfigFile(options.configFile, folder?.uri.fsPath))
      : await findConfig(folder);
    // A target picked for a workspace without a config file; a config file's own target wins otherwise.
    const target = options.target ?? (configUri ? undefined : this.ctx.rememberedTarget());
    const params = prepareLaunchParams(config, { configUri: configUri?.toString(), target, folder: folder?.uri.fsPath });
    const workDoneToken = `pymirrord-launch-${process.pid}-${++launches}`;
    let result;
    try {
      result = await withProgress(`pymirrord: ${config.name || 'launch'}`, async (progressToken, progress) => {
        const cancel = new vscode.CancellationTokenSource();
        const links = [progressToken.onCancellationRequested(() => cancel.cancel())];
        if (token) links.push(token.onCancellationRequested(() => cancel.cancel()));
        const steps = new ProgressSteps();
        links.push(helper.onProgress(workDoneToken, (value) => progress.report(steps.next(value))));
        try {
          return await helper.request(METHODS.prepareLaunch, { ...params, workDoneToken }, cancel.token);
        } finally {
          links.forEach((link) => link.dispose());
          cancel.dispose();
        }
      });
    } catch (error) {
      await reportError(error, output, {
        [ACTIONS.SELECT_TARGET]: () => this.ctx.selectTarget(),
        [ACTIONS.OPEN_CONFIG]: () => (configUri ? this.ctx.openConfig(configUri) : undefined),
      });
      return undefined;
    }
    output.appendLine(`${config.name}: session ${result.sessionId} on ${result.target} (${result.mode})`);
    for (const warning of result.warnings || []) output.appendLine(`  ${warning}`);
    if ((result.warnings || []).length) {
      void vscode.window.showWarningMessage(`pymirrord: the config has ${result.warnings.length} warning(s); see the pymirrord output.`);
    }
    return /** @type {vscode.DebugConfiguration} */ (mergeLaunchEnv(config, result));
  }
}

/**
 * When a debug session that pymirrord prepared ends, end its pymirrord session too (the helper would, a
 * little later, once the process is gone; this also covers a launch whose process never started).
 * @param {vscode.DebugSession} session
 * @param {Helper} helper
 */
async function endSessionOf(session, helper) {
  const sessionId = session.configuration?.pymirrordSessionId;
  if (typeof sessionId !== 'string' || session.parentSession) return;
  // Unknown session: it has ended already.
  await helper.request(METHODS.stopSession, { sessionId }).catch(() => undefined);
}

module.exports = { LaunchProvider, endSessionOf };
