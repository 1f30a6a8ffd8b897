/* sources/routing: which users' archives a message belongs in, by its
 * addresses (see routing.h).
 *
 * Shape: the users are one table from the case-folded address to the user,
 * built once and then only read, so any number of threads may route at
 * once.  A message is read by one linear pass over its header block only
 * (bounded to 1 MiB; no fixed buffers: mail is hostile), which sorts the
 * fields we care about into envelope addresses, visible recipients and
 * senders; the visible ones go through GMime's address parser only when the
 * envelope named no known user, so the common case parses no To at all.
 * Every address taken from the message must look like one (UTF-8, an '@',
 * no space or control character, at most 320 bytes) before it can name a
 * folder, so once the templates are checked no message can make routing
 * fail: only the options can. */
#include "sources/routing.h"

#include "mime/mime.h"

#include <gmime/gmime.h>

#include <string.h>

#define MAX_HEADER_BYTES (1024u * 1024u)
/* The longest address users.c accepts; a longer one names nobody. */
#define MAX_ADDRESS_BYTES 320
#define MAX_UNKNOWN_ADDRESSES 100
#define MAX_TEMPLATE_BYTES 1024
/* Groups inside groups are not RFC 5322, but GMime may build them. */
#define MAX_GROUP_DEPTH 4
#define H_EMAIL "{h-email}"
#define U_EMAIL "{u-email}"

/* ---- policies ------------------------------------------------------------ */

static const char *const policy_names[] = {
	[MV_UNKNOWN_CATCHALL] = "catchall",
	[MV_UNKNOWN_IGNORE] = "ignore",
	[MV_UNKNOWN_LEAVE] = "leave",
	[MV_UNKNOWN_REJECT] = "reject",
};

bool mv_unknown_policy_from_name(const char *name, mv_unknown_policy *policy_r)
{
	if (!name)
		return false;
	for (size_t i = 0; i < G_N_ELEMENTS(policy_names); i++) {
		if (strcmp(name, policy_names[i]) == 0) {
			*policy_r = (mv_unknown_policy)i;
			return true;
		}
	}
	return false;
}

/* ---- addresses ----------------------------------------------------------- */

/* The address inside surrounding space and one pair of <>, as a new
 * string; NULL when nothing is left. */
static char *address_bare(const char *address, size_t len)
{
	while (len > 0 && g_ascii_isspace(address[0])) {
		address++;
		len--;
	}
	while (len > 0 && g_ascii_isspace(address[len - 1]))
		len--;
	if (len >= 2 && address[0] == '<' && address[len - 1] == '>') {
		address++;
		len -= 2;
		while (len > 0 && g_ascii_isspace(address[0])) {
			address++;
			len--;
		}
		while (len > 0 && g_ascii_isspace(address[len - 1]))
			len--;
	}
	return len > 0 ? g_strndup(address, len) : NULL;
}

/* Whether a bare address from a message may name a user or a folder:
 * what users.c lets a user's address be, near enough. */
static bool address_plausible(const char *a)
{
	size_t len = strlen(a);
	if (len == 0 || len > MAX_ADDRESS_BYTES || !g_utf8_validate(a, (gssize)len, NULL))
		return false;
	const char *at = strchr(a, '@');
	if (!at || at == a || at[1] == '\0')
		return false;
	for (const char *p = a; *p; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);
		if (g_unichar_iscntrl(c) || g_unichar_isspace(c) || c == '<' || c == '>')
			return false;
	}
	return true;
}

/* The key addresses compare by; NULL for no address. */
static char *address_key(const char *address)
{
	char *bare = address ? address_bare(address, strlen(address)) : NULL;
	if (!bare)
		return NULL;
	char *key = g_utf8_validate(bare, -1, NULL) ? g_utf8_casefold(bare, -1) : g_ascii_strdown(bare, -1);
	g_free(bare);
	return key;
}

/* An address as a template puts it: lower case, and no '/' that would
 * make a folder level of part of it. */
static char *address_for_folder(const char *address)
{
	char *s = g_utf8_validate(address, -1, NULL) ? g_utf8_strdown(address, -1) : g_ascii_strdown(address, -1);
	g_strdelimit(s, "/", '_');
	return s;
}

