// @ts-check
'use strict';
/**
 * The extension's entry point: start the helper, register the commands, the launch provider and the
 * status bar item. Everything with logic lives in the pure modules beside this one.
 */

const vscode = require('vscode');
const { Helper } = require('./client');
const { COMMANDS, createCommands, rememberedTarget } = require('./commands');
const { LaunchProvider, endSessionOf } = require('./debug');
const { PYTHON_TYPES } = require('./launch');
const { FilterPanels } = require('./filter-panel');
const { SessionsModel } = require('./sessions');
const { SessionsTree } = require('./sessions-view');
const { METHODS } = require('./protocol');

/** @type {Helper | undefined} */
let helper;

/** @param {vscode.ExtensionContext} context */
async function activate(context) {
  const output = vscode.window.createOutputChannel('pymirrord');
  const model = new SessionsModel();
  const status = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 0);
  status.name = 'pymirrord';
  status.command = COMMANDS.showSessions;
  const tree = new SessionsTree(model);
  const render = () => {
    status.text = model.statusText();
    status.tooltip = model.tooltip();
    status.show();
    tree.refresh();
  };
  const refresh = async () => {
    model.reset(await started.request(METHODS.sessions, {}));
    render();
  };

  /** @type {ReturnType<typeof createCommands>} */
  let commands;
  const started = new Helper(output, {
    onSessionEvent: (event) => {
      if (model.apply(event) === 'unknown') void refresh().catch(() => undefined);
      render();
    },
    onStarted: () => void refresh().catch((error) => output.appendLine(`sessions: ${error.message}`)),
    chooseTarget: (uri) => commands.selectTarget(uri),
  });
  helper = started;
  const panels = new FilterPanels({ extensionUri: context.extensionUri, state: context.workspaceState, helper: started });
  commands = createCommands({
    helper: started, model, output, state: context.workspaceState, refresh,
    openFilterEditor: (uri) => panels.open(uri),
  });

  const provider = new LaunchProvider({
    helper: started,
    output,
    rememberedTarget: () => rememberedTarget(context.workspaceState),
    selectTarget: () => commands.selectTarget(),
    openConfig: (uri) => vscode.window.showTextDocument(uri),
  });
  context.subscriptions.push(
    output,
    status,
    vscode.commands.registerCommand(COMMANDS.selectTarget, commands.selectTarget),
    vscode.commands.registerCommand(COMMANDS.showSessions, commands.showSessions),
    vscode.commands.registerCommand(COMMANDS.stopSession, commands.stopSession),
    vscode.commands.registerCommand(COMMANDS.testFilter, commands.testFilter),
    vscode.commands.registerCommand(COMMANDS.editFilter, commands.editFilter),
    tree,
    vscode.window.createTreeView('pymirrord.sessions', { treeDataProvider: tree, showCollapseAll: true }),
    panels,
    ...PYTHON_TYPES.map((type) => vscode.debug.registerDebugConfigurationProvider(type, provider)),
    vscode.debug.onDidTerminateDebugSession((session) => void endSessionOf(session, started)),
    vscode.workspace.onDidChangeConfiguration((change) => {
      if (change.affectsConfiguration('pymirrord.path')) void started.start();
    }),
    { dispose: () => void started.stop() },
  );
  render();
  await started.start();
}

async function deactivate() {
  // Stopping the client sends shutdown and exit: the helper ends its sessions (agents, rules, sockets).
  await helper?.stop();
  helper = undefined;
}

module.exports = { activate, deactivate };
