// message.js — one message: the reading pane (headers, attachments, the
// sandboxed HTML frame or the plain text, remote-image consent) and the
// print view at #/print/ID.
import { h, t, icon, post, quiet, errorText, announce, fmtDate, fmtSize, msgUrl } from './core.js';

const HEADER_FIELDS = [['from', 'msg.from'], ['to', 'msg.to'], ['cc', 'msg.cc'], ['bcc', 'msg.bcc'], ['replyTo', 'msg.replyTo']];

export function createReader(ctx) {
	const el = h('section', { class: 'reader', 'aria-label': t('msg.pane') });
	let ctrl = null;
	let current = null;   // the MESSAGE answer being shown
	let loadingId = null;
	let frame = null;
	let lastWidth = 0;

	// The frame's height follows its content, which reflows when the pane's width changes.
	const ro = new ResizeObserver(() => {
		const w = el.clientWidth;
		if (frame && w !== lastWidth) { lastWidth = w; fitFrame(frame, true); }
	});
	ro.observe(el);

	function placeholder() {
		frame = null;
		el.replaceChildren(h('div', { class: 'reader-empty' }, icon('mail', 'big'), h('p', { text: t('msg.none') })));
	}

	async function open(id) {
		if (current?.id === id || loadingId === id) return;
		ctrl?.abort();
		ctrl = new AbortController();
		const mine = ctrl;
		loadingId = id;
		current = null;
		frame = null;
		el.setAttribute('aria-busy', 'true');
		el.replaceChildren(h('p', { class: 'loading-line' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), t('common.loading')));
		try {
			const m = await post('/web/api/message', { id }, mine.signal);
			if (mine !== ctrl) return;
			current = m;
			render(m);
		} catch (e) {
			if (mine !== ctrl || quiet(e)) return;
			el.replaceChildren(h('div', { class: 'list-error', role: 'alert', testid: 'message-error' },
				h('strong', { text: e.code === 'not_found' ? t('msg.notFound') : errorText(e) }),
				h('p', {}, h('button', { type: 'button', class: 'btn small', text: t('msg.back'), onclick: ctx.close }))));
		} finally {
			if (mine === ctrl) { loadingId = null; el.removeAttribute('aria-busy'); }
		}
	}

	function render(m, mode = m.hasHtml ? 'html' : 'text', remote = false) {
		document.title = (m.subject || t('msg.noSubject')) + ' – mailvault';
		const subject = h('h1', { class: 'msg-subject', id: 'msg-subject', testid: 'message-subject', tabindex: '-1', text: m.subject || t('msg.noSubject') });
		const allHeaders = headerTable(m.headers);
		allHeaders.hidden = true;
		allHeaders.id = 'all-headers';
		const headersToggle = h('button', {
			type: 'button', class: 'btn small', 'aria-expanded': 'false', 'aria-controls': 'all-headers', testid: 'headers-toggle',
			text: t('msg.allHeaders'),
			onclick: () => {
				allHeaders.hidden = !allHeaders.hidden;
				headersToggle.setAttribute('aria-expanded', String(!allHeaders.hidden));
				headersToggle.textContent = t(allHeaders.hidden ? 'msg.allHeaders' : 'msg.hideHeaders');
			},
		});

		const actions = h('div', { class: 'msg-actions' },
			h('a', { class: 'btn small', href: msgUrl(m.id, 'eml'), download: true, testid: 'download-eml' }, icon('download'), t('msg.downloadEml')),
			h('button', { type: 'button', class: 'btn small', testid: 'print-button', onclick: () => { location.hash = '#/print/' + encodeURIComponent(m.id); } },
				icon('print'), t('msg.print')),
			headersToggle,
			m.hasHtml && h('div', { class: 'seg', role: 'group', 'aria-label': t('msg.format') },
				['html', 'text'].map((k) => h('button', {
					type: 'button', 'aria-pressed': String(mode === k), testid: 'view-' + k, text: t(k === 'html' ? 'msg.html' : 'msg.text'),
					onclick: () => { if (mode !== k) { render(m, k, remote); el.querySelector(`[data-testid="view-${k}"]`)?.focus(); } },
				}))));

		const bar = h('div', { class: 'msg-bar' },
			h('button', { type: 'button', class: 'btn ghost small back', testid: 'message-close', title: t('msg.back'), onclick: ctx.close },
				icon('back', 'one-pane'), icon('close', 'two-pane'), h('span', { class: 'label', text: t('msg.back') })),
			actions);

		const dl = h('dl', { class: 'msg-headers' });
		for (const [k, label] of HEADER_FIELDS) {
			if (!m[k]) continue;
			dl.append(h('div', {}, h('dt', { text: t(label) }), h('dd', { testid: k === 'from' ? 'message-from' : 'message-' + k, text: m[k] })));
		}
		dl.append(h('div', {}, h('dt', { text: t('msg.date') }),
			h('dd', {}, h('time', { datetime: m.date, text: fmtDate(m.date, 'long') }))));
		dl.append(h('div', {}, h('dt', { text: t('msg.folder') }), h('dd', {},
			h('button', { type: 'button', class: 'link', text: m.folder || m.archive, onclick: () => ctx.openFolder(m.folder) }),
			h('span', { class: 'muted', text: ' · ' + fmtSize(m.size) }))));

		const body = h('div', { class: 'msg-body' });
		if (mode === 'html') {
			const src = msgUrl(m.id, 'html');
			frame = h('iframe', {
				class: 'msg-frame', testid: 'message-frame', title: t('msg.frameTitle'),
				sandbox: 'allow-same-origin allow-popups allow-popups-to-escape-sandbox',
				referrerpolicy: 'no-referrer', src: remote ? src + '?remote=1' : src,
			});
			const f = frame;
			f.addEventListener('load', () => onFrameLoad(f));
			if (m.hasRemoteContent && !remote) {
				const notice = h('div', { class: 'notice-bar', testid: 'remote-notice' },
					h('span', { text: t('msg.remoteBlocked') }),
					h('button', { type: 'button', class: 'btn small', testid: 'load-remote', text: t('msg.loadRemote'), onclick: () => {
						remote = true;
						f.src = src + '?remote=1';
						notice.remove();
						announce(t('msg.remoteLoaded'));
						subject.focus();
					} }));
				body.append(notice);
			}
			body.append(f);
		} else {
			frame = null;
			body.append(textView(m.text));
		}

		el.replaceChildren(h('article', { class: 'message', testid: 'message-view', 'aria-labelledby': 'msg-subject' },
			bar, subject, dl, allHeaders, attachmentList(m), body));
		lastWidth = el.clientWidth;
		// In the one-pane layout the list is gone: take the reader's focus to the heading.
		if (getComputedStyle(document.querySelector('.list-pane') || el).display === 'none') subject.focus();
		el.scrollTop = 0;
	}

	function onFrameLoad(f) {
		fitFrame(f);
		// Keys typed while the frame has focus never reach the page; pass the shortcuts on.
		try { f.contentDocument?.addEventListener('keydown', ctx.keydown); } catch { /* not readable: no shortcuts there */ }
	}

	function close() {
		ctrl?.abort();
		ctrl = null;
		current = null;
		loadingId = null;
		el.removeAttribute('aria-busy');
		placeholder();
	}

	placeholder();
	return { el, open, close };
}

