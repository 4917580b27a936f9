/*
 * otherworld client library: speaks the otherworld protocol (docs/protocol.md) over a WebSocket
 * (libwebsockets 4.1 client). One ow_client_ctx holds any number of connections and is pumped by
 * ow_client_ctx_service() on the caller's thread; every callback runs inside that call.
 *
 * What the library does for the caller:
 *  - queues outgoing messages per connection and packs them into binary WebSocket messages of at
 *    most `max_message` bytes (WELCOME), flushed when the socket is writeable;
 *  - reassembles fragmented WebSocket messages (bounded) and decodes every protocol message in
 *    them with the shared codec (src/proto, the owwire library);
 *  - numbers actions per session (from SESSION's last_seq + 1) and keeps every action until it is
 *    confirmed durable, so that after a reconnect and RESUME it re-sends them with the same
 *    sequence numbers once the world is joined again;
 *  - applies snapshots (chunks, full states and deltas) to a local entity table and ACKs them.
 *    A delta is applied against its base snapshot, as in Quake III: the client keeps the
 *    membership of the snapshots the server may still use as a base;
 *  - coalesces poses: only the latest pose waits for the socket (latest value wins).
 *
 * Threading: nothing here is thread-safe. A context and all its clients belong to the thread that
 * created the context; call every function, and receive every callback, on that thread.
 *
 * Errors: functions return 0 (or a request id > 0) on success and a negative code on failure:
 * OW_E_* from otherworld/error.h or -errno. Memory is allocated through ow_malloc (src/core), which
 * aborts rather than return NULL.
 *
 * Types shared with the server (ow_pose, ow_wire_entity, ow_action, ow_result) are the plain
 * structures of otherworld/wire.h; this header includes nothing of the server. Link the `owclient`
 * CMake target, which brings owwire (the codec and allocator, never the server library).
 */
#ifndef OTHERWORLD_CLIENT_H
#define OTHERWORLD_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "otherworld/error.h"
#include "otherworld/protocol.h"
#include "otherworld/wire.h"

typedef struct ow_client_ctx ow_client_ctx;
typedef struct ow_client ow_client;

/* ---- context ------------------------------------------------------------------------------- */

typedef struct ow_client_ctx_opts {
  /* Connections the context must hold at once (sizes libwebsockets' poll table). 0: 1024. */
  unsigned max_connections;
  /* libwebsockets log mask (LLL_ERR | LLL_WARN ...). 0: errors only. lws logs to stderr and the
   * mask is process-wide. */
  int lws_log_level;
} ow_client_ctx_opts;

/* Creates a context (an lws context without a listening port). opts may be NULL for defaults.
 * On success stores the context in *out and returns 0; returns OW_E_INVAL when libwebsockets
 * refuses to create one. The caller destroys it with ow_client_ctx_destroy(). */
int ow_client_ctx_create(const ow_client_ctx_opts *opts, ow_client_ctx **out);

/* Destroys every client still attached to the context (without calling their callbacks), closes
 * their sockets and frees the context. NULL is allowed. Must not be called from a callback. */
void ow_client_ctx_destroy(ow_client_ctx *ctx);

/* Runs pending network work: connects, writes queued messages, reads and dispatches replies.
 * Waits at most timeout_ms (0: do not wait) for something to happen and returns after one round,
 * so call it in a loop. Returns 0, or a negative code if libwebsockets reports a failure of the
 * context itself. Callbacks of any client of this context run inside this call. */
int ow_client_ctx_service(ow_client_ctx *ctx, int timeout_ms);

/* ---- what the server tells us -------------------------------------------------------------- */

/* WELCOME. server_name is NUL-terminated; valid during the callback only. */
typedef struct ow_client_welcome {
  uint16_t version, tick_hz, pose_hz;
  uint64_t server_time_us;
  uint32_t max_message;
  const char *server_name;
} ow_client_welcome;

/* SESSION. */
typedef struct ow_client_session {
  uint8_t token[OW_TOKEN_LEN];
  uint64_t account, avatar, last_seq;
  uint8_t role; /* OW_ROLE_* */
  uint32_t expires_in_s;
  bool resumed;
} ow_client_session;

/* The world description of JOINED. Owned by the client; valid until the next JOINED on this
 * client or its destruction (ow_client_world_get() returns the latest). Strings are NUL-terminated. */
