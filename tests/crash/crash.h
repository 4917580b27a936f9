/*
 * crash test: a child process runs the real zone driver (LMDB store, libuv loop, commits on the
 * thread pool) under a random workload and appends every durable confirmation to a side file; the
 * parent kills it with SIGKILL at random moments, recovers the store itself and checks that every
 * confirmed action is in the frame log exactly once with the same result and that item totals are
 * conserved. This header holds what both halves share: the side file's record format, the workload
 * content and the zone settings.
 */
#ifndef OW_CRASH_H
#define OW_CRASH_H

#include <stdbool.h>
#include <stdint.h>

#include "support.h"

enum {
  CR_PLAYERS = 8,       /* accounts 1..CR_PLAYERS, logged in and filled by the setup phase */
  CR_REPLAY_WINDOW = 64 /* the zone's replay window; replay checks stay inside it */
};
/* The workload's content: four public chests (seeded, so owner 0) and inexhaustible trees, rocks
 * and crystals around the spawn, all within reach of an avatar near the spawn; three item types
 * with small stacks so that transfers split, merge and fill containers (OW_E_FULL). The spawn is
 * at a corner of four regions, so moves and streams keep crossing region boundaries. */
#define CR_CONTENT "tests/crash/crash_content.json"
/* A fast tick so that many frames commit between two kills, and a short checkpoint period so that
 * kills also land in checkpoint commits (streamed avatar poses). */
#define CR_TICK_HZ 200.0
#define CR_CHECKPOINT_S 0.25
/* The child's file descriptor for telling the parent it has recovered and is running. */
#define CR_READY_FD 3

/* ---- side file ------------------------------------------------------------------------------- */

/* What the child (and the parent's setup) appends to the side file. The file is append-only and
 * never fsynced: SIGKILL does not lose page-cache data, and the test never loses power. */
typedef enum cr_rec_type {
  CR_SESSION = 1, /* a login whose first frame is durable: player (-1 for a visitor), account,
                     session, avatar */
  CR_INTENT,      /* the action about to be sent as (session, seq); written before ow_zone_act so
                     that a restart can send the very same action again */
  CR_DURABLE,     /* (session, seq) confirmed durable with result res in frame */
  CR_REPLAY,      /* a replay check or a resend after a restart (flags say which and how) */
  CR_ERROR,       /* the child found something wrong; account holds a code, res what it got */
} cr_rec_type;

enum {
  CR_F_FROM_REPLAY = 1, /* DURABLE: learned from a replay of an unconfirmed resend */
  CR_F_CHECK = 2,       /* REPLAY: a confirmed action sent again to check its replay */
  CR_F_OK = 4,          /* REPLAY check: the replay matched the recorded result */
  CR_F_RESEND = 8,      /* REPLAY: an unconfirmed action sent again after a restart */
  CR_F_REPLAYED = 16,   /* REPLAY resend: the zone answered it as a replay */
};

/* Child error codes carried in an CR_ERROR record's account field. */
enum {
  CR_ERR_SESSION_LOST = 1, /* a trusted session is unknown after recovery */
  CR_ERR_ACT = 2,          /* ow_zone_act failed (seq too old, no session, ...) */
  CR_ERR_STORE = 3,        /* a commit failed */
  CR_ERR_AVATAR = 4,       /* a session's avatar or inventory is missing or wrong */
  CR_ERR_REPLAY_FRAME = 5, /* a replay answered a frame that is not durable after recovery */
  CR_ERR_SEQ = 6,          /* the store knows a later seq than any intent */
};

typedef struct cr_rec {
  uint8_t type; /* cr_rec_type */
  uint32_t flags;
  int32_t player;
  uint64_t session, seq, frame;
  uint64_t account, avatar;
  ow_result res;
  ow_action action;
} cr_rec;

/* Fixed-size records: a torn tail (which SIGKILL should never produce, but the reader does not
 * rely on it) is recognised by its length or its checksum and dropped. */
#define CR_REC_SIZE 160

typedef OW_VEC(cr_rec) cr_recs;

typedef struct cr_side {
  int fd;
  ow_buf pend;
} cr_side;

/* Opens the side file for appending (O_APPEND, created if missing). Aborts on failure. */
void cr_side_open(cr_side *s, const char *path);
/* Queues a record; cr_side_flush() writes everything queued with one write(). */
void cr_side_add(cr_side *s, const cr_rec *r);
void cr_side_flush(cr_side *s);
/* Queues a CR_DURABLE record for every action of a durable frame (status 0), then flushes. */
void cr_side_add_durable(cr_side *s, const ow_frame_info *f);
void cr_side_close(cr_side *s);

/* Reads the whole records from byte offset `from` to the end, appending them to *out. Returns the
 * offset just after the last good record; *torn is set when bytes after it do not form a valid
 * record (a torn or corrupt tail). When `truncate` is set, such a tail is cut off so that later
 * appends stay aligned. */
size_t cr_side_read(const char *path, size_t from, cr_recs *out, bool truncate, bool *torn);

/* ---- shared setup ---------------------------------------------------------------------------- */

ow_content *cr_content(void);
ow_zone_config cr_zone_config(void);
/* The inventory (a child of the inventory type) of `avatar`, 0 if none. */
ow_id cr_inventory_of(ow_zone *z, ow_id avatar);
/* Results and actions are compared, and workloads drawn (OW_CRASH_SEED replays one), with the
 * shared helpers of tests/support: ow_test_result_eq, ow_test_action_eq, ow_test_rand. */

/* The child's entry point: argv = {prog, "--child", dir, seed, run}. It runs until SIGKILL, or
 * until SIGTERM stops it cleanly (exit status 0). It exits with 3 after reporting a failed check
 * in the side file, 4 if it outlived its lifetime, 2 on bad arguments. */
int cr_child_main(int argc, char **argv);

#endif
