// @ts-check
'use strict';
/**
 * Copy the repository's config schema into the extension (package.json's jsonValidation points at the
 * copy, which is what a .vsix carries). Usage: node scripts/copy-schema.js [destination folder]
 */

const fs = require('node:fs');
const path = require('node:path');

const SOURCE = path.resolve(__dirname, '..', '..', 'schema', 'mirrord.schema.json');

/** @param {string} destination folder */
function copySchema(destination) {
  if (!fs.existsSync(SOURCE)) {
    throw new Error(`the schema ${SOURCE} is missing: build the extension inside the pymirrord repository`);
  }
  fs.mkdirSync(destination, { recursive: true });
  const target = path.join(destination, 'mirrord.schema.json');
  fs.copyFileSync(SOURCE, target);
  return target;
}

if (require.main === module) {
  try {
    const target = copySchema(process.argv[2] || path.resolve(__dirname, '..', 'schema'));
    console.log(`copied ${path.relative(process.cwd(), SOURCE)} to ${path.relative(process.cwd(), target)}`);
  } catch (error) {
    console.error(`copy-schema: ${/** @type {Error} */ (error).message}`);
    process.exitCode = 1;
  }
}

module.exports = { copySchema, SOURCE };
