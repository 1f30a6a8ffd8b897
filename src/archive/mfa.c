/* archive/mfa: multi-factor authentication of users — TOTP (RFC 6238,
 * liboath) as authenticator apps speak it: SHA-1, 6 digits, 30 s.
 *
 * A user's MFA lives in one row of user_mfa: state (none, required — an
 * administrator called InitializeMFA and the user enrols at the next
 * interactive logon —, or active), the active secret and a pending one
 * (shown as a QR code until the user confirms it with a first code), each
 * sealed with a key derived from the instance key, and the last time step
 * accepted, so that a code is never accepted twice (an observed code cannot
 * be replayed within its window).  Every change gives the user a new auth
 * generation, which ends the user's sessions and cached logons. */
#include "archive/internal.h"

#include <liboath/oath.h>
#include <sodium.h>
#include <string.h>

#define SECRET_BYTES 20             /* RFC 4226's recommended 160 bits */
#define TIME_STEP 30
#define WINDOW 1                    /* one step either side: clocks drift */
#define SEAL_PURPOSE "mailvault-totp-v1"
#define KDF_CONTEXT "mvtotp"
#define ISSUER "mailvault"

typedef struct mfa_row {
	bool found;
	mv_mfa_state state;
	GBytes *secret, *pending;   /* sealed */
	int64_t last_step;
} mfa_row;

static void mfa_row_clear(mfa_row *r)
{
	if (r->secret)
		g_bytes_unref(r->secret);
	if (r->pending)
		g_bytes_unref(r->pending);
	memset(r, 0, sizeof *r);
}

static gsize oath_once;

static int ensure_oath(GError **error)
{
	if (g_once_init_enter(&oath_once)) {
		int rc = oath_init();
		g_once_init_leave(&oath_once, rc == OATH_OK ? 1 : 2);
	}
	if (oath_once == 1)
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_IO, "liboath failed to initialise");
	return -1;
}

const char *mv_mfa_state_name(mv_mfa_state s)
{
	switch (s) {
	case MV_MFA_REQUIRED: return "pending";
	case MV_MFA_ACTIVE: return "active";
	default: return "none";
	}
}

static GBytes *column_blob(sqlite3_stmt *st, int col)
{
	const void *p = sqlite3_column_blob(st, col);
	int n = sqlite3_column_bytes(st, col);
	return p && n > 0 ? g_bytes_new(p, (gsize)n) : NULL;
}

static int read_row(mv_instance *inst, const char *stored, mfa_row *r, GError **error)
{
	memset(r, 0, sizeof *r);
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "SELECT state, secret, pending, last_step FROM user_mfa WHERE user=?", &st,
	                   error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, stored, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		r->found = true;
		int64_t s = sqlite3_column_int64(st, 0);
		r->state = s == MV_MFA_ACTIVE ? MV_MFA_ACTIVE : s == MV_MFA_REQUIRED ? MV_MFA_REQUIRED : MV_MFA_NONE;
		r->secret = column_blob(st, 1);
		r->pending = column_blob(st, 2);
		r->last_step = sqlite3_column_int64(st, 3);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return 0;
	mv_sql_set_error(error, mv_archive_db(inst), "read MFA");
	return -1;
}

static void bind_blob(sqlite3_stmt *st, int col, GBytes *b)
{
	gsize n = 0;
	const void *p = b ? g_bytes_get_data(b, &n) : NULL;
	if (p)
		sqlite3_bind_blob(st, col, p, (int)n, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, col);
}

static int write_row(mv_instance *inst, const char *stored, const mfa_row *r, GError **error)
{
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "INSERT OR REPLACE INTO user_mfa(user, state, secret, pending, last_step)"
	                   " VALUES (?, ?, ?, ?, ?)", &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, stored, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, r->state);
	bind_blob(st, 3, r->secret);
	bind_blob(st, 4, r->pending);
	sqlite3_bind_int64(st, 5, r->last_step);
	return mv_sql_step_done(mv_archive_db(inst), st, "write MFA", error);
}

/* The stored spelling of a user name, or NULL with MV_ERR_NOT_FOUND. */
static char *stored_name(mv_instance *inst, const char *name, GError **error)
{
	mv_user *u = mv_user_get(inst, name, error);
	if (!u)
		return NULL;
	char *stored = g_strdup(u->name);
	mv_user_free(u);
	return stored;
}

int mv_mfa_get_state(mv_instance *inst, const char *name, mv_mfa_state *state_r, GError **error)
{
	char *stored = stored_name(inst, name, error);
	if (!stored)
		return -1;
	mfa_row r;
	int rc = read_row(inst, stored, &r, error);
	*state_r = r.state;
	mfa_row_clear(&r);
	g_free(stored);
	return rc;
}

/* ---- sealing secrets ------------------------------------------------------------------- */

