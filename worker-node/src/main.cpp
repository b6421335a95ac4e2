#include "orch/worker/node.hpp"

int main(int argc, char** argv) {
  return orch::worker::run_node(argc, argv);
}
