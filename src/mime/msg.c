/* msg: Outlook .msg files (MS-OXMSG) read from memory into the shared
 * property model (mapi.h).
 *
 * A .msg file is a Compound File Binary (MS-CFB), a small FAT file system
 * of storages and streams, and libgsf reads it.  But libgsf trusts the file
 * more than an archive can: it recurses once per directory entry along the
 * sibling links (a crafted list of entries overflows the stack), inserts
 * every entry into a sorted list (quadratic in a storage's size), sizes
 * stack buffers (alloca) and heap tables from header fields, and where a
 * chain is broken it logs a warning or a critical and goes on.  So the
 * layout is checked here first (cfb_open): the header, the FAT as libgsf
 * will load it, and the directory tree walked exactly as libgsf will walk
 * it, with bounds on entries, nesting and work.  Only a file that passes
 * is handed to libgsf.  Each stream's sector chain is then checked just
 * before libgsf opens it (cfb_stream_ok), and its sectors are claimed: no
 * two streams share a sector, so the bytes copied out never add up to more
 * than the input, and a broken stream is damage rather than a log line.
 * A broken structure (header, FAT, directory) is not a message.
 *
 * The MSG layer reads each property bag: fixed-size values from the
 * "__properties_version1.0" stream, variable-size ones from every
 * "__substg1.0_IIIITTTT" stream present (whether or not the property
 * stream lists it: not every writer does), recipients and attachments from
 * their storages in the order of their numbers, embedded messages
 * recursively to MV_MAPI_MAX_DEPTH, an OLE object's storage (attach method
 * 6) copied into a compound file of its own as the attachment's data.
 * Named properties (__nameid_version1.0) are not read: the converter needs
 * none.  Multi-valued properties of a fixed size are kept as the stream
 * holds them (the values back to back); multi-valued strings and binaries
 * (one stream per value) are skipped.  The code page of 8-bit strings is
 * PR_MESSAGE_CODEPAGE, else the Windows code page of PR_INTERNET_CPID's
 * script, else the enclosing message's. */
#include "mime/mapi.h"

#include <gsf/gsf-infile-msole.h>
#include <gsf/gsf-infile.h>
#include <gsf/gsf-input-memory.h>
#include <gsf/gsf-input-proxy.h>
#include <gsf/gsf-input.h>
#include <gsf/gsf-outfile-msole.h>
#include <gsf/gsf-outfile.h>
#include <gsf/gsf-output-memory.h>
#include <gsf/gsf-output.h>
#include <gsf/gsf-utils.h>

#include <stdarg.h>
#include <string.h>

/* ---- the Compound File layout ---------------------------------------------------- */

#define CFB_HEADER      512u
#define CFB_DIRENT      128u
#define CFB_MINI_SHIFT  6u
#define CFB_MINI_CUTOFF 4096u
#define SECT_FREE       0xFFFFFFFFu /* also NOSTREAM, the empty directory link */
#define SECT_END        0xFFFFFFFEu
#define SECT_DIF        0xFFFFFFFCu /* FAT values from here up are markers */

/* Bounds.  FAT entries: libgsf allocas an eighth of the table (in bytes)
 * for every stream it opens; 2^21 entries of 512-byte sectors cover 1 GiB.
 * Mini FAT entries: the same for small streams; 2^20 cover 64 MiB of them.
 * Entries: what a directory may hold (libgsf keeps some 300 bytes each).
 * Depth: libgsf recurses along sibling and child links, about 230 bytes of
 * stack a level, and writers that chain siblings as a list (libgsf's own
 * does) make the depth a storage's size: 4096 levels are under 1 MiB of
 * stack, safe on any thread.  Insert work: the sum over storages of their
 * children's count squared over two, libgsf's sorted inserts and finds by
 * name (about a second of both at this bound; a storage of 11,000 entries
 * fits, enough for the 10,000 recipients mapi.h allows).  Opens: libgsf
 * walks the chain and clears its FAT bitmap for every stream it opens. */
#define MAX_FAT_ENTRIES     (1u << 21)
#define MAX_MINIFAT_ENTRIES (1u << 20)
#define MAX_ENTRIES         (1u << 18)
#define MAX_WALK_DEPTH      4096u
#define MAX_INSERT_WORK     (UINT64_C(1) << 26)
#define MAX_OPENS           (1u << 18)

typedef struct cfb_node {
	char *name;          /* as libgsf names it */
	uint32_t first;      /* first sector (a mini sector when mini) */
	uint32_t size;       /* the low 32 bits, as libgsf reads them */
	bool is_dir;
	bool mini;           /* held in the mini stream: libgsf's rule, size < cutoff */
	uint8_t clsid[16];
	GPtrArray *children; /* cfb_node *, sorted by name; NULL for a stream */
} cfb_node;

