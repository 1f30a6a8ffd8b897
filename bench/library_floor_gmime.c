/* bench/library_floor_gmime: what GMime alone costs a message, for
 * bench/library_floor.py.  Reads a pack of messages ([u32 little-endian
 * length][bytes]...) on stdin and parses each into a GMimeMessage, as
 * mime/parse.c's first step does (g_mime_parser_construct_message on a
 * memory stream), nothing read from it after; prints one JSON line with
 * the CPU seconds of the best of ROUNDS.  Not mailvault: Debian's GMime on
 * the same messages. */
#define _POSIX_C_SOURCE 200809L
#include <gmime/gmime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ROUNDS 3

static double cpu_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(void)
{
	GPtrArray *msgs = g_ptr_array_new();
	uint8_t hdr[4];
	while (fread(hdr, 1, 4, stdin) == 4) {
		size_t len = (size_t)hdr[0] | (size_t)hdr[1] << 8 | (size_t)hdr[2] << 16 | (size_t)hdr[3] << 24;
		GByteArray *b = g_byte_array_sized_new((guint)len);
		g_byte_array_set_size(b, (guint)len);
		if (fread(b->data, 1, len, stdin) != len) {
			fprintf(stderr, "library_floor_gmime: a short pack\n");
			return 1;
		}
		g_ptr_array_add(msgs, b);
	}
	if (msgs->len == 0) {
		fprintf(stderr, "library_floor_gmime: no messages on stdin (a pack of [u32 length][bytes])\n");
		return 1;
	}
	g_mime_init();
	double best = 1e30;
	guint parsed = 0;
	for (int r = 0; r < ROUNDS; r++) {
		double t0 = cpu_now();
		parsed = 0;
		for (guint i = 0; i < msgs->len; i++) {
			GByteArray *b = msgs->pdata[i];
			GMimeStream *stream = g_mime_stream_mem_new_with_buffer((const char *)b->data, b->len);
			GMimeParser *parser = g_mime_parser_new_with_stream(stream);
			GMimeMessage *m = g_mime_parser_construct_message(parser, NULL);
			if (m) {
				parsed++;
				g_object_unref(m);
			}
			g_object_unref(parser);
			g_object_unref(stream);
		}
		double t = cpu_now() - t0;
		if (t < best)
			best = t;
	}
	printf("{\"library\":\"gmime\",\"step\":\"g_mime_parser_construct_message\",\"parsed\":%u,\"cpu_s\":%.4f,"
	       "\"us_per_message\":%.1f}\n", parsed, best, best * 1e6 / msgs->len);
	g_mime_shutdown();
	return 0;
}
