/* blob.c - crash-safe blob files with streaming SHA-256 (blob.h).
 *
 * Write protocol: temp file in the final directory (same filesystem, so
 * link is atomic) → write → fsync → close → link(temp, final), which
 * unlike rename never replaces an existing final file → unlink(temp) →
 * fsync(directory).  Every failure path removes what it created, so a
 * final name only ever appears complete and fsynced.  A crash leaves at
 * most a temp file (or a temp beside a complete final), both swept by
 * dy_blob_sweep().
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "blob.h"

#define S_TMP_PREFIX ".tmp."
#define S_SWEEP_DEPTH 5 /* computation/stage/attempt/file, plus slack */

struct dy_blobdir {
    char *path;             /* owned; <root>/<duchy> */
    dy_blob_fault_fn fault; /* test hook or NULL */
    void *fault_arg;        /* borrowed; passed to fault */
};

struct dy_blob_writer {
    dy_blobdir_t *dir;              /* borrowed; outlives the writer */
    int fd;                         /* owned; temp file, -1 once closed */
    EVP_MD_CTX *md;                 /* owned; running SHA-256 */
    uint64_t size;                  /* bytes written */
    int err;                        /* first write error, 0 if none */
    char dirpath[DY_BLOB_PATH_MAX]; /* final directory */
    char tmp[DY_BLOB_PATH_MAX];     /* temp file path */
    char final[DY_BLOB_PATH_MAX];   /* final path */
};

bool dy_blob_name_ok(const char *s)
{
    if (!s || !s[0])
        return false;
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
        if (n + 1 >= DY_BLOB_NAME_MAX)
            return false;
    }
    return true;
}

static int s_fault(dy_blobdir_t *d, const char *op)
{
    return d->fault ? d->fault(op, d->fault_arg) : 0;
}

/* fsync of a directory by path. */
static int s_sync_dir(dy_blobdir_t *d, const char *path)
{
    int rc = s_fault(d, "dirsync");
    if (rc < 0)
        return rc;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* mkdir that tolerates an existing directory; a new one is made durable
 * in its parent. */
static int s_mkdir(dy_blobdir_t *d, const char *path, const char *parent)
{
    if (mkdir(path, 0700) == 0)
        return parent ? s_sync_dir(d, parent) : 0;
    if (errno != EEXIST)
        return -errno;
    struct stat sb;
    if (stat(path, &sb) < 0)
        return -errno;
    return S_ISDIR(sb.st_mode) ? 0 : -ENOTDIR;
}

dy_blobdir_t *dy_blobdir_new(const char *root, const char *duchy)
{
    if (!root || !root[0] || !dy_blob_name_ok(duchy)) {
        errno = EINVAL;
        return NULL;
    }
    dy_blobdir_t *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    size_t n = strlen(root) + 1 + strlen(duchy) + 1;
    d->path = n > DY_BLOB_PATH_MAX / 2 ? NULL : malloc(n);
    if (!d->path) {
        free(d);
        errno = n > DY_BLOB_PATH_MAX / 2 ? ENAMETOOLONG : ENOMEM;
        return NULL;
    }
    size_t rl = strlen(root);
    memcpy(d->path, root, rl);
    d->path[rl] = '/';
    memcpy(d->path + rl + 1, duchy, strlen(duchy) + 1);
    int rc = s_mkdir(d, d->path, root);
    if (rc < 0) {
        free(d->path);
        free(d);
        errno = -rc;
        return NULL;
    }
    return d;
}

void dy_blobdir_destroy(dy_blobdir_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->path);
    free(*self_p);
    *self_p = NULL;
}

const char *dy_blobdir_path(const dy_blobdir_t *d)
{
    return d->path;
}

void dy_blobdir_set_fault(dy_blobdir_t *d, dy_blob_fault_fn fn, void *arg)
{
    d->fault = fn;
    d->fault_arg = fn ? arg : NULL;
}

/* snprintf into a path buffer, -ENAMETOOLONG if it does not fit. */
static int s_path(char *dst, const char *fmt, ...) DY_PRINTF(2, 3);
static int s_path(char *dst, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst, DY_BLOB_PATH_MAX, fmt, ap);
    va_end(ap);
    return n < 0 || n >= DY_BLOB_PATH_MAX ? -ENAMETOOLONG : 0;
}