/* ---- the users known by address ------------------------------------------ */

typedef struct routing_user {
	char *name;
	char *primary;     /* as configured */
} routing_user;

struct mv_routing {
	GPtrArray *users;          /* routing_user* */
	GHashTable *by_address;    /* address key (owned) -> routing_user* (borrowed from users) */
};

static void routing_user_free(routing_user *u)
{
	g_free(u->name);
	g_free(u->primary);
	g_free(u);
}

static mv_routing *routing_new_empty(void)
{
	mv_routing *r = g_new0(mv_routing, 1);
	r->users = g_ptr_array_new_with_free_func((GDestroyNotify)routing_user_free);
	r->by_address = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	return r;
}

/* Adds a user by its addresses; the first usable one is the primary.  An
 * address two users have stays the first one's (users come sorted by
 * name, so the choice does not change between runs). */
static void routing_add_user(mv_routing *r, const char *name, const char *const *emails, size_t n)
{
	routing_user *u = NULL;
	for (size_t i = 0; i < n; i++) {
		char *key = address_key(emails[i]);
		if (!key)
			continue;
		if (!u) {
			u = g_new0(routing_user, 1);
			u->name = g_strdup(name);
			char *bare = address_bare(emails[i], strlen(emails[i]));
			u->primary = bare;
			g_ptr_array_add(r->users, u);
		}
		if (g_hash_table_contains(r->by_address, key)) {
			const routing_user *other = g_hash_table_lookup(r->by_address, key);
			if (other != u)
				mv_log_warn("routing: the address %s of user %s is also user %s's; it routes to %s", key, name,
				            other->name, other->name);
			g_free(key);
			continue;
		}
		g_hash_table_insert(r->by_address, key, u);
	}
}

mv_routing *mv_routing_new(const mv_routing_user *users, size_t n)
{
	mv_routing *r = routing_new_empty();
	for (size_t i = 0; i < n; i++) {
		if (!users[i].name || !users[i].emails)
			continue;
		size_t count = 0;
		while (users[i].emails[count])
			count++;
		routing_add_user(r, users[i].name, users[i].emails, count);
	}
	return r;
}

mv_routing *mv_routing_load(mv_instance *inst, GError **error)
{
	GPtrArray *list = mv_users_list(inst, error);
	if (!list)
		return NULL;
	mv_routing *r = routing_new_empty();
	for (guint i = 0; i < list->len; i++) {
		const mv_user *u = list->pdata[i];
		routing_add_user(r, u->name, (const char *const *)u->email_addresses->pdata, u->email_addresses->len);
	}
	g_ptr_array_unref(list);
	return r;
}

void mv_routing_free(mv_routing *r)
{
	if (!r)
		return;
	g_hash_table_destroy(r->by_address);
	g_ptr_array_unref(r->users);
	g_free(r);
}

size_t mv_routing_user_count(const mv_routing *r)
{
	return r ? r->users->len : 0;
}

static const routing_user *user_of(const mv_routing *r, const char *address)
{
	char *key = r ? address_key(address) : NULL;
	if (!key)
		return NULL;
	const routing_user *u = g_hash_table_lookup(r->by_address, key);
	g_free(key);
	return u;
}

const char *mv_routing_user_of(const mv_routing *r, const char *address)
{
	const routing_user *u = user_of(r, address);
	return u ? u->name : NULL;
}

/* ---- the header block ---------------------------------------------------- */

/* The addresses a header block gives, sorted by what they mean. */
typedef struct header_addresses {
	GPtrArray *envelope;  /* char*: bare addresses of Delivered-To and its kin, Received's "for" */
	GPtrArray *visible;   /* char*: values of To, Cc, Bcc, unparsed */
	GPtrArray *from;      /* char*: values of From, unparsed */
} header_addresses;

typedef enum {
	FIELD_OTHER,
	FIELD_ENVELOPE,
	FIELD_RECEIVED,
	FIELD_VISIBLE,
	FIELD_FROM,
} field_kind;

