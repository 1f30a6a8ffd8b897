// settings.js — the user's own settings at #/settings: password change,
// two-factor authentication (set up, confirm, remove) and app passwords for
// mail clients and scripts.
import { h, t, icon, field, post, quiet, errorText, announce, fmtDate, copyButton } from './core.js';
import { totpSetup } from './login.js';

export function showSettings(container, session, { onUser }) {
	const user = session.user || {};
	container.replaceChildren(h('div', { class: 'settings-inner' },
		h('h1', { class: 'settings-title', tabindex: '-1', text: t('settings.title') }),
		h('p', { class: 'muted', text: t('settings.signedInAs', { user: user.fullName ? `${user.fullName} (${user.userName})` : user.userName }) }),
		user.canChangePassword !== false && passwordSection(),
		mfaSection(user, onUser),
		appPasswordSection()));
	container.querySelector('h1').focus();
}

/* A status line inside a section; kind "error" or "ok" colours it. */
function statusLine(testid) {
	const p = h('p', { class: 'form-status', role: 'status', 'aria-live': 'polite', testid });
	p.set = (text, kind = 'ok') => { p.textContent = text; p.className = 'form-status ' + (text ? kind : ''); };
	return p;
}

function section(icn, titleKey, introKey, ...kids) {
	const id = 'sec-' + titleKey.replace(/\W/g, '-');
	return h('section', { class: 'card', 'aria-labelledby': id },
		h('h2', { id }, icon(icn), t(titleKey)),
		introKey && h('p', { class: 'muted', text: t(introKey) }), kids);
}

/* Runs fn with the button disabled; returns false when the request failed
 * (the error already reported on status). */
async function busy(button, status, fn, messages = {}) {
	button.disabled = true;
	try {
		await fn();
		return true;
	} catch (e) {
		if (!quiet(e)) status.set(messages[e.code] ? t(messages[e.code]) : e.code === 'invalid' && e.detail ? e.detail : errorText(e), 'error');
		return false;
	} finally {
		button.disabled = false;
	}
}

function passwordSection() {
	const cur = field('settings.pwCurrent', { type: 'password', autocomplete: 'current-password', testid: 'settings-password-current', required: true });
	const neu = field('settings.pwNew', { type: 'password', autocomplete: 'new-password', testid: 'settings-password-new', required: true });
	const rep = field('settings.pwRepeat', { type: 'password', autocomplete: 'new-password', testid: 'settings-password-repeat', required: true });
	const status = statusLine('settings-password-status');
	const button = h('button', { type: 'submit', class: 'btn primary', testid: 'settings-password-submit', text: t('settings.pwSubmit') });
	const form = h('form', { novalidate: true, class: 'narrow-form', onsubmit: async (e) => {
		e.preventDefault();
		status.set('');
		for (const x of [cur, neu, rep]) x.input.removeAttribute('aria-invalid');
		const empty = [cur, neu, rep].find((x) => !x.input.value);
		if (empty) { empty.input.setAttribute('aria-invalid', 'true'); empty.input.focus(); status.set(t('settings.pwMissing'), 'error'); return; }
		if (neu.input.value !== rep.input.value) {
			rep.input.setAttribute('aria-invalid', 'true');
			rep.input.focus();
			status.set(t('settings.pwMismatch'), 'error');
			return;
		}
		const ok = await busy(button, status, () => post('/web/api/password', { currentPassword: cur.input.value, newPassword: neu.input.value }),
			{ auth: 'settings.pwWrongCurrent', denied: 'settings.pwDenied' });
		if (ok) {
			for (const x of [cur, neu, rep]) x.input.value = '';
			status.set(t('settings.pwChanged'));
		} else if (status.textContent === t('settings.pwWrongCurrent')) {
			cur.input.setAttribute('aria-invalid', 'true');
			cur.input.focus();
		}
	} }, cur.wrap, neu.wrap, rep.wrap, h('div', { class: 'form-actions' }, button), status);
	return section('lock', 'settings.pwTitle', null, form);
}