int dy_blob_open(dy_blobdir_t *d, const dy_blob_key_t *key, dy_blob_writer_t **ret_w)
{
    if (!d || !key || !ret_w || !dy_blob_name_ok(key->computation) || !dy_blob_name_ok(key->slot) ||
        key->stage < 0 || key->attempt < 0)
        return -EINVAL;
    dy_blob_writer_t *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->dir = d;
    w->fd = -1;
    char comp[DY_BLOB_PATH_MAX], stage[DY_BLOB_PATH_MAX];
    uint64_t r = 0;
    int rc = s_path(comp, "%s/%s", d->path, key->computation);
    if (rc == 0)
        rc = s_path(stage, "%s/%d", comp, key->stage);
    if (rc == 0)
        rc = s_path(w->dirpath, "%s/%lld", stage, (long long)key->attempt);
    if (rc == 0)
        rc = s_path(w->final, "%s/%s", w->dirpath, key->slot);
    if (rc == 0 && RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
        rc = -EIO;
    if (rc == 0)
        rc = s_path(w->tmp, "%s/" S_TMP_PREFIX "%s.%ld.%016llx", w->dirpath, key->slot,
                    (long)getpid(), (unsigned long long)r);
    if (rc == 0)
        rc = s_mkdir(d, comp, d->path);
    if (rc == 0)
        rc = s_mkdir(d, stage, comp);
    if (rc == 0)
        rc = s_mkdir(d, w->dirpath, stage);
    if (rc == 0) {
        w->md = EVP_MD_CTX_new();
        if (!w->md || EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) != 1)
            rc = -ENOMEM;
    }
    if (rc == 0) {
        w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (w->fd < 0)
            rc = -errno;
    }
    if (rc < 0) {
        EVP_MD_CTX_free(w->md);
        free(w);
        return rc;
    }
    *ret_w = w;
    return 0;
}

int dy_blob_write(dy_blob_writer_t *w, const void *data, size_t n)
{
    if (!w || (n && !data))
        return -EINVAL;
    if (w->err)
        return w->err;
    const uint8_t *p = data;
    size_t left = n;
    while (left) {
        int rc = s_fault(w->dir, "write");
        ssize_t k = rc < 0 ? -1 : write(w->fd, p, left);
        if (rc < 0)
            errno = -rc;
        if (k < 0) {
            if (errno == EINTR)
                continue;
            w->err = -errno;
            return w->err;
        }
        if (k == 0) {
            w->err = -EIO;
            return w->err;
        }
        p += k;
        left -= (size_t)k;
    }
    if (n && EVP_DigestUpdate(w->md, data, n) != 1) {
        w->err = -EIO;
        return w->err;
    }
    w->size += n;
    return 0;
}

static void s_writer_free(dy_blob_writer_t *w, bool unlink_tmp)
{
    if (w->fd >= 0)
        close(w->fd);
    if (unlink_tmp)
        (void)unlink(w->tmp);
    EVP_MD_CTX_free(w->md);
    free(w);
}

void dy_blob_abort(dy_blob_writer_t **w_p)
{
    if (!w_p || !*w_p)
        return;
    s_writer_free(*w_p, true);
    *w_p = NULL;
}

/* Hashes a whole file; 0 with size and hash, or a negative errno. */
static int s_hash_file(const char *path, uint64_t *ret_size, uint8_t ret_sha[32], dy_buf_t *keep)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int rc = 0;
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        rc = -ENOMEM;
    uint64_t size = 0;
    uint8_t chunk[65536];
    while (rc == 0) {
        ssize_t k = read(fd, chunk, sizeof(chunk));
        if (k < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        if (k == 0)
            break;
        if (EVP_DigestUpdate(md, chunk, (size_t)k) != 1)
            rc = -EIO;
        else if (keep && dy_buf_append(keep, chunk, (size_t)k) < 0)
            rc = -ENOMEM;
        size += (uint64_t)k;
    }
    unsigned int len = 0;
    if (rc == 0 && EVP_DigestFinal_ex(md, ret_sha, &len) != 1)
        rc = -EIO;
    EVP_MD_CTX_free(md);
    close(fd);
    if (rc == 0)
        *ret_size = size;
    return rc;
}

