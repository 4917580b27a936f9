/*
 * ops/notify: the server's side of systemd's service protocol (sd_notify, libsystemd). It says
 * READY once the server listens, pings the watchdog from a timer on the world's loop (so a loop
 * that stalls stops the pings and systemd restarts the service), and says STOPPING at shutdown;
 * outside systemd (no NOTIFY_SOCKET) every call does nothing.
 */
#ifndef OW_OPS_NOTIFY_H
#define OW_OPS_NOTIFY_H

#include <uv.h>

typedef struct ow_notify ow_notify;

/* Sends READY=1 with a STATUS line and, when systemd asked for a watchdog (WatchdogSec=, seen as
 * WATCHDOG_USEC), starts pinging it at half that interval. *out is NULL outside systemd. */
void ow_notify_ready(ow_notify **out, uv_loop_t *loop, const char *status);
/* Sends STOPPING=1 and stops the pings (n may be NULL). */
void ow_notify_stopping(ow_notify *n);

#endif
