// web_bench.mjs — the Node side of bench/run_web.sh (Web Access latency and
// first-load size).  Three modes, each reading the JSON config CONFIG that
// run_web.sh writes (paths, URLs, rounds; passwords come from the
// environment: WB_PASSWORD for the web user, WB_ADMIN_PASSWORD for admin):
//
//   node web_bench.mjs measure CONFIG   Chromium (Playwright) against a running
//       `mailvault serve`: the cold first load (bytes per resource, Chrome
//       DevTools Protocol), then rounds over the query mix (Enter -> results
//       rendered, click -> message shown), then the same requests without a
//       browser (Node https, keep-alive): /web/api/search, /web/api/message,
//       the HTML frame, and the Administration API's SearchMessages with and
//       without snippets.  Writes config.web_json.
//   node web_bench.mjs notmuch CONFIG   `notmuch search --limit=50
//       --sort=newest-first Q` per query, whole process timed.  Writes
//       config.notmuch_json.
//   node web_bench.mjs report CONFIG    Merges everything into config.results_json
//       and prints the tables.
//
// Figures never fail anything: the exit status is 1 only when something broke
// (the page did not load, a query failed or never rendered, a request failed).
import { chromium } from 'playwright-core';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';

const [mode, configPath] = process.argv.slice(2);
if (!['measure', 'notmuch', 'report'].includes(mode) || !configPath) {
	console.error('usage: node web_bench.mjs measure|notmuch|report CONFIG');
	process.exit(2);
}
const C = JSON.parse(fs.readFileSync(configPath, 'utf8'));
const log = (...a) => console.error(`[web ${new Date().toTimeString().slice(0, 8)}]`, ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* Linear interpolation between the closest ranks, as bench/benchlib.py's _pct. */
function pct(xs, p) {
	const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
	if (!v.length) return null;
	const k = (v.length - 1) * p;
	const lo = Math.floor(k);
	const hi = Math.min(lo + 1, v.length - 1);
	return v[lo] + (v[hi] - v[lo]) * (k - lo);
}
const stats = (xs) => {
	const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x));
	return { n: v.length, p50: pct(v, 0.5), p95: pct(v, 0.95), min: v.length ? Math.min(...v) : null, max: v.length ? Math.max(...v) : null };
};

/* ================================================================ measure */

/* Installed in the page once the app runs.  It timestamps the user's action
 * (the Enter keydown in the search box, the click on a result row) with
 * performance.now() in capture listeners, so nothing of Playwright's own
 * round trips is counted, and watches the DOM with a MutationObserver:
 *  - search: done when the list's aria-busy has been "true" since the Enter
 *    (the page's loadPage() for this query has started) and is "false" again
 *    with fresh rows (rows present before the Enter are marked stale), the
 *    no-results state or the error state, and the route names this query;
 *  - open: "header" when a fresh message-subject with text is in the
 *    message view and the route names the clicked id; for HTML messages
 *    "frame" when the sandboxed frame fires load.
 * Each milestone is reported as DOM time (the mutation was seen) and as
 * rendered time: the next frame's requestAnimationFrame, then a task after
 * it, i.e. after that frame's style, layout and paint on the main thread. */
