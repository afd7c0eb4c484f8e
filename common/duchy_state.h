/* duchy_state.h - opening a duchy's durable state as its config describes
 * it: the store (DATA/duchy.db, with the configured attempt limit and
 * backoff) and the blob directory (DATA/blobs).  Every actor opens its own
 * (docs/cluster.md: no connection crosses fork), through these two calls so
 * that they all open it the same way. */
#ifndef DY_DUCHY_STATE_H
#define DY_DUCHY_STATE_H

#include "blob.h"
#include "duchy_config.h"
#include "store.h"

/* Opens DATA/duchy.db.  0 or a negative errno; a reason in errbuf. */
int dy_duchy_store_open(const dy_duchy_config_t *cfg, dy_store_t **ret, char *errbuf,
                        size_t errlen);

/* Opens DATA/blobs (created 0700 if missing) for this duchy.  NULL with a
 * reason in errbuf. */
dy_blobdir_t *dy_duchy_blobs_open(const dy_duchy_config_t *cfg, char *errbuf, size_t errlen);

#endif
