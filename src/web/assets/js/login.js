// login.js — the sign-in screens shown before the app: user name and
// password, the TOTP code for users with two-factor authentication, and the
// first-time enrolment an administrator can require.
import { h, t, field, post, get, errorText, ApiError, copyButton, groupSecret, langSelect, setCsrf } from './core.js';

/* Renders the stage into root.  done() is called once the session is
 * authenticated; the caller then loads the session and starts the app. */
export function showLogin(root, { stage = 'anonymous', userName = '', notice = '' }, done) {
	const card = h('div', { class: 'login-card' });
	const page = h('main', { class: 'login-page', id: 'main' },
		card,
		h('div', { class: 'login-foot' }, langSelect(() => showLogin(root, { stage, userName: typedUser() ?? userName, notice }, done))));
	// What was typed survives a language switch.
	const typedUser = () => root.querySelector('[data-testid="login-user"]')?.value.trim();
	root.replaceChildren(page);

	const error = h('p', { class: 'form-error', role: 'alert', testid: 'login-error', hidden: true });
	const showError = (text) => { error.textContent = text; error.hidden = !text; };

	const brand = h('div', { class: 'login-brand' }, h('img', { src: '/assets/favicon.svg', alt: '', width: 40, height: 40 }),
		h('span', { text: 'mailvault' }));

	/* Wraps a submit handler: busy state on the button, errors into the alert. */
	function submitting(form, button, busyKey, fn) {
		form.addEventListener('submit', async (ev) => {
			ev.preventDefault();
			if (button.disabled) return;
			showError('');
			const label = button.textContent;
			button.disabled = true;
			button.textContent = t(busyKey);
			try {
				await fn();
			} catch (e) {
				if (e.name === 'AbortError') return;
				// The half-way session (mfa, enroll) timed out: start over.
				if (e instanceof ApiError && e.code === 'expired') return restart();
				showError(e.message === 'local' ? e.detail : messageFor(e));
			} finally {
				button.disabled = false;
				button.textContent = label;
			}
		});
	}

	function messageFor(e) {
		if (e instanceof ApiError) {
			if (e.code === 'auth') return stage === 'anonymous' ? t('login.wrongCredentials') : t('login.wrongCode');
			if (e.code === 'denied') return t('login.noWebPrivilege');
			if (e.code === 'network') return t('error.network');
		}
		return errorText(e);
	}

	const restart = () => showLogin(root, { userName, notice: t('login.expired') }, done);

	const next = (answer) => {
		if (answer.stage === 'authenticated') return done();
		showLogin(root, { stage: answer.stage, userName }, done);
	};

	const codeProps = (testid) => ({
		name: 'code', testid, type: 'text', inputmode: 'numeric', autocomplete: 'one-time-code',
		maxlength: 9, required: true, class: 'code-input', spellcheck: 'false',
	});
	// Authenticator apps often show "123 456"; the server wants the digits.
	const codeOf = (input) => {
		const code = input.value.replace(/[\s-]/g, '');
		if (!/^\d{6}$/.test(code)) { input.focus(); throw Object.assign(new Error('local'), { detail: t('login.codeFormat') }); }
		return code;
	};

	const cancel = () => h('button', {
		type: 'button', class: 'btn link', text: t('login.otherAccount'),
		onclick: async () => {
			try { await post('/web/api/logout', {}); } catch { /* back to the form regardless */ }
			setCsrf(''); // that session's token must not ride along on the next login
			showLogin(root, {}, done);
		},
	});

	if (stage === 'mfa') {
		document.title = t('login.mfaTitle') + ' – mailvault';
		const code = field('login.code', codeProps('mfa-code'));
		const button = h('button', { type: 'submit', class: 'btn primary wide', testid: 'mfa-submit', text: t('login.verify') });
		const form = h('form', { novalidate: true }, code.wrap, error, button);
		card.append(brand, h('h1', { text: t('login.mfaTitle') }),
			userName && h('p', { class: 'muted', text: t('login.signingInAs', { user: userName }) }),
			h('p', { text: t('login.mfaIntro') }), form, h('p', { class: 'login-alt' }, cancel()));
		submitting(form, button, 'login.verifying', async () => next(await post('/web/api/login/mfa', { code: codeOf(code.input) })));
		code.input.focus();
		return;
	}

	if (stage === 'enroll') {
		document.title = t('login.enrollTitle') + ' – mailvault';
		const body = h('div', { class: 'enroll', 'aria-busy': 'true' }, h('p', { class: 'muted', text: t('common.loading') }));
		card.classList.add('wide');
		card.append(brand, h('h1', { text: t('login.enrollTitle') }),
			userName && h('p', { class: 'muted', text: t('login.signingInAs', { user: userName }) }),
			h('p', { text: t('login.enrollIntro') }), body, h('p', { class: 'login-alt' }, cancel()));
		get('/web/api/login/enroll').then((en) => {
			const code = field('login.code', codeProps('enroll-code'));
			const button = h('button', { type: 'submit', class: 'btn primary wide', testid: 'enroll-submit', text: t('login.enrollConfirm') });
			const form = h('form', { novalidate: true }, code.wrap, error, button);
			body.removeAttribute('aria-busy');
			body.replaceChildren(...totpSetup(en, 'enroll'), form);
			submitting(form, button, 'login.verifying', async () => next(await post('/web/api/login/enroll', { code: codeOf(code.input) })));
		}).catch((e) => {
			body.removeAttribute('aria-busy');
			if (e instanceof ApiError && e.code === 'expired') return restart();
			body.replaceChildren(error);
			showError(messageFor(e));
		});
		return;
	}

	document.title = t('login.title') + ' – mailvault';
	const user = field('login.user', { name: 'userName', testid: 'login-user', autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false', required: true, value: userName });
	const pass = field('login.password', { name: 'password', type: 'password', testid: 'login-password', autocomplete: 'current-password', required: true });
	const button = h('button', { type: 'submit', class: 'btn primary wide', testid: 'login-submit', text: t('login.submit') });
	const form = h('form', { novalidate: true }, user.wrap, pass.wrap, error, button);
	card.append(brand, h('h1', { text: t('login.heading') }),
		notice && h('p', { class: 'notice', role: 'status', text: notice }), form);
	submitting(form, button, 'login.busy', async () => {
		userName = user.input.value.trim();
		if (!userName || !pass.input.value) {
			(userName ? pass : user).input.focus();
			throw Object.assign(new Error('local'), { detail: t('login.missing') });
		}
		const answer = await post('/web/api/login', { userName, password: pass.input.value });
		pass.input.value = '';
		next(answer);
	});
	(userName ? pass : user).input.focus();
}

/* The QR code, the secret in groups and the numbered steps; shared by the
 * sign-in enrolment and the settings page (prefix selects the test hooks). */
export function totpSetup(data, prefix) {
	const secret = h('code', { class: 'secret', testid: prefix + '-secret', text: groupSecret(data.secret) });
	secret.dataset.secret = data.secret; // ungrouped, for tools that read the page
	return [
		h('div', { class: 'totp' },
			h('img', { class: 'qr', src: data.qr, width: 180, height: 180, alt: t('totp.qrAlt'), testid: prefix + '-qr' }),
			h('ol', { class: 'steps' },
				h('li', { text: t('totp.step1') }),
				h('li', {}, t('totp.step2'), h('div', { class: 'secret-row' }, secret, copyButton(() => data.secret, secret))),
				h('li', { text: t('totp.step3') }))),
	];
}