function instrument() {
	if (window.__mvb) return;
	performance.setResourceTimingBufferSize(100000);
	const S = { phase: null };
	window.__mvb = S;
	const now = () => performance.now();
	// Resolves with [rAF time, time after the frame]: the frame's rAF callbacks run before its style,
	// layout and paint; a task posted from there runs once the frame is done.
	const afterPaint = () => new Promise((res) => requestAnimationFrame(() => { const raf = now(); setTimeout(() => res([raf, now()]), 0); }));
	const q = (sel, root = document) => root.querySelector(sel);

	function apiTiming(path, t0, exact = true) {
		const es = performance.getEntriesByType('resource')
			.filter((e) => e.startTime >= t0 - 0.001 && (exact ? new URL(e.name).pathname === path : new URL(e.name).pathname.startsWith(path)));
		const e = es[0];
		if (!e) return null;
		return {
			path: new URL(e.name).pathname, count: es.length,
			start: e.startTime - t0,                     // fetch() called (ms after the action)
			ttfb: e.responseStart - e.requestStart,      // request sent -> first byte: server + loopback
			download: e.responseEnd - e.responseStart,
			end: e.responseEnd - t0,
			bytes: e.encodedBodySize,
		};
	}

	function routeQuery() {
		const [path, qs = ''] = location.hash.replace(/^#/, '').split('?');
		return path === '/search' ? new URLSearchParams(qs).get('q') : null;
	}

	function finish(result) {
		S.phase = null;
		S.resolve(result);
	}

	function checkSearch() {
		const list = q('[data-testid="results"]');
		if (!list || routeQuery() !== S.expect) return;
		if (list.getAttribute('aria-busy') === 'true') { S.sawBusy = true; return; }
		if (!S.sawBusy) return;
		const rows = list.querySelectorAll('[data-testid="result-row"]');
		const fresh = rows.length > 0 && !rows[0].hasAttribute('data-mvb-stale');
		const none = q('[data-testid="no-results"]:not([data-mvb-stale])');
		const err = q('[data-testid="search-error"]:not([data-mvb-stale])');
		if (!fresh && !none && !err) return;
		const t0 = S.t0;
		const r = {
			dom: now() - t0, rows: fresh ? rows.length : 0, empty: !!none,
			more: !q('[data-testid="result-more"]')?.hidden,
			count: q('[data-testid="result-count"]')?.textContent || '',
			error: err ? err.textContent : null,
			ids: fresh ? [...rows].slice(0, 10).map((r) => r.dataset.id) : [],
		};
		S.phase = 'search-paint';
		afterPaint().then(([raf, tp]) => {
			r.raf = raf - t0;
			r.rendered = tp - t0;
			r.fetch = apiTiming('/web/api/search', t0);
			r.hashchange = S.hc;
			r.longtasks = S.long.filter((l) => l.start >= -1);
			finish(r);
		});
	}

	function checkOpen() {
		const err = q('[data-testid="message-error"]:not([data-mvb-stale])');
		if (err) { finish({ error: err.textContent }); return; }
		if (S.header) return;
		const view = q('[data-testid="message-view"]');
		const subj = view && q('[data-testid="message-subject"]', view);
		if (!subj || subj.hasAttribute('data-mvb-stale') || !subj.textContent) return;
		if (location.hash !== '#/message/' + encodeURIComponent(S.expect)) return;
		const t0 = S.t0;
		const r = S.header = { header_dom: now() - t0, subject: subj.textContent.slice(0, 80) };
		const frame = q('[data-testid="message-frame"]', view);
		r.html = !!frame;
		r.text = !!q('[data-testid="message-text"]', view);
		let pending = frame ? 2 : 1;
		const done = () => {
			if (--pending) return;
			r.api = apiTiming('/web/api/message', t0);
			r.hashchange = S.hc;
			r.longtasks = S.long.filter((l) => l.start >= -1);
			if (frame) r.frame_fetch = apiTiming('/web/api/message/', t0, false);
			finish(r);
		};
		if (frame) {
			frame.addEventListener('load', () => {
				r.frame_load = now() - t0;
				afterPaint().then(([, tp]) => { r.frame = tp - t0; done(); });
			}, { once: true });
		}
		afterPaint().then(([raf, tp]) => { r.header_raf = raf - t0; r.header = tp - t0; done(); });
	}

	function check() {
		if (S.phase === 'search-wait') checkSearch();
		else if (S.phase === 'open-wait') checkOpen();
	}

	window.addEventListener('keydown', (e) => {
		if (S.phase === 'search-armed' && e.key === 'Enter' && e.target?.dataset?.testid === 'search-input') {
			S.t0 = now();
			S.phase = 'search-wait';
		}
	}, true);
	window.addEventListener('click', (e) => {
		if (S.phase === 'open-armed' && e.target.closest?.('[data-testid="result-row"]')) {
			S.t0 = now();
			S.phase = 'open-wait';
		}
	}, true);
	// Diagnostics: when the route's hashchange was queued and when the app's handler (registered
	// before this one) had finished; main-thread tasks over 50 ms.
	window.addEventListener('hashchange', (e) => {
		if (S.t0 != null) S.hc = { queued: e.timeStamp - S.t0, handled: now() - S.t0 };
	});
	S.long = [];
	try {
		new PerformanceObserver((list) => {
			for (const e of list.getEntries()) if (S.t0 != null) S.long.push({ start: e.startTime - S.t0, ms: e.duration });
		}).observe({ type: 'longtask' });
	} catch { /* no long-task timing */ }
	new MutationObserver(check).observe(document.body, {
		subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ['aria-busy', 'hidden'],
	});

	/* Arms one measurement; the promise settles when it is done (or after timeoutMs). */
	S.arm = (kind, expect, timeoutMs) => {
		for (const el of document.querySelectorAll('[data-testid="result-row"], [data-testid="no-results"], [data-testid="search-error"], [data-testid="message-subject"], [data-testid="message-error"]'))
			el.setAttribute('data-mvb-stale', '');
		performance.clearResourceTimings();
		Object.assign(S, { phase: kind + '-armed', expect, sawBusy: false, header: null, t0: null, hc: null, long: [] });
		S.promise = new Promise((resolve) => {
			const timer = setTimeout(() => {
				const phase = S.phase;
				S.phase = null;
				resolve({ timeout: true, phase, hash: location.hash });
			}, timeoutMs);
			S.resolve = (r) => { clearTimeout(timer); resolve(r); };
		});
	};
}

async function launch() {
	return chromium.launch({
		executablePath: C.chromium, headless: true,
		args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
			'--disable-sync', '--no-first-run', '--disable-quic'],
	});
}

const contextOptions = { ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 }, locale: 'en-US', serviceWorkers: 'block' };

async function login(page) {
	await page.getByTestId('login-user').waitFor({ timeout: 30000 });
	await page.getByTestId('login-user').fill(C.user);
	await page.getByTestId('login-password').fill(process.env.WB_PASSWORD || '');
	await page.getByTestId('login-submit').click();
	// The search box, or the form's error (wrong password, no web privilege).
	await page.locator('[data-testid="search-input"], [data-testid="login-error"]:visible').first().waitFor({ timeout: 60000 });
	const err = page.getByTestId('login-error');
	if (await err.isVisible()) throw new Error(`login as ${C.user} refused: ${await err.textContent()}`);
}

/* A fresh context has an empty HTTP cache: every byte of the search page comes
 * over the wire.  Counted per request through the DevTools protocol: the
 * response headers (Network.responseReceived's encodedDataLength) and the
 * total (Network.loadingFinished's encodedDataLength = headers + body as
 * sent, i.e. compressed when the server compressed). */