/* Sets the frame's height to its document's; with shrink, measures from a
 * small height first, since scrollHeight never reports less than the frame. */
function fitFrame(f, shrink = false) {
	let doc = null;
	try { doc = f.contentDocument; } catch { /* opaque origin */ }
	if (!doc || !doc.documentElement) {
		// Not readable (a CSP sandbox without allow-same-origin): a tall frame that scrolls itself.
		f.style.height = '75vh';
		return;
	}
	if (shrink) f.style.height = '40px';
	f.style.height = Math.max(doc.documentElement.scrollHeight, 40) + 'px';
}

function headerTable(headers) {
	return h('table', { class: 'all-headers', testid: 'all-headers' },
		h('caption', { class: 'vh', text: t('msg.allHeadersCaption') }),
		h('tbody', {}, (headers || []).map(([name, value]) => h('tr', {}, h('th', { scope: 'row', text: name }), h('td', { text: value })))));
}

function attachmentList(m) {
	const list = m.attachments || [];
	if (!list.length) return null;
	return h('section', { class: 'attachments', testid: 'attachments', 'aria-labelledby': 'att-title' },
		h('h2', { id: 'att-title', text: t('msg.attachments', { n: list.length }) }),
		h('ul', {}, list.map((a) => h('li', {},
			icon('clip'),
			h('a', { href: msgUrl(m.id, 'part/' + a.index), download: true, testid: 'attachment-link', text: a.name || t('msg.unnamed') }),
			h('span', { class: 'muted', title: a.contentType || null, text: [typeLabel(a), fmtSize(a.size)].filter(Boolean).join(' · ') })))));
}

/* "application/vnd.openxmlformats-…" says little; the file's extension says more. */
function typeLabel(a) {
	const ext = /\.([a-z0-9]{1,5})$/i.exec(a.name || '');
	if (ext) return ext[1].toUpperCase();
	const sub = String(a.contentType || '').split('/')[1] || '';
	return sub.length <= 12 ? sub.toUpperCase() : a.contentType;
}

