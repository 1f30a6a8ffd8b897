/* bench/library_floor_zstd: what zstd alone costs the store's records, for
 * bench/library_floor.py.  Reads a pack of messages ([u32 little-endian
 * length][bytes]...) on stdin, trains a dictionary as store/dictionary.c
 * does (fastCover, 64 KB, the first 500 messages' first 16 KB), and
 * compresses every message one by one in each mode, printing one JSON
 * object per line: mode, level, CPU seconds (best of ROUNDS), compressed
 * bytes over raw.  Not mailvault: Debian's libzstd on the same messages. */
#define _POSIX_C_SOURCE 200809L
#define ZDICT_STATIC_LINKING_ONLY
#define ZSTD_STATIC_LINKING_ONLY
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zdict.h>
#include <zstd.h>

#define ROUNDS 3
#define DICT_BYTES (64u * 1024u)
#define TRAIN_MESSAGES 500u
#define SAMPLE_CAP (16u * 1024u)

static double cpu_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int read_pack(char ***msgs_r, size_t **lens_r, size_t *n_r)
{
	size_t cap = 1024, n = 0;
	char **msgs = malloc(cap * sizeof *msgs);
	size_t *lens = malloc(cap * sizeof *lens);
	uint8_t hdr[4];
	while (msgs && lens && fread(hdr, 1, 4, stdin) == 4) {
		size_t len = (size_t)hdr[0] | (size_t)hdr[1] << 8 | (size_t)hdr[2] << 16 | (size_t)hdr[3] << 24;
		if (n == cap) {
			cap *= 2;
			msgs = realloc(msgs, cap * sizeof *msgs);
			lens = realloc(lens, cap * sizeof *lens);
			if (!msgs || !lens)
				return -1;
		}
		msgs[n] = malloc(len ? len : 1);
		if (!msgs[n] || fread(msgs[n], 1, len, stdin) != len)
			return -1;
		lens[n++] = len;
	}
	*msgs_r = msgs;
	*lens_r = lens;
	*n_r = n;
	return msgs && lens ? 0 : -1;
}

static size_t train(char **msgs, const size_t *lens, size_t n, void *dict)
{
	unsigned count = n < TRAIN_MESSAGES ? (unsigned)n : TRAIN_MESSAGES;
	size_t *sizes = malloc(count * sizeof *sizes), total = 0;
	char *samples = malloc((size_t)count * SAMPLE_CAP);
	if (!sizes || !samples)
		return 0;
	for (unsigned i = 0; i < count; i++) {
		sizes[i] = lens[i] < SAMPLE_CAP ? lens[i] : SAMPLE_CAP;
		memcpy(samples + total, msgs[i], sizes[i]);
		total += sizes[i];
	}
	ZDICT_fastCover_params_t p = { .k = 200, .d = 8, .f = 20, .steps = 0, .accel = 1 };
	p.zParams.compressionLevel = 3;
	size_t len = ZDICT_trainFromBuffer_fastCover(dict, DICT_BYTES, samples, sizes, count, p);
	free(sizes);
	free(samples);
	return ZDICT_isError(len) ? 0 : len;
}

enum { PREPARED, NONE, COPIED };

static int run(char **msgs, const size_t *lens, size_t n, size_t raw, const void *dict, size_t dict_len, int level,
               int mode)
{
	static const char *const names[] = { "prepared dictionary", "no dictionary", "dictionary copied" };
	size_t cap = 0;
	for (size_t i = 0; i < n; i++)
		if (ZSTD_compressBound(lens[i]) > cap)
			cap = ZSTD_compressBound(lens[i]);
	char *out = malloc(cap);
	ZSTD_CCtx *c = ZSTD_createCCtx();
	ZSTD_CDict *cd = ZSTD_createCDict(dict, dict_len, level);
	if (!out || !c || !cd)
		return -1;
	double best = 1e30;
	size_t packed = 0;
	for (int r = 0; r < ROUNDS; r++) {
		double t0 = cpu_now();
		packed = 0;
		for (size_t i = 0; i < n; i++) {
			size_t got;
			if (mode == PREPARED) {
				got = ZSTD_compress_usingCDict(c, out, cap, msgs[i], lens[i], cd);
			} else if (mode == NONE) {
				got = ZSTD_compressCCtx(c, out, cap, msgs[i], lens[i], level);
			} else {
				ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters);
				ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
				ZSTD_CCtx_setParameter(c, ZSTD_c_forceAttachDict, ZSTD_dictForceCopy);
				ZSTD_CCtx_refCDict(c, cd);
				got = ZSTD_compress2(c, out, cap, msgs[i], lens[i]);
			}
			if (ZSTD_isError(got)) {
				fprintf(stderr, "library_floor_zstd: %s\n", ZSTD_getErrorName(got));
				return -1;
			}
			packed += got;
		}
		double t = cpu_now() - t0;
		if (t < best)
			best = t;
	}
	printf("{\"library\":\"zstd\",\"mode\":\"%s\",\"level\":%d,\"cpu_s\":%.4f,\"us_per_message\":%.1f,"
	       "\"of_raw\":%.4f}\n", names[mode], level, best, best * 1e6 / (double)n, (double)packed / (double)raw);
	ZSTD_freeCDict(cd);
	ZSTD_freeCCtx(c);
	free(out);
	return 0;
}

int main(void)
{
	char **msgs;
	size_t *lens, n, raw = 0;
	if (read_pack(&msgs, &lens, &n) < 0 || n == 0) {
		fprintf(stderr, "library_floor_zstd: no messages on stdin (a pack of [u32 length][bytes])\n");
		return 1;
	}
	for (size_t i = 0; i < n; i++)
		raw += lens[i];
	static char dict[DICT_BYTES];
	size_t dict_len = train(msgs, lens, n, dict);
	if (!dict_len) {
		fprintf(stderr, "library_floor_zstd: the dictionary could not be trained\n");
		return 1;
	}
	static const int levels[] = { 1, 3 };
	for (size_t l = 0; l < 2; l++)
		for (int mode = PREPARED; mode <= COPIED; mode++)
			if (run(msgs, lens, n, raw, dict, dict_len, levels[l], mode) < 0)
				return 1;
	return 0;
}
