// @ts-check
'use strict';
/**
 * The target picker's items, from a `pymirrord/listTargets` result.
 */

/** vscode.QuickPickItemKind.Separator */
const SEPARATOR = -1;

/**
 * @typedef {{path: string, kind: string, namespace: string | null, available: boolean, label?: string}} Target
 * @typedef {{targets: Target[], currentNamespace: string | null, namespaces: string[], notes?: string[]}} Listing
 * @typedef {{label: string, kind?: number, description?: string, detail?: string, target?: string}} TargetItem
 */

const GROUPS = Object.freeze([
  { title: 'Network namespaces', kinds: ['netns'] },
  { title: 'Local processes and containers', kinds: ['pid'] },
]);
const KUBERNETES = 'Kubernetes';

/**
 * The group title of a target kind: local kinds by name, everything else is a Kubernetes workload.
 * @param {string} kind
 */
function groupOf(kind) {
  return GROUPS.find((group) => group.kinds.includes(kind))?.title ?? KUBERNETES;
}

/**
 * What the helper's label says beyond the path ("(network namespace)", "— python3 app.py (container …)").
 * @param {Target} target
 */
function describe(target) {
  const label = target.label || target.path;
  const rest = label.startsWith(target.path) ? label.slice(target.path.length).trim() : label;
  const parts = [rest.replace(/^[—-]\s*/, '').replace(/^\(([^()]*)\)$/, '$1')];
  if (target.namespace) parts.push(`namespace ${target.namespace}`);
  return parts.filter(Boolean).join(' · ');
}

/**
 * QuickPick items: targets grouped under separators (local first, in the helper's order), unavailable
 * targets marked, the current choice first in its group and marked.
 * @param {Listing} listing
 * @param {string} [current] the target chosen now, if any
 * @returns {TargetItem[]}
 */
function targetItems(listing, current) {
  /** @type {Map<string, Target[]>} */
  const groups = new Map([...GROUPS.map((g) => g.title), KUBERNETES].map((title) => [title, []]));
  for (const target of listing.targets || []) groups.get(groupOf(target.kind))?.push(target);
  /** @type {TargetItem[]} */
  const items = [];
  for (const [title, targets] of groups) {
    if (targets.length === 0) continue;
    items.push({ label: title, kind: SEPARATOR });
    const ordered = [...targets].sort((a, b) => Number(b.path === current) - Number(a.path === current));
    for (const target of ordered) {
      /** @type {TargetItem} */
      const item = { label: target.path, description: describe(target), target: target.path };
      const notes = [];
      if (target.path === current) notes.push('current target');
      if (!target.available) notes.push('$(warning) not available now');
      if (notes.length) item.detail = notes.join(' · ');
      items.push(item);
    }
  }
  return items;
}

/**
 * What to tell the user when there is nothing to pick; null when there is.
 * @param {Listing} listing
 */
function emptyMessage(listing) {
  if ((listing.targets || []).length > 0) return null;
  const notes = (listing.notes || []).join(' ');
  return 'pymirrord found no targets: create a network namespace (ip netns add NAME), start a local ' +
    'container, or set up a kubeconfig.' + (notes ? ` ${notes}` : '');
}

module.exports = { SEPARATOR, targetItems, emptyMessage, groupOf };
