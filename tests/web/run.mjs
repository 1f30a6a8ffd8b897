// run.mjs — drives Debian's Chromium through Web Access for
// tests/system/test_web_browser.py (npm playwright-core; no browser is ever
// downloaded).
//
// Protocol (JSON lines): stdout {"ready":true} once Chromium runs; then each
// stdin line {"scenario":{...}} runs one scenario (a fresh browser context)
// and ends with stdout {"done":RESULT}.  While it runs a scenario may ask
// Python something (a TOTP code, an Administration API check) with
// {"ask":{...}}; the next stdin line is {"answer":...} or {"error":"..."}.
// {"quit":true} or the end of stdin closes Chromium.  Anything else goes to
// stderr.
//
// RESULT = {failures:[text], steps:[name], screenshots:[file], watch:{...},
// data:{...}}: a failed step stops its scenario (later steps depend on it)
// and is named with what was expected and what the page showed; Python
// asserts on failures, on the watchers' records and on the data.
import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';
import { createHash } from 'node:crypto';
import { readFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.MAILVAULT_CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
	'--disable-sync', '--no-first-run', '--disable-quic'];
const TIMEOUT = Number(process.env.MAILVAULT_WEB_TIMEOUT_MS || 30000);
const AXE = path.join(HERE, 'node_modules', 'axe-core', 'axe.min.js');

const log = (...a) => process.stderr.write(a.map(String).join(' ') + '\n');
const send = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const tid = (id) => `[data-testid="${id}"]`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');

/* ---------- stdin ---------- */

const inbox = [];
let waiting = null;
let stdinClosed = false;
createInterface({ input: process.stdin }).on('line', (line) => {
	if (!line.trim()) return;
	let msg;
	try { msg = JSON.parse(line); } catch (e) { log('bad input line', line); return; }
	if (waiting) { const w = waiting; waiting = null; w(msg); } else inbox.push(msg);
}).on('close', () => { stdinClosed = true; if (waiting) { const w = waiting; waiting = null; w(null); } });

function nextMessage() {
	if (inbox.length) return Promise.resolve(inbox.shift());
	if (stdinClosed) return Promise.resolve(null);
	return new Promise((r) => { waiting = r; });
}

async function ask(question) {
	send({ ask: question });
	const msg = await nextMessage();
	if (!msg) throw new Error('stdin closed while waiting for an answer');
	if (msg.error) throw new Error('Python could not answer ' + JSON.stringify(question) + ': ' + msg.error);
	return msg.answer;
}

/* ---------- the watchers ---------- */

// Everything that must never happen while the app runs, recorded per
// scenario (a browser context): dialogs, navigations of a page's main frame
// away from the app, requests to any host but the mailvault server (each
// aborted), CSP violations of the app's own documents, uncaught errors,
// popups.  The frame showing a message may violate its own CSP all it
// likes: that is the CSP working (recorded apart, for information).
class Watch {
	constructor(base) {
		this.base = base;
		this.appUrls = new Set([base + '/']);
		this.allowed = new Set();     // URLs a scenario itself opens in a page of its own
		this.loaded = false;
		this.phase = '';
		this.dialogs = [];
		this.navigations = [];
		this.foreign = [];
		this.appCsp = [];
		this.frameCsp = [];
		this.consoleErrors = [];
		this.pageErrors = [];
		this.popups = [];
	}

	isApp(url) { return this.appUrls.has(String(url).split('#')[0]); }

