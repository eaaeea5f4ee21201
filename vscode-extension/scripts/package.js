// @ts-check
'use strict';
/**
 * Build a .vsix. The extension lives in an npm workspace, whose dependencies are hoisted to the
 * repository's node_modules; vsce would then pack the whole repository. So the extension is staged in a
 * folder of its own (its files, the schema, its runtime dependencies only) and packed there.
 *
 * Usage: node scripts/package.js [output.vsix]   (needs the npm registry for vscode-languageclient and vsce)
 */

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { copySchema } = require('./copy-schema');

const ROOT = path.resolve(__dirname, '..');
const FILES = ['package.json', 'README.md', '.vscodeignore', 'src'];
const VSCE = '@vscode/vsce@3';

/**
 * @param {string} command
 * @param {string[]} args
 * @param {string} cwd
 */
function run(command, args, cwd) {
  console.log(`$ ${command} ${args.join(' ')}`);
  execFileSync(command, args, { cwd, stdio: 'inherit', shell: process.platform === 'win32' });
}

function main() {
  const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const output = path.resolve(process.argv[2] || path.join(ROOT, `${manifest.name}-${manifest.version}.vsix`));
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'pymirrord-vsix-'));
  try {
    for (const name of FILES) fs.cpSync(path.join(ROOT, name), path.join(stage, name), { recursive: true });
    copySchema(path.join(stage, 'schema'));
    // The staged manifest: the schema is copied already, and only runtime dependencies are installed.
    const staged = { ...manifest, scripts: {}, devDependencies: {} };
    fs.writeFileSync(path.join(stage, 'package.json'), `${JSON.stringify(staged, null, 2)}\n`);
    fs.writeFileSync(path.join(stage, 'LICENSE'), `${manifest.license} license: see the pymirrord repository.\n`);
    run('npm', ['install', '--omit=dev', '--no-audit', '--no-fund'], stage);
    run('npx', ['--yes', VSCE, 'package', '--allow-missing-repository', '--out', output], stage);
    console.log(`wrote ${output}`);
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}

if (require.main === module) {
  try {
    main();
  } catch (error) {
    console.error(`package: ${/** @type {Error} */ (error).message}`);
    process.exitCode = 1;
  }
}