static const struct {
	const char *name;
	field_kind kind;
} field_names[] = {
	{ "Delivered-To", FIELD_ENVELOPE },
	{ "X-Original-To", FIELD_ENVELOPE },
	{ "Envelope-To", FIELD_ENVELOPE },
	{ "X-Envelope-To", FIELD_ENVELOPE },
	{ "Received", FIELD_RECEIVED },
	{ "To", FIELD_VISIBLE },
	{ "Cc", FIELD_VISIBLE },
	{ "Bcc", FIELD_VISIBLE },
	{ "From", FIELD_FROM },
};

static field_kind field_kind_of(const char *name, size_t len)
{
	for (size_t i = 0; i < G_N_ELEMENTS(field_names); i++)
		if (strlen(field_names[i].name) == len && g_ascii_strncasecmp(name, field_names[i].name, len) == 0)
			return field_names[i].kind;
	return FIELD_OTHER;
}

static void add_plausible(GPtrArray *to, const char *text, size_t len)
{
	char *bare = address_bare(text, len);
	if (bare && address_plausible(bare))
		g_ptr_array_add(to, bare);
	else
		g_free(bare);
}

/* Delivered-To and its kin: one or more addresses, bare or in <>, by
 * commas. */
static void take_envelope_value(header_addresses *h, const char *value)
{
	const char *p = value;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		const char *lt = memchr(p, '<', n);
		if (lt) {
			const char *gt = memchr(lt, '>', n - (size_t)(lt - p));
			size_t inner = gt ? (size_t)(gt - lt - 1) : n - (size_t)(lt - p) - 1;
			add_plausible(h->envelope, lt + 1, inner);
		} else {
			add_plausible(h->envelope, p, n);
		}
		if (!comma)
			return;
		p = comma + 1;
	}
}

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* Received: "... for <a@b>; date" or "... for a@b; date".  Every word
 * "for" is tried until one is followed by an address, since "for" may
 * stand in a comment too; the address is looked for only within the
 * longest an address can be, so no input makes this quadratic. */
static void take_received_value(header_addresses *h, const char *value)
{
	size_t len = strlen(value);
	for (size_t i = 0; i + 3 < len; i++) {
		if (g_ascii_strncasecmp(value + i, "for", 3) != 0 || (i > 0 && !g_ascii_isspace(value[i - 1])) ||
		    !g_ascii_isspace(value[i + 3]))
			continue;
		size_t a = i + 3;
		while (a < len && g_ascii_isspace(value[a]))
			a++;
		size_t window = MIN(len - a, (size_t)MAX_ADDRESS_BYTES + 2);
		const char *start = value + a;
		size_t n = 0;
		if (window > 0 && start[0] == '<') {
			const char *gt = memchr(start, '>', window);
			if (!gt)
				continue;
			start++;
			n = (size_t)(gt - start);
		} else {
			while (n < window && !g_ascii_isspace(start[n]) && start[n] != ';')
				n++;
		}
		size_t before = h->envelope->len;
		add_plausible(h->envelope, start, n);
		if (h->envelope->len > before)
			return;
	}
}

static void take_field(header_addresses *h, field_kind kind, GString *value)
{
	switch (kind) {
	case FIELD_ENVELOPE:
		take_envelope_value(h, value->str);
		break;
	case FIELD_RECEIVED:
		take_received_value(h, value->str);
		break;
	case FIELD_VISIBLE:
		g_ptr_array_add(h->visible, g_strdup(value->str));
		break;
	case FIELD_FROM:
		g_ptr_array_add(h->from, g_strdup(value->str));
		break;
	case FIELD_OTHER:
		break;
	}
}

/* Appends a piece of a field's value; a NUL byte would end the C string
 * early and hide the rest, so it becomes a space. */
static void append_value(GString *value, const uint8_t *p, size_t n)
{
	size_t start = value->len;
	g_string_append_len(value, (const char *)p, (gssize)n);
	for (size_t i = start; i < value->len; i++)
		if (value->str[i] == '\0')
			value->str[i] = ' ';
}

/* One pass over the header block: up to the first empty line, or all of
 * the first MAX_HEADER_BYTES when there is none.  A line starting with
 * space or tab continues the field before it (unfolding drops only the
 * line break).  Lines that are no field ("From " of mbox, garbage) end the
 * field before them and are skipped. */
