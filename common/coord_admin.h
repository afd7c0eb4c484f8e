/* coord_admin.h - the duchy-wide admin views (coord_admin.c): the actor
 * list, a parallel fan-out of one admin verb to each actor's own
 * ipc://RUN/admin-<name>.sock within a budget, and the JSON assembly of
 * STATUS and of merged arrays (WORKERS, CLAIMS).
 */
#ifndef DY_COORD_ADMIN_H
#define DY_COORD_ADMIN_H

#include "dy.h"

#define DY_COORD_NAME_MAX 64
#define DY_COORD_MAX_ACTORS 32

/* The actors of the duchy: every "name" of RUN/supervisor.json's text
 * (NULL if absent; a "duchy-" prefix dropped), else coordinator,
 * participant, submitter, herald, gateway and claimer-1..claimers.
 * Returns the count (<= max). */
int dy_coord_actor_names(const char *supervisor_json, int claimers, char names[][DY_COORD_NAME_MAX],
                         size_t max);

/* Sends AdminRequest{verb, args, want_json} to each actor at once and
 * collects answers for at most budget_ms.  ret_json[i] (caller frees) is the
 * JSON body, "" for an answer without one (an error code), NULL for no
 * answer (unreachable).  0 or -ENOMEM. */
int dy_coord_fanout(const char *run_dir, char names[][DY_COORD_NAME_MAX], size_t n, int verb,
                    const char *const *args, size_t nargs, int budget_ms, char **ret_json);

/* The raw text of a top-level member of a JSON object ("42", "\"ready\"",
 * "{...}").  0, -ENOENT, -ENOSPC, -EINVAL (not an object). */
int dy_coord_json_member(const char *json, const char *key, char *out, size_t cap);

/* {"duchy": id, "actors": [{"name": "duchy-<n>", "pid", "uptime_seconds",
 * "state"}], "counters": {"<n>": {...}}} from the actors' STATUS answers
 * (NULL = "unreachable", with null pid and uptime). */
int dy_coord_status_json(const char *duchy, char names[][DY_COORD_NAME_MAX], size_t n,
                         char **answers, dy_buf_t *out);

/* Concatenates the JSON arrays among answers into one array. */
int dy_coord_merge_arrays(char **answers, size_t n, dy_buf_t *out);

#endif