typedef struct ow_client_type {
  uint16_t id;
  uint8_t kind; /* 1 resource, 2 item, 3 structure, 4 container, 5 vehicle, ... 10 avatar */
  const char *name;
} ow_client_type;
typedef struct ow_client_recipe {
  uint16_t id;
  const char *name;
} ow_client_recipe;
typedef struct ow_client_world {
  float region_size;     /* metres */
  float interest_radius; /* metres */
  uint16_t ntypes, nrecipes, nkeys;
  const ow_client_type *types;
  const ow_client_recipe *recipes;
  const char *const *keys; /* property key i is keys[i] */
} ow_client_world;

/* Returns the id of the type (or recipe) called `name`, or -1 if the world has none. */
int ow_client_world_type(const ow_client_world *w, const char *name);
int ow_client_world_recipe(const ow_client_world *w, const char *name);
/* Returns the kind of type `id`, or 0 if unknown. */
uint8_t ow_client_world_kind(const ow_client_world *w, uint16_t id);

/* Callbacks. Every member may be NULL. They run inside ow_client_ctx_service() (or, for tests,
 * inside the feeding call) on the context's thread, with the `ud` given to ow_client_create().
 * A callback may call any ow_client_* function, including ow_client_destroy() on its own client
 * (the memory is released once the callback returns) but not ow_client_ctx_destroy(). Pointers
 * passed to a callback are valid during the call only unless stated otherwise. */
typedef struct ow_client_callbacks {
  /* The WebSocket is open; queued messages are being sent. */
  void (*on_open)(ow_client *c, void *ud);
  void (*on_welcome)(ow_client *c, void *ud, uint32_t req, const ow_client_welcome *w);
  /* OK, the reply to REGISTER, LEAVE and LOGOUT. */
  void (*on_ok)(ow_client *c, void *ud, uint32_t req);
  void (*on_session)(ow_client *c, void *ud, uint32_t req, const ow_client_session *s);
  /* JOINED. Actions held back until now have just been (re)sent. */
  void (*on_joined)(ow_client *c, void *ud, uint32_t req, const ow_client_world *w);
  /* APPLIED. r->code is 0 or the world's reason code (docs/world.md). */
  void (*on_applied)(ow_client *c, void *ud, uint32_t req, uint64_t seq, const ow_result *r,
                     uint64_t frame, bool replayed);
  /* DURABLE: seqs[0..n) of this session are on disk (status 0), or the server could not write
   * the frame (status < 0; those actions stay queued for re-sending after a reconnect). */
  void (*on_durable)(ow_client *c, void *ud, uint64_t frame, int32_t status, const uint64_t *seqs,
                     size_t n);
  /* An entity entered the view or changed (listed in a snapshot, or back in view unchanged); e is
   * the table's copy (valid until the next change of the table). */
  void (*on_entity)(ow_client *c, void *ud, const ow_wire_entity *e);
  /* An entity left the view: listed as removed, or not part of a completed snapshot's state (a
   * full state that does not list it; a delta whose base snapshot did not have it). */
  void (*on_removed)(ow_client *c, void *ud, uint64_t id);
  /* The last chunk of snapshot `id` was applied and acknowledged. base 0 means a full state. */
  void (*on_snapshot)(ow_client *c, void *ud, uint32_t id, uint32_t base, uint64_t frame);
  /* One avatar's pose from POSES (called once per avatar in the message). */
  void (*on_poses)(ow_client *c, void *ud, uint32_t tick, uint64_t avatar, const ow_pose *p);
  /* EVENT: kind OW_EVENT_CHAT or OW_EVENT_SYSTEM; text NUL-terminated, len bytes. */
  void (*on_event)(ow_client *c, void *ud, uint8_t kind, uint64_t from, const char *text,
                   size_t len);
  void (*on_pong)(ow_client *c, void *ud, uint32_t req, uint64_t client_time,
                  uint64_t server_time_us);
  /* ERROR from the server (req echoes the request), or a local failure with req 0: connection
   * failure (-ECONNREFUSED and the transport's reason), malformed server data (OW_E_PROTO),
   * oversized message (OW_E_TOO_LARGE), actions lost with a replaced session (OW_E_NO_SESSION,
   * req of the lost action). text is NUL-terminated. */
  void (*on_error)(ow_client *c, void *ud, uint32_t req, int code, const char *text);
  /* SERVER_BYE (OW_BYE_*); the server closes the connection after it. */
  void (*on_bye)(ow_client *c, void *ud, uint16_t reason, const char *text);
  /* The connection is closed (or could not be opened). Called once per ow_client_connect(). The
   * client stays usable: connect again and RESUME to continue the session. */
  void (*on_close)(ow_client *c, void *ud);
} ow_client_callbacks;

