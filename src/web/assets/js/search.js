// search.js — the search bar (query box, syntax help, advanced form, sort)
// and the message list it fills: search hits or a folder's messages, paged
// by infinite scroll, with listbox keyboard selection.
import { h, t, tn, icon, post, quiet, errorText, announce, fmtDate, fmtSize, displayName, field, newId } from './core.js';

const PAGE = 50;

export function createSearch(ctx) {
	const state = {
		route: null, key: '', items: [], more: false, loading: false, error: null, done: false,
		selected: -1, openId: null, ctrl: null,
	};
	let folders = [];
	let oneArchive = false; // then rows show folders without the archive's name
	let ui = null;

	/* ---------- DOM ---------- */

	function build() {
		const input = h('input', {
			type: 'search', id: 'q', name: 'q', testid: 'search-input', autocomplete: 'off', spellcheck: 'false',
			placeholder: t('search.placeholder'), 'aria-describedby': 'q-keys', enterkeyhint: 'search',
		});
		input.value = state.route?.kind === 'search' ? state.route.q : '';
		const helpToggle = h('button', {
			type: 'button', class: 'icon-btn', testid: 'search-help-toggle', 'aria-expanded': 'false', 'aria-controls': 'search-help',
			'aria-label': t('search.help'), title: t('search.help'), onclick: () => togglePanel('help'),
		}, icon('help'));
		const advToggle = h('button', {
			type: 'button', class: 'icon-btn', testid: 'search-advanced-toggle', 'aria-expanded': 'false', 'aria-controls': 'search-advanced',
			'aria-label': t('search.advanced'), title: t('search.advanced'), onclick: () => togglePanel('advanced'),
		}, icon('sliders'));
		const form = h('form', { class: 'searchbar', role: 'search', 'aria-label': t('search.label'), onsubmit: submit },
			h('label', { class: 'vh', for: 'q', text: t('search.label') }),
			h('span', { class: 'vh', id: 'q-keys', text: t('search.keys') }),
			icon('search', 'search-glyph'),
			input,
			h('button', { type: 'submit', class: 'btn primary search-go', testid: 'search-submit', text: t('search.submit') }),
			helpToggle, advToggle);
		const help = helpPanel();
		const advanced = advancedPanel();
		const bar = h('div', { class: 'search-wrap' }, form, help, advanced);

		const heading = h('h1', { id: 'list-heading', class: 'list-title', tabindex: '-1' });
		const sub = h('p', { class: 'list-sub muted' });
		const count = h('p', { class: 'list-count', testid: 'result-count' });
		const sortId = newId('sort');
		const sort = h('select', { id: sortId, testid: 'sort-select', onchange: () => {
			if (state.route?.kind === 'search') go(state.route.q, sort.value);
		} }, h('option', { value: 'date', text: t('search.sortDate') }), h('option', { value: 'relevance', text: t('search.sortRelevance') }));
		const sortWrap = h('div', { class: 'sort' }, h('label', { for: sortId, text: t('search.sort') }), sort);
		const list = h('ul', {
			role: 'listbox', class: 'results', testid: 'results', 'aria-labelledby': 'list-heading', hidden: true,
			onkeydown: listKey, onclick: rowClick,
		});
		const message = h('div', { class: 'list-message' });
		const moreButton = h('button', { type: 'button', class: 'btn', text: t('search.loadMore'), onclick: () => loadPage() });
		const more = h('div', { class: 'more', testid: 'result-more', hidden: true }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), moreButton);
		const scroll = h('div', { class: 'list-scroll' }, message, list, more);
		const listPane = h('section', { class: 'list-pane', 'aria-labelledby': 'list-heading' },
			h('div', { class: 'list-head' }, h('div', { class: 'list-titles' }, heading, sub), h('div', { class: 'list-tools' }, count, sortWrap)),
			scroll);

		ui?.io.disconnect();
		// Prefetch before the user hits the end: the margin is about a screenful of rows.
		const io = new IntersectionObserver((entries) => {
			if (entries.some((e) => e.isIntersecting)) loadPage();
		}, { root: scroll, rootMargin: '0px 0px 600px 0px' });
		io.observe(more);
		ui = { input, helpToggle, advToggle, form, help, advanced, bar, heading, sub, count, sort, sortWrap, list, message, more, moreButton, scroll, listPane, io };
	}

	function helpPanel() {
		const rows = [
			['help.words', 'help.wordsDesc'], ['help.phrase', 'help.phraseDesc'], ['help.or', 'help.orDesc'],
			['help.not', 'help.notDesc'], ['help.group', 'help.groupDesc'], ['help.prefix', 'help.prefixDesc'],
			['help.fields', 'help.fieldsDesc'], ['help.parts', 'help.partsDesc'], ['help.msgid', 'help.msgidDesc'],
			['help.folder', 'help.folderDesc'], ['help.archive', 'help.archiveDesc'], ['help.after', 'help.afterDesc'],
			['help.before', 'help.beforeDesc'], ['help.has', 'help.hasDesc'], ['help.size', 'help.sizeDesc'],
		];
		return h('div', { class: 'panel help', id: 'search-help', testid: 'search-help', hidden: true, role: 'region', 'aria-labelledby': 'search-help-title' },
			h('div', { class: 'panel-head' }, h('h2', { id: 'search-help-title', text: t('help.title') }),
				h('button', { type: 'button', class: 'icon-btn', 'aria-label': t('common.close'), onclick: () => closePanels(true) }, icon('close'))),
			h('table', { class: 'syntax' },
				h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: t('help.colSyntax') }), h('th', { scope: 'col', text: t('help.colMeaning') }))),
				h('tbody', {}, rows.map(([s, d]) => h('tr', {}, h('td', {}, h('code', { text: t(s) })), h('td', { text: t(d) }))))),
			h('p', { class: 'muted' }, t('help.example'), ' ', h('code', { text: t('help.exampleQuery') })),
			h('p', { class: 'muted', text: t('help.keys') }));
	}

	function advancedPanel() {
		const f = {
			words: field('adv.words', { name: 'words' }),
			from: field('adv.from', { name: 'from' }),
			to: field('adv.to', { name: 'to' }),
			subject: field('adv.subject', { name: 'subject' }),
			after: field('adv.after', { name: 'after', type: 'date' }),
			before: field('adv.before', { name: 'before', type: 'date' }),
			folder: field('adv.folder', { tag: 'select', name: 'folder', class: 'folder-select' }),
		};
		fillFolderSelect(f.folder.input);
		const hasId = newId('has');
		const has = h('input', { type: 'checkbox', id: hasId, name: 'has' });
		const form = h('form', { class: 'adv-form', onsubmit: (e) => {
			e.preventDefault();
			const q = buildQuery(f, has.checked);
			if (!q) { f.words.input.focus(); return; }
			ui.input.value = q;
			closePanels();
			go(q, ui.sort.value);
		} },
		h('div', { class: 'adv-grid' }, f.words.wrap, f.from.wrap, f.to.wrap, f.subject.wrap, f.after.wrap, f.before.wrap, f.folder.wrap,
			h('div', { class: 'field check' }, has, h('label', { for: hasId, text: t('adv.has') }))),
		h('div', { class: 'form-actions' },
			h('button', { type: 'submit', class: 'btn primary', text: t('adv.search') }),
			h('button', { type: 'reset', class: 'btn', text: t('adv.reset') })));
		return h('div', { class: 'panel advanced', id: 'search-advanced', testid: 'search-advanced', hidden: true, role: 'region', 'aria-labelledby': 'search-adv-title' },
			h('div', { class: 'panel-head' }, h('h2', { id: 'search-adv-title', text: t('adv.title') }),
				h('button', { type: 'button', class: 'icon-btn', 'aria-label': t('common.close'), onclick: () => closePanels(true) }, icon('close'))),
			h('p', { class: 'muted', text: t('adv.intro') }), form);
	}

	function fillFolderSelect(sel) {
		const keep = sel.value;
		sel.replaceChildren(h('option', { value: '', text: t('adv.allFolders') }),
			...folders.map((f) => {
				const o = h('option', { value: f.folder, text: '\u00a0\u00a0'.repeat(Math.max(0, f.level - 1)) + (f.name || f.folder) });
				o.dataset.level = f.level;
				return o;
			}));
		sel.value = keep;
	}

	/* ---------- query building ---------- */

	function buildQuery(f, hasAttachment) {
		const parts = [];
		const words = f.words.input.value.trim();
		if (words) parts.push(words);
		for (const k of ['from', 'to', 'subject']) {
			const v = f[k].input.value.trim();
			if (v) parts.push(term(k, v));
		}
		if (f.after.input.value) parts.push('after:' + f.after.input.value);
		// The form's "until" includes that day; the language's before: does not.
		if (f.before.input.value) parts.push('before:' + nextDay(f.before.input.value));
		if (hasAttachment) parts.push('has:attachment');
		const sel = f.folder.input;
		if (sel.value) parts.push(term(sel.selectedOptions[0].dataset.level === '1' ? 'archive' : 'folder', sel.value));
		return parts.join(' ');
	}

	function term(name, v) {
		v = v.replace(/"/g, '').replace(/\s+/g, ' ').trim();
		return `${name}:${/[\s()]/.test(v) ? `"${v}"` : v}`;
	}

	function nextDay(iso) {
		const d = new Date(iso + 'T00:00:00Z');
		d.setUTCDate(d.getUTCDate() + 1);
		return d.toISOString().slice(0, 10);
	}

	/* ---------- panels ---------- */

	function togglePanel(which) {
		const open = which === 'help' ? ui.help.hidden : ui.advanced.hidden;
		closePanels();
		if (!open) return;
		const [panel, toggle] = which === 'help' ? [ui.help, ui.helpToggle] : [ui.advanced, ui.advToggle];
		panel.hidden = false;
		toggle.setAttribute('aria-expanded', 'true');
		if (which === 'advanced') {
			fillFolderSelect(ui.advanced.querySelector('select'));
			ui.advanced.querySelector('input').focus();
		}
	}

	/* Returns whether a panel was open; focus goes back to its toggle when asked. */
	function closePanels(refocus = false) {
		if (!ui) return false;
		let was = null;
		for (const [panel, toggle] of [[ui.help, ui.helpToggle], [ui.advanced, ui.advToggle]]) {
			if (!panel.hidden) was = toggle;
			panel.hidden = true;
			toggle.setAttribute('aria-expanded', 'false');
		}
		if (was && refocus) was.focus();
		return !!was;
	}

	function outsideClick(e) {
		if (ui && !ui.bar.contains(e.target) && (!ui.help.hidden || !ui.advanced.hidden)) closePanels();
	}

	/* ---------- navigation ---------- */

	function hashFor(q, sort) {
		const p = new URLSearchParams();
		if (q) p.set('q', q);
		if (sort === 'relevance') p.set('sort', sort);
		const s = p.toString();
		return '#/search' + (s ? '?' + s : '');
	}

	function go(q, sort) {
		const hash = hashFor(q, sort);
		// The request starts now, not when the browser gets round to the
		// hashchange task (5–30 ms later); the route that follows finds this
		// list already showing.  The same query again means "search again".
		show({ kind: 'search', q, sort }, location.hash === hash);
		if (location.hash !== hash) location.hash = hash;
	}

	function submit(e) {
		e.preventDefault();
		closePanels();
		go(ui.input.value.trim(), ui.sort.value);
	}

	/* ---------- the list ---------- */

	const keyOf = (r) => (r.kind === 'folder' ? 'f:' + r.folder : `s:${r.sort}:${r.q}`);

	function show(route, force = false) {
		const key = keyOf(route);
		state.openId = null;
		if (key === state.key && !force && !state.error) {
			markOpen(null);
			return;
		}
		state.ctrl?.abort();
		Object.assign(state, { route, key, items: [], more: false, loading: false, error: null, notice: null, done: false, selected: -1, ctrl: new AbortController() });
		renderAll();
		if (route.kind === 'folder' || route.q) loadPage();
		ui.scroll.scrollTop = 0;
	}

	/* Loads the next page; a no-op while one is on its way or none is left. */
	async function loadPage() {
		const r = state.route;
		if (!r || state.loading || state.error || (state.done && !state.more) || (r.kind === 'search' && !r.q)) return;
		const first = !state.items.length;
		const ctrl = state.ctrl;
		state.loading = true;
		updateChrome();
		try {
			let items;
			if (r.kind === 'folder') {
				// The next page follows the last message shown: mail archived meanwhile moves nothing.
				const fields = { folder: r.folder, limit: PAGE };
				if (!first) fields.after = state.items[state.items.length - 1].id;
				const data = await post('/web/api/messages', fields, ctrl.signal);
				items = data.messages || [];
				state.more = !!data.more;
			} else {
				const fields = { query: r.q, sort: r.sort, limit: PAGE };
				if (!first) {
					if (r.sort === 'relevance') fields.offset = state.items.length;
					else fields.after = state.items[state.items.length - 1].id;
				}
				const data = await post('/web/api/search', fields, ctrl.signal);
				items = data.hits || [];
				state.more = !!data.more;
				// What the answer could not see (messages not in the index yet): said, never hidden.
				if (ctrl === state.ctrl) state.notice = data.notice || null;
			}
			if (ctrl !== state.ctrl) return;
			state.done = true;
			appendRows(items, state.items.length);
			state.items.push(...items);
			if (state.openId) markOpen(state.openId);
			if (first) announce(countText(), 'quiet');
		} catch (e) {
			if (ctrl !== state.ctrl || quiet(e)) return;
			state.error = e;
			state.more = false;
		} finally {
			if (ctrl === state.ctrl) {
				state.loading = false;
				updateChrome();
				// Re-arm: if the sentinel is still in view (a short page), this loads the next one.
				if (state.more) { ui.io.unobserve(ui.more); ui.io.observe(ui.more); }
			}
		}
	}

	function countText() {
		const n = state.items.length;
		if (!n) return t('search.none');
		return state.more ? tn('search.countMore', n) : tn('search.count', n);
	}

	/* Whole-list render, for a new list or a language switch. */
	function renderAll() {
		const r = state.route;
		ui.list.replaceChildren();
		appendRows(state.items, 0);
		if (state.selected >= 0) select(state.selected, false);
		ui.sortWrap.hidden = r?.kind !== 'search' || !r.q;
		if (r?.kind === 'search') {
			ui.sort.value = r.sort;
			ui.input.value = r.q;
			ui.heading.textContent = r.q ? t('search.results') : t('search.title');
			ui.sub.textContent = '';
		} else if (r?.kind === 'folder') {
			ui.input.value = '';
			const f = folders.find((x) => x.folder === r.folder);
			ui.heading.textContent = f?.name || r.folder.split('/').pop() || r.folder;
			ui.sub.textContent = r.folder;
		}
		updateChrome();
	}

	function updateChrome() {
		const r = state.route;
		const n = state.items.length;
		const msg = ui.message;
		ui.list.hidden = !n;
		ui.list.setAttribute('aria-busy', String(state.loading));
		ui.more.hidden = !(state.more || (state.loading && n));
		ui.more.classList.toggle('loading', state.loading);
		ui.moreButton.hidden = state.loading;
		ui.count.textContent = n ? countText() : '';
		msg.replaceChildren();
		if (state.notice && r?.kind === 'search' && !state.error) {
			msg.append(h('div', { class: 'notice-bar list-notice', role: 'status', testid: 'search-incomplete' },
				h('strong', { text: t('search.incomplete') }), h('span', { text: state.notice.charAt(0).toUpperCase() + state.notice.slice(1) })));
		}
		if (state.error) {
			const e = state.error;
			const own = r.kind === 'search' && { invalid: 'search.invalid', limit: 'search.tooBroad' }[e.code];
			const text = own ? t(own) : errorText(e, false);
			msg.append(h('div', { class: 'list-error', role: 'alert', testid: 'search-error' },
				h('strong', { text }), e.detail && h('p', { text: e.detail }),
				h('button', { type: 'button', class: 'btn small', text: t('common.retry'), onclick: () => show(r, true) })));
		} else if (r?.kind === 'search' && !r.q) {
			msg.append(h('div', { class: 'welcome' }, icon('search', 'big'),
				h('h2', { text: t('search.welcomeTitle') }), h('p', { text: t('search.welcome') }),
				h('p', { class: 'muted', text: t('search.welcomeKeys') })));
		} else if (!n && state.loading) {
			msg.append(h('p', { class: 'loading-line' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }),
				t(r.kind === 'folder' ? 'common.loading' : 'search.searching')));
		} else if (!n && state.done) {
			msg.append(h('div', { class: 'empty', testid: 'no-results' }, h('strong', { text: t(r.kind === 'folder' ? 'search.folderEmpty' : 'search.none') }),
				r.kind === 'search' && h('p', { class: 'muted', text: t('search.noneHint') })));
		}
	}

	function appendRows(items, start) {
		const frag = document.createDocumentFragment();
		const tabbable = start === 0 && state.selected < 0;
		items.forEach((item, i) => frag.append(row(item, start + i, tabbable && i === 0)));
		ui.list.append(frag);
	}

	function row(item, index, tabbable) {
		const from = displayName(item.from) || t('msg.unknownSender');
		const li = h('li', {
			role: 'option', class: 'row', id: 'row-' + index, testid: 'result-row',
			'aria-selected': 'false', tabindex: tabbable ? '0' : '-1',
		},
		h('div', { class: 'row-line' },
			h('span', { class: 'row-from', title: item.from || null, text: from }),
			state.route?.kind === 'search' && item.folder && h('span', { class: 'chip', title: item.folder, text: folderLabel(item) }),
			h('time', { class: 'row-date', datetime: item.date, title: fmtDate(item.date, 'medium'), text: fmtDate(item.date, 'list') })),
		h('div', { class: 'row-line' },
			h('span', { class: 'row-subject', text: item.subject || t('msg.noSubject') }),
			item.hasAttachment && h('span', { class: 'row-clip', title: t('msg.hasAttachment') }, icon('clip'), h('span', { class: 'vh', text: t('msg.hasAttachment') })),
			h('span', { class: 'row-size', text: fmtSize(item.size) })),
		snippet(item.snippet, item.snippetAttachment));
		li.dataset.id = item.id;
		li.dataset.index = index;
		return li;
	}

	function folderLabel(item) {
		const f = item.folder || '';
		return oneArchive && item.archive && f.startsWith(item.archive + '/') ? f.slice(item.archive.length + 1) : f;
	}

	// A snippet cut from an attachment says which one: the words were not in the body.
	function snippet(segs, attachment) {
		if (!Array.isArray(segs) || !segs.length) return null;
		const p = h('p', { class: 'row-snippet' });
		if (attachment) p.append(h('span', { class: 'snippet-attachment', testid: 'snippet-attachment' }, icon('clip'), h('span', { text: t('msg.inAttachment', { name: attachment }) })));
		for (const [text, hit] of segs) p.append(hit ? h('mark', { text }) : String(text));
		return p;
	}

	function rowAt(i) { return ui.list.children[i] || null; }

	function select(i, focus = true) {
		const n = state.items.length;
		if (!n) return;
		i = Math.max(0, Math.min(n - 1, i));
		const old = rowAt(state.selected);
		if (old) { old.setAttribute('aria-selected', 'false'); old.tabIndex = -1; }
		// Roving focus: only the selected row is in the tab order.
		for (const r of ui.list.querySelectorAll('[tabindex="0"]')) r.tabIndex = -1;
		state.selected = i;
		const el = rowAt(i);
		el.setAttribute('aria-selected', 'true');
		el.tabIndex = 0;
		if (focus) el.focus({ preventScroll: true });
		el.scrollIntoView({ block: 'nearest' });
		if (state.more && i >= n - 5) loadPage();
	}

	function move(delta) {
		if (!state.items.length) return;
		const i = state.selected < 0 ? (delta > 0 ? 0 : state.items.length - 1) : state.selected + delta;
		// With the reader in the list's place (narrow windows) a hidden selection helps nobody: open the next message.
		if (state.openId && !ui.listPane.offsetParent) {
			select(i, false);
			openSelected();
		} else select(i);
	}

	function openSelected() {
		const item = state.items[state.selected];
		if (item) ctx.open(item.id);
	}

	function listKey(e) {
		if (e.ctrlKey || e.metaKey || e.altKey) return;
		const map = { ArrowDown: 1, ArrowUp: -1, PageDown: 10, PageUp: -10 };
		if (e.key in map) { e.preventDefault(); move(map[e.key]); } else if (e.key === 'Home') { e.preventDefault(); select(0); } else if (e.key === 'End') { e.preventDefault(); select(state.items.length - 1); } else if (e.key === 'Enter' || e.key === ' ') {
			const li = e.target.closest('[role=option]');
			if (li) { e.preventDefault(); select(Number(li.dataset.index)); openSelected(); }
		}
	}

	function rowClick(e) {
		const li = e.target.closest('[role=option]');
		if (!li) return;
		select(Number(li.dataset.index));
		openSelected();
	}

	/* Highlights the row of the message in the reading pane. */
	function markOpen(id) {
		state.openId = id;
		ui.list.querySelector('.is-open')?.classList.remove('is-open');
		if (!id) return;
		const i = state.items.findIndex((x) => x.id === id);
		if (i < 0) return;
		rowAt(i).classList.add('is-open');
		if (i !== state.selected) select(i, false);
	}

	function focusTarget() {
		return rowAt(state.selected) || ui.list.querySelector('[tabindex="0"]') || ui.heading;
	}

	build();

	return {
		get bar() { return ui.bar; },
		get listPane() { return ui.listPane; },
		show,
		markOpen,
		move,
		openSelected,
		focusTarget,
		closePanels,
		outsideClick,
		focusInput() { ui.input.focus(); ui.input.select(); },
		setFolders(list) {
			folders = list;
			oneArchive = folders.filter((f) => f.level === 1).length === 1;
			fillFolderSelect(ui.advanced.querySelector('select'));
			if (state.route?.kind === 'folder') renderAll();
		},
		rerender() {
			build();
			if (state.route) renderAll();
			if (state.openId) markOpen(state.openId);
		},
		reset() {
			state.ctrl?.abort();
			Object.assign(state, { route: null, key: '', items: [], more: false, loading: false, error: null, selected: -1, openId: null });
			ui.io.disconnect();
		},
	};
}
