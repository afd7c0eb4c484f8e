/* config.h - one YAML loader driven by one declarative key table
 * (STYLE.md rules 26-27).  Each actor declares a table of keys
 * {path, type, default, min, max, reloadable, offset} into its own config
 * struct; the loader fills the struct, refuses unknown keys and
 * out-of-range values with "file:line: key: reason", and prints the
 * normalised configuration (for --check-config) in a form that parses
 * again to the same struct.
 */
#ifndef DY_CONFIG_H
#define DY_CONFIG_H

#include "dy.h"

#include <stdio.h>

typedef enum {
    DY_CFG_STRING = 0, /* char * (owned by the struct; freed by dy_config_free) */
    DY_CFG_INT,        /* int64_t; min/max apply */
    DY_CFG_DOUBLE,     /* double; min/max apply */
    DY_CFG_BOOL,       /* bool; true/false/yes/no/on/off */
    DY_CFG_DURATION,   /* int64_t milliseconds; "250ms", "5s", "10m", "1h" or a bare ms number */
    DY_CFG_SIZE,       /* uint64_t bytes; "4MiB", "64KiB", "1GiB" or a bare number */
    DY_CFG_ENDPOINT,   /* char * "host:port" (port 0-65535), validated */
    DY_CFG_ENUM,       /* int; `choices` is a NULL-terminated list, the value is its index */
    DY_CFG_LIST,       /* a YAML sequence of mappings described by `sub` (see below) */
} dy_cfg_type_t;

typedef struct dy_cfg_key dy_cfg_key_t;

/* One key.  `path` is dotted from the document root ("tls.cert",
 * "mpc_noise.publisher.epsilon"); inside a list's `sub` table it is
 * relative to the list item. */
struct dy_cfg_key {
    const char *path;
    dy_cfg_type_t type;
    const char *def;           /* default as YAML text; NULL = required */
    double min, max;           /* numeric bounds (INT, DOUBLE, DURATION, SIZE); min == max = none */
    bool reloadable;           /* may change on SIGHUP */
    size_t offset;             /* offsetof(struct, field) */
    const char *const *choices; /* ENUM only */
    /* LIST only: the item table, the item struct size, and where to store
     * the malloc'd array (at offset, a void *) and its count (size_t). */
    const dy_cfg_key_t *sub;
    size_t nsub;
    size_t item_size;
    size_t count_offset;
    size_t min_items, max_items; /* 0, 0 = any */
    const char *help;          /* one line, printed as a comment by dy_config_print */
};

/* Loads path into out (zeroed first).  Returns 0, or -EINVAL with errbuf
 * holding "path:line: key: reason" (unknown key, missing required key,
 * wrong type, out of range, duplicate key), or -errno if the file cannot
 * be read.  On failure out holds nothing to free. */
int dy_config_load(const char *path, const dy_cfg_key_t *keys, size_t nkeys, void *out,
                   char *errbuf, size_t errlen);

/* The same from a string (tests; name is used in messages). */
int dy_config_load_string(const char *yaml, const char *name, const dy_cfg_key_t *keys,
                          size_t nkeys, void *out, char *errbuf, size_t errlen);

/* Prints the normalised config as YAML (every key, defaults included, in
 * table order, with help comments).  The output loads back to an equal
 * struct.  0 or -EIO. */
int dy_config_print(const dy_cfg_key_t *keys, size_t nkeys, const void *cfg, FILE *out);

/* Lists the keys whose values differ between a and b and are not
 * reloadable: returns the number of such keys and writes the first one's
 * path to errbuf (for SIGHUP: refuse the new config, keep the old). */
int dy_config_nonreloadable_diff(const dy_cfg_key_t *keys, size_t nkeys, const void *a,
                                 const void *b, char *errbuf, size_t errlen);

/* Frees every string and list the loader allocated in cfg. */
void dy_config_free(const dy_cfg_key_t *keys, size_t nkeys, void *cfg);

/* Additions (documented in config.c's header comment).
 *
 * The largest document dy_config_load and dy_config_load_string accept;
 * a bigger one is refused with "name:1: document is N bytes, ...". */
#define DY_CONFIG_MAX_BYTES (1 << 20)

/* True if every key of the table has equal values in a and b (strings by
 * content, lists item by item). */
bool dy_config_equal(const dy_cfg_key_t *keys, size_t nkeys, const void *a, const void *b);

/* The value syntaxes of DURATION and SIZE keys, for command-line options
 * that take the same forms: 0, -EINVAL (not the syntax) or -ERANGE. */
int dy_config_parse_duration(const char *s, int64_t *ret_ms);
int dy_config_parse_size(const char *s, uint64_t *ret_bytes);

/* Decodes one well-formed UTF-8 sequence at p (n > 0 bytes left): its length (1..4) with the
 * code point in *ret_cp, or 0 (ret_cp untouched) for an ill-formed, overlong, surrogate or
 * truncated sequence.  Shared by the config printer and the JSON log escaper (log.c). */
size_t dy_config_utf8_decode(const unsigned char *p, size_t n, uint32_t *ret_cp);

/* Checks an ENDPOINT value ("host:port", "[v6]:port", "*:port"): 0, or
 * -EINVAL with *ret_why pointing at a static reason. */
int dy_config_check_endpoint(const char *s, const char **ret_why);

#endif
