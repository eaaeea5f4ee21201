// @ts-check
'use strict';
/**
 * The extension's commands: pick a target, show and stop sessions, test an HTTP filter.
 */

const vscode = require('vscode');
const { ACTIONS } = require('./errors');
const { httpFilterOf } = require('./config-files');
const { parseFilterInput, parseRequestLine, reportLines } = require('./filter');
const { emptyMessage, targetItems } = require('./targets');
const { sessionItems, sessionSummary, requestLine } = require('./sessions');
const { reportError, withProgress } = require('./ui');
const { commandConfig } = require('./workspace');
const { METHODS, SET_TARGET_COMMAND } = require('./protocol');

/** The extension's commands, as contributed in package.json. */
const COMMANDS = Object.freeze({
  selectTarget: 'pymirrord.selectTarget',
  showSessions: 'pymirrord.showSessions',
  stopSession: 'pymirrord.stopSession',
  testFilter: 'pymirrord.testFilter',
  editFilter: 'pymirrord.editFilter',
});
const REMEMBERED_TARGET = 'pymirrord.target';

/**
 * @typedef {import('./client').Helper} Helper
 * @typedef {import('./sessions').SessionsModel} SessionsModel
 * @typedef {{helper: Helper, model: SessionsModel, output: vscode.OutputChannel, state: vscode.Memento,
 *   refresh: () => Promise<void>, openFilterEditor: (uri: vscode.Uri) => unknown}} Context
 */