function mfaSection(user, onUser) {
	const body = h('div');
	const status = statusLine('mfa-message');
	const sec = section('shield', 'settings.mfaTitle', 'settings.mfaIntro', body, status);

	function render() {
		const state = user.mfa || 'none';
		const badge = h('p', { class: 'mfa-state' }, t('settings.mfaStatus') + ' ',
			h('strong', { class: 'badge ' + (state === 'active' ? 'on' : 'off'), testid: 'mfa-status', 'data-mfa': state, text: t('settings.mfa.' + state) }));
		if (state === 'active') {
			const pw = field('settings.mfaDisablePassword', { type: 'password', autocomplete: 'current-password', testid: 'mfa-disable-password' });
			const button = h('button', { type: 'submit', class: 'btn danger', testid: 'mfa-disable', text: t('settings.mfaDisable') });
			const form = h('form', { novalidate: true, class: 'narrow-form', onsubmit: async (e) => {
				e.preventDefault();
				status.set('');
				if (!pw.input.value) { pw.input.focus(); status.set(t('settings.pwMissing'), 'error'); return; }
				let answer;
				const ok = await busy(button, status, async () => { answer = await post('/web/api/mfa/disable', { password: pw.input.value }); },
					{ auth: 'settings.pwWrongCurrent', denied: 'settings.mfaRequired' });
				if (!ok) return;
				user.mfa = answer.mfa || 'none';
				onUser({ mfa: user.mfa });
				render();
				status.set(t('settings.mfaDisabled'));
			} }, h('p', { text: t('settings.mfaDisableIntro') }), pw.wrap, h('div', { class: 'form-actions' }, button));
			body.replaceChildren(badge, form);
		} else {
			const button = h('button', { type: 'button', class: 'btn primary', testid: 'mfa-setup', text: t(state === 'pending' ? 'settings.mfaRestart' : 'settings.mfaSetup') });
			button.addEventListener('click', async () => {
				status.set('');
				let data;
				if (await busy(button, status, async () => { data = await post('/web/api/mfa/setup', {}); })) setup(data);
			});
			body.replaceChildren(badge, h('div', { class: 'form-actions' }, button));
		}
	}

	function setup(data) {
		user.mfa = 'pending';
		onUser({ mfa: 'pending' });
		const code = field('login.code', { testid: 'mfa-code', inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: 9, class: 'code-input', spellcheck: 'false' });
		const button = h('button', { type: 'submit', class: 'btn primary', testid: 'mfa-confirm', text: t('settings.mfaConfirm') });
		const form = h('form', { novalidate: true, class: 'narrow-form', onsubmit: async (e) => {
			e.preventDefault();
			status.set('');
			const c = code.input.value.replace(/[\s-]/g, '');
			if (!/^\d{6}$/.test(c)) { code.input.focus(); status.set(t('login.codeFormat'), 'error'); return; }
			let answer;
			const ok = await busy(button, status, async () => { answer = await post('/web/api/mfa/confirm', { code: c }); }, { auth: 'login.wrongCode' });
			if (!ok) { code.input.select(); return; }
			user.mfa = answer.mfa || 'active';
			onUser({ mfa: user.mfa });
			render();
			status.set(t('settings.mfaEnabled'));
			announce(t('settings.mfaEnabled'));
		} }, code.wrap, h('div', { class: 'form-actions' }, button,
			h('button', { type: 'button', class: 'btn', text: t('common.cancel'), onclick: () => { render(); sec.querySelector('[data-testid="mfa-setup"]')?.focus(); } })));
		body.replaceChildren(h('p', { class: 'mfa-state' }, t('settings.mfaStatus') + ' ',
			h('strong', { class: 'badge off', testid: 'mfa-status', 'data-mfa': 'pending', text: t('settings.mfa.pending') })),
		...totpSetup(data, 'mfa'), form);
		code.input.focus();
	}

	render();
	return sec;
}