typedef struct cfb {
	const uint8_t *data;
	size_t len;
	unsigned shift;        /* sector size 1 << shift */
	size_t header;         /* bytes before sector 0 */
	uint32_t nsect;        /* sectors wholly inside the input */
	uint32_t *fat;
	uint32_t nfat;
	uint8_t *claimed;      /* bit per sector: taken by a table or a chain */
	bool mini_ok;          /* the mini stream and its FAT are readable */
	uint32_t *minifat;
	uint32_t nminifat;
	uint8_t *mini_claimed;
	uint64_t mini_bytes;   /* readable bytes of the mini stream */
	GPtrArray *nodes;      /* cfb_node *, every node (one owner; no recursion to free) */
	cfb_node *root;
	unsigned opens;        /* streams opened so far */
} cfb;

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static const uint8_t *sector_at(const cfb *c, uint32_t s)
{
	return c->data + c->header + ((size_t)s << c->shift);
}

static bool bit_test_set(uint8_t *bits, uint32_t i)
{
	uint8_t mask = (uint8_t)(1u << (i & 7));
	if (bits[i >> 3] & mask)
		return true;
	bits[i >> 3] |= mask;
	return false;
}

static void node_free(gpointer p)
{
	cfb_node *n = p;
	g_free(n->name);
	if (n->children)
		g_ptr_array_unref(n->children);
	g_free(n);
}

static void cfb_clear(cfb *c)
{
	g_free(c->fat);
	g_free(c->claimed);
	g_free(c->minifat);
	g_free(c->mini_claimed);
	if (c->nodes)
		g_ptr_array_unref(c->nodes);
	memset(c, 0, sizeof(*c));
}

/* Follows a chain of the table from first: every link a sector below limit
 * not claimed before, the chain ending with SECT_END.  Claims what it
 * passes (a cycle meets its own claim).  The sectors are appended to out
 * when out is given.  False when the chain is broken. */
static bool chain_walk(const uint32_t *table, uint32_t n, uint32_t limit, uint8_t *claimed, uint32_t first,
                       GArray *out, uint32_t *len_r)
{
	uint32_t len = 0;
	for (uint32_t s = first; s != SECT_END; s = table[s]) {
		if (s >= limit || s >= n || bit_test_set(claimed, s))
			return false;
		if (out)
			g_array_append_val(out, s);
		len++;
	}
	*len_r = len;
	return true;
}

/* One FAT sector's entries into the table, as libgsf reads them: an unused
 * slot in the sector list stands for a sector of free entries; an entry
 * naming a sector beyond the table is an inconsistent file. */
static bool fat_sector(cfb *c, uint32_t s, uint32_t *pos)
{
	uint32_t per = (1u << c->shift) / 4;
	if (*pos > c->nfat - per)
		return false;
	if (s == SECT_FREE) {
		for (uint32_t i = 0; i < per; i++)
			c->fat[(*pos)++] = SECT_FREE;
		return true;
	}
	if (s >= c->nsect)
		return false;
	(void)bit_test_set(c->claimed, s);
	const uint8_t *p = sector_at(c, s);
	for (uint32_t i = 0; i < per; i++) {
		uint32_t e = le32(p + 4 * i);
		if (e >= c->nfat && e < SECT_DIF)
			return false;
		c->fat[(*pos)++] = e;
	}
	return true;
}

/* The FAT: the first 109 sector numbers in the header, the rest in the
 * DIFAT chain — read with libgsf's own loop, so that what it accepts and
 * what it refuses are the same here. */
static bool cfb_load_fat(cfb *c, const uint8_t *h, const char **why)
{
	uint32_t num_bat = le32(h + 0x2C), num_dif = le32(h + 0x48), dif = le32(h + 0x44);
	uint32_t per = (1u << c->shift) / 4;
	*why = "inconsistent allocation table";
	c->nfat = num_bat * per;
	c->fat = g_new0(uint32_t, c->nfat ? c->nfat : 1);
	c->claimed = g_new0(uint8_t, c->nsect / 8 + 1);
	uint32_t pos = 0, last = MIN(num_bat, 109u);
	for (uint32_t i = 0; i < last; i++)
		if (!fat_sector(c, le32(h + 0x4C + 4 * i), &pos))
			return false;
	uint32_t remaining = num_bat - last;
	while (num_dif-- > 0) {
		if (dif >= c->nsect)
			return false;
		(void)bit_test_set(c->claimed, dif);
		const uint8_t *p = sector_at(c, dif);
		uint32_t take;
		if (num_dif == 0) {
			if (per - 1 < remaining)
				return false;
			take = remaining;
		} else {
			if (remaining < per - 1)
				return false;
			remaining -= per - 1;
			take = per - 1;
			dif = le32(p + 4 * (per - 1));
		}
		for (uint32_t i = 0; i < take; i++)
			if (!fat_sector(c, le32(p + 4 * i), &pos))
				return false;
	}
	return true;
}

/* The mini stream (the root entry's chain) and the mini FAT.  A file whose
 * mini stream is broken still opens; its small streams are damage. */
