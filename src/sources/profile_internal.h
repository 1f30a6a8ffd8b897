/* sources/profile_internal.h: what the profile functions (profiles.c), the
 * detail tables' machinery (profile_details.c) and the connectors
 * (profile_filesystem.c, ...) share inside sources/. */
#ifndef MV_SOURCES_PROFILE_INTERNAL_H
#define MV_SOURCES_PROFILE_INTERNAL_H

#include "sources/profiles.h"
#include "ingest/ingest.h"

#include <jansson.h>

#define MV_PROFILE_TYPE_ARCHIVING "I"

typedef struct mv_detail_spec {
	const char *name;
	bool required;
	const char *const *allowed;   /* NULL: free text */
	const char *fallback;         /* the value an absent optional detail takes; NULL: the owner's name */
	const char *meaning;
} mv_detail_spec;

extern const char *const mv_detail_flags[];   /* "0", "1" */

/* A connector: its table of details, its rules beyond the table (where
 * paths may point, which archive a user may fill, what goes with what), and
 * one run of a profile whose details passed both. */
typedef struct mv_connector {
	const char *name;
	const mv_detail_spec *details;  /* terminated by {NULL} */
	/* details holds every detail, defaults filled in; given is what the
	 * caller gave.  May adjust details (e.g. clear what does not apply). */
	int (*check)(mv_command_ctx *ctx, const char *fn, const char *owner, json_t *given, json_t *details,
	             GError **error);
	json_t *(*run)(mv_command_ctx *ctx, const mv_profile *p, json_t *details, GError **error);
	/* TestProfile: reach the source and say what a run would read,
	 * archiving nothing; NULL when there is nothing to reach. */
	json_t *(*test)(mv_command_ctx *ctx, const mv_profile *p, json_t *details, GError **error);
	/* A detail holding a secret (a password): CreateProfile keeps it as a
	 * Password credential named by the detail "credential"; NULL: none. */
	const char *secret_detail;
} mv_connector;

extern const mv_connector mv_connector_filesystem;
extern const mv_connector mv_connector_imap;
extern const mv_connector mv_connector_pop3;

/* The connectors of this build, NULL-terminated. */
extern const mv_connector *const mv_connectors[];
const mv_connector *mv_connector_find(const char *name);
/* The names, ", "-separated, for errors (g_free()). */
char *mv_connector_names(void);

/* The details given, checked against c's table and c->check, every detail
 * present in the result (defaults filled in). */
json_t *mv_profile_check_details(mv_command_ctx *ctx, const char *fn, const mv_connector *c, const char *owner,
                                 json_t *given, GError **error);
/* GetProfileTypes' answer. */
json_t *mv_profile_types_json(void);
/* A detail's value, "" when absent. */
const char *mv_profile_detail(json_t *details, const char *name);

/* Who is calling. */
bool mv_profile_caller_is_admin(const mv_command_ctx *ctx);
const char *mv_profile_caller(const mv_command_ctx *ctx);
bool mv_profile_same_user(const char *a, const char *b);

/* Refusals and warnings into the log (the first hundred). */
/* The end every run shares, whatever its source: the outcome noted, the
 * ingest flushed (what was committed before a failure is durable and
 * counted), after_flush (may be NULL) told, the summary made, the ingest
 * ended (*ing NULL after) with its audit entry and worker result, the
 * first failure reported; progress at 100 when it succeeded.  rc: the
 * source's own result (*error set when < 0).  NULL when the run failed. */
typedef struct mv_profile_run_end {
	void (*after_flush)(void *opaque, mv_ingest *ing);
	json_t *(*summary)(void *opaque, mv_ingest *ing);
	void *opaque;
} mv_profile_run_end;
json_t *mv_profile_end_run(mv_command_ctx *ctx, mv_ingest **ing, int rc, const mv_profile_run_end *end,
                           GError **error);
void mv_profile_log_items(mv_command_ctx *ctx, const char *what, const GPtrArray *list);
void mv_profile_on_progress(void *opaque, int percent, const char *text);

#endif
