/*
 * core: the small utilities every module uses: a counting allocator that aborts on exhaustion
 * (crash-only, like Redis), a level-checked key=value logger, growable byte buffers with explicit
 * little-/big-endian codecs, a u64 hash map and a monotonic clock.
 */
#ifndef OW_CORE_H
#define OW_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "otherworld/error.h"

/* ---- invariants ---------------------------------------------------------------------------- */

/* An invariant that stays on in every build: a broken invariant means corrupt state, and a crash
 * followed by recovery from the durable store is safer than going on. */
#define OW_ASSERT(cond)                                                                    \
  do {                                                                                     \
    if (!(cond)) ow_panic(__FILE__, __LINE__, #cond);                                      \
  } while (0)
_Noreturn void ow_panic(const char *file, int line, const char *what);

/* ---- memory ----------------------------------------------------------------------------------- */

/* All heap memory of otherworld goes through these. They never return NULL: when memory is
 * exhausted the process logs and aborts, and recovery rebuilds the world from the store. The byte
 * count is kept per process and read with ow_mem_used(). */
void *ow_malloc(size_t n);
void *ow_calloc(size_t n, size_t size);
void *ow_realloc(void *p, size_t n);
void ow_free(void *p);
char *ow_strdup(const char *s);
char *ow_strndup(const char *s, size_t n);
/* Bytes currently allocated through the wrappers above. */
size_t ow_mem_used(void);

/* ---- logging ---------------------------------------------------------------------------------- */

enum { OW_LOG_DEBUG = 0, OW_LOG_INFO = 1, OW_LOG_WARN = 2, OW_LOG_ERROR = 3 };
extern int ow_log_level;
void ow_log_write(int level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* One line per event: "ts=... level=info event=<event> <fmt as key=value pairs>". */
#define OW_LOG(level, event, ...)                                                          \
  do {                                                                                     \
    if ((level) >= ow_log_level) ow_log_write((level), (event), __VA_ARGS__);               \
  } while (0)
#define OW_INFO(event, ...) OW_LOG(OW_LOG_INFO, event, __VA_ARGS__)
#define OW_WARN(event, ...) OW_LOG(OW_LOG_WARN, event, __VA_ARGS__)
#define OW_ERROR(event, ...) OW_LOG(OW_LOG_ERROR, event, __VA_ARGS__)
#define OW_DEBUG(event, ...) OW_LOG(OW_LOG_DEBUG, event, __VA_ARGS__)

/* ---- time ------------------------------------------------------------------------------------- */

/* Monotonic clock in nanoseconds. */
uint64_t ow_now_ns(void);

/* ---- latency samples -------------------------------------------------------------------------- */

/* The last OW_SAMPLES durations (nanoseconds), for percentiles of loop work, and every duration
 * since start counted into fixed buckets (for Prometheus histograms, which need counts that only
 * grow: a ring of recent samples cannot give them). */
#define OW_SAMPLES 4096
#define OW_SAMPLE_BUCKETS 15
/* The upper bounds of the buckets in nanoseconds, ascending; a duration above the last one is
 * counted only in `count` (the +Inf bucket). */
extern const uint64_t ow_sample_bounds_ns[OW_SAMPLE_BUCKETS];
typedef struct ow_samples {
  uint64_t v[OW_SAMPLES];
  uint32_t n, pos;
  uint64_t count, sum_ns;              /* every duration added since start */
  uint64_t bucket[OW_SAMPLE_BUCKETS]; /* bucket[i]: durations in (bound[i-1], bound[i]] */
} ow_samples;
void ow_samples_add(ow_samples *s, uint64_t ns);
/* The p-th percentile (0..100) of the samples held, in nanoseconds; 0 when empty. */
uint64_t ow_samples_pct(const ow_samples *s, double p);

/* ---- byte buffers ----------------------------------------------------------------------------- */

/* A growable byte buffer. Writers append fields one at a time with an explicit byte order; no
 * packed structs are ever cast onto bytes. */
typedef struct ow_buf {
  uint8_t *data;
  size_t len;
  size_t cap;
} ow_buf;

void ow_buf_init(ow_buf *b);
void ow_buf_deinit(ow_buf *b);
void ow_buf_reserve(ow_buf *b, size_t extra);
void ow_buf_put(ow_buf *b, const void *p, size_t n);
void ow_buf_u8(ow_buf *b, uint8_t v);
void ow_buf_u16(ow_buf *b, uint16_t v);
void ow_buf_u32(ow_buf *b, uint32_t v);
void ow_buf_u64(ow_buf *b, uint64_t v);
void ow_buf_i32(ow_buf *b, int32_t v);
void ow_buf_f32(ow_buf *b, float v);
void ow_buf_f64(ow_buf *b, double v);
void ow_buf_be32(ow_buf *b, uint32_t v);
void ow_buf_be64(ow_buf *b, uint64_t v);
/* A length-prefixed (u16) string. Strings longer than 65535 bytes are a caller bug. */
void ow_buf_str16(ow_buf *b, const char *s, size_t n);

/* A bounds-checked reader. The first short read sets `err` (sticky) and every later read returns
 * zeros, so a decoder checks the error once at the end instead of after every field. */
typedef struct ow_reader {
  const uint8_t *p;
  size_t left;
  int err;
} ow_reader;

void ow_reader_init(ow_reader *r, const void *p, size_t n);
uint8_t ow_rd_u8(ow_reader *r);
uint16_t ow_rd_u16(ow_reader *r);
uint32_t ow_rd_u32(ow_reader *r);
uint64_t ow_rd_u64(ow_reader *r);
int32_t ow_rd_i32(ow_reader *r);
float ow_rd_f32(ow_reader *r);
double ow_rd_f64(ow_reader *r);
uint32_t ow_rd_be32(ow_reader *r);
uint64_t ow_rd_be64(ow_reader *r);
/* Returns a pointer into the input (valid as long as the input is) and its length. */
const uint8_t *ow_rd_bytes(ow_reader *r, size_t n);
const char *ow_rd_str16(ow_reader *r, size_t *len);

/* Well-formed UTF-8 without overlong forms, surrogates or NUL: the only text the protocol carries
 * and the only text the world stores. */
bool ow_utf8_ok(const void *s, size_t n);

static inline void ow_be32_write(uint8_t *p, uint32_t v) {
  for (int i = 3; i >= 0; i--) {
    p[i] = (uint8_t)v;
    v >>= 8;
  }
}
static inline uint32_t ow_be32_read(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void ow_be64_write(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--) {
    p[i] = (uint8_t)v;
    v >>= 8;
  }
}
static inline uint64_t ow_be64_read(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
  return v;
}

/* ---- u64 -> u64 hash map ------------------------------------------------------------------------ */

/* Open addressing with linear probing and backward-shift deletion. Key 0 marks an empty slot, so
 * its value lives beside the table. */
typedef struct ow_map {
  uint64_t *keys;
  uint64_t *vals;
  size_t cap; /* power of two, or 0 */
  size_t len; /* entries, key 0 included */
  bool has_zero;
  uint64_t zero_val;
} ow_map;

void ow_map_init(ow_map *m);
void ow_map_deinit(ow_map *m);
/* Returns a pointer to the value of `key`, or NULL. Valid until the next insert or delete. */
uint64_t *ow_map_get(const ow_map *m, uint64_t key);
void ow_map_set(ow_map *m, uint64_t key, uint64_t val);
bool ow_map_del(ow_map *m, uint64_t key);

static inline uint64_t ow_hash64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

/* ---- growable vectors ---------------------------------------------------------------------------- */

#define OW_VEC(T)                                                                          \
  struct {                                                                                 \
    T *v;                                                                                  \
    size_t len, cap;                                                                       \
  }
#define OW_VEC_PUSH(vec, x)                                                                \
  do {                                                                                     \
    if ((vec).len == (vec).cap) {                                                          \
      (vec).cap = (vec).cap ? (vec).cap * 2 : 16;                                          \
      (vec).v = ow_realloc((vec).v, (vec).cap * sizeof(*(vec).v));                         \
    }                                                                                      \
    (vec).v[(vec).len++] = (x);                                                            \
  } while (0)
#define OW_VEC_FREE(vec)                                                                   \
  do {                                                                                     \
    ow_free((vec).v);                                                                      \
    (vec).v = NULL;                                                                        \
    (vec).len = (vec).cap = 0;                                                             \
  } while (0)

#endif
