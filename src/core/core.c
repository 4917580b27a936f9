/* core: allocator, logger, clock, buffers, map. See core.h. */
#define _GNU_SOURCE
#include "core.h"

#include <errno.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* ---- errors ---------------------------------------------------------------------------------- */

_Noreturn void ow_panic(const char *file, int line, const char *what) {
  fprintf(stderr, "level=fatal event=assert file=%s line=%d cond=\"%s\"\n", file, line, what);
  fflush(stderr);
  abort();
}

const char *ow_strerror(int code) {
  switch (code) {
#define OW_ERROR_MSG(name, num, msg)                                                       \
  case num:                                                                                \
    return msg;
    OW_ERROR_MAP(OW_ERROR_MSG)
#undef OW_ERROR_MSG
  case 0:
    return "ok";
  default:
    if (code < 0 && code > -1000) return strerror(-code);
    return "unknown error";
  }
}

const char *ow_err_name(int code) {
  switch (code) {
#define OW_ERROR_NAME(name, num, msg)                                                      \
  case num:                                                                                \
    return "OW_E_" #name;
    OW_ERROR_MAP(OW_ERROR_NAME)
#undef OW_ERROR_NAME
  case 0:
    return "OK";
  default:
    if (code < 0 && code > -1000) {
      const char *n = strerrorname_np(-code);
      return n ? n : "EUNKNOWN";
    }
    return "UNKNOWN";
  }
}

/* ---- memory ---------------------------------------------------------------------------------- */

static atomic_size_t mem_used;

static _Noreturn void oom(size_t n) {
  fprintf(stderr, "level=fatal event=oom bytes=%zu used=%zu\n", n, (size_t)mem_used);
  abort();
}

void *ow_malloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) oom(n);
  atomic_fetch_add_explicit(&mem_used, malloc_usable_size(p), memory_order_relaxed);
  return p;
}

void *ow_calloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p) oom(n * size);
  atomic_fetch_add_explicit(&mem_used, malloc_usable_size(p), memory_order_relaxed);
  return p;
}

void *ow_realloc(void *p, size_t n) {
  size_t old = p ? malloc_usable_size(p) : 0;
  void *q = realloc(p, n ? n : 1);
  if (!q) oom(n);
  atomic_fetch_sub_explicit(&mem_used, old, memory_order_relaxed);
  atomic_fetch_add_explicit(&mem_used, malloc_usable_size(q), memory_order_relaxed);
  return q;
}

void ow_free(void *p) {
  if (!p) return;
  atomic_fetch_sub_explicit(&mem_used, malloc_usable_size(p), memory_order_relaxed);
  free(p);
}

char *ow_strndup(const char *s, size_t n) {
  char *d = ow_malloc(n + 1);
  memcpy(d, s, n);
  d[n] = 0;
  return d;
}

char *ow_strdup(const char *s) { return ow_strndup(s, strlen(s)); }

size_t ow_mem_used(void) { return atomic_load_explicit(&mem_used, memory_order_relaxed); }

/* ---- logging --------------------------------------------------------------------------------- */

int ow_log_level = OW_LOG_INFO;

void ow_log_write(int level, const char *event, const char *fmt, ...) {
  static const char *names[] = {"debug", "info", "warn", "error"};
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char line[1024];
  int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s event=%s ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   ts.tv_nsec / 1000000, names[level & 3], event);
  va_list ap;
  va_start(ap, fmt);
  if (n > 0 && (size_t)n < sizeof line) vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  va_end(ap);
  /* One write per line so that lines from the commit thread never interleave mid-line. */
  fprintf(stderr, "%s\n", line);
}

/* ---- time ------------------------------------------------------------------------------------ */

uint64_t ow_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ---- samples --------------------------------------------------------------------------------- */

/* 50 us to 2.5 s: a tick's seal takes microseconds, a commit with fsync milliseconds, and a stall
 * worth an alert shows in the top buckets. */
const uint64_t ow_sample_bounds_ns[OW_SAMPLE_BUCKETS] = {
    50000,    100000,    250000,    500000,     1000000,    2500000,    5000000, 10000000,
    25000000, 50000000, 100000000, 250000000, 500000000, 1000000000, 2500000000};

