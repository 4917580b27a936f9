/*
 * fuzz: a small world for the targets that apply decoded actions and poses: the shipped content's
 * seed world plus, within reach of the avatar of account 1, a tree, a rock, a public chest, a cart,
 * a door and a few item stacks in the avatar's inventory. Built fresh for each input (ids are the
 * same every time: 1..41 the seeds, then the entities below in order).
 */
#ifndef OW_FUZZ_WORLD_FIXTURE_H
#define OW_FUZZ_WORLD_FIXTURE_H

#include "world/world.h"

#define FUZZ_ACCOUNT 1

typedef struct fuzz_world {
  ow_world *w;
  ow_id avatar, inventory;
} fuzz_world;

void fuzz_world_make(fuzz_world *fw, ow_content *c);
void fuzz_world_free(fuzz_world *fw);

/* Structural checks after any change: every live entity's parent exists, children point back,
 * item totals are finite. Aborts on a violation. */
void fuzz_world_check(const fuzz_world *fw);

#endif
