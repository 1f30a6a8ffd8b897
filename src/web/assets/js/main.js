// main.js — the entry point: loads the session, switches between sign-in and
// the app, builds the app shell (header, user menu, folder tree), maps hash
// routes to views and owns the global keyboard shortcuts.
import { h, t, icon, get, post, setCsrf, onExpired, quiet, errorText, announce, enc, langSelect } from './core.js';
import { showLogin } from './login.js';
import { createSearch } from './search.js';
import { createReader, showPrint } from './message.js';
import { showSettings } from './settings.js';

const root = document.getElementById('app');
const printRoot = document.getElementById('print');

let session = null;   // the authenticated session's answer
let folders = [];     // POST /web/api/folders, sorted by folder
let shell = null;     // the app's DOM and its parts, built once per sign-in
let view = '';        // 'list' | 'message' | 'settings' | 'print'
let lastListHash = '#/search';
let refocusList = false;
const collapsed = new Set(); // folders the user folded (or folded by default)

onExpired(() => {
	if (!session) return; // the sign-in screens report this themselves
	signedOut(t('login.expired'));
});

function signedOut(notice) {
	session = null;
	shell?.search.reset();
	shell = null;
	folders = [];
	collapsed.clear();
	lastListHash = '#/search';
	setCsrf('');
	announce('', 'quiet'); // nothing of the session stays on screen
	document.body.classList.remove('printing');
	printRoot.replaceChildren();
	showLogin(root, { notice }, boot);
}

async function boot() {
	let s;
	try {
		s = await get('/web/api/session');
	} catch (e) {
		root.replaceChildren(h('main', { class: 'login-page', id: 'main' },
			h('div', { class: 'login-card' }, h('h1', { text: 'mailvault' }),
				h('p', { class: 'form-error', role: 'alert', text: errorText(e) }),
				h('button', { type: 'button', class: 'btn primary', text: t('common.retry'), onclick: boot }))));
		return;
	}
	setCsrf(s.csrfToken);
	if (s.stage !== 'authenticated') {
		showLogin(root, { stage: s.stage, userName: s.userName }, boot);
		return;
	}
	session = s;
	startApp();
}

/* ---------- the shell ---------- */

function startApp() {
	shell?.reader.close();
	const reader = createReader({
		close: closeMessage,
		openFolder: (f) => { location.hash = '#/folder/' + enc(f); },
		keydown: onKey,
	});
	const search = shell?.search || createSearch({
		// The message's request starts at the click; the route that follows
		// (a hashchange task later) finds it on its way.
		open: (id) => { shell.reader.open(id); location.hash = '#/message/' + enc(id); },
	});
	search.setFolders(folders);
	shell = { reader, search };
	buildShell();
	if (!folders.length) loadFolders();
	route();
}

function buildShell() {
	const user = session.user || {};
	const name = user.fullName || user.userName || '';
	const initials = name.split(/[\s._@-]+/).filter(Boolean).slice(0, 2).map((p) => p[0].toUpperCase()).join('');

	const menuPanel = h('div', { class: 'menu', id: 'user-menu', hidden: true },
		h('div', { class: 'menu-who' },
			h('strong', { text: name }),
			user.fullName && h('span', { class: 'muted', text: user.userName }),
			user.emailAddresses?.[0] && h('span', { class: 'muted', text: user.emailAddresses[0] })),
		h('a', { href: '#/settings', class: 'menu-item', testid: 'settings-link', onclick: () => toggleMenu(false) }, icon('user'), t('nav.settings')),
		h('div', { class: 'menu-item lang-item' }, langSelect(rerender)),
		h('button', { type: 'button', class: 'menu-item', testid: 'logout', onclick: logout }, icon('logout'), t('nav.logout')));
	const menuButton = h('button', {
		type: 'button', class: 'user-button', testid: 'user-menu', 'aria-expanded': 'false', 'aria-controls': 'user-menu',
		onclick: () => toggleMenu(),
	}, h('span', { class: 'avatar', 'aria-hidden': 'true', text: initials || '?' }), h('span', { class: 'user-name', text: name }),
	h('span', { class: 'vh', text: t('nav.userMenu') }), icon('down'));

	const navToggle = h('button', {
		type: 'button', class: 'icon-btn nav-toggle', 'aria-expanded': 'false', 'aria-controls': 'folders',
		'aria-label': t('nav.folders'), onclick: () => toggleNav(),
	}, icon('menu'));

	const tree = h('ul', { class: 'tree', testid: 'folder-tree', 'aria-label': t('nav.folders') });
	const nav = h('nav', { class: 'sidebar', id: 'folders', 'aria-labelledby': 'folders-heading' },
		h('h2', { class: 'sidebar-title', id: 'folders-heading', text: t('nav.folders') }), tree);

	const main = h('main', { class: 'content', id: 'main', tabindex: '-1' },
		shell.search.listPane, shell.reader.el, h('section', { class: 'settings-pane', id: 'settings', hidden: true }));

	const header = h('header', { class: 'topbar' },
		h('a', { class: 'skip', href: '#main', onclick: (e) => { e.preventDefault(); focusMain(); }, text: t('nav.skip') }),
		navToggle,
		h('a', { class: 'brand', href: '#/search', 'aria-label': t('nav.home') },
			h('img', { src: '/assets/favicon.svg', alt: '', width: 28, height: 28 }), h('span', { text: 'mailvault' })),
		shell.search.bar,
		h('div', { class: 'user' }, menuButton, menuPanel));

	Object.assign(shell, { header, nav, tree, main, menuButton, menuPanel, navToggle, settings: main.lastChild });
	root.replaceChildren(header, h('div', { class: 'workspace' }, nav, main, h('div', { class: 'scrim', onclick: () => toggleNav(false) })));
	renderTree();
}