/** @param {Context} ctx */
function createCommands(ctx) {
  const { helper, model, output, state } = ctx;
  let lastRequestLine = 'GET /api | X-User: alice';

  /**
   * Pick a target; write it into the config file through the helper, or remember it for launches when
   * the workspace has no config file.
   * @param {string | vscode.Uri} [uriArgument] the config file (the helper's code action passes its URI)
   * @returns {Promise<string | undefined>} the target chosen
   */
  async function selectTarget(uriArgument) {
    const configUri = typeof uriArgument === 'string' ? vscode.Uri.parse(uriArgument)
      : uriArgument instanceof vscode.Uri ? uriArgument : await commandConfig();
    let listing;
    try {
      listing = await withProgress('pymirrord: listing targets', (token) =>
        helper.request(METHODS.listTargets, configUri ? { configUri: configUri.toString() } : {}, token));
    } catch (error) {
      await reportError(error, output);
      return undefined;
    }
    for (const note of listing.notes || []) output.appendLine(`targets: ${note}`);
    const empty = emptyMessage(listing);
    if (empty) {
      void vscode.window.showWarningMessage(empty);
      return undefined;
    }
    const current = configUri ? await configuredTarget(configUri) : rememberedTarget(state);
    const picked = await vscode.window.showQuickPick(targetItems(listing, current), {
      title: 'pymirrord: select the target',
      placeHolder: configUri ? `written into ${vscode.workspace.asRelativePath(configUri)}` : 'remembered for this workspace',
      matchOnDescription: true,
      matchOnDetail: true,
    });
    if (!picked?.target) return undefined;
    if (!configUri) {
      await state.update(REMEMBERED_TARGET, picked.target);
      void vscode.window.showInformationMessage(`pymirrord: launches in this workspace use ${picked.target} ` +
        '(there is no .mirrord/mirrord.json to write it in).');
      return picked.target;
    }
    try {
      const document = await vscode.workspace.openTextDocument(configUri);
      const result = await helper.request(METHODS.executeCommand,
        { command: SET_TARGET_COMMAND, arguments: [configUri.toString(), picked.target] });
      if (!result?.applied) throw new Error(`the editor did not apply the change to ${vscode.workspace.asRelativePath(configUri)}`);
      // Launches read the file from disk.
      await document.save();
    } catch (error) {
      await reportError(error, output);
      return undefined;
    }
    return picked.target;
  }

  /**
   * The target the config names now (the helper's verdict), for marking it in the picker.
   * @param {vscode.Uri} configUri
   */
  async function configuredTarget(configUri) {
    try {
      const verdict = await helper.request(METHODS.verifyConfig, { uri: configUri.toString() });
      return verdict?.type === 'Success' ? verdict.config?.path ?? undefined : undefined;
    } catch {
      return undefined;
    }
  }

  /** @returns {Promise<import('./sessions').Session[] | undefined>} */
  async function liveSessions() {
    try {
      await ctx.refresh();
    } catch (error) {
      await reportError(error, output);
      return undefined;
    }
    const sessions = model.list();
    if (sessions.length === 0) void vscode.window.showInformationMessage('pymirrord: no live session.');
    return sessions.length ? sessions : undefined;
  }

  async function showSessions() {
    const sessions = await liveSessions();
    if (!sessions) return;
    const picked = await vscode.window.showQuickPick(sessionItems(sessions), { title: 'pymirrord: live sessions' });
    const session = picked && model.sessions.get(picked.sessionId);
    if (!session) return;
    output.appendLine(`session ${session.sessionId}: ${sessionSummary(session)}`);
    for (const request of session.lastRequests) output.appendLine(`  ${requestLine(request)}`);
    output.show(true);
    const choice = await vscode.window.showInformationMessage(`pymirrord: ${sessionSummary(session)}`, 'Stop Session');
    if (choice) await stopSession(session.sessionId);
  }

  /** @param {string | {sessionId?: unknown}} [argument] a session id, or the Sessions view's node */
  async function stopSession(argument) {
    let sessionId = typeof argument === 'string' ? argument
      : typeof argument?.sessionId === 'string' ? argument.sessionId : undefined;
    if (sessionId === undefined) {
      const sessions = await liveSessions();
      if (!sessions) return;
      const picked = sessions.length === 1 ? sessionItems(sessions)[0]
        : await vscode.window.showQuickPick(sessionItems(sessions), { title: 'pymirrord: stop which session?' });
      if (!picked) return;
      sessionId = picked.sessionId;
    }
    try {
      const result = await helper.request(METHODS.stopSession, { sessionId });
      model.apply({ sessionId, kind: 'ended', reason: 'stopped from the editor' });
      void vscode.window.showInformationMessage(`pymirrord: stopped the session for ${result.session?.target ?? sessionId}.`);
    } catch (error) {
      await reportError(error, output);
    }
    await ctx.refresh().catch(() => undefined);
  }

  async function testFilter() {
    const filter = await filterToTest();
    if (!filter) return;
    for (;;) {
      const line = await vscode.window.showInputBox({
        title: 'pymirrord: test the HTTP filter',
        prompt: 'A request: METHOD PATH | Header: value | ...',
        value: lastRequestLine,
        validateInput: (text) => {
          const parsed = parseRequestLine(text);
          return 'error' in parsed ? parsed.error : undefined;
        },
      });
      if (line === undefined) return;
      lastRequestLine = line;
      const parsed = parseRequestLine(line);
      if ('error' in parsed) return;
      let report;
      try {
        report = await helper.request(METHODS.testFilter, { filter, requests: [parsed.request] });
      } catch (error) {
        await reportError(error, output);
        return;
      }
      const lines = reportLines(report, [parsed.request]);
      for (const text of lines) output.appendLine(`filter ${JSON.stringify(filter)}: ${text}`);
      const show = report.valid ? vscode.window.showInformationMessage : vscode.window.showErrorMessage;
      const again = await show(`pymirrord: ${lines.join('; ')}`, ...(report.valid ? ['Test Another'] : []));
      if (!again) return;
    }
  }

  /** The http_filter of the config in the active editor, else one the user types. */
  async function filterToTest() {
    const document = vscode.window.activeTextEditor?.document;
    const fromFile = document ? httpFilterOf(document.getText()) : undefined;
    if (fromFile) return fromFile;
    const text = await vscode.window.showInputBox({
      title: 'pymirrord: test an HTTP filter',
      prompt: 'A header regex (X-User: alice), or an http_filter object as in the config',
      placeHolder: '{"path_filter": "^/api"}',
      validateInput: (value) => {
        const parsed = parseFilterInput(value);
        return 'error' in parsed ? parsed.error : undefined;
      },
    });
    if (text === undefined) return undefined;
    const parsed = parseFilterInput(text);
    return 'filter' in parsed ? parsed.filter : undefined;
  }

  /**
   * Open the HTTP filter editor for a config file.
   * @param {string | vscode.Uri} [uriArgument] the config file (the helper's code lens passes its URI)
   */
  async function editFilter(uriArgument) {
    const uri = typeof uriArgument === 'string' ? vscode.Uri.parse(uriArgument)
      : uriArgument instanceof vscode.Uri ? uriArgument : await commandConfig();
    if (!uri) {
      void vscode.window.showInformationMessage('pymirrord: there is no config file to edit: add ' +
        '.mirrord/mirrord.json to the workspace (an empty {} will do), then edit its filter.');
      return;
    }
    ctx.openFilterEditor(uri);
  }

  return { selectTarget, showSessions, stopSession, testFilter, editFilter };
}

/**
 * The target picked for a workspace without a config file.
 * @param {vscode.Memento} state
 * @returns {string | undefined}
 */
function rememberedTarget(state) {
  return state.get(REMEMBERED_TARGET);
}

module.exports = { COMMANDS, createCommands, rememberedTarget, ACTIONS };