/* ---- connections --------------------------------------------------------------------------- */

/* Creates a client (not connected) in ctx. cb is copied; ud is passed to every callback. Never
 * fails (aborts when out of memory). Destroy with ow_client_destroy(). */
ow_client *ow_client_create(ow_client_ctx *ctx, const ow_client_callbacks *cb, void *ud);

/* Closes the connection without callbacks and frees the client (now, or when the running
 * callback of this client returns). NULL is allowed. */
void ow_client_destroy(ow_client *c);

/* Bounds memory per connection: rx_max caps a reassembled WebSocket message (default 1 MiB; the
 * server never sends more than 60 KiB), tx_max caps bytes waiting to be sent (default 256 KiB).
 * 0 keeps the current value. A larger incoming message closes the connection with on_error
 * OW_E_TOO_LARGE; a full send queue makes send functions return -ENOBUFS. */
void ow_client_set_limits(ow_client *c, size_t rx_max, size_t tx_max);

/* Starts connecting to ws://host:port<path> (path NULL: "/ws"), offering subprotocol
 * otherworld.v1. Returns 0 when the attempt is under way; the outcome arrives as on_open, or as
 * on_error (req 0, -ECONNREFUSED) followed by on_close, always from ow_client_ctx_service().
 * Returns OW_E_INVAL for a NULL host or port outside 1..65535, OW_E_STATE if the client is
 * already connected or connecting. host and path are copied. Messages may be queued right after
 * this call; they are sent once the WebSocket is open. A new connection starts with an empty send
 * queue and no snapshot state; unconfirmed actions are kept. */
int ow_client_connect(ow_client *c, const char *host, int port, const char *path);

/* Sends BYE NORMAL, then closes the WebSocket once everything queued is written. on_close
 * follows. Returns 0, or -ENOTCONN if there is no connection. */
int ow_client_close(ow_client *c);

/* True while connecting or connected. */
bool ow_client_connected(const ow_client *c);

/* ---- requests ------------------------------------------------------------------------------ */

/* Each request function queues one message and returns its request id (> 0, chosen by the
 * library, echoed by the reply and by ERROR), or a negative code: -ENOTCONN without a connection,
 * -ENOBUFS when the send queue is full, OW_E_INVAL for invalid arguments. Strings are copied. */

/* HELLO with the newest protocol version (OW_PROTO_VERSION, 2: compact POSES); client_name at most
 * 64 bytes of UTF-8. ow_client_hello_version asks for another version (OW_PROTO_VERSION_MIN ..
 * OW_PROTO_VERSION, else OW_E_INVAL); on_poses delivers the same ow_pose whichever is agreed. */
int ow_client_hello(ow_client *c, const char *client_name);
int ow_client_hello_version(ow_client *c, const char *client_name, uint16_t version);
/* REGISTER / LOGIN. OW_E_BAD_NAME when the name is not 3..32 bytes or the password not 8..128
 * bytes (checked here because the wire length field is one byte), OW_E_INVAL if not UTF-8. */
int ow_client_register(ow_client *c, const char *name, const char *password);
int ow_client_login(ow_client *c, const char *name, const char *password);
/* RESUME with a token from an earlier SESSION (see ow_client_token()). */
int ow_client_resume(ow_client *c, const uint8_t token[OW_TOKEN_LEN]);
int ow_client_join(ow_client *c);
/* LEAVE: actions issued afterwards wait until the next JOINED. */
int ow_client_leave(ow_client *c);
int ow_client_logout(ow_client *c);
/* CHAT; OW_E_TEXT_TOO_LONG above 512 bytes, OW_E_INVAL if not UTF-8. */
int ow_client_chat(ow_client *c, const char *text);
/* ADMIN operation `op` (OW_ADMIN_*) on `account` (ignored by ANNOUNCE), with `role` (SET_ROLE) and
 * `text` (KICK reason, ANNOUNCE message; NULL is empty). The reply is OK, or ERROR with
 * OW_E_NOT_ADMIN when the session's role is not admin. OW_E_TEXT_TOO_LONG above 512 bytes. */
