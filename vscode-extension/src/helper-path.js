// @ts-check
'use strict';
/**
 * Which `pymirrord` executable the extension starts as its helper (`pymirrord lsp`).
 */

const os = require('node:os');
const path = require('node:path');

const VENV_BINARIES = process.platform === 'win32'
  ? ['.venv/Scripts/pymirrord.exe', 'venv/Scripts/pymirrord.exe']
  : ['.venv/bin/pymirrord', 'venv/bin/pymirrord'];

/**
 * @param {string} setting `pymirrord.path` (may be empty)
 * @param {{folders: string[], exists: (file: string) => boolean, home?: string}} where the workspace
 *   folders, and how to test for a file
 * @returns {{command: string, args: string[], source: string} | {error: string}}
 */
function helperCommand(setting, where) {
  const args = ['lsp'];
  const value = setting.trim();
  if (value) {
    const home = where.home ?? os.homedir();
    let expanded = value.replace(/^~(?=$|[\\/])/, home);
    if (expanded.includes('${workspaceFolder}')) {
      if (where.folders.length === 0) {
        return { error: `pymirrord.path (${value}) uses \${workspaceFolder}, but no folder is open. Open the project's folder.` };
      }
      expanded = expanded.split('${workspaceFolder}').join(where.folders[0]);
    }
    const isBareName = !expanded.includes('/') && !expanded.includes('\\');
    if (!isBareName && !where.exists(expanded)) {
      return { error: `pymirrord.path is ${value}, which does not exist. Set it to the pymirrord executable (for example .venv/bin/pymirrord after pip install pymirrord).` };
    }
    return { command: expanded, args, source: 'the pymirrord.path setting' };
  }
  for (const folder of where.folders) {
    for (const relative of VENV_BINARIES) {
      const candidate = path.join(folder, relative);
      if (where.exists(candidate)) return { command: candidate, args, source: `the workspace's ${relative}` };
    }
  }
  return { command: 'pymirrord', args, source: 'PATH' };
}

module.exports = { helperCommand };