async function firstLoad(browser) {
	const ctx = await browser.newContext(contextOptions);
	const page = await ctx.newPage();
	const cdp = await ctx.newCDPSession(page);
	await cdp.send('Network.enable');
	const reqs = new Map();
	let phase = 'page';
	let inflight = 0;
	let lastActivity = Date.now();
	cdp.on('Network.requestWillBeSent', (e) => {
		if (e.request.url.startsWith('data:')) return;
		inflight++;
		lastActivity = Date.now();
		reqs.set(e.requestId, { url: e.request.url, method: e.request.method, type: e.type, phase, status: null, headers: 0, decoded: 0, transferred: null, fromCache: false, contentEncoding: null });
	});
	cdp.on('Network.responseReceived', (e) => {
		const r = reqs.get(e.requestId);
		if (!r) return;
		r.status = e.response.status;
		r.headers = e.response.encodedDataLength || 0;
		r.fromCache = !!(e.response.fromDiskCache || e.response.fromServiceWorker || e.response.fromPrefetchCache);
		r.protocol = e.response.protocol;
		const h = Object.fromEntries(Object.entries(e.response.headers || {}).map(([k, v]) => [k.toLowerCase(), v]));
		r.contentEncoding = h['content-encoding'] || null;
		r.mime = e.response.mimeType;
	});
	cdp.on('Network.dataReceived', (e) => { const r = reqs.get(e.requestId); if (r) r.decoded += e.dataLength; });
	const end = (e, failed) => {
		const r = reqs.get(e.requestId);
		if (!r) return;
		inflight = Math.max(0, inflight - 1);
		lastActivity = Date.now();
		if (failed) r.failed = e.errorText || 'failed';
		else r.transferred = e.encodedDataLength;
	};
	cdp.on('Network.loadingFinished', (e) => end(e, false));
	cdp.on('Network.loadingFailed', (e) => end(e, true));
	const quiet = async (ms) => {
		const deadline = Date.now() + 30000;
		while (Date.now() < deadline && (inflight > 0 || Date.now() - lastActivity < ms)) await sleep(50);
	};

	const t0 = Date.now();
	await page.goto(C.web_url + '/', { waitUntil: 'load', timeout: 60000 });
	await page.getByTestId('login-user').waitFor({ timeout: 30000 });
	const loginShownMs = Date.now() - t0;
	await quiet(500);
	phase = 'login';
	const t1 = Date.now();
	await login(page);
	await page.getByTestId('folder-tree').locator('[data-testid="folder-item"]').first().waitFor({ timeout: 30000 });
	const searchShownMs = Date.now() - t1;
	await quiet(750);
	const nav = await page.evaluate(() => {
		const n = performance.getEntriesByType('navigation')[0];
		return n ? { domContentLoaded: n.domContentLoadedEventEnd, load: n.loadEventEnd } : null;
	});
	await ctx.close();
	const resources = [...reqs.values()].map((r) => ({ ...r, url: r.url.replace(C.web_url, '') }));
	const failed = resources.filter((r) => r.failed || (r.status && r.status >= 400));
	const sum = (rs) => rs.reduce((a, r) => a + (r.transferred || 0), 0);
	const isApi = (r) => r.url.startsWith('/web/api/');
	return {
		total_bytes: sum(resources),
		page_bytes: sum(resources.filter((r) => r.phase === 'page')),
		login_bytes: sum(resources.filter((r) => r.phase === 'login')),
		static_bytes: sum(resources.filter((r) => !isApi(r))),
		api_bytes: sum(resources.filter(isApi)),
		header_bytes: resources.reduce((a, r) => a + (r.headers || 0), 0),
		decoded_bytes: resources.reduce((a, r) => a + (r.decoded || 0), 0),
		requests: resources.length,
		from_cache: resources.filter((r) => r.fromCache).length,
		login_form_ms: loginShownMs, search_page_ms: searchShownMs, navigation: nav,
		resources, failed,
	};
}

async function browserRounds(browser, queries, out) {
	const ctx = await browser.newContext(contextOptions);
	const page = await ctx.newPage();
	const consoleErrors = [];
	page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
	page.on('pageerror', (e) => consoleErrors.push(String(e)));
	await page.goto(C.web_url + '/', { waitUntil: 'load', timeout: 60000 });
	await login(page);
	await page.evaluate(instrument);
	const input = page.getByTestId('search-input');
	const rows = page.getByTestId('result-row');
	const timeout = C.step_timeout_ms || 60000;
	const failures = [];
	const perQuery = queries.map((q) => ({ label: q.label, query: q.mailvault, searches: [], opens: [] }));
	const totalRounds = C.warmup + C.rounds;
	for (let round = 0; round < totalRounds; round++) {
		const warm = round < C.warmup;
		log(`browser round ${round + 1}/${totalRounds}${warm ? ' (warm-up, not counted)' : ''}`);
		for (let qi = 0; qi < queries.length; qi++) {
			const q = queries[qi];
			const rec = perQuery[qi];
			await input.fill(q.mailvault);
			await page.evaluate(([e, t]) => window.__mvb.arm('search', e, t), [q.mailvault, timeout]);
			await page.keyboard.press('Enter');
			const s = await page.evaluate(() => window.__mvb.promise);
			if (s.timeout || s.error) {
				failures.push({ kind: 'search', query: q.mailvault, round, result: s });
				log(`FAILED: search ${JSON.stringify(q.mailvault)}: ${s.timeout ? 'no result state within ' + timeout + ' ms (' + s.phase + ', ' + s.hash + ')' : s.error}`);
				continue;
			}
			s.round = round;
			if (!warm) rec.searches.push(s);
			rec.rows = s.rows; rec.more = s.more; rec.count = s.count; rec.empty = s.empty;
			await sleep(C.pause_ms);
			if (!s.rows) continue;
			// A different row each round, among the first 8 (no scrolling that would prefetch page 2).
			const idx = (round + qi) % Math.min(s.rows, 8);
			const id = s.ids[idx];
			await page.evaluate(([e, t]) => window.__mvb.arm('open', e, t), [id, timeout]);
			await rows.nth(idx).click();
			const o = await page.evaluate(() => window.__mvb.promise);
			if (o.timeout || o.error) {
				failures.push({ kind: 'open', query: q.mailvault, id, round, result: o });
				log(`FAILED: open ${id} (query ${JSON.stringify(q.mailvault)}): ${o.timeout ? 'not shown within ' + timeout + ' ms (' + o.phase + ', ' + o.hash + ')' : o.error}`);
				continue;
			}
			Object.assign(o, { id, round, row: idx });
			if (!warm) rec.opens.push(o);
			out.opened.set(id, o.html);
			await sleep(C.pause_ms);
		}
	}
	await ctx.close();
	return { queries: perQuery, failures, console_errors: consoleErrors.slice(0, 20) };
}

