/* blob.h - blob files of one duchy: encrypted sketches, secret shares and
 * stage outputs, stored as files under the duchy's data directory.
 *
 * Layout: <root>/<duchy>/<computation>/<stage>/<attempt>/<slot>.  A blob is
 * written through a streaming writer: bytes go to a temporary file named
 * ".tmp.<slot>.<pid>.<random>" in the final directory while SHA-256 is
 * computed over them; commit fsyncs the file, links it to its final name
 * (never replacing an existing file) and fsyncs the directory.  So a final
 * name either does not exist or names a complete, durable file: a crash, an
 * abort, ENOSPC or EIO leave at most a temporary file, which
 * dy_blob_sweep() removes at start-up.  The database (store.h) records the
 * path, size and SHA-256 after commit; readers verify the hash.
 *
 * Errors: 0 or a negative errno (STYLE.md rule 22); nothing here logs.
 * A dy_blobdir_t is not shared between threads.
 */
#ifndef DY_BLOB_H
#define DY_BLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dy.h"

#define DY_BLOB_PATH_MAX 1024 /* bytes of a blob path, NUL included */
#define DY_BLOB_NAME_MAX 64   /* bytes of a path component, NUL included */

typedef struct dy_blobdir dy_blobdir_t;
typedef struct dy_blob_writer dy_blob_writer_t;

/* What a committed blob is: the database stores exactly this. */
typedef struct {
    char path[DY_BLOB_PATH_MAX]; /* absolute or root-relative final path */
    uint64_t size;               /* bytes */
    uint8_t sha256[32];          /* SHA-256 of the bytes */
} dy_blob_info_t;

/* Where a blob goes.  computation and slot are path components:
 * [A-Za-z0-9_-], 1-63 bytes (base64url ids fit); stage, attempt >= 0
 * (received inputs use attempt 0). */
typedef struct {
    const char *computation; /* borrowed */
    int stage;               /* stage the blob belongs to */
    int64_t attempt;         /* producing attempt, 0 for received inputs */
    const char *slot;        /* borrowed; name within the stage */
} dy_blob_key_t;

/* Fault-injection hook for tests: called before each system call that can
 * fail with ENOSPC/EIO ("write", "fsync", "link", "dirsync") with the
 * operation name; returning a negative errno makes that call fail with it. */
typedef int (*dy_blob_fault_fn)(const char *op, void *arg);

/* Opens (creating, mode 0700) <root>/<duchy>.  duchy is a path component
 * as above.  Returns NULL on bad arguments, allocation or mkdir failure
 * (errno set).  Caller destroys. */
dy_blobdir_t *dy_blobdir_new(const char *root, const char *duchy);

/* Frees the handle (files stay).  NULL-safe; nulls *self_p. */
void dy_blobdir_destroy(dy_blobdir_t **self_p);

/* The duchy's blob directory, <root>/<duchy>; borrowed from d. */
const char *dy_blobdir_path(const dy_blobdir_t *d);

/* Installs (or with fn NULL removes) the fault-injection hook. */
void dy_blobdir_set_fault(dy_blobdir_t *d, dy_blob_fault_fn fn, void *arg);

/* Starts a blob: creates the key's directories and a temporary file.
 * 0 with *ret_w set (caller commits or aborts it), -EINVAL bad key,
 * -ENAMETOOLONG, -ENOMEM, or the errno of mkdir/open. */
int dy_blob_open(dy_blobdir_t *d, const dy_blob_key_t *key, dy_blob_writer_t **ret_w);

/* Appends n bytes (n may be 0).  0, or a negative errno (-ENOSPC, -EIO...),
 * after which the writer only accepts dy_blob_abort() (commit fails too). */
int dy_blob_write(dy_blob_writer_t *w, const void *data, size_t n);

/* Finishes the blob: fsync, link to the final name, unlink the temporary
 * name, fsync the directory.  Always consumes *w_p (nulled).  0 with
 * *ret_info filled; -EEXIST if the final name holds different bytes (same
 * bytes: 0, the existing file is kept); or a negative errno, in which case
 * the temporary file is removed and no final file was created. */
int dy_blob_commit(dy_blob_writer_t **w_p, dy_blob_info_t *ret_info);

/* Drops an unfinished blob, removing its temporary file.  NULL-safe; nulls
 * *w_p. */
void dy_blob_abort(dy_blob_writer_t **w_p);

/* Reads a whole blob into out (replacing its contents) and checks its size
 * and SHA-256 against the recorded ones.  0; -EBADMSG on a size or hash
 * mismatch (out emptied); -ENOENT; -ENOMEM; -EIO. */
int dy_blob_read(const dy_blob_info_t *info, dy_buf_t *out);

/* Like dy_blob_read without keeping the bytes. */
int dy_blob_verify(const dy_blob_info_t *info);

/* Removes temporary files under the duchy directory whose mtime is at least
 * min_age_s seconds old (0 = all: only when no writer can be live, e.g. at
 * start-up).  *ret_removed (optional) counts them.  0 or a negative errno. */
int dy_blob_sweep(dy_blobdir_t *d, int64_t min_age_s, size_t *ret_removed);

/* Removes the temporary files of one stage attempt, <root>/<duchy>/<computation>/
 * <stage>/<attempt>/.tmp.*, whatever their age: for the claimer once that attempt's
 * mill has exited or been killed (the mill is the only writer of its attempt's
 * directory, so nothing live can own them).  The slot of key is ignored.  An absent
 * directory is not an error.  *ret_removed (optional) counts them.  0 or a negative
 * errno. */
int dy_blob_sweep_attempt(const char *root, const char *duchy, const dy_blob_key_t *key,
                          size_t *ret_removed);

/* Retention: removes every blob of a computation (its whole directory).
 * Only for terminal computations; the caller checks.  0 (also when nothing
 * was there), -EINVAL, or a negative errno. */
int dy_blob_remove_computation(dy_blobdir_t *d, const char *computation);

/* Adopts a complete file written elsewhere on the same filesystem (e.g. an
 * upload spooled to DATA/spool/ by the gateway) as the blob named by key,
 * without copying: the file is fsynced, linked to the key's final name
 * (never replacing an existing file), unlinked from src, and the final
 * directory is fsynced.  If expect_sha256 is not NULL the file's SHA-256
 * must equal it (-EBADMSG otherwise, src left in place).  An existing final
 * file with the same bytes is kept (0; src is removed); with other bytes
 * -EEXIST (src left in place).  0 with *ret_info filled; -EINVAL bad key,
 * -EXDEV src on another filesystem, or the errno of open/fsync/link.  On
 * failure no final file was created.  Fault hook ops: "fsync", "link",
 * "dirsync". */
int dy_blob_adopt(dy_blobdir_t *d, const dy_blob_key_t *key, const char *src,
                  const uint8_t *expect_sha256, dy_blob_info_t *ret_info);

/* True if s is a valid path component for blob keys. */
bool dy_blob_name_ok(const char *s);

#endif
