/* config: defaults, file, environment and flags, in that order of precedence; clear errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <unistd.h>

#include "config/config.h"
#include "core/core.h"

static void test_defaults(void **state) {
  (void)state;
  ow_config c;
  ow_config_init(&c);
  assert_string_equal(c.data_dir, "./data");
  assert_string_equal(c.durability, "full");
  assert_true(c.tick_hz == 60);
  assert_true(c.region_size == 256);
  ow_config_deinit(&c);
}

static void test_file(void **state) {
  (void)state;
  ow_config c;
  ow_config_init(&c);
  char err[256];
  const char *text = "# a comment\n  tick_hz = 30  \n\ndata_dir=/tmp/x # trailing\nreach = 0\n";
  assert_int_equal(ow_config_parse(&c, text, strlen(text), "t.conf", err, sizeof err), 0);
  assert_true(c.tick_hz == 30);
  assert_string_equal(c.data_dir, "/tmp/x");
  assert_true(c.reach == 0);
  const char *bad[][2] = {
      {"tick_hz 30\n", "t.conf:1: expected 'name = value'"},
      {"\n\ncolour = red\n", "t.conf:3: unknown setting 'colour'"},
      {"tick_hz = fast\n", "t.conf:1: tick_hz: 'fast' is not a number"},
      {"tick_hz = 0\n", "tick_hz: 0 is outside [1, 1000]"},
      {"tick_hz = nan\n", "is not a number"},
      {"durability = sometimes\n", "durability: 'sometimes' is not one of the allowed values"},
      {"data_dir =\n", "data_dir: must not be empty"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = 0;
    assert_int_equal(ow_config_parse(&c, bad[i][0], strlen(bad[i][0]), "t.conf", err, sizeof err), OW_E_CONFIG);
    if (!strstr(err, bad[i][1])) fail_msg("'%s': got '%s'", bad[i][0], err);
  }
  ow_config_deinit(&c);
}

static void test_precedence(void **state) {
  (void)state;
  char path[] = "/tmp/ow-config-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  const char *text = "tick_hz = 30\nreach = 5\ncheckpoint_s = 2\n";
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  setenv("OW_REACH", "6", 1);
  setenv("OW_CHECKPOINT_S", "3", 1);
  ow_config c;
  ow_config_init(&c);
  char err[256];
  bool help;
  char *argv[] = {"otherworld", "--checkpoint-s", "4", "--config", path, "--log_level=warn", NULL};
  assert_int_equal(ow_config_args(&c, 6, argv, &help, err, sizeof err), 0);
  assert_false(help);
  assert_true(c.tick_hz == 30);      /* file */
  assert_true(c.reach == 6);         /* environment over file */
  assert_true(c.checkpoint_s == 4);  /* flag over environment */
  assert_string_equal(c.log_level, "warn");
  char *argv2[] = {"otherworld", "--bogus=1", NULL};
  assert_int_equal(ow_config_args(&c, 2, argv2, &help, err, sizeof err), OW_E_CONFIG);
  assert_non_null(strstr(err, "unknown setting 'bogus'"));
  char *argv3[] = {"otherworld", "--tick_hz", NULL};
  assert_int_equal(ow_config_args(&c, 2, argv3, &help, err, sizeof err), OW_E_CONFIG);
  char *argv4[] = {"otherworld", "--help", NULL};
  assert_int_equal(ow_config_args(&c, 2, argv4, &help, err, sizeof err), 0);
  assert_true(help);
  unsetenv("OW_REACH");
  setenv("OW_TICK_HZ", "-5", 1);
  assert_int_equal(ow_config_env(&c, err, sizeof err), OW_E_CONFIG);
  assert_non_null(strstr(err, "OW_TICK_HZ"));
  unsetenv("OW_TICK_HZ");
  unsetenv("OW_CHECKPOINT_S");
  unlink(path);
  ow_config_deinit(&c);
}

static void test_help_lists_every_setting(void **state) {
  (void)state;
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  ow_config_help(f);
  fclose(f);
  const char *names[] = {"data_dir", "content", "durability", "tick_hz", "region_size", "reach",
                         "checkpoint_s", "replay_window", "frame_log_keep", "OW_DATA_DIR"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) assert_non_null(strstr(buf, names[i]));
  free(buf);
}

/* Settings that reach the wire are checked against their field at start: server_name is a string
 * of at most 255 bytes in WELCOME (a 256-byte name used to abort the server at the first HELLO). */
static void test_string_lengths(void **state) {
  (void)state;
  ow_config c;
  ow_config_init(&c);
  char err[256];
  char name[257];
  memset(name, 'n', 256);
  name[256] = 0;
  assert_int_equal(ow_config_set(&c, "server_name", name, err, sizeof err), OW_E_CONFIG);
  assert_non_null(strstr(err, "server_name: 256 bytes is longer than the 255 bytes allowed"));
  assert_string_equal(c.server_name, "otherworld"); /* a refused value changes nothing */
  name[255] = 0;
  assert_int_equal(ow_config_set(&c, "server_name", name, err, sizeof err), 0);
  assert_int_equal(strlen(c.server_name), 255);
  ow_config_deinit(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_file),
      cmocka_unit_test(test_precedence),
      cmocka_unit_test(test_help_lists_every_setting),
      cmocka_unit_test(test_string_lengths),
  };
  return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
