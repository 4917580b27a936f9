/* crash test: the side file's records and the pieces both processes share. See crash.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crash.h"

enum { REC_MAGIC = 0x5243574fu /* "OWCR" */ };

static uint32_t fnv32(const uint8_t *p, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
  return h;
}

static void rec_encode(const cr_rec *r, ow_buf *b) {
  size_t start = b->len;
  ow_buf_u32(b, REC_MAGIC);
  ow_buf_u8(b, r->type);
  ow_buf_u32(b, r->flags);
  ow_buf_i32(b, r->player);
  ow_buf_u64(b, r->session);
  ow_buf_u64(b, r->seq);
  ow_buf_u64(b, r->frame);
  ow_buf_u64(b, r->account);
  ow_buf_u64(b, r->avatar);
  ow_buf_i32(b, r->res.code);
  ow_buf_u64(b, r->res.entity);
  ow_buf_u32(b, r->res.count);
  ow_buf_u16(b, (uint16_t)ow_action_size(&r->action)); /* as a frame record frames it */
  ow_action_encode(&r->action, b);
  OW_ASSERT(b->len - start <= CR_REC_SIZE - 4);
  while (b->len - start < CR_REC_SIZE - 4) ow_buf_u8(b, 0);
  ow_buf_u32(b, fnv32(b->data + start, CR_REC_SIZE - 4));
}

static bool rec_decode(const uint8_t *p, cr_rec *r) {
  ow_reader rd;
  ow_reader_init(&rd, p + CR_REC_SIZE - 4, 4);
  if (ow_rd_u32(&rd) != fnv32(p, CR_REC_SIZE - 4)) return false;
  ow_reader_init(&rd, p, CR_REC_SIZE - 4);
  if (ow_rd_u32(&rd) != REC_MAGIC) return false;
  memset(r, 0, sizeof *r);
  r->type = ow_rd_u8(&rd);
  r->flags = ow_rd_u32(&rd);
  r->player = ow_rd_i32(&rd);
  r->session = ow_rd_u64(&rd);
  r->seq = ow_rd_u64(&rd);
  r->frame = ow_rd_u64(&rd);
  r->account = ow_rd_u64(&rd);
  r->avatar = ow_rd_u64(&rd);
  r->res.code = ow_rd_i32(&rd);
  r->res.entity = ow_rd_u64(&rd);
  r->res.count = ow_rd_u32(&rd);
  size_t alen = ow_rd_u16(&rd);
  if (rd.err || ow_action_decode(&rd, alen, &r->action)) return false;
  return !rd.err && r->type >= CR_SESSION && r->type <= CR_ERROR;
}

void cr_side_open(cr_side *s, const char *path) {
  s->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (s->fd < 0) {
    fprintf(stderr, "crash: cannot open side file %s: %s\n", path, strerror(errno));
    abort();
  }
  ow_buf_init(&s->pend);
}

void cr_side_add(cr_side *s, const cr_rec *r) { rec_encode(r, &s->pend); }

void cr_side_flush(cr_side *s) {
  size_t off = 0;
  while (off < s->pend.len) {
    ssize_t n = write(s->fd, s->pend.data + off, s->pend.len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      /* A record the parent never sees would make a confirmed action look unconfirmed, which
       * only weakens the test; still, a side file we cannot write is a broken test run. */
      fprintf(stderr, "crash: side file write failed: %s\n", strerror(errno));
      abort();
    }
    off += (size_t)n;
  }
  s->pend.len = 0;
}

void cr_side_close(cr_side *s) {
  cr_side_flush(s);
  close(s->fd);
  ow_buf_deinit(&s->pend);
}

size_t cr_side_read(const char *path, size_t from, cr_recs *out, bool truncate, bool *torn) {
  *torn = false;
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return from;
  struct stat st;
  if (fstat(fd, &st)) {
    close(fd);
    return from;
  }
  size_t size = (size_t)st.st_size, off = from;
  uint8_t buf[CR_REC_SIZE * 256];
  while (off + CR_REC_SIZE <= size) {
    size_t want = size - off;
    if (want > sizeof buf) want = sizeof buf;
    want -= want % CR_REC_SIZE;
    ssize_t n = pread(fd, buf, want, (off_t)off);
    if (n <= 0) break;
    size_t whole = (size_t)n - (size_t)n % CR_REC_SIZE, i;
    for (i = 0; i < whole; i += CR_REC_SIZE) {
      cr_rec r;
      if (!rec_decode(buf + i, &r)) break;
      OW_VEC_PUSH(*out, r);
    }
    off += i;
    if (i < whole) break;
  }
  if (off != size) {
    *torn = true;
    if (truncate && ftruncate(fd, (off_t)off)) {
      fprintf(stderr, "crash: cannot truncate side file: %s\n", strerror(errno));
      abort();
    }
  }
  close(fd);
  return off;
}

/* ---- shared setup ---------------------------------------------------------------------------- */

ow_content *cr_content(void) {
  ow_content *c;
  char err[512];
  if (ow_content_load_file(ow_test_source_path(CR_CONTENT), &c, err, sizeof err)) {
    fprintf(stderr, "crash: content: %s\n", err);
    abort();
  }
  return c;
}

ow_zone_config cr_zone_config(void) {
  ow_zone_config zc = ow_test_zone_config();
  zc.replay_window = CR_REPLAY_WINDOW;
  zc.frame_log_keep = 0; /* keep every frame: the checks look every confirmed action up */
  return zc;
}

typedef struct inv_find {
  ow_id avatar, found;
  uint16_t type;
  int n;
} inv_find;

static void inv_visit(void *ud, const ow_entity *e) {
  inv_find *f = ud;
  if (e->parent == f->avatar && e->type == f->type) {
    f->found = e->id;
    f->n++;
  }
}

ow_id cr_inventory_of(ow_zone *z, ow_id avatar) {
  inv_find f = {.avatar = avatar, .type = ow_world_content(ow_zone_world(z))->inventory_type};
  ow_world_each(ow_zone_world(z), inv_visit, &f);
  return f.n == 1 ? f.found : 0;
}

void cr_side_add_durable(cr_side *s, const ow_frame_info *f) {
  for (size_t i = 0; i < f->nactions && !f->status; i++) {
    const ow_applied *a = &f->actions[i];
    cr_rec r = {.type = CR_DURABLE, .session = a->session, .seq = a->seq, .frame = f->frame,
                .res = a->result};
    cr_side_add(s, &r);
  }
  cr_side_flush(s);
}