void ow_samples_add(ow_samples *s, uint64_t ns) {
  s->count++;
  s->sum_ns += ns;
  for (int i = 0; i < OW_SAMPLE_BUCKETS; i++)
    if (ns <= ow_sample_bounds_ns[i]) {
      s->bucket[i]++;
      break;
    }
  s->v[s->pos] = ns;
  s->pos = (s->pos + 1) % OW_SAMPLES;
  if (s->n < OW_SAMPLES) s->n++;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

uint64_t ow_samples_pct(const ow_samples *s, double p) {
  if (!s->n) return 0;
  uint64_t *tmp = ow_malloc(s->n * sizeof *tmp);
  memcpy(tmp, s->v, s->n * sizeof *tmp);
  qsort(tmp, s->n, sizeof *tmp, cmp_u64);
  size_t i = (size_t)(p / 100.0 * (double)(s->n - 1) + 0.5);
  uint64_t r = tmp[i < s->n ? i : s->n - 1];
  ow_free(tmp);
  return r;
}

/* ---- buffers --------------------------------------------------------------------------------- */

void ow_buf_init(ow_buf *b) { memset(b, 0, sizeof *b); }
void ow_buf_deinit(ow_buf *b) {
  ow_free(b->data);
  memset(b, 0, sizeof *b);
}
void ow_buf_reserve(ow_buf *b, size_t extra) {
  if (b->len + extra <= b->cap) return;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->len + extra) cap *= 2;
  b->data = ow_realloc(b->data, cap);
  b->cap = cap;
}
void ow_buf_put(ow_buf *b, const void *p, size_t n) {
  if (!n) return;
  ow_buf_reserve(b, n);
  memcpy(b->data + b->len, p, n);
  b->len += n;
}
/* Reserves n bytes and returns where they go. Writing through this local pointer, rather than
 * through b->data[b->len++], lets the compiler merge the byte stores of one field into a single
 * store (b->data may alias b->len, so it must reload both after every byte otherwise). */
static inline uint8_t *room(ow_buf *b, size_t n) {
  ow_buf_reserve(b, n);
  uint8_t *p = b->data + b->len;
  b->len += n;
  return p;
}
static inline void le16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static inline void le32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}
static inline void le64(uint8_t *p, uint64_t v) {
  le32(p, (uint32_t)v);
  le32(p + 4, (uint32_t)(v >> 32));
}
void ow_buf_u8(ow_buf *b, uint8_t v) { *room(b, 1) = v; }
void ow_buf_u16(ow_buf *b, uint16_t v) { le16(room(b, 2), v); }
void ow_buf_u32(ow_buf *b, uint32_t v) { le32(room(b, 4), v); }
void ow_buf_u64(ow_buf *b, uint64_t v) { le64(room(b, 8), v); }
void ow_buf_i32(ow_buf *b, int32_t v) { le32(room(b, 4), (uint32_t)v); }
void ow_buf_f32(ow_buf *b, float v) {
  uint32_t u;
  memcpy(&u, &v, 4);
  le32(room(b, 4), u);
}
void ow_buf_f64(ow_buf *b, double v) {
  uint64_t u;
  memcpy(&u, &v, 8);
  le64(room(b, 8), u);
}
void ow_buf_be32(ow_buf *b, uint32_t v) { ow_be32_write(room(b, 4), v); }
void ow_buf_be64(ow_buf *b, uint64_t v) { ow_be64_write(room(b, 8), v); }
void ow_buf_str16(ow_buf *b, const char *s, size_t n) {
  OW_ASSERT(n <= 0xffff);
  ow_buf_u16(b, (uint16_t)n);
  ow_buf_put(b, s, n);
}

