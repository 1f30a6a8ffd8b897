// core.js — shared plumbing for every view: the /web/api client (CSRF token,
// error codes, session expiry), the message catalogues with locale-aware
// formatting, DOM building helpers, icons and the page's aria-live status line.
import en from './i18n/en.js';
import de from './i18n/de.js';

/* ---------- language ---------- */

const catalogues = { en, de };
const LANG_KEY = 'mailvault.lang';
export const languages = [['en', 'English'], ['de', 'Deutsch']];

function storedLang() {
	try { return localStorage.getItem(LANG_KEY); } catch { return null; } // storage may be disabled
}

function browserLang() {
	// The first of the user's preferences we have a catalogue for wins, so a
	// "fr, de" reader gets German rather than the English fallback.
	for (const l of navigator.languages || [navigator.language || '']) {
		const base = String(l).toLowerCase().slice(0, 2);
		if (base === 'de' || base === 'en') return base;
	}
	return 'en';
}

export let lang = catalogues[storedLang()] ? storedLang() : browserLang();
document.documentElement.lang = lang;

/* The language switch; onChange re-renders the caller's view. */
export function langSelect(onChange) {
	const id = newId('lang');
	const sel = h('select', { id, testid: 'lang-select' },
		languages.map(([code, name]) => h('option', { value: code, lang: code, text: name })));
	sel.value = lang;
	sel.addEventListener('change', () => { setLang(sel.value); onChange(); });
	return h('div', { class: 'lang' }, h('label', { for: id, text: t('common.language') }), sel);
}

export function setLang(l, remember = true) {
	if (!catalogues[l]) return;
	lang = l;
	fmtCache.clear();
	document.documentElement.lang = l;
	if (remember) try { localStorage.setItem(LANG_KEY, l); } catch { /* not remembered then */ }
}

export function t(key, params) {
	const s = catalogues[lang][key] ?? en[key] ?? key;
	return params ? s.replace(/\{(\w+)\}/g, (m, k) => (k in params ? String(params[k]) : m)) : s;
}

/* Plural-aware lookup: key.one / key.other per Intl.PluralRules; {n} is the
 * formatted count. */
export function tn(key, n, params = {}) {
	const rule = cached('pl', () => new Intl.PluralRules(lang)).select(n);
	const k = `${key}.${rule}` in catalogues[lang] ? `${key}.${rule}` : `${key}.other`;
	return t(k, { ...params, n: fmtNumber(n) });
}

/* ---------- formatting ---------- */

const fmtCache = new Map();
function cached(name, make) {
	let f = fmtCache.get(name);
	if (!f) fmtCache.set(name, f = make());
	return f;
}

export function fmtNumber(n, digits = 0) {
	return cached('n' + digits, () => new Intl.NumberFormat(lang, { maximumFractionDigits: digits })).format(n);
}

export function fmtSize(bytes) {
	bytes = Number(bytes) || 0;
	const units = ['B', 'KB', 'MB', 'GB', 'TB'];
	let i = 0;
	while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i++; }
	return `${fmtNumber(bytes, i && bytes < 10 ? 1 : 0)} ${units[i]}`;
}

const dateStyles = {
	time: { hour: 'numeric', minute: '2-digit' },
	dayMonth: { day: 'numeric', month: 'short' },
	short: { year: 'numeric', month: '2-digit', day: '2-digit' },
	long: { dateStyle: 'full', timeStyle: 'short' },
	medium: { dateStyle: 'medium', timeStyle: 'short' },
	day: { dateStyle: 'medium' },
};

/* style "list" picks the shortest unambiguous form, as mail clients do. */
export function fmtDate(iso, style = 'medium') {
	const d = new Date(iso);
	if (!iso || isNaN(d)) return '';
	if (style === 'list') {
		const now = new Date();
		if (d.toDateString() === now.toDateString()) style = 'time';
		else if (d.getFullYear() === now.getFullYear() && d <= now) style = 'dayMonth';
		else style = 'short';
	}
	return cached('d' + style, () => new Intl.DateTimeFormat(lang, dateStyles[style])).format(d);
}

