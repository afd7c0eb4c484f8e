/* duchy_state.c - see duchy_state.h. */
#include "duchy_state.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int dy_duchy_store_open(const dy_duchy_config_t *cfg, dy_store_t **ret, char *errbuf,
                        size_t errlen)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/duchy.db", cfg->data_dir) >= (int)sizeof(path)) {
        snprintf(errbuf, errlen, "data directory path too long");
        return -ENAMETOOLONG;
    }
    dy_store_config_t sc = {.path = path,
                            .max_attempts = (int)cfg->max_attempts,
                            .backoff_scale = cfg->backoff_scale};
    int rc = dy_store_open(&sc, ret);
    if (rc < 0)
        snprintf(errbuf, errlen, "cannot open the store %s: %s", path, strerror(-rc));
    return rc;
}

dy_blobdir_t *dy_duchy_blobs_open(const dy_duchy_config_t *cfg, char *errbuf, size_t errlen)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/blobs", cfg->data_dir) >= (int)sizeof(path)) {
        snprintf(errbuf, errlen, "data directory path too long");
        return NULL;
    }
    if (mkdir(path, 0700) < 0 && errno != EEXIST) {
        snprintf(errbuf, errlen, "cannot create %s: %s", path, strerror(errno));
        return NULL;
    }
    dy_blobdir_t *b = dy_blobdir_new(path, cfg->id);
    if (b == NULL)
        snprintf(errbuf, errlen, "cannot open the blob directory %s", path);
    return b;
}
