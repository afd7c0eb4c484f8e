/* par.h - data parallelism for the engine: a parallel for over contiguous
 * ranges and a deterministic parallel sort of fixed-size byte blocks.
 *
 * Threads are created per call (a stage makes a handful of calls, each
 * long), so there is no pool to own or leak.  Work functions must not
 * share a BN_CTX: each call gets its thread index to pick its own.
 */
#ifndef DY_PAR_H
#define DY_PAR_H

#include <stddef.h>

/* Work on the half-open range [begin, end) as thread number `thread`
 * (0 <= thread < threads).  Returns 0 or a negative errno. */
typedef int (*dy_par_fn)(void *arg, size_t begin, size_t end, int thread);

/* Splits [0, n) into at most `threads` contiguous ranges of whole multiples
 * of `grain` (grain 0 = 1) and runs fn on each, the first range in the
 * calling thread.  Returns 0, or the first (lowest range) error. */
int dy_par_for(int threads, size_t n, size_t grain, dy_par_fn fn, void *arg);

/* The default thread count: $DY_THREADS if set, else the number of online
 * CPUs (at least 1). */
int dy_par_default_threads(void);

/* Sorts n blocks of `size` bytes in place by memcmp order, using up to
 * `threads` threads (merge sort over sorted runs).  Equal blocks keep no
 * particular order, which is harmless since equal blocks are identical.
 * 0 or -ENOMEM. */
int dy_sort_blocks(unsigned char *data, size_t n, size_t size, int threads);

#endif