/* ---- the same requests without a browser: Node https, one keep-alive connection ---- */

function client(base, extraHeaders = {}) {
	const agent = new https.Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });
	const u = new URL(base);
	let cookie = '';
	const request = (method, path, form, moreHeaders = {}) => new Promise((resolve, reject) => {
		const body = form ? new URLSearchParams(form).toString() : null;
		const headers = { Accept: 'application/json', ...extraHeaders, ...moreHeaders };
		if (body !== null) {
			headers['Content-Type'] = 'application/x-www-form-urlencoded; charset=utf-8';
			headers['Content-Length'] = Buffer.byteLength(body);
		}
		if (cookie) headers.Cookie = cookie;
		const t0 = process.hrtime.bigint();
		let ttfb = null;
		const req = https.request({ host: u.hostname, port: u.port, path, method, agent, headers }, (res) => {
			ttfb = Number(process.hrtime.bigint() - t0) / 1e6;
			const chunks = [];
			res.on('data', (c) => chunks.push(c));
			res.on('end', () => {
				const ms = Number(process.hrtime.bigint() - t0) / 1e6;
				for (const sc of [].concat(res.headers['set-cookie'] || [])) {
					const m = /^(__Host-mvsession=[^;]*)/.exec(sc);
					if (m) cookie = m[1];
				}
				resolve({ status: res.statusCode, body: Buffer.concat(chunks), ms, ttfb });
			});
			res.on('error', reject);
		});
		req.on('error', reject);
		req.setTimeout(120000, () => req.destroy(new Error('timeout')));
		if (body !== null) req.write(body);
		req.end();
	});
	return { request, close: () => agent.destroy() };
}

const jsonOf = (buf) => JSON.parse(buf.toString('utf8').replace(/^\uFEFF/, ''));

async function measure() {
	const queries = JSON.parse(fs.readFileSync(C.querymix_json, 'utf8')).queries;
	const out = { when: new Date().toISOString(), config: { rounds: C.rounds, warmup: C.warmup, queries: queries.length }, opened: new Map() };
	const browser = await launch();
	out.chromium = browser.version();
	log(`Chromium ${out.chromium}: cold first load`);
	let fl;
	try {
		fl = await firstLoad(browser);
	} catch (e) {
		await browser.close();
		throw new Error('first load: ' + e.message);
	}
	log(`first load: ${fl.total_bytes} bytes in ${fl.requests} requests`);
	let br;
	try {
		br = await browserRounds(browser, queries, out);
	} finally {
		await browser.close();
	}
	const opened = [...out.opened.entries()];
	delete out.opened;
	log('the same requests without a browser (Node https, keep-alive)');
	const ep = await directRounds(queries, opened);
	out.first_load = fl;
	out.browser = br;
	out.direct = ep;
	fs.writeFileSync(C.web_json, JSON.stringify(out, null, 1));
	const failures = br.failures.length + ep.failures.length + fl.failed.length;
	if (failures) {
		log(`${failures} failure(s): see ${C.web_json} (browser.failures, direct.failures, first_load.failed)`);
		process.exit(1);
	}
}