int ow_client_admin(ow_client *c, uint8_t op, uint64_t account, uint8_t role, const char *text);
/* PING with an opaque client_time, echoed in PONG. */
int ow_client_ping(ow_client *c, uint64_t client_time);

/* ACTION. Gives the action the session's next sequence number (stored in *seq if seq is not
 * NULL) and keeps it until DURABLE confirms it, ERROR refuses it, or a fresh (not resumed)
 * session replaces the old one. It is sent at once when the world is joined on this connection,
 * otherwise at the next JOINED. An action of a type that is not built-in carries a->nargs argument
 * bytes from a->args, which the library copies (the caller's may go at once). Returns the request
 * id; OW_E_INVAL for more than OW_ACTION_ARGS_MAX argument bytes (or nargs without args);
 * OW_E_STATE before the first SESSION; -ENOBUFS when 1024 actions are already unconfirmed or the
 * queue is full. */
int ow_client_action(ow_client *c, const ow_action *a, uint64_t *seq);

/* Number of actions issued and not yet confirmed durable (sent or waiting). */
size_t ow_client_unconfirmed(const ow_client *c);

/* POSE: replaces the pose waiting to be sent, if any (latest value wins), and sends it with the
 * next write. Returns 0, -ENOTCONN, or OW_E_INVAL for a mask above 7 or more than 8 trackers. */
int ow_client_pose(ow_client *c, const ow_pose *p);

/* A bone for ow_client_pose_build(): position in metres relative to the avatar root, rotation
 * as a quaternion (x, y, z, w; normalized here). */
typedef struct ow_client_bone {
  float pos[3];
  float rot[4];
} ow_client_bone;

/* Builds a quantized pose: root position in world metres and root rotation, then `bones` in the
 * order head, left hand, right hand (those whose bit is set in mask), then ntrackers trackers.
 * Returns 0; OW_E_INVAL for mask > 7, ntrackers > 8, NULL bones with bones required, or a zero or
 * non-finite quaternion; OW_E_OUT_OF_BOUNDS for a non-finite position or a bone further than
 * 32.767 m from the root on any axis (the wire holds millimetres in 16 bits; nothing is clamped). */
int ow_client_pose_build(ow_pose *out, const float root_pos[3], const float root_rot[4],
                         uint8_t mask, uint8_t ntrackers, const ow_client_bone *bones);

/* ---- state --------------------------------------------------------------------------------- */

/* The entity with this id in the local table, or NULL. Valid until the table next changes (the
 * next snapshot, i.e. inside the next ow_client_ctx_service()). String properties point into
 * memory owned by the table. */
const ow_wire_entity *ow_client_entity(const ow_client *c, uint64_t id);
size_t ow_client_entity_count(const ow_client *c);
/* Calls fn for every entity of the local table, in no particular order. fn must not change the
 * table (it may send messages). */
void ow_client_entity_each(const ow_client *c, void (*fn)(void *ud, const ow_wire_entity *e),
                           void *ud);

/* The latest world description, or NULL before the first JOINED. */
const ow_client_world *ow_client_world_get(const ow_client *c);

/* The latest SESSION (token included, for ow_client_resume()): copies it into *session (if not
 * NULL) and returns true, or returns false when no SESSION was received yet. */
bool ow_client_session_get(const ow_client *c, ow_client_session *session);

/* Byte and message counters since the client was created. Bytes are WebSocket payload bytes. */
typedef struct ow_client_stats {
  uint64_t bytes_up, bytes_down;       /* WebSocket payload bytes sent / received */
  uint64_t ws_up, ws_down;             /* WebSocket messages */
  uint64_t msgs_up, msgs_down;         /* protocol messages */
  uint64_t poses_coalesced;            /* poses replaced before they could be sent */
  uint64_t snapshots;                  /* snapshots applied (all chunks received) */
  uint64_t base_missing;               /* deltas against a snapshot the client did not keep */
} ow_client_stats;
void ow_client_stats_get(const ow_client *c, ow_client_stats *out);

/* The user data given to ow_client_create(). */
void *ow_client_userdata(const ow_client *c);

#endif
