/* store/fault: see fault.h. Every call is counted, then either failed by its rule or passed on. */
#include "store/fault.h"

#include <errno.h>

#include "store/store_int.h"

typedef struct fault_store {
  ow_store base;
  ow_store *inner;
  ow_fault_rule rule[OW_FAULT_OPS_];
  uint64_t calls[OW_FAULT_OPS_];
} fault_store;

/* Counts the call and says whether its rule fails it. */
static bool hit(fault_store *f, int op) {
  uint64_t n = ++f->calls[op];
  const ow_fault_rule *r = &f->rule[op];
  return r->nth && (n == r->nth || (r->onward && n > r->nth));
}

static void fault_close(ow_store *s) {
  fault_store *f = (fault_store *)s;
  ow_store_close(f->inner);
  ow_free(f);
}

static int fault_write(ow_store *s, const ow_batch *b, const ow_store_cond *cond) {
  fault_store *f = (fault_store *)s;
  if (!hit(f, OW_FAULT_WRITE))
    return cond ? ow_store_write_if(f->inner, b, cond) : ow_store_write(f->inner, b);
  const ow_fault_rule *r = &f->rule[OW_FAULT_WRITE];
  if (r->after) {
    int rc = cond ? ow_store_write_if(f->inner, b, cond) : ow_store_write(f->inner, b);
    if (rc) return rc;
  }
  return r->err;
}

static int fault_get(ow_store *s, const void *k, size_t kl, ow_buf *out) {
  fault_store *f = (fault_store *)s;
  return hit(f, OW_FAULT_GET) ? f->rule[OW_FAULT_GET].err : ow_store_get(f->inner, k, kl, out);
}

static int fault_scan(ow_store *s, const void *prefix, size_t pl, ow_scan_fn fn, void *ud) {
  fault_store *f = (fault_store *)s;
  return hit(f, OW_FAULT_SCAN) ? f->rule[OW_FAULT_SCAN].err
                               : ow_store_scan(f->inner, prefix, pl, fn, ud);
}

static int fault_stat(ow_store *s, uint64_t *entries, uint64_t *bytes) {
  return ow_store_stat(((fault_store *)s)->inner, entries, bytes);
}

static int fault_copy(ow_store *s, const char *dest) {
  ow_store *in = ((fault_store *)s)->inner;
  return in->m->copy ? in->m->copy(in, dest) : -ENOTSUP;
}

static const ow_store_methods fault_methods = {
    .scheme = "fault",
    .close = fault_close,
    .write = fault_write,
    .get = fault_get,
    .scan = fault_scan,
    .stat = fault_stat,
    .copy = fault_copy,
};

int ow_store_fault_wrap(ow_store **out, ow_store *inner) {
  OW_ASSERT(inner);
  fault_store *f = ow_calloc(1, sizeof *f);
  f->base.m = &fault_methods;
  f->inner = inner;
  *out = &f->base;
  return 0;
}

void ow_store_fault_set(ow_store *s, int op, const ow_fault_rule *rule) {
  OW_ASSERT(s->m == &fault_methods && op >= 0 && op < OW_FAULT_OPS_);
  ((fault_store *)s)->rule[op] = *rule;
}

uint64_t ow_store_fault_calls(const ow_store *s, int op) {
  OW_ASSERT(s->m == &fault_methods && op >= 0 && op < OW_FAULT_OPS_);
  return ((const fault_store *)s)->calls[op];
}

ow_store *ow_store_fault_inner(ow_store *s) {
  OW_ASSERT(s->m == &fault_methods);
  return ((fault_store *)s)->inner;
}