static GBytes *seal_secret(mv_instance *inst, const uint8_t *secret, size_t len, GError **error)
{
	uint8_t key[MV_KEY_BYTES];
	if (mv_archive_secret_key(inst, KDF_CONTEXT, 1, key, error) < 0)
		return NULL;
	GBytes *b = mv_archive_seal(key, SEAL_PURPOSE, secret, len);
	sodium_memzero(key, sizeof key);
	return b;
}

static GBytes *open_secret(mv_instance *inst, GBytes *sealed, GError **error)
{
	uint8_t key[MV_KEY_BYTES];
	if (mv_archive_secret_key(inst, KDF_CONTEXT, 1, key, error) < 0)
		return NULL;
	GBytes *b = mv_archive_open_sealed(key, SEAL_PURPOSE, sealed);
	sodium_memzero(key, sizeof key);
	if (!b)
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "the stored MFA secret does not open with this instance's key");
	return b;
}

static void wipe_bytes(GBytes *b)
{
	if (!b)
		return;
	gsize n = 0;
	void *p = (void *)g_bytes_get_data(b, &n);
	if (p)
		sodium_memzero(p, n);
	g_bytes_unref(b);
}

/* ---- codes --------------------------------------------------------------------------------- */

int mv_totp_code(const uint8_t *secret, size_t len, int64_t t, char code_r[7])
{
	if (ensure_oath(NULL) < 0)
		return -1;
	return oath_totp_generate((const char *)secret, len, (time_t)t, TIME_STEP, 0, 6, code_r) == OATH_OK ? 0 : -1;
}

/* Six digits, spaces allowed between them (apps show "123 456"). */
static bool normalise_code(const char *code, char out[7])
{
	size_t n = 0;
	for (const char *c = code ? code : ""; *c; c++) {
		if (*c == ' ')
			continue;
		if (!g_ascii_isdigit(*c) || n == 6)
			return false;
		out[n++] = *c;
	}
	out[n] = 0;
	return n == 6;
}

/* The time step the code belongs to, or -1 when it matches none near now. */
static int64_t code_step(GBytes *secret, const char *code)
{
	char digits[7];
	if (!normalise_code(code, digits) || ensure_oath(NULL) < 0)
		return -1;
	gsize len = 0;
	const char *s = g_bytes_get_data(secret, &len);
	int pos = 0;
	uint64_t counter = 0;
	int rc = oath_totp_validate3(s, len, time(NULL), TIME_STEP, 0, WINDOW, &pos, &counter, digits);
	return rc >= 0 ? (int64_t)counter : -1;
}

static void wrong_code(GError **error)
{
	g_set_error(error, MV_ERROR, MV_ERR_AUTH, "wrong or expired authentication code");
}

/* ---- what the functions do ------------------------------------------------------------ */

typedef struct mfa_change {
	const char *stored;
	const char *code;            /* confirm / verify */
	mv_mfa_state state;          /* initialize */
	GBytes *fresh_pending;       /* enrolment: sealed new secret, or NULL to keep */
	GBytes *pending_r;           /* enrolment: the pending secret in the clear */
} mfa_change;

static int initialize_txn(mv_instance *inst, void *opaque, GError **error)
{
	mfa_change *c = opaque;
	mfa_row r = { .found = true, .state = c->state };
	return write_row(inst, c->stored, &r, error) < 0 ? -1 : mv_archive_new_auth_generation(inst, c->stored, error);
}

static int disable_txn(mv_instance *inst, void *opaque, GError **error)
{
	mfa_change *c = opaque;
	sqlite3_stmt *st;
	if (mv_sql_prepare(mv_archive_db(inst), "DELETE FROM user_mfa WHERE user=?", &st, error) < 0)
		return -1;
	sqlite3_bind_text(st, 1, c->stored, -1, SQLITE_STATIC);
	if (mv_sql_step_done(mv_archive_db(inst), st, "disable MFA", error) < 0)
		return -1;
	return mv_archive_new_auth_generation(inst, c->stored, error);
}

typedef int (*stored_fn)(mv_instance *inst, void *opaque, GError **error);

static int change_user(mv_instance *inst, const char *name, stored_fn fn, mfa_change *c, GError **error)
{
	char *stored = stored_name(inst, name, error);
	if (!stored)
		return -1;
	c->stored = stored;
	int rc = mv_archive_in_transaction(inst, fn, c, error);
	g_free(stored);
	return rc;
}

int mv_mfa_initialize(mv_instance *inst, const char *name, GError **error)
{
	mfa_change c = { .state = MV_MFA_REQUIRED };
	return change_user(inst, name, initialize_txn, &c, error);
}

int mv_mfa_disable(mv_instance *inst, const char *name, GError **error)
{
	mfa_change c = { 0 };
	return change_user(inst, name, disable_txn, &c, error);
}

