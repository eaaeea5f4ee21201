// @ts-check
'use strict';
/**
 * Finding the config file and the folder a command is about.
 */

const vscode = require('vscode');
const { CONFIG_GLOB, isConfigPath, pickConfigFile } = require('./config-files');

/** The folder of the active editor, else the first workspace folder. */
function activeFolder() {
  const uri = vscode.window.activeTextEditor?.document.uri;
  return (uri && vscode.workspace.getWorkspaceFolder(uri)) || vscode.workspace.workspaceFolders?.[0];
}

/**
 * The config file of a folder (see pickConfigFile), or undefined.
 * @param {vscode.WorkspaceFolder | undefined} folder
 * @returns {Promise<vscode.Uri | undefined>}
 */
async function findConfig(folder) {
  if (!folder) return undefined;
  const found = await vscode.workspace.findFiles(new vscode.RelativePattern(folder, CONFIG_GLOB), '**/node_modules/**', 50);
  const chosen = pickConfigFile(found.map((uri) => uri.fsPath));
  return chosen ? vscode.Uri.file(chosen) : undefined;
}

/**
 * The config file a command is about: the one in the active editor, else the active folder's.
 * @returns {Promise<vscode.Uri | undefined>}
 */
async function commandConfig() {
  const document = vscode.window.activeTextEditor?.document;
  if (document && document.uri.scheme === 'file' && isConfigPath(document.uri.fsPath)) return document.uri;
  return findConfig(activeFolder());
}

module.exports = { activeFolder, findConfig, commandConfig };
