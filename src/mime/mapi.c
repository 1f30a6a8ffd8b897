/* mapi: the property model both Outlook readers fill and the converter
 * reads (see mapi.h for why there is one model).
 *
 * A property bag is a hash table from full tag to value bytes, copied in;
 * iteration sorts the tags so that whatever walks a bag (the converter, a
 * test) sees the same order every time, whatever order a file listed them
 * in.  Interpretation helpers (strings in either encoding, times, integers)
 * live here so that a reader never decides what a value means. */
#include "mime/internal.h"
#include "mime/mapi.h"

#include <string.h>

struct mv_mapi_props {
	GHashTable *values; /* GUINT_TO_POINTER(tag) -> GBytes * */
};

mv_mapi_props *mv_mapi_props_new(void)
{
	mv_mapi_props *props = g_new0(mv_mapi_props, 1);
	props->values = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, (GDestroyNotify)g_bytes_unref);
	return props;
}

void mv_mapi_props_free(mv_mapi_props *props)
{
	if (!props)
		return;
	g_hash_table_destroy(props->values);
	g_free(props);
}

void mv_mapi_props_set(mv_mapi_props *props, uint32_t tag, const void *value, size_t len)
{
	g_hash_table_replace(props->values, GUINT_TO_POINTER(tag), g_bytes_new(value, len));
}

const uint8_t *mv_mapi_props_get(const mv_mapi_props *props, uint32_t tag, size_t *len_r)
{
	GBytes *b = props ? g_hash_table_lookup(props->values, GUINT_TO_POINTER(tag)) : NULL;
	gsize len = 0;
	const uint8_t *data = b ? g_bytes_get_data(b, &len) : NULL;
	if (len_r)
		*len_r = len;
	/* An empty value still counts as present: a non-NULL pointer. */
	return b ? (data ? data : (const uint8_t *)"") : NULL;
}

size_t mv_mapi_props_count(const mv_mapi_props *props)
{
	return props ? g_hash_table_size(props->values) : 0;
}

static gint cmp_tags(gconstpointer a, gconstpointer b)
{
	guint x = GPOINTER_TO_UINT(*(gconstpointer const *)a), y = GPOINTER_TO_UINT(*(gconstpointer const *)b);
	return x < y ? -1 : x > y;
}

void mv_mapi_props_each(const mv_mapi_props *props,
                        void (*fn)(void *ctx, uint32_t tag, const uint8_t *value, size_t len), void *ctx)
{
	if (!props)
		return;
	GPtrArray *tags = g_ptr_array_sized_new(g_hash_table_size(props->values));
	GHashTableIter it;
	gpointer key;
	g_hash_table_iter_init(&it, props->values);
	while (g_hash_table_iter_next(&it, &key, NULL))
		g_ptr_array_add(tags, key);
	g_ptr_array_sort(tags, cmp_tags);
	for (guint i = 0; i < tags->len; i++) {
		uint32_t tag = GPOINTER_TO_UINT(tags->pdata[i]);
		size_t len = 0;
		const uint8_t *v = mv_mapi_props_get(props, tag, &len);
		fn(ctx, tag, v, len);
	}
	g_ptr_array_unref(tags);
}

/* ---- interpretation ---------------------------------------------------------- */

