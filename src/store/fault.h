/*
 * store/fault: a store that wraps another and fails chosen calls, for tests (SQLite's test VFS
 * habit). It counts every write, get and scan, and fails the Nth one (or every one from the Nth on)
 * with a chosen error, before the call reaches the wrapped store or, for writes, after it (the
 * batch is written but reported failed: a commit whose outcome the caller cannot know).
 */
#ifndef OW_STORE_FAULT_H
#define OW_STORE_FAULT_H

#include "store/store.h"

enum { OW_FAULT_WRITE = 0, OW_FAULT_GET = 1, OW_FAULT_SCAN = 2, OW_FAULT_OPS_ = 3 };

typedef struct ow_fault_rule {
  uint64_t nth;  /* 1-based number of the call to fail, counted since the wrapper was made; 0: none */
  bool onward;   /* also fail every later call of the same kind */
  bool after;    /* writes only: pass the batch to the wrapped store first, then report err */
  int err;       /* the error to return, e.g. -EIO, -ENOSPC, OW_E_RETRY */
} ow_fault_rule;

/* Wraps `inner`, which the wrapper then owns: ow_store_close() on the wrapper closes both. The
 * wrapper's scheme is "fault". */
int ow_store_fault_wrap(ow_store **out, ow_store *inner);
/* Sets (replaces) the rule for one kind of call (OW_FAULT_*). */
void ow_store_fault_set(ow_store *s, int op, const ow_fault_rule *rule);
/* Calls of a kind made so far, failed ones included. */
uint64_t ow_store_fault_calls(const ow_store *s, int op);
/* The wrapped store, e.g. to read what really reached it. */
ow_store *ow_store_fault_inner(ow_store *s);

#endif
