/*
 * replica: what other players are allowed to see. A mirror of every entity as of the last durable
 * frame (confirmed reads), built from the sealed records of each durable frame and indexed by
 * region cell; and per-client views that turn it into snapshots: deltas against the last snapshot
 * the client acknowledged, a full state when there is none (the Quake III scheme).
 */
#ifndef OW_REPLICA_H
#define OW_REPLICA_H

#include "proto/proto.h"
#include "store/store.h"
#include "world/world.h"

typedef struct ow_replica ow_replica;
typedef struct ow_view ow_view;

/* Builds the mirror from the world as it is now (right after recovery, all of it is durable):
 * `frame` is the durable frame the world is at, which snapshots report until the next one. */
ow_replica *ow_replica_create(ow_world *w, uint64_t frame);
void ow_replica_destroy(ow_replica *r);
/* Applies a durable frame's sealed entity puts and deletes. */
void ow_replica_apply(ow_replica *r, const ow_batch *b, uint64_t frame);
size_t ow_replica_count(const ow_replica *r);

ow_view *ow_view_create(void);
void ow_view_destroy(ow_view *v);
/* The client applied snapshot `id`. Ids it was never sent are ignored. */
void ow_view_ack(ow_view *v, uint32_t id);
/* The first snapshot (after creation or a reset) waits until the mirror holds entity `self` (the
 * player's avatar) within the area: a client's first SNAPSHOT after JOIN always shows its own
 * avatar and inventory. 0 (the default) sends it at once. */
void ow_view_expect(ow_view *v, ow_id self);
/* Forgets every snapshot: the next one is a full state. */
void ow_view_reset(ow_view *v);

/* Computes the client's next snapshot around `center` (cells within radius_cells) and calls emit
 * once per SNAPSHOT message (each at most 60 KiB). Sends nothing when nothing changed since the
 * last snapshot and that one is acknowledged or recent. now_ns drives re-sending unacknowledged
 * snapshots. Returns the number of messages emitted. */
typedef void (*ow_emit_fn)(void *ud, const uint8_t *p, size_t n);
int ow_view_update(ow_view *v, ow_replica *r, ow_cell center, int radius_cells, uint64_t now_ns,
                   ow_emit_fn emit, void *ud);

#endif
