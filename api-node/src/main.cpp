#include "orch/api/node.hpp"

int main(int argc, char** argv) {
  return orch::api::run_node(argc, argv);
}