static void header_scan(const uint8_t *data, size_t len, header_addresses *h)
{
	size_t limit = MIN(len, (size_t)MAX_HEADER_BYTES);
	GString *value = g_string_new(NULL);
	field_kind kind = FIELD_OTHER;
	size_t pos = 0;
	while (pos < limit) {
		const uint8_t *eol = memchr(data + pos, '\n', limit - pos);
		size_t end = eol ? (size_t)(eol - data) : limit;
		size_t next = eol ? end + 1 : limit;
		const uint8_t *line = data + pos;
		size_t n = end - pos;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		pos = next;
		if (n == 0)
			break;
		if (is_wsp((char)line[0])) {
			if (kind != FIELD_OTHER)
				append_value(value, line, n);
			continue;
		}
		take_field(h, kind, value);
		kind = FIELD_OTHER;
		const uint8_t *colon = memchr(line, ':', n);
		if (!colon)
			continue;
		size_t name_len = (size_t)(colon - line);
		while (name_len > 0 && is_wsp((char)line[name_len - 1]))
			name_len--;
		kind = field_kind_of((const char *)line, name_len);
		if (kind == FIELD_OTHER)
			continue;
		g_string_truncate(value, 0);
		append_value(value, colon + 1, n - (size_t)(colon + 1 - line));
	}
	take_field(h, kind, value);
	g_string_free(value, TRUE);
}

static void header_addresses_init(header_addresses *h)
{
	h->envelope = g_ptr_array_new_with_free_func(g_free);
	h->visible = g_ptr_array_new_with_free_func(g_free);
	h->from = g_ptr_array_new_with_free_func(g_free);
}

static void header_addresses_clear(header_addresses *h)
{
	g_ptr_array_unref(h->envelope);
	g_ptr_array_unref(h->visible);
	g_ptr_array_unref(h->from);
}

/* The mailboxes of an address list, groups walked into, in order. */
static void collect_mailboxes(InternetAddressList *list, GPtrArray *out, int depth)
{
	if (!list || depth > MAX_GROUP_DEPTH)
		return;
	int n = internet_address_list_length(list);
	for (int i = 0; i < n; i++) {
		InternetAddress *ia = internet_address_list_get_address(list, i);
		if (INTERNET_ADDRESS_IS_GROUP(ia)) {
			collect_mailboxes(internet_address_group_get_members(INTERNET_ADDRESS_GROUP(ia)), out, depth + 1);
			continue;
		}
		if (!INTERNET_ADDRESS_IS_MAILBOX(ia))
			continue;
		const char *addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
		if (addr)
			add_plausible(out, addr, strlen(addr));
	}
}

/* Bare addresses of header values (To, Cc, Bcc, From) through GMime's
 * address parser. */
static GPtrArray *parse_address_values(const GPtrArray *values)
{
	GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
	if (values->len == 0)
		return out;
	mv_mime_init();
	GMimeParserOptions *options = g_mime_parser_options_new();
	for (guint i = 0; i < values->len; i++) {
		char *bounded = g_strdup(values->pdata[i]);
		mv_mime_bound_value_colons(bounded);
		InternetAddressList *list = internet_address_list_parse(options, bounded);
		g_free(bounded);
		if (!list)
			continue;
		collect_mailboxes(list, out, 0);
		g_object_unref(list);
	}
	g_mime_parser_options_free(options);
	return out;
}

/* ---- folder templates ------------------------------------------------------ */

static char *template_fill(const char *tmpl, const char *h_email, const char *u_email)
{
	GString *s = g_string_new(NULL);
	for (const char *p = tmpl; *p;) {
		if (g_str_has_prefix(p, H_EMAIL)) {
			g_string_append(s, h_email);
			p += strlen(H_EMAIL);
		} else if (g_str_has_prefix(p, U_EMAIL)) {
			g_string_append(s, u_email);
			p += strlen(U_EMAIL);
		} else {
			g_string_append_c(s, *p++);
		}
	}
	return g_string_free(s, FALSE);
}

/* What makes a folder path unusable: the rule of archive names
 * (base/names.c) for each level, but for its length. */
