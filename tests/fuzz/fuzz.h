/*
 * fuzz: what every fuzz target shares. Each target defines LLVMFuzzerTestOneInput (and may define
 * LLVMFuzzerInitialize); it is linked either with libFuzzer (OW_FUZZ=ON, clang) or with replay.c,
 * which runs every file of a corpus directory through it (the ctest tests fuzz_replay_<target>).
 * A target checks its properties with FUZZ_CHECK, which aborts in every build.
 */
#ifndef OW_FUZZ_H
#define OW_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond)                                                                   \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      fprintf(stderr, "%s:%d: fuzz property failed: %s\n", __FILE__, __LINE__, #cond);     \
      abort();                                                                             \
    }                                                                                      \
  } while (0)

/* Consumes the input front to back: a byte, a little-endian integer, or a run of bytes. Reads past
 * the end return zeros and empty runs, so a target never runs out of input in the middle. */
typedef struct fuzz_in {
  const uint8_t *p;
  size_t left;
} fuzz_in;

static inline uint8_t fz_u8(fuzz_in *in) {
  if (!in->left) return 0;
  in->left--;
  return *in->p++;
}
static inline uint16_t fz_u16(fuzz_in *in) {
  uint16_t lo = fz_u8(in);
  return (uint16_t)(lo | (uint16_t)fz_u8(in) << 8);
}
static inline uint32_t fz_u32(fuzz_in *in) {
  uint32_t lo = fz_u16(in);
  return lo | (uint32_t)fz_u16(in) << 16;
}
static inline uint64_t fz_u64(fuzz_in *in) {
  uint64_t lo = fz_u32(in);
  return lo | (uint64_t)fz_u32(in) << 32;
}
/* Up to n bytes (fewer at the end of the input); *got says how many. */
static inline const uint8_t *fz_bytes(fuzz_in *in, size_t n, size_t *got) {
  if (n > in->left) n = in->left;
  const uint8_t *p = in->p;
  in->p += n;
  in->left -= n;
  *got = n;
  return p;
}

/* The shipped content (content/default.json), loaded once per process; aborts if it does not
 * load. */
struct ow_content;
struct ow_content *fuzz_default_content(void);
/* Drops property names added to c's key table after the first `keep` (decoding a record adds the
 * names it does not know), so that one input does not change the next one's starting point. */
void fuzz_content_keep_keys(struct ow_content *c, uint16_t keep);

#endif