/* The plain text with its http(s) URLs as links, built node by node.  A
 * long text shows its first part at once and the rest a chunk per task, so
 * a 500 KB mail does not hold the page up before its first lines show. */
const FIRST_CHUNK = 48 * 1024;
const LATER_CHUNK = 256 * 1024;

function textView(text) {
	const pre = h('pre', { class: 'msg-text', testid: 'message-text' });
	text = String(text ?? '');
	if (!text.trim()) {
		pre.append(h('span', { class: 'muted', text: t('msg.noText') }));
		return pre;
	}
	const cut = (from, size) => {
		if (from + size >= text.length) return text.length;
		const nl = text.indexOf('\n', from + size);
		return nl < 0 ? text.length : nl + 1;
	};
	let at = cut(0, FIRST_CHUNK);
	pre.append(linked(text.slice(0, at)));
	let shown = false;
	const more = () => {
		// A message closed meanwhile needs no more text.
		if (at >= text.length || (shown && !pre.isConnected)) return;
		shown = shown || pre.isConnected;
		const next = cut(at, LATER_CHUNK);
		pre.append(linked(text.slice(at, next)));
		at = next;
		setTimeout(more, 0);
	};
	if (at < text.length) setTimeout(more, 0);
	return pre;
}

function linked(text) {
	const frag = document.createDocumentFragment();
	let last = 0;
	for (const match of text.matchAll(/\bhttps?:\/\/[^\s<>"'`]+/gi)) {
		let url = match[0];
		// Trailing punctuation usually ends the sentence, and a ")" the parenthesis around the URL.
		for (;;) {
			if (/[.,;:!?'\]>}*]$/.test(url)) url = url.slice(0, -1);
			else if (url.endsWith(')') && url.split('(').length < url.split(')').length) url = url.slice(0, -1);
			else break;
		}
		if (match.index > last) frag.append(text.slice(last, match.index));
		frag.append(h('a', { href: url, target: '_blank', rel: 'noopener noreferrer', text: url }));
		last = match.index + url.length;
	}
	if (last < text.length) frag.append(text.slice(last));
	return frag;
}

/* ---------- print view ---------- */

export async function showPrint(root, id) {
	const page = h('main', { class: 'print-page', id: 'main' });
	const bar = h('div', { class: 'print-bar' },
		h('a', { class: 'btn small', href: '#/message/' + encodeURIComponent(id) }, icon('back'), t('msg.backToMessage')),
		h('button', { type: 'button', class: 'btn primary small', testid: 'print-button', onclick: () => window.print() }, icon('print'), t('msg.print')));
	const body = h('div', { 'aria-busy': 'true' }, h('p', { class: 'loading-line', text: t('common.loading') }));
	page.append(bar, body);
	root.replaceChildren(page);
	let m;
	try {
		m = await post('/web/api/message', { id });
	} catch (e) {
		if (!quiet(e)) body.replaceChildren(h('p', { class: 'form-error', role: 'alert', text: e.code === 'not_found' ? t('msg.notFound') : errorText(e) }));
		return;
	}
	if (!root.contains(page)) return;
	document.title = (m.subject || t('msg.noSubject')) + ' – mailvault';
	const rows = HEADER_FIELDS.filter(([k]) => m[k]).map(([k, label]) => [t(label), m[k]]);
	rows.push([t('msg.date'), fmtDate(m.date, 'long')], [t('msg.folder'), m.folder]);
	const content = [
		h('h1', { class: 'print-subject', testid: 'message-subject', text: m.subject || t('msg.noSubject') }),
		h('table', { class: 'print-headers' }, h('tbody', {}, rows.map(([k, v]) => h('tr', {}, h('th', { scope: 'row', text: k }), h('td', { text: v }))))),
	];
	if (m.attachments?.length) {
		content.push(h('p', { class: 'print-att' }, h('strong', { text: t('msg.attachments', { n: m.attachments.length }) + ': ' }),
			m.attachments.map((a) => `${a.name || t('msg.unnamed')} (${fmtSize(a.size)})`).join(', ')));
	}
	if (m.hasHtml) {
		const f = h('iframe', {
			class: 'msg-frame', testid: 'message-frame', title: t('msg.frameTitle'),
			sandbox: 'allow-same-origin allow-popups allow-popups-to-escape-sandbox', referrerpolicy: 'no-referrer', src: msgUrl(m.id, 'html'),
		});
		f.addEventListener('load', () => fitFrame(f));
		content.push(f);
	} else {
		content.push(textView(m.text));
	}
	body.removeAttribute('aria-busy');
	body.replaceChildren(...content);
	page.querySelector('[data-testid="print-button"]').focus();
}
