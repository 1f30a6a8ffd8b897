/* fuzz_mbox: libFuzzer target for the mbox push splitter.
 *
 * The first two bytes choose the chunk sizes, because the splitter's only
 * hard part is carrying line state across feed boundaries: the same input is
 * split whole and in fuzz-chosen chunks, in both modes, and the results must
 * agree.  Unquoting only removes bytes and separators only drop lines, so
 * the messages can never add up to more than the input. */
#include "mime/mime.h"

#include <stdlib.h>
#include <string.h>

typedef struct run {
	GPtrArray *msgs;    /* GBytes * */
	GArray *offsets;    /* uint64_t */
	size_t total;
	size_t input_len;
} run;

static bool collect(void *ctx, const uint8_t *msg, size_t len, uint64_t offset)
{
	run *r = ctx;
	if (offset > r->input_len)
		abort();
	r->total += len;
	g_ptr_array_add(r->msgs, g_bytes_new(msg, len));
	g_array_append_val(r->offsets, offset);
	return true;
}

/* Chunk length i of a feed sequence, from the seed bytes. */
static size_t chunk_len(uint8_t a, uint8_t b, size_t i)
{
	return 1 + ((size_t)a * (i + 1) + (size_t)b * i * i) % 97;
}

static void split(const uint8_t *data, size_t len, bool mboxrd, bool chunked, uint8_t a, uint8_t b, run *r)
{
	r->msgs = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	r->offsets = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	r->total = 0;
	r->input_len = len;
	mv_mbox_splitter *s = mv_mbox_splitter_new(mboxrd, collect, r);
	size_t i = 0, k = 0;
	while (i < len) {
		size_t n = chunked ? chunk_len(a, b, k++) : len;
		if (n > len - i)
			n = len - i;
		GError *err = NULL;
		if (mv_mbox_splitter_feed(s, data + i, n, &err) < 0) {
			if (!err)
				abort();
			g_error_free(err);
		}
		i += n;
	}
	GError *err = NULL;
	if (mv_mbox_splitter_finish(s, &err) < 0)
		g_error_free(err);
	mv_mbox_splitter_free(&s);
}

static void run_clear(run *r)
{
	g_ptr_array_unref(r->msgs);
	g_array_unref(r->offsets);
}

static void check_same(const run *x, const run *y)
{
	if (x->msgs->len != y->msgs->len)
		abort();
	for (guint i = 0; i < x->msgs->len; i++) {
		if (!g_bytes_equal(g_ptr_array_index(x->msgs, i), g_ptr_array_index(y->msgs, i)))
			abort();
		uint64_t ox = g_array_index(x->offsets, uint64_t, i);
		uint64_t oy = g_array_index(y->offsets, uint64_t, i);
		/* Offsets strictly increase: one message per separator line. */
		if (ox != oy || (i > 0 && ox <= g_array_index(x->offsets, uint64_t, i - 1)))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint8_t a = data[0], b = data[1];
	data += 2;
	size -= 2;
	for (int mode = 0; mode < 2; mode++) {
		run whole, chunked;
		split(data, size, mode == 0, false, a, b, &whole);
		split(data, size, mode == 0, true, a, b, &chunked);
		if (whole.total > size || chunked.total > size)
			abort();
		check_same(&whole, &chunked);
		run_clear(&whole);
		run_clear(&chunked);
	}
	/* The separator check must not read past len: give it an exact copy. */
	size_t n = size < 256 ? size : 256;
	char *line = g_memdup2(data, n);
	(void)mv_mbox_is_separator(line, n);
	g_free(line);
	return 0;
}