int dy_blob_commit(dy_blob_writer_t **w_p, dy_blob_info_t *ret_info)
{
    if (!w_p || !*w_p)
        return -EINVAL;
    dy_blob_writer_t *w = *w_p;
    *w_p = NULL;
    if (!ret_info) {
        s_writer_free(w, true);
        return -EINVAL;
    }
    int rc = w->err;
    if (rc == 0 && (rc = s_fault(w->dir, "fsync")) == 0 && fsync(w->fd) < 0)
        rc = -errno;
    if (rc == 0) {
        int fd = w->fd;
        w->fd = -1;
        if (close(fd) < 0)
            rc = -errno;
    }
    uint8_t sha[32];
    unsigned int len = 0;
    if (rc == 0 && EVP_DigestFinal_ex(w->md, sha, &len) != 1)
        rc = -EIO;
    bool linked = false;
    if (rc == 0 && (rc = s_fault(w->dir, "link")) == 0) {
        if (link(w->tmp, w->final) == 0) {
            linked = true;
        } else if (errno == EEXIST) {
            /* Written before (a retry after a crash between commit and the
             * database record): keep it if it holds the same bytes. */
            uint64_t size = 0;
            uint8_t old[32];
            rc = s_hash_file(w->final, &size, old, NULL);
            if (rc == 0 && (size != w->size || memcmp(old, sha, 32) != 0))
                rc = -EEXIST;
        } else {
            rc = -errno;
        }
    }
    (void)unlink(w->tmp);
    if (rc == 0)
        rc = s_sync_dir(w->dir, w->dirpath);
    if (rc < 0 && linked) {
        (void)unlink(w->final);
        (void)s_sync_dir(w->dir, w->dirpath);
    }
    if (rc == 0) {
        memset(ret_info, 0, sizeof(*ret_info));
        memcpy(ret_info->path, w->final, sizeof(ret_info->path));
        ret_info->size = w->size;
        memcpy(ret_info->sha256, sha, 32);
    }
    s_writer_free(w, false);
    return rc;
}

static int s_read(const dy_blob_info_t *info, dy_buf_t *out)
{
    if (!info || !info->path[0])
        return -EINVAL;
    struct stat sb;
    if (stat(info->path, &sb) < 0)
        return -errno;
    if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size != info->size)
        return -EBADMSG;
    if (out && dy_buf_reserve(out, info->size ? (size_t)info->size : 1) < 0)
        return -ENOMEM;
    uint64_t size = 0;
    uint8_t sha[32];
    int rc = s_hash_file(info->path, &size, sha, out);
    if (rc < 0)
        return rc;
    if (size != info->size || memcmp(sha, info->sha256, 32) != 0)
        return -EBADMSG;
    return 0;
}

int dy_blob_read(const dy_blob_info_t *info, dy_buf_t *out)
{
    if (!out)
        return -EINVAL;
    dy_buf_free(out);
    int rc = s_read(info, out);
    if (rc < 0)
        dy_buf_free(out);
    return rc;
}

int dy_blob_verify(const dy_blob_info_t *info)
{
    return s_read(info, NULL);
}

static bool s_is_dir(int dfd, const struct dirent *e, struct stat *sb)
{
    if (fstatat(dfd, e->d_name, sb, AT_SYMLINK_NOFOLLOW) < 0)
        return false;
    return S_ISDIR(sb->st_mode);
}

