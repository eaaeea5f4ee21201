// @ts-check
'use strict';
/**
 * Just enough of the `vscode` and `vscode-languageclient/node` modules to run the extension's glue in
 * node: every call is recorded, and the test scripts the user's answers and the helper's responses.
 */

const Module = require('node:module');
const path = require('node:path');

class Uri {
  /**
   * @param {string} scheme
   * @param {string} fsPath
   */
  constructor(scheme, fsPath) {
    this.scheme = scheme;
    this.fsPath = fsPath;
  }

  /** @param {string} fsPath */
  static file(fsPath) {
    return new Uri('file', fsPath);
  }

  /** @param {string} text */
  static parse(text) {
    const url = new URL(text);
    return new Uri(url.protocol.replace(/:$/, ''), decodeURIComponent(url.pathname));
  }

  toString() {
    return `${this.scheme}://${this.fsPath}`;
  }

  /**
   * @param {Uri} base
   * @param {...string} parts
   */
  static joinPath(base, ...parts) {
    return new Uri(base.scheme, path.join(base.fsPath, ...parts));
  }
}

/** @template T */
class EventEmitter {
  constructor() {
    /** @type {((value: T) => void)[]} */
    this.listeners = [];
    /** @param {(value: T) => void} listener */
    this.event = (listener) => {
      this.listeners.push(listener);
      return { dispose: () => { this.listeners = this.listeners.filter((l) => l !== listener); } };
    };
  }

  /** @param {T} value */
  fire(value) {
    this.listeners.forEach((listener) => listener(value));
  }

  dispose() {
    this.listeners = [];
  }
}

class CancellationTokenSource {
  constructor() {
    /** @type {(() => void)[]} */
    const listeners = [];
    this.token = {
      isCancellationRequested: false,
      /** @param {() => void} listener */
      onCancellationRequested: (listener) => {
        listeners.push(listener);
        return { dispose() {} };
      },
    };
    this.cancel = () => {
      this.token.isCancellationRequested = true;
      listeners.forEach((listener) => listener());
    };
  }

  dispose() {}
}

/**
 * A fresh fake: `vscode` is the module, `answers` the scripted user, `helper` the scripted server.
 * @param {{folder: string}} options
 */
