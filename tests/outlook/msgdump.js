#!/usr/bin/env node
// Prints, as one JSON document, what @kenjiuno/msgreader reads from .msg
// files: the independent oracle of tests/system/test_outlook.py for the MSG
// converter.  Usage: node msgdump.js FILE.msg...  -> {"FILE.msg": dump, ...}
//
// The packages come from the cache directory that test_outlook.py fills
// with `npm ci` (package-lock.json beside this file); it passes that
// directory's node_modules as NODE_PATH.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const MsgReader = require('@kenjiuno/msgreader').default;
const { getLcidToAnsiCodePages } = require('@kenjiuno/msgreader/lib/Defs');

// Windows ANSI code pages (single- and double-byte) that iconv-lite reads.
const ANSI = new Set([874, 932, 936, 949, 950, 1250, 1251, 1252, 1253, 1254, 1255, 1256, 1257, 1258]);

// The code page of a file's 8-bit (PT_STRING8) strings, which msgreader
// would otherwise read as Latin-1: PidTagMessageCodepage (0x3FFD); else
// PidTagInternetCodepage (0x3FDE) when it is a Windows ANSI code page (it
// may name an Internet charset such as ISO-2022-JP, 50220, in which the
// 8-bit strings are not written); else the ANSI code page of the message's
// locale, PidTagMessageLocaleId (0x3FF1); else 1252.  null when the file
// has no 8-bit strings.
function ansiCodePage(buffer) {
  const probe = new MsgReader(buffer);
  probe.parserConfig = { includeRawProps: true };
  const props = {};
  let string8 = false;
  for (const p of probe.getFileData().rawProps || []) {
    if (!p.propertyTag) continue;
    props[p.propertyTag] = p.value;
    if (p.propertyTag.endsWith('001e')) string8 = true;
  }
  if (!string8) return null;
  if (typeof props['3ffd0003'] === 'number') return { codePage: props['3ffd0003'], from: 'PidTagMessageCodepage' };
  if (ANSI.has(props['3fde0003'])) return { codePage: props['3fde0003'], from: 'PidTagInternetCodepage' };
  const byLcid = getLcidToAnsiCodePages()[props['3ff10003']];
  if (byLcid && byLcid.length) return { codePage: byLcid[0], from: 'PidTagMessageLocaleId' };
  return { codePage: 1252, from: 'default' };
}

const sha256 = (data, enc) => crypto.createHash('sha256').update(data, enc).digest('hex');
const str = (v) => (typeof v === 'string' ? v : null);

function recipients(fields) {
  return (fields.recipients || []).map((r) => ({
    name: str(r.name),
    email: str(r.email),
    smtpAddress: str(r.smtpAddress),
    addressType: str(r.addressType),
    type: r.recipType || 'to',
  }));
}

// One message (the file's own, or an embedded one: its fields come from
// innerMsgContentFields, its attachments' bytes from the same reader).
function message(reader, fields, depth) {
  const out = {
    messageClass: str(fields.messageClass),
    subject: str(fields.subject),
    senderName: str(fields.senderName),
    senderEmail: str(fields.senderEmail),
    senderSmtpAddress: str(fields.senderSmtpAddress),
    senderAddressType: str(fields.senderAddressType),
    sentRepresentingSmtpAddress: str(fields.sentRepresentingSmtpAddress),
    clientSubmitTime: str(fields.clientSubmitTime),
    messageDeliveryTime: str(fields.messageDeliveryTime),
    headers: str(fields.headers),
    recipients: recipients(fields),
    body: str(fields.body),
    bodyHtml: typeof fields.bodyHtml === 'string' || fields.html instanceof Uint8Array,
    bodyRtf: fields.compressedRtf instanceof Uint8Array,
    attachments: [],
  };
  for (const att of fields.attachments || []) {
    const a = {
      fileName: str(att.fileName),
      fileNameShort: str(att.fileNameShort),
      name: str(att.name),
      contentId: str(att.pidContentId),
      hidden: att.attachmentHidden === true,
      embedded: att.innerMsgContent === true,
    };
    if (a.embedded) {
      const inner = att.innerMsgContentFields || {};
      a.subject = str(inner.subject);
      a.message = depth < 8 ? message(reader, inner, depth + 1) : null;
    } else {
      try {
        const content = reader.getAttachment(att).content;
        a.length = content.length;
        a.sha256 = sha256(content);
        // the same with CRLF taken as LF: for a file (an .eml, say) that a
        // converter may carry as a message/rfc822 part, which is text
        a.sha256Lines = sha256(Buffer.from(content).toString('latin1').replace(/\r\n/g, '\n'), 'latin1');
      } catch (e) {
        a.error = String(e && e.message || e);
      }
    }
    out.attachments.push(a);
  }
  return out;
}

const result = {};
for (const path of process.argv.slice(2)) {
  try {
    const buffer = fs.readFileSync(path);
    const ansi = ansiCodePage(buffer);
    const reader = new MsgReader(buffer);
    if (ansi) reader.parserConfig = { ansiEncoding: 'cp' + ansi.codePage };
    const fields = reader.getFileData();
    if (fields.error) {
      result[path] = { error: String(fields.error) };
    } else {
      result[path] = message(reader, fields, 0);
      result[path].ansiCodePage = ansi;
    }
  } catch (e) {
    result[path] = { error: String(e && e.message || e) };
  }
}
process.stdout.write(JSON.stringify(result, null, 1) + '\n');
