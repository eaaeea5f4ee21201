// @ts-check
'use strict';
/**
 * pymirrord config files: which paths are config files (the helper's rule), and which one a launch uses
 * when it names none.
 */

const path = require('node:path');

/** Glob of the config files in a workspace folder (for `workspace.findFiles`). */
const CONFIG_GLOB = '{.mirrord/*.{json,toml,yaml,yml},*mirrord.json}';
/** The document selector patterns the language client registers. */
const DOCUMENT_PATTERNS = Object.freeze(['**/.mirrord/*.{json,toml,yaml,yml}', '**/*mirrord.json']);
/** Default file names, most preferred first. */
const PREFERRED = Object.freeze(['mirrord.json', 'mirrord.toml', 'mirrord.yaml', 'mirrord.yml']);

/**
 * Whether the helper treats this file as a config file.
 * @param {string} filePath
 */
function isConfigPath(filePath) {
  const parts = filePath.split(/[\\/]/);
  const name = parts[parts.length - 1] || '';
  if (name.endsWith('mirrord.json')) return true;
  return parts[parts.length - 2] === '.mirrord' && /\.(json|toml|ya?ml)$/.test(name);
}

/**
 * The config file a launch uses when it names none: `.mirrord/mirrord.json` (then .toml, .yaml, .yml)
 * over the others, then the first by name; undefined when there is none.
 * @param {string[]} candidates absolute paths
 * @returns {string | undefined}
 */
function pickConfigFile(candidates) {
  const configs = candidates.filter(isConfigPath).sort();
  const rank = (/** @type {string} */ file) => {
    const index = PREFERRED.indexOf(path.basename(file));
    const inMirrordFolder = path.basename(path.dirname(file)) === '.mirrord';
    return (index === -1 ? PREFERRED.length : index) + (inMirrordFolder ? 0 : PREFERRED.length + 1);
  };
  return configs.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))[0];
}

/**
 * A launch's `configFile` made absolute against its workspace folder.
 * @param {string} configFile
 * @param {string | undefined} folder
 */
function resolveConfigFile(configFile, folder) {
  return path.isAbsolute(configFile) || !folder ? configFile : path.join(folder, configFile);
}

/**
 * The `http_filter` of a JSON config's incoming traffic, or undefined.
 * @param {string} text the file's text
 * @returns {object | undefined}
 */
function httpFilterOf(text) {
  let config;
  try {
    config = JSON.parse(text);
  } catch {
    return undefined;
  }
  const incoming = config?.feature?.network?.incoming;
  const filter = incoming && typeof incoming === 'object' ? incoming.http_filter : undefined;
  return filter && typeof filter === 'object' && !Array.isArray(filter) ? filter : undefined;
}

module.exports = {
  CONFIG_GLOB,
  DOCUMENT_PATTERNS,
  isConfigPath,
  pickConfigFile,
  resolveConfigFile,
  httpFilterOf,
};