const char *mv_codepage_charset(uint32_t codepage)
{
	static const struct { uint32_t cp; const char *name; } map[] = {
		{ 65001, "UTF-8" },      { 20127, "US-ASCII" },   { 1200, "UTF-16LE" },   { 1201, "UTF-16BE" },
		{ 437, "CP437" },        { 850, "CP850" },        { 852, "CP852" },       { 866, "CP866" },
		{ 874, "CP874" },        { 932, "SHIFT_JIS" },    { 936, "GBK" },         { 949, "CP949" },
		{ 950, "BIG5" },         { 1250, "WINDOWS-1250" }, { 1251, "WINDOWS-1251" }, { 1252, "WINDOWS-1252" },
		{ 1253, "WINDOWS-1253" }, { 1254, "WINDOWS-1254" }, { 1255, "WINDOWS-1255" }, { 1256, "WINDOWS-1256" },
		{ 1257, "WINDOWS-1257" }, { 1258, "WINDOWS-1258" }, { 20866, "KOI8-R" },   { 21866, "KOI8-U" },
		{ 28591, "ISO-8859-1" }, { 28592, "ISO-8859-2" }, { 28593, "ISO-8859-3" }, { 28594, "ISO-8859-4" },
		{ 28595, "ISO-8859-5" }, { 28596, "ISO-8859-6" }, { 28597, "ISO-8859-7" }, { 28598, "ISO-8859-8" },
		{ 28599, "ISO-8859-9" }, { 28603, "ISO-8859-13" }, { 28605, "ISO-8859-15" }, { 50220, "ISO-2022-JP" },
		{ 50221, "ISO-2022-JP" }, { 50222, "ISO-2022-JP" }, { 51932, "EUC-JP" },   { 51936, "GB2312" },
		{ 51949, "EUC-KR" },     { 52936, "HZ-GB-2312" }, { 54936, "GB18030" },   { 10000, "MACINTOSH" },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(map); i++)
		if (map[i].cp == codepage)
			return map[i].name;
	return "WINDOWS-1252";
}

/* Strings end at their first NUL: files store the terminator, and some
 * writers leave garbage after it. */
static size_t utf16_units(const uint8_t *v, size_t len)
{
	size_t n = len / 2;
	for (size_t i = 0; i < n; i++)
		if (v[2 * i] == 0 && v[2 * i + 1] == 0)
			return i;
	return n;
}

char *mv_mapi_props_string(const mv_mapi_props *props, uint16_t id, uint32_t codepage)
{
	mv_mime_init(); /* the charset tables are GMime's */
	size_t len = 0;
	const uint8_t *v = mv_mapi_props_get(props, MV_TAG(id, MV_PT_UNICODE), &len);
	const char *charset = "UTF-16LE";
	if (v) {
		len = utf16_units(v, len) * 2;
	} else {
		v = mv_mapi_props_get(props, MV_TAG(id, MV_PT_STRING8), &len);
		if (!v)
			return NULL;
		const uint8_t *nul = memchr(v, 0, len);
		if (nul)
			len = (size_t)(nul - v);
		charset = mv_codepage_charset(codepage);
	}
	GString *out = g_string_new(NULL);
	GError *err = NULL;
	if (mv_mime_to_utf8(v, len, charset, true, out, &err) < 0)
		g_clear_error(&err);
	return g_string_free(out, FALSE);
}

static const uint8_t *fixed_value(const mv_mapi_props *props, uint32_t tag, size_t want)
{
	size_t len = 0;
	const uint8_t *v = mv_mapi_props_get(props, tag, &len);
	return v && len >= want ? v : NULL;
}

bool mv_mapi_props_int32(const mv_mapi_props *props, uint16_t id, int32_t *v_r)
{
	const uint8_t *v = fixed_value(props, MV_TAG(id, MV_PT_LONG), 4);
	if (v) {
		*v_r = (int32_t)((uint32_t)v[0] | (uint32_t)v[1] << 8 | (uint32_t)v[2] << 16 | (uint32_t)v[3] << 24);
		return true;
	}
	v = fixed_value(props, MV_TAG(id, MV_PT_SHORT), 2);
	if (v) {
		*v_r = (int16_t)((uint16_t)v[0] | (uint16_t)v[1] << 8);
		return true;
	}
	return false;
}

bool mv_mapi_props_bool(const mv_mapi_props *props, uint16_t id, bool *v_r)
{
	const uint8_t *v = fixed_value(props, MV_TAG(id, MV_PT_BOOLEAN), 1);
	if (!v)
		return false;
	*v_r = v[0] != 0;
	return true;
}

bool mv_mapi_props_time(const mv_mapi_props *props, uint16_t id, int64_t *t_r)
{
	const uint8_t *v = fixed_value(props, MV_TAG(id, MV_PT_SYSTIME), 8);
	if (!v)
		return false;
	uint64_t ft = 0;
	for (int i = 7; i >= 0; i--)
		ft = ft << 8 | v[i];
	/* 100 ns intervals since 1601-01-01; 11644473600 s to 1970. */
	const uint64_t epoch = 116444736000000000ull;
	if (ft < epoch)
		return false;
	*t_r = (int64_t)((ft - epoch) / 10000000ull);
	return true;
}

