/* sources/profile_details: the machinery of the connectors' detail tables.
 *
 * A connector is a table of details (name, required or optional, allowed
 * values, default, meaning): the one place that both checks a profile's
 * input, with errors naming the property, and publishes it (GetProfileTypes)
 * — so the documentation a caller reads and the check it meets cannot
 * drift apart.  Details are strings on the wire, flags "0"/"1", as
 * MailStore's GetProfiles shows them; a saved profile keeps every detail,
 * defaults filled in, so what GetProfiles shows is what a run does. */
#include "sources/profile_internal.h"

#include <string.h>

const char *const mv_detail_flags[] = { "0", "1", NULL };

const mv_connector *const mv_connectors[] = {
	&mv_connector_filesystem,
	&mv_connector_imap,
	&mv_connector_pop3,
	NULL,
};

const mv_connector *mv_connector_find(const char *name)
{
	for (const mv_connector *const *c = mv_connectors; *c; c++)
		if (strcmp((*c)->name, name) == 0)
			return *c;
	return NULL;
}

char *mv_connector_names(void)
{
	GString *s = g_string_new(NULL);
	for (const mv_connector *const *c = mv_connectors; *c; c++)
		g_string_append_printf(s, "%s%s", s->len ? ", " : "", (*c)->name);
	return g_string_free(s, FALSE);
}

const char *mv_profile_detail(json_t *details, const char *name)
{
	const char *v = json_string_value(json_object_get(details, name));
	return v ? v : "";
}

/* ---- checking a profile's properties ----------------------------------------------------------- */

static bool allowed_value(const mv_detail_spec *d, const char *v)
{
	if (!d->allowed)
		return true;
	for (const char *const *a = d->allowed; *a; a++)
		if (strcmp(*a, v) == 0)
			return true;
	return false;
}

static char *allowed_text(const mv_detail_spec *d)
{
	return g_strjoinv(", ", (char **)d->allowed);
}

static const mv_detail_spec *find_detail(const mv_connector *c, const char *name)
{
	for (const mv_detail_spec *d = c->details; d->name; d++)
		if (strcmp(d->name, name) == 0)
			return d;
	return NULL;
}



json_t *mv_profile_check_details(mv_command_ctx *ctx, const char *fn, const mv_connector *c, const char *owner,
                                 json_t *given, GError **error)
{
	if (!json_is_object(given)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: properties.details must be an object of strings", fn);
		return NULL;
	}
	const char *key;
	json_t *v;
	json_object_foreach(given, key, v) {
		if (!find_detail(c, key)) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.%s: the %s connector has no such detail (see "
			            "GetProfileTypes)", fn, key, c->name);
			return NULL;
		}
		if (!json_is_string(v)) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.%s must be a string", fn, key);
			return NULL;
		}
	}
	json_t *out = json_object();
	for (const mv_detail_spec *d = c->details; d->name; d++) {
		const char *value = json_string_value(json_object_get(given, d->name));
		if (!value && d->required) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.%s is required", fn, d->name);
			goto fail;
		}
		if (!value)
			value = d->fallback ? d->fallback : owner;
		if (d->required && !*value) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.%s must not be empty", fn, d->name);
			goto fail;
		}
		if (!allowed_value(d, value)) {
			char *allowed = allowed_text(d);
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "%s: details.%s: '%s' is not one of %s", fn, d->name, value,
			            allowed);
			g_free(allowed);
			goto fail;
		}
		json_object_set_new(out, d->name, json_string(value));
	}
	if (c->check(ctx, fn, owner, given, out, error) < 0)
		goto fail;
	return out;
fail:
	json_decref(out);
	return NULL;
}

json_t *mv_profile_types_json(void)
{
	json_t *out = json_array();
	for (const mv_connector *const *c = mv_connectors; *c; c++) {
		json_t *details = json_array();
		for (const mv_detail_spec *d = (*c)->details; d->name; d++) {
			json_t *allowed = json_null();
			if (d->allowed) {
				allowed = json_array();
				for (const char *const *a = d->allowed; *a; a++)
					json_array_append_new(allowed, json_string(*a));
			}
			json_array_append_new(details, json_pack("{s:s, s:s, s:b, s:o, s:o, s:s}", "name", d->name, "type",
			                                         "string", "required", d->required, "allowed", allowed,
			                                         "default", d->required ? json_null()
			                                                    : d->fallback ? json_string(d->fallback)
			                                                                  : json_string("(the owner's user name)"),
			                                         "description", d->meaning));
		}
		json_array_append_new(out, json_pack("{s:s, s:s, s:o}", "type", MV_PROFILE_TYPE_ARCHIVING, "connector",
		                                     (*c)->name, "details", details));
	}
	return out;
}