function rerender() {
	if (!shell) return;
	shell.search.rerender();
	startApp(); // rebuilds the shell in the new language; loaded lists are kept
	shell.menuButton.focus(); // the language switch that had focus is gone
}

function toggleMenu(open) {
	const { menuButton, menuPanel } = shell;
	open ??= menuPanel.hidden;
	menuPanel.hidden = !open;
	menuButton.setAttribute('aria-expanded', String(open));
	if (open) menuPanel.querySelector('a,button,select').focus();
}

function toggleNav(open) {
	const { navToggle } = shell;
	open ??= !document.body.classList.contains('nav-open');
	document.body.classList.toggle('nav-open', open);
	navToggle.setAttribute('aria-expanded', String(open));
	if (open) shell.tree.querySelector('a')?.focus();
}

document.addEventListener('click', (e) => {
	if (shell && !shell.menuPanel.hidden && !e.target.closest('.user')) toggleMenu(false);
	shell?.search.outsideClick(e);
});

async function logout() {
	try { await post('/web/api/logout', {}); } catch (e) { if (!quiet(e)) { announce(errorText(e), 'error'); return; } }
	location.hash = '#/';
	signedOut(t('login.loggedOut'));
}

function focusMain() {
	const target = view === 'list' ? shell.search.focusTarget() : shell.main;
	target.focus();
}

/* ---------- folders ---------- */

async function loadFolders() {
	try {
		const data = await post('/web/api/folders', {});
		folders = data.folders || [];
		// Sub-folders of sub-folders start folded, so the first view is the archives and their top folders.
		for (const f of folders) if (f.level >= 2) collapsed.add(f.folder);
		shell?.search.setFolders(folders);
		renderTree();
	} catch (e) {
		if (!quiet(e) && shell) shell.tree.replaceChildren(h('li', { class: 'form-error', text: errorText(e) }));
	}
}

/* Nested by path: a folder's parent is the folder whose path is its own
 * minus "/name"; string order alone would misplace "Inbox-old" siblings. */
function folderTree() {
	const byPath = new Map();
	const roots = [];
	for (const f of folders) byPath.set(f.folder, { f, kids: [] });
	for (const node of byPath.values()) {
		const { folder, name } = node.f;
		let parent = null;
		if (node.f.level > 1) {
			let p = folder.endsWith('/' + name) ? folder.slice(0, -name.length - 1) : folder.slice(0, folder.lastIndexOf('/'));
			// Skip ancestors the user may not read: attach to the nearest readable one.
			while (p && !(parent = byPath.get(p))) p = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '';
		}
		(parent ? parent.kids : roots).push(node);
	}
	return roots;
}

function renderTree() {
	if (!shell) return;
	const current = currentFolder();
	// Keep the open folder visible: unfold its ancestors.
	if (current) for (let p = current; p.includes('/');) { p = p.slice(0, p.lastIndexOf('/')); collapsed.delete(p); }
	const frag = document.createDocumentFragment();
	const build = (node, depth) => {
		const { f, kids } = node;
		const open = !collapsed.has(f.folder);
		const link = h('a', {
			href: '#/folder/' + enc(f.folder), class: 'folder-link', testid: 'folder-item', title: f.folder,
			'aria-current': f.folder === current ? 'page' : null,
			onclick: () => document.body.classList.remove('nav-open'),
		}, icon(depth === 0 ? 'archive' : 'folder'), h('span', { class: 'folder-name', text: f.name || f.folder }),
		// An archive's own count is usually 0 (its mail is in folders): no badge then.
		!(depth === 0 && !f.count) && h('span', { class: 'count', 'aria-label': t('nav.count', { n: f.count }), text: String(f.count ?? '') }));
		link.dataset.folder = f.folder;
		const row = h('div', { class: 'folder-row' }, kids.length ? h('button', {
			type: 'button', class: 'twisty', 'aria-expanded': String(open),
			'aria-label': t(open ? 'nav.collapse' : 'nav.expand', { name: f.name || f.folder }),
			onclick: () => { if (open) collapsed.add(f.folder); else collapsed.delete(f.folder); renderTree(); shell.tree.querySelector(`[data-folder="${CSS.escape(f.folder)}"]`)?.previousElementSibling?.focus(); },
		}, icon('chevron')) : h('span', { class: 'twisty-space' }), link);
		row.style.setProperty('--depth', depth);
		const li = h('li', {}, row);
		if (kids.length && open) li.append(h('ul', {}, kids.map((k) => build(k, depth + 1))));
		return li;
	};
	for (const node of folderTree()) frag.append(build(node, 0));
	if (!folders.length) frag.append(h('li', { class: 'muted tree-empty', text: t('nav.noFolders') }));
	shell.tree.replaceChildren(frag);
}