static void cfb_load_mini(cfb *c, const uint8_t *h)
{
	uint32_t start = le32(h + 0x3C), per = (1u << c->shift) / 4, nroot = 0, nsects = 0;
	GArray *sects = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	bool ok = chain_walk(c->fat, c->nfat, c->nsect, c->claimed, c->root->first, NULL, &nroot) &&
	          chain_walk(c->fat, c->nfat, c->nsect, c->claimed, start, sects, &nsects) &&
	          (uint64_t)nsects * per <= MAX_MINIFAT_ENTRIES;
	if (ok) {
		c->nminifat = nsects * per;
		c->minifat = g_new0(uint32_t, c->nminifat ? c->nminifat : 1);
		for (uint32_t i = 0; ok && i < nsects; i++) {
			const uint8_t *p = sector_at(c, g_array_index(sects, uint32_t, i));
			for (uint32_t j = 0; ok && j < per; j++) {
				uint32_t e = le32(p + 4 * j);
				ok = e < c->nminifat || e >= SECT_DIF;
				c->minifat[i * per + j] = e;
			}
		}
		c->mini_claimed = g_new0(uint8_t, c->nminifat / 8 + 1);
		c->mini_bytes = MIN((uint64_t)c->root->size, (uint64_t)nroot << c->shift);
	}
	g_array_unref(sects);
	c->mini_ok = ok;
}

/* An entry's name as libgsf makes it: UTF-16LE, unless the bytes up to the
 * first NUL are valid UTF-8 exactly as long as the stated length (some
 * writers store 8-bit names).  The length field's high byte is zero (it is
 * at most 64), so a NUL is always found within the entry. */
static char *entry_name(const uint8_t *d)
{
	uint16_t name_len = le16(d + 0x40);
	char *name = NULL;
	if (name_len > 0 && name_len <= 64) {
		size_t n = strnlen((const char *)d, 0x42);
		if (g_utf8_validate((const char *)d, (gssize)n, NULL) && n + 1 == name_len) {
			name = g_strndup((const char *)d, n);
		} else {
			gunichar2 units[33];
			unsigned i;
			for (i = 0; i < name_len; i += 2)
				units[i / 2] = le16(d + i);
			units[i / 2] = 0;
			name = g_utf16_to_utf8(units, -1, NULL, NULL, NULL);
		}
	}
	return name ? name : g_strdup("");
}

static gint cmp_node_names(gconstpointer a, gconstpointer b)
{
	const cfb_node *x = *(cfb_node *const *)a, *y = *(cfb_node *const *)b;
	return strcmp(x->name, y->name);
}

typedef struct walk_item {
	uint32_t entry;
	uint32_t depth;
	cfb_node *parent;
} walk_item;

/* One directory entry into a node; false (with *why) when libgsf would
 * refuse it or complain about it. */
static cfb_node *entry_node(const cfb *c, const uint8_t *d, bool is_root, const char **why)
{
	uint8_t type = d[0x42];
	if (type != 1 && type != 2 && type != 5) {
		*why = "damaged directory (unknown entry type)";
		return NULL;
	}
	if (is_root && type != 5) {
		*why = "damaged directory (no root entry)";
		return NULL;
	}
	uint32_t size = le32(d + 0x78);
	if (type == 2 && (size > c->len || le32(d + 0x4C) != SECT_FREE)) {
		*why = "damaged directory (bad stream entry)";
		return NULL;
	}
	cfb_node *n = g_new0(cfb_node, 1);
	n->name = entry_name(d);
	n->first = le32(d + 0x74);
	n->size = size;
	n->is_dir = type != 2;
	n->mini = !is_root && size < CFB_MINI_CUTOFF;
	memcpy(n->clsid, d + 0x50, 16);
	if (n->is_dir)
		n->children = g_ptr_array_new();
	return n;
}

/* The directory tree, walked as libgsf walks it (entry 0, then for each
 * entry its left and right siblings and, for a storage, its child), but
 * with a stack of our own, every entry visited at most once and the
 * recursion depth libgsf will need bounded. */
