/* Fuzz target: an Exchange journal report as the SMTP journal endpoint
 * reads it (mime/journal_report.c) — whatever the bytes, the parse ends,
 * an original it names lies inside the input (or is its own decoded copy),
 * every recipient has an address, and a flagged error comes with words. */
#include "mime/mime.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	mv_ms_journal_report r;
	bool is_report = mv_ms_journal_report_parse(d, n, &r);
	if (is_report != r.is_journal_report)
		__builtin_trap();
	if (!is_report && (r.flags || r.n_recipients || r.has_original))
		__builtin_trap();
	if ((r.flags & MV_MS_JOURNAL_ERRORS) && !r.problem)
		__builtin_trap();
	if (r.n_recipients > MV_MS_JOURNAL_MAX_RECIPIENTS)
		__builtin_trap();
	for (size_t i = 0; i < r.n_recipients; i++)
		if (!r.recipients[i].address || !*r.recipients[i].address ||
		    r.recipients[i].forwarded != (r.recipients[i].forwarded_from != NULL))
			__builtin_trap();
	size_t len;
	const uint8_t *original = mv_ms_journal_report_original(&r, d, &len);
	if (r.has_original != (original != NULL))
		__builtin_trap();
	if (original && !r.original_decoded && (r.original_offset > n || len > n - r.original_offset))
		__builtin_trap();
	/* Touch every byte: a range past the input shows under ASan. */
	volatile uint8_t sum = 0;
	for (size_t i = 0; i < len; i++)
		sum ^= original[i];
	(void)sum;
	mv_ms_journal_report_clear(&r);
	return 0;
}
