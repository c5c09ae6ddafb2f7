// SPDX-License-Identifier: BSL-1.0
// Tokens: the set() that makes one, and the reset() that undoes it exactly once.

#include <baton/token.hpp>

#include <baton/errors.hpp>

#include <utility>

#include "var_registry.hpp"

namespace baton::detail {

void release(token_state* t) noexcept {
  if (!drop_ref(t->refs)) return;
  release(t->old_root);
  if (t->had_old) drop_entry(t->old_entry);
  delete t;
}

token_state* set_entry(const slot& entry, const void* var) {
  context_cell* c = nullptr;
  try {
    c = current_or_implicit();
  } catch (...) {
    drop_entry(entry);
    throw;
  }
  map_node* const new_root = insert(c->root, entry);  // drops entry itself on failure
  new_root->version = fresh_version();                // a new node, not yet published
  stamp_new_root(new_root, c->root, entry.key & ~boxed_bit);
  token_state* t = nullptr;
  try {
    t = new token_state;
  } catch (...) {
    release(new_root);
    throw;
  }
  if (c->id == 0) c->id = new_cell_id();  // only cells that ever made a token need an id
  t->key = entry.key & ~boxed_bit;
  t->had_old = false;
  if (const slot* old = find(c->root, t->key)) {
    t->old_entry = *old;
    t->had_old = true;
    if ((old->key & boxed_bit) != 0) {
      // Relaxed: a new reference from an existing one.
      reinterpret_cast<value_box*>(old->bits)->refs.fetch_add(1, std::memory_order_relaxed);
    }
  }
  t->var = var;
  t->cell_id = c->id;
  t->version = new_root->version;
  t->old_root = c->root;  // the cell's reference moves to the token
  set_root(c, new_root);
  sync_mirrors();
  return t;
}

void set_untracked(const slot* entries, std::size_t n) {
  if (n == 0) return;
  std::size_t taken = 0;     // entries [taken, n) are still this function's to drop
  map_node* made = nullptr;  // the root built so far, owned here until the cell takes it
  // Flat roots take all the entries in one copy (insert_new); else one insert each, freeing
  // the nodes in between at once.
  try {
    context_cell* const c = current_or_implicit();
    made = insert_new(c->root, entries, n);
    if (made != nullptr) taken = n;
    while (taken < n) {
      map_node* const next = insert(made != nullptr ? made : c->root, entries[taken++]);
      release(made);  // never published: an unshared node, freed here
      made = next;
    }
    made->version = fresh_version();  // a new node, not yet published
    stamp_new_root(made, c->root, n == 1 ? entries[0].key & ~boxed_bit : 0);
    map_node* const old = c->root;
    set_root(c, std::exchange(made, nullptr));
    release(old);
    sync_mirrors();
  } catch (...) {
    release(made);
    for (; taken < n; ++taken) drop_entry(entries[taken]);
    throw;
  }
}

void reset_entry(token_state* t, var_key key, const void* var, const std::string& name) {
  // Relaxed: a token is reset by the thread that has its context entered (one at a time).
  if (t->used.load(std::memory_order_relaxed)) {
    throw context_error("baton: the token of context var '" + name + "' has already been used");
  }
  if (t->var != var) {
    throw context_error("baton: a token of context var '" + var_name(t->key) +
                        "' cannot reset context var '" + name + "'");
  }
  context_cell* const c = current_cell;
  if (c == nullptr || c->id != t->cell_id) {
    throw context_error("baton: the token of context var '" + name +
                        "' was created in a different context");
  }
  map_node* new_root = nullptr;
  if (c->root != nullptr && c->root->version == t->version) {
    // The root is the very node the set made, so nothing changed since: the old map is the
    // answer; the token's reference to it moves back into the context (old_value() reads
    // old_entry, not the map).
    new_root = std::exchange(t->old_root, nullptr);
  } else {
    if (t->had_old) {
      if ((t->old_entry.key & boxed_bit) != 0) {
        reinterpret_cast<value_box*>(t->old_entry.bits)
            // Relaxed: a new reference from one the token holds.
            ->refs.fetch_add(1, std::memory_order_relaxed);
      }
      new_root = insert(c->root, t->old_entry);
    } else {
      new_root = erase(c->root, key);  // c->root itself (retained) when key is not there
    }
    // A new node gets a version of its own (an older token may find it later); the root
    // itself keeps the version it has.
    if (new_root != nullptr && new_root != c->root) {
      new_root->version = fresh_version();
      stamp_new_root(new_root, c->root, key);
    }
  }
  release(c->root);
  set_root(c, new_root);
  // Relaxed: as the check at the top.
  t->used.store(true, std::memory_order_relaxed);
  sync_mirrors();
}

}  // namespace baton::detail
