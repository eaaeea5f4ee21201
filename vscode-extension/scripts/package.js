// @ts-check
'use strict';
/**
 * Build a .vsix, offline: the extension's code bundled into one file by esbuild (vscode-languageclient
 * included, `vscode` left to the editor), the webview's files, the config schema for jsonValidation, and a
 * manifest without dependencies, packed by @vscode/vsce. Both tools are dev dependencies installed by
 * `npm ci` at the repository root; nothing is downloaded here.
 *
 * The extension lives in an npm workspace whose dependencies are hoisted to the repository's node_modules;
 * packing in place would take the whole repository. So the files are staged in a folder of their own.
 *
 * Usage: node scripts/package.js [output.vsix]   (npm run package -- [output.vsix])
 */

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { copySchema } = require('./copy-schema');

const ROOT = path.resolve(__dirname, '..');
const COPIED = ['README.md', 'media'];
const BUNDLE = 'dist/extension.js';

/**
 * A dev dependency, or an error saying how to install it.
 * @param {string} name
 */
function tool(name) {
  try {
    return require(name);
  } catch {
    throw new Error(`${name} is not installed: run \`npm ci\` at the repository root (scripts/setup.sh --dev does)`);
  }
}

/**
 * The staged manifest: the bundle as entry point, nothing to install, nothing to run before packing.
 * @param {any} manifest
 */
function stagedManifest(manifest) {
  const { scripts, devDependencies, dependencies, ...rest } = manifest;
  return { ...rest, main: `./${BUNDLE}` };
}

/**
 * @param {string} output the .vsix to write
 * @returns {Promise<string>}
 */
async function buildPackage(output) {
  const esbuild = tool('esbuild');
  const vsce = tool('@vscode/vsce');
  const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'pymirrord-vsix-'));
  try {
    for (const name of COPIED) fs.cpSync(path.join(ROOT, name), path.join(stage, name), { recursive: true });
    copySchema(path.join(stage, 'schema'));
    fs.writeFileSync(path.join(stage, 'package.json'), `${JSON.stringify(stagedManifest(manifest), null, 2)}\n`);
    fs.writeFileSync(path.join(stage, 'LICENSE'), `${manifest.license} license: see the pymirrord repository.\n`);
    await esbuild.build({
      entryPoints: [path.join(ROOT, 'src', 'extension.js')],
      outfile: path.join(stage, BUNDLE),
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node18',
      external: ['vscode'],
      minify: true,
      keepNames: true,
      logLevel: 'warning',
    });
    fs.mkdirSync(path.dirname(output), { recursive: true });
    await vsce.createVSIX({ cwd: stage, packagePath: output, dependencies: false, allowMissingRepository: true });
    return output;
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}

if (require.main === module) {
  const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const output = path.resolve(process.argv[2] || path.join(ROOT, `${manifest.name}-${manifest.version}.vsix`));
  buildPackage(output).then(
    (written) => console.log(`wrote ${written}`),
    (error) => {
      console.error(`package: ${error instanceof Error ? error.message : error}`);
      process.exitCode = 1;
    },
  );
}

module.exports = { buildPackage, stagedManifest, BUNDLE };
