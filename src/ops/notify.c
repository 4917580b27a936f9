/* ops/notify: see notify.h. The watchdog timer runs on the loop thread, beside the ticks: a ping
 * proves the loop turned within the interval, which is what a watchdog is for. */
#include "ops/notify.h"

#include <stdlib.h>
#include <systemd/sd-daemon.h>

#include "core/core.h"

struct ow_notify {
  uv_timer_t timer;
};

static void ping(uv_timer_t *t) {
  (void)t;
  sd_notify(0, "WATCHDOG=1");
}

static void closed(uv_handle_t *h) { ow_free(h->data); }

void ow_notify_ready(ow_notify **out, uv_loop_t *loop, const char *status) {
  *out = NULL;
  if (!getenv("NOTIFY_SOCKET")) return;
  sd_notifyf(0, "READY=1\nSTATUS=%s", status);
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || !usec) return;
  ow_notify *n = ow_calloc(1, sizeof *n);
  uv_timer_init(loop, &n->timer);
  uv_unref((uv_handle_t *)&n->timer); /* pings never keep a stopping server alive */
  n->timer.data = n;
  uint64_t ms = usec / 2000 ? usec / 2000 : 1;
  uv_timer_start(&n->timer, ping, ms, ms);
  OW_INFO("watchdog", "interval_ms=%llu", (unsigned long long)ms);
  *out = n;
}

void ow_notify_stopping(ow_notify *n) {
  if (getenv("NOTIFY_SOCKET")) sd_notify(0, "STOPPING=1");
  if (!n) return;
  uv_timer_stop(&n->timer);
  uv_close((uv_handle_t *)&n->timer, closed);
}