function currentFolder() {
	const m = location.hash.match(/^#\/folder\/([^?]*)/);
	return m ? safeDecode(m[1]) : '';
}

const safeDecode = (s) => { try { return decodeURIComponent(s); } catch { return s; } };

/* ---------- routing ---------- */

function parseRoute() {
	const raw = location.hash.replace(/^#/, '') || '/';
	const [path, qs = ''] = raw.split('?');
	const parts = path.split('/').filter(Boolean);
	const params = new URLSearchParams(qs);
	switch (parts[0]) {
	case 'folder': return { view: 'list', list: { kind: 'folder', folder: safeDecode(parts.slice(1).join('/')) } };
	case 'message': return { view: 'message', id: safeDecode(parts.slice(1).join('/')) };
	case 'print': return { view: 'print', id: safeDecode(parts.slice(1).join('/')) };
	case 'settings': return { view: 'settings' };
	default: return { view: 'list', list: { kind: 'search', q: params.get('q') || '', sort: params.get('sort') === 'relevance' ? 'relevance' : 'date' } };
	}
}

function route() {
	if (!shell) return;
	const r = parseRoute();
	const refocus = refocusList;
	refocusList = false;
	const wasPrint = view === 'print';
	view = r.view;
	document.body.classList.toggle('printing', view === 'print');
	if (view !== 'print') printRoot.replaceChildren();
	shell.main.className = 'content view-' + view;
	shell.settings.hidden = view !== 'settings';
	if (!shell.menuPanel.hidden) toggleMenu(false);
	shell.search.closePanels();

	if (view === 'print') {
		// The reader goes: its test hooks (print-button, message-frame) must be unique on the page.
		shell.reader.close();
		showPrint(printRoot, r.id);
		return;
	}
	if (view === 'list') {
		lastListHash = location.hash || '#/search';
		shell.reader.close();
		shell.search.show(r.list);
		if (refocus) shell.search.focusTarget().focus();
		document.title = (r.list.kind === 'folder' ? r.list.folder : r.list.q ? t('search.titleQuery', { q: r.list.q }) : t('search.title')) + ' – mailvault';
	} else if (view === 'message') {
		shell.search.markOpen(r.id);
		shell.reader.open(r.id);
	} else if (view === 'settings') {
		shell.reader.close();
		document.title = t('settings.title') + ' – mailvault';
		showSettings(shell.settings, session, { onUser: (u) => Object.assign(session.user, u) });
	}
	if (wasPrint && view === 'list') shell.search.focusTarget().focus();
	renderTreeCurrent();
}

/* Only the aria-current mark changes on navigation; no rebuild. */
function renderTreeCurrent() {
	const current = view === 'list' ? currentFolder() : view === 'settings' ? '' : null;
	if (current === null) return;
	for (const a of shell.tree.querySelectorAll('[aria-current]')) a.removeAttribute('aria-current');
	const a = current && shell.tree.querySelector(`[data-folder="${CSS.escape(current)}"]`);
	if (a) a.setAttribute('aria-current', 'page');
	else if (current && folders.length) renderTree();
}

function closeMessage() {
	// Focus goes back to the list once the route has shown it again.
	refocusList = true;
	if (location.hash === lastListHash) route();
	else location.hash = lastListHash;
}

window.addEventListener('hashchange', route);

/* ---------- keyboard ---------- */

function typing(el) {
	return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
}

function onKey(e) {
	if (!shell || e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
	const target = e.target;
	if (e.key === 'Escape') {
		if (!shell.menuPanel.hidden) { toggleMenu(false); shell.menuButton.focus(); e.preventDefault(); return; }
		if (document.body.classList.contains('nav-open')) { toggleNav(false); shell.navToggle.focus(); e.preventDefault(); return; }
		if (shell.search.closePanels(true)) { e.preventDefault(); return; }
		if (view === 'message') { e.preventDefault(); closeMessage(); return; }
		if (view === 'print') { e.preventDefault(); location.hash = '#/message/' + enc(parseRoute().id); }
		else if (view === 'settings' && !typing(target)) { e.preventDefault(); location.hash = lastListHash; }
		return;
	}
	if (typing(target) || view === 'print') return;
	if (e.key === '/') {
		e.preventDefault();
		shell.search.focusInput();
	} else if (view !== 'settings' && (e.key === 'j' || e.key === 'k')) {
		e.preventDefault();
		shell.search.move(e.key === 'j' ? 1 : -1);
	} else if (e.key === 'Enter' && (target === document.body || target === shell.main)) {
		e.preventDefault();
		shell.search.openSelected();
	}
}

document.addEventListener('keydown', onKey);

boot();