static bool cfb_load_tree(cfb *c, const uint8_t *h, const char **why)
{
	GArray *dir = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	uint32_t ndirsect = 0;
	*why = "damaged directory";
	if (!chain_walk(c->fat, c->nfat, c->nsect, c->claimed, le32(h + 0x30), dir, &ndirsect) || ndirsect == 0) {
		g_array_unref(dir);
		return false;
	}
	uint32_t per = (1u << c->shift) / CFB_DIRENT;
	uint64_t nent = (uint64_t)ndirsect * per;
	uint8_t *seen = g_new0(uint8_t, nent / 8 + 1);
	GArray *stack = g_array_new(FALSE, FALSE, sizeof(walk_item));
	walk_item first = { 0, 1, NULL };
	g_array_append_val(stack, first);
	uint64_t work = 0;
	bool ok = true;
	c->nodes = g_ptr_array_new_with_free_func(node_free);
	while (ok && stack->len) {
		walk_item it = g_array_index(stack, walk_item, stack->len - 1);
		g_array_set_size(stack, stack->len - 1);
		if (it.entry == SECT_FREE)
			continue;
		if (it.entry >= nent || bit_test_set(seen, it.entry)) {
			*why = "damaged directory (bad link)";
			ok = false;
			break;
		}
		if (it.depth > MAX_WALK_DEPTH || c->nodes->len >= MAX_ENTRIES) {
			*why = it.depth > MAX_WALK_DEPTH ? "directory nested too deep" : "directory too large";
			ok = false;
			break;
		}
		const uint8_t *d = sector_at(c, g_array_index(dir, uint32_t, it.entry / per)) + (it.entry % per) * CFB_DIRENT;
		cfb_node *n = entry_node(c, d, it.parent == NULL, why);
		if (!n) {
			ok = false;
			break;
		}
		g_ptr_array_add(c->nodes, n);
		if (it.parent) {
			work += it.parent->children->len;
			g_ptr_array_add(it.parent->children, n);
		} else {
			c->root = n;
		}
		walk_item more[3] = {
			{ le32(d + 0x44), it.depth + 1, it.parent },
			{ le32(d + 0x48), it.depth + 1, it.parent },
			{ n->is_dir ? le32(d + 0x4C) : SECT_FREE, it.depth + 1, n },
		};
		g_array_append_vals(stack, more, 3);
	}
	if (ok && work > MAX_INSERT_WORK) {
		*why = "directory too large";
		ok = false;
	}
	/* Names are unique within a storage: libgsf finds a child by name. */
	for (guint i = 0; ok && i < c->nodes->len; i++) {
		cfb_node *n = c->nodes->pdata[i];
		if (!n->is_dir)
			continue;
		g_ptr_array_sort(n->children, cmp_node_names);
		for (guint j = 1; ok && j < n->children->len; j++)
			ok = cmp_node_names(&n->children->pdata[j - 1], &n->children->pdata[j]) != 0;
		if (!ok)
			*why = "damaged directory (two entries of one name)";
	}
	g_array_unref(stack);
	g_free(seen);
	g_array_unref(dir);
	return ok;
}

/* The header, as strict as MS-CFB: 512- or 4096-byte sectors, 64-byte mini
 * sectors, the 4096-byte cutoff (libgsf takes all three from the file). */
static bool cfb_open(cfb *c, const uint8_t *data, size_t len, const char **why)
{
	static const uint8_t magic[8] = { 0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1 };
	memset(c, 0, sizeof(*c));
	c->data = data;
	c->len = len;
	*why = "no Compound File signature";
	if (len < CFB_HEADER || memcmp(data, magic, 8) != 0)
		return false;
	*why = "unsupported sector sizes";
	unsigned shift = le16(data + 0x1E);
	if ((shift != 9 && shift != 12) || le16(data + 0x20) != CFB_MINI_SHIFT || le32(data + 0x38) != CFB_MINI_CUTOFF)
		return false;
	c->shift = shift;
	c->header = MAX((size_t)CFB_HEADER, (size_t)1 << shift);
	*why = "truncated";
	if (len < c->header + ((size_t)1 << shift))
		return false;
	size_t nsect = (len - c->header) >> shift;
	c->nsect = nsect > UINT32_MAX ? UINT32_MAX : (uint32_t)nsect;
	/* libgsf's own limits, and ours on the size of its tables. */
	uint64_t gsf_max = (len - CFB_HEADER + ((size_t)1 << shift) - 1) >> shift;
	uint32_t num_bat = le32(data + 0x2C), num_sbat = le32(data + 0x40), sbat_start = le32(data + 0x3C);
	*why = "inconsistent allocation table";
	if (num_bat == 0 || num_bat >= gsf_max || num_sbat >= gsf_max ||
	    (uint64_t)num_bat * ((1u << shift) / 4) > MAX_FAT_ENTRIES ||
	    (num_sbat == 0 && sbat_start != SECT_END && sbat_start != SECT_FREE))
		return false;
	if (!cfb_load_fat(c, data, why) || !cfb_load_tree(c, data, why))
		return false;
	cfb_load_mini(c, data);
	return true;
}

/* Whether libgsf can read this stream cleanly: its chain (mini or not)
 * intact, long enough for its size, in sectors no other stream has; the
 * sectors are claimed.  Empty streams are never opened. */
static bool cfb_stream_ok(cfb *c, const cfb_node *n)
{
	if (n->size == 0)
		return true;
	if (c->opens >= MAX_OPENS)
		return false;
	uint32_t len = 0;
	if (!n->mini) {
		if (!chain_walk(c->fat, c->nfat, c->nsect, c->claimed, n->first, NULL, &len))
			return false;
		if ((uint64_t)len << c->shift < n->size)
			return false;
	} else {
		if (!c->mini_ok)
			return false;
		/* The sectors read must lie in the mini stream's bytes; of the last
		 * one libgsf reads only the part it needs. */
		uint64_t tail = n->size & ((1u << CFB_MINI_SHIFT) - 1);
		uint32_t need = (n->size + (1u << CFB_MINI_SHIFT) - 1) >> CFB_MINI_SHIFT;
		GArray *sects = g_array_new(FALSE, FALSE, sizeof(uint32_t));
		bool ok = chain_walk(c->minifat, c->nminifat, c->nminifat, c->mini_claimed, n->first, sects, &len) &&
		          len >= need;
		for (uint32_t i = 0; ok && i < need; i++) {
			uint64_t s = g_array_index(sects, uint32_t, i);
			uint64_t want = (i + 1 == need && tail) ? tail : 64;
			ok = (s << CFB_MINI_SHIFT) + want <= c->mini_bytes;
		}
		g_array_unref(sects);
		if (!ok)
			return false;
	}
	c->opens++;
	return true;
}

