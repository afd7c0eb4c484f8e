/* tests/unit/test_scale.h - DY_TEST_SCALE=valgrind, exported by `tools/test --valgrind`:
 * under valgrind (20-50x slower), work a test does only for statistics, timing or sheer size
 * runs at a smaller but still meaningful size.  Known-answer vectors and the cases that
 * check a boundary never shrink.  Header-only; include it from a test file.
 */
#ifndef DY_TEST_SCALE_H
#define DY_TEST_SCALE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* True when DY_TEST_SCALE=valgrind. */
static inline bool scale_quick(void)
{
    const char *s = getenv("DY_TEST_SCALE");
    return s != NULL && strcmp(s, "valgrind") == 0;
}

/* full normally, quick under DY_TEST_SCALE=valgrind. */
static inline size_t scale_pick(size_t full, size_t quick)
{
    return scale_quick() ? quick : full;
}

#endif
