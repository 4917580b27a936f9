/*
 * client internals exposed to tests only: drive a client without a socket (the unit test; the
 * transport callback uses ow_client__rx() itself, so the test exercises the same reassembly and
 * dispatch), or send what a well-behaved client never sends (the chaos test).
 */
#ifndef OW_CLIENT_INT_H
#define OW_CLIENT_INT_H

#include "otherworld/client.h"
#include "proto/proto.h" /* the codec (owwire) the tests drive the client with */

/* Marks the client's connection open without a socket (the state after the WebSocket handshake):
 * messages queue up and stay queued. Calls on_open. */
void ow_client__test_open(ow_client *c);

/* Simulates the transport closing: the client goes back to "not connected" and on_close runs. */
void ow_client__test_close(ow_client *c);

/* Handles one received WebSocket fragment: first/final as lws_is_first_fragment() and
 * lws_is_final_fragment() report them, binary as lws_frame_is_binary(). Returns 0, or a negative
 * code after which the connection is being closed (already reported through on_error). */
int ow_client__rx(ow_client *c, const void *p, size_t n, bool first, bool final, bool binary);

/* The bytes queued for sending (whole protocol messages, the pending pose not included). The
 * test may read them and reset ->len to 0 to consume them. */
ow_buf *ow_client__txq(ow_client *c);

/* Encodes the pending pose (if any) into out and clears it; returns whether there was one. */
bool ow_client__take_pose(ow_client *c, ow_buf *out);

/* Entities stored in the table, absent ones (kept for possible delta bases) included. */
size_t ow_client__stored(const ow_client *c);

/* Sends an ACTION with the given sequence number on the joined connection, outside the library's
 * numbering and without keeping it: the chaos test re-sends already confirmed sequence numbers to
 * check that the server answers them with the original result (replayed). The reply arrives
 * through on_applied (and on_durable) as usual. Returns the request id; OW_E_STATE when not
 * joined, OW_E_INVAL for seq 0, -ENOBUFS when the queue is full. */
int ow_client__action_at(ow_client *c, uint64_t seq, const ow_action *a);

#endif
