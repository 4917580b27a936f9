/* config: the settings table and its four sources. See config.h. */
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

#ifndef OW_DEFAULT_CONTENT
#define OW_DEFAULT_CONTENT "content/default.json"
#endif

typedef enum { T_STR, T_NUM } kind;

typedef struct setting {
  const char *name;
  kind kind;
  size_t off;
  const char *def;
  double lo, hi; /* numbers: the range; strings: hi is the longest value in bytes */
  const char *const *choices; /* strings: allowed values, or NULL for any */
  const char *help;
  int empty_ok; /* strings: "" is a valid value */
} setting;

static const char *const durability_choices[] = {"full", "nosync", NULL};
static const char *const level_choices[] = {"debug", "info", "warn", "error", NULL};

#define STR(field, def, choices, empty_ok, maxlen, to, help) \
  {#field, T_STR, offsetof(ow_config, field), def, 0, (double)(maxlen), choices, help, empty_ok},
#define NUM(field, def, lo, hi, to, help) {#field, T_NUM, offsetof(ow_config, field), def, lo, hi, NULL, help, 0},
static const setting table[] = {OW_SETTINGS(STR, NUM)};
#undef STR
#undef NUM
#define NSETTINGS (sizeof table / sizeof table[0])

static const setting *lookup(const char *name, size_t len) {
  for (size_t i = 0; i < NSETTINGS; i++)
    if (strlen(table[i].name) == len && !strncmp(table[i].name, name, len)) return &table[i];
  return NULL;
}

static int set(ow_config *c, const setting *s, const char *value, char *err, size_t errlen) {
  char *base = (char *)c;
  if (s->kind == T_STR) {
    if (s->choices) {
      int ok = 0;
      for (const char *const *ch = s->choices; *ch; ch++) ok |= !strcmp(*ch, value);
      if (!ok) {
        snprintf(err, errlen, "%s: '%s' is not one of the allowed values (see --help)", s->name, value);
        return OW_E_CONFIG;
      }
    }
    if (strlen(value) > (size_t)s->hi) {
      snprintf(err, errlen, "%s: %zu bytes is longer than the %.0f bytes allowed", s->name,
               strlen(value), s->hi);
      return OW_E_CONFIG;
    }
    if (!*value && !s->empty_ok) {
      snprintf(err, errlen, "%s: must not be empty", s->name);
      return OW_E_CONFIG;
    }
    char **slot = (char **)(base + s->off);
    ow_free(*slot);
    *slot = ow_strdup(value);
    return 0;
  }
  char *end;
  errno = 0;
  double v = strtod(value, &end);
  while (*end && isspace((unsigned char)*end)) end++;
  if (errno || end == value || *end || !isfinite(v)) {
    snprintf(err, errlen, "%s: '%s' is not a number", s->name, value);
    return OW_E_CONFIG;
  }
  if (v < s->lo || v > s->hi) {
    snprintf(err, errlen, "%s: %g is outside [%g, %g]", s->name, v, s->lo, s->hi);
    return OW_E_CONFIG;
  }
  *(double *)(base + s->off) = v;
  return 0;
}

void ow_config_init(ow_config *c) {
  memset(c, 0, sizeof *c);
  char err[256];
  for (size_t i = 0; i < NSETTINGS; i++) OW_ASSERT(set(c, &table[i], table[i].def, err, sizeof err) == 0);
}

void ow_config_deinit(ow_config *c) {
  for (size_t i = 0; i < NSETTINGS; i++)
    if (table[i].kind == T_STR) ow_free(*(char **)((char *)c + table[i].off));
  memset(c, 0, sizeof *c);
}

int ow_config_set(ow_config *c, const char *name, const char *value, char *err, size_t errlen) {
  const setting *s = lookup(name, strlen(name));
  if (!s) {
    snprintf(err, errlen, "unknown setting '%s' (see --help)", name);
    return OW_E_CONFIG;
  }
  return set(c, s, value, err, errlen);
}

int ow_config_parse(ow_config *c, const char *text, size_t len, const char *origin, char *err,
                    size_t errlen) {
  size_t pos = 0;
  int line = 0;
  while (pos < len) {
    line++;
    size_t end = pos;
    while (end < len && text[end] != '\n') end++;
    size_t a = pos, b = end;
    pos = end + 1;
    for (size_t i = a; i < b; i++)
      if (text[i] == '#') {
        b = i;
        break;
      }
    while (a < b && isspace((unsigned char)text[a])) a++;
    while (b > a && isspace((unsigned char)text[b - 1])) b--;
    if (a == b) continue;
    size_t eq = a;
    while (eq < b && text[eq] != '=') eq++;
    if (eq == b) {
      snprintf(err, errlen, "%s:%d: expected 'name = value'", origin, line);
      return OW_E_CONFIG;
    }
    size_t ke = eq, vs = eq + 1;
    while (ke > a && isspace((unsigned char)text[ke - 1])) ke--;
    while (vs < b && isspace((unsigned char)text[vs])) vs++;
    const setting *s = lookup(text + a, ke - a);
    if (!s) {
      snprintf(err, errlen, "%s:%d: unknown setting '%.*s'", origin, line, (int)(ke - a > 64 ? 64 : ke - a),
               text + a);
      return OW_E_CONFIG;
    }
    if (b - vs > 4096) {
      snprintf(err, errlen, "%s:%d: value longer than 4096 bytes", origin, line);
      return OW_E_CONFIG;
    }
    char *v = ow_strndup(text + vs, b - vs);
    if (memchr(text + vs, 0, b - vs)) {
      ow_free(v);
      snprintf(err, errlen, "%s:%d: NUL byte in value", origin, line);
      return OW_E_CONFIG;
    }
    char inner[256];
    int rc = set(c, s, v, inner, sizeof inner);
    ow_free(v);
    if (rc) {
      snprintf(err, errlen, "%s:%d: %s", origin, line, inner);
      return rc;
    }
  }
  return 0;
}

int ow_config_env(ow_config *c, char *err, size_t errlen) {
  for (size_t i = 0; i < NSETTINGS; i++) {
    char name[64] = "OW_";
    for (size_t j = 0; table[i].name[j] && j < 60; j++)
      name[3 + j] = (char)toupper((unsigned char)table[i].name[j]);
    const char *v = getenv(name);
    if (!v) continue;
    char inner[256];
    int rc = set(c, &table[i], v, inner, sizeof inner);
    if (rc) {
      snprintf(err, errlen, "environment %s: %s", name, inner);
      return rc;
    }
  }
  return 0;
}

static int load_file(ow_config *c, const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return OW_E_CONFIG;
  }
  ow_buf b;
  ow_buf_init(&b);
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len < (1u << 20)) ow_buf_put(&b, chunk, n);
  fclose(f);
  int rc = ow_config_parse(c, (const char *)b.data, b.len, path, err, errlen);
  ow_buf_deinit(&b);
  return rc;
}