/* "Jane Doe <jane@example.com>" → "Jane Doe"; a bare address stays. */
export function displayName(addr) {
	const s = String(addr || '').trim();
	const first = s.split(/,(?=(?:[^"]*"[^"]*")*[^"]*$)/)[0].trim();
	// A quoted name is taken whole, whatever it contains ("<b>" is a name too).
	const quoted = first.match(/^"((?:[^"\\]|\\.)*)"/);
	if (quoted) return quoted[1].replace(/\\(.)/g, '$1').trim() || first;
	const m = first.match(/^([^<]*?)\s*<([^>]*)>\s*$/);
	const name = m ? (m[1].trim() || m[2].trim()) : first;
	return name || s;
}

/* ---------- DOM ---------- */

/* h('div', {class, text, testid, onclick, ...attrs}, ...children).  There is
 * deliberately no way to pass markup: everything from the server is text. */
export function h(tag, props, ...kids) {
	const el = document.createElement(tag);
	let value;
	if (props) for (const k in props) {
		const v = props[k];
		if (v == null || v === false) continue;
		if (k === 'class') el.className = v;
		else if (k === 'text') el.textContent = v;
		else if (k === 'testid') el.setAttribute('data-testid', v);
		else if (k === 'value') value = v;
		else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
		else if (k === 'style') throw new Error('style attributes break the CSP');
		else el.setAttribute(k, v === true ? '' : v);
	}
	add(el, kids);
	if (value !== undefined) el.value = value; // after options exist, for <select>
	return el;
}

export function add(el, kids) {
	for (const k of kids) {
		if (k == null || k === false) continue;
		if (Array.isArray(k)) add(el, k);
		else el.append(k instanceof Node ? k : String(k));
	}
	return el;
}

export function clear(el) { el.replaceChildren(); return el; }

let uid = 0;
export const newId = (p = 'id') => `${p}-${++uid}`;

/* A labelled form field: returns {wrap, input}. */
export function field(labelKey, props, hintKey) {
	const id = newId('f');
	const input = h(props.tag || 'input', { id, ...props, tag: null });
	const hint = hintKey && h('p', { class: 'hint', id: id + '-hint', text: t(hintKey) });
	if (hint) input.setAttribute('aria-describedby', hint.id);
	const wrap = h('div', { class: 'field' }, h('label', { for: id, text: t(labelKey) }), input, hint);
	return { wrap, input };
}

const SVG = 'http://www.w3.org/2000/svg';
const icons = {
	search: 'M11 4a7 7 0 1 0 0 14 7 7 0 0 0 0-14zM21 21l-5-5',
	clip: 'M21 11.5l-8.6 8.6a5 5 0 0 1-7.1-7.1l8.6-8.6a3.3 3.3 0 0 1 4.7 4.7l-8.6 8.6a1.7 1.7 0 0 1-2.4-2.4l7.9-7.9',
	chevron: 'M9 6l6 6-6 6',
	down: 'M6 9l6 6 6-6',
	close: 'M6 6l12 12M18 6L6 18',
	back: 'M15 6l-6 6 6 6',
	download: 'M12 4v11M7 10l5 5 5-5M5 20h14',
	print: 'M7 9V4h10v5M7 17H5a1 1 0 0 1-1-1v-6a1 1 0 0 1 1-1h14a1 1 0 0 1 1 1v6a1 1 0 0 1-1 1h-2M7 14h10v6H7z',
	folder: 'M3 7a2 2 0 0 1 2-2h4l2 2h8a2 2 0 0 1 2 2v8a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2z',
	archive: 'M3 5h18v4H3zM5 9v10h14V9M10 13h4',
	menu: 'M4 7h16M4 12h16M4 17h16',
	copy: 'M9 9h10v11H9zM5 15V4h10',
	sliders: 'M4 7h10M18 7h2M4 17h4M12 17h8M14 5v4M8 15v4',
	help: 'M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18zM9.5 9.5a2.5 2.5 0 1 1 3.5 2.3c-.6.3-1 .9-1 1.6v.6M12 17.5v.01',
	lock: 'M6 11h12v10H6zM8 11V8a4 4 0 0 1 8 0v3',
	shield: 'M12 3l8 3v6c0 5-3.5 8-8 9-4.5-1-8-4-8-9V6z',
	key: 'M3 12a4 4 0 1 0 8 0 4 4 0 1 0-8 0zM11 12h10M17 12v3M20 12v2',
	user: 'M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8zM4 21a8 8 0 0 1 16 0',
	mail: 'M3 6h18v12H3zM3 7l9 7 9-7',
	logout: 'M14 4h5v16h-5M10 8l-4 4 4 4M6 12h11',
};

export function icon(name, cls = '') {
	const svg = document.createElementNS(SVG, 'svg');
	svg.setAttribute('viewBox', '0 0 24 24');
	svg.setAttribute('class', 'icon ' + cls);
	svg.setAttribute('aria-hidden', 'true');
	svg.setAttribute('focusable', 'false');
	const p = document.createElementNS(SVG, 'path');
	p.setAttribute('d', icons[name]);
	svg.append(p);
	return svg;
}

/* ---------- status line ---------- */

let statusTimer;
/* Announces text in the page's polite live region and shows it briefly; the
 * text stays in the region (only faded) so it can still be read later. */
export function announce(text, kind = 'info') {
	const el = document.getElementById('status');
	if (!el) return;
	el.textContent = text;
	// "quiet": for screen readers only, when the page already shows the same text.
	el.className = 'status ' + kind + (text && kind !== 'quiet' ? ' show' : '');
	clearTimeout(statusTimer);
	if (text) statusTimer = setTimeout(() => el.classList.remove('show'), kind === 'error' ? 8000 : 4000);
}

/* Copies text; falls back to selecting it when the clipboard is unavailable. */
export async function copyText(text, selectEl) {
	try {
		await navigator.clipboard.writeText(text);
		announce(t('common.copied'));
	} catch {
		if (selectEl) {
			const r = document.createRange();
			r.selectNodeContents(selectEl);
			const sel = getSelection();
			sel.removeAllRanges();
			sel.addRange(r);
		}
		announce(t('common.copyFailed'));
	}
}

export function copyButton(getText, selectEl, testid) {
	return h('button', { type: 'button', class: 'btn small', testid, onclick: () => copyText(getText(), selectEl) },
		icon('copy'), t('common.copy'));
}

/* Base32 secrets are easier to type in groups of four. */
export function groupSecret(s) {
	return String(s || '').replace(/\s+/g, '').replace(/(.{4})(?=.)/g, '$1 ');
}

/* ---------- the JSON endpoint ---------- */

let csrfToken = '';
let expiredHandler = null;
export const setCsrf = (tok) => { csrfToken = tok || ''; };
export const onExpired = (fn) => { expiredHandler = fn; };

export class ApiError extends Error {
	constructor(status, code, detail) {
		super(detail || code);
		this.status = status;
		this.code = code;
		this.detail = detail || '';
	}
}

const codeForStatus = { 400: 'invalid', 401: 'expired', 403: 'denied', 404: 'not_found', 413: 'limit' };

async function call(method, path, fields, signal) {
	const headers = { Accept: 'application/json' };
	let body;
	if (method === 'POST') {
		headers['X-Requested-With'] = 'mailvault';
		if (csrfToken) headers['X-CSRF-Token'] = csrfToken;
		headers['Content-Type'] = 'application/x-www-form-urlencoded; charset=utf-8';
		const p = new URLSearchParams();
		for (const k in fields || {}) if (fields[k] != null) p.append(k, String(fields[k]));
		body = p.toString();
	}
	let res;
	try {
		res = await fetch(path, { method, headers, body, signal, credentials: 'same-origin', cache: 'no-store' });
	} catch (e) {
		if (e.name === 'AbortError') throw e;
		throw new ApiError(0, 'network', e.message);
	}
	let data = null;
	try { data = await res.json(); } catch (e) {
		if (e.name === 'AbortError') throw e; // a proxy's HTML error page is handled below
	}
	if (!res.ok) {
		const err = (data && data.error) || {};
		const code = err.code || codeForStatus[res.status] || 'internal';
		const e = new ApiError(res.status, code, err.message);
		if (code === 'expired' && expiredHandler) expiredHandler();
		throw e;
	}
	// Login answers carry a fresh token; keeping it here means no caller can forget.
	if (data && typeof data.csrfToken === 'string') csrfToken = data.csrfToken;
	return data || {};
}

export const get = (path, signal) => call('GET', path, null, signal);
export const post = (path, fields, signal) => call('POST', path, fields, signal);

/* Errors the view should not report itself: aborted requests, and an expired
 * session (the expiry handler already returned to the sign-in form). */
export const quiet = (e) => e.name === 'AbortError' || (e instanceof ApiError && e.code === 'expired');

/* The page's own text for an error code, with the server's English detail. */
export function errorText(e, detail = true) {
	if (!(e instanceof ApiError)) return t('error.internal');
	const base = t('error.' + e.code) === 'error.' + e.code ? t('error.internal') : t('error.' + e.code);
	return detail && e.detail && e.code !== 'network' ? `${base} (${e.detail})` : base;
}

export const enc = encodeURIComponent;
export const msgUrl = (id, rest) => `/web/api/message/${enc(id)}/${rest}`;
