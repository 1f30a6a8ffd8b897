#!/usr/bin/env node
// Prints, as one JSON document, the folder tree and the items of a PST as
// pst-extractor reads it: the second, independent reader of PST files in
// tests/system/test_outlook.py (beside Debian's readpst), used for what
// readpst does not say -- each item's message class and node id.
// Usage: node pstdump.js FILE.pst
//   -> {"folders": [{"path": [...], "contentCount": n}], "items": [{"path": [...],
//       "nid": n, "messageClass": "...", "subject": "...", "messageId": "<...>"}]}
// The package comes from the cache directory test_outlook.py fills with
// `npm ci`; it passes that directory's node_modules as NODE_PATH.
'use strict';

const { PSTFile } = require('pst-extractor');

const pst = new PSTFile(process.argv[2]);
const out = { folders: [], items: [] };

function walk(folder, path) {
  out.folders.push({ path, contentCount: folder.contentCount });
  if (folder.contentCount > 0) {
    for (let item = folder.getNextChild(); item; item = folder.getNextChild()) {
      out.items.push({
        path,
        nid: Number(item.descriptorNodeId.toString()),
        messageClass: item.messageClass,
        subject: item.subject,
        messageId: item.internetMessageId || null,
      });
    }
  }
  if (folder.hasSubfolders) {
    for (const sub of folder.getSubFolders()) walk(sub, path.concat([sub.displayName]));
  }
}

walk(pst.getRootFolder(), []);
pst.close();
process.stdout.write(JSON.stringify(out, null, 1) + '\n');
