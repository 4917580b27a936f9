/*
 * prom: GET /metrics, the rows of OW_SERVER_METRICS (metrics.h) in the Prometheus text exposition
 * format (version 0.0.4), so that no figure is listed twice. Every name is otherworld_<row>;
 * counters end in _total, histograms are in seconds with the fixed buckets of ow_samples (counts
 * since start, cumulative as Prometheus wants them), text rows are info gauges with the text as a
 * label. With the metrics_token setting, a scrape must send it as a bearer token.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "server/metrics.h"

void server_count_action(ow_server *s, uint8_t type, int32_t code) {
  /* The key is never 0 (a type is at least 1), and -code fits 32 bits: OW_E_* are small. */
  uint64_t key = ((uint64_t)type << 32) | (uint32_t)-code;
  uint64_t *v = ow_map_get(&s->action_results, key);
  ow_map_set(&s->action_results, key, v ? *v + 1 : 1);
}

static void put(ow_buf *b, const char *t) { ow_buf_put(b, t, strlen(t)); }

static void putf(ow_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(ow_buf *b, const char *fmt, ...) {
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  /* Only numbers and names of the list go through here: they fit. */
  OW_ASSERT(n >= 0 && (size_t)n < sizeof tmp);
  ow_buf_put(b, tmp, (size_t)n);
}

/* A label value: backslash, double quote and newline escaped. The format wants UTF-8; a text that
 * is not (a server_name given as raw bytes) has its bytes above 0x7f shown as '?' (jansson's
 * parser is the UTF-8 check). */
static void put_label(ow_buf *b, const char *v) {
  json_t *probe = json_string(v);
  bool utf8 = probe != NULL;
  json_decref(probe);
  for (const char *p = v; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == '\\') put(b, "\\\\");
    else if (c == '"') put(b, "\\\"");
    else if (c == '\n') put(b, "\\n");
    else if (c >= 0x80 && !utf8) put(b, "?");
    else ow_buf_put(b, p, 1);
  }
}

/* HELP text: backslash and newline escaped (the list's texts have neither, but stay safe). */
static void put_help(ow_buf *b, const char *full, const char *help, const char *type) {
  putf(b, "# HELP %s ", full);
  for (const char *p = help; *p; p++) {
    if (*p == '\\') put(b, "\\\\");
    else if (*p == '\n') put(b, "\\n");
    else ow_buf_put(b, p, 1);
  }
  putf(b, "\n# TYPE %s %s\n", full, type);
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && !strcmp(s + n - k, suffix);
}

static void put_histogram(ow_buf *b, const char *full, const ow_samples *sm) {
  uint64_t cum = 0;
  for (int i = 0; i < OW_SAMPLE_BUCKETS; i++) {
    cum += sm->bucket[i];
    putf(b, "%s_bucket{le=\"%.9g\"} %llu\n", full, (double)ow_sample_bounds_ns[i] / 1e9,
         (unsigned long long)cum);
  }
  putf(b, "%s_bucket{le=\"+Inf\"} %llu\n", full, (unsigned long long)sm->count);
  putf(b, "%s_sum %.9f\n", full, (double)sm->sum_ns / 1e9);
  putf(b, "%s_count %llu\n", full, (unsigned long long)sm->count);
}

static void put_actions(ow_buf *b, const ow_server *s, const char *full, const ow_map *m) {
  char buf[24];
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->keys[i]) continue;
    putf(b, "%s{type=\"", full);
    put_label(b, ow_metrics_action_name(s, (uint8_t)(m->keys[i] >> 32), buf, sizeof buf));
    put(b, "\",result=\"");
    put_label(b, ow_metrics_result_name(-(int32_t)(uint32_t)m->keys[i]));
    putf(b, "\"} %llu\n", (unsigned long long)m->vals[i]);
  }
}

int ow_server_prom_text(const ow_server *s, ow_buf *out) {
  ow_metric_value v[OW_METRICS_N];
  ow_metrics_read(s, v);
  const ow_metric *rows = ow_metrics_list();
  char full[96];
  for (size_t i = 0; i < OW_METRICS_N; i++) {
    const ow_metric *r = &rows[i];
    switch (r->kind) {
    case OW_METRIC_TEXT:
      snprintf(full, sizeof full, "otherworld_%s_info", r->name);
      put_help(out, full, r->help, "gauge");
      putf(out, "%s{value=\"", full);
      put_label(out, v[i].text);
      put(out, "\"} 1\n");
      break;
    case OW_METRIC_FLAG:
      snprintf(full, sizeof full, "otherworld_%s", r->name);
      put_help(out, full, r->help, "gauge");
      putf(out, "%s %d\n", full, v[i].flag ? 1 : 0);
      break;
    case OW_METRIC_GAUGE:
      snprintf(full, sizeof full, "otherworld_%s", r->name);
      put_help(out, full, r->help, "gauge");
      putf(out, "%s %llu\n", full, (unsigned long long)v[i].u64);
      break;
    case OW_METRIC_COUNTER:
      snprintf(full, sizeof full, "otherworld_%s%s", r->name, ends_with(r->name, "_total") ? "" : "_total");
      put_help(out, full, r->help, "counter");
      putf(out, "%s %llu\n", full, (unsigned long long)v[i].u64);
      break;
    case OW_METRIC_HISTOGRAM:
      snprintf(full, sizeof full, "otherworld_%s_seconds", r->name);
      put_help(out, full, r->help, "histogram");
      put_histogram(out, full, v[i].samples);
      break;
    case OW_METRIC_ACTIONS:
      snprintf(full, sizeof full, "otherworld_%s_total", r->name);
      put_help(out, full, r->help, "counter");
      put_actions(out, s, full, v[i].actions);
      break;
    }
  }
  return 0;
}

/* The route. A token, when set, is compared in constant time: a scrape endpoint must not tell a
 * guesser how many bytes it got right. */
static int metrics_request(void *ud, ow_http_req *r) {
  const ow_server *s = ud;
  const char *tok = s->cfg.metrics_token;
  if (!tok || !*tok) return 0;
  const char *h = ow_http_authorization(r);
  size_t n = strlen(tok);
  if (strncmp(h, "Bearer ", 7) || strlen(h + 7) != n || sodium_memcmp(h + 7, tok, n)) {
    OW_WARN("metrics_refused", "peer=%s", ow_http_peer(r));
    return 403;
  }
  return 0;
}

static void metrics_end(void *ud, ow_http_req *r) {
  ow_buf b;
  ow_buf_init(&b);
  ow_server_prom_text(ud, &b);
  ow_http_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
  ow_buf_deinit(&b);
}

void server_prom_routes(ow_server *s) {
  ow_http_route rt = {.path = "/metrics",
                      .methods = OW_HTTP_GET,
                      .on_request = metrics_request,
                      .on_end = metrics_end,
                      .ud = s};
  ow_net_route(s->net, &rt);
}