/* Keeps the pending secret (or stores the fresh one) and opens it. */
static int enrolment_txn(mv_instance *inst, void *opaque, GError **error)
{
	mfa_change *c = opaque;
	mfa_row r;
	if (read_row(inst, c->stored, &r, error) < 0)
		return -1;
	int rc = -1;
	if (!c->fresh_pending && !r.pending) {
		g_set_error(error, MV_ERROR, MV_ERR_STATE, "no MFA enrolment is under way");
		goto out;
	}
	if (c->fresh_pending) {
		if (r.pending)
			g_bytes_unref(r.pending);
		r.pending = g_bytes_ref(c->fresh_pending);
		if (write_row(inst, c->stored, &r, error) < 0)
			goto out;
	}
	c->pending_r = open_secret(inst, r.pending, error);
	if (!c->pending_r)
		goto out;
	rc = 0;
out:
	mfa_row_clear(&r);
	return rc;
}

static char *otpauth_uri(const char *user, const char *secret_b32)
{
	char *label = g_uri_escape_string(user, NULL, FALSE);
	char *uri = g_strdup_printf("otpauth://totp/" ISSUER ":%s?secret=%s&issuer=" ISSUER
	                            "&algorithm=SHA1&digits=6&period=%d", label, secret_b32, TIME_STEP);
	g_free(label);
	return uri;
}

int mv_mfa_enrolment(mv_instance *inst, const char *name, bool fresh, char **secret_r, char **uri_r, GError **error)
{
	if (ensure_oath(error) < 0)
		return -1;
	mfa_change c = { 0 };
	if (fresh) {
		uint8_t secret[SECRET_BYTES];
		randombytes_buf(secret, sizeof secret);
		c.fresh_pending = seal_secret(inst, secret, sizeof secret, error);
		sodium_memzero(secret, sizeof secret);
		if (!c.fresh_pending)
			return -1;
	}
	char *stored = stored_name(inst, name, error);
	c.stored = stored;
	gsize len = 0;
	char *b32 = NULL;
	size_t b32_len = 0;
	int rc = -1;
	if (!stored || mv_archive_in_transaction(inst, enrolment_txn, &c, error) < 0)
		goto out;
	const char *raw = g_bytes_get_data(c.pending_r, &len);
	if (oath_base32_encode(raw, len, &b32, &b32_len) != OATH_OK) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "cannot encode the MFA secret");
		goto out;
	}
	*secret_r = g_strndup(b32, b32_len);
	*uri_r = otpauth_uri(stored, *secret_r);
	sodium_memzero(b32, b32_len);
	free(b32);
	rc = 0;
out:
	wipe_bytes(c.pending_r);
	if (c.fresh_pending)
		g_bytes_unref(c.fresh_pending);
	g_free(stored);
	return rc;
}

static int confirm_txn(mv_instance *inst, void *opaque, GError **error)
{
	mfa_change *c = opaque;
	mfa_row r;
	if (read_row(inst, c->stored, &r, error) < 0)
		return -1;
	int rc = -1;
	GBytes *secret = r.pending ? open_secret(inst, r.pending, error) : NULL;
	int64_t step = secret ? code_step(secret, c->code) : -1;
	if (!r.pending)
		g_set_error(error, MV_ERROR, MV_ERR_STATE, "no MFA enrolment is under way");
	else if (secret && step < 0)
		wrong_code(error);
	else if (secret) {
		if (r.secret)
			g_bytes_unref(r.secret);
		r.secret = r.pending;
		r.pending = NULL;
		r.state = MV_MFA_ACTIVE;
		r.last_step = step;
		rc = write_row(inst, c->stored, &r, error) < 0 ? -1 : mv_archive_new_auth_generation(inst, c->stored, error);
	}
	wipe_bytes(secret);
	mfa_row_clear(&r);
	return rc;
}

int mv_mfa_confirm(mv_instance *inst, const char *name, const char *code, GError **error)
{
	mfa_change c = { .code = code };
	return change_user(inst, name, confirm_txn, &c, error);
}

/* A code is accepted once: its step must be later than the last accepted. */
static int verify_txn(mv_instance *inst, void *opaque, GError **error)
{
	mfa_change *c = opaque;
	mfa_row r;
	if (read_row(inst, c->stored, &r, error) < 0)
		return -1;
	int rc = -1;
	GBytes *secret = r.state == MV_MFA_ACTIVE && r.secret ? open_secret(inst, r.secret, error) : NULL;
	int64_t step = secret ? code_step(secret, c->code) : -1;
	if (r.state != MV_MFA_ACTIVE || !r.secret)
		g_set_error(error, MV_ERROR, MV_ERR_STATE, "MFA is not active for this user");
	else if (secret && (step < 0 || step <= r.last_step))
		wrong_code(error);
	else if (secret) {
		r.last_step = step;
		rc = write_row(inst, c->stored, &r, error);
	}
	wipe_bytes(secret);
	mfa_row_clear(&r);
	return rc;
}

int mv_mfa_verify(mv_instance *inst, const char *name, const char *code, GError **error)
{
	mfa_change c = { .code = code };
	return change_user(inst, name, verify_txn, &c, error);
}