/* Walks dfd (consumed), removing old temp files. */
static int s_sweep_fd(int dfd, int depth, time_t cutoff, size_t *removed)
{
    DIR *dir = fdopendir(dfd);
    if (!dir) {
        int rc = -errno;
        close(dfd);
        return rc;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        struct stat sb;
        if (s_is_dir(dirfd(dir), e, &sb)) {
            if (depth >= S_SWEEP_DEPTH)
                continue;
            int sub = openat(dirfd(dir), e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (sub < 0)
                continue;
            int r = s_sweep_fd(sub, depth + 1, cutoff, removed);
            if (r < 0 && rc == 0)
                rc = r;
            continue;
        }
        if (strncmp(e->d_name, S_TMP_PREFIX, strlen(S_TMP_PREFIX)) != 0)
            continue;
        if (!S_ISREG(sb.st_mode) || sb.st_mtime > cutoff)
            continue;
        if (unlinkat(dirfd(dir), e->d_name, 0) == 0)
            (*removed)++;
        else if (errno != ENOENT && rc == 0)
            rc = -errno;
    }
    closedir(dir);
    return rc;
}

int dy_blob_sweep(dy_blobdir_t *d, int64_t min_age_s, size_t *ret_removed)
{
    if (!d || min_age_s < 0)
        return -EINVAL;
    int dfd = open(d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    size_t removed = 0;
    time_t cutoff = min_age_s ? time(NULL) - (time_t)min_age_s : (time_t)INT64_MAX;
    int rc = s_sweep_fd(dfd, 0, cutoff, &removed);
    if (ret_removed)
        *ret_removed = removed;
    return rc;
}

int dy_blob_sweep_attempt(const char *root, const char *duchy, const dy_blob_key_t *key,
                          size_t *ret_removed)
{
    if (ret_removed)
        *ret_removed = 0;
    if (!root || !duchy || !key || !dy_blob_name_ok(duchy) ||
        !dy_blob_name_ok(key->computation) || key->stage < 0 || key->attempt < 0)
        return -EINVAL;
    char path[DY_BLOB_PATH_MAX];
    int rc = s_path(path, "%s/%s/%s/%d/%lld", root, duchy, key->computation, key->stage,
                    (long long)key->attempt);
    if (rc < 0)
        return rc;
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return errno == ENOENT ? 0 : -errno;
    size_t removed = 0;
    /* depth S_SWEEP_DEPTH: files of this directory only */
    rc = s_sweep_fd(dfd, S_SWEEP_DEPTH, (time_t)INT64_MAX, &removed);
    if (ret_removed)
        *ret_removed = removed;
    return rc;
}

/* Removes everything inside dfd (consumed), depth-limited. */
static int s_rm_fd(int dfd, int depth)
{
    DIR *dir = fdopendir(dfd);
    if (!dir) {
        int rc = -errno;
        close(dfd);
        return rc;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        struct stat sb;
        if (s_is_dir(dirfd(dir), e, &sb)) {
            int sub = depth < S_SWEEP_DEPTH
                          ? openat(dirfd(dir), e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                          : -1;
            int r = sub < 0 ? -ELOOP : s_rm_fd(sub, depth + 1);
            if (r == 0 && unlinkat(dirfd(dir), e->d_name, AT_REMOVEDIR) < 0)
                r = -errno;
            if (r < 0 && rc == 0)
                rc = r;
        } else if (unlinkat(dirfd(dir), e->d_name, 0) < 0 && errno != ENOENT && rc == 0) {
            rc = -errno;
        }
    }
    closedir(dir);
    return rc;
}

int dy_blob_remove_computation(dy_blobdir_t *d, const char *computation)
{
    if (!d || !dy_blob_name_ok(computation))
        return -EINVAL;
    char path[DY_BLOB_PATH_MAX];
    int rc = s_path(path, "%s/%s", d->path, computation);
    if (rc < 0)
        return rc;
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (dfd < 0)
        return errno == ENOENT ? 0 : -errno;
    rc = s_rm_fd(dfd, 0);
    if (rc == 0 && rmdir(path) < 0 && errno != ENOENT)
        rc = -errno;
    if (rc == 0)
        rc = s_sync_dir(d, d->path);
    return rc;
}

/* dy_blob_adopt: the commit protocol above applied to a file that some
 * other writer (the gateway's spool) produced: hash it, fsync it, link it
 * under the final name, drop the source name, fsync the directory. */
int dy_blob_adopt(dy_blobdir_t *d, const dy_blob_key_t *key, const char *src,
                  const uint8_t *expect_sha256, dy_blob_info_t *ret_info)
{
    if (!d || !key || !src || !ret_info || !dy_blob_name_ok(key->computation) ||
        !dy_blob_name_ok(key->slot) || key->stage < 0 || key->attempt < 0)
        return -EINVAL;
    char comp[DY_BLOB_PATH_MAX], stage[DY_BLOB_PATH_MAX], dirpath[DY_BLOB_PATH_MAX];
    char final[DY_BLOB_PATH_MAX];
    int rc = s_path(comp, "%s/%s", d->path, key->computation);
    if (rc == 0)
        rc = s_path(stage, "%s/%d", comp, key->stage);
    if (rc == 0)
        rc = s_path(dirpath, "%s/%lld", stage, (long long)key->attempt);
    if (rc == 0)
        rc = s_path(final, "%s/%s", dirpath, key->slot);
    if (rc == 0)
        rc = s_mkdir(d, comp, d->path);
    if (rc == 0)
        rc = s_mkdir(d, stage, comp);
    if (rc == 0)
        rc = s_mkdir(d, dirpath, stage);
    if (rc < 0)
        return rc;

    uint64_t size = 0;
    uint8_t sha[32];
    rc = s_hash_file(src, &size, sha, NULL);
    if (rc < 0)
        return rc;
    if (expect_sha256 && memcmp(expect_sha256, sha, 32) != 0)
        return -EBADMSG;
    if ((rc = s_fault(d, "fsync")) < 0)
        return rc;
    int fd = open(src, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    if (rc < 0)
        return rc;

    bool linked = false;
    if ((rc = s_fault(d, "link")) < 0)
        return rc;
    if (link(src, final) == 0) {
        linked = true;
    } else if (errno == EEXIST) {
        uint64_t old_size = 0;
        uint8_t old[32];
        rc = s_hash_file(final, &old_size, old, NULL);
        if (rc == 0 && (old_size != size || memcmp(old, sha, 32) != 0))
            rc = -EEXIST;
    } else {
        rc = -errno;
    }
    if (rc == 0)
        rc = s_sync_dir(d, dirpath);
    if (rc < 0) {
        if (linked) {
            (void)unlink(final);
            (void)s_sync_dir(d, dirpath);
        }
        return rc;
    }
    (void)unlink(src);
    memset(ret_info, 0, sizeof(*ret_info));
    memcpy(ret_info->path, final, sizeof(ret_info->path));
    ret_info->size = size;
    memcpy(ret_info->sha256, sha, 32);
    return 0;
}