function createFake(options) {
  /** @type {{[kind: string]: any[]}} */
  const shown = { error: [], warning: [], info: [], quickPick: [], inputBox: [], progress: [] };
  /** @type {{error: any[], warning: any[], info: any[], quickPick: any[], inputBox: any[]}} */
  const answers = { error: [], warning: [], info: [], quickPick: [], inputBox: [] };
  /** @type {Map<string, Function>} */
  const commands = new Map();
  /** @type {Map<string, any>} */
  const debugProviders = new Map();
  /** @type {Function[]} */
  const terminateListeners = [];
  /** @type {{[key: string]: any}} */
  const settings = {};
  /** @type {string[]} */
  const saved = [];
  const folder = { uri: Uri.file(options.folder), name: path.basename(options.folder), index: 0 };
  /** @type {string[]} files findFiles returns */
  const files = [];
  const outputLines = /** @type {string[]} */ ([]);
  /** @type {any[]} */
  const statusItems = [];
  /** @type {Map<string, any>} */
  const treeViews = new Map();
  /** @type {any[]} the webview panels made, each with `posted` (messages to the page) and `receive` */
  const panels = [];
  /** @type {any[]} the WorkspaceEdits applied */
  const appliedEdits = [];
  /** @type {Function[]} */
  const documentListeners = [];

  /**
   * @param {keyof typeof answers} kind
   * @param {string} message
   * @param {any[]} items
   */
  function message(kind, message, items) {
    shown[kind].push({ message, items });
    return Promise.resolve(answers[kind].shift());
  }

  const vscode = {
    Uri,
    CancellationTokenSource,
    EventEmitter,
    TreeItemCollapsibleState: { None: 0, Collapsed: 1, Expanded: 2 },
    TreeItem: class {
      /**
       * @param {string} label
       * @param {number} collapsibleState
       */
      constructor(label, collapsibleState) {
        this.label = label;
        this.collapsibleState = collapsibleState;
      }
    },
    ThemeIcon: class {
      /** @param {string} id */
      constructor(id) {
        this.id = id;
      }
    },
    ViewColumn: { Active: -1, Beside: -2, One: 1 },
    Range: class {
      /** @param {number} startLine @param {number} startCharacter @param {number} endLine @param {number} endCharacter */
      constructor(startLine, startCharacter, endLine, endCharacter) {
        Object.assign(this, { startLine, startCharacter, endLine, endCharacter });
      }
    },
    WorkspaceEdit: class {
      constructor() {
        /** @type {{uri: any, range: any, newText: string}[]} */
        this.replacements = [];
      }

      /** @param {any} uri @param {any} range @param {string} newText */
      replace(uri, range, newText) {
        this.replacements.push({ uri, range, newText });
      }
    },
    RelativePattern: class {
      /**
       * @param {any} base
       * @param {string} pattern
       */
      constructor(base, pattern) {
        this.base = base;
        this.pattern = pattern;
      }
    },
    ProgressLocation: { Notification: 15 },
    StatusBarAlignment: { Left: 1, Right: 2 },
    window: {
      activeTextEditor: undefined,
      createOutputChannel: () => ({
        /** @param {string} line */
        appendLine: (line) => outputLines.push(line),
        append() {}, show() {}, dispose() {}, clear() {}, replace() {}, hide() {}, name: 'pymirrord',
      }),
      createStatusBarItem: () => {
        const item = { text: '', tooltip: '', visible: false, show() { item.visible = true; }, hide() {}, dispose() {} };
        statusItems.push(item);
        return item;
      },
      /** @param {string} text @param {...any} items */
      showErrorMessage: (text, ...items) => message('error', text, items),
      /** @param {string} text @param {...any} items */
      showWarningMessage: (text, ...items) => message('warning', text, items),
      /** @param {string} text @param {...any} items */
      showInformationMessage: (text, ...items) => message('info', text, items),
      /** @param {any[]} items @param {any} opts */
      showQuickPick: async (items, opts) => {
        shown.quickPick.push({ items: await items, options: opts });
        const answer = answers.quickPick.shift();
        return typeof answer === 'function' ? answer(await items) : answer;
      },
      /** @param {any} opts */
      showInputBox: async (opts) => {
        shown.inputBox.push(opts);
        return answers.inputBox.shift();
      },
      /** @param {any} opts @param {Function} task */
      withProgress: async (opts, task) => {
        const reports = /** @type {any[]} */ ([]);
        shown.progress.push({ options: opts, reports });
        return task({ report: (/** @type {any} */ value) => reports.push(value) }, new CancellationTokenSource().token);
      },
      showTextDocument: async () => undefined,
      /** @param {string} id @param {any} options */
      createTreeView: (id, options) => {
        const view = { id, options, dispose() {} };
        treeViews.set(id, view);
        return view;
      },
      /** @param {string} viewType @param {string} title @param {any} column @param {any} options */
      createWebviewPanel: (viewType, title, column, options) => {
        /** @type {Function[]} */
        const receivers = [];
        /** @type {Function[]} */
        const disposeListeners = [];
        const panel = {
          viewType, title, options, revealed: 0, posted: /** @type {any[]} */ ([]),
          webview: {
            html: '',
            cspSource: 'vscode-webview://fake',
            /** @param {any} uri */
            asWebviewUri: (uri) => ({ toString: () => `vscode-webview://fake${uri.fsPath}` }),
            /** @param {any} message */
            postMessage: async (message) => {
              panel.posted.push(message);
              return true;
            },
            /** @param {Function} receiver */
            onDidReceiveMessage: (receiver) => {
              receivers.push(receiver);
              return { dispose() {} };
            },
          },
          /** The page sends a message; resolves when the extension has handled it. */
          receive: async (/** @type {any} */ message) => Promise.all(receivers.map((receiver) => receiver(message))),
          reveal() {
            panel.revealed += 1;
          },
          /** @param {Function} listener */
          onDidDispose: (listener) => {
            disposeListeners.push(listener);
            return { dispose() {} };
          },
          dispose: () => disposeListeners.forEach((listener) => listener()),
        };
        panels.push(panel);
        return panel;
      },
    },
    commands: {
      /** @param {string} name @param {Function} handler */
      registerCommand: (name, handler) => {
        if (commands.has(name)) throw new Error(`command ${name} registered twice`);
        commands.set(name, handler);
        return { dispose() {} };
      },
      /** @param {string} name @param {...any} args */
      executeCommand: async (name, ...args) => commands.get(name)?.(...args),
    },
    debug: {
      /** @param {string} type @param {any} provider */
      registerDebugConfigurationProvider: (type, provider) => {
        debugProviders.set(type, provider);
        return { dispose() {} };
      },
      /** @param {Function} listener */
      onDidTerminateDebugSession: (listener) => {
        terminateListeners.push(listener);
        return { dispose() {} };
      },
    },
    workspace: {
      workspaceFolders: [folder],
      getWorkspaceFolder: () => folder,
      /** @param {string} section */
      getConfiguration: (section) => ({
        /** @param {string} key @param {any} fallback */
        get: (key, fallback) => (`${section}.${key}` in settings ? settings[`${section}.${key}`] : fallback),
      }),
      onDidChangeConfiguration: () => ({ dispose() {} }),
      /** @param {Function} listener */
      onDidChangeTextDocument: (listener) => {
        documentListeners.push(listener);
        return { dispose() {} };
      },
      /** @param {any} edit */
      applyEdit: async (edit) => {
        appliedEdits.push(edit);
        return true;
      },
      findFiles: async () => files.map((file) => Uri.file(file)),
      /** @param {any} uri */
      asRelativePath: (uri) => path.relative(options.folder, uri.fsPath ?? uri),
      /** @param {any} uri */
      openTextDocument: async (uri) => ({
        uri,
        getText: () => '{}',
        save: async () => {
          saved.push(uri.fsPath);
          return true;
        },
      }),
    },
  };

  /** The language client's side: requests go to `helper.handle`, notifications come from the test. */
  const helper = {
    /** @type {{method: string, params: any}[]} */
    requests: [],
    /** @type {(method: string, params: any, client: any) => any} */
    handle: () => undefined,
    /** @type {any} */
    client: undefined,
    started: 0,
  };
  class LanguageClient {
    /**
     * @param {string} id
     * @param {string} name
     * @param {any} serverOptions
     * @param {any} clientOptions
     */
    constructor(id, name, serverOptions, clientOptions) {
      Object.assign(this, { id, name, serverOptions, clientOptions });
      /** @type {Map<string, Function>} */
      this.notificationHandlers = new Map();
      /** @type {Map<string | number, Function>} */
      this.progressHandlers = new Map();
      helper.client = this;
    }

    async start() {
      helper.started += 1;
    }

    async stop() {}

    /**
     * @param {string} method
     * @param {any} params
     */
    async sendRequest(method, params) {
      helper.requests.push({ method, params });
      return helper.handle(method, params, this);
    }

    /**
     * @param {string} method
     * @param {Function} handler
     */
    onNotification(method, handler) {
      this.notificationHandlers.set(method, handler);
      return { dispose() {} };
    }

    /**
     * @param {any} type
     * @param {string | number} token
     * @param {Function} handler
     */
    onProgress(type, token, handler) {
      this.progressHandlers.set(token, handler);
      return { dispose: () => this.progressHandlers.delete(token) };
    }
  }
  const languageclient = { LanguageClient, RevealOutputChannelOn: { Info: 1, Warn: 2, Error: 3, Never: 4 }, WorkDoneProgress: { type: {} } };

  return {
    vscode, languageclient, helper, shown, answers, commands, debugProviders, terminateListeners, settings,
    saved, files, outputLines, statusItems, folder, treeViews, panels, appliedEdits, documentListeners,
  };
}

/**
 * Load the extension with the fake modules in place of the real ones (a fresh copy each time).
 * @param {ReturnType<typeof createFake>} fake
 */
function loadExtension(fake) {
  const src = path.resolve(__dirname, '..', '..', 'src');
  for (const key of Object.keys(require.cache)) if (key.startsWith(src)) delete require.cache[key];
  const modules = /** @type {any} */ (Module);
  const original = modules._load;
  modules._load = function load(/** @type {string} */ request, /** @type {any[]} */ ...rest) {
    if (request === 'vscode') return fake.vscode;
    if (request === 'vscode-languageclient/node') return fake.languageclient;
    return original.call(this, request, ...rest);
  };
  try {
    return require(path.join(src, 'extension.js'));
  } finally {
    modules._load = original;
  }
}

module.exports = { createFake, loadExtension, Uri };