/* ---- messages ---------------------------------------------------------------------- */

mv_mapi_attachment *mv_mapi_attachment_new(void)
{
	mv_mapi_attachment *a = g_new0(mv_mapi_attachment, 1);
	a->props = mv_mapi_props_new();
	return a;
}

void mv_mapi_attachment_free(mv_mapi_attachment *a)
{
	if (!a)
		return;
	mv_mapi_props_free(a->props);
	mv_mapi_message_free(a->embedded);
	g_free(a);
}

mv_mapi_message *mv_mapi_message_new(void)
{
	mv_mapi_message *m = g_new0(mv_mapi_message, 1);
	m->props = mv_mapi_props_new();
	m->recipients = g_ptr_array_new_with_free_func((GDestroyNotify)mv_mapi_props_free);
	m->attachments = g_ptr_array_new_with_free_func((GDestroyNotify)mv_mapi_attachment_free);
	m->damage = g_ptr_array_new_with_free_func(g_free);
	return m;
}

void mv_mapi_message_free(mv_mapi_message *m)
{
	if (!m)
		return;
	mv_mapi_props_free(m->props);
	g_ptr_array_unref(m->recipients);
	g_ptr_array_unref(m->attachments);
	g_ptr_array_unref(m->damage);
	g_free(m);
}

static bool class_is(const char *cls, const char *prefix)
{
	size_t n = strlen(prefix);
	return g_ascii_strncasecmp(cls, prefix, n) == 0 && (cls[n] == '\0' || cls[n] == '.');
}

mv_mapi_kind mv_mapi_message_kind(const mv_mapi_message *m)
{
	char *cls = mv_mapi_props_string(m->props, MV_PID_MESSAGE_CLASS, m->codepage);
	mv_mapi_kind kind = MV_MAPI_MAIL;
	/* No class at all: treat as mail (old writers, damaged items). */
	if (cls && *cls) {
		if (class_is(cls, "IPM.Appointment") || class_is(cls, "IPM.OLE.CLASS"))
			kind = MV_MAPI_APPOINTMENT;
		else if (class_is(cls, "IPM.Contact"))
			kind = MV_MAPI_CONTACT;
		else if (class_is(cls, "IPM.DistList"))
			kind = MV_MAPI_DISTLIST;
		else if (class_is(cls, "IPM.Task") || class_is(cls, "IPM.TaskRequest"))
			kind = (class_is(cls, "IPM.TaskRequest") ? MV_MAPI_MAIL : MV_MAPI_TASK);
		else if (class_is(cls, "IPM.StickyNote"))
			kind = MV_MAPI_NOTE;
		else if (class_is(cls, "IPM.Activity"))
			kind = MV_MAPI_JOURNAL;
		else if (class_is(cls, "IPM") || class_is(cls, "REPORT") || class_is(cls, "IPM.Note") ||
		         class_is(cls, "IPM.Schedule") || class_is(cls, "IPM.Post") || class_is(cls, "IPM.Outlook") ||
		         class_is(cls, "IPM.Recall") || class_is(cls, "IPM.Sharing"))
			kind = MV_MAPI_MAIL;
		else
			kind = MV_MAPI_OTHER;
	}
	g_free(cls);
	return kind;
}

const char *mv_mapi_kind_name(mv_mapi_kind kind)
{
	switch (kind) {
	case MV_MAPI_MAIL: return "mail";
	case MV_MAPI_APPOINTMENT: return "appointment";
	case MV_MAPI_CONTACT: return "contact";
	case MV_MAPI_TASK: return "task";
	case MV_MAPI_NOTE: return "note";
	case MV_MAPI_DISTLIST: return "distribution list";
	case MV_MAPI_JOURNAL: return "journal entry";
	default: return "item of another kind";
	}
}
