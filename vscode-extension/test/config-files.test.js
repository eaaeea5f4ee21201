// @ts-check
'use strict';
const assert = require('node:assert/strict');
const { test } = require('node:test');
const { httpFilterOf, isConfigPath, pickConfigFile, resolveConfigFile } = require('../src/config-files');

test('isConfigPath: the helper\'s rule', () => {
  assert.ok(isConfigPath('/w/.mirrord/mirrord.json'));
  assert.ok(isConfigPath('/w/.mirrord/staging.yaml'));
  assert.ok(isConfigPath('C:\\w\\.mirrord\\a.toml'));
  assert.ok(isConfigPath('/w/api-mirrord.json'));
  assert.ok(!isConfigPath('/w/.mirrord/notes.txt'));
  assert.ok(!isConfigPath('/w/config/a.yaml'));
});

test('pickConfigFile: .mirrord/mirrord.json first, then its other formats, then by name', () => {
  assert.equal(pickConfigFile(['/w/.mirrord/b.json', '/w/.mirrord/mirrord.yaml', '/w/.mirrord/mirrord.json']), '/w/.mirrord/mirrord.json');
  assert.equal(pickConfigFile(['/w/.mirrord/b.json', '/w/.mirrord/mirrord.yaml']), '/w/.mirrord/mirrord.yaml');
  assert.equal(pickConfigFile(['/w/z-mirrord.json', '/w/.mirrord/b.json', '/w/.mirrord/a.toml']), '/w/.mirrord/a.toml');
  assert.equal(pickConfigFile(['/w/z-mirrord.json', '/w/readme.md']), '/w/z-mirrord.json');
  assert.equal(pickConfigFile(['/w/readme.md']), undefined);
});

test('resolveConfigFile: relative to the workspace folder', () => {
  assert.equal(resolveConfigFile('.mirrord/x.json', '/w'), '/w/.mirrord/x.json');
  assert.equal(resolveConfigFile('/abs/x.json', '/w'), '/abs/x.json');
  assert.equal(resolveConfigFile('x.json', undefined), 'x.json');
});

test('httpFilterOf: the incoming http_filter of a JSON config', () => {
  const filter = { header_filter: 'x-user: alice' };
  assert.deepEqual(httpFilterOf(JSON.stringify({ feature: { network: { incoming: { mode: 'steal', http_filter: filter } } } })), filter);
  assert.equal(httpFilterOf('{"feature": {"network": {"incoming": "steal"}}}'), undefined);
  assert.equal(httpFilterOf('target: netns/x'), undefined);
  assert.equal(httpFilterOf('{"feature": {"network": {"incoming": {"http_filter": []}}}}'), undefined);
});
