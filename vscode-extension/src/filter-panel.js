// @ts-check
'use strict';
/**
 * The filter editor's webview panel: one per config file, its page from media/, its messages answered by
 * FilterEditorHost. Save applies the helper's edits as one WorkspaceEdit and saves the file, so the
 * language server sees the change (and updates its diagnostics) at once and launches read the new filter.
 */

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const vscode = require('vscode');
const { FilterEditorHost, SAMPLES_KEY, webviewHtml } = require('./filter-editor');

const VIEW_TYPE = 'pymirrord.filterEditor';

/**
 * @typedef {{request: (method: string, params: any) => Promise<any>}} Requester
 */

class FilterPanels {
  /**
   * @param {{extensionUri: vscode.Uri, state: vscode.Memento, helper: Requester}} options
   */
  constructor(options) {
    this.options = options;
    /** @type {Map<string, vscode.WebviewPanel>} */
    this.panels = new Map();
  }

  /**
   * Open (or reveal) the editor for a config file.
   * @param {vscode.Uri} uri
   */
  open(uri) {
    const key = uri.toString();
    const existing = this.panels.get(key);
    if (existing) {
      existing.reveal();
      return existing;
    }
    const media = vscode.Uri.joinPath(this.options.extensionUri, 'media');
    const name = vscode.workspace.asRelativePath(uri);
    const panel = vscode.window.createWebviewPanel(VIEW_TYPE, `HTTP filter: ${path.basename(uri.fsPath)}`,
      vscode.ViewColumn.Beside, { enableScripts: true, localResourceRoots: [media], retainContextWhenHidden: true });
    this.panels.set(key, panel);
    const webview = panel.webview;
    const template = fs.readFileSync(path.join(media.fsPath, 'filter-editor.html'), 'utf8');
    webview.html = webviewHtml(template, {
      cspSource: webview.cspSource,
      nonce: crypto.randomBytes(16).toString('base64'),
      scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(media, 'filter-editor.js')).toString(),
      styleUri: webview.asWebviewUri(vscode.Uri.joinPath(media, 'filter-editor.css')).toString(),
    });
    const { state, helper } = this.options;
    const host = new FilterEditorHost({
      uri: key,
      name,
      request: (method, params) => helper.request(method, params),
      applyEdits: (edits) => applyEdits(uri, edits),
      post: (message) => webview.postMessage(message),
      samples: { get: () => state.get(SAMPLES_KEY), set: (samples) => state.update(SAMPLES_KEY, samples) },
    });
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let reload;
    const disposables = [
      // The promise is returned for tests; the host reports its own failures to the page.
      webview.onDidReceiveMessage((message) => host.handle(message).catch(() => undefined)),
      // Edits made in the text editor (or by Save) show in the form.
      vscode.workspace.onDidChangeTextDocument((change) => {
        if (change.document.uri.toString() !== key || change.contentChanges.length === 0) return;
        clearTimeout(reload);
        reload = setTimeout(() => void host.sendDocument(), 300);
      }),
    ];
    panel.onDidDispose(() => {
      clearTimeout(reload);
      this.panels.delete(key);
      disposables.forEach((d) => d.dispose());
    });
    return panel;
  }

  dispose() {
    for (const panel of [...this.panels.values()]) panel.dispose();
  }
}

/**
 * Apply the helper's text edits to a config file as one WorkspaceEdit, then save the file.
 * @param {vscode.Uri} uri
 * @param {{range: {start: {line: number, character: number}, end: {line: number, character: number}}, newText: string}[]} edits
 */
async function applyEdits(uri, edits) {
  if (edits.length === 0) return true;
  const edit = new vscode.WorkspaceEdit();
  for (const { range, newText } of edits) {
    edit.replace(uri, new vscode.Range(range.start.line, range.start.character, range.end.line, range.end.character), newText);
  }
  if (!(await vscode.workspace.applyEdit(edit))) return false;
  const document = await vscode.workspace.openTextDocument(uri);
  return document.save();
}

module.exports = { FilterPanels, applyEdits, VIEW_TYPE };
