/* Fresh temporary directories for unit tests: made under $TMPDIR (or /tmp)
 * and removed with everything in them.  Test support only. */
#ifndef COALITION_TEST_TMPDIR_H
#define COALITION_TEST_TMPDIR_H

#include <stddef.h>

/* Makes a new directory named NAME.XXXXXX and writes its path into `out`
 * (cap bytes).  Returns 0, or -1 if the path does not fit or mkdtemp fails. */
int tmpdir_make(char *out, size_t cap, const char *name);

/* Removes `dir` and everything below it; a missing dir is fine. */
void tmpdir_remove(const char *dir);

#endif