	async attach(context) {
		await context.exposeBinding('__mvCspViolation', ({ frame }, v) => {
			const rec = { ...v, phase: this.phase, frame: frame ? frame.url() : '' };
			(this.isApp(v.documentURI) ? this.appCsp : this.frameCsp).push(rec);
		});
		// Runs in every document before its own scripts (injected by the
		// DevTools protocol, so the page's CSP does not stop it; documents
		// without script, like the sandboxed message frame, do not run it).
		await context.addInitScript(() => {
			document.addEventListener('securitypolicyviolation', (e) => {
				try {
					window.__mvCspViolation({
						documentURI: e.documentURI, directive: e.violatedDirective, blockedURI: e.blockedURI,
						sample: e.sample, sourceFile: e.sourceFile, line: e.lineNumber,
					});
				} catch { /* the binding is gone while the page unloads */ }
			}, true);
		});
		await context.route('**/*', (route) => {
			const req = route.request();
			let origin = '';
			try { origin = new URL(req.url()).origin; } catch { /* data: and such */ }
			if (origin === this.base || /^(data|blob):/.test(req.url())) return route.continue();
			let frame = '';
			try { frame = req.frame().url(); } catch { /* a worker's */ }
			this.foreign.push({ url: req.url(), type: req.resourceType(), frame, phase: this.phase });
			return route.abort('blockedbyclient');
		});
		context.on('page', (p) => this.attachPage(p));
	}

	attachPage(page) {
		page.on('dialog', (d) => {
			this.dialogs.push({ type: d.type(), message: d.message(), url: page.url(), phase: this.phase });
			d.dismiss().catch(() => {});
		});
		page.on('framenavigated', (f) => {
			if (f === page.mainFrame() && this.loaded && !this.isApp(f.url()) && !this.allowed.has(f.url()))
				this.navigations.push({ url: f.url(), phase: this.phase });
		});
		page.on('console', (m) => {
			if (m.type() !== 'error') return;
			const text = m.text();
			const loc = m.location() || {};
			this.consoleErrors.push({ text: text.slice(0, 500), url: loc.url || '', phase: this.phase });
		});
		page.on('pageerror', (e) => this.pageErrors.push({ error: String(e && e.stack || e).slice(0, 1000), phase: this.phase }));
		page.on('popup', (p) => this.popups.push({ url: p.url(), phase: this.phase }));
	}

	record() {
		const { dialogs, navigations, foreign, appCsp, frameCsp, consoleErrors, pageErrors, popups } = this;
		return { dialogs, navigations, foreign, appCsp, frameCsp, consoleErrors, pageErrors, popups };
	}
}

/* ---------- scenarios ---------- */

let browser;
let shotNumber = 0;

class StepFailed extends Error {}

// One scenario: a fresh context, the watchers on it, a step runner that
// screenshots each step (NN-scenario-step.png) and stops at the first failure.
async function withContext(sc, fn, contextOptions = {}) {
	const res = { failures: [], steps: [], screenshots: [], data: {}, watch: null };
	const watch = new Watch(sc.base);
	const context = await browser.newContext({
		ignoreHTTPSErrors: true, acceptDownloads: true, viewport: { width: 1280, height: 860 },
		locale: 'en-US', timezoneId: 'UTC', ...contextOptions,
	});
	context.setDefaultTimeout(TIMEOUT);
	await watch.attach(context);
	const page = await context.newPage();
	mkdirSync(sc.artifacts, { recursive: true });

	const shot = async (name, p = page) => {
		const file = `${String(++shotNumber).padStart(2, '0')}-${sc.name}-${name}.png`;
		await p.screenshot({ path: path.join(sc.artifacts, file), fullPage: false, timeout: 15000 });
		res.screenshots.push(file);
		return file;
	};
	const step = async (name, body) => {
		watch.phase = name;
		try {
			const value = await body();
			res.steps.push(name);
			await shot(name).catch((e) => log('screenshot', name, e.message));
			return value;
		} catch (e) {
			if (e instanceof StepFailed) throw e;
			res.failures.push(`step "${name}": ${e.message.split('\n').slice(0, 6).join(' | ')}`);
			await shot(name + '-FAILED').catch(() => {});
			throw new StepFailed(name);
		}
	};
	try {
		await fn({ page, context, watch, step, shot, res });
	} catch (e) {
		if (!(e instanceof StepFailed)) res.failures.push(`scenario ${sc.name}: ${e.stack || e}`);
	} finally {
		await sleep(300); // late events (a dialog, a navigation) still count
		res.watch = watch.record();
		await context.close().catch(() => {});
	}
	return res;
}