static const cfb_node *node_child(const cfb_node *dir, const char *name)
{
	if (!dir || !dir->children)
		return NULL;
	guint lo = 0, hi = dir->children->len;
	while (lo < hi) {
		guint mid = lo + (hi - lo) / 2;
		const cfb_node *n = dir->children->pdata[mid];
		int r = strcmp(name, n->name);
		if (r == 0)
			return n;
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* ---- libgsf -------------------------------------------------------------------------- */

/* libgsf registers its GTypes lazily and without a lock (GSF_CLASS's
 * get_type), so two threads reading their first .msg at once could both
 * register a type: do it once, first. */
static void gsf_ready(void)
{
	static gsize once = 0;
	if (g_once_init_enter(&once)) {
		gsf_init();
		g_type_ensure(GSF_INPUT_TYPE);
		g_type_ensure(GSF_INFILE_TYPE);
		g_type_ensure(GSF_INPUT_MEMORY_TYPE);
		g_type_ensure(GSF_INFILE_MSOLE_TYPE);
		g_type_ensure(GSF_OUTPUT_TYPE);
		g_type_ensure(GSF_OUTFILE_TYPE);
		g_type_ensure(GSF_OUTPUT_MEMORY_TYPE);
		g_type_ensure(GSF_OUTFILE_MSOLE_TYPE);
		g_type_ensure(gsf_input_proxy_get_type());
		g_once_init_leave(&once, 1);
	}
}

typedef struct reader {
	cfb c;
	size_t budget;   /* bytes still allowed out: never more than the input */
} reader;

typedef enum { READ_OK, READ_EMPTY, READ_FAILED } read_result;

/* A stream's bytes (NULL and 0 for an empty one). */
static read_result read_stream(reader *r, GsfInfile *dir, const cfb_node *n, uint8_t **buf_r, size_t *len_r)
{
	*buf_r = NULL;
	*len_r = 0;
	if (n->is_dir)
		return READ_FAILED;
	if (n->size == 0)
		return READ_EMPTY;
	if (n->size > r->budget || !cfb_stream_ok(&r->c, n))
		return READ_FAILED;
	GsfInput *in = gsf_infile_child_by_name(dir, n->name);
	if (!in)
		return READ_FAILED;
	uint8_t *buf = NULL;
	bool ok = gsf_input_size(in) == (gsf_off_t)n->size && (buf = g_try_malloc(n->size)) != NULL &&
	          gsf_input_read(in, n->size, buf) != NULL;
	g_object_unref(in);
	if (!ok) {
		g_free(buf);
		return READ_FAILED;
	}
	r->budget -= n->size;
	*buf_r = buf;
	*len_r = n->size;
	return READ_OK;
}

static GsfInfile *open_storage(GsfInfile *dir, const cfb_node *n)
{
	GsfInput *in = n->is_dir ? gsf_infile_child_by_name(dir, n->name) : NULL;
	if (in && !GSF_IS_INFILE(in)) {
		g_object_unref(in);
		in = NULL;
	}
	return in ? GSF_INFILE(in) : NULL;
}

/* ---- property bags ------------------------------------------------------------------- */

#define MAX_DAMAGE 1000u

static void add_damage(mv_mapi_message *m, const char *where, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

/* A note of what could not be read, prefixed with where it was; past
 * MAX_DAMAGE notes one last note says there were more. */
static void add_damage(mv_mapi_message *m, const char *where, const char *fmt, ...)
{
	if (m->damage->len > MAX_DAMAGE)
		return;
	if (m->damage->len == MAX_DAMAGE) {
		g_ptr_array_add(m->damage, g_strdup("more damage not listed"));
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	char *text = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_ptr_array_add(m->damage, where && *where ? g_strdup_printf("%s: %s", where, text) : g_strdup(text));
	g_free(text);
}

/* Bytes of a fixed-size value in a property stream entry; 0 for a type kept
 * in a stream or unknown. */
static size_t fixed_size(uint16_t type)
{
	switch (type) {
	case 0x000B: return 1; /* PT_BOOLEAN */
	case 0x0002: return 2; /* PT_SHORT */
	case 0x0003:           /* PT_LONG */
	case 0x0004:           /* PT_FLOAT */
	case 0x000A: return 4; /* PT_ERROR */
	case 0x0005:           /* PT_DOUBLE */
	case 0x0006:           /* PT_CURRENCY */
	case 0x0007:           /* PT_APPTIME */
	case 0x0014:           /* PT_I8 */
	case 0x0040: return 8; /* PT_SYSTIME */
	default: return 0;
	}
}

/* Types read from a "__substg1.0_" stream: strings, binaries, GUIDs and
 * the other variable-size types; multi-valued fixed-size ones (one stream,
 * the values back to back).  Multi-valued strings and binaries (a length
 * stream plus a stream per value) are not. */
static bool stream_type(uint16_t type)
{
	switch (type) {
	case MV_PT_STRING8:
	case MV_PT_UNICODE:
	case MV_PT_BINARY:
	case 0x0048: /* PT_CLSID */
	case 0x00FB: /* PT_SVREID */
	case 0x00FD: /* PT_SRESTRICT */
	case 0x00FE: /* PT_ACTIONS */
	case 0x1048: /* PT_MV_CLSID */
		return true;
	default:
		return (type & 0x1000) && fixed_size(type & 0x0FFF) > 1;
	}
}

/* "prefix" then exactly eight hex digits: their value. */
static bool hex_suffix(const char *name, const char *prefix, uint32_t *v_r)
{
	size_t n = strlen(prefix);
	if (strncmp(name, prefix, n) != 0 || strlen(name + n) != 8)
		return false;
	uint32_t v = 0;
	for (const char *p = name + n; *p; p++) {
		int d = g_ascii_xdigit_value(*p);
		if (d < 0)
			return false;
		v = v << 4 | (uint32_t)d;
	}
	*v_r = v;
	return true;
}

#define PROPS_STREAM  "__properties_version1.0"
#define SUBSTG_PREFIX "__substg1.0_"

/* The fixed-size values of a property stream after its header.  A message
 * header is 32 bytes at the top and 24 in an embedded message, but some
 * writers put the other: whichever leaves whole 16-byte entries wins. */
static void read_fixed(const uint8_t *p, size_t len, size_t header, mv_mapi_props *props, mv_mapi_message *m,
                       const char *where)
{
	size_t other = header == 24 ? 32 : header == 32 ? 24 : header;
	if (len >= 32 && (len - header) % 16 != 0 && (len - other) % 16 == 0)
		header = other;
	if (len < header) {
		add_damage(m, where, "property stream of %zu bytes too short", len);
		return;
	}
	for (size_t off = header; off + 16 <= len; off += 16) {
		uint32_t tag = le32(p + off);
		size_t n = (tag & 0x1000) ? 0 : fixed_size((uint16_t)(tag & 0xFFFF));
		if (n)
			mv_mapi_props_set(props, tag, p + off + 8, n);
	}
}

/* One property bag (a message, recipient or attachment storage) into
 * props.  False with *why when it has no readable property stream. */
static bool read_bag(reader *r, GsfInfile *dir, const cfb_node *node, size_t header, mv_mapi_props *props,
                     mv_mapi_message *m, const char *where, const char **why)
{
	const cfb_node *ps = node_child(node, PROPS_STREAM);
	uint8_t *buf = NULL;
	size_t len = 0;
	if (!ps || ps->is_dir) {
		*why = "no property stream";
		return false;
	}
	if (read_stream(r, dir, ps, &buf, &len) == READ_FAILED) {
		*why = "property stream unreadable";
		return false;
	}
	read_fixed(buf, len, header, props, m, where);
	g_free(buf);
	for (guint i = 0; i < node->children->len; i++) {
		const cfb_node *ch = node->children->pdata[i];
		uint32_t tag = 0;
		if (ch->is_dir || !hex_suffix(ch->name, SUBSTG_PREFIX, &tag) || !stream_type((uint16_t)(tag & 0xFFFF)))
			continue;
		read_result rr = read_stream(r, dir, ch, &buf, &len);
		if (rr == READ_FAILED) {
			add_damage(m, where, "stream %08X unreadable", tag);
			continue;
		}
		mv_mapi_props_set(props, tag, buf, len);
		g_free(buf);
	}
	return true;
}

/* ---- messages ------------------------------------------------------------------------ */

typedef struct numbered {
	uint32_t number;
	const cfb_node *node;
} numbered;

static gint cmp_numbered(gconstpointer a, gconstpointer b)
{
	const numbered *x = a, *y = b;
	if (x->number != y->number)
		return x->number < y->number ? -1 : 1;
	return strcmp(x->node->name, y->node->name);
}

/* The storages named prefix#XXXXXXXX, by number: libgsf lists children in
 * an order of its own. */
static GArray *numbered_storages(const cfb_node *node, const char *prefix)
{
	GArray *out = g_array_new(FALSE, FALSE, sizeof(numbered));
	for (guint i = 0; i < node->children->len; i++) {
		const cfb_node *ch = node->children->pdata[i];
		numbered e = { 0, ch };
		if (ch->is_dir && hex_suffix(ch->name, prefix, &e.number))
			g_array_append_val(out, e);
	}
	g_array_sort(out, cmp_numbered);
	return out;
}

static void read_recipients(reader *r, GsfInfile *dir, const cfb_node *node, mv_mapi_message *m)
{
	GArray *list = numbered_storages(node, "__recip_version1.0_#");
	for (guint i = 0; i < list->len; i++) {
		if (i == MV_MAPI_MAX_RECIPIENTS) {
			add_damage(m, NULL, "%u recipients, only the first %u read", list->len, MV_MAPI_MAX_RECIPIENTS);
			break;
		}
		const cfb_node *rn = g_array_index(list, numbered, i).node;
		char *where = g_strdup_printf("recipient %u", i + 1);
		const char *why = "storage unreadable";
		GsfInfile *rdir = open_storage(dir, rn);
		mv_mapi_props *props = mv_mapi_props_new();
		if (rdir && read_bag(r, rdir, rn, 8, props, m, where, &why)) {
			g_ptr_array_add(m->recipients, props);
		} else {
			add_damage(m, where, "%s", why);
			mv_mapi_props_free(props);
		}
		if (rdir)
			g_object_unref(rdir);
		g_free(where);
	}
	g_array_unref(list);
}

static int read_message(reader *r, GsfInfile *dir, const cfb_node *node, unsigned depth, uint32_t inherit_cp,
                        mv_mapi_message **m_r, const char **why);

/* An OLE object's storage (attach method 6), copied into a compound file
 * of its own: what a program that made the object can open. */
static bool copy_storage(reader *r, GsfInfile *in, const cfb_node *node, GsfOutfile *out, unsigned depth)
{
	if (depth > MV_MAPI_MAX_DEPTH)
		return false;
	gsf_outfile_msole_set_class_id(GSF_OUTFILE_MSOLE(out), node->clsid);
	bool ok = true;
	for (guint i = 0; ok && i < node->children->len; i++) {
		const cfb_node *ch = node->children->pdata[i];
		/* libgsf's writer overruns the name field with a longer name (an
		 * 8-bit name read in can be). */
		glong units = 0;
		gunichar2 *u = g_utf8_to_utf16(ch->name, -1, NULL, &units, NULL);
		bool too_long = !u || units > 31;
		g_free(u);
		if (too_long)
			return false;
		GsfOutput *cout = gsf_outfile_new_child(out, ch->name, ch->is_dir);
		if (!cout)
			return false;
		if (ch->is_dir) {
			GsfInfile *cin = open_storage(in, ch);
			ok = cin && copy_storage(r, cin, ch, GSF_OUTFILE(cout), depth + 1);
			if (cin)
				g_object_unref(cin);
		} else {
			uint8_t *buf = NULL;
			size_t len = 0;
			ok = read_stream(r, in, ch, &buf, &len) != READ_FAILED && (len == 0 || gsf_output_write(cout, len, buf));
			g_free(buf);
		}
		ok = gsf_output_close(cout) && ok;
		g_object_unref(cout);
	}
	return ok;
}

static void read_ole(reader *r, GsfInfile *adir, const cfb_node *obj, mv_mapi_attachment *a, mv_mapi_message *m,
                     const char *where)
{
	GsfInfile *in = open_storage(adir, obj);
	GsfOutput *sink = gsf_output_memory_new();
	GsfOutfile *out = gsf_outfile_msole_new(sink);
	bool ok = in && out && copy_storage(r, in, obj, out, 0);
	if (out) {
		ok = gsf_output_close(GSF_OUTPUT(out)) && ok;
		g_object_unref(out);
	}
	gsf_off_t size = gsf_output_size(sink);
	const guint8 *bytes = gsf_output_memory_get_bytes(GSF_OUTPUT_MEMORY(sink));
	if (ok && bytes && size > 0 && (uint64_t)size <= r->budget) {
		mv_mapi_props_set(a->props, MV_TAG(MV_PID_ATTACH_DATA, MV_PT_BINARY), bytes, (size_t)size);
		r->budget -= (size_t)size;
	} else {
		add_damage(m, where, "OLE object unreadable");
	}
	g_object_unref(sink);
	if (in)
		g_object_unref(in);
}

static void read_embedded(reader *r, GsfInfile *adir, const cfb_node *obj, unsigned depth, mv_mapi_attachment *a,
                          mv_mapi_message *m, const char *where)
{
	if (depth + 1 > MV_MAPI_MAX_DEPTH) {
		add_damage(m, where, "embedded messages nest deeper than %u levels", MV_MAPI_MAX_DEPTH);
		return;
	}
	const char *why = "storage unreadable";
	GsfInfile *in = open_storage(adir, obj);
	if (!in || read_message(r, in, obj, depth + 1, m->codepage, &a->embedded, &why) < 0)
		add_damage(m, where, "embedded message: %s", why);
	if (in)
		g_object_unref(in);
	/* Its damage is the top message's too: that is the list a reader shows. */
	for (guint i = 0; a->embedded && i < a->embedded->damage->len; i++)
		add_damage(m, where, "embedded message: %s", (const char *)a->embedded->damage->pdata[i]);
}

static void read_attachment(reader *r, GsfInfile *dir, const cfb_node *an, unsigned depth, mv_mapi_message *m,
                            const char *where)
{
	const char *why = "storage unreadable";
	GsfInfile *adir = open_storage(dir, an);
	mv_mapi_attachment *a = mv_mapi_attachment_new();
	if (!adir || !read_bag(r, adir, an, 8, a->props, m, where, &why)) {
		add_damage(m, where, "%s", why);
		mv_mapi_attachment_free(a);
		if (adir)
			g_object_unref(adir);
		return;
	}
	int32_t method = 0;
	bool has_method = mv_mapi_props_int32(a->props, MV_PID_ATTACH_METHOD, &method);
	const cfb_node *obj = node_child(an, SUBSTG_PREFIX "3701000D");
	if (obj && obj->is_dir) {
		if (method == MV_ATTACH_EMBEDDED_MSG || (!has_method && node_child(obj, PROPS_STREAM)))
			read_embedded(r, adir, obj, depth, a, m, where);
		else if (method == MV_ATTACH_OLE)
			read_ole(r, adir, obj, a, m, where);
	} else if (method == MV_ATTACH_EMBEDDED_MSG) {
		add_damage(m, where, "embedded message missing");
	}
	g_ptr_array_add(m->attachments, a);
	g_object_unref(adir);
}

static void read_attachments(reader *r, GsfInfile *dir, const cfb_node *node, unsigned depth, mv_mapi_message *m)
{
	GArray *list = numbered_storages(node, "__attach_version1.0_#");
	for (guint i = 0; i < list->len; i++) {
		if (i == MV_MAPI_MAX_ATTACHMENTS) {
			add_damage(m, NULL, "%u attachments, only the first %u read", list->len, MV_MAPI_MAX_ATTACHMENTS);
			break;
		}
		char *where = g_strdup_printf("attachment %u", i + 1);
		read_attachment(r, dir, g_array_index(list, numbered, i).node, depth, m, where);
		g_free(where);
	}
	g_array_unref(list);
}

/* The code page of 8-bit strings when only PR_INTERNET_CPID, the charset
 * of the mail as sent, is known.  Outlook stores 8-bit strings in the
 * Windows code page of the script, never in a 7-bit or EUC transfer
 * encoding: a Japanese message sent as ISO-2022-JP holds CP932 strings. */
static uint32_t string8_codepage(uint32_t internet_cp)
{
	switch (internet_cp) {
	case 50220: case 50221: case 50222: case 51932: case 20932:
		return 932;
	case 50225: case 51949:
		return 949;
	case 50227: case 51936: case 52936: case 20936:
		return 936;
	case 51950:
		return 950;
	case 20127: case 28591:
		return 1252;
	default:
		return internet_cp;
	}
}

/* A message storage: the top one (depth 0, a 32-byte property header) or
 * an embedded one (24 bytes).  -1 with *why when it has no readable
 * property stream. */
static int read_message(reader *r, GsfInfile *dir, const cfb_node *node, unsigned depth, uint32_t inherit_cp,
                        mv_mapi_message **m_r, const char **why)
{
	mv_mapi_message *m = mv_mapi_message_new();
	if (!read_bag(r, dir, node, depth == 0 ? 32 : 24, m->props, m, NULL, why)) {
		mv_mapi_message_free(m);
		return -1;
	}
	int32_t cp = 0;
	if (mv_mapi_props_int32(m->props, MV_PID_MESSAGE_CODEPAGE, &cp) && cp > 0)
		m->codepage = (uint32_t)cp;
	else if (mv_mapi_props_int32(m->props, MV_PID_INTERNET_CPID, &cp) && cp > 0)
		m->codepage = string8_codepage((uint32_t)cp);
	else
		m->codepage = inherit_cp;
	read_recipients(r, dir, node, m);
	read_attachments(r, dir, node, depth, m);
	*m_r = m;
	return 0;
}

/* ---- entry points -------------------------------------------------------------------- */

bool mv_msg_is_cfb(const uint8_t *data, size_t len)
{
	static const uint8_t magic[8] = { 0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1 };
	return data && len >= 8 && memcmp(data, magic, 8) == 0;
}

int mv_msg_read(const uint8_t *data, size_t len, mv_mapi_message **m_r, GError **error)
{
	*m_r = NULL;
	if (len > MV_MAX_MESSAGE_SIZE) {
		g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "Outlook message of %zu bytes exceeds the limit of %u bytes", len,
		            MV_MAX_MESSAGE_SIZE);
		return -1;
	}
	reader r = { .budget = len };
	const char *why = NULL;
	if (!data || !cfb_open(&r.c, data, len, &why)) {
		cfb_clear(&r.c);
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "not an Outlook message: %s", why ? why : "no data");
		return -1;
	}
	gsf_ready();
	GError *gerr = NULL;
	GsfInput *mem = gsf_input_memory_new(data, (gsf_off_t)len, FALSE);
	GsfInfile *root = mem ? gsf_infile_msole_new(mem, &gerr) : NULL;
	if (mem)
		g_object_unref(mem);
	int rc = -1;
	if (!root) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "not an Outlook message: %s",
		            gerr ? gerr->message : "unreadable Compound File");
		g_clear_error(&gerr);
	} else if (read_message(&r, root, r.c.root, 0, 0, m_r, &why) < 0) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "not an Outlook message: %s", why);
	} else {
		rc = 0;
	}
	if (root)
		g_object_unref(root);
	cfb_clear(&r.c);
	return rc;
}
