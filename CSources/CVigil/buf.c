/* buf.c - the growable byte buffer (vigil_buf_t) every connection and
 * request keeps its bytes in. */
#include "vigil_internal.h"

#include <stdlib.h>
#include <string.h>

int vigil__buf_reserve(vigil_buf_t *b, size_t extra) {
  if (b->cap - b->len >= extra) return 0;
  size_t need = b->len + extra;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need) cap *= 2;
  char *p = realloc(b->base, cap);
  if (p == NULL) return VIGIL_ENOMEM;
  b->base = p;
  b->cap = cap;
  return 0;
}

int vigil__buf_append(vigil_buf_t *b, const void *data, size_t len) {
  int r = vigil__buf_reserve(b, len);
  if (r != 0) return r;
  if (len) memcpy(b->base + b->len, data, len);
  b->len += len;
  return 0;
}

void vigil__buf_free(vigil_buf_t *b) {
  free(b->base);
  b->base = NULL;
  b->len = b->cap = 0;
}