/* A check inside a step: throws with what was expected and what was seen. */
function expect(cond, what, seen) {
	if (!cond) throw new Error(`expected ${what}; got ${typeof seen === 'string' ? seen : JSON.stringify(seen)}`);
}

async function visible(page, id, what, timeout = TIMEOUT) {
	try {
		await page.locator(tid(id)).first().waitFor({ state: 'visible', timeout });
	} catch {
		const body = await page.locator('body').innerText().catch(() => '?');
		throw new Error(`expected ${what || 'data-testid=' + id} to be visible within ${timeout} ms; ` +
			`the page (${page.url()}) shows: ${body.replace(/\s+/g, ' ').slice(0, 400)}`);
	}
	return page.locator(tid(id)).first();
}

async function text(page, id) {
	return (await page.locator(tid(id)).first().textContent() || '').trim();
}

async function openApp(page, watch, sc) {
	const resp = await page.goto(sc.base + '/');
	expect(resp && resp.status() === 200, 'GET / to answer 200', resp && resp.status());
	await visible(page, 'login-user', 'the login form');
	watch.loaded = true;
}

async function login(page, user, password, expectApp = true) {
	await visible(page, 'login-user', 'the login form');
	await page.fill(tid('login-user'), user);
	await page.fill(tid('login-password'), password);
	await page.click(tid('login-submit'));
	if (expectApp) await visible(page, 'folder-tree', `the app after ${user}'s login (folder-tree)`);
}

async function menu(page, id) {
	await page.click(tid('user-menu'));
	await visible(page, id, `${id} in the user menu`);
	return page.locator(tid(id)).first();
}

async function logout(page) {
	await (await menu(page, 'logout')).click();
	await visible(page, 'login-user', 'the login form after logout');
}

async function openSettings(page) {
	await (await menu(page, 'settings-link')).click();
	await visible(page, 'settings-password-current', 'the settings page');
}

async function rowIds(page) {
	return page.locator(tid('result-row')).evaluateAll((els) => els.map((e) => e.dataset.id));
}

/* Logs in from the login page, as every scenario that searches begins. */
async function loginSteps(page, watch, step, sc) {
	await step('login-page', () => openApp(page, watch, sc));
	await step('logged-in', () => login(page, sc.user, sc.password));
}

/* Types a search and waits for its first page: the result rows' ids. */
async function searchRows(page, word) {
	await page.fill(tid('search-input'), word);
	await page.press(tid('search-input'), 'Enter');
	return waitRows(page, `result rows for "${word}"`);
}

async function waitRows(page, what) {
	await visible(page, 'result-row', what);
	// the first page is complete when the list is no longer busy
	await page.waitForFunction(() => document.querySelector('[data-testid="results"]')?.getAttribute('aria-busy') === 'false');
	return rowIds(page);
}

async function download(page, trigger) {
	const [dl] = await Promise.all([page.waitForEvent('download'), trigger()]);
	const file = await dl.path();
	const failure = await dl.failure();
	return { name: dl.suggestedFilename(), url: dl.url(), sha256: file ? sha256(readFileSync(file)) : null, failure };
}

/* Frame-level proof that nothing ran and nothing dangerous is in the DOM,
 * read from the app's own main world (the frames are same-origin). */
async function frameReport(page) {
	const report = await page.evaluate(() => {
		const out = { top: window.__pwned ?? null, frames: [] };
		for (const f of document.querySelectorAll('iframe')) {
			const r = { src: f.getAttribute('src'), sandbox: f.getAttribute('sandbox') };
			try {
				const d = f.contentDocument;
				r.pwned = f.contentWindow.__pwned ?? null;
				if (d) {
					const all = [...d.querySelectorAll('*')];
					r.scripts = d.querySelectorAll('script').length;
					r.handlers = all.filter((e) => [...e.attributes].some((a) => /^on/i.test(a.name))).map((e) => e.outerHTML.slice(0, 120));
					r.jsUrls = all.filter((e) => [...e.attributes].some((a) => /^\s*(javascript|vbscript|data:text\/html)/i.test(a.value)))
						.map((e) => e.outerHTML.slice(0, 120));
					r.active = [...d.querySelectorAll('iframe,object,embed,form,base,meta[http-equiv],link[rel=import],applet')]
						.map((e) => e.outerHTML.slice(0, 120));
					r.url = d.location.href;
				}
			} catch (e) { r.error = String(e); }
			out.frames.push(r);
		}
		return out;
	});
	// and each frame's own view of the canary, where it can be asked
	report.playwrightFrames = [];
	for (const f of page.frames()) {
		const v = await Promise.race([f.evaluate(() => window.__pwned ?? null).catch((e) => 'n/a: ' + e.message.slice(0, 80)),
			sleep(2000).then(() => 'n/a: no answer')]);
		report.playwrightFrames.push({ url: f.url(), pwned: v });
	}
	return report;
}

