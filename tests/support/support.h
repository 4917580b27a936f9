/* Test support: temporary store directories and the shipped content, for every test program. */
#ifndef OW_TEST_SUPPORT_H
#define OW_TEST_SUPPORT_H

#include <stdbool.h>

#include "content/content.h"
#include "store/store.h"
#include "zone/zone.h"

/* Creates a fresh directory under $TMPDIR (or /tmp) and returns its path (static buffer per call
 * site is not used: the caller frees it with ow_test_rmdir). */
char *ow_test_mkdtemp(const char *tag);
/* Removes the directory tree and frees the path. */
void ow_test_rmdir(char *path);
/* Loads content/default.json from the source tree; aborts the test program on failure. */
ow_content *ow_test_content(void);
/* Path of a file in the source tree (static storage, overwritten by the next call). */
const char *ow_test_source_path(const char *rel);
/* Opens a store in dir with full durability; aborts on failure. */
ow_store *ow_test_store(const char *dir);
/* Default zone configuration used by the tests (reach 8 m, regions of 256 m, window 64). */
ow_zone_config ow_test_zone_config(void);

#endif
