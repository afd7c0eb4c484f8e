/* actor.h - the skeleton every duchy actor runs (STYLE.md rules 1-8, 28-30):
 * common flags, config, logging, a czmq zloop with one housekeeping timer,
 * the actor's own admin socket with the built-in verbs, the readiness line,
 * and SIGTERM draining.  An actor's main() reads:
 *
 *   dy_actor_t *a = dy_actor_new("claimer", argc, argv, &ops);  // exits 64/100 itself
 *   ... open sockets with dy_actor_loop(a), read dy_actor_config(a) ...
 *   dy_actor_ready(a);            // "READY name=claimer pid=... version=..." on --ready-fd
 *   rc = dy_actor_run(a);         // until SIGTERM and the drain are done
 *   dy_actor_destroy(&a);
 *   return rc;
 *
 * Common flags: --config FILE (required), --check-config (print the
 * normalised config, exit 0 or 100), --ready-fd N, --instance N (for
 * claimers), --verbose, --help.  A usage error exits 64, a bad config 100.
 */
#ifndef DY_ACTOR_H
#define DY_ACTOR_H

#include "duchy_config.h"
#include "log.h"

#include <czmq.h>

typedef struct dy_actor dy_actor_t;

/* Actor hooks; any may be NULL. */
typedef struct {
    /* Actor-specific admin verbs (anything but STATUS/VERBOSE/CONFIG):
     * fill resp (a serialized halo.admin.v1.AdminResponse is built by the
     * framework from what the hook returns).  `req` is a
     * Halo__Admin__V1__AdminRequest *; `resp` a Halo__Admin__V1__AdminResponse *
     * whose strings the hook allocates and the framework frees after sending.
     * Return 0, or -ENOTSUP for an unknown verb (answered UNIMPLEMENTED). */
    int (*admin)(dy_actor_t *a, const void *req, void *resp, void *arg);
    /* Adds actor-specific counters / state to STATUS. */
    void (*status)(dy_actor_t *a, void *arg);
    /* Once a second from the housekeeping timer (RUN_EVERY style sub-periods
     * inside). */
    void (*housekeeping)(dy_actor_t *a, void *arg);
    /* SIGTERM arrived: begin draining.  When done call dy_actor_drained()
     * (at once if nothing to drain).  If NULL, the loop ends at once. */
    void (*drain)(dy_actor_t *a, void *arg);
    /* SIGHUP: the new config (loaded and checked) is offered; return 0 to
     * take it (the framework swaps it in) or -EINVAL to keep the old one.
     * Non-reloadable changes are refused by the framework before this. */
    int (*reload)(dy_actor_t *a, const dy_duchy_config_t *next, void *arg);
    void *arg;
} dy_actor_ops_t;

/* Parses flags, loads the config, initialises logging ("proc" = name, with
 * the instance appended, e.g. "claimer-2"), creates the loop and binds
 * ipc://RUN/admin-<name>[-<instance>].sock.  Exits the process on usage (64)
 * or config (100) errors; returns NULL never. */
dy_actor_t *dy_actor_new(const char *name, int argc, char **argv, const dy_actor_ops_t *ops);
void dy_actor_destroy(dy_actor_t **self_p);

zloop_t *dy_actor_loop(dy_actor_t *self);
const dy_duchy_config_t *dy_actor_config(const dy_actor_t *self);
const char *dy_actor_name(const dy_actor_t *self);  /* e.g. "claimer-2" */
int dy_actor_instance(const dy_actor_t *self);       /* --instance, default 1 */

/* ipc endpoint of a socket in the runtime dir: "ipc://RUN/<file>". */
void dy_actor_endpoint(const dy_actor_t *self, const char *file, char *out, size_t cap);

/* Writes the readiness line to --ready-fd (if given) and closes it. */
int dy_actor_ready(dy_actor_t *self);

/* Runs the loop until SIGTERM/SIGINT and the drain end.  Returns the exit
 * code (0 on a clean stop). */
int dy_actor_run(dy_actor_t *self);
void dy_actor_drained(dy_actor_t *self);
bool dy_actor_draining(const dy_actor_t *self);

/* STATUS state string ("starting", "ready", "draining", or actor-specific). */
void dy_actor_set_state(dy_actor_t *self, const char *state);
/* Named counters shown by STATUS. */
void dy_actor_count(dy_actor_t *self, const char *name, int64_t delta);
void dy_actor_gauge(dy_actor_t *self, const char *name, int64_t value);

/* Protobuf over zmq: one frame holding a serialized ActorMessage
 * (proto/duchy.proto).  send: 0 or -errno.  recv: a message the caller frees
 * with protobuf_c_message_free_unpacked, or NULL (interrupted / malformed:
 * malformed is logged and dropped).  For ROUTER sockets the identity frame
 * is kept in *ret_identity (caller destroys) / given in identity. */
int dy_actor_send_msg(zsock_t *sock, zframe_t *identity, const void *actor_message);

/* Answers a StageEffects request: an ActorMessage{version 1, request_id,
 * sender, EffectsReply{outcome, code, message}} to identity on a ROUTER
 * socket (identity is not consumed).  0 or -errno. */
int dy_actor_reply_effects(zsock_t *sock, zframe_t *identity, const char *request_id,
                           const char *sender, dy_outcome_t outcome, const char *code,
                           const char *message);
void *dy_actor_recv_msg(zsock_t *sock, zframe_t **ret_identity);

/* ---- Additions (documented in actor.c's header comment) ---- */

/* Ends the loop at the next turn with this exit code (e.g. DY_EXIT_TEMPORARY
 * when a peer socket cannot be used), without a drain. */
void dy_actor_stop(dy_actor_t *self, int exit_code);

/* Helpers for an ops->admin hook filling its Halo__Admin__V1__AdminResponse
 * (passed as void *resp).  Strings are copied with malloc; the framework
 * frees them after sending.
 *   dy_actor_admin_json:  sets the json body (a copy of json).
 *   dy_actor_admin_error: sets code (gRPC number) and message.
 *   dy_actor_admin_kv:    appends "key: value" to the section named
 *                         `section` (created at the end if absent). */
void dy_actor_admin_json(void *resp, const char *json);
void dy_actor_admin_error(void *resp, int code, const char *fmt, ...) DY_PRINTF(3, 4);
void dy_actor_admin_kv(void *resp, const char *section, const char *key, const char *fmt, ...)
    DY_PRINTF(4, 5);
/* Frees what a hand-built (framework or hook) AdminResponse holds, leaving it
 * empty; the struct itself is the caller's.  NULL-safe. */
void dy_actor_admin_clear(void *resp);

/* The client side of the admin protocol (duchyctl, the coordinator's
 * fan-out): a REQ socket to endpoint, one AdminRequest{verb, args,
 * want_json}, the AdminResponse within timeout_ms.  *ret_resp is a
 * Halo__Admin__V1__AdminResponse * the caller frees with
 * protobuf_c_message_free_unpacked.  0, -ETIMEDOUT (no answer in time),
 * -EPROTO (undecodable answer), -EINVAL (bad endpoint / arguments) or
 * -errno.  A non-OK code in the response is still 0 here. */
int dy_actor_admin_call(const char *endpoint, int verb, const char *const *args, size_t nargs,
                        bool want_json, int timeout_ms, void **ret_resp);

/* The JSON string escape of s into a growable buffer (no quotes added).
 * 0 or -ENOMEM. */
int dy_actor_json_escape(dy_buf_t *out, const char *s);

#endif
