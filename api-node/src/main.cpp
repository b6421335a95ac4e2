#include "orch/api/node.hpp"

#include <malloc.h>

int main(int argc, char** argv) {
  // Response buffers of list pages (60 kB a page, more in Pistache's
  // copies) would otherwise cross glibc's adaptive mmap threshold, so each
  // answer mapped, zero-filled and unmapped fresh pages: a third of the
  // api-node's CPU per list request went to page faults. Kept on the heap,
  // they are reused (docs/performance.md).
  mallopt(M_MMAP_THRESHOLD, 16 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  return orch::api::run_node(argc, argv);
}
