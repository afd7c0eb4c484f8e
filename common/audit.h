/* audit.h - the duchy's append-only, hash-chained audit log.
 *
 * Rows live in the store's audit_log table (store.h, dy_audit_row_t).  Row
 * n carries prev_hash = hash of row n-1 (32 zero bytes for row 1) and
 * hash = SHA-256(prev_hash || canonical bytes of row n), so changing,
 * inserting or deleting a row breaks the chain at that row; the schema
 * also refuses UPDATE and DELETE.  Truncating the newest rows cannot be
 * seen from the chain alone: compare the tail (dy_audit_tail) with a copy
 * kept elsewhere if that matters.
 *
 * Canonical row bytes (version 1), all integers big-endian:
 *   "dy-audit-v1" | u64 seq | i64 time_us | str actor | str computation |
 *   i64 stage | str event | str detail
 * with str = u32 length || bytes (no NUL).
 *
 * Rows never hold secrets: callers put identifiers, stage numbers, error
 * codes and counts in detail, never keys, seeds or plaintext.
 */
#ifndef DY_AUDIT_H
#define DY_AUDIT_H

#include <stdint.h>

#include "store.h"

/* An event to append; strings borrowed. */
typedef struct {
    const char *actor;       /* who (actor name or admin user); required */
    const char *computation; /* NULL or "" if none */
    int stage;               /* -1 if none */
    const char *event;       /* stable identifier, e.g. "stage_completed"; required */
    const char *detail;      /* NULL or free text, never secret */
} dy_audit_event_t;

/* Appends one row.  Inside the caller's dy_store_begin transaction it
 * commits with the caller's other writes (the intended use: an action and
 * its audit row are one unit); otherwise it runs its own.  Strings longer
 * than their dy_audit_row_t fields are -EINVAL (never silently cut).
 * *ret_seq (optional) gets the row's seq.  0 or a negative errno. */
int dy_audit_append(dy_store_t *st, const dy_audit_event_t *ev, int64_t *ret_seq);

/* Verifies the whole chain from row 1.  0 if intact (*ret_bad_seq = 0);
 * -EBADMSG if not, with *ret_bad_seq = the first row whose seq, prev_hash or
 * hash is wrong.  *ret_rows (optional) gets the number of rows checked.
 * Other negative errno values are read errors. */
int dy_audit_verify(dy_store_t *st, int64_t *ret_bad_seq, int64_t *ret_rows);

/* The newest row's seq and hash (0 and zeros when empty). */
int dy_audit_tail(dy_store_t *st, int64_t *ret_seq, uint8_t ret_hash[32]);

/* hash of row given row->prev_hash and its other fields (not row->hash). */
void dy_audit_row_hash(const dy_audit_row_t *row, uint8_t out[32]);

#endif
