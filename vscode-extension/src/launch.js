// @ts-check
'use strict';
/**
 * Debug launches through pymirrord, the pure part: which launch configurations ask for pymirrord, the
 * `pymirrord/prepareLaunch` params built from one, and the launch configuration with the helper's answer
 * merged in. No `vscode` here: the debug configuration provider only calls these.
 */

const path = require('node:path');

/** Launch types whose debuggee is a Python process (the helper refuses the others). */
const PYTHON_TYPES = Object.freeze(['debugpy', 'python']);

/**
 * @typedef {{[key: string]: any, type?: string, request?: string, name?: string, pymirrord?: unknown,
 *   python?: string | string[], program?: string, module?: string, args?: string | (string | number)[],
 *   cwd?: string, env?: {[name: string]: string | number | boolean | null | undefined}}} LaunchConfig
 * @typedef {{target?: string, configFile?: string}} PymirrordOptions
 * @typedef {{sessionId: string, env: {[name: string]: string}, envToUnset: string[], target: string,
 *   mode: string, warnings: string[]}} PrepareLaunchResult
 * @typedef {{configUri?: string, target?: string, launch: {type: string, python?: string, program?: string,
 *   module?: string, args?: string[], cwd?: string, env?: {[name: string]: string | null}}}} PrepareLaunchParams
 */

/**
 * The launch's pymirrord options, or null when the launch does not ask for pymirrord.
 * @param {LaunchConfig} config
 * @returns {PymirrordOptions | null}
 */
function pymirrordOptions(config) {
  const value = config.pymirrord;
  if (value === true) return {};
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const options = /** @type {{[key: string]: unknown}} */ (value);
    /** @type {PymirrordOptions} */
    const result = {};
    if (typeof options.target === 'string' && options.target) result.target = options.target;
    if (typeof options.configFile === 'string' && options.configFile) result.configFile = options.configFile;
    return result;
  }
  return null;
}

/**
 * Why this launch cannot go through pymirrord, or null when it can.
 * @param {LaunchConfig} config
 * @returns {string | null}
 */
function unsupportedReason(config) {
  if (!PYTHON_TYPES.includes(config.type || '')) {
    return `pymirrord only injects into Python launches (type ${PYTHON_TYPES.join(' or ')}), ` +
      `not ${JSON.stringify(config.type || '(none)')}. Remove "pymirrord" from this launch configuration.`;
  }
  if ((config.request || 'launch') !== 'launch') {
    return 'pymirrord cannot join a process that is already running ("request": "attach"). ' +
      'Use a "launch" configuration, or start the process with `pymirrord exec` and attach to it.';
  }
  return null;
}

/**
 * The interpreter the launch names: debugpy accepts a string or [executable, ...flags].
 * @param {LaunchConfig['python']} python
 * @returns {string | undefined}
 */
function interpreter(python) {
  if (Array.isArray(python)) return typeof python[0] === 'string' ? python[0] : undefined;
  return typeof python === 'string' && python ? python : undefined;
}

/**
 * The launch's env as the helper takes it: names to strings, null meaning "unset".
 * @param {LaunchConfig['env']} env
 * @returns {{[name: string]: string | null}}
 */
function plainEnv(env) {
  /** @type {{[name: string]: string | null}} */
  const result = {};
  for (const [name, value] of Object.entries(env || {})) {
    if (value === null) result[name] = null;
    else if (value !== undefined) result[name] = String(value);
  }
  return result;
}

/**
 * `pymirrord/prepareLaunch` params for a launch whose variables are substituted already.
 * @param {LaunchConfig} config
 * @param {{configUri?: string, target?: string, folder?: string}} where the config file's URI, the target
 *   to use (overrides the config file's), and the workspace folder (debugpy's default cwd)
 * @returns {PrepareLaunchParams}
 */
function prepareLaunchParams(config, where = {}) {
  /** @type {PrepareLaunchParams['launch']} */
  const launch = { type: config.type || '' };
  const python = interpreter(config.python);
  if (python) launch.python = python;
  if (typeof config.program === 'string' && config.program) launch.program = config.program;
  if (typeof config.module === 'string' && config.module) launch.module = config.module;
  if (typeof config.args === 'string') launch.args = [config.args];
  else if (Array.isArray(config.args)) launch.args = config.args.map(String);
  const cwd = (typeof config.cwd === 'string' && config.cwd) || where.folder;
  if (cwd) launch.cwd = cwd;
  launch.env = plainEnv(config.env);
  /** @type {PrepareLaunchParams} */
  const params = { launch };
  if (where.configUri) params.configUri = where.configUri;
  if (where.target) params.target = where.target;
  return params;
}

/**
 * Path lists joined: `first`'s entries, then `second`'s not already listed, empty entries dropped.
 * @param {string | null | undefined} first
 * @param {string | null | undefined} second
 * @param {string} delimiter
 */
function joinPaths(first, second, delimiter) {
  const entries = [first, second].flatMap((list) => (list || '').split(delimiter)).filter(Boolean);
  return [...new Set(entries)].join(delimiter);
}

/**
 * The launch configuration with the helper's environment merged in: its variables set (its PYTHONPATH,
 * the layer first, joined to the launch's own), the names in `envToUnset` set to null (which debugpy
 * removes from the debuggee's environment), and the session remembered in `pymirrordSessionId`.
 * The input is not modified.
 * @param {LaunchConfig} config
 * @param {PrepareLaunchResult} result
 * @param {string} [delimiter] PYTHONPATH's separator (the platform's by default)
 * @returns {LaunchConfig}
 */
function mergeLaunchEnv(config, result, delimiter = path.delimiter) {
  const env = plainEnv(config.env);
  for (const name of result.envToUnset || []) env[name] = null;
  for (const [name, value] of Object.entries(result.env || {})) {
    env[name] = name === 'PYTHONPATH' ? joinPaths(value, env.PYTHONPATH, delimiter) : value;
  }
  return { ...config, env, pymirrordSessionId: result.sessionId };
}

module.exports = {
  PYTHON_TYPES,
  pymirrordOptions,
  unsupportedReason,
  prepareLaunchParams,
  mergeLaunchEnv,
  joinPaths,
};