static const char *folder_fault(const char *path)
{
	if (!*path)
		return "it is empty";
	if (!g_utf8_validate(path, -1, NULL))
		return "it is not valid UTF-8";
	if (path[0] == '/' || g_str_has_suffix(path, "/") || strstr(path, "//"))
		return "it has an empty level (a leading, trailing or doubled '/')";
	for (const char *p = path; *p; p = g_utf8_next_char(p))
		if (g_unichar_iscntrl(g_utf8_get_char(p)))
			return "it holds a control character";
	return NULL;
}

/* A "{name}" that is no placeholder we know: a typo that would otherwise
 * become a folder of that name. */
static const char *unknown_placeholder(const char *tmpl, size_t *len_r)
{
	for (const char *p = strchr(tmpl, '{'); p; p = strchr(p + 1, '{')) {
		if (g_str_has_prefix(p, H_EMAIL) || g_str_has_prefix(p, U_EMAIL))
			continue;
		size_t n = 1;
		while (g_ascii_isalnum(p[n]) || p[n] == '-' || p[n] == '_')
			n++;
		if (n > 1 && p[n] == '}') {
			*len_r = n + 1;
			return p;
		}
	}
	return NULL;
}

static int template_check(const char *what, const char *tmpl, GError **error)
{
	if (!tmpl) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s template: it is missing", what);
		return -1;
	}
	const char *fault = NULL;
	size_t placeholder_len = 0;
	const char *placeholder = NULL;
	char *filled = NULL;
	if (strlen(tmpl) > MAX_TEMPLATE_BYTES)
		fault = "it is longer than " G_STRINGIFY(MAX_TEMPLATE_BYTES) " bytes";
	else if ((placeholder = unknown_placeholder(tmpl, &placeholder_len)) != NULL)
		fault = "it holds a placeholder other than " H_EMAIL " and " U_EMAIL;
	else {
		filled = template_fill(tmpl, "user@example.org", "user@example.org");
		fault = folder_fault(filled);
	}
	g_free(filled);
	if (!fault)
		return 0;
	char *shown = mv_utf8_sanitize(tmpl, -1);
	if (placeholder)
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s template '%.300s' is not a folder path: %s (%.*s)", what,
		            shown, fault, (int)MIN(placeholder_len, 64), placeholder);
	else
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s template '%.300s' is not a folder path: %s", what, shown,
		            fault);
	g_free(shown);
	return -1;
}

static int options_check(const mv_route_options *o, GError **error)
{
	if (template_check("folder", o->folder, error) < 0)
		return -1;
	if (o->sent_folder && template_check("sent folder", o->sent_folder, error) < 0)
		return -1;
	if ((unsigned)o->unknown >= G_N_ELEMENTS(policy_names)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "unknown-address policy %d does not exist", (int)o->unknown);
		return -1;
	}
	if (o->unknown != MV_UNKNOWN_CATCHALL)
		return 0;
	if (!o->catchall_archive) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID,
		            "the unknown-address policy catchall needs a catchall archive, and none is set");
		return -1;
	}
	GError *bad = NULL;
	if (mv_archive_name_check(o->catchall_archive, &bad) < 0) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "catchall archive: %s", bad->message);
		g_error_free(bad);
		return -1;
	}
	return 0;
}

/* ---- one message ----------------------------------------------------------- */

typedef struct routing_run {
	const mv_routing *r;
	const mv_route_options *o;
	mv_route *route;
	GHashTable *archives;      /* user names that have their target (borrowed) */
	GHashTable *unknown_keys;  /* address keys of route->unknown_addresses (owned) */
	char *first_unknown_recipient;
} routing_run;

static void target_free(mv_route_target *t)
{
	g_free(t->archive);
	g_free(t->folder);
	g_free(t->address);
	g_free(t);
}

static void add_target(routing_run *run, const char *archive, const char *tmpl, const char *h_email,
                       const char *u_email, const char *address, bool as_sender)
{
	char *h = address_for_folder(h_email);
	char *u = address_for_folder(u_email);
	mv_route_target *t = g_new0(mv_route_target, 1);
	t->archive = g_strdup(archive);
	t->folder = template_fill(tmpl, h, u);
	t->address = g_strdup(address);
	t->as_sender = as_sender;
	g_ptr_array_add(run->route->targets, t);
	g_free(h);
	g_free(u);
}