int ow_config_args(ow_config *c, int argc, char **argv, bool *help, char *err, size_t errlen) {
  *help = false;
  /* The config file comes first so that other flags override it whatever their order. */
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--config")) {
      if (i + 1 >= argc) {
        snprintf(err, errlen, "--config needs a file name");
        return OW_E_CONFIG;
      }
      int rc = load_file(c, argv[i + 1], err, errlen);
      if (rc) return rc;
    } else if (!strncmp(argv[i], "--config=", 9)) {
      int rc = load_file(c, argv[i] + 9, err, errlen);
      if (rc) return rc;
    }
  }
  int rc = ow_config_env(c, err, errlen);
  if (rc) return rc;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      *help = true;
      continue;
    }
    if (!strcmp(a, "--config")) {
      i++;
      continue;
    }
    if (!strncmp(a, "--config=", 9)) continue;
    if (strncmp(a, "--", 2)) {
      snprintf(err, errlen, "unexpected argument '%s' (see --help)", a);
      return OW_E_CONFIG;
    }
    a += 2;
    const char *eq = strchr(a, '=');
    char name[128];
    const char *value;
    size_t nl = eq ? (size_t)(eq - a) : strlen(a);
    if (nl >= sizeof name) nl = sizeof name - 1;
    memcpy(name, a, nl);
    name[nl] = 0;
    for (char *p = name; *p; p++)
      if (*p == '-') *p = '_';
    if (eq) {
      value = eq + 1;
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      snprintf(err, errlen, "--%s needs a value", name);
      return OW_E_CONFIG;
    }
    rc = ow_config_set(c, name, value, err, errlen);
    if (rc) return rc;
  }
  return 0;
}

void ow_config_help(FILE *out) {
  fprintf(out, "Settings (config file 'name = value', environment OW_NAME, flag --name=value):\n\n");
  for (size_t i = 0; i < NSETTINGS; i++) {
    char env[64] = "OW_";
    for (size_t j = 0; table[i].name[j] && j < 60; j++)
      env[3 + j] = (char)toupper((unsigned char)table[i].name[j]);
    fprintf(out, "  --%-20s default %-8s %s\n      %s\n", table[i].name, table[i].def, env,
            table[i].help);
  }
}

void ow_config_dump(const ow_config *c, FILE *out) {
  for (size_t i = 0; i < NSETTINGS; i++) {
    const char *base = (const char *)c;
    if (table[i].kind == T_STR)
      fprintf(out, "%s = %s\n", table[i].name, *(char *const *)(base + table[i].off));
    else
      fprintf(out, "%s = %g\n", table[i].name, *(const double *)(base + table[i].off));
  }
}
