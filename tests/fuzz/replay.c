/*
 * fuzz replay: the main of a fuzz target in a build without libFuzzer. Runs every file of the
 * given directories (or the given files) through LLVMFuzzerTestOneInput, in name order, so that a
 * committed corpus is a regression test in the normal and the sanitizer builds. A crash or a
 * failed property aborts the program, naming the input first.
 *
 *   fuzz_replay_<target> DIR|FILE...
 */
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "fuzz_replay: %s: %s\n", path, strerror(errno));
    return -1;
  }
  size_t cap = 4096, n = 0;
  uint8_t *buf = malloc(cap);
  size_t got;
  while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) buf = realloc(buf, cap *= 2);
  }
  fclose(f);
  /* An exact-size copy, so that AddressSanitizer sees a read past the input as it would under
   * libFuzzer. */
  uint8_t *in = malloc(n ? n : 1);
  memcpy(in, buf, n);
  free(buf);
  fprintf(stderr, "fuzz_replay: %s (%zu bytes)\n", path, n);
  LLVMFuzzerTestOneInput(in, n);
  free(in);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    printf("usage: %s DIR|FILE...\n"
           "Runs every file of each directory (or each file) through the fuzz target once.\n",
           argv[0]);
    return argc < 2 ? 2 : 0;
  }
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  size_t inputs = 0, failed = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st)) {
      fprintf(stderr, "fuzz_replay: %s: %s\n", argv[i], strerror(errno));
      failed++;
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      inputs++;
      if (run_file(argv[i])) failed++;
      continue;
    }
    DIR *d = opendir(argv[i]);
    if (!d) {
      failed++;
      continue;
    }
    char **names = NULL;
    size_t nn = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
      if (e->d_name[0] == '.') continue;
      if (nn == cap) names = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof *names);
      size_t len = strlen(argv[i]) + strlen(e->d_name) + 2;
      names[nn] = malloc(len);
      snprintf(names[nn++], len, "%s/%s", argv[i], e->d_name);
    }
    closedir(d);
    qsort(names, nn, sizeof *names, cmp_str);
    for (size_t k = 0; k < nn; k++) {
      inputs++;
      if (run_file(names[k])) failed++;
      free(names[k]);
    }
    free(names);
  }
  printf("fuzz_replay: %zu inputs, %zu failed to read\n", inputs, failed);
  /* An empty corpus proves nothing: it is a failure too. */
  return failed || !inputs ? 1 : 0;
}
