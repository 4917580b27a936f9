/*
 * fuzz target proto_server: the bytes of one WebSocket message from a client, handled as the
 * server's process() handles them (src/server/server.c): ow_proto_decode at the start, dispatch,
 * move on by the decoded size, until the message ends or a message does not decode. Each decoded
 * message is then used the way its handler uses it, on a real world (src/world) instead of a zone:
 * ACTION is applied, POSE dequantized and streamed, ACK given to a view, CHAT re-encoded as the
 * EVENT the server broadcasts, names and passwords checked. Properties: every fixed-layout message
 * re-encodes to exactly its bytes; the world stays consistent.
 */
#include "fuzz.h"

#include "auth/auth.h"
#include "proto/proto.h"
#include "server/replica.h"
#include "world_fixture.h"

/* FUZZ_VERBOSE=1 in the environment: say what each message did (for checking seeds). */
static bool verbose;

static void check_roundtrip(const uint8_t *p, size_t used, const ow_msg *m) {
  ow_buf b;
  ow_buf_init(&b);
  ow_proto_encode(&b, m);
  FUZZ_CHECK(b.len == used);
  FUZZ_CHECK(memcmp(b.data, p, used) == 0);
  ow_buf_deinit(&b);
}

static void use_message(fuzz_world *fw, ow_view *view, const uint8_t *p, size_t used,
                        const ow_msg *m) {
  switch (m->type) {
  case OW_MSG_HELLO:
  case OW_MSG_RESUME:
  case OW_MSG_JOIN:
  case OW_MSG_LEAVE:
  case OW_MSG_LOGOUT:
  case OW_MSG_PING:
  case OW_MSG_BYE: check_roundtrip(p, used, m); break;
  case OW_MSG_REGISTER:
  case OW_MSG_LOGIN:
    check_roundtrip(p, used, m);
    /* on_credentials: validated before anything is copied into the job's fixed buffers. */
    if (ow_auth_name_ok(m->u.creds.name.p, m->u.creds.name.n) &&
        ow_auth_password_ok(m->u.creds.password.n)) {
      FUZZ_CHECK(m->u.creds.name.n <= OW_NAME_MAX_LEN);
      FUZZ_CHECK(m->u.creds.password.n <= OW_PASSWORD_MAX);
    }
    break;
  case OW_MSG_ACTION: {
    check_roundtrip(p, used, m);
    ow_result r;
    int rc = ow_world_apply(fw->w, FUZZ_ACCOUNT, fw->avatar, &m->u.action.action, &r);
    FUZZ_CHECK(rc == r.code && rc <= 0);
    if (verbose)
      fprintf(stderr, "  ACTION type=%u target=%llu -> %s entity=%llu count=%u\n",
              m->u.action.action.type, (unsigned long long)m->u.action.action.target,
              ow_err_name(rc), (unsigned long long)r.entity, r.count);
    fuzz_world_check(fw);
    break;
  }
  case OW_MSG_POSE: {
    check_roundtrip(p, used, m);
    /* on_pose */
    ow_transform xf;
    ow_transform_identity(&xf);
    for (int i = 0; i < 3; i++) xf.pos[i] = ow_dequant_mm(m->u.pose.root[i]);
    ow_quat_unpack(m->u.pose.root_rot, xf.rot);
    for (int i = 0; i < 4; i++) FUZZ_CHECK(xf.rot[i] >= -1.0f && xf.rot[i] <= 1.0f);
    ow_world_stream(fw->w, FUZZ_ACCOUNT, fw->avatar, fw->avatar, &xf);
    /* The pose is kept and published to others as it came. */
    ow_buf b;
    ow_buf_init(&b);
    ow_proto_put_pose(&b, &m->u.pose);
    ow_reader r;
    ow_reader_init(&r, b.data, b.len);
    ow_pose back;
    FUZZ_CHECK(ow_proto_read_pose(&r, &back) == 0 && r.left == 0);
    ow_buf_deinit(&b);
    break;
  }
  case OW_MSG_ACK:
    check_roundtrip(p, used, m);
    ow_view_ack(view, m->u.ack.snapshot);
    break;
  case OW_MSG_CHAT: {
    check_roundtrip(p, used, m);
    /* on_chat: the text goes to every player in an EVENT, which must decode again. */
    ow_msg e = {.type = OW_MSG_EVENT};
    e.u.event.kind = OW_EVENT_CHAT;
    e.u.event.from = FUZZ_ACCOUNT;
    e.u.event.text = m->u.chat.text;
    ow_buf b;
    ow_buf_init(&b);
    ow_proto_encode(&b, &e);
    ow_msg back;
    size_t u;
    FUZZ_CHECK(ow_proto_decode(b.data, b.len, &u, &back, NULL, 0) == 0 && u == b.len);
    FUZZ_CHECK(back.u.event.text.n == m->u.chat.text.n);
    ow_buf_deinit(&b);
    break;
  }
  default:
    /* A server-to-client type: the server answers with a protocol error. It decoded, so it
     * re-encodes too (the variable ones are built with other helpers). */
    if (m->type != OW_MSG_JOINED && m->type != OW_MSG_SNAPSHOT && m->type != OW_MSG_POSES &&
        m->type != OW_MSG_DURABLE)
      check_roundtrip(p, used, m);
    break;
  }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  ow_log_level = getenv("FUZZ_VERBOSE") ? OW_LOG_DEBUG : OW_LOG_ERROR + 1;
  verbose = getenv("FUZZ_VERBOSE") != NULL;
  fuzz_default_content();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *p, size_t n) {
  fuzz_world fw;
  fuzz_world_make(&fw, fuzz_default_content());
  ow_view *view = ow_view_create();
  size_t off = 0;
  while (off < n) {
    ow_msg m;
    size_t used = 0;
    char err[160];
    err[0] = 0;
    int rc = ow_proto_decode(p + off, n - off, &used, &m, err, sizeof err);
    if (verbose) fprintf(stderr, "  %s: %s\n", rc ? "refused" : ow_msg_name(m.type), rc ? err : "ok");
    if (rc) {
      FUZZ_CHECK(rc == OW_E_PROTO || rc == OW_E_TOO_LARGE);
      FUZZ_CHECK(err[0] != 0 && strlen(err) < sizeof err);
      break;
    }
    FUZZ_CHECK(used >= OW_MSG_HEADER && used <= n - off);
    use_message(&fw, view, p + off, used, &m);
    off += used;
  }
  ow_view_destroy(view);
  fuzz_world_free(&fw);
  return 0;
}
