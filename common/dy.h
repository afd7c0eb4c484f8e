/* dy.h - definitions shared by every duchy module: the error convention,
 * typed stage errors and growable byte buffers.
 *
 * Error convention (STYLE.md rule 22): functions in common/ return 0 on
 * success or a negative errno value (-EINVAL bad input, -ENOMEM out of
 * memory, -EIO a library call failed, -EDOM a result that may not be
 * encoded, such as the point at infinity).  Functions that run a protocol
 * stage also fill a dy_err_t, whose code is a short stable identifier that
 * the mill reports and tests match on.  No message ever contains a secret.
 */
#ifndef DY_H
#define DY_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DY_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define DY_UNUSED __attribute__((unused))
#define DY_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Outcome class of a stage, as the mill reports it: OK, retry later, never. */
typedef enum {
    DY_OUTCOME_OK = 0,
    DY_OUTCOME_TEMPFAIL = 1,
    DY_OUTCOME_PERMFAIL = 2,
} dy_outcome_t;

/* A typed stage error.  code is a stable snake_case identifier such as
 * "invalid_point", "bad_length", "identity_point", "sketch_saturated". */
typedef struct {
    dy_outcome_t outcome; /* OK until something fails */
    char code[48];        /* stable identifier, NUL-terminated */
    char message[256];    /* human-readable detail, no secrets */
} dy_err_t;

/* Resets err to OK (NULL-safe). */
void dy_err_clear(dy_err_t *err);

/* Records an error in err (NULL-safe; the first error recorded wins) and
 * returns rc, so callers can write `return dy_err_set(err, -EINVAL, ...)`.
 * The outcome is PERMFAIL for -EINVAL/-EDOM/-ERANGE and TEMPFAIL otherwise. */
int dy_err_set(dy_err_t *err, int rc, const char *code, const char *fmt, ...) DY_PRINTF(4, 5);

/* A growable byte buffer.  Zero-initialised ({0}) is a valid empty buffer. */
typedef struct {
    uint8_t *data; /* owned; NULL while cap == 0 */
    size_t len;    /* bytes in use */
    size_t cap;    /* bytes allocated */
} dy_buf_t;

/* Ensures room for at least cap bytes in total.  0 or -ENOMEM. */
int dy_buf_reserve(dy_buf_t *buf, size_t cap);

/* Appends n bytes.  0 or -ENOMEM. */
int dy_buf_append(dy_buf_t *buf, const void *src, size_t n);

/* Grows len by n and returns a pointer to the n new (uninitialised) bytes,
 * or NULL on allocation failure (buf unchanged). */
uint8_t *dy_buf_extend(dy_buf_t *buf, size_t n);

/* Frees the storage (wiping it first) and resets buf to empty.  NULL-safe. */
void dy_buf_free(dy_buf_t *buf);

/* Lower-case hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void dy_hex(const uint8_t *in, size_t n, char *out);

/* Parses hex (even length, no prefix) into out (cap bytes).  Returns the
 * number of bytes written or -EINVAL. */
int dy_unhex(const char *hex, uint8_t *out, size_t cap);

/* Base64url without padding (RFC 4648 §5), as the system API's generated
 * ids and continuation tokens use it.  encode writes at most cap-1
 * characters and a NUL, returning the number written; decode takes exactly
 * len characters of the alphabet (no '='), refuses non-canonical trailing
 * bits and a length of 1 mod 4, and returns the bytes written or -EINVAL
 * (also when they would exceed cap). */
size_t dy_b64url_encode(const uint8_t *in, size_t n, char *out, size_t cap);
/* The 6-bit value of a base64url character, or -1. */
int dy_b64url_value(char c);
int dy_b64url_decode(const char *s, size_t len, uint8_t *out, size_t cap);

/* A generated external id (PROTOCOL.md §1): a nonzero 64-bit value as the
 * 11-character base64url of its 8 big-endian bytes.  decode: 0 or
 * -EINVAL (NULL, wrong length or alphabet, non-canonical, zero). */
#define DY_EXT_ID_LEN 11
void dy_ext_id_encode(uint64_t id, char out[DY_EXT_ID_LEN + 1]);
int dy_ext_id_decode(const char *s, uint64_t *ret_id);

/* Monotonic wall time and the calling process's CPU time, in seconds. */
double dy_now(void);
/* The same monotonic clock in whole milliseconds (timers, idle and call deadlines). */
int64_t dy_now_ms(void);
double dy_cpu_now(void);
/* The real-time clock in milliseconds since the epoch (deadlines passed between
 * processes). */
int64_t dy_wall_ms(void);

#endif