function appPasswordSection() {
	const list = h('ul', { class: 'apppw-list', testid: 'apppw-list', 'aria-busy': 'true' });
	const listStatus = statusLine('apppw-status');
	const shown = h('div', { class: 'new-secret-slot' });
	const desc = field('settings.appDesc', { testid: 'apppw-description', maxlength: 200, autocomplete: 'off' }, 'settings.appDescHint');
	const create = h('button', { type: 'submit', class: 'btn primary', testid: 'apppw-create', text: t('settings.appCreate') });
	const form = h('form', { novalidate: true, class: 'narrow-form', onsubmit: async (e) => {
		e.preventDefault();
		listStatus.set('');
		const d = desc.input.value.trim();
		if (!d) { desc.input.focus(); listStatus.set(t('settings.appDescMissing'), 'error'); return; }
		let made;
		if (!await busy(create, listStatus, async () => { made = await post('/web/api/app-passwords/create', { description: d }); })) return;
		desc.input.value = '';
		showNew(made);
		load();
	} }, desc.wrap, create);

	function showNew(made) {
		const pw = h('code', { class: 'secret big', testid: 'apppw-new-password', text: made.password });
		const box = h('div', { class: 'new-secret', role: 'region', 'aria-labelledby': 'new-pw-title', tabindex: '-1' },
			h('h3', { id: 'new-pw-title', text: t('settings.appNewTitle', { name: made.description }) }),
			h('div', { class: 'secret-row' }, pw, copyButton(() => made.password, pw, 'apppw-copy')),
			h('p', { text: t('settings.appNewOnce') }),
			h('p', { class: 'muted', text: t('settings.appNewUse') }),
			h('button', { type: 'button', class: 'btn small', text: t('settings.appNewDone'), onclick: () => { box.remove(); desc.input.focus(); } }));
		shown.replaceChildren(box);
		box.focus();
		announce(t('settings.appCreated'));
	}

	async function load() {
		list.setAttribute('aria-busy', 'true');
		try {
			const data = await post('/web/api/app-passwords', {});
			renderList(data.appPasswords || []);
		} catch (e) {
			if (!quiet(e)) listStatus.set(errorText(e), 'error');
		} finally {
			list.setAttribute('aria-busy', 'false');
		}
	}

	function renderList(items) {
		if (!items.length) {
			list.replaceChildren(h('li', { class: 'muted empty-row', text: t('settings.appNone') }));
			return;
		}
		list.replaceChildren(...items.map((it) => {
			const li = h('li', { class: 'apppw-row', testid: 'apppw-row' });
			li.dataset.id = it.id;
			const info = h('div', { class: 'apppw-info' }, h('strong', { text: it.description || t('settings.appUnnamed') }),
				h('span', { class: 'muted', text: t('settings.appCreatedAt', { date: fmtDate(it.createdAt, 'medium') }) }));
			const revoke = h('button', { type: 'button', class: 'btn small', testid: 'apppw-revoke', 'aria-label': t('settings.appRevokeLabel', { name: it.description }), text: t('settings.appRevoke') });
			const actions = h('div', { class: 'apppw-actions' }, revoke);
			// An inline confirmation: the page never opens browser dialogs.
			revoke.addEventListener('click', () => {
				const yes = h('button', { type: 'button', class: 'btn danger small', testid: 'apppw-revoke-confirm', text: t('settings.appRevokeYes') });
				const no = h('button', { type: 'button', class: 'btn small', testid: 'apppw-revoke-cancel', text: t('common.cancel') });
				const ask = h('div', { class: 'confirm', role: 'group', 'aria-label': t('settings.appRevokeQ') }, h('span', { text: t('settings.appRevokeQ') }), yes, no);
				actions.replaceChildren(ask);
				no.addEventListener('click', () => { actions.replaceChildren(revoke); revoke.focus(); });
				yes.addEventListener('click', async () => {
					const ok = await busy(yes, listStatus, () => post('/web/api/app-passwords/delete', { id: it.id }));
					if (!ok) return;
					li.remove();
					listStatus.set(t('settings.appRevoked', { name: it.description }));
					if (!list.children.length) renderList([]);
					desc.input.focus();
				});
				no.focus();
			});
			li.append(info, actions);
			return li;
		}));
	}

	load();
	return section('key', 'settings.appTitle', 'settings.appIntro',
		shown, h('h3', { class: 'sub', text: t('settings.appListTitle') }), list, listStatus,
		h('h3', { class: 'sub', text: t('settings.appNewHeading') }), form);
}

