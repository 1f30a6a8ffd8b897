/* archive/secrets: keys for the instance's small secrets (TOTP seeds, the
 * keyed hash of app passwords), derived from the instance key that already
 * keys the audit log's hash chain.
 *
 * That key is random per instance, kept in master.sqlite wrapped by the
 * master key and rewrapped by RenewMasterKey, so deriving from it (libsodium's
 * crypto_kdf, one context per purpose) gives every purpose its own key
 * without a second wrapped key to create, migrate and renew: a master key
 * renewal changes no derived key and no stored secret. */
#include "archive/internal.h"

#include <sodium.h>
#include <string.h>

int mv_archive_secret_key(mv_instance *inst, const char *context, uint64_t id, uint8_t key_r[MV_KEY_BYTES],
                          GError **error)
{
	uint8_t root[MV_KEY_BYTES];
	if (mv_archive_audit_key(inst, root, error) < 0)
		return -1;
	G_STATIC_ASSERT(MV_KEY_BYTES == crypto_kdf_KEYBYTES);
	char ctx[crypto_kdf_CONTEXTBYTES] = { 0 };
	memcpy(ctx, context, MIN(strlen(context), sizeof ctx));
	int rc = crypto_kdf_derive_from_key(key_r, MV_KEY_BYTES, id, ctx, root);
	sodium_memzero(root, sizeof root);
	if (rc != 0) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "cannot derive the %s key", context);
		return -1;
	}
	return 0;
}

GBytes *mv_archive_seal(const uint8_t key[MV_KEY_BYTES], const char *purpose, const uint8_t *plain, size_t len)
{
	size_t n = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
	size_t total = n + len + crypto_aead_xchacha20poly1305_ietf_ABYTES;
	uint8_t *out = g_malloc(total);
	randombytes_buf(out, n);
	unsigned long long clen = 0;
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + n, &clen, plain, len, (const uint8_t *)purpose, strlen(purpose),
	                                           NULL, out, key);
	return g_bytes_new_take(out, n + (size_t)clen);
}

GBytes *mv_archive_open_sealed(const uint8_t key[MV_KEY_BYTES], const char *purpose, GBytes *sealed)
{
	gsize len = 0;
	const uint8_t *in = sealed ? g_bytes_get_data(sealed, &len) : NULL;
	size_t n = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
	if (!in || len < n + crypto_aead_xchacha20poly1305_ietf_ABYTES)
		return NULL;
	size_t plain_max = len - n - crypto_aead_xchacha20poly1305_ietf_ABYTES;
	uint8_t *plain = g_malloc(plain_max ? plain_max : 1);
	unsigned long long plen = 0;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &plen, NULL, in + n, len - n, (const uint8_t *)purpose,
	                                               strlen(purpose), in, key) != 0) {
		sodium_memzero(plain, plain_max);
		g_free(plain);
		return NULL;
	}
	return g_bytes_new_with_free_func(plain, (gsize)plen, g_free, plain);
}

/* ---- sealed secrets kept as settings --------------------------------------------------- */

typedef struct secret_txn {
	const char *name, *context;
	mv_secret_make_fn make;
	void *opaque;
	GBytes *plain;
} secret_txn;

static GBytes *open_setting(mv_instance *inst, const secret_txn *t, const char *hex, GError **error)
{
	size_t len = strlen(hex) / 2;
	uint8_t key[MV_KEY_BYTES];
	uint8_t *raw = g_malloc(len ? len : 1);
	GBytes *plain = NULL;
	if (strlen(hex) % 2 != 0 || !mv_unhex(hex, raw, len)) {
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "the stored %s is not hex", t->name);
		goto out;
	}
	if (mv_archive_secret_key(inst, t->context, 1, key, error) < 0)
		goto out;
	GBytes *sealed = g_bytes_new_take(raw, len);
	raw = NULL;
	plain = mv_archive_open_sealed(key, t->name, sealed);
	sodium_memzero(key, sizeof key);
	g_bytes_unref(sealed);
	if (!plain)
		g_set_error(error, MV_ERROR, MV_ERR_CORRUPT, "the stored %s does not open with this instance's key", t->name);
out:
	g_free(raw);
	return plain;
}

static int seal_setting(mv_instance *inst, const secret_txn *t, GBytes *plain, GError **error)
{
	uint8_t key[MV_KEY_BYTES];
	if (mv_archive_secret_key(inst, t->context, 1, key, error) < 0)
		return -1;
	gsize n = 0;
	const uint8_t *p = g_bytes_get_data(plain, &n);
	GBytes *sealed = mv_archive_seal(key, t->name, p, n);
	sodium_memzero(key, sizeof key);
	gsize slen = 0;
	const uint8_t *s = g_bytes_get_data(sealed, &slen);
	char *hex = mv_hex(s, slen);
	int rc = mv_archive_setting_put(inst, t->name, hex, error);
	g_free(hex);
	g_bytes_unref(sealed);
	return rc;
}

static int secret_in_txn(mv_instance *inst, void *opaque, GError **error)
{
	secret_txn *t = opaque;
	char *hex = NULL;
	if (mv_archive_setting_get(inst, t->name, &hex, error) < 0)
		return -1;
	if (hex) {
		t->plain = open_setting(inst, t, hex, error);
		g_free(hex);
		return t->plain ? 0 : -1;
	}
	t->plain = t->make(t->opaque, error);
	if (!t->plain)
		return -1;
	return seal_setting(inst, t, t->plain, error);
}

GBytes *mv_instance_secret(mv_instance *inst, const char *name, const char *context, mv_secret_make_fn make,
                           void *opaque, GError **error)
{
	secret_txn t = { .name = name, .context = context, .make = make, .opaque = opaque };
	if (mv_archive_in_transaction(inst, secret_in_txn, &t, error) == 0)
		return t.plain;
	if (t.plain) {
		gsize n = 0;
		void *p = (void *)g_bytes_get_data(t.plain, &n);
		if (p)
			sodium_memzero(p, n);
		g_bytes_unref(t.plain);
	}
	return NULL;
}
