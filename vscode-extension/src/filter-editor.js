// @ts-check
'use strict';
/**
 * The filter editor's host side, without `vscode`: it answers the webview's messages (media/filter-editor.js
 * lists them) with the helper's requests. `pymirrord/filterDocument` reads the config's filter,
 * `pymirrord/testFilter` marks the sample requests, `pymirrord/filterEdit` gives the edits that Save applies.
 */

const { METHODS } = require('./protocol');

const SAMPLES_KEY = 'pymirrord.filterSamples';

/**
 * @typedef {{method: string, path: string, headers: string}} Sample
 * @typedef {{
 *   uri: string, name: string,
 *   request: (method: string, params: any) => Promise<any>,
 *   applyEdits: (edits: any[]) => Promise<boolean>,
 *   post: (message: any) => unknown,
 *   samples: {get: () => Sample[] | undefined, set: (samples: Sample[]) => unknown},
 * }} HostOptions
 */

class FilterEditorHost {
  /** @param {HostOptions} options */
  constructor(options) {
    this.options = options;
  }

  /** Send the config's filter (or why it does not parse) and the workspace's samples to the webview. */
  async sendDocument() {
    const { uri, name, request, post, samples } = this.options;
    let document;
    try {
      document = { ...(await request(METHODS.filterDocument, { uri })), name };
    } catch (error) {
      document = { uri, name, format: null, mode: 'mirror', filter: null, error: { message: messageOf(error) } };
    }
    post({ type: 'document', document, samples: samples.get() });
  }

  /**
   * One message from the webview.
   * @param {any} message
   */
  async handle(message) {
    const { uri, request, post, applyEdits, samples } = this.options;
    switch (message?.type) {
      case 'ready':
        return this.sendDocument();
      case 'samples':
        if (Array.isArray(message.samples)) await samples.set(message.samples);
        return undefined;
      case 'testFilter':
        try {
          const report = await request(METHODS.testFilter, { filter: message.filter, requests: message.requests });
          return post({ type: 'testResult', id: message.id, report });
        } catch (error) {
          return post({ type: 'testResult', id: message.id, error: messageOf(error) });
        }
      case 'save':
        try {
          const { edits } = await request(METHODS.filterEdit, { uri, filter: message.filter });
          const applied = await applyEdits(edits);
          post(applied ? { type: 'saved', ok: true } : { type: 'saved', ok: false, message: 'the editor did not apply the change' });
        } catch (error) {
          post({ type: 'saved', ok: false, message: messageOf(error) });
        }
        return this.sendDocument();
      default:
        return undefined;
    }
  }
}

/** @param {unknown} error */
function messageOf(error) {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The webview's page: media/filter-editor.html with its placeholders filled in.
 * @param {string} template
 * @param {{cspSource: string, nonce: string, scriptUri: string, styleUri: string}} values
 */
function webviewHtml(template, values) {
  return template.replace(/\{\{(cspSource|nonce|scriptUri|styleUri)\}\}/g, (_, key) => values[/** @type {keyof typeof values} */ (key)]);
}

module.exports = { FilterEditorHost, webviewHtml, SAMPLES_KEY };
