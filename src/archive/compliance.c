/* archive/compliance: the compliance configuration (MailStore's fields:
 * adminEmailPreviewEnabled, legalHoldEnabled, passwordPolicyEnabled,
 * logSuccessfulUserActivities), kept as one JSON setting in master.sqlite
 * and checked by the same rules whether it comes from outside or from the
 * database. */
#include "archive/internal.h"

#include <string.h>

#define MAX_EVENT_TYPES 256
#define MAX_EVENT_TYPE_CHARS 64
#define SETTING_COMPLIANCE "compliance_configuration"

/* ---- compliance configuration ------------------------------------------------------------- */

static const char *const compliance_flags[] = { "adminEmailPreviewEnabled", "legalHoldEnabled",
	                                        "passwordPolicyEnabled", NULL };
#define COMPLIANCE_LIST "logSuccessfulUserActivities"
#define COMPLIANCE_FIELDS "adminEmailPreviewEnabled, legalHoldEnabled, passwordPolicyEnabled, " COMPLIANCE_LIST

static bool *compliance_flag(mv_compliance *c, const char *name)
{
	if (strcmp(name, "adminEmailPreviewEnabled") == 0)
		return &c->admin_email_preview_enabled;
	if (strcmp(name, "legalHoldEnabled") == 0)
		return &c->legal_hold_enabled;
	return &c->password_policy_enabled;
}

static void compliance_defaults(mv_compliance *c)
{
	c->admin_email_preview_enabled = true;
	c->legal_hold_enabled = false;
	c->password_policy_enabled = false;
	c->log_successful_user_activities = g_ptr_array_new_with_free_func(g_free);
}

void mv_compliance_clear(mv_compliance *c)
{
	if (c->log_successful_user_activities)
		g_ptr_array_free(c->log_successful_user_activities, TRUE);
	memset(c, 0, sizeof *c);
}

json_t *mv_compliance_to_json(const mv_compliance *c)
{
	json_t *list = json_array();
	for (guint i = 0; c->log_successful_user_activities && i < c->log_successful_user_activities->len; i++)
		json_array_append_new(list, json_string(c->log_successful_user_activities->pdata[i]));
	return json_pack("{s:b, s:b, s:b, s:o}", "adminEmailPreviewEnabled", c->admin_email_preview_enabled,
	                 "legalHoldEnabled", c->legal_hold_enabled, "passwordPolicyEnabled", c->password_policy_enabled,
	                 COMPLIANCE_LIST, list);
}

static bool event_type_ok(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++)
		if (!g_ascii_isalpha(s[n]))
			return false;
	return n >= 1 && n <= MAX_EVENT_TYPE_CHARS;
}

static bool listed(GPtrArray *list, const char *s)
{
	for (guint i = 0; i < list->len; i++)
		if (strcmp(list->pdata[i], s) == 0)
			return true;
	return false;
}

static int parse_event_types(json_t *arr, GPtrArray *out, GError **error)
{
	if (!json_is_array(arr)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "config." COMPLIANCE_LIST ": expected an array of event "
		            "type names");
		return -1;
	}
	if (json_array_size(arr) > MAX_EVENT_TYPES) {
		g_set_error(error, MV_ERROR, MV_ERR_LIMIT, "config." COMPLIANCE_LIST ": more than %d entries",
		            MAX_EVENT_TYPES);
		return -1;
	}
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v) {
		const char *s = json_string_value(v);
		if (!s || !event_type_ok(s)) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "config." COMPLIANCE_LIST "[%zu]: expected an event "
			            "type name (1 to %d letters, e.g. UserAdd)", i, MAX_EVENT_TYPE_CHARS);
			return -1;
		}
		if (!listed(out, s))
			g_ptr_array_add(out, g_strdup(s));
	}
	return 0;
}

static int check_compliance_fields(json_t *obj, GError **error)
{
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v) {
		if (!g_strv_contains(compliance_flags, key) && strcmp(key, COMPLIANCE_LIST) != 0) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "config.%.100s: unknown field (fields: "
			            COMPLIANCE_FIELDS ")", key);
			return -1;
		}
	}
	for (const char *const *f = compliance_flags; *f; f++) {
		if (!json_is_boolean(json_object_get(obj, *f))) {
			g_set_error(error, MV_ERROR, MV_ERR_INVALID, "config.%s: %s (expected true or false)", *f,
			            json_object_get(obj, *f) ? "wrong type" : "missing");
			return -1;
		}
	}
	if (!json_object_get(obj, COMPLIANCE_LIST)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "config." COMPLIANCE_LIST ": missing (expected an array of "
		            "event type names)");
		return -1;
	}
	return 0;
}

int mv_compliance_from_json(json_t *obj, mv_compliance *c_r, GError **error)
{
	memset(c_r, 0, sizeof *c_r);
	if (!json_is_object(obj)) {
		g_set_error(error, MV_ERROR, MV_ERR_INVALID, "config: expected a JSON object with " COMPLIANCE_FIELDS);
		return -1;
	}
	if (check_compliance_fields(obj, error) < 0)
		return -1;
	compliance_defaults(c_r);
	for (const char *const *f = compliance_flags; *f; f++)
		*compliance_flag(c_r, *f) = json_is_true(json_object_get(obj, *f));
	if (parse_event_types(json_object_get(obj, COMPLIANCE_LIST), c_r->log_successful_user_activities, error) < 0) {
		mv_compliance_clear(c_r);
		return -1;
	}
	return 0;
}

int mv_compliance_get(mv_instance *inst, mv_compliance *c_r, GError **error)
{
	char *text = NULL;
	memset(c_r, 0, sizeof *c_r);
	if (mv_archive_setting_get(inst, SETTING_COMPLIANCE, &text, error) < 0)
		return -1;
	if (!text) {
		compliance_defaults(c_r);
		return 0;
	}
	json_t *obj = json_loads(text, 0, NULL);
	g_free(text);
	int rc = mv_compliance_from_json(obj, c_r, error);
	json_decref(obj);
	if (rc < 0)
		g_prefix_error(error, "master.sqlite: stored compliance configuration: ");
	return rc;
}

int mv_compliance_set(mv_instance *inst, const mv_compliance *c, GError **error)
{
	json_t *obj = mv_compliance_to_json(c);
	mv_compliance check;
	/* the same rules as what comes from outside */
	if (mv_compliance_from_json(obj, &check, error) < 0) {
		json_decref(obj);
		return -1;
	}
	mv_compliance_clear(&check);
	char *text = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	int rc = mv_archive_setting_put(inst, SETTING_COMPLIANCE, text, error);
	free(text);
	return rc;
}

/* ---- legal hold ---------------------------------------------------------------------------- */

int mv_legal_hold_check(mv_instance *inst, const char *action, GError **error)
{
	mv_compliance c;
	GError *err = NULL;
	/* Unreadable settings refuse too: a hold must not lapse because its
	 * record could not be read. */
	if (mv_compliance_get(inst, &c, &err) < 0) {
		g_set_error(error, MV_ERROR, MV_ERR_DENIED, "%s refused: cannot tell whether legal hold is on: %s", action,
		            err->message);
		g_error_free(err);
		return -1;
	}
	bool held = c.legal_hold_enabled;
	mv_compliance_clear(&c);
	if (!held)
		return 0;
	g_set_error(error, MV_ERROR, MV_ERR_DENIED,
	            "%s refused: legal hold is on (compliance configuration legalHoldEnabled), so no archived message "
	            "may be removed or hidden; nothing was changed", action);
	return -1;
}