static void note_unknown(routing_run *run, const char *address)
{
	char *key = address_key(address);
	if (!key || g_hash_table_size(run->unknown_keys) >= MAX_UNKNOWN_ADDRESSES ||
	    g_hash_table_contains(run->unknown_keys, key)) {
		g_free(key);
		return;
	}
	g_hash_table_add(run->unknown_keys, key);
	g_ptr_array_add(run->route->unknown_addresses, g_strdup(address));
}

/* One address of the message: its user's target if it has none yet.
 * True when the address is a known user's. */
static bool consider(routing_run *run, const char *address, bool as_sender)
{
	const routing_user *u = user_of(run->r, address);
	if (!u) {
		note_unknown(run, address);
		if (!as_sender && !run->first_unknown_recipient)
			run->first_unknown_recipient = g_strdup(address);
		return false;
	}
	if (g_hash_table_contains(run->archives, u->name))
		return true;
	g_hash_table_add(run->archives, u->name);
	const char *tmpl = as_sender && run->o->sent_folder ? run->o->sent_folder : run->o->folder;
	add_target(run, u->name, tmpl, address, u->primary, address, as_sender);
	return true;
}

static bool consider_all(routing_run *run, const GPtrArray *addresses, bool as_sender)
{
	bool known = false;
	for (guint i = 0; i < addresses->len; i++)
		known |= consider(run, addresses->pdata[i], as_sender);
	return known;
}

/* The caller's SMTP envelope, bare and plausible, or NULL when it has none. */
static GPtrArray *caller_envelope(const char *const *envelope)
{
	if (!envelope || !envelope[0])
		return NULL;
	GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
	for (size_t i = 0; envelope[i]; i++)
		add_plausible(out, envelope[i], strlen(envelope[i]));
	return out;
}

static void route_unknown(routing_run *run)
{
	run->route->unknown = true;
	if (run->o->unknown != MV_UNKNOWN_CATCHALL)
		return;
	const char *address = run->first_unknown_recipient;
	const char *h = address ? address : "unknown";
	add_target(run, run->o->catchall_archive, run->o->folder, h, h, address ? address : "", false);
}

void mv_route_clear(mv_route *route)
{
	if (!route)
		return;
	if (route->targets)
		g_ptr_array_unref(route->targets);
	if (route->unknown_addresses)
		g_ptr_array_unref(route->unknown_addresses);
	memset(route, 0, sizeof *route);
}

int mv_route_message(const mv_routing *r, const mv_route_options *o, const char *const *envelope, const char *sender,
                     const uint8_t *data, size_t len, mv_route *route, GError **error)
{
	memset(route, 0, sizeof *route);
	if (options_check(o, error) < 0)
		return -1;
	route->targets = g_ptr_array_new_with_free_func((GDestroyNotify)target_free);
	route->unknown_addresses = g_ptr_array_new_with_free_func(g_free);
	routing_run run = {
		.r = r,
		.o = o,
		.route = route,
		.archives = g_hash_table_new(g_str_hash, g_str_equal),
		.unknown_keys = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL),
	};
	header_addresses h;
	header_addresses_init(&h);
	header_scan(data, data ? len : 0, &h);

	/* The SMTP envelope first; when it names no user (Postfix always_bcc's
	 * copy is addressed to the archive itself), the envelope-like
	 * headers, and only then the visible ones. */
	GPtrArray *given = caller_envelope(envelope);
	bool known = given && consider_all(&run, given, false);
	if (given)
		g_ptr_array_unref(given);
	if (!known)
		known = consider_all(&run, h.envelope, false);
	if (!known) {
		GPtrArray *visible = parse_address_values(h.visible);
		consider_all(&run, visible, false);
		g_ptr_array_unref(visible);
	}
	GPtrArray *senders = parse_address_values(h.from);
	if (sender)
		add_plausible(senders, sender, strlen(sender));
	consider_all(&run, senders, true);
	g_ptr_array_unref(senders);

	if (route->targets->len == 0)
		route_unknown(&run);

	header_addresses_clear(&h);
	g_hash_table_destroy(run.archives);
	g_hash_table_destroy(run.unknown_keys);
	g_free(run.first_unknown_recipient);
	return 0;
}
