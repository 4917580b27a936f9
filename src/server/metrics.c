/*
 * metrics: the rows of OW_SERVER_METRICS (metrics.h), read in one pass, and /status as their JSON.
 * Other emitters (Prometheus text) read the same rows with ow_metrics_list and ow_metrics_read.
 */
#include "server/metrics.h"

#include <math.h>
#include <stdlib.h>

static const ow_metric rows[OW_METRICS_N] = {
#define ROW(name, kind, help, value) {#name, OW_METRIC_##kind, help},
    OW_SERVER_METRICS(ROW)
#undef ROW
};

const ow_metric *ow_metrics_list(void) { return rows; }

/* The ow_metric_value member each kind is read into. */
#define FIELD_TEXT text
#define FIELD_FLAG flag
#define FIELD_GAUGE u64
#define FIELD_COUNTER u64
#define FIELD_HISTOGRAM samples
#define FIELD_(kind) FIELD_##kind

void ow_metrics_read(const ow_server *s, ow_metric_value *out) {
  const ow_server_stats *st = &s->stats;
  const ow_zone_loop_stats *zs = ow_zone_loop_stats_get(s->zl);
  const ow_net_stats *ns = ow_net_stats_get(s->net);
  memset(out, 0, OW_METRICS_N * sizeof *out);
#define READ(name, kind, help, value) out[OW_METRIC_##name].FIELD_(kind) = (value);
  OW_SERVER_METRICS(READ)
#undef READ
}

/* A timing percentile in microseconds, rounded to 0.1 us as /status has always shown it. */
static json_t *pct_us(const ow_samples *sm, int pct) {
  return json_real(round(ow_samples_pct(sm, pct) / 1e2) / 10.0);
}

/* A string as JSON. jansson refuses bytes that are not UTF-8; such a string (a server_name) is
 * shown with those bytes as '?' rather than leaving the field out. */
static json_t *text_string(const char *text) {
  json_t *j = json_string(text);
  if (j) return j;
  size_t n = strlen(text);
  char *copy = ow_malloc(n + 1);
  for (size_t i = 0; i <= n; i++) copy[i] = (unsigned char)text[i] < 0x80 ? text[i] : '?';
  j = json_string(copy);
  ow_free(copy);
  return j;
}

json_t *ow_metrics_json(const ow_server *s) {
  ow_metric_value v[OW_METRICS_N];
  ow_metrics_read(s, v);
  json_t *o = json_object();
  if (!o) return NULL;
  char key[96];
  int bad = 0;
  for (size_t i = 0; i < OW_METRICS_N; i++) {
    const char *name = rows[i].name;
    switch (rows[i].kind) {
    case OW_METRIC_TEXT: bad |= json_object_set_new(o, name, text_string(v[i].text)); break;
    case OW_METRIC_FLAG: bad |= json_object_set_new(o, name, json_boolean(v[i].flag)); break;
    case OW_METRIC_GAUGE:
    case OW_METRIC_COUNTER:
      bad |= json_object_set_new(o, name, json_integer((json_int_t)v[i].u64));
      break;
    case OW_METRIC_HISTOGRAM:
      /* The names are short literals of the list: the keys always fit. */
      snprintf(key, sizeof key, "%s_p50_us", name);
      bad |= json_object_set_new(o, key, pct_us(v[i].samples, 50));
      snprintf(key, sizeof key, "%s_p99_us", name);
      bad |= json_object_set_new(o, key, pct_us(v[i].samples, 99));
      break;
    }
  }
  if (bad) {
    json_decref(o);
    return NULL;
  }
  return o;
}

int ow_server_status_json(const ow_server *s, ow_buf *out) {
  json_t *o = ow_metrics_json(s);
  if (!o) return OW_E_NOMEM;
  /* One compact line (bench/lib.sh reads the body's last line); 15 significant digits print
   * the rounded timings without binary noise and without an exponent. */
  char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
  json_decref(o);
  if (!text) return OW_E_NOMEM;
  ow_buf_put(out, text, strlen(text));
  ow_buf_put(out, "\n", 1);
  free(text);
  return 0;
}

void server_status_cb(void *ud, ow_buf *out) { ow_server_status_json(ud, out); }