async function waitFrameLoaded(page, urlPart) {
	const handle = await page.locator(tid('message-frame')).first().elementHandle();
	const frame = await handle.contentFrame();
	if (urlPart) await page.waitForFunction((p) => (document.querySelector('[data-testid="message-frame"]')?.src || '').includes(p), urlPart);
	await frame.waitForLoadState('load');
	await page.waitForFunction(() => {
		const f = document.querySelector('[data-testid="message-frame"]');
		return f && f.contentDocument && f.contentDocument.readyState === 'complete' && f.contentDocument.location.href !== 'about:blank';
	});
	return frame;
}

const scenarios = {
	/* The detectors must fire on a page that really does what they watch for:
	 * a page on the server's origin (fulfilled by the test, not the app) opens a
	 * dialog, loads from a foreign host, navigates, and breaks its own CSP. */
	async controls(sc) {
		return withContext(sc, async ({ page, watch, step, res }) => {
			const a = sc.base + '/__control/a', b = sc.base + '/__control/b', c = sc.base + '/__control/c';
			watch.appUrls = new Set([a, c]);
			await page.route(sc.base + '/__control/**', (route) => {
				const url = route.request().url();
				if (url.endsWith('/c'))
					return route.fulfill({ status: 200, contentType: 'text/html', headers: { 'Content-Security-Policy': "default-src 'none'; img-src 'self'" },
						body: '<!doctype html><title>csp</title><p>csp control</p><script>window.ran = 1</script><img src="http://evil.example/csp.png">' });
				if (url.endsWith('/b'))
					return route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>b</title><p>navigated</p>' });
				return route.fulfill({ status: 200, contentType: 'text/html',
					body: '<!doctype html><title>control</title><p>control</p><img src="http://evil.example/control.png"><script>alert("control-dialog")</script>' });
			});
			await step('dialog-and-foreign-request', async () => {
				await page.goto(a);
				watch.loaded = true;
				for (let i = 0; i < 50 && !(watch.dialogs.length && watch.foreign.length); i++) await sleep(100);
			});
			await step('navigation', async () => {
				await page.evaluate((u) => { location.href = u; }, b);
				await page.waitForURL(b);
			});
			await step('csp-violation', async () => {
				await page.goto(c);
				for (let i = 0; i < 50 && !watch.appCsp.length; i++) await sleep(100);
			});
			await step('frame-report', async () => {
				// frameReport, the canary and the frame DOM checks, on a page that has it all
				const p3 = await page.context().newPage();
				watch.allowed.add('about:blank');
				await p3.setContent('<script>window.__pwned = "control"</script><iframe sandbox="allow-same-origin" ' +
					'srcdoc="<p onclick=x>on</p><script>1</script><a href=javascript:void(0)>js</a><form></form>"></iframe>');
				await p3.waitForFunction(() => document.querySelector('iframe').contentDocument?.querySelector('form'));
				res.data.frameReport = await frameReport(p3);
				await p3.close();
			});
			res.data.urls = { a, b, c };
		});
	},

	/* A search whose answer is partial (the index lacks messages): the page
	 * says so above the hits, in the user's language and the server's words. */
	async incomplete(sc) {
		return withContext(sc, async ({ page, watch, step, res }) => {
			const d = res.data;
			await loginSteps(page, watch, step, sc);
			await step('search', async () => {
				d.searchIds = await searchRows(page, sc.word);
				const notice = await visible(page, 'search-incomplete', 'the note that the answer is incomplete');
				d.notice = ((await notice.textContent()) || '').trim();
				d.noticeRole = await notice.getAttribute('role');
				// above the hits, not among them
				d.noticeFirst = await page.evaluate(() => {
					const n = document.querySelector('[data-testid="search-incomplete"]');
					const l = document.querySelector('[data-testid="results"]');
					return !!(n.compareDocumentPosition(l) & Node.DOCUMENT_POSITION_FOLLOWING);
				});
			});
		});
	},

	/* Scenario 1: the user's day. */
	async day(sc) {
		return withContext(sc, async ({ page, watch, step, res }) => {
			const d = res.data;
			await loginSteps(page, watch, step, sc);
			await step('search', async () => {
				d.searchIds = await searchRows(page, sc.word);
				d.searchHash = await page.evaluate(() => location.hash);
				d.marks = await page.locator(`${tid('result-row')} mark`).allTextContents();
			});
			await step('folder', async () => {
				const item = page.locator(`${tid('folder-tree')} ${tid('folder-item')}[data-folder="${sc.folder}"]`);
				await item.waitFor({ state: 'visible' });
				d.folders = await page.locator(tid('folder-item')).evaluateAll((els) => els.map((e) => e.dataset.folder));
				await item.click();
				await page.waitForFunction((f) => location.hash === '#/folder/' + encodeURIComponent(f), sc.folder);
				await page.waitForFunction(() => !document.querySelector('[data-testid="results"] .row-snippet'));
				d.folderIds = await waitRows(page, `the messages of ${sc.folder}`);
			});
			await step('message', async () => {
				await page.locator(tid('folder-tree')).focus().catch(() => {});
				await page.evaluate(() => document.activeElement?.blur());
				await page.keyboard.press('j');
				await page.keyboard.press('Enter');
				await visible(page, 'message-view', 'the message after j, Enter');
				d.openedHash = await page.evaluate(() => location.hash);
				d.subject = await text(page, 'message-subject');
				d.from = await text(page, 'message-from');
				if (await page.locator(tid('message-frame')).count()) await waitFrameLoaded(page);
			});
			await step('download-eml', async () => {
				d.download = await download(page, () => page.click(tid('download-eml')));
			});
			await step('german', async () => {
				d.langBefore = { folders: await page.locator('#folders-heading').textContent(), search: await text(page, 'search-submit') };
				const sel = await menu(page, 'lang-select');
				await sel.selectOption('de');
				await page.waitForFunction(() => document.documentElement.lang === 'de');
				await visible(page, 'folder-tree', 'the app in German');
				d.langAfter = { folders: await page.locator('#folders-heading').textContent(), search: await text(page, 'search-submit'),
					htmlLang: await page.evaluate(() => document.documentElement.lang) };
			});
			await step('english-again', async () => {
				const sel = await menu(page, 'lang-select');
				await sel.selectOption('en');
				await page.waitForFunction(() => document.documentElement.lang === 'en');
				await page.keyboard.press('Escape');
				d.langBack = { folders: await page.locator('#folders-heading').textContent(), search: await text(page, 'search-submit') };
			});
			await step('settings-password', async () => {
				await openSettings(page);
				await page.fill(tid('settings-password-current'), sc.password);
				await page.fill(tid('settings-password-new'), sc.newPassword);
				await page.fill(tid('settings-password-repeat'), sc.newPassword);
				await page.click(tid('settings-password-submit'));
				await page.waitForFunction(() => document.querySelector('[data-testid="settings-password-status"]')?.textContent.trim());
				d.passwordStatus = { text: await text(page, 'settings-password-status'),
					cls: await page.locator(tid('settings-password-status')).getAttribute('class') };
				expect(/\bok\b/.test(d.passwordStatus.cls), 'the password change to succeed (status "ok")', d.passwordStatus);
			});
			await step('logged-out', () => logout(page));
			await step('login-new-password', () => login(page, sc.user, sc.newPassword));
			await step('mfa-setup', async () => {
				await openSettings(page);
				await (await visible(page, 'mfa-setup', 'the MFA set-up button')).click();
				await visible(page, 'mfa-secret', 'the MFA secret');
				await visible(page, 'mfa-qr', 'the MFA QR code');
				d.qrLoaded = await page.locator(tid('mfa-qr')).evaluate((img) => img.complete && img.naturalWidth > 0);
				const secret = await page.locator(tid('mfa-secret')).getAttribute('data-secret') || (await text(page, 'mfa-secret')).replace(/\s+/g, '');
				d.secret = secret;
				const code = await ask({ kind: 'totp', secret });
				await page.fill(tid('mfa-code'), code);
			});
			await step('mfa-confirmed', async () => {
				await page.click(tid('mfa-confirm'));
				await visible(page, 'mfa-disable', 'MFA active (the remove form)');
				d.mfaStatus = await text(page, 'mfa-status');
			});
			await step('logged-out-again', () => logout(page));
			await step('mfa-code-asked', async () => {
				await login(page, sc.user, sc.newPassword, false);
				await visible(page, 'mfa-code', 'the TOTP code field after the password');
			});
			await step('logged-in-with-totp', async () => {
				await page.fill(tid('mfa-code'), await ask({ kind: 'totp', secret: d.secret }));
				await page.click(tid('mfa-submit'));
				await visible(page, 'folder-tree', 'the app after the TOTP code');
				d.finalSession = await page.evaluate(async () => (await fetch('/web/api/session')).json());
			});
		});
	},

	/* Scenario 2: an app password made in settings. */
	async apppw(sc) {
		return withContext(sc, async ({ page, watch, step, res }) => {
			const d = res.data;
			await step('login', async () => { await openApp(page, watch, sc); await login(page, sc.user, sc.password); });
			await step('created', async () => {
				await openSettings(page);
				await page.fill(tid('apppw-description'), sc.description);
				await page.click(tid('apppw-create'));
				await visible(page, 'apppw-new-password', 'the new app password');
				d.password = await text(page, 'apppw-new-password');
				await page.locator(`${tid('apppw-list')} ${tid('apppw-row')}`).first().waitFor();
				d.rows = await page.locator(tid('apppw-row')).allTextContents();
				d.apiWhileActive = await ask({ kind: 'api', user: sc.user, password: d.password });
			});
			await step('web-login-refused', async () => {
				await logout(page);
				await login(page, sc.user, d.password, false);
				await visible(page, 'login-error', 'the login error for an app password');
				d.loginError = await text(page, 'login-error');
				d.stageAfter = await page.evaluate(async () => (await fetch('/web/api/session')).json());
			});
			await step('revoked', async () => {
				await page.fill(tid('login-password'), sc.password);
				await page.click(tid('login-submit'));
				await visible(page, 'folder-tree', 'the app');
				await openSettings(page);
				const row = page.locator(tid('apppw-row')).filter({ hasText: sc.description }).first();
				await row.locator(tid('apppw-revoke')).click();
				await row.locator(tid('apppw-revoke-confirm')).click();
				await page.waitForFunction((desc) => ![...document.querySelectorAll('[data-testid="apppw-row"]')].some((r) => r.textContent.includes(desc)), sc.description);
				d.apiAfterRevoke = await ask({ kind: 'api', user: sc.user, password: d.password });
			});
		});
	},

	/* Scenario 3: hostile mail. */
	async hostile(sc) {
		return withContext(sc, async ({ page, watch, step, res, context }) => {
			const d = res.data;
			d.messages = {};
			await step('login', async () => { await openApp(page, watch, sc); await login(page, sc.user, sc.password); });
			await step('folder', async () => {
				await page.click(`${tid('folder-item')}[data-folder="${sc.folder}"]`);
				d.folderIds = await waitRows(page, 'the hostile messages');
				d.rowTexts = await page.locator(tid('result-row')).allTextContents();
				d.rowImages = await page.locator(`${tid('results')} img`).count();
			});
			for (const m of sc.messages) {
				await step('open-' + m.name, async () => {
					const r = { id: m.id };
					d.messages[m.name] = r;
					await page.click(`${tid('result-row')}[data-id="${m.id}"]`);
					await page.waitForFunction((id) => location.hash === '#/message/' + encodeURIComponent(id), m.id);
					await visible(page, 'message-view', 'the message view of ' + m.name);
					await page.waitForFunction((s) => document.querySelector('[data-testid="message-subject"]')?.textContent === s, m.subject);
					r.subject = await page.locator(tid('message-subject')).textContent();
					r.from = await page.locator(tid('message-from')).textContent();
					r.headerImages = await page.locator(`${tid('message-view')} .msg-headers img, ${tid('message-subject')} img`).count();
					r.hasFrame = (await page.locator(tid('message-frame')).count()) > 0;
					if (r.hasFrame) await waitFrameLoaded(page);
					r.hasText = (await page.locator(tid('message-text')).count()) > 0;
					if (r.hasText) r.textLinks = await page.locator(`${tid('message-text')} a`).evaluateAll((as) => as.map((a) => a.getAttribute('href')));
					r.remoteNotice = (await page.locator(tid('remote-notice')).count()) > 0;
					await sleep(400); // a refresh of 0 s, an onload: give them time to (not) happen
					r.report = await frameReport(page);
					r.appJsLinks = await page.locator('a[href^="javascript:" i]').count();
				});
				if (m.name === 'remote-images') {
					await step('remote-images-loaded', async () => {
						const r = d.messages[m.name];
						await (await visible(page, 'load-remote', 'the "load remote images" button')).click();
						await waitFrameLoaded(page, 'remote=1');
						await sleep(500);
						r.afterRemote = await frameReport(page);
						r.remoteNoticeAfter = (await page.locator(tid('remote-notice')).count()) > 0;
					});
				}
				if (m.name === 'attachment') {
					await step('attachment-download', async () => {
						const r = d.messages[m.name];
						await visible(page, 'attachments', 'the attachment list');
						r.attachmentNames = await page.locator(tid('attachment-link')).allTextContents();
						r.attachmentDownload = await download(page, () => page.click(tid('attachment-link')));
						r.urlAfterDownload = page.url();
					});
					await step('attachment-opened-directly', async () => {
						const r = d.messages[m.name];
						const p2 = await context.newPage();
						const url = `${sc.base}/web/api/message/${encodeURIComponent(m.id)}/part/${m.part}?inline=1`;
						watch.allowed.add(url);
						const [dl] = await Promise.all([p2.waitForEvent('download', { timeout: 15000 }).catch((e) => null),
							p2.goto(url).catch((e) => e)]);
						await sleep(500);
						r.direct = { download: dl ? dl.suggestedFilename() : null, url: p2.url(),
							pwned: await p2.evaluate(() => window.__pwned ?? null).catch((e) => 'n/a: ' + e.message.slice(0, 80)) };
						await p2.close();
						r.afterDirect = await frameReport(page);
					});
				}
			}
			await step('end', async () => { d.finalUrl = page.url(); d.topPwned = await page.evaluate(() => window.__pwned ?? null); });
		});
	},

	/* Scenario 4: accessibility (axe-core).  The page's CSP forbids injected
	 * scripts, so this context has bypassCSP: the app runs as usual, axe is
	 * added with addScriptTag.  The message frame (sandboxed, no script)
	 * is not analysed: iframes: false. */
	async axe(sc) {
		return withContext(sc, async ({ page, watch, step, res, context }) => {
			const d = res.data;
			d.pages = {};
			const run = async (name, p = page) => {
				await p.addScriptTag({ path: AXE });
				const out = await p.evaluate(async () => {
					const r = await window.axe.run(document, { iframes: false, resultTypes: ['violations'] });
					return {
						passes: r.passes.length,
						violations: r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map((n) => ({ target: n.target.join(' '), html: n.html.slice(0, 160), summary: (n.failureSummary || '').slice(0, 300) })) })),
					};
				});
				if (p === page) d.pages[name] = out; else d[name] = out;
			};
			// The positive control: axe must find what is wrong with a bad page.
			await step('control', async () => {
				const p2 = await context.newPage();
				watch.allowed.add('about:blank');
				await p2.setContent('<html><body><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw="><input type="text">' +
					'<button></button><p style="color:#eee;background:#fff">faint</p></body></html>');
				await run('control', p2);
				await p2.close();
			});
			await step('login-page', async () => { await openApp(page, watch, sc); await run('login'); });
			await step('search-results', async () => {
				await login(page, sc.user, sc.password);
				await page.fill(tid('search-input'), sc.word);
				await page.press(tid('search-input'), 'Enter');
				await waitRows(page, 'search results');
				await run('search');
			});
			await step('message', async () => {
				await page.locator(tid('result-row')).first().click();
				await visible(page, 'message-view', 'the message');
				if (await page.locator(tid('message-frame')).count()) await waitFrameLoaded(page);
				await run('message');
			});
			await step('settings', async () => { await openSettings(page); await run('settings'); });
		}, { bypassCSP: true });
	},

	/* Scenario 5: bob at alice's message. */
	async privileges(sc) {
		return withContext(sc, async ({ page, watch, step, res, context }) => {
			const d = res.data;
			await step('login', async () => { await openApp(page, watch, sc); await login(page, sc.user, sc.password); });
			await step('foreign-message', async () => {
				await page.evaluate((id) => { location.hash = '#/message/' + encodeURIComponent(id); }, sc.foreignId);
				await visible(page, 'message-error', "the not-found state for alice's message");
				d.errorText = await text(page, 'message-error');
				d.subjects = await page.locator(tid('message-subject')).count();
			});
			await step('foreign-download', async () => {
				const fetchStatus = (u) => page.evaluate(async (url) => { const r = await fetch(url); return { status: r.status, body: (await r.text()).slice(0, 300) }; }, u);
				const url = (id) => `/web/api/message/${encodeURIComponent(id)}/eml`;
				d.fetchForeign = await fetchStatus(url(sc.foreignId));
				d.fetchOwn = await fetchStatus(url(sc.ownId));
				const p2 = await context.newPage();
				let downloaded = null;
				p2.on('download', (dl) => { downloaded = dl.suggestedFilename(); });
				watch.allowed.add(sc.base + url(sc.foreignId));
				const resp = await p2.goto(sc.base + url(sc.foreignId)).catch((e) => e);
				await sleep(300);
				d.gotoForeign = { status: resp && resp.status ? resp.status() : String(resp), downloaded };
				await p2.close();
			});
			await step('search', async () => {
				await page.evaluate(() => { location.hash = '#/search'; });
				await page.fill(tid('search-input'), sc.word);
				await page.press(tid('search-input'), 'Enter');
				await page.waitForFunction(() => document.querySelector('[data-testid="result-row"], [data-testid="no-results"]'));
				await page.waitForFunction(() => document.querySelector('[data-testid="results"]')?.getAttribute('aria-busy') === 'false');
				d.searchIds = await rowIds(page);
			});
		});
	},
};

/* ---------- main ---------- */

async function main() {
	try {
		browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 60000 });
	} catch (e) {
		send({ fatal: 'cannot start ' + CHROMIUM + ': ' + e.message });
		process.exit(1);
	}
	send({ ready: true, version: browser.version() });
	for (;;) {
		const msg = await nextMessage();
		if (!msg || msg.quit) break;
		if (!msg.scenario) continue;
		const sc = msg.scenario;
		const fn = scenarios[sc.kind];
		let result;
		const t0 = Date.now();
		try {
			result = fn ? await fn(sc) : { failures: ['no scenario ' + sc.kind] };
		} catch (e) {
			result = { failures: ['scenario ' + sc.kind + ' crashed: ' + (e.stack || e)] };
		}
		result.seconds = (Date.now() - t0) / 1000;
		send({ done: result });
	}
	await browser.close();
}

main().catch((e) => { send({ fatal: String(e.stack || e) }); process.exit(1); });
