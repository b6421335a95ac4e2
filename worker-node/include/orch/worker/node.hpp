#pragma once

namespace orch::worker {

/// Runs the worker-node: parses settings, connects to the scheduler and
/// runs jobs until SIGINT or SIGTERM. Returns the process exit code.
int run_node(int argc, char** argv);

} // namespace orch::worker