void ow_reader_init(ow_reader *r, const void *p, size_t n) {
  r->p = p;
  r->left = n;
  r->err = 0;
}
static const uint8_t *take(ow_reader *r, size_t n) {
  if (r->err || r->left < n) {
    r->err = OW_E_CORRUPT;
    return NULL;
  }
  const uint8_t *p = r->p;
  r->p += n;
  r->left -= n;
  return p;
}
static uint64_t get_le(ow_reader *r, int n) {
  const uint8_t *p = take(r, (size_t)n);
  if (!p) return 0;
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}
uint8_t ow_rd_u8(ow_reader *r) { return (uint8_t)get_le(r, 1); }
uint16_t ow_rd_u16(ow_reader *r) { return (uint16_t)get_le(r, 2); }
uint32_t ow_rd_u32(ow_reader *r) { return (uint32_t)get_le(r, 4); }
uint64_t ow_rd_u64(ow_reader *r) { return get_le(r, 8); }
int32_t ow_rd_i32(ow_reader *r) { return (int32_t)(uint32_t)get_le(r, 4); }
float ow_rd_f32(ow_reader *r) {
  uint32_t u = (uint32_t)get_le(r, 4);
  float f;
  memcpy(&f, &u, 4);
  return f;
}
double ow_rd_f64(ow_reader *r) {
  uint64_t u = get_le(r, 8);
  double f;
  memcpy(&f, &u, 8);
  return f;
}
uint32_t ow_rd_be32(ow_reader *r) {
  const uint8_t *p = take(r, 4);
  return p ? ow_be32_read(p) : 0;
}
uint64_t ow_rd_be64(ow_reader *r) {
  const uint8_t *p = take(r, 8);
  return p ? ow_be64_read(p) : 0;
}
const uint8_t *ow_rd_bytes(ow_reader *r, size_t n) { return take(r, n); }
const char *ow_rd_str16(ow_reader *r, size_t *len) {
  size_t n = ow_rd_u16(r);
  const uint8_t *p = take(r, n);
  *len = p ? n : 0;
  return (const char *)p;
}

bool ow_utf8_ok(const void *str, size_t n) {
  const uint8_t *s = str;
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    if (c == 0) return false;
    if (c < 0x80) {
      i++;
      continue;
    }
    int len = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    if (!len || i + (size_t)len > n) return false;
    uint32_t cp = c & (0x7f >> len);
    for (int k = 1; k < len; k++) {
      if ((s[i + (size_t)k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (s[i + (size_t)k] & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += (size_t)len;
  }
  return true;
}

/* ---- map ------------------------------------------------------------------------------------- */

void ow_map_init(ow_map *m) { memset(m, 0, sizeof *m); }
void ow_map_deinit(ow_map *m) {
  ow_free(m->keys);
  ow_free(m->vals);
  memset(m, 0, sizeof *m);
}

uint64_t *ow_map_get(const ow_map *m, uint64_t key) {
  if (!key) return m->has_zero ? (uint64_t *)&m->zero_val : NULL;
  if (!m->cap) return NULL;
  size_t mask = m->cap - 1;
  for (size_t i = ow_hash64(key) & mask;; i = (i + 1) & mask) {
    if (m->keys[i] == key) return &m->vals[i];
    if (!m->keys[i]) return NULL;
  }
}

static void map_grow(ow_map *m) {
  ow_map old = *m;
  m->cap = old.cap ? old.cap * 2 : 16;
  m->keys = ow_calloc(m->cap, sizeof *m->keys);
  m->vals = ow_calloc(m->cap, sizeof *m->vals);
  m->len = old.has_zero;
  for (size_t i = 0; i < old.cap; i++)
    if (old.keys[i]) ow_map_set(m, old.keys[i], old.vals[i]);
  ow_free(old.keys);
  ow_free(old.vals);
}

void ow_map_set(ow_map *m, uint64_t key, uint64_t val) {
  if (!key) {
    m->len += !m->has_zero;
    m->has_zero = true;
    m->zero_val = val;
    return;
  }
  if ((m->len + 1) * 4 > m->cap * 3) map_grow(m);
  size_t mask = m->cap - 1;
  for (size_t i = ow_hash64(key) & mask;; i = (i + 1) & mask) {
    if (m->keys[i] == key) {
      m->vals[i] = val;
      return;
    }
    if (!m->keys[i]) {
      m->keys[i] = key;
      m->vals[i] = val;
      m->len++;
      return;
    }
  }
}

bool ow_map_del(ow_map *m, uint64_t key) {
  if (!key) {
    bool had = m->has_zero;
    m->len -= had;
    m->has_zero = false;
    return had;
  }
  if (!m->cap) return false;
  size_t mask = m->cap - 1, i = ow_hash64(key) & mask;
  while (m->keys[i] != key) {
    if (!m->keys[i]) return false;
    i = (i + 1) & mask;
  }
  /* Backward-shift deletion keeps probe chains intact without tombstones. */
  for (size_t j = (i + 1) & mask; m->keys[j]; j = (j + 1) & mask) {
    size_t home = ow_hash64(m->keys[j]) & mask;
    if (((j - home) & mask) >= ((j - i) & mask)) {
      m->keys[i] = m->keys[j];
      m->vals[i] = m->vals[j];
      i = j;
    }
  }
  m->keys[i] = 0;
  m->len--;
  return true;
}
