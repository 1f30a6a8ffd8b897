/* fuzz_dict.h: the one zstd dictionary the store fuzz targets (fuzz_record,
 * fuzz_journal) compress records with (store/dictionary.c, format 4),
 * trained once per process on fixed mail-like text under a fixed id, so
 * that an input can reach the paths behind a frame that names a
 * dictionary: found, or not. */
#ifndef MV_FUZZ_DICT_H
#define MV_FUZZ_DICT_H

#include "store/dictionary.h"

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_DICT_ID 0x12345678u

static mv_dict *fuzz_dict;
static GBytes *fuzz_dict_bytes;

static void fuzz_dict_init(void)
{
	GString *samples = g_string_new(NULL);
	GArray *sizes = g_array_new(FALSE, FALSE, sizeof(size_t));
	for (int n = 0; n < 200; n++) {
		size_t before = samples->len;
		g_string_append_printf(samples, "From: user%d@example.org\r\nTo: team%d@example.com\r\nSubject: report %d\r\n"
		                       "Message-ID: <%d.%d@example.org>\r\n\r\n", n % 17, n % 5, n, n * 7919, n);
		for (int i = 0; i < 40 + n % 30; i++)
			g_string_append_printf(samples, "word%d ", (i * 31 + n) % 97);
		size_t len = samples->len - before;
		g_array_append_val(sizes, len);
	}
	GError *err = NULL;
	fuzz_dict_bytes = mv_dict_train((const uint8_t *)samples->str, (const size_t *)(void *)sizes->data, sizes->len,
	                                FUZZ_DICT_ID, 1, &err);
	size_t len = 0;
	const uint8_t *data = fuzz_dict_bytes ? g_bytes_get_data(fuzz_dict_bytes, &len) : NULL;
	fuzz_dict = data ? mv_dict_load(FUZZ_DICT_ID, data, len, &err) : NULL;
	if (!fuzz_dict) {
		fprintf(stderr, "fuzz dictionary: %s\n", err ? err->message : "?");
		abort();
	}
	g_string_free(samples, TRUE);
	g_array_free(sizes, TRUE);
}

#endif
