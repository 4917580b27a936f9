/*
 * interest: the region cells within a client's area of interest, the square of cells within
 * radius cells of the centre cell. The replica (what a view shows) and the pose publisher (whose
 * poses a receiver gets) both walk it with this one iterator, in the same order.
 */
#ifndef OW_INTEREST_H
#define OW_INTEREST_H

#include <stdbool.h>

#include "world/world.h"

/* An iteration in progress: caller-allocated, no cleanup. Columns (x) outer, rows (z) inner. */
typedef struct ow_interest {
  ow_cell center;
  int radius, dx, dz;
} ow_interest;

/* Starts at the corner (center.x - radius, center.z - radius). A negative radius yields no cell. */
static inline ow_interest ow_interest_begin(ow_cell center, int radius) {
  ow_interest it = {center, radius, -radius, -radius};
  return it;
}

/* Stores the next cell in *out and returns true; false once every cell has been visited. Inline
 * so that the publishing loops cost what their hand-written double loops did. */
static inline bool ow_interest_next(ow_interest *it, ow_cell *out) {
  if (it->radius < 0 || it->dx > it->radius) return false;
  out->x = it->center.x + it->dx;
  out->z = it->center.z + it->dz;
  if (++it->dz > it->radius) {
    it->dz = -it->radius;
    it->dx++;
  }
  return true;
}

#endif
