// The letters used in shape comments throughout selectivbench, defined once:
//
//   B  batch (sequences in a batch)
//   T  time steps of a sequence
//   D  model width (d_model): the width of the residual stream a mixer reads and writes
//   H  heads
//   K  key (and query) width of one head
//   V  value width of one head
//   N  state width of a state-space model (d_state)
//   C  output classes (in the core: the grammar's states, or symbols)
//   E  elements of a sample (grammar symbols; each covers one or more time steps)
//
// A comment `// [B, T, H, K]` next to a tensor gives its shape in these letters.
#pragma once