async function directRounds(queries, opened) {
	const failures = [];
	const web = client(C.web_url, { 'X-Requested-With': 'mailvault' });
	const login = await web.request('POST', '/web/api/login', { userName: C.user, password: process.env.WB_PASSWORD || '' });
	if (login.status !== 200) throw new Error(`web login: HTTP ${login.status} ${login.body.toString().slice(0, 200)}`);
	const csrf = jsonOf(login.body).csrfToken;
	const call = async (what, method, path, form, headers) => {
		let r;
		try {
			r = await web.request(method, path, form ? { ...form } : null, headers);
		} catch (e) {
			r = { status: 0, body: Buffer.from(String(e)), ms: null };
		}
		if (r.status !== 200) failures.push({ what, path, form, status: r.status, body: r.body.toString().slice(0, 300) });
		return r;
	};
	const admin = client(C.api_url, { Authorization: 'Basic ' + Buffer.from('admin:' + (process.env.WB_ADMIN_PASSWORD || '')).toString('base64') });
	const adminCall = async (form) => {
		let r;
		try {
			r = await admin.request('POST', '/api/invoke/SearchMessages', form);
		} catch (e) {
			r = { status: 0, body: Buffer.from(String(e)), ms: null };
		}
		let ok = r.status === 200;
		let hits = null;
		if (ok) {
			try {
				const env = jsonOf(r.body);
				ok = env.statusCode === 'succeeded';
				hits = Array.isArray(env.result) ? env.result.length : null;
			} catch { ok = false; }
		}
		if (!ok) failures.push({ what: 'admin SearchMessages', form, status: r.status, body: r.body.toString().slice(0, 300) });
		return { ...r, hits };
	};
	const total = C.warmup + C.rounds;
	const res = queries.map((q) => ({ label: q.label, query: q.mailvault, search: [], search_ttfb: [], bytes: null, hits: null, more: null, hit_bytes: null, admin_nosnip: [], admin_snip: [] }));
	for (let round = 0; round < total; round++) {
		const warm = round < C.warmup;
		for (let qi = 0; qi < queries.length; qi++) {
			const q = queries[qi];
			const r = await call('web search', 'POST', '/web/api/search', { query: q.mailvault, sort: 'date', limit: '50' }, { 'X-CSRF-Token': csrf });
			if (r.status === 200 && !warm) {
				res[qi].search.push(r.ms);
				res[qi].search_ttfb.push(r.ttfb);
				const d = jsonOf(r.body);
				res[qi].bytes = r.body.length;
				res[qi].hits = (d.hits || []).length;
				res[qi].more = !!d.more;
				// The raw size of the messages on the page: the snippets are cut from them.
				res[qi].hit_bytes = (d.hits || []).reduce((a, h) => a + (h.size || 0), 0);
			}
			// The registry's SearchMessages through the Administration API, limit 51 as the page's
			// endpoint asks (50 + 1 for "more"): without snippets, then with them.
			for (const sn of ['false', 'true']) {
				const a = await adminCall({ query: q.mailvault, sort: 'date', limit: '51', snippets: sn });
				if (a.status === 200 && !warm) res[qi][sn === 'true' ? 'admin_snip' : 'admin_nosnip'].push(a.ms);
			}
		}
	}
	// Messages the browser opened: the message answer and, for HTML ones, the frame.
	const msgs = { message: [], html: [], ids: opened.length, html_ids: 0 };
	for (let round = 0; round < total; round++) {
		for (const [id, html] of opened) {
			const r = await call('web message', 'POST', '/web/api/message', { id }, { 'X-CSRF-Token': csrf });
			if (round >= C.warmup && r.status === 200) msgs.message.push(r.ms);
			if (html) {
				const f = await call('web frame', 'GET', '/web/api/message/' + encodeURIComponent(id) + '/html', null, { Accept: 'text/html' });
				if (round >= C.warmup && f.status === 200) msgs.html.push(f.ms);
			}
		}
	}
	msgs.html_ids = opened.filter(([, h]) => h).length;
	web.close();
	admin.close();
	return { queries: res, messages: msgs, failures };
}

/* ================================================================ notmuch */

function notmuch() {
	const mix = JSON.parse(fs.readFileSync(C.querymix_json, 'utf8')).queries;
	const env = { ...process.env, NOTMUCH_CONFIG: C.notmuch_config };
	const run = (args) => {
		const t0 = process.hrtime.bigint();
		const p = spawnSync('notmuch', args, { env, maxBuffer: 64 << 20 });
		return { ms: Number(process.hrtime.bigint() - t0) / 1e6, p };
	};
	const total = C.warmup + C.rounds;
	const base = [];
	for (let i = 0; i < total + 2; i++) base.push(run(['count', 'id:no-such-message@nowhere']).ms);
	const out = { note: 'wall time of a whole notmuch process (spawn, database open, query, output)', rounds: C.rounds, warmup: C.warmup, startup: stats(base.slice(C.warmup)), queries: [], failures: [] };
	const all = [];
	for (const q of mix) {
		if (!q.notmuch) { out.queries.push({ label: q.label, mailvault: q.mailvault, notmuch: null }); continue; }
		const args = ['search', '--limit=50', '--sort=newest-first', q.notmuch];
		const ms = [];
		let lines = null;
		for (let round = 0; round < total; round++) {
			const { ms: t, p } = run(args);
			if (p.status !== 0) {
				out.failures.push({ query: q.notmuch, status: p.status, stderr: String(p.stderr).slice(0, 300) });
				break;
			}
			if (round >= C.warmup) ms.push(t);
			lines = String(p.stdout).split('\n').filter(Boolean).length;
		}
		all.push(...ms);
		out.queries.push({ label: q.label, mailvault: q.mailvault, notmuch: q.notmuch, threads: lines, ms, ...stats(ms) });
	}
	out.all = stats(all);
	fs.writeFileSync(C.notmuch_json, JSON.stringify(out, null, 1));
	if (out.failures.length) {
		log(`notmuch failed on ${out.failures.length} quer${out.failures.length === 1 ? 'y' : 'ies'}: ${JSON.stringify(out.failures[0])}`);
		process.exit(1);
	}
}

/* ================================================================ report */

function readJson(p) {
	try { return JSON.parse(fs.readFileSync(p, 'utf8')); } catch { return null; }
}

