/* keys: wrapping of store data keys and the recovery key.
 *
 * A store's random data key never touches disk in clear: it is kept wrapped
 * twice — by the instance master key (for unattended operation) and by a key
 * derived with Argon2id from the recovery key (printed once at init, never
 * stored), so a store carried to another instance opens with the recovery key
 * alone. */
#include "store/store.h"

#include <sodium.h>
#include <string.h>

#define NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define ABYTES crypto_aead_xchacha20poly1305_ietf_ABYTES
#define RECOVERY_RAW_BYTES 20  /* 160 bits, 32 base32 characters */

GByteArray *mv_key_wrap(const uint8_t kek[MV_KEY_BYTES], const uint8_t key[MV_KEY_BYTES])
{
	GByteArray *out = g_byte_array_sized_new(NONCE + MV_KEY_BYTES + ABYTES);
	g_byte_array_set_size(out, NONCE + MV_KEY_BYTES + ABYTES);
	randombytes_buf(out->data, NONCE);
	unsigned long long clen = 0;
	crypto_aead_xchacha20poly1305_ietf_encrypt(out->data + NONCE, &clen, key, MV_KEY_BYTES,
	                                           NULL, 0, NULL, out->data, kek);
	return out;
}

int mv_key_unwrap(const uint8_t kek[MV_KEY_BYTES], const uint8_t *wrapped, size_t len,
                  uint8_t key_r[MV_KEY_BYTES], GError **error)
{
	unsigned long long klen = 0;
	if (len != NONCE + MV_KEY_BYTES + ABYTES ||
	    crypto_aead_xchacha20poly1305_ietf_decrypt(key_r, &klen, NULL, wrapped + NONCE, len - NONCE,
	                                               NULL, 0, wrapped, kek) != 0) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "the key does not unlock this store (wrong key or damaged key record)");
		return -1;
	}
	return 0;
}

int mv_key_from_recovery(const char *recovery_key, const uint8_t salt[16],
                         uint8_t kek_r[MV_KEY_BYTES], GError **error)
{
	char *canon = mv_recovery_key_normalize(recovery_key);
	int rc = crypto_pwhash(kek_r, MV_KEY_BYTES, canon, strlen(canon), salt,
	                       crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE,
	                       crypto_pwhash_ALG_ARGON2ID13);
	sodium_memzero(canon, strlen(canon));
	g_free(canon);
	if (rc != 0) {
		g_set_error(error, MV_ERROR, MV_ERR_IO, "Argon2id key derivation failed (out of memory)");
		return -1;
	}
	return 0;
}

static const char base32[] = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"; /* no I, O, 0, 1 */

char *mv_recovery_key_new(void)
{
	uint8_t raw[RECOVERY_RAW_BYTES];
	randombytes_buf(raw, sizeof raw);
	GString *s = g_string_new(NULL);
	unsigned bits = 0, acc = 0, n = 0;
	for (size_t i = 0; i < sizeof raw; i++) {
		acc = (acc << 8) | raw[i];
		bits += 8;
		while (bits >= 5) {
			if (n && n % 4 == 0)
				g_string_append_c(s, '-');
			g_string_append_c(s, base32[(acc >> (bits - 5)) & 31]);
			bits -= 5;
			n++;
		}
	}
	sodium_memzero(raw, sizeof raw);
	return g_string_free(s, FALSE);
}

char *mv_recovery_key_normalize(const char *typed)
{
	GString *s = g_string_new(NULL);
	unsigned n = 0;
	for (const char *p = typed; *p; p++) {
		char c = g_ascii_toupper(*p);
		if (!strchr(base32, c) || c == '\0')
			continue;
		if (n && n % 4 == 0)
			g_string_append_c(s, '-');
		g_string_append_c(s, c);
		n++;
	}
	return g_string_free(s, FALSE);
}
