// @ts-check
'use strict';
/**
 * package.json against the code: what it contributes is what the extension implements, the schema it
 * validates with is built from the repository's, and the runtime needs nothing but vscode-languageclient.
 */

const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { test } = require('node:test');
const { PYTHON_TYPES } = require('../src/launch');
const { copySchema, SOURCE } = require('../scripts/copy-schema');

const ROOT = path.join(__dirname, '..');
const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));

test('identity, entry point and the one runtime dependency', () => {
  assert.equal(manifest.name, 'pymirrord');
  assert.ok(manifest.publisher);
  assert.ok(fs.existsSync(path.join(ROOT, manifest.main)), `${manifest.main} exists`);
  assert.deepEqual(Object.keys(manifest.dependencies), ['vscode-languageclient']);
});

test('the VS Code version covers what vscode-languageclient needs', (t) => {
  let client;
  try {
    client = require('vscode-languageclient/package.json');
  } catch {
    t.skip('vscode-languageclient is not installed (npm install)');
    return;
  }
  const minimum = (/** @type {string} */ range) => range.replace(/^[\^~>=]+/, '').split('.').map(Number);
  const [ours, theirs] = [minimum(manifest.engines.vscode), minimum(client.engines.vscode)];
  assert.ok(ours[0] > theirs[0] || (ours[0] === theirs[0] && ours[1] >= theirs[1]),
    `engines.vscode ${manifest.engines.vscode} must be at least vscode-languageclient's ${client.engines.vscode}`);
});

test('activation on a workspace with .mirrord/ and on Python launches', () => {
  assert.ok(manifest.activationEvents.includes('workspaceContains:.mirrord/**'));
  for (const type of PYTHON_TYPES) assert.ok(manifest.activationEvents.includes(`onDebugResolve:${type}`));
});

test('settings and the launch attribute', () => {
  const properties = manifest.contributes.configuration.properties;
  assert.equal(properties['pymirrord.path'].type, 'string');
  assert.equal(properties['pymirrord.enabled'].default, true);
  assert.deepEqual(manifest.contributes.debuggers.map((/** @type {any} */ d) => d.type), [...PYTHON_TYPES]);
  for (const debuggerEntry of manifest.contributes.debuggers) {
    assert.ok(debuggerEntry.configurationAttributes.launch.properties.pymirrord, `${debuggerEntry.type} has "pymirrord"`);
  }
});

test('config files are validated with the schema copied from the repository', () => {
  const [validation] = manifest.contributes.jsonValidation;
  assert.deepEqual(validation.fileMatch, ['**/.mirrord/*.json', '*mirrord.json']);
  assert.equal(validation.url, './schema/mirrord.schema.json');
  assert.match(manifest.scripts['vscode:prepublish'], /copy-schema/);
  const destination = fs.mkdtempSync(path.join(os.tmpdir(), 'pymirrord-schema-'));
  try {
    const copied = copySchema(destination);
    assert.equal(path.basename(copied), path.basename(validation.url));
    assert.deepEqual(fs.readFileSync(copied), fs.readFileSync(SOURCE));
    assert.equal(JSON.parse(fs.readFileSync(copied, 'utf8')).title, 'pymirrord configuration');
  } finally {
    fs.rmSync(destination, { recursive: true, force: true });
  }
});

test('menus and views name commands and views that exist', () => {
  const commands = new Set(manifest.contributes.commands.map((/** @type {any} */ c) => c.command));
  const views = new Set(Object.values(manifest.contributes.views).flat().map((/** @type {any} */ v) => v.id));
  assert.ok(views.has('pymirrord.sessions'));
  for (const [menu, entries] of Object.entries(manifest.contributes.menus)) {
    for (const entry of /** @type {any[]} */ (entries)) {
      assert.ok(commands.has(entry.command), `${menu} names ${entry.command}`);
      const viewIn = /view == ([\w.]+)/.exec(entry.when || '');
      if (viewIn) assert.ok(views.has(viewIn[1]), `${menu} names the view ${viewIn[1]}`);
      if (entry.group === 'inline' || entry.group === 'navigation') {
        const command = manifest.contributes.commands.find((/** @type {any} */ c) => c.command === entry.command);
        assert.ok(command.icon, `${entry.command} has an icon for ${menu}`);
      }
    }
  }
  for (const welcome of manifest.contributes.viewsWelcome) assert.ok(views.has(welcome.view));
});