function report() {
	const web = readJson(C.web_json);
	const nm = readJson(C.notmuch_json);
	const engine = readJson(C.engine_json);
	const meta = readJson(C.meta_json) || {};
	const mix = JSON.parse(fs.readFileSync(C.querymix_json, 'utf8')).queries;
	const f1 = (x) => (x == null ? 'n/a' : x.toFixed(1));
	const ratio = (a, b) => (a == null || b == null || !b ? null : a / b);
	const fr = (x) => (x == null ? 'n/a' : x.toFixed(2) + '×');
	const pad = (s, n) => String(s).padEnd(n).slice(0, n);
	const lpad = (s, n) => String(s).padStart(n);

	const bq = web?.browser?.queries || [];
	const dq = web?.direct?.queries || [];
	const eq = engine?.queries || [];
	const nq = nm?.queries || [];
	const pick = (arr, i, f) => (arr[i] ? f(arr[i]) : []);
	const all = (f) => bq.flatMap(f);
	const rendered = all((q) => q.searches.map((s) => s.rendered));
	const searchDom = all((q) => q.searches.map((s) => s.dom));
	const fetchTtfb = all((q) => q.searches.map((s) => s.fetch?.ttfb));
	const fetchStart = all((q) => q.searches.map((s) => s.fetch?.start));
	const routeDone = all((q) => q.searches.map((s) => s.hashchange?.handled));
	const openFetchStart = all((q) => q.opens.map((o) => o.api?.start));
	const fetchEnd = all((q) => q.searches.map((s) => s.fetch?.end));
	const afterResp = all((q) => q.searches.map((s) => (s.fetch ? s.dom - s.fetch.end : null)));
	const paintWait = all((q) => q.searches.map((s) => s.rendered - s.dom));
	const opens = all((q) => q.opens);
	const header = opens.map((o) => o.header);
	const headerDom = opens.map((o) => o.header_dom);
	const msgTtfb = opens.map((o) => o.api?.ttfb);
	const openAfterResp = opens.map((o) => (o.api ? o.header_dom - o.api.end : null));
	const openPaintWait = opens.map((o) => o.header - o.header_dom);
	// Snippet cost against the raw size of the messages on the page: per query, the p50 of
	// SearchMessages with snippets minus the p50 without, fitted by least squares.
	const fit = (() => {
		const pts = dq.filter((q) => q.hit_bytes != null && q.admin_snip.length && q.admin_nosnip.length)
			.map((q) => [q.hit_bytes / 1e6, pct(q.admin_snip, 0.5) - pct(q.admin_nosnip, 0.5)]);
		if (pts.length < 3) return null;
		const mx = pts.reduce((a, [x]) => a + x, 0) / pts.length;
		const my = pts.reduce((a, [, y]) => a + y, 0) / pts.length;
		const sxx = pts.reduce((a, [x]) => a + (x - mx) ** 2, 0);
		const syy = pts.reduce((a, [, y]) => a + (y - my) ** 2, 0);
		const sxy = pts.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0);
		if (!sxx || !syy) return null;
		const share = pts.reduce((a, [, y]) => a + y, 0) / dq.reduce((a, q) => a + (pct(q.admin_snip, 0.5) || 0), 0);
		return { ms_fixed: my - (sxy / sxx) * mx, ms_per_mb: sxy / sxx, r: sxy / Math.sqrt(sxx * syy), share_of_search: share, queries: pts.length };
	})();
	const frame = opens.filter((o) => o.html).map((o) => o.frame);
	const frameTtfb = opens.filter((o) => o.html).map((o) => o.frame_fetch?.ttfb);
	const direct = dq.flatMap((q) => q.search);
	const adminNo = dq.flatMap((q) => q.admin_nosnip);
	const adminSn = dq.flatMap((q) => q.admin_snip);
	const eng = eq.map((q) => q.p50_ms);
	// The notmuch comparison uses the queries notmuch has a translation for, on both sides.
	const withNm = mix.map((q, i) => (q.notmuch ? i : -1)).filter((i) => i >= 0);
	const renderedNm = withNm.flatMap((i) => pick(bq, i, (q) => q.searches.map((s) => s.rendered)));
	const directNm = withNm.flatMap((i) => pick(dq, i, (q) => q.search));
	const nmAll = nq.flatMap((q) => q.ms || []);

	const S = {
		search_rendered: stats(rendered), search_dom: stats(searchDom),
		search_fetch_start: stats(fetchStart), search_route_done: stats(routeDone), open_fetch_start: stats(openFetchStart), search_fetch_ttfb: stats(fetchTtfb), search_fetch_end: stats(fetchEnd),
		search_after_response: stats(afterResp), search_paint_wait: stats(paintWait),
		open_header: stats(header), open_header_dom: stats(headerDom), open_message_ttfb: stats(msgTtfb),
		open_after_response: stats(openAfterResp), open_paint_wait: stats(openPaintWait), snippet_fit: fit,
		open_largest_message_bytes: Math.max(0, ...opens.map((o) => o.api?.bytes || 0)),
		open_frame: stats(frame), open_frame_ttfb: stats(frameTtfb),
		direct_search: stats(direct), admin_search_nosnippets: stats(adminNo), admin_search_snippets: stats(adminSn),
		direct_message: stats(web?.direct?.messages?.message || []), direct_frame: stats(web?.direct?.messages?.html || []),
		engine_p50_of_queries: stats(eng), engine: engine ? { p50: engine.p50_ms, p95: engine.p95_ms } : null,
		notmuch_search: stats(nmAll), notmuch_startup: nm?.startup || null,
		browser_on_notmuch_queries: stats(renderedNm), direct_on_notmuch_queries: stats(directNm),
	};
	const fl = web?.first_load;
	const targets = { search_p95_ms: 150, open_p95_ms: 150, first_load_kb: 150 };
	const ncpu = os.cpus().length;

	const lines = [];
	const p = (s = '') => lines.push(s);
	p();
	p(`== mailvault Web Access, ${meta.count?.toLocaleString('en-US') ?? '?'} messages in one archive (${web?.when ?? '?'}; ${ncpu} CPUs; Chromium ${web?.chromium ?? '?'}) ==`);
	p(`query mix: ${mix.length} queries (benchlib.py querymix, seeds ${meta.seeds ?? '?'}, duplicates dropped); ${web?.config?.warmup ?? '?'} warm-up + ${web?.config?.rounds ?? '?'} measured rounds; one result opened per query and round`);
	if (meta.loadavg_before != null && meta.loadavg_before > ncpu / 2)
		p(`WARNING: machine busy (load average ${meta.loadavg_before} before the browser runs, ${ncpu} CPUs): figures are noisy; compare ratios with care`);
	p();
	p(`${pad('per query (ms)', 24)} ${pad('query', 40)} ${lpad('rows', 5)} ${lpad('hit KB', 7)} ${lpad('br p50', 7)} ${lpad('br p95', 7)} ${lpad('ttfb', 6)} ${lpad('http', 6)} ${lpad('nosnip', 6)} ${lpad('engine', 6)} ${lpad('nm p50', 7)} ${lpad('open', 6)}`);
	for (let i = 0; i < mix.length; i++) {
		const b = bq[i] || { searches: [], opens: [] };
		const d = dq[i] || {};
		const e = eq[i] || {};
		const n = nq[i] || {};
		const st = stats(b.searches.map((s) => s.rendered));
		const rows = b.rows == null ? '?' : b.empty ? '0' : b.rows + (b.more ? '+' : '');
		p(`${pad(mix[i].label, 24)} ${pad(mix[i].mailvault, 40)} ${lpad(rows, 5)} ${lpad(d.hit_bytes == null ? 'n/a' : Math.round(d.hit_bytes / 1000).toLocaleString('en-US'), 7)} ${lpad(f1(st.p50), 7)} ${lpad(f1(st.p95), 7)} ` +
			`${lpad(f1(pct(b.searches.map((s) => s.fetch?.ttfb), 0.5)), 6)} ${lpad(f1(pct(d.search || [], 0.5)), 6)} ${lpad(f1(pct(d.admin_nosnip || [], 0.5)), 6)} ` +
			`${lpad(f1(e.p50_ms), 6)} ${lpad(n.notmuch ? f1(n.p50) : '-', 7)} ${lpad(f1(pct(b.opens.map((o) => o.header), 0.5)), 6)}`);
	}
	p('  rows = result rows shown (+ = "more" offered); hit KB = raw size of the messages on that page (the snippets are cut from them);');
	p('  br = Enter -> rows rendered in Chromium; ttfb = the page\'s /web/api/search request,');
	p('  sent -> first byte; http = the same request from Node (keep-alive, no browser), whole answer; nosnip = SearchMessages without');
	p('  snippets over the Administration API; engine = `mailvault search-bench --limit 51` in-process; nm = notmuch search --limit=50');
	p('  (whole process); open = click -> message header rendered.');
	p();
	p(`${pad('figure (ms)', 66)} ${lpad('p50', 7)} ${lpad('p95', 7)}  target`);
	const row = (label, st, target) => p(`${pad(label, 66)} ${lpad(f1(st?.p50), 7)} ${lpad(f1(st?.p95), 7)}  ${target || ''}`);
	row('search: Enter -> result rows rendered (Chromium)', S.search_rendered, `p95 < ${targets.search_p95_ms} ms: ${S.search_rendered.p95 == null ? 'n/a' : S.search_rendered.p95 < targets.search_p95_ms ? 'met' : 'MISSED'}`);
	row('  Enter -> rows in the DOM', S.search_dom);
	row('  Enter -> fetch() called (hashchange task, route(), list cleared)', S.search_fetch_start);
	row('  Enter -> the app\'s hashchange handler done', S.search_route_done);
	row('  request sent -> first byte (server + loopback)', S.search_fetch_ttfb);
	row('  Enter -> response complete', S.search_fetch_end);
	row('  response complete -> rows in the DOM (JSON parse, rows built)', S.search_after_response);
	row('  rows in the DOM -> next frame painted', S.search_paint_wait);
	row('open: click -> message header rendered (Chromium)', S.open_header, `p95 < ${targets.open_p95_ms} ms: ${S.open_header.p95 == null ? 'n/a' : S.open_header.p95 < targets.open_p95_ms ? 'met' : 'MISSED'}`);
	row('  click -> fetch() called (hashchange task, route())', S.open_fetch_start);
	row('  click -> header in the DOM', S.open_header_dom);
	row('  /web/api/message: request sent -> first byte', S.open_message_ttfb);
	row('  response complete -> header in the DOM (JSON parse, render)', S.open_after_response);
	row('  header in the DOM -> next frame painted', S.open_paint_wait);
	row(`open, HTML messages (${frame.length} of ${opens.length}): click -> frame loaded and painted`, S.open_frame);
	row('  /web/api/message/ID/html: request sent -> first byte', S.open_frame_ttfb);
	row('/web/api/search from Node (no browser), whole answer', S.direct_search);
	row('Administration API SearchMessages limit 51, no snippets', S.admin_search_nosnippets);
	row('Administration API SearchMessages limit 51, with snippets', S.admin_search_snippets);
	if (fit) p(`  snippets cost ${f1(fit.ms_fixed)} ms + ${f1(fit.ms_per_mb)} ms per MB of the page's messages (least squares over the queries, r = ${fit.r.toFixed(2)}); ${Math.round(100 * fit.share_of_search)}% of SearchMessages' time`);
	row('search-bench in-process (all runs of all queries)', S.engine);
	row('/web/api/message from Node', S.direct_message);
	row('/web/api/message/ID/html from Node', S.direct_frame);
	row('notmuch search --limit=50 --sort=newest-first (whole process)', S.notmuch_search);
	row('  notmuch start + database open alone (count id:no-such-message)', S.notmuch_startup);
	p();
	if (nm) {
		const rb = S.browser_on_notmuch_queries;
		const rd = S.direct_on_notmuch_queries;
		p(`mailvault vs notmuch on the ${withNm.length} queries notmuch has a translation for:`);
		p(`  browser (Enter -> rendered) p50 ${f1(rb.p50)} / p95 ${f1(rb.p95)} ms vs notmuch search p50 ${f1(S.notmuch_search.p50)} / p95 ${f1(S.notmuch_search.p95)} ms:` +
			` ratio p50 ${fr(ratio(rb.p50, S.notmuch_search.p50))}, p95 ${fr(ratio(rb.p95, S.notmuch_search.p95))} (mailvault/notmuch; < 1 = mailvault faster)`);
		p(`  /web/api/search alone p50 ${f1(rd.p50)} / p95 ${f1(rd.p95)} ms: ratio p50 ${fr(ratio(rd.p50, S.notmuch_search.p50))}, p95 ${fr(ratio(rd.p95, S.notmuch_search.p95))}`);
		p(`  browser share of the search time: p50 ${f1(S.search_rendered.p50)} ms in Chromium vs ${f1(S.direct_search.p50)} ms for the endpoint alone` +
			` (${S.search_rendered.p50 && S.direct_search.p50 ? Math.round(100 * (1 - S.direct_search.p50 / S.search_rendered.p50)) + '% outside the server' : 'n/a'})`);
	} else {
		p('notmuch: not run (not installed: apt-get install notmuch)');
	}
	p();
	if (fl) {
		p(`cold first load of the search page (fresh context, empty cache; login included): ${(fl.total_bytes / 1000).toFixed(1)} KB transferred` +
			` (${fl.total_bytes.toLocaleString('en-US')} bytes, ${fl.requests} requests; target < ${targets.first_load_kb} KB: ${fl.total_bytes / 1000 < targets.first_load_kb ? 'met' : 'MISSED'})`);
		p(`  static ${(fl.static_bytes / 1000).toFixed(1)} KB + /web/api ${(fl.api_bytes / 1000).toFixed(1)} KB; of which response headers ${(fl.header_bytes / 1000).toFixed(1)} KB;` +
			` ${(fl.decoded_bytes / 1000).toFixed(1)} KB after decompression; login form shown after ${fl.login_form_ms} ms, search page ${fl.search_page_ms} ms after the click`);
		p(`  ${pad('resource', 44)} ${pad('phase', 6)} ${lpad('status', 6)} ${pad('enc', 5)} ${lpad('headers', 8)} ${lpad('transferred', 11)} ${lpad('decoded', 8)}`);
		for (const r of [...fl.resources].sort((a, b) => (b.transferred || 0) - (a.transferred || 0)))
			p(`  ${pad(r.method === 'GET' ? r.url : r.method + ' ' + r.url, 44)} ${pad(r.phase, 6)} ${lpad(r.status ?? '-', 6)} ${pad(r.contentEncoding || '-', 5)} ${lpad(r.headers, 8)} ${lpad(r.transferred ?? (r.failed || '-'), 11)} ${lpad(r.decoded, 8)}`);
		p('  transferred = DevTools encodedDataLength: response headers + body as sent (TLS framing and request bytes not counted); KB = 1,000 bytes');
	}
	p();
	const notes = meta.notes || [];
	for (const n of notes) p(n);
	p();
	p('Markdown (for bench/RESULTS.md):');
	p();
	p('| figure | p50 ms | p95 ms | target |');
	p('|---|---:|---:|---|');
	const md = (label, st, target = '') => p(`| ${label} | ${f1(st?.p50)} | ${f1(st?.p95)} | ${target} |`);
	md('search: Enter → rows rendered (Chromium)', S.search_rendered, `p95 < ${targets.search_p95_ms} ms`);
	md('open: click → message header rendered', S.open_header, `p95 < ${targets.open_p95_ms} ms`);
	md(`open, HTML messages: click → frame loaded (${frame.length} of ${opens.length})`, S.open_frame);
	md('/web/api/search alone (Node, keep-alive)', S.direct_search);
	md('SearchMessages (API) without snippets', S.admin_search_nosnippets);
	md('search-bench in-process', S.engine);
	md('notmuch search --limit=50 (whole process)', S.notmuch_search);
	if (fl) p(`| cold first load of the search page | ${(fl.total_bytes / 1000).toFixed(1)} KB | ${fl.requests} requests | < ${targets.first_load_kb} KB |`);
	p();
	if (meta.invocation) { p('```sh'); p(meta.invocation); p('```'); }
	console.log(lines.join('\n'));

	const results = {
		when: web?.when, machine: { cpus: ncpu, mem_bytes: os.totalmem(), kernel: os.release(), node: process.version, chromium: web?.chromium },
		meta, targets, summary: S,
		per_query: mix.map((q, i) => ({
			label: q.label, mailvault: q.mailvault, notmuch: q.notmuch,
			browser: bq[i] ? { rows: bq[i].rows, more: bq[i].more, empty: bq[i].empty, count_text: bq[i].count, rendered: stats(bq[i].searches.map((s) => s.rendered)), samples: bq[i].searches, opens: bq[i].opens } : null,
			direct: dq[i] ? { hits: dq[i].hits, more: dq[i].more, bytes: dq[i].bytes, hit_bytes: dq[i].hit_bytes, search: stats(dq[i].search), admin_nosnippets: stats(dq[i].admin_nosnip), admin_snippets: stats(dq[i].admin_snip), samples: dq[i].search } : null,
			engine: eq[i] || null, notmuch: nq[i] || null,
		})),
		first_load: fl, direct_messages: web?.direct?.messages, notmuch: nm ? { startup: nm.startup, all: nm.all } : null,
		failures: { browser: web?.browser?.failures || [], direct: web?.direct?.failures || [], console_errors: web?.browser?.console_errors || [] },
	};
	fs.writeFileSync(C.results_json, JSON.stringify(results, null, 1));
	console.log(`machine-readable: ${C.results_json}`);
}

try {
	if (mode === 'measure') await measure();
	else if (mode === 'notmuch') notmuch();
	else report();
} catch (e) {
	log('FAILED:', e.stack || e.message);
	process.exit(1);
}
